"""routeviz.figures: the frames the dashboard draws, the figures, escaping, export."""

import io

import numpy as np
import pandas as pd
import pytest
import torch

import routeviz
from routeviz.figures import analysis, catalog, data, export, images, routing, tokens
from tests import app_support
from tests.toy import ToyMoE, expected_experts, register_toy

app_store = app_support.app_store  # shared fixture


@pytest.fixture
def toy_run(store_dir):
    """Hand-set routers: token id i goes to expert i % 4 first, (i + 1) % 4 second."""
    register_toy()
    model = ToyMoE(layers=2, k=2)
    ids = torch.tensor([[3, 1, 2, 7, 5, 6]])
    strings = ["<script>", "a", "b&c", '"q"', " ", "\n"]
    with routeviz.trace(model, store_dir, "toy") as tracer, \
            tracer.batch(examples=[0], tokens=[strings]):
        model(ids)
    return routeviz.open_store(store_dir), ids[0].tolist(), strings


def test_token_grid_holds_the_known_top1_experts_and_weights(toy_run):
    store, ids, _ = toy_run
    routes = data.example_routes(store, "toy", 0)
    grid, columns = data.token_grid(routes, len(ids), "expert")
    assert columns == ["routers.0", "routers.1"]
    assert grid[:, 0].tolist() == [expected_experts(i)[0] for i in ids]
    assert grid[:, 1].tolist() == grid[:, 0].tolist()  # both layers route alike
    gate, _ = data.token_grid(routes, len(ids), "gate")
    top = routes[(routes["rank"] == 0) & (routes["site"] == "routers.0")].sort_values("token")
    assert np.allclose(gate[:, 0], top["weight"].to_numpy())
    assert data.token_grid(routes, len(ids), "kept")[0].shape == (6, 0)  # no keep sites


def test_route_cards_and_chips_escape_token_text(toy_run):
    store, ids, strings = toy_run
    routes = data.example_routes(store, "toy", 0)
    cards = data.route_cards(routes, strings)
    assert cards[0].startswith("<b>#0 &lt;script&gt;</b>")
    first, second = expected_experts(ids[0])
    assert f"routers.0: e{first} (" in cards[0] and f", e{second} (" in cards[0]
    html = tokens.token_chips_html(strings, [3, 1, 2, 3, 1, 2], cards)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "b&amp;c" in html and "&quot;q&quot;" in html
    assert html.count('class="rv-chip"') == 6
    assert ">␣</span>" in html and ">↵</span>" in html  # whitespace tokens stay visible
    assert 'title="#0 &lt;script&gt;\nrouters.0' in html  # the hover card, as plain text


def test_chips_stop_at_the_limit():
    html = tokens.token_chips_html([f"t{i}" for i in range(50)], list(range(50)), limit=20)
    assert html.count('class="rv-chip"') == 20


def test_aggregate_tokens_bins_by_mode_or_mean():
    grid = np.array([[0, 1.0], [0, 3.0], [2, np.nan], [2, 5.0], [1, 7.0]])
    mode, starts = data.aggregate_tokens(grid, 3, categorical=True)
    assert starts.tolist() == [0, 2, 4]
    assert mode[:, 0].tolist() == [0, 2, 1]
    mean, _ = data.aggregate_tokens(grid, 3, categorical=False)
    assert mean[:, 1].tolist() == [2.0, 5.0, 7.0]  # NaN skipped
    same, _ = data.aggregate_tokens(grid, 10, categorical=True)
    assert same is grid


def test_heatmap_aggregates_long_inputs_and_says_so():
    grid = np.tile(np.arange(4.0), 250)[:, None]  # 1000 tokens, one site
    fig = tokens.token_heatmap(grid, ["s"], ["x"] * 1000, "expert", n_experts=4, max_tokens=100)
    assert np.asarray(fig.data[0].z).shape == (1, 100)
    assert "aggregated: 1000 tokens in 100 bins" in fig.layout.title.text


def test_clickable_heatmap_sends_each_hover_card_once_and_reserves_its_margins():
    grid = np.arange(6.0).reshape(3, 2)  # 3 tokens, 2 sites
    cards = ["card a", "card b", "card c"]
    fig = tokens.token_heatmap(grid, ["layers.0.router", "s1"], ["a", "b", "c"], "expert",
                               cards=cards, n_experts=8, clickable=True)
    heat, click = fig.data
    assert heat.text is None and heat.hoverinfo == "skip"
    assert list(click.text) == cards * 2 and list(click.customdata) == [0, 1, 2] * 2
    # margins reserved from the labels, not by plotly's automargin (a second draw)
    assert fig.layout.xaxis.automargin is False and fig.layout.yaxis.automargin is False
    assert fig.layout.xaxis.ticklabeloverflow == "allow"  # no label-by-label overflow check
    assert fig.layout.margin.l >= 7 * len("layers.0.router") and fig.layout.margin.b >= 7 * 3
    still = tokens.token_heatmap(grid, ["s0", "s1"], ["a", "b", "c"], "expert", cards=cards,
                                 n_experts=8)  # not clickable: the heatmap carries the hover
    assert len(still.data) == 1 and list(still.data[0].text[1]) == cards


def test_exit_grid_marks_layers_until_the_exit():
    routes = pd.DataFrame({"token": [0, 1], "layer": [0, 2], "site": ["e", "e"],
                           "kind": ["exit", "exit"], "choice": [0, 2], "rank": [0, 0],
                           "weight": [0.9, 0.8]})
    grid, columns = data.token_grid(routes, 3, "exit", n_layers=4)
    assert columns == ["L0", "L1", "L2", "L3"]
    assert grid[0].tolist() == [1, 0, 0, 0] and grid[1].tolist() == [1, 1, 1, 0]
    assert np.isnan(grid[2]).all()  # token 2 has no exit row


def test_short_site_keeps_what_tells_sites_apart():
    assert data.short_site("model.layers.3.mlp.gate") == "3.mlp.gate"
    assert data.short_site("moe.0.router") == "moe.0.router"
    assert data.short_site("prune.0") == "prune.0"
    assert data.short_site("gate") == "gate"


def test_images_downscaled_for_display_and_cropped_per_patch():
    from PIL import Image

    buf = io.BytesIO()
    pixels = np.zeros((300, 400, 3), "uint8")
    pixels[:150, 200:] = 255  # patch (row 0, col 1) of a 2×2 grid is white
    Image.fromarray(pixels).save(buf, format="PNG")
    big = Image.new("RGB", (4000, 3000))
    big_buf = io.BytesIO()
    big.save(big_buf, format="PNG")
    assert data.display_image(big_buf.getvalue()).size == (512, 384)
    assert data.display_image(buf.getvalue(), max_side=200).size == (200, 150)
    crop = data.patch_crop(buf.getvalue(), 2, 2, token=1, size=8)
    assert crop.size == (8, 8) and np.asarray(crop).min() == 255
    grid = data.patch_values(np.array([1.0, 2.0, 3.0]), 2, 2)
    assert grid[0].tolist() == [1.0, 2.0] and grid[1, 0] == 3.0 and np.isnan(grid[1, 1])


def test_patch_overlay_and_small_multiples():
    from PIL import Image

    fig = images.patch_overlay(Image.new("RGB", (320, 240)), np.arange(12.0).reshape(3, 4), 12)
    assert [t.type for t in fig.data] == ["image", "heatmap", "scatter"]
    assert fig.data[1].dx == 80 and fig.data[1].dy == 80
    borders = fig.data[2]  # inner patch borders, one path: 3 vertical + 2 horizontal lines
    assert borders.hoverinfo == "skip" and list(borders.x).count(None) == 3 + 2
    assert sorted({x for x in borders.x[:9] if x is not None}) == [80, 160, 240]
    clickable = images.patch_overlay(Image.new("RGB", (320, 240)), np.arange(12.0).reshape(3, 4),
                                     12, cards=[f"card {i}" for i in range(12)], clickable=True)
    assert [t.name for t in clickable.data][-2:] == ["patch borders", "click"]  # click on top
    assert clickable.data[1].text is None  # the hover cards are sent once, on the click layer
    assert list(clickable.data[-1].text) == [f"card {i}" for i in range(12)]
    panels = [np.ones((2, 2)), np.zeros((2, 2))] * 20
    multiples = images.kept_small_multiples(panels, [f"L{i}" for i in range(40)])
    assert len(multiples.data) == 24  # capped


def test_run_figures_from_metrics(app_store):
    from routeviz import metrics

    store = routeviz.open_store(app_store)
    names = catalog.available(store, "words")
    assert names == list(catalog.FIGURES)  # text run with tags, experts, keep, exits
    assert "Focus/Cover" not in catalog.available(store, "pictures") or \
        store.tags("pictures").shape[0] > 0
    sankey = catalog.build(store, "words", "Path Sankey")
    transitions = metrics.paths(store, "words").transitions
    assert sum(sankey.data[0].link.value) == transitions["count"].sum()
    load = routing.load_bars(metrics.load(store, "words").experts)
    assert [t.visible for t in load.data if t.type == "bar"] == [True, "legendonly"]
    assert all(isinstance(t.marker.color, str) for t in load.data if t.showlegend is not False)
    head = analysis.headline(metrics.summary(store, "words"))
    assert set(head) >= {"Focus (pooled)", "Cover (pooled)", "mean load CV", "compute saved"}
    with pytest.raises(routeviz.RoutevizError, match="unknown figure"):
        catalog.build(store, "words", "Pie chart")


@pytest.mark.slow  # Chromium renders PNG and SVG
def test_export_html_always_png_svg_with_chromium(app_store):
    store = routeviz.open_store(app_store)
    fig = catalog.build(store, "words", "Exit histogram")
    html = export.figure_bytes(fig, "html")
    assert b"<html>" in html[:40] and b"plotly" in html
    with pytest.raises(routeviz.RoutevizError, match="unknown format"):
        export.figure_bytes(fig, "gif")
    if export.chromium_path() is None:
        assert export.available_formats() == ("html",)
        with pytest.raises(routeviz.RoutevizError, match="needs Chromium"):
            export.figure_bytes(fig, "png")
        return
    assert export.figure_bytes(fig, "png", width=400, height=300)[:8] == b"\x89PNG\r\n\x1a\n"


def test_token_fate_follows_tokens_through_drops_and_merges():
    routes = pd.DataFrame({
        "token": [0, 1, 2, 3, 1, 0, 2],
        "layer": [0, 0, 0, 0, 1, 2, 2],
        "site": ["b.0.drop"] * 4 + ["b.1.merge"] + ["b.2.drop"] * 2,
        "kind": ["keep"] * 4 + ["merge"] + ["keep"] * 2,
        "choice": [1, 1, 1, 0, 0, 1, 0], "rank": [0] * 7, "weight": [1.0] * 7})
    fate, labels = data.token_fate(routes, 4)
    assert labels == ["b.0.drop", "b.1.merge", "b.2.drop"]
    assert fate[:, 0].tolist() == [1, 1, 1, 0]  # token 3 dropped at the first site
    assert fate[:3, 1].tolist() == [1, 0.5, 1] and np.isnan(fate[3, 1])  # 1 merged into 0
    assert fate[[0, 2], 2].tolist() == [1, 0] and np.isnan(fate[[1, 3], 2]).all()


def test_a_run_with_one_expert_site_offers_no_path_sankey(tmp_path):
    """A path goes between two expert sites: the image run of tests/report_store.py has one,
    so the catalog leaves the Sankey out, and asking for it anyway is a one-line error, not
    a NaN cast deep in plotly code."""
    from tests.report_store import image_run

    image_run(tmp_path / "st")
    store = routeviz.open_store(tmp_path / "st")
    assert len(store.facts("image").sites_of("expert")) == 1
    names = catalog.available(store, "image")
    assert "Expert load" in names and "Path Sankey" not in names
    with pytest.raises(routeviz.RoutevizError, match="no token paths"):
        catalog.build(store, "image", "Path Sankey")
