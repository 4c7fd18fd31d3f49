"""Stores with known answers for expert cards, written as real Parquet parts
(tests.report_store.write_table). 48 examples × 10 tokens of words from VOCAB; per token a
`token_type` tag (a, b, c or d, drawn at random), per example `kind` (code/prose,
alternating) and `source` (provenance). Two expert sites, 4 experts each, top-1:

  copy-tag    site A sends a token to the expert of its token_type (a→0, b→1, c→2, d→3);
              site B sends it to (A's expert + 1) % 4, so expert e at A feeds e+1 at B.
  random      both sites choose uniformly at random (seeded): no label is true.
  copy-token  both sites send a token to WORD_EXPERT[its word] (two words per expert),
              blind to every tag.
  series      three steps of one series (`train`): step 0 random, steps 1 and 2 copy the
              tag, step 2 with expert ids shifted by one (value a → expert 1 …), so its
              expert 1 was expert 0 at step 1 and its label formed at step 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.report_store import routes_columns, write_runs_row, write_table

SITE_A = "model.layers.0.mlp.gate"
SITE_B = "model.layers.1.mlp.gate"
VALUES = ["a", "b", "c", "d"]
VOCAB = ["if", "for", "the", "cat", "x", "<b>bold</b>", "yield", "dog"]
WORD_EXPERT = {w: i // 2 for i, w in enumerate(VOCAB)}  # two words per expert
N_EXAMPLES, N_TOKENS = 48, 10


def corpus(seed: int = 0):
    """words[example][token] and token_type[example][token], seeded."""
    rng = np.random.default_rng(seed)
    words = rng.choice(VOCAB, size=(N_EXAMPLES, N_TOKENS))
    types = rng.integers(0, 4, size=(N_EXAMPLES, N_TOKENS))
    return words, types


def write_cards_run(path, run: str, router: str, config: dict | None = None,
                    shift: int = 0) -> None:
    from routeviz.store import init_store

    init_store(path)
    words, types = corpus()
    rng = np.random.default_rng(1 if router == "random" else 2)
    rows, tokens, tags, examples = [], [], [], []
    for ex in range(N_EXAMPLES):
        tags += [(ex, -1, "kind", "code" if ex % 2 == 0 else "prose"),
                 (ex, -1, "source", f"file-{ex}.py")]
        examples.append((ex, "text", f"file-{ex}.py", " ".join(words[ex]), N_TOKENS))
        for t in range(N_TOKENS):
            word, value = str(words[ex, t]), int(types[ex, t])
            tokens.append((ex, t, word))
            tags.append((ex, t, "token_type", VALUES[value]))
            if router == "copy-tag":
                a = (value + shift) % 4
                b = (a + 1) % 4
            elif router == "copy-token":
                a = b = WORD_EXPERT[word]
            else:
                a, b = int(rng.integers(4)), int(rng.integers(4))
            rows.append((ex, t, 0, SITE_A, "expert", a, 0, 0.9))
            rows.append((ex, t, 1, SITE_B, "expert", b, 0, 0.8))
    write_runs_row(path, run, N_EXAMPLES, {"model": "toy-text", "modality": "text",
                                           "routing": ["expert"], "n_layers": 2,
                                           "n_experts": 4, "top_k": 1, **(config or {})},
                   "toy-text")
    write_table(path, "routes", run, routes_columns(rows))
    write_table(path, "tokens", run, dict(zip(["example", "token", "text"], zip(*tokens))))
    write_table(path, "tags", run, dict(zip(["example", "token", "name", "value"], zip(*tags))))
    write_table(path, "examples", run, dict(zip(
        ["example", "modality", "source", "text", "n_tokens"], zip(*examples))))


def write_series(path) -> None:
    for step, router, shift in ((0, "random", 0), (1, "copy-tag", 0), (2, "copy-tag", 1)):
        write_cards_run(path, f"train-{step}", router, {"series": "train", "step": step},
                        shift=shift)


@pytest.fixture(scope="module")
def cards_store(tmp_path_factory):
    """One store with runs copy-tag, random, copy-token and the series train-0..2."""
    path = tmp_path_factory.mktemp("cards") / "store"
    for router in ("copy-tag", "random", "copy-token"):
        write_cards_run(path, router, router)
    write_series(path)
    return path
