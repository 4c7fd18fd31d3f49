"""Inspect's clickable heatmap, built from numpy arrays (issue 25: plotly checks a list
element by element), draws what the list-built figure of the previous round drew: the same
cells, click points, hover cards and layout, once plotly's typed arrays are decoded."""

import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from routeviz.figures import tokens
from tests.app_support import _decode


def _json(fig) -> dict:
    return _decode(json.loads(pio.to_json(fig, validate=False)))


def _reference_click(columns, n, cards, first):
    """The click layer as the previous round built it: Python lists."""
    xs, ys = np.meshgrid(np.arange(n), np.arange(len(columns)))
    text = [cards[i] for _ in columns for i in range(n)]
    return go.Scatter(x=list(xs.ravel()), y=[columns[j] for j in ys.ravel()],
                      customdata=[int(i) for i in first + xs.ravel()], mode="markers",
                      name="click", showlegend=False,
                      marker=dict(symbol="square", size=18, opacity=0),
                      unselected=dict(marker=dict(opacity=0)),
                      selected=dict(marker=dict(opacity=0)), text=text,
                      hovertemplate="%{text}<extra>%{y}</extra>")


def test_clickable_heatmap_draws_what_the_list_built_one_drew():
    rng = np.random.default_rng(0)
    n, columns, first = 7, ["layers.0.gate", "layers.1.gate", "layers.2.gate"], 80
    grid = rng.integers(0, 8, (n, len(columns))).astype(float)
    grid[2, 1] = np.nan  # a token gone before a site
    cards = [f"<b>#{first + i} t&lt;{i}&gt;</b><br>l0 e{i % 8} (gate 0.5{i})" for i in range(n)]
    fig = tokens.token_heatmap(grid, columns, [f"t<{i}>" for i in range(n)], "expert",
                               cards=cards, n_experts=8, first=first, clickable=True)
    new = _json(fig)
    reference = _json(go.Figure(_reference_click(columns, n, cards, first)))["data"][0]
    heat, click = new["data"]
    assert {k: v for k, v in click.items() if k != "uid"} == \
        {k: v for k, v in reference.items() if k != "uid"}
    assert click["customdata"][:n] == list(range(first, first + n))
    # the heatmap under it: the same cells and colours, no hover of its own (the click
    # layer's cards answer), and none of the per-cell labels it used to carry unseen
    assert heat["hoverinfo"] == "skip" and "customdata" not in heat
    z = np.asarray(heat["z"], dtype=float)
    assert np.array_equal(z, grid.T, equal_nan=True)
    assert heat["zmin"] == -0.5 and heat["zmax"] == 7.5 and heat["y"] == columns


def test_binned_heatmap_still_names_each_bins_tokens_in_its_hover():
    grid = np.tile(np.arange(4.0), 50)[:, None]  # 200 tokens, one site: binned, not clickable
    fig = tokens.token_heatmap(grid, ["s"], ["x"] * 200, "expert", n_experts=4, max_tokens=100,
                               clickable=True)
    assert len(fig.data) == 1
    assert fig.data[0].hovertemplate.startswith("tokens %{customdata}")
    assert list(fig.data[0].customdata[0][:2]) == ["0–1", "2–3"]
