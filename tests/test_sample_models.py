"""The shipped text-moe and glyph-vit samples: load, trace, check every routing kind, train."""

import io
import json

import numpy as np
import pytest
import torch

import routeviz
from routeviz.cli import main
from routeviz.runs.models import load_model
from routeviz.runs.record import record


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    from sample_models.text_data import stdlib_dataset

    runner = load_model("text-moe")
    store = tmp_path_factory.mktemp("text-store")
    items = stdlib_dataset(16)
    result = record(runner, items, store, "text", batch_size=8)
    return runner, routeviz.open_store(store), items, result


@pytest.fixture(scope="module")
def glyph_run(tmp_path_factory):
    from sample_models.glyphs import glyph_dataset

    runner = load_model("glyph-vit")
    store = tmp_path_factory.mktemp("glyph-store")
    items = glyph_dataset(32)
    result = record(runner, items, store, "glyphs", batch_size=16)
    return runner, routeviz.open_store(store), items, result


# --- text-moe ------------------------------------------------------------------------------
def test_text_moe_records_experts_depth_routing_and_one_exit_per_token(text_run):
    runner, store, items, result = text_run
    cfg = runner.cfg
    routes, tokens = store.routes("text"), store.tokens("text")
    assert set(routes.kind) == {"expert", "keep", "exit"}
    assert len(result.predictions) == len(items)
    assert all(p.startswith("next token:") for p in result.predictions)
    n_tokens = len(tokens)
    assert n_tokens == sum(min(len(runner.tokenizer.encode(i.text).ids), cfg.context) for i in items)

    exits = routes[routes.kind == "exit"]
    assert len(exits) == n_tokens and not exits.duplicated(["example", "token"]).any()
    assert (exits.choice == exits.layer).all() and exits.choice.between(0, cfg.n_layers - 1).all()

    keep = routes[routes.kind == "keep"]
    assert set(keep.layer) <= set(cfg.mod_layers) and set(keep.choice) == {0, 1}
    first_mod = keep[keep.layer == min(cfg.mod_layers)]
    per_example = first_mod.groupby("example").choice.agg(["size", "sum"])  # seen, kept
    assert (per_example["sum"] == np.ceil(per_example["size"] * cfg.mod_capacity)).all()

    experts = routes[routes.kind == "expert"]
    assert set(experts["rank"]) == {0, 1} and experts.choice.between(0, cfg.n_experts - 1).all()
    # in a mixture-of-depths block the MoE sees only the tokens the router kept
    mod_layer = min(cfg.mod_layers)
    kept = set(map(tuple, first_mod[first_mod.choice == 1][["example", "token"]].values.tolist()))
    in_block = experts[experts.layer == mod_layer][["example", "token"]].drop_duplicates()
    assert set(map(tuple, in_block.values.tolist())) <= kept


def test_text_moe_exits_early_for_a_fifth_of_heldout_tokens(text_run):
    runner, store, _, _ = text_run
    exits = store.routes("text").query("kind == 'exit'")
    early = (exits.choice < runner.cfg.n_layers - 1).mean()
    assert early >= 0.2, f"only {early:.0%} of tokens exit before the last layer"


def test_text_moe_routes_vary_across_inputs(text_run):
    store = text_run[1]
    routes = store.routes("text")
    top1 = routes[(routes.kind == "expert") & (routes["rank"] == 0) & (routes.layer == 0)]
    per_example = top1.groupby("example").choice.agg(lambda c: np.bincount(c, minlength=8).argmax())
    assert top1.groupby("example").choice.nunique().min() > 1
    exits = routes[routes.kind == "exit"]
    assert exits.choice.nunique() > 1, "every token exited at the same layer"
    assert per_example.size == 16


def test_text_moe_tags_token_types_and_examples(text_run):
    _, store, items, _ = text_run
    tags = store.tags("text")
    types = set(tags[tags.name == "token_type"].value)
    assert {"keyword", "name", "operator", "prose"} <= types
    kinds = tags[(tags.name == "kind") & (tags.token == -1)]
    assert set(kinds.value) == {"code", "prose"}
    assert set(tags[tags.name == "source"].value) == {i.tags["source"] for i in items}


def test_every_expert_of_every_moe_layer_is_used_on_heldout_text(text_run):
    runner, store, _, _ = text_run
    experts = store.routes("text").query("kind == 'expert'")
    for layer, rows in experts.groupby("layer"):
        assert set(rows.choice) == set(range(runner.cfg.n_experts)), f"layer {layer}"


def test_text_moe_config_is_complete(text_run):
    store = text_run[1]
    config = store.config("text")
    assert config["n_layers"] == 4 and config["n_experts"] == 8 and config["top_k"] == 2
    assert config["routing"] == ["expert", "keep", "exit"]


# --- glyph-vit -----------------------------------------------------------------------------
def test_glyph_vit_records_drops_merges_experts_and_image_exits(glyph_run):
    runner, store, items, _ = glyph_run
    cfg = runner.cfg
    routes = store.routes("glyphs")
    assert set(routes.kind) == {"keep", "merge", "expert", "exit"}
    exits = routes[routes.kind == "exit"]
    assert len(exits) == len(items) and (exits.token == -1).all()
    assert (exits.choice == exits.layer).all()
    exit_of = dict(zip(exits.example, exits.choice))

    n_patches = (cfg.image_size // cfg.patch) ** 2
    first_keep = routes[(routes.kind == "keep") & (routes.layer == 0)]
    assert (first_keep.groupby("example").size() == n_patches).all()
    assert (first_keep.groupby("example").choice.sum() == round(n_patches * 0.75)).all()
    dropped = first_keep[first_keep.choice == 0]
    later = routes[(routes.layer > 0) & (routes.token >= 0)]
    pairs = set(map(tuple, later[["example", "token"]].values.tolist()))
    assert not pairs & set(map(tuple, dropped[["example", "token"]].values.tolist()))

    merges = routes[routes.kind == "merge"]
    for example, rows in merges.groupby("example"):
        assert exit_of[example] >= 1  # merges happen after block 1
        assert len(rows) == 6 and not set(rows.token) & set(rows.choice)
    # images that exited record nothing deeper than their exit layer
    deepest = routes[routes.token >= 0].groupby("example").layer.max()
    assert all(deepest[e] <= exit_of[e] for e in deepest.index)


def test_glyph_vit_classifies_heldout_glyphs_and_routes_vary(glyph_run):
    _, store, items, result = glyph_run
    predicted = [p.split()[1] for p in result.predictions]
    accuracy = np.mean([p == i.label for p, i in zip(predicted, items)])
    assert accuracy >= 0.6, accuracy  # chance is 0.1
    routes = store.routes("glyphs")
    kept = routes[(routes.kind == "keep") & (routes.layer == 0) & (routes.choice == 1)]
    kept_sets = {frozenset(rows.token) for _, rows in kept.groupby("example")}
    assert len(kept_sets) > len(items) // 2
    examples = store.examples("glyphs")
    assert (examples.grid_h == 6).all() and (examples.patch == 8).all()
    assert examples.image.map(lambda b: b[:8] == b"\x89PNG\r\n\x1a\n").all()
    tags = store.tags("glyphs")
    assert set(tags[tags.name == "region"].value) == {"glyph", "background"}


# --- CLI -----------------------------------------------------------------------------------
def test_cli_traces_text_moe_on_a_text(tmp_path, capsys):
    store = tmp_path / "store"
    code = main(["trace", "--model", "text-moe", "--text", "def add(a, b):\n    return a + b\n",
                 "The with statement wraps a block.", "--store", str(store), "--run", "cli"])
    assert code == 0
    routes = routeviz.open_store(store).routes("cli")
    assert set(routes.kind) == {"expert", "keep", "exit"}


def test_cli_traces_glyph_vit_on_any_image_file(tmp_path, capsys):
    from PIL import Image

    photo = tmp_path / "photo.png"
    gradient = np.linspace(0, 255, 70 * 100, dtype=np.float32).reshape(70, 100)
    Image.fromarray(gradient.astype(np.uint8), "L").convert("LA").save(photo)
    store = tmp_path / "store"
    code = main(["trace", "--model", "glyph-vit", "--file", str(photo), "--store", str(store),
                 "--run", "cli"])
    assert code == 0
    s = routeviz.open_store(store)
    assert {"keep", "exit"} <= set(s.routes("cli").kind)
    image = s.examples("cli").image[0]
    assert Image.open(io.BytesIO(image)).size == (48, 48)


def test_models_json_lists_both_samples(capsys):
    assert main(["models", "--json"]) == 0
    models = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert models["text-moe"]["routing"] == ["expert", "keep", "exit"]
    assert set(models["glyph-vit"]["routing"]) == {"keep", "merge", "expert", "exit"}


# --- training ------------------------------------------------------------------------------
@pytest.mark.slow  # trains
def test_text_moe_training_runs_a_few_steps(tmp_path):
    from sample_models.text_moe import TextMoERunner
    from sample_models.text_moe_train import train

    metrics = train("text-moe", out_dir=tmp_path, steps=2, corpus_limit=12, baseline=False, n_eval=2)
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.json",
            "train_log.txt"} <= {p.name for p in tmp_path.iterdir()}
    assert metrics["steps"] == 2 and metrics["unigram_perplexity"] > 1
    assert json.loads((tmp_path / "train_log.txt").read_text().splitlines()[0])["step"] == 0
    runner = TextMoERunner("tmp", tmp_path)
    assert runner.module(torch.tensor([[5, 6, 7]])).logits.shape[:2] == (1, 3)


def test_glyph_vit_training_runs_a_few_steps(tmp_path):
    from sample_models.glyph_vit import GlyphViTRunner
    from sample_models.glyph_vit_train import train

    metrics = train("glyph-vit", out_dir=tmp_path, steps=2, n_train=32, n_eval=50)
    assert 0 <= metrics["early_exit"]["accuracy"] <= 1
    runner = GlyphViTRunner("tmp", tmp_path)
    assert runner.module(torch.zeros(2, 3, 48, 48)).logits.shape == (2, len(runner.cfg.classes))


def test_shipped_weights_are_safetensors_only():
    from pathlib import Path

    weights = Path(__file__).parent.parent / "sample_models" / "weights"
    for name in ("text-moe", "glyph-vit"):
        files = {p.suffix for p in (weights / name).iterdir()}
        assert ".safetensors" in files and not files & {".pt", ".pth", ".bin", ".pkl", ".ckpt"}
