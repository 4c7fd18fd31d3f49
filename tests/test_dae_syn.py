"""DAE-Syn: the dataset, the six shipped routing strategies, their tracer, training, the CLI."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

import routeviz
from sample_models.dae_syn import STRATEGIES, load, load_module, weights_dir
from sample_models.dae_syn_data import ATTRIBUTES, VALUES, dae_syn_dataset, indices_of

LEARNED = ("top-k", "st-gumbel", "reinforce")


@pytest.fixture(scope="module")
def dataset():
    return dae_syn_dataset()


@pytest.fixture(scope="module")
def sample(dataset):
    """256 images drawn at random (fixed seed): every attribute value occurs."""
    picked = np.random.default_rng(0).choice(len(dataset), 256, replace=False)
    return [dataset[i] for i in sorted(picked)]


def trace_items(runner, items, store, run, batch_size=64):
    """Trace `items` through `runner` the way the CLI does, one batch per chunk."""
    with routeviz.trace(runner.module, store, run, model_name=runner.name,
                        config=runner.trace_config()) as tracer:
        for begin in range(0, len(items), batch_size):
            encoded = runner.encode(items[begin:begin + batch_size])
            with tracer.batch(examples=range(begin, begin + len(encoded.meta)),
                              tokens=encoded.tokens, tags=encoded.tags,
                              meta=encoded.meta) as batch:
                batch.predict(runner.predict(encoded))
    return routeviz.open_store(store).routes(run=run)


def choices_by_router(routes, n_examples):
    """[n_examples, 4] chosen subnetwork per example and router, from the stored rows."""
    table = np.full((n_examples, 4), -1)
    for row in routes.itertuples():
        table[row.example, row.layer] = row.choice
    return table


def test_dataset_has_4096_unique_images_with_4x8_tags(dataset):
    assert len(dataset) == 4096
    assert len({item.image.tobytes() for item in dataset}) == 4096
    assert all(item.image.size == (32, 32) and item.image.mode == "RGB" for item in dataset)
    for name in ATTRIBUTES:
        counts = Counter(item.tags[name] for item in dataset)
        assert set(counts) == set(VALUES[name]) and len(counts) == 8
        assert set(counts.values()) == {512}
    combos = {tuple(indices_of(item.tags)) for item in dataset}
    assert len(combos) == 4096
    assert dae_syn_dataset(5)[4].tags == dataset[4].tags


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_shipped_model_routes_a_batch(strategy, sample, tmp_path):
    runner = load(f"dae-syn-{strategy}")
    items = sample[:48]
    routes = trace_items(runner, items, tmp_path / "store", "r", batch_size=32)
    assert len(routes) == len(items) * 4
    assert set(routes["token"]) == {-1}
    assert set(routes["kind"]) == {"expert"}
    assert set(routes["rank"]) == {0}
    assert sorted(set(routes["site"])) == [f"routers.{i}" for i in range(4)]
    assert dict(routes.groupby("site")["layer"].first()) == {f"routers.{i}": i for i in range(4)}
    assert routes["choice"].between(0, runner.module.config.n_experts - 1).all()
    assert routes["weight"].between(0, 1).all()
    store = routeviz.open_store(tmp_path / "store")
    config = store.config("r")
    assert (config["n_layers"], config["top_k"], config["strategy"]) == (4, 1, strategy)
    assert config["n_experts"] == (1 if strategy == "monolithic" else 8)
    predictions = store.examples("r")["prediction"]
    assert predictions.str.startswith("reconstruction L2 ").all()


def test_tag_routing_follows_the_attributes_exactly(sample, tmp_path):
    routes = trace_items(load("dae-syn-tag"), sample, tmp_path / "store", "tag")
    expected = np.array([indices_of(item.tags) for item in sample])
    assert (choices_by_router(routes, len(sample)) == expected).all()
    assert (routes["weight"] == 1.0).all()


def test_tag_routing_without_tags_falls_back_to_the_learned_router(sample):
    from routeviz.runs.inputs import Item

    runner = load("dae-syn-tag")
    items = [Item(image=item.image.resize((100, 60)), source=f"upload{i}.png")
             for i, item in enumerate(sample[:64])]
    encoded = runner.encode(items)
    assert len(encoded.notes) == 64 and "fell back" in encoded.notes[0]
    assert (encoded.inputs["tag_ids"] == -1).all()
    with torch.no_grad():
        out = runner.module(**encoded.inputs)
    learned = torch.stack([d.probs.argmax(-1) for d in out.decisions], dim=1)
    assert torch.equal(torch.stack([d.choice for d in out.decisions], dim=1), learned)
    assert "learned prediction" in runner.description


def test_hash_routing_is_deterministic_and_spread(sample, tmp_path):
    runner = load("dae-syn-hash")
    first = trace_items(runner, sample, tmp_path / "store", "a")
    second = trace_items(load("dae-syn-hash"), sample, tmp_path / "store", "b")
    table = choices_by_router(first, len(sample))
    assert (table == choices_by_router(second, len(sample))).all()
    images = runner.encode(sample).inputs["images"]
    assert (table == runner.module.pixel_hash(images).numpy()).all()
    assert all(len(set(table[:, i])) >= 6 for i in range(4))


@pytest.mark.parametrize("strategy", LEARNED)
def test_learned_routing_varies_across_inputs(strategy, sample, tmp_path):
    routes = trace_items(load(f"dae-syn-{strategy}"), sample, tmp_path / "store", "r")
    table = choices_by_router(routes, len(sample))
    distinct = [len(set(table[:, i])) for i in range(4)]
    assert max(distinct) >= 2 and sum(distinct) > 4, distinct


def test_monolithic_routes_everything_to_its_one_subnetwork(sample, tmp_path):
    routes = trace_items(load("dae-syn-monolithic"), sample[:64], tmp_path / "store", "m")
    assert set(routes["choice"]) == {0}


def test_shipped_metrics_rank_tag_routing_first():
    losses = {}
    for strategy in STRATEGIES:
        metrics = json.loads((weights_dir(f"dae-syn-{strategy}") / "metrics.json").read_text())
        assert metrics["strategy"] == strategy and metrics["seed"] == 0
        losses[strategy] = metrics["l2_per_image"]
    steps = {json.loads((weights_dir(f"dae-syn-{s}") / "metrics.json").read_text())["steps"]
             for s in STRATEGIES}
    assert len(steps) == 1  # same steps for every strategy
    assert losses["tag"] == min(losses.values())
    assert losses["tag"] < losses["monolithic"] / 10


@pytest.mark.parametrize("strategy", ("reinforce", "st-gumbel"))
@pytest.mark.slow  # trains
def test_training_runs_two_steps(strategy, tmp_path):
    from sample_models.train import main

    assert main([f"dae-syn-{strategy}", "--steps", "2", "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["steps"] == 2 and np.isfinite(metrics["l2_per_image"])
    assert (tmp_path / "train_log.csv").read_text().startswith("step,loss,mse\n")
    model = load_module(tmp_path)
    assert model.config.strategy == strategy


def test_cli_traces_the_dae_syn_dataset(tmp_path, capsys):
    from routeviz.cli import main

    store = tmp_path / "store"
    assert main(["trace", "--model", "dae-syn-tag", "--dataset", "dae-syn", "--limit", "64",
                 "--store", str(store), "--run", "tag64"]) == 0
    opened = routeviz.open_store(store)
    routes = opened.routes(run="tag64")
    assert len(routes) == 64 * 4 and set(routes["token"]) == {-1}
    tags = opened.tags("tag64")
    assert len(tags) == 64 * 4 and set(tags["name"]) == set(ATTRIBUTES)
    assert (tags["token"] == -1).all()
    images = opened.examples("tag64")["image"]
    assert images.map(lambda b: bytes(b[:8]) == b"\x89PNG\r\n\x1a\n").all()


def test_tag_routing_is_perfectly_specialised_by_focus_cover(sample, tmp_path):
    """Oracle routing is the paper's reference point: Focus = Cover = 1 (pooled, per example)."""
    from routeviz.metrics import focus_cover

    trace_items(load("dae-syn-tag"), sample, tmp_path / "store", "tag")
    scores = focus_cover(routeviz.open_store(tmp_path / "store"), "tag", unit="example").scores
    pooled = scores[(scores["site"] == "*") & (scores["tag"] == "*")].iloc[0]
    assert pooled["focus"] == pytest.approx(1.0) and pooled["cover"] == pytest.approx(1.0)
    assert (pooled["n_subnetworks"], pooled["n_tags"]) == (32, 32)
