"""The model's output of one example on Inspect: its own line (`examples.prediction`: for a
text, the prediction after the last token), and for a text the prediction after every
token, read from the `outputs` table (`routeviz.analysis.predictions`), decoded with the
model's tokenizer when asked (on by default when the run's model is loaded in this
process already: viewing a stored run does not load a model for this alone)."""

from __future__ import annotations

import streamlit as st

from app_pages.common import LOADED_MODELS, cached, load_runner
from routeviz.analysis.predictions import decoder_of, next_tokens
from routeviz.figures import data

MAX_ROWS = 2000  # rows of the per-token table at most


def _source(config: dict) -> str | None:
    from routeviz.interventions.whatif import model_source

    try:
        return model_source(config)
    except Exception:  # noqa: BLE001 — an imported run: no model
        return None


def _decoder(config: dict):
    source = _source(config)
    try:
        return None if source is None else decoder_of(load_runner(source))
    except Exception:  # noqa: BLE001 — a model that no longer loads (a moved checkpoint): ids
        return None


def _next_tokens(store, run: str, example: int):
    return next_tokens(store, run, example)


next_tokens_of = cached(_next_tokens)  # per generation of the run, as the rest of the page


def show_output(handle, run: str, example: int, info: dict, config: dict) -> None:
    """The output line, the per-token predictions of a text, and the label."""
    st.subheader("Model output")
    table = next_tokens_of(handle, run, int(example))
    if len(table):
        if "inspect_decode" not in st.session_state:  # on when the model is loaded already
            st.session_state["inspect_decode"] = _source(config) in LOADED_MODELS
        decode = _decoder(config) if st.toggle(
            "Predicted tokens as text", key="inspect_decode",
            help="Decode the predicted ids with the model's tokenizer (loads the model once); "
                 "off: token ids.") else None
        if decode is not None:
            table = table.assign(next_token=[decode(int(i)) for i in table.next_id])
        st.caption("The model's most likely next token after each token, and its "
                   "probability; the line below it is the one after the last token.")
        if len(table) > MAX_ROWS:
            st.caption(f"Showing the first {MAX_ROWS:,} of {len(table):,} tokens.")
        shown = table.head(MAX_ROWS)
        shown = shown.assign(text=[data.show_token(t) for t in shown.text],
                             next_token=[data.show_token(t) for t in shown.next_token])
        st.dataframe(shown.drop(columns="next_id"), hide_index=True, key="inspect_predictions",
                     width="stretch", column_config={
                         "probability": st.column_config.NumberColumn(format="%.2f")})
    prediction = info.get("prediction")
    if prediction:
        st.code(str(prediction), language=None)
    else:
        st.caption("The model gave no output for this example.")
    if info.get("label"):
        st.caption(f"Label: {info['label']}")
