"""The model's output of one example on Inspect: its own line (`examples.prediction`: for a
text, the prediction after the last token), and for a text the prediction after every
token, read from the `outputs` table (`routeviz.analysis.predictions`) and decoded with the
model's tokenizer when the model loads (token ids otherwise)."""

from __future__ import annotations

import streamlit as st

from app_pages.common import load_runner, query
from routeviz.analysis.predictions import decoder_of, next_tokens
from routeviz.figures import data

MAX_ROWS = 2000  # rows of the per-token table at most


def _decoder(config: dict):
    from routeviz.interventions.whatif import model_source

    try:
        return decoder_of(load_runner(model_source(config)))
    except Exception:  # noqa: BLE001 — no model to load (an import, a moved checkpoint): ids
        return None


def show_output(handle, run: str, example: int, info: dict, config: dict) -> None:
    """The output line, the per-token predictions of a text, and the label."""
    st.subheader("Model output")
    table = query(handle, next_tokens, run, int(example))
    if len(table):
        decode = _decoder(config)
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
