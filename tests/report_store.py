"""Stores for the report tests, written as real Parquet parts with routeviz.store.write_part:
a text run (expert, keep, exit per token), an image run (patches with expert, keep, merge
and a per-example exit) and a DAE-Syn-like run (per-example experts, 4 sites × 8, attribute
tags), each with hostile strings in token text, tag values and file names."""

from __future__ import annotations

import datetime as dt
import io
import json

import numpy as np
import pyarrow as pa

from routeviz.store import init_store, open_store, schema, write_part

HOSTILE_TOKEN = "</script><script>window.__pwned=1</script>"
HOSTILE_TAG = "<img src=x onerror=\"window.__pwned=2\">"
HOSTILE_SOURCE = "../../evil'\"<b>name</b>.txt"


def write_table(path, table_name: str, run: str, columns: dict) -> None:
    """Write one part with the table's full schema; columns not given are all null."""
    arrow_schema = schema.TABLES[table_name]
    n = len(next(iter(columns.values())))
    arrays = []
    for f in arrow_schema:
        value_type = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        data = columns.get(f.name)
        array = pa.nulls(n, value_type) if data is None else pa.array(data, type=value_type)
        arrays.append(array.cast(f.type))
    write_part(path, table_name, run, pa.Table.from_arrays(arrays, schema=arrow_schema))


def write_runs_row(path, run: str, n_examples: int, config: dict, model: str) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    write_table(path, "runs", run, {"model": [model], "created": [now], "finished": [now],
                                    "routeviz_version": ["test"], "n_examples": [n_examples],
                                    "config": [json.dumps(config)]})


def routes_columns(rows: list[tuple]) -> dict:
    names = ["example", "token", "layer", "site", "kind", "choice", "rank", "weight"]
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def text_run(path, run: str = "text", shift: int = 0) -> None:
    """6 examples × 8 tokens; 2 expert sites (4 experts, top-2), 1 keep site, exits per token.
    Code examples send tokens to experts 0/1, prose to experts 2/3."""
    init_store(path)
    rng = np.random.default_rng(0)
    code = ["def", "f", "(", "x", ")", ":", "return", HOSTILE_TOKEN]
    prose = ["the", "cat", "sat", "on", "a", "mat", "'quote\"", "../../x"]
    tokens, tags, rows, examples = [], [], [], []
    for ex in range(6):
        is_code = ex % 2 == 0
        words = code if is_code else prose
        examples.append((ex, "text", HOSTILE_SOURCE if ex == 0 else f"doc{ex}.txt", None, None, 8))
        tags.append((ex, -1, "kind", "code" if is_code else "prose"))
        for t, word in enumerate(words):
            tokens.append((ex, t, word))
            tags.append((ex, t, "token_type", HOSTILE_TAG if word == HOSTILE_TOKEN else
                         ("punct" if not word.isalnum() else "word")))
            base = 0 if is_code else 2
            for layer, site in ((0, "model.layers.0.mlp.gate"), (2, "model.layers.2.mlp.gate")):
                first = (base + (t % 2) + shift * (t % 3 == 0)) % 4
                rows.append((ex, t, layer, site, "expert", first, 0, 0.7))
                rows.append((ex, t, layer, site, "expert", (first + 1) % 4, 1, 0.3))
            kept = int(t < 6)
            rows.append((ex, t, 1, "model.layers.1.mod", "keep", kept, 0, float(rng.random())))
            exit_layer = 1 if is_code else 3
            rows.append((ex, t, exit_layer, "model.exit", "exit", exit_layer, 0, 0.9))
    write_runs_row(path, run, 6, {"model": "toy-text", "modality": "text",
                                  "routing": ["expert", "keep", "exit"], "n_layers": 4,
                                  "n_experts": 4, "top_k": 2, "inputs": "test texts"}, "toy-text")
    write_table(path, "routes", run, routes_columns(rows))
    write_table(path, "tokens", run, dict(zip(["example", "token", "text"], zip(*tokens))))
    write_table(path, "tags", run, dict(zip(["example", "token", "name", "value"], zip(*tags))))
    write_table(path, "examples", run, dict(zip(
        ["example", "modality", "source", "label", "prediction", "n_tokens"], zip(*examples))))


def png_bytes(rgb: tuple, size: int = 16) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (size, size), rgb)
    for x in range(0, size, 4):  # a visible pattern so crops differ
        image.putpixel((x, x), (255 - rgb[0], 255 - rgb[1], 255 - rgb[2]))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def image_run(path, run: str = "image") -> None:
    """4 images of 16×16 px, a 4×4 patch grid: an expert site (4 experts, top-1; the left
    half of each image goes to experts 0/1, the right half to 2/3), a keep site, a merge site
    and one exit per image."""
    init_store(path)
    colors = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30)]
    rows, tokens, tags, examples = [], [], [], []
    for ex in range(4):
        examples.append((ex, "image", HOSTILE_SOURCE if ex == 0 else f"img{ex}.png",
                         ["red", "green", "blue", "yellow"][ex], png_bytes(colors[ex]), 4, 4, 4))
        tags.append((ex, -1, "color", ["red", "green", "blue", "yellow"][ex]))
        for p in range(16):
            row, col = divmod(p, 4)
            tokens.append((ex, p, f"patch {row},{col}"))
            tags.append((ex, p, "half", "left" if col < 2 else "right"))
            expert = (0 if col < 2 else 2) + (ex % 2)
            rows.append((ex, p, 1, "blocks.1.moe.router", "expert", expert, 0, 0.5 + p / 40))
            rows.append((ex, p, 0, "blocks.0.prune", "keep", int(row > 0), 0, 0.5))
            if row == 0 and col > 0:
                rows.append((ex, p, 0, "blocks.0.merge", "merge", p - 1, 0, 0.8))
        rows.append((ex, -1, 2 + ex % 2, "head.exit", "exit", 2 + ex % 2, 0, 0.95))
    write_runs_row(path, run, 4, {"model": "toy-vit", "modality": "image",
                                  "routing": ["keep", "merge", "expert", "exit"],
                                  "n_layers": 4, "n_experts": 4, "top_k": 1,
                                  "inputs": "dataset:test-glyphs"}, "toy-vit")
    write_table(path, "routes", run, routes_columns(rows))
    write_table(path, "tokens", run, dict(zip(["example", "token", "text"], zip(*tokens))))
    write_table(path, "tags", run, dict(zip(["example", "token", "name", "value"], zip(*tags))))
    write_table(path, "examples", run, dict(zip(
        ["example", "modality", "source", "label", "image", "grid_h", "grid_w", "patch"],
        zip(*examples))))


def dae_syn_run(path, run: str = "dae", n_examples: int = 32) -> None:
    """Per-example routes like DAE-Syn: 4 routers × 8 subnetworks, top-1, with tag-aligned
    routing at router 0 (shape) and random routing elsewhere; tags shape and color."""
    init_store(path)
    rng = np.random.default_rng(1)
    shapes, colors = ["circle", "square", "triangle", HOSTILE_TAG], ["red", "blue"]
    rows, tags, examples = [], [], []
    for ex in range(n_examples):
        shape, color = ex % 4, (ex // 4) % 2
        examples.append((ex, "image", HOSTILE_SOURCE if ex == 0 else f"dae/{ex:04d}.png",
                         shapes[shape],
                         png_bytes((40 * shape, 100, 200 * color)), 1, 1, 16))
        tags += [(ex, -1, "shape", shapes[shape]), (ex, -1, "color", colors[color])]
        for router in range(4):
            expert = shape * 2 + color if router == 0 else int(rng.integers(0, 8))
            rows.append((ex, -1, router, f"routers.{router}", "expert", expert, 0, 1.0))
    write_runs_row(path, run, n_examples, {"model": "dae-syn-test", "modality": "image",
                                           "routing": ["expert"], "n_layers": 4,
                                           "n_experts": 8, "top_k": 1,
                                           "inputs": "dataset:dae-syn"}, "dae-syn-test")
    write_table(path, "routes", run, routes_columns(rows))
    write_table(path, "tags", run, dict(zip(["example", "token", "name", "value"], zip(*tags))))
    write_table(path, "examples", run, dict(zip(
        ["example", "modality", "source", "label", "image", "grid_h", "grid_w", "patch"],
        zip(*examples))))


def all_runs(path):
    text_run(path)
    image_run(path)
    dae_syn_run(path)
    text_run(path, run="text-b", shift=1)
    return open_store(path)


def large_run(path, run: str = "large", n_examples: int = 2000, seq: int = 64,
              n_sites: int = 8, n_experts: int = 16, top_k: int = 1, seed: int = 0) -> int:
    """A synthetic run of n_examples × seq tokens × n_sites × top_k expert rows (2000 × 64 ×
    8 × 1 = 1,024,000 routes by default), tagged by topic (example level, 12 values) and
    token type (token level, 6 values); experts lean on the topic so A_ij has structure.
    Returns the number of route rows."""
    init_store(path)
    rng = np.random.default_rng(seed)
    n_tokens = n_examples * seq
    example = np.repeat(np.arange(n_examples, dtype=np.int64), seq)  # [tokens]
    token = np.tile(np.arange(seq, dtype=np.int32), n_examples)  # [tokens]
    topic = example % 12
    vocab = np.array([f"w{i}" for i in range(500)] + [HOSTILE_TOKEN])
    word = rng.integers(0, len(vocab), n_tokens)
    cols = {k: [] for k in ("example", "token", "layer", "site", "kind", "choice", "rank",
                            "weight")}
    for s in range(n_sites):
        lean = (topic + s) % n_experts
        noise = rng.integers(0, n_experts, n_tokens)
        first = np.where(rng.random(n_tokens) < 0.6, lean, noise)  # [tokens]
        for rank in range(top_k):
            cols["example"].append(example)
            cols["token"].append(token)
            cols["layer"].append(np.full(n_tokens, s, np.int16))
            cols["site"].append(np.full(n_tokens, f"model.layers.{s}.mlp.gate", object))
            cols["kind"].append(np.full(n_tokens, "expert", object))
            cols["choice"].append(((first + rank) % n_experts).astype(np.int32))
            cols["rank"].append(np.full(n_tokens, rank, np.int8))
            cols["weight"].append(rng.random(n_tokens).astype(np.float32))
    routes = {k: np.concatenate(v) for k, v in cols.items()}
    write_runs_row(path, run, n_examples, {"model": "synthetic-large", "modality": "text",
                                           "routing": ["expert"], "n_layers": n_sites,
                                           "n_experts": n_experts, "top_k": top_k},
                   "synthetic-large")
    write_table(path, "routes", run, routes)
    write_table(path, "tokens", run, {"example": example, "token": token, "text": vocab[word]})
    tag_example = np.concatenate([np.arange(n_examples), example])
    tag_token = np.concatenate([np.full(n_examples, -1, np.int32), token])
    names = np.concatenate([np.full(n_examples, "topic", object), np.full(n_tokens, "type", object)])
    values = np.concatenate([np.array([f"topic{t}" for t in range(12)])[np.arange(n_examples) % 12],
                             np.array([f"type{t}" for t in range(6)])[word % 6]])
    write_table(path, "tags", run, {"example": tag_example, "token": tag_token, "name": names,
                                    "value": values})
    write_table(path, "examples", run, {"example": np.arange(n_examples),
                                        "modality": np.full(n_examples, "text", object),
                                        "source": np.array([f"doc{i}.txt" for i in range(n_examples)]),
                                        "n_tokens": np.full(n_examples, seq, np.int32)})
    return len(routes["example"])
