"""Figures that leave the app look the same whichever process builds them, tick text is
escaped once, legend swatches get one colour, exit layers read one way."""

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from routeviz.figures import export, routing, tokens
from routeviz.figures.labels import exit_label


@pytest.fixture
def streamlit_default():
    """Streamlit's plotly theme as the process default, as inside the app."""
    import streamlit.elements.plotly_chart  # noqa: F401 — registers and selects it

    before = pio.templates.default
    pio.templates.default = "streamlit"
    yield
    pio.templates.default = before


def test_standalone_ignores_the_process_template(streamlit_default):
    fig = routing.kept_fraction(pd.DataFrame({"site": ["a", "b"], "layer": [0, 1],
                                              "kept_fraction": [0.5, 0.8]}))
    out = export.standalone(fig).to_plotly_json()["layout"]
    assert out["template"]["layout"]["colorway"][0] == "#636efa"  # plotly's, not #000001
    assert out["xaxis"]["automargin"] is True and out["yaxis"]["automargin"] is True
    html = export.figure_bytes(fig, "html")
    assert b"#000001" not in html and b'"automargin":true' in html


def test_token_heatmap_ticks_are_escaped_once():
    fig = tokens.token_heatmap(np.zeros((3, 1)), ["site"], ['"""', "a&b", "<s>"], "expert",
                               n_experts=2)
    assert list(fig.layout.xaxis.ticktext) == ['0:"""', "1:a&amp;b", "2:&lt;s&gt;"]


def test_load_bars_legend_swatches_have_one_colour():
    load = pd.DataFrame({"site": ["s0"] * 3 + ["s1"] * 3, "expert": [0, 1, 2] * 2,
                         "share": [0.5, 0.495, 0.005, 0.3, 0.3, 0.4],
                         "starved": [False, False, True, False, False, False]})
    fig = routing.load_bars(load)
    legend = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in legend] == ["s0", "s1"]
    assert all(isinstance(t.marker.color, str) for t in legend)
    bars = [t for t in fig.data if t.type == "bar"]
    assert all(isinstance(t.marker.line.color, str) for t in bars)
    assert list(bars[0].marker.line.width) == [0, 0, 2]  # the starved bar outlined


def test_exit_label_is_zero_based_and_says_blocks_run():
    assert exit_label(11, 12) == "layer 11 (ran 12 of 12 blocks)"
    assert exit_label(0, 12) == "layer 0 (ran 1 of 12 blocks)"
    assert exit_label(2.5, 4) == "layer 2.50 (ran 3.50 of 4 blocks)"
    assert exit_label(float("nan"), 4) == "no exit"
