"""A small store for the Experts, Specialization and Embeddings AppTests where counts matter:
one expert site (4 experts, top-1) over 20 examples × 10 tokens. `the` occurs 60 times and
goes 54 times to expert 0; `zyx` occurs twice, both times to expert 0 (its lift is the
largest possible, 1 / P(expert 0), but two sightings say little). Tags: `kind` (code/prose,
per example), `token_type` (per token), `source` (one value per example: provenance) and
`doc` (another per-example id, not on the deny list)."""

from __future__ import annotations

import pytest

from tests.report_store import routes_columns, write_runs_row, write_table

SITE = "model.layers.0.mlp.gate"


def skewed_run(path, run: str = "skewed") -> None:
    from routeviz.store import init_store

    init_store(path)
    rows, tokens, tags = [], [], []
    the_seen = 0
    for ex in range(20):
        kind = "code" if ex % 2 == 0 else "prose"
        tags += [(ex, -1, "kind", kind), (ex, -1, "source", f"file-{ex}.txt"),
                 (ex, -1, "doc", f"d{ex:03d}")]
        for t in range(10):
            if t < 3:
                word = "the"
                expert = 1 if the_seen % 10 == 9 else 0  # 54 of 60 to expert 0
                the_seen += 1
            elif t == 3 and ex < 2:
                word, expert = "zyx", 0
            else:
                word, expert = f"w{(ex * 10 + t) % 17}", 1 + (ex + t) % 3
            tokens.append((ex, t, word))
            tags.append((ex, t, "token_type", "article" if word == "the" else "word"))
            rows.append((ex, t, 0, SITE, "expert", expert, 0, 0.9))
    write_runs_row(path, run, 20, {"model": "toy-text", "modality": "text",
                                   "routing": ["expert"], "n_layers": 1, "n_experts": 4,
                                   "top_k": 1}, "toy-text")
    write_table(path, "routes", run, routes_columns(rows))
    write_table(path, "tokens", run, dict(zip(["example", "token", "text"], zip(*tokens))))
    write_table(path, "tags", run, dict(zip(["example", "token", "name", "value"], zip(*tags))))
    write_table(path, "examples", run, {
        "example": list(range(20)), "modality": ["text"] * 20,
        "source": [f"file-{ex}.txt" for ex in range(20)], "n_tokens": [10] * 20})


@pytest.fixture(scope="module")
def skewed_store(tmp_path_factory):
    """A store holding skewed_run's run, `skewed`."""
    path = tmp_path_factory.mktemp("skewed") / "store"
    skewed_run(path)
    return path
