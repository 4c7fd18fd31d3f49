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
    select_run,
    show_error,
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
    notes += list(result.notes)
    for item in items:
        if item.image is not None:
            w, h = item.image.size
            notes.append(f"{item.source}: {w}×{h} pixels; the model gets its own input size "
                         "and the page draws a copy at most 512 pixels a side")
    st.session_state["inspect_notes"] = {run: notes}
    select_run(run)
    go_to(0, 0)
    st.rerun()


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
    run_name = st.text_input("Run name (optional)", key="inspect_run_name",
                             help="Left empty, a new name like inspect-20260101-120000-ab12.")
    for i, example in enumerate(spec.examples if spec else ()):
        if st.button(f"Try: {example.title}", key=f"inspect_try_{i}", disabled=handle is None):
            try:
                run_items(handle, model, [example.item()], run_name)
            except Exception as exc:  # noqa: BLE001 — a model that fails on it: say so
                show_error(exc)
with right:
    text = st.text_area("Type or paste a text", key="inspect_text", height=120)
    upload = st.file_uploader("…or upload a text (.txt .py .md) or an image "
                              "(PNG JPEG WebP GIF BMP TIFF)", type=list(UPLOAD_TYPES),
                              key="inspect_upload")

if st.button("Run the model", type="primary", key="inspect_go", disabled=handle is None):
    try:
        if upload is not None:
            item = item_from_upload(upload.name, upload.getvalue())
        elif text and text.strip():
            item = item_from_text(text)
        else:
            raise RoutevizError("nothing to run: type a text or upload a file")
        if not model:
            raise RoutevizError("choose a sample model or give a checkpoint directory")
        run_items(handle, model, [item], run_name)
    except Exception as exc:  # noqa: BLE001 — a bad input or a model that fails on it: say so
        show_error(exc)

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
