"""The Timeline page in a real browser (Streamlit on 127.0.0.1, Debian Chromium through
Playwright), on the series shipped under sample_models/data/series/ — a copy of it, so the
test never writes into the repository — or, where none is shipped, a synthetic series."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.streamlit_server import ARGS, CHROMIUM, ROOT, streamlit_app  # noqa: F401

SHIPPED = ROOT / "sample_models" / "data" / "series"

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")]


def shipped_store() -> Path | None:
    if not SHIPPED.is_dir():
        return None
    stores = sorted(p for p in SHIPPED.iterdir() if (p / "routeviz.json").is_file())
    return stores[0] if stores else None


@pytest.fixture(scope="module")
def series_store(tmp_path_factory):
    """(store path, series name, steps)."""
    from routeviz.metrics.series import series_names, series_runs
    from routeviz.store import open_store
    from tests.series_store import three_step_store

    path = tmp_path_factory.mktemp("timeline-e2e") / "store"
    shipped = shipped_store()
    if shipped is not None:
        shutil.copytree(shipped, path, symlinks=True)
    else:
        three_step_store(path)
    store = open_store(path)
    name = series_names(store)[0]
    steps = series_runs(store, name)["step"].tolist()
    store.close()
    return path, name, steps


@pytest.fixture(scope="module")
def page(series_store, browser):
    with streamlit_app(ROOT / "app.py", series_store[0]) as base:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(f"{base}/timeline")
        pg.get_by_role("heading", name="Timeline").wait_for()
        idle(pg)
        yield pg
        context.close()


def idle(pg):
    time.sleep(0.3)
    pg.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')")


def chart(pg, title: str):
    return pg.locator("[data-testid=stPlotlyChart]").filter(has_text=title).first


def test_metric_lines_and_identity_render(page, series_store):
    steps = series_store[2]
    for title in ("top-1 agreement with", "share of top-k kept",
                  "Load CV", "MaxVio", "Focus", "Cover", "Expert identity at"):
        chart(page, title).locator(".main-svg").first.wait_for()
    saturation = chart(page, "top-1 agreement with")
    assert saturation.locator(".scatterlayer .trace").count() >= 2  # pooled + a site
    assert saturation.get_by_text("all sites (pooled)").count() >= 1
    assert page.locator("[data-testid=stAlertContentError]").count() == 0
    assert page.get_by_text(f"{len(steps)} step(s)").count() == 1
    if shipped_store() is not None:  # the README's picture is of the real series
        from tests.e2e.test_app_browser import screenshot

        screenshot(page, "timeline.png")


def test_no_chart_title_runs_past_its_chart(page):
    """Plotly does not wrap titles: in a 1100-pixel window the saturation titles ran past
    the right edge of their half-page charts and were cut. Every title now lies inside
    its chart's drawing."""
    page.set_viewport_size({"width": 1100, "height": 900})
    try:
        chart(page, "share of top-k kept").locator(".gtitle").first.wait_for()
        page.wait_for_timeout(1500)  # plotly redraws at the new width
        boxes = page.evaluate("""() => [...document.querySelectorAll(
            '[data-testid=stPlotlyChart]')].map(c => {
              const svg = c.querySelector('.main-svg'), title = c.querySelector('.gtitle');
              if (!svg || !title) return null;
              const s = svg.getBoundingClientRect(), t = title.getBoundingClientRect();
              return {text: title.textContent, inside: t.left >= s.left && t.right <= s.right
                      && t.top >= s.top && t.bottom <= s.bottom};
            }).filter(Boolean)""")
    finally:
        page.set_viewport_size({"width": 1400, "height": 900})
    assert any(b["text"].startswith("Router saturation") for b in boxes)
    assert [b["text"] for b in boxes if not b["inside"]] == []


def test_step_slider_moves_the_step_figure(page, series_store):
    steps = series_store[2]
    slider = page.locator("[data-testid=stSlider]").filter(has_text="Step").first
    assert str(steps[-1]) in slider.inner_text()
    thumb = page.locator('input[type=range][aria-label="Step"]')
    thumb.focus()
    thumb.press("Home")
    page.wait_for_function(
        """(first) => document.querySelector('input[type=range][aria-label="Step"]')
                      .getAttribute('aria-valuetext') === String(first)""", arg=steps[0])
    idle(page)
    assert slider.get_by_test_id("stSliderThumbValue").inner_text() == str(steps[0])
    figures = page.locator("[data-testid=stPlotlyChart]")
    assert figures.count() >= 8  # 6 or 7 metric lines + identity + the step's figure
    assert page.locator("[data-testid=stAlertContentError]").count() == 0
    chart(page, f"Where steps {steps[0]} and {steps[-1]} route alike").locator(
        ".main-svg").first.wait_for()


def test_series_report_renders_offline(series_store, browser, tmp_path):
    """report.html of the series from disk, every network request refused: each figure
    (one line chart per metric, one identity heatmap per site) draws."""
    from routeviz.report.series import write_series_report
    from routeviz.store import open_store

    path, name, _ = series_store
    store = open_store(path)
    write_series_report(store, name, tmp_path / "out")
    n_sites = len(store.query_df("SELECT DISTINCT site FROM routes WHERE kind = 'expert'"))
    store.close()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused, errors = [], []
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
        "file:") else (refused.append(route.request.url), route.abort()))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((tmp_path / "out" / "report.html").resolve().as_uri())
    page.wait_for_function(
        "[...document.querySelectorAll('figure.plot')].every(f => f.querySelector('.main-svg'))"
        " && document.querySelectorAll('figure.plot').length > 0", timeout=30_000)
    keys = page.eval_on_selector_all("figure.plot", "els => els.map(e => e.dataset.key)")
    page.close()
    assert {"saturation-top1", "saturation-overlap", "load-cv", "maxvio"} <= set(keys)
    assert len([k for k in keys if k.startswith("identity-")]) == min(n_sites, 8)
    assert errors == [] and refused == []
