"""Build small stores with known contents by writing real Parquet parts (routeviz.store.write_part)."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa

from routeviz.store import init_store, open_store, schema, write_part


def write_run(path, run, routes, *, tags=(), tokens=None, config=None, logits=(), model="synthetic"):
    """routes: (example, token, layer, site, kind, choice, rank, weight) tuples.
    tags: (example, token, name, value); tokens: {example: [text, ...]};
    logits: (example, token, layer, site, [values])."""
    init_store(path)
    now = dt.datetime.now(dt.timezone.utc)
    examples = sorted({r[0] for r in routes} | {t[0] for t in tags} | set(tokens or {}))
    write_part(path, "runs", run, pa.table(
        {"model": [model], "created": [now], "finished": [now], "routeviz_version": ["test"],
         "n_examples": [len(examples)], "config": [json.dumps(config or {})]},
        schema=schema.RUNS))
    cols = list(zip(*routes)) if routes else [[]] * 8
    names = ["example", "token", "layer", "site", "kind", "choice", "rank", "weight"]
    arrays = {n: list(c) for n, c in zip(names, cols)}
    arrays["weight"] = [float("nan") if w is None else w for w in arrays["weight"]]
    table = pa.table({n: pa.array(arrays[n], type=(schema.ROUTES.field(n).type.value_type
                                                   if pa.types.is_dictionary(schema.ROUTES.field(n).type)
                                                   else schema.ROUTES.field(n).type))
                      for n in names})
    write_part(path, "routes", run, table.cast(schema.ROUTES))
    if tags:
        ex, tok, name, value = zip(*tags)
        write_part(path, "tags", run, pa.table({"example": list(ex), "token": list(tok),
                                                "name": list(name), "value": list(value)},
                                               schema=schema.TAGS))
    if tokens:
        rows = [(e, i, s) for e, texts in tokens.items() for i, s in enumerate(texts)]
        ex, tok, text = zip(*rows)
        write_part(path, "tokens", run, pa.table({"example": list(ex), "token": list(tok),
                                                  "text": list(text), "char_start": [None] * len(ex),
                                                  "char_end": [None] * len(ex)}, schema=schema.TOKENS))
    if logits:
        ex, tok, layer, site, values = zip(*logits)
        write_part(path, "logits", run, pa.table(
            {"example": list(ex), "token": list(tok), "layer": list(layer), "site": list(site),
             "values": pa.array([list(v) for v in values], pa.list_(pa.float32()))
             .cast(pa.list_(pa.float16()))}, schema=schema.LOGITS))
    return open_store(path)


def expert_routes(site, layer, assignments, weights=None):
    """assignments: {(example, token): [expert at rank 0, expert at rank 1, ...]}."""
    rows = []
    for (example, token), experts in assignments.items():
        for rank, e in enumerate(experts):
            w = weights[(example, token)][rank] if weights else 1.0 / len(experts)
            rows.append((example, token, layer, site, "expert", e, rank, w))
    return rows


# 10 tokens in one example; site a (layer 0) and site b (layer 1), 4 experts, top-1
# a: tokens 0-5 -> expert 0, 6-8 -> expert 1, token 9 dropped (no row); expert 2, 3 idle
# b: tokens 0-9 -> expert (token % 2) + 2
A = {(0, t): [0 if t < 6 else 1] for t in range(9)}
B = {(0, t): [t % 2 + 2] for t in range(10)}
TEXT = ["def", "x", "(", "y", ")", ":", "return", "x", "+", "y"]
TAGS = [(0, t, "kind", "kw" if TEXT[t] in ("def", "return") else "other") for t in range(10)]
TAGS += [(0, -1, "lang", "py")]


def known_run(path):
    """Run 'r' over A and B, with prune/merge/exit rows on every token (tests of the metrics)."""
    routes = expert_routes("a", 0, A) + expert_routes("b", 1, B)
    routes += [(0, t, 1, "prune", "keep", int(t % 3 != 0), 0, 0.5) for t in range(10)]
    routes += [(0, 4, 1, "merge", "merge", 3, 0, 0.9), (0, 5, 1, "merge", "merge", 3, 0, 0.8),
               (0, 7, 1, "merge", "merge", 6, 0, 0.7)]
    routes += [(0, t, 1 if t < 8 else 3, "exit", "exit", 1 if t < 8 else 3, 0, 0.9)
               for t in range(10)]
    return write_run(path, "r", routes, tags=TAGS, tokens={0: TEXT},
                     config={"n_experts": 4, "n_layers": 4})
