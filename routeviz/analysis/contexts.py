"""Where each token sits in its example's original text, and readable contexts around it.

A tokenizer's pieces are not the text: byte-level BPE marks spaces (`Ġ`), SentencePiece
`▁`, WordPiece continues words with `##` and may lowercase; joining pieces with spaces
reads badly. routeviz keeps a text example's full text (`examples.text`) and each token's
character span in it (`tokens.char_start`, `tokens.char_end`; NULL where a token is not in
the text, e.g. `[CLS]`), found when the batch is written by `token_offsets`: each piece,
cleaned of those markers, is looked up in order from where the previous one ended. A
gallery context is then a slice of the original text: `left + text + right` is exactly
`text[a:b]` for some a ≤ b, with the token as the tokenizer's decode would show it.
Stores written without the spans get them computed the same way when read.
"""

from __future__ import annotations

import numpy as np

from routeviz.capture.offsets import token_offsets

CONTEXT_CHARS = 60  # characters each side when the neighbouring tokens have no span


def context(text: str, spans: list, token: int, window: int = 4) -> tuple[str, str, str]:
    """(left, token, right) around `token`: slices of `text` reaching `window` tokens each
    side (tokens with a span; else CONTEXT_CHARS characters). Leading whitespace of the
    token goes to `left`, so the highlight starts at its first visible character."""
    start, end = spans[token]
    visible = len(text[start:end]) - len(text[start:end].lstrip())
    start = start + visible if start + visible < end else start
    before = [s for s in spans[max(0, token - window):token] if s is not None]
    after = [s for s in spans[token + 1:token + 1 + window] if s is not None]
    left_at = before[0][0] if before else max(0, start - CONTEXT_CHARS)
    right_at = after[-1][1] if after else min(len(text), end + CONTEXT_CHARS)
    left_at, right_at = min(left_at, start), max(right_at, end)
    return text[left_at:start], text[start:end], text[end:right_at]


def context_windows(store, run: str, examples: list):
    """A function (example, token, window) -> (left, token, right) over `examples` of `run`:
    slices of examples.text (or of the source, when that is the text), by the stored spans
    or ones found now; a store without the text joins the neighbouring tokens with spaces."""
    from routeviz.metrics import _common as common

    keys = {"run": run, "examples": list(examples) or [-1]}
    tokens = common.df(store, "SELECT example, token, text, char_start, char_end FROM tokens "
                       "WHERE run = $run AND list_contains($examples, example) "
                       "ORDER BY example, token", keys)
    info = common.df(store, "SELECT example, source, text FROM examples WHERE run = $run "
                     "AND list_contains($examples, example)", keys)
    sources = {int(e): s for e, s in zip(info.example, info.source)}
    texts = {int(e): t for e, t in zip(info.example, info.text) if isinstance(t, str)}
    # one slice per example of plain arrays (a pandas group per example cost ~1 ms each:
    # most of Experts' first visit to a 1,000-example run went into these galleries)
    example_ids = tokens.example.to_numpy(dtype="int64")
    token_ids = tokens.token.to_numpy(dtype="int64")
    pieces = [str(s) for s in tokens.text.tolist()]
    starts = tokens.char_start.to_numpy(dtype="float64", na_value=np.nan)
    ends = tokens.char_end.to_numpy(dtype="float64", na_value=np.nan)
    bounds = np.flatnonzero(np.diff(example_ids)) + 1
    per_example = {}
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(example_ids)]):
        if a == b:
            continue
        example = int(example_ids[a])
        strings = pieces[a:b]
        full = texts.get(example)
        if full is not None and not np.isnan(starts[a:b]).all():
            spans = [None if np.isnan(s) or np.isnan(e) else (int(s), int(e))
                     for s, e in zip(starts[a:b], ends[a:b])]
        else:
            full = full if full is not None else sources.get(example)
            spans = token_offsets(full, strings) if isinstance(full, str) else None
        per_example[example] = ({int(t): i for i, t in enumerate(token_ids[a:b])}, strings,
                                full, spans)

    def windows(example: int, token: int, window: int = 4) -> tuple[str, str, str]:
        if token < 0 or example not in per_example:
            return "", str(sources.get(example) or f"example {example}"), ""
        where, strings, full, spans = per_example[example]
        i = where.get(token)
        if i is None:
            return "", "", ""
        if spans is not None and spans[i] is not None:
            return context(full, spans, i, window)
        if spans is not None:  # a token not in the text ([CLS]): itself, between slices
            before = [s for s in spans[max(0, i - window):i] if s is not None]
            after = [s for s in spans[i + 1:i + 1 + window] if s is not None]
            return (full[before[0][0]:before[-1][1]] if before else "", strings[i],
                    full[after[0][0]:after[-1][1]] if after else "")
        left = " ".join(strings[max(0, i - window):i])
        return left, strings[i], " ".join(strings[i + 1:i + 1 + window])

    return windows
