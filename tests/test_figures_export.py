"""Figures that leave the app look the same whichever process builds them, tick text is
escaped once, legend swatches get one colour, exit layers read one way."""

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from routeviz.errors import RoutevizError
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


@pytest.fixture
def own_browser(monkeypatch):
    """A browser of the test's own, closed after it: the process's shared one untouched."""
    browser = export._Browser()
    monkeypatch.setattr(export, "_BROWSER", browser)
    yield browser
    browser.close()


def _fake_chromium(tmp_path, body: str) -> Path:
    script = tmp_path / "chromium"
    script.write_text(f"#!/bin/sh\necho $$ > {tmp_path / 'pid'}\n{body}\n")
    script.chmod(0o755)
    return script


def _gone(pid: int) -> bool:
    for _ in range(100):  # killed at once; reaped by whoever adopted it, a moment later
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").exists() and \
                Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return True
        time.sleep(0.1)
    return False


def test_a_hung_chromium_fails_with_one_line_and_is_killed(own_browser, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(_fake_chromium(tmp_path, "exec sleep 600")))
    monkeypatch.setattr(export, "START_TIMEOUT_S", 2.0)
    fig = go.Figure(go.Bar(x=[1, 2], y=[3, 4]))
    with pytest.raises(RoutevizError) as first:
        export.figure_bytes(fig, "png")
    message = str(first.value)
    assert message == f"PNG export failed: Chromium ({tmp_path / 'chromium'}) did not start within 2 s"
    assert _gone(int((tmp_path / "pid").read_text()))  # no browser left behind
    (tmp_path / "pid").unlink()
    with pytest.raises(RoutevizError) as again:  # remembered: no second wait, no second start
        export.figure_bytes(fig, "png")
    assert str(again.value) == message and not (tmp_path / "pid").exists()


def test_a_chromium_that_exits_fails_with_one_line(own_browser, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(_fake_chromium(tmp_path, "exit 3")))
    with pytest.raises(RoutevizError) as failed:
        export.figure_bytes(go.Figure(go.Bar(x=[1], y=[1])), "png")
    assert str(failed.value).startswith(
        f"PNG export failed: Chromium ({tmp_path / 'chromium'}) failed to start: ")
    assert "\n" not in str(failed.value)
    # the report goes on without its static figures and says why
    from routeviz.report.plots import Plot
    from routeviz.report.static import export_pngs

    pngs, note = export_pngs([Plot("a", "overview", "a", go.Figure(go.Bar(x=[1], y=[1])))])
    assert pngs == {} and note.startswith("static figures skipped: export failed (Chromium (")


@pytest.mark.skipif(export.chromium_path() is None, reason="PNG needs Chromium")
@pytest.mark.slow  # Chromium draws each figure twice
def test_the_kept_browser_draws_the_bytes_of_a_fresh_kaleido(own_browser):
    """One page kept for many figures (no reload between them) gives the PNG bytes that
    kaleido's own one-browser-per-call export gives, figure by figure."""
    import kaleido

    figs = [routing.kept_fraction(pd.DataFrame({"site": ["a", "b"], "layer": [0, 1],
                                                "kept_fraction": [0.5, 0.8]})),
            go.Figure(go.Heatmap(z=np.arange(6.0).reshape(3, 2), colorscale="Viridis")),
            go.Figure(go.Scatter(x=[0, 1, 2], y=[2, 0, 1], mode="lines+markers"))]
    items = [(export.standalone(f), {"format": "png", "width": 500, "height": 300})
             for f in figs]
    ours = export.render_images(items)
    assert all(isinstance(b, bytes) and b[:8] == b"\x89PNG\r\n\x1a\n" for b in ours)
    browser = own_browser._kaleido
    assert export.render_images(items[:1]) == ours[:1] and own_browser._kaleido is browser
    fresh = [kaleido.calc_fig_sync(f, opts=o, kopts={"mathjax": False}) for f, o in items]
    assert [len(b) for b in ours] == [len(b) for b in fresh] and ours == fresh


def _standalone_before(fig) -> go.Figure:
    """standalone as it was: every trace and the template validated again (the reference)."""
    import copy

    out = go.Figure(fig)
    out.update_xaxes(automargin=True)
    out.update_yaxes(automargin=True)
    spec = out.to_plotly_json()
    spec["layout"]["template"] = copy.deepcopy(export._template_json())
    return go.Figure(spec, _validate=False)


def test_standalone_gives_the_json_of_the_validating_copy(tmp_path, streamlit_default):
    """Every catalog figure of a text, an image and a per-example run, and the report's
    figures: the same JSON, key for key and in the same order (report.html's bytes)."""
    from routeviz.figures import catalog
    from routeviz.report import build_plots, collect
    from tests.report_store import all_runs

    store = all_runs(tmp_path / "store")
    figures = []
    for run in ("text", "image", "dae"):
        for name in catalog.available(store, run):
            figures.append(catalog.build(store, run, name))
        figures += [plot.figure for plot in build_plots(collect(store, run))]
    assert len(figures) > 30
    for fig in figures:
        assert export.standalone(fig).to_json() == _standalone_before(fig).to_json()
        html = export.standalone(fig).to_html(include_plotlyjs=False, div_id="f")
        assert html == _standalone_before(fig).to_html(include_plotlyjs=False, div_id="f")
