"""Expand one finished batch (host arrays) into table rows; runs on the writer thread."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pyarrow as pa

from routeviz.capture.offsets import token_offsets
from routeviz.store import schema
from routeviz.store.writer import RouteColumns

KIND_CODE = {k: i for i, k in enumerate(schema.KINDS)}


def token_positions(mask: np.ndarray | None, b: int, s: int):
    """Per [b, s] tensor position: the token index within its example, or -1 at padding.

    With a mask, the n-th non-padding position of an example is token n (so left and right
    padding give the same token ids); without one, position i is token i.
    """
    if mask is None:
        return np.broadcast_to(np.arange(s, dtype=np.int32), (b, s))
    if mask.shape[1] < s:  # positions beyond the mask (e.g. a prepended CLS) are kept as-is
        return np.broadcast_to(np.arange(s, dtype=np.int32), (b, s))
    mask = mask[:, :s] != 0
    ids = np.cumsum(mask, axis=1, dtype=np.int32) - 1
    return np.where(mask, ids, -1).astype(np.int32)


def expand_batch(batch, packed, site_codes, with_logits, hidden=None):
    """hidden: {event index: host float16 array} of the sites' inputs, or None."""
    host_events, mask = packed
    examples = np.asarray(batch.examples, dtype=np.int64)
    b = len(examples)
    if not with_logits and hidden is None:
        routes = uniform_routes(batch.events, host_events, site_codes, mask, examples)
        if routes is not None:
            return routes, side_tables(batch, mask)
    cols = {n: [] for n in RouteColumns.COLUMNS}
    bounds = [0]  # row offsets between events: each event is one (layer, site) segment
    logit_rows, state_rows = [], []
    for index, ((site, event), (choice, weight, token_index, logits), code) in enumerate(zip(
            batch.events, host_events, site_codes)):
        layer = site.layer if event.layer is None else int(event.layer)
        if event.per_example:
            choice = choice.reshape(b, -1)
            weight = weight.reshape(b, -1)
            token = np.full(choice.shape, -1, dtype=np.int32)
            example = np.broadcast_to(examples[:, None], choice.shape)
            if hidden is not None and index in hidden:
                state_rows.append(hidden_rows(hidden[index], choice[:, None], token[:, :1],
                                              examples, layer, _site_label(site, event),
                                              per_example=True))
        else:
            if choice.ndim == 1:
                choice, weight = choice[:, None], weight[:, None]
            if choice.ndim == 2:  # [t, k] with t = b * s
                t = choice.shape[0]
                if t % b:
                    warnings.warn(f"routeviz: {site.name}: {t} rows do not split into {b} "
                                  "examples; event not recorded")
                    continue
                choice = choice.reshape(b, t // b, -1)
                weight = weight.reshape(b, t // b, -1)
            s, k = choice.shape[1], choice.shape[2]
            if token_index is not None:
                token_index = token_index.reshape(b, s)
                full = token_positions(mask, b, int(token_index.max(initial=0)) + 1)
                pos = np.take_along_axis(full, np.clip(token_index, 0, None), axis=1)
                pos = np.where(token_index < 0, -1, pos)
            else:
                pos = token_positions(mask, b, s)
            token = np.broadcast_to(pos[:, :, None], choice.shape)
            example = np.broadcast_to(examples[:, None, None], choice.shape)
            if with_logits and logits is not None:
                logit_rows.append(_logit_rows(logits.reshape(b, s, -1), pos, examples, layer,
                                              site, event))
            if hidden is not None and index in hidden:
                state_rows.append(hidden_rows(hidden[index], choice, pos, examples, layer,
                                              _site_label(site, event)))
        rank = np.broadcast_to(np.arange(choice.shape[-1], dtype=np.int8), choice.shape)
        keep = (choice != schema.SKIP) & (token >= -1)
        if not event.per_example:
            keep &= token >= 0
        n = int(keep.sum())
        cols["example"].append(example[keep])
        cols["token"].append(token[keep].astype(np.int32))
        cols["layer"].append(np.full(n, layer, dtype=np.int16))
        cols["site"].append(np.full(n, code, dtype=np.int32))
        cols["kind"].append(np.full(n, KIND_CODE[event.kind], dtype=np.int8))
        cols["choice"].append(choice[keep].astype(np.int32))
        cols["rank"].append(rank[keep])
        cols["weight"].append(weight[keep].astype(np.float32))
        bounds.append(bounds[-1] + n)
    routes = None
    if cols["example"]:
        routes = RouteColumns(segments=list(itertools.pairwise(bounds)),
                              **{n: np.concatenate(v) for n, v in cols.items()})
    tables = side_tables(batch, mask)
    if logit_rows:
        tables["logits"] = pa.concat_tables(logit_rows)
    state_rows = [t for t in state_rows if t is not None]
    if state_rows:
        tables["embeddings"] = pa.concat_tables(state_rows)
    return routes, tables


def uniform_routes(events, host_events, site_codes, mask, examples) -> RouteColumns | None:
    """The route rows of a batch whose events all have one shape, one row per token (the
    common case: every layer a top-k router over the same tokens), built for all events at
    once: the same rows, in the same order, as `expand_batch`'s loop, which spends ~0.1 ms
    of numpy calls per event on a batch of one input. None where an event is per example,
    carries token indices, or differs in shape (the loop handles those)."""
    b = len(examples)
    if not events:
        return None
    choices, weights = [], []
    for (_, event), (choice, weight, token_index, _) in zip(events, host_events):
        if event.per_example or token_index is not None or choice.ndim not in (1, 2, 3):
            return None
        if choice.ndim < 3:
            t = choice.shape[0]
            if t % b:
                return None  # the loop warns
            if weight.size != choice.size:
                return None
            choice = choice.reshape(b, t // b, -1)  # [b, s, k]
            weight = weight.reshape(choice.shape)
        elif weight.shape != choice.shape:
            return None
        choices.append(choice)
        weights.append(weight)
    shape = choices[0].shape
    if shape[0] != b or any(c.shape != shape for c in choices):
        return None
    _, s, k = shape
    choice = np.stack(choices)  # [events, b, s, k]
    weight = np.stack(weights)
    pos = token_positions(mask, b, s)  # [b, s]
    keep = (choice != schema.SKIP) & (pos >= 0)[None, :, :, None]
    counts = keep.reshape(len(events), -1).sum(axis=1)
    full = (len(events), b, s, k)
    example = np.broadcast_to(examples[None, :, None, None], full)
    token = np.broadcast_to(pos[None, :, :, None], full)
    rank = np.broadcast_to(np.arange(k, dtype=np.int8), full)
    if bool(counts.sum() == keep.size):  # every entry kept: no selection
        cols = {"example": example.reshape(-1), "token": token.reshape(-1),
                "choice": choice.reshape(-1), "rank": rank.reshape(-1),
                "weight": weight.reshape(-1)}
    else:
        cols = {"example": example[keep], "token": token[keep], "choice": choice[keep],
                "rank": rank[keep], "weight": weight[keep]}
    layers = [site.layer if event.layer is None else int(event.layer) for site, event in events]
    kinds = [KIND_CODE[event.kind] for _, event in events]
    bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
    return RouteColumns(
        segments=list(itertools.pairwise(bounds)),
        example=cols["example"].astype(np.int64),
        token=cols["token"].astype(np.int32),
        layer=np.repeat(np.asarray(layers, dtype=np.int16), counts),
        site=np.repeat(np.asarray(site_codes, dtype=np.int32), counts),
        kind=np.repeat(np.asarray(kinds, dtype=np.int8), counts),
        choice=cols["choice"].astype(np.int32),
        rank=cols["rank"].astype(np.int8),
        weight=cols["weight"].astype(np.float32),
    )


def _spans(meta: dict, strings) -> list:
    """Each token's (start, end) in the example's full text: the runner's offsets where it
    gives them (a (0, 0) or empty span: not in the text), else found by routeviz.contexts."""
    given, full = meta.get("offsets"), meta.get("text")
    if given is not None and len(given) == len(strings):
        return [(int(a), int(b)) if b > a else None for a, b in given]
    return token_offsets(full, strings) if isinstance(full, str) else [None] * len(strings)


def _site_label(site, event) -> str:
    return f"{site.name}.{event.site}" if event.site else site.name


def hidden_rows(state, choice, pos, examples, layer, name,
                per_example: bool = False) -> pa.Table | None:
    """Rows of the embeddings table: the site's input for every token it decided about.

    state [..., d]: one row per router row ([b*s, d] or [b, s, d]), the same after one leading
    class-token row per example ([b, 1 + s, d], ViT pruners), or one per decided row only
    (e.g. a router fed the running tokens only); choice [b, s, k]; pos [b, s] token ids
    (-1: padding; per_example: s = 1 and the row is the example's, token -1).
    """
    b, s = pos.shape
    d = state.shape[-1] if state.ndim else 1
    rows = state.reshape(-1, d)  # [n, d]
    decided = (choice != schema.SKIP).any(-1)  # [b, s]
    if len(rows) == b * s:
        grid = rows.reshape(b, s, d)
    elif len(rows) == b * (s + 1):  # a leading class token per example ([b, 1 + n, d])
        grid = rows.reshape(b, s + 1, d)[:, 1:]
    elif len(rows) == int(decided.sum()):
        grid = np.zeros((b, s, d), dtype=rows.dtype)
        grid[decided] = rows
    else:  # one message per site (warnings shows a repeated text once)
        warnings.warn(f"routeviz: {name}: its input does not line up with its decisions "
                      "(one row per token, or per decided token); its hidden states are not "
                      "recorded")
        return None
    keep = decided if per_example else decided & (pos >= 0)
    values = np.ascontiguousarray(grid[keep], dtype=np.float16)  # [n, d]
    n = len(values)
    offsets = pa.array(np.arange(0, n * d + 1, d, dtype=np.int32))
    return pa.table({
        "example": pa.array(np.broadcast_to(examples[:, None], pos.shape)[keep], pa.int64()),
        "token": pa.array(pos[keep], pa.int32()),
        "layer": pa.array(np.full(n, layer, np.int16)),
        "site": pa.array([name] * n, pa.string()),
        "vector": pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), pa.float16())),
    }, schema=schema.EMBEDDINGS)


def _logit_rows(logits, pos, examples, layer, site, event):
    keep = pos >= 0
    values = logits[keep].astype(np.float16)
    flat = pa.array(values.reshape(-1), pa.float16())
    offsets = pa.array(np.arange(0, values.size + 1, values.shape[-1], dtype=np.int32))
    name = f"{site.name}.{event.site}" if event.site else site.name
    return pa.table(
        {
            "example": pa.array(np.broadcast_to(examples[:, None], pos.shape)[keep], pa.int64()),
            "token": pa.array(pos[keep], pa.int32()),
            "layer": pa.array(np.full(int(keep.sum()), layer, np.int16)),
            "site": pa.array([name] * int(keep.sum()), pa.string()),
            "values": pa.ListArray.from_arrays(offsets, flat),
        },
        schema=schema.LOGITS,
    )


def side_tables(batch, mask) -> dict[str, pa.Table]:
    """Rows of the examples, tokens and tags tables for one batch."""
    examples = batch.examples
    tokens = batch.tokens
    meta = batch.meta or [{} for _ in examples]
    preds = batch.predictions or [None] * len(examples)
    n_tokens = []
    for i in range(len(examples)):
        if tokens is not None:
            n_tokens.append(len(tokens[i]))
        elif mask is not None:
            n_tokens.append(int((mask[i] != 0).sum()))
        else:
            n_tokens.append(None)
    ex_cols = {f.name: [] for f in schema.EXAMPLES}
    for i, example in enumerate(examples):
        m = meta[i] or {}
        ex_cols["example"].append(example)
        ex_cols["modality"].append(m.get("modality", "image" if m.get("image") else "text"))
        ex_cols["source"].append(None if m.get("source") is None else str(m["source"])[:200])
        ex_cols["label"].append(None if m.get("label") is None else str(m["label"]))
        ex_cols["prediction"].append(preds[i] if m.get("prediction") is None else str(m["prediction"]))
        ex_cols["n_tokens"].append(n_tokens[i])
        for key in ("image", "grid_h", "grid_w", "patch", "text"):
            ex_cols[key].append(m.get(key))
    tables = {"examples": pa.table(ex_cols, schema=schema.EXAMPLES)}
    if tokens is not None:
        t_ex, t_tok, t_text, t_start, t_end = [], [], [], [], []
        for example, strings, m in zip(examples, tokens, meta):
            t_ex.extend([example] * len(strings))
            t_tok.extend(range(len(strings)))
            t_text.extend(str(s) for s in strings)
            spans = _spans(m or {}, strings)
            t_start.extend(None if s is None else s[0] for s in spans)
            t_end.extend(None if s is None else s[1] for s in spans)
        tables["tokens"] = pa.table({"example": t_ex, "token": t_tok, "text": t_text,
                                     "char_start": t_start, "char_end": t_end},
                                    schema=schema.TOKENS)
    if batch.tags is not None:
        g_ex, g_tok, g_name, g_val = [], [], [], []
        for example, tags in zip(examples, batch.tags):
            for name, value in (tags or {}).items():
                if isinstance(value, (list, tuple, np.ndarray)):
                    for token, v in enumerate(value):
                        if v is not None:
                            g_ex.append(example)
                            g_tok.append(token)
                            g_name.append(str(name))
                            g_val.append(str(v))
                elif value is not None:
                    g_ex.append(example)
                    g_tok.append(-1)
                    g_name.append(str(name))
                    g_val.append(str(value))
        tables["tags"] = pa.table({"example": g_ex, "token": g_tok, "name": g_name,
                                   "value": g_val}, schema=schema.TAGS)
    return tables
