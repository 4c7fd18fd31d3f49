"""Inspect: run a model on a text or an image and see where every token went."""

import streamlit as st

from app_pages.common import (
    LOCAL_CHECKPOINT,
    current_run,
    get_handle,
    load_runner,
    new_run_name,
    sample_model_names,
    select_run,
    show_error,
)
from app_pages.inspect_views import example_list, show_example
from routeviz.errors import RoutevizError
from routeviz.record import record
from routeviz.uploads import UPLOAD_TYPES, item_from_text, item_from_upload

st.title("Inspect")
st.caption("Pick a model, give it a text or an image, and see each token's experts, whether "
           "it was kept, and where it exited.")

handle = get_handle()
samples = sample_model_names()
left, right = st.columns([2, 3])
with left:
    model_choice = st.selectbox("Model", samples + [LOCAL_CHECKPOINT], key="inspect_model")
    model = model_choice
    if model_choice == LOCAL_CHECKPOINT:
        model = st.text_input("Checkpoint directory", key="inspect_checkpoint",
                              placeholder="/path/to/a/save_pretrained/dir")
    run_name = st.text_input("Run name (optional)", key="inspect_run_name",
                             help="Left empty, a new name like inspect-20260101-120000-ab12.")
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
        runner = load_runner(model)
        run = run_name.strip() or new_run_name("inspect")
        bar = st.progress(0.0, text=f"Running {runner.name}…")
        result = record(runner, [item], handle.store.path, run,
                        progress=lambda done, total: bar.progress(done / total,
                                                                  text=f"{done}/{total}"))
        bar.empty()
        notes = list(result.notes)
        if item.image is not None:
            w, h = item.image.size
            notes.append(f"{item.source}: {w}×{h} pixels; the model gets its own input size "
                         "and the page draws a copy at most 512 pixels a side")
        st.session_state["inspect_notes"] = {run: notes}
        select_run(run)
        st.rerun()
    except Exception as exc:  # noqa: BLE001 — a bad input or a model that fails on it: say so
        show_error(exc)

if handle is not None:
    run = current_run(handle)
    if run is not None:
        st.divider()
        examples = example_list(handle, run)
        st.markdown(f"**Run** `{run}` · {len(examples):,} example(s)")
        for note in st.session_state.get("inspect_notes", {}).get(run, []):
            st.info(note)
        if len(examples) > 1:
            example = st.selectbox(
                "Example", examples["example"].tolist(), key=f"inspect_example_{run}",
                format_func=lambda e: f"{e}: {examples.set_index('example').loc[e, 'source']}")
        else:
            example = int(examples["example"].iloc[0]) if len(examples) else 0
        show_example(handle, run, int(example))
