"""Inspect: run a model on a text or an image and see where every token went.

First visit: each model says what it takes and does (its ModelSpec) and offers examples
ready to run ("Try: ..."). A text longer than the model's context runs as consecutive
windows (routeviz.windows), one example each. The view (run, example, site, token, search,
tag) is kept in session state and the URL (app_pages/page_state.URL_KEYS).
"""

import streamlit as st

from app_pages.common import (
    LOCAL_CHECKPOINT,
    current_run,
    get_handle,
    load_runner,
    new_run_name,
    panel_fragment,
    run_config,
    run_source,
    show_error,
    store_written,
)
from app_pages.inspect_find import find_panel, go_to, pick_example, token_detail
from app_pages.inspect_views import show_example
from app_pages.page_state import state_to_url
from routeviz.errors import RoutevizError
from routeviz.plugins import model_specs
from routeviz.runs.record import record
from routeviz.runs.uploads import UPLOAD_TYPES, item_from_text, item_from_upload
from routeviz.runs.windows import text_windows

try:  # panels written beside this page (issue 16); the page works without them
    from app_pages.whatif import render_whatif
except ImportError:
    render_whatif = None
try:
    from app_pages.explain_panel import render_explain
except ImportError:
    render_explain = None


def describe(spec) -> str:
    """One line: input, routing kinds, data, and the spec's description."""
    data = f" · data: {', '.join(spec.datasets)}" if spec.datasets else ""
    return (f"**{spec.modality} input** · routing: {', '.join(spec.routing)}{data} — "
            f"{spec.description}")


MAX_WINDOWS = 64  # windows of one text run from this page (each one example)


def run_items(handle, model: str, items: list, run_name: str = "") -> None:
    """Record `items` with `model` into a new run, then show its first example."""
    runner = load_runner(model)
    notes = []
    if runner.modality == "text":
        windowed = []
        for item in items:
            windows = text_windows(runner, item, MAX_WINDOWS)
            if len(windows) > 1:
                covered = sum(len(w.text) for w in windows)
                rest = (f" They cover its first {covered:,} of {len(item.text):,} characters; "
                        f"the rest was not run (at most {MAX_WINDOWS} windows a text here)."
                        if covered < len(item.text) else "")
                notes.append(f"{item.source or 'text'} is longer than {runner.name}'s context "
                             f"of {runner.max_tokens:,} tokens: ran as {len(windows)} "
                             f"consecutive windows, examples {len(windowed)}–"
                             f"{len(windowed) + len(windows) - 1} (tags `window`, "
                             f"`char_start`).{rest}")
            windowed.extend(windows)
        items = windowed
    run = run_name.strip() or new_run_name("inspect")
    bar = st.progress(0.0, text=f"Running {runner.name}…")
    result = record(runner, items, handle.store.path, run,
                    progress=lambda done, total: bar.progress(done / total, text=f"{done}/{total}"))
    bar.empty()
    store_written()
    notes += list(result.notes)
    for item in items:
        if item.image is not None:
            w, h = item.image.size
            notes.append(f"{item.source}: {w}×{h} pixels; the model gets its own input size "
                         "and the page draws a copy at most 512 pixels a side")
    st.session_state["inspect_notes"] = {run: notes}
    st.session_state["run"] = run  # in a button's callback: before the sidebar's widget
    go_to(0, 0)


def model_chosen() -> str:
    """The model the page's selector names (a checkpoint directory for a local one)."""
    model = st.session_state.get("inspect_model")
    if model == LOCAL_CHECKPOINT:
        return st.session_state.get("inspect_checkpoint") or ""
    return model


def on_try(i: int) -> None:
    """A Try button's callback: runs the model on its example before the script runs, so
    one script run draws the new run, sidebar included (issue 25: the click's rerun)."""
    _recording(lambda: run_items(get_handle(), model_chosen(),
                                 [model_specs()[st.session_state["inspect_model"]]
                                  .examples[i].item()],
                                 st.session_state.get("inspect_run_name") or ""))


def on_run() -> None:
    """Run the model's callback (see on_try): the upload, else the text typed."""
    def go():
        upload = st.session_state.get("inspect_upload")
        text = st.session_state.get("inspect_text") or ""
        if upload is not None:
            item = item_from_upload(upload.name, upload.getvalue())
        elif text.strip():
            item = item_from_text(text)
        else:
            raise RoutevizError("nothing to run: type a text or upload a file")
        model = model_chosen()
        if not model:
            raise RoutevizError("choose a sample model or give a checkpoint directory")
        run_items(get_handle(), model, [item], st.session_state.get("inspect_run_name") or "")
    _recording(go)


def _recording(go) -> None:
    """go(), its failure kept for the page to say under the buttons (a callback draws above
    the page, and its exception would be a traceback)."""
    st.session_state.pop("inspect_failed", None)
    try:
        go()
    except Exception as exc:  # noqa: BLE001 — a bad input or a model that fails on it: say so
        st.session_state["inspect_failed"] = exc


st.title("Inspect")
st.caption("Pick a model, give it a text or an image — or press a **Try** button — and see "
           "each token's experts, whether it was kept, and where it exited.")

handle = get_handle()
specs = model_specs()
choices = list(specs) + [LOCAL_CHECKPOINT]
if st.session_state.get("inspect_model") not in choices:
    st.session_state.pop("inspect_model", None)
left, right = st.columns([2, 3])
with left:
    model = st.selectbox("Model", choices, key="inspect_model")
    spec = specs.get(model)
    if model == LOCAL_CHECKPOINT:
        model = st.text_input("Checkpoint directory", key="inspect_checkpoint",
                              placeholder="/path/to/a/save_pretrained/dir")
    else:
        st.markdown(describe(spec))
    st.text_input("Run name (optional)", key="inspect_run_name",
                             help="Left empty, a new name like inspect-20260101-120000-ab12.")
    for i, example in enumerate(spec.examples if spec else ()):
        st.button(f"Try: {example.title}", key=f"inspect_try_{i}", disabled=handle is None,
                  on_click=on_try, args=(i,))
with right:
    st.text_area("Type or paste a text", key="inspect_text", height=120)
    st.file_uploader("…or upload a text (.txt .py .md) or an image "
                              "(PNG JPEG WebP GIF BMP TIFF)", type=list(UPLOAD_TYPES),
                              key="inspect_upload")

st.button("Run the model", type="primary", key="inspect_go", disabled=handle is None,
          on_click=on_run)
if "inspect_failed" in st.session_state:  # said once, under the buttons
    show_error(st.session_state.pop("inspect_failed"))

run = current_run(handle) if handle is not None else None
if run is None and handle is not None:
    st.info("No runs yet: press a **Try** button above to run the chosen model on an example.")
if run is not None:
    st.divider()
    example = pick_example(handle, run)
    for note in st.session_state.get("inspect_notes", {}).get(run, []):
        st.info(note)
    find_panel(handle, run)
    bundle = show_example(handle, run, example) if example is not None else None
    site = st.session_state.get("inspect_site")
    if bundle is not None:
        token_detail(handle, run, example, bundle["tokens"], site)
        config = run_config(handle, run)
        imported = isinstance(config.get("import"), dict)  # read from files: no model to run
        if imported:
            st.caption(f"This run's routing was {run_source(config)}: there is no model here "
                       "to run again, so What if and Why are not offered.")
        for key, title, panel in () if imported else (
                ("whatif", "What if: run it again with routing changed", render_whatif),
                ("why", "Why: what drives a token's router (click a heatmap cell or a patch, "
                 "then Explain)", render_explain)):
            if panel is not None:
                # drawn only while open (a closed panel's widgets cost every rerun of the
                # page ~0.15 CPU-s in the browser; issue 25); opening it reruns the page
                box = st.expander(title, key=f"inspect_panel_{key}", on_change="rerun")
                with box:
                    if box.open:
                        try:
                            panel_fragment(panel, handle, run, example, config)  # reruns alone
                        except Exception as exc:  # noqa: BLE001 — its failure stays in it
                            show_error(exc)
    state_to_url(model=st.session_state.get("inspect_model"), example=example, site=site,
                 token=st.session_state.get("inspect_token") if bundle else None,
                 q=st.session_state.get("inspect_search"), tag=st.session_state.get("inspect_tag"))
