"""The model's own next-token predictions after every token of a text example, read from
the `outputs` table (per token, the log-probabilities of the next-token distribution; see
`routeviz.capture.outputs`): what Inspect shows as the model's output of a text, and what
the What-if panel compares between a plain and an intervened run."""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["token", "text", "next_token", "next_id", "probability"]

OUTPUTS = ("SELECT token, logprobs FROM outputs WHERE run = $run AND example = $example "
           "AND token >= 0 ORDER BY token")


def next_tokens(store, run: str, example: int, decode=None) -> pd.DataFrame:
    """Per token of the example: the text, the most likely next token (`decode(id)` when
    given, else `#id`), its id and probability. Empty when the run recorded no per-token
    outputs (an image, an encoder without a head, a run past the output budget)."""
    try:
        rows = store.engine.query(OUTPUTS, {"run": run, "example": int(example)})
    except Exception:  # noqa: BLE001 — a store written before the outputs table existed
        rows = pd.DataFrame()
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    logprobs = np.stack([np.asarray(v, dtype=np.float64) for v in rows.logprobs])  # [t, v]
    best = logprobs.argmax(-1)  # [t]
    tokens = store.example_tokens(run, int(example))
    token = rows.token.astype(int).to_numpy()
    return pd.DataFrame({
        "token": token,
        "text": [tokens[t] if 0 <= t < len(tokens) else "" for t in token],
        "next_token": [_decoded(decode, int(i)) for i in best],
        "next_id": best.astype(int),
        "probability": np.exp(logprobs[np.arange(len(best)), best]),
    })


def _decoded(decode, token_id: int) -> str:
    if decode is None:
        return f"#{token_id}"
    try:
        return str(decode(token_id))
    except Exception:  # noqa: BLE001 — an id the tokenizer cannot decode: show the id
        return f"#{token_id}"


def decoder_of(runner):
    """`id -> text` from a runner's tokenizer (text-moe, transformers), else None."""
    tokenizer = getattr(runner, "tokenizer", None)
    decode = getattr(tokenizer, "decode", None)
    return (lambda token_id: decode([token_id])) if callable(decode) else None
