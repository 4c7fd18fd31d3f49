"""Soft-routing metrics on a hand-written store with known answers: load as combine mass,
combine entropy, dispatch entropy and effective tokens, Focus/Cover on the dominant expert,
and what `metrics --json` carries for such a run."""

from __future__ import annotations

import math

import pytest

from routeviz.metrics import soft
from routeviz.metrics.focus_cover import focus_cover
from routeviz.metrics.summary import summary
from tests.metrics_store import write_run

SITE = "blocks.2.mlp"
# 2 examples x 2 tokens, 2 experts x 2 slots. Token 0 of each example is "glyph" and puts
# 0.9 of its combine mass on expert 0; token 1 is "background" and puts 0.5/0.5.
COMBINE = {0: [0.9, 0.1], 1: [0.5, 0.5]}
# slot s takes token 0 fully for s = 0, evenly for s = 1..3
DISPATCH = {0: [1.0, 0.0], 1: [0.5, 0.5], 2: [0.5, 0.5], 3: [0.5, 0.5]}


@pytest.fixture()
def store(tmp_path):
    routes = []
    for example in (0, 1):
        for token, masses in COMBINE.items():
            order = sorted(range(2), key=lambda e: -masses[e])
            routes += [(example, token, 2, SITE, "soft", e, rank, masses[e])
                       for rank, e in enumerate(order)]
        for slot, weights in DISPATCH.items():
            routes += [(example, token, 2, SITE, "dispatch", slot, 0, weights[token])
                       for token in (0, 1)]
    tags = [(e, t, "region", "glyph" if t == 0 else "background") for e in (0, 1) for t in (0, 1)]
    return write_run(tmp_path / "s", "r", routes, tags=tags,
                     config={"n_experts": 2, "slots_per_expert": 2, "n_layers": 4})


def test_load_is_combine_mass_per_expert(store):
    load = soft.soft_load(store, "r")
    assert load.mass.round(6).tolist() == [2 * 1.4, 2 * 0.6]
    assert load.share.round(6).tolist() == [0.7, 0.3]
    assert load.dominant.tolist() == [4, 0]  # ties (0.5/0.5) rank expert 0 first here


def test_combine_entropy_per_token(store):
    row = soft.combine_entropy(store, "r").iloc[0]
    h_glyph = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    assert row.mean_entropy == pytest.approx((h_glyph + math.log(2)) / 2)
    assert row.max_entropy == pytest.approx(math.log(2)) and row.max_possible == pytest.approx(math.log(2))


def test_dispatch_entropy_and_effective_tokens(store):
    frame = soft.dispatch_entropy(store, "r").set_index("slot")
    assert frame.loc[0, "effective_tokens"] == pytest.approx(1.0)  # one token
    assert frame.loc[1, "effective_tokens"] == pytest.approx(2.0)  # both evenly
    assert frame.expert.tolist() == [0, 0, 1, 1]  # slot // slots_per_expert


def test_dispatch_map_and_top_tokens(store):
    grid = soft.dispatch_map(store, "r", 1, SITE)
    assert len(grid) == 8 and grid.groupby("slot").weight.sum().round(6).eq(1).all()
    top = soft.slot_top_tokens(store, "r", SITE, k=1)
    assert top[top.slot == 0].token.tolist() == [0] and top[top.slot == 0].weight.tolist() == [1.0]


def test_focus_cover_counts_the_dominant_expert(store):
    scores = focus_cover(store, "r", kind="soft", unit="token").scores
    pooled = scores[(scores.site == "*") & (scores.tag == "region")].iloc[0]
    # expert 0 is every token's dominant one; expert 1 none: F1(glyph, expert 0) = 2/3,
    # F1(background, expert 0) = 2/3 -> Focus (2/3 + 0) / 2, Cover 2/3
    assert pooled.focus == pytest.approx(1 / 3) and pooled.cover == pytest.approx(2 / 3)
    assert pooled.n_subnetworks == 2  # the never-dominant expert counts too


def test_summary_answers_on_a_soft_run(store):
    out = summary(store, "r", permutations=0, resamples=0)
    assert [e["kind"] for e in out["load"]] == ["soft"]
    assert out["load"][0]["shares"] == pytest.approx([0.7, 0.3])
    assert {e["kind"] for e in out["focus_cover"]} == {"soft"}
    assert out["soft"]["dispatch"][0]["effective_tokens"] == pytest.approx(1.0)
    assert out["soft"]["combine_entropy"][0]["site"] == SITE


def test_depth_by_position_and_tag(tmp_path):
    from routeviz.metrics.halting import depth_by_position, depth_by_tag

    # two images of 2 patches: patch 0 is glyph and halts at 3 and 1; patch 1 background at 0
    routes = [(e, t, layer, f"halting.{layer}", "exit", layer, 0, 0.99)
              for e, t, layer in ((0, 0, 3), (0, 1, 0), (1, 0, 1), (1, 1, 0))]
    tags = [(e, t, "region", "glyph" if t == 0 else "background") for e in (0, 1) for t in (0, 1)]
    store = write_run(tmp_path / "h", "h", routes, tags=tags, config={"n_layers": 4})
    by_position = depth_by_position(store, "h").set_index("token")
    assert by_position.mean_layer.tolist() == [2.0, 0.0] and by_position.max_layer[0] == 3
    by_tag = depth_by_tag(store, "h").set_index("value")
    assert by_tag.mean_layer.to_dict() == {"glyph": 2.0, "background": 0.0}
