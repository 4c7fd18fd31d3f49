"""The shipped glyph-soft (Soft MoE) and glyph-act (A-ViT halting) samples, traced by the CLI
into a real store, read back through DuckDB, and drawn on the Inspect page."""

from __future__ import annotations

import json

import pytest
import torch

import routeviz
from routeviz.cli import main
from tests.app_support import open_page, plotly_specs

N_IMAGES = 6


def cli_trace(model, store, run) -> None:
    assert main(["trace", "--model", model, "--dataset", "glyphs", "--limit", str(N_IMAGES),
                 "--store", str(store), "--run", run]) == 0


@pytest.fixture(scope="module")
def soft_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("soft") / "store"
    cli_trace("glyph-soft", store, "soft")
    return store


@pytest.fixture(scope="module")
def act_store(tmp_path_factory):
    store = tmp_path_factory.mktemp("act") / "store"
    cli_trace("glyph-act", store, "act")
    return store


def metrics_json(store, run, capsys) -> dict:
    capsys.readouterr()
    assert main(["metrics", "--store", str(store), "--run", run, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# --- glyph-soft ---------------------------------------------------------------------------
def test_soft_rows_sum_to_one_per_token_and_dispatch_per_slot(soft_store):
    store = routeviz.open_store(soft_store)
    config = store.config("soft")
    n_experts, slots = config["n_experts"], config["slots_per_expert"]
    soft = store.engine.query("SELECT example, token, site, sum(weight) AS total, count(*) AS n "
                     "FROM routes WHERE run = 'soft' AND kind = 'soft' GROUP BY ALL", {})
    assert len(soft) == N_IMAGES * 36 * len(config["soft_layers"])
    assert set(soft.n) == {n_experts} and soft.total.sub(1).abs().max() < 1e-4
    dispatch = store.engine.query("SELECT example, site, choice, sum(weight) AS total, count(*) AS n "
                         "FROM routes WHERE run = 'soft' AND kind = 'dispatch' GROUP BY ALL", {})
    assert len(dispatch) == N_IMAGES * len(config["soft_layers"]) * n_experts * slots
    assert set(dispatch.n) == {36} and dispatch.total.sub(1).abs().max() < 1e-4
    assert sorted(set(store.routes(run="soft")["kind"])) == ["dispatch", "soft"]


def test_soft_recomputation_reproduces_the_shipped_layers():
    from routeviz.capture.adapters.soft import soft_mix
    from sample_models.glyph_soft import load
    from tracers.soft_moe import routeviz_logits

    model = load().module
    captured = {}
    hooks = [block.mlp.register_forward_hook(
        lambda m, i, o, n=n: captured.__setitem__(n, (m, i[0], o)))
        for n, block in enumerate(model.blocks) if n in model.cfg.soft_layers]
    model(torch.randn(3, 3, 48, 48))
    for hook in hooks:
        hook.remove()
    assert sorted(captured) == model.cfg.soft_layers
    for layer, x, out in captured.values():
        torch.testing.assert_close(soft_mix(x, routeviz_logits(layer, x), layer.experts), out)


def test_metrics_json_answers_on_a_soft_run(soft_store, capsys):
    out = metrics_json(soft_store, "soft", capsys)
    soft_load = [e for e in out["load"] if e.get("kind") == "soft"]
    assert len(soft_load) == 2 and all(abs(sum(e["shares"]) - 1) < 1e-6 for e in soft_load)
    assert {e["kind"] for e in out["focus_cover"]} == {"soft"}
    slots = out["soft"]["dispatch"]
    assert len(slots) == 2 * 8 and all(1 <= s["effective_tokens"] <= 36 for s in slots)
    assert out["soft"]["combine_entropy"][0]["max_possible"] == pytest.approx(
        torch.log(torch.tensor(4.0)).item(), rel=1e-5)


def test_inspect_draws_dispatch_maps_and_dominant_experts(soft_store):
    at = open_page(soft_store, "inspect", run="soft")
    assert not at.exception and not at.error
    keys = [el.proto.id for el in at.get("plotly_chart")]
    assert any("inspect_dispatch_maps" in k for k in keys)
    assert any("inspect_soft_dominant" in k for k in keys)
    maps = next(spec for spec in plotly_specs(at)
                if spec["layout"].get("title", {}).get("text", "").startswith("Dispatch"))
    heatmaps = [t for t in maps["data"] if t["type"] == "heatmap"]
    assert len(heatmaps) == 8  # one per slot: 4 experts x 2 slots
    assert all(abs(sum(v for row in h["z"] for v in row) - 1) < 1e-3 for h in heatmaps)


# --- glyph-act ----------------------------------------------------------------------------
def test_act_patches_of_one_image_halt_at_different_layers(act_store, capsys):
    store = routeviz.open_store(act_store)
    exits = store.engine.query("SELECT example, token, choice, weight FROM routes WHERE run = 'act' "
                      "AND kind = 'exit'", {})
    assert (exits.token >= 0).all()
    assert exits.groupby("example").token.nunique().eq(36).all()  # every patch once
    assert exits.groupby("example").choice.nunique().max() > 1  # patches halt at several depths
    halted_early = exits[exits.choice < 4]
    assert (halted_early.weight >= 0.99 - 1e-3).all()  # cumulative halting score passed 1 - eps
    assert store.config("act")["halted_tokens"] == "masked"
    out = metrics_json(act_store, "act", capsys)
    assert out["exits"]["unit"] == "token" and out["exits"]["halted_tokens"] == "masked"
    assert out["exits"]["compute_saved"] == 0.0  # masked tokens still ran every block


def test_inspect_draws_the_per_patch_depth_map(act_store):
    at = open_page(act_store, "inspect", run="act")
    assert not at.exception and not at.error
    assert any("inspect_exit" in el.proto.id for el in at.get("plotly_chart"))


def test_experts_page_shows_each_slots_top_patches(soft_store):
    at = open_page(soft_store, "experts", run="soft")
    assert not at.exception and not at.error
    cards = [m.value for m in at.markdown if m.value.startswith("**Expert ")]
    assert len(cards) == 4  # one card per expert of the first Soft MoE site
    slot_lines = [c.value for c in at.caption if c.value.startswith("slot ")]
    assert len(slot_lines) == 8 and "effective tokens" in slot_lines[0]
    assert len(at.get("image")) == 8  # one row of patch crops per slot


def test_report_has_a_soft_routing_section(soft_store):
    from routeviz.report import build_report_files

    files = build_report_files(routeviz.open_store(soft_store), "soft", images=False)
    markdown, page = files["report.md"].decode(), files["report.html"].decode()
    assert "## Soft routing (Soft MoE)" in markdown and 'id="soft-routing"' in page
    assert page.index('id="soft-routing"') < page.rindex("</body>")
    assert markdown.count("| blocks.2.mlp |") >= 1 + 4 + 8  # entropy, load, slots rows


def test_load_depth_gives_depth_per_patch_position_and_tag(act_store):
    at = open_page(act_store, "load_depth", run="act")
    assert not at.exception and not at.error
    assert any("masked, not removed" in c.value for c in at.caption)
    assert any("load_depth_position" in el.proto.id for el in at.get("plotly_chart"))
    table = next(df.value for df in at.dataframe if "mean exit layer" in df.value.columns)
    assert {"glyph", "background"} <= set(table["value"])
    assert table["mean exit layer"].between(0, 4).all()
