"""report.html opened from disk in a real Chromium with every network request refused:
each figure renders (plotly draws its .main-svg), and no hostile token runs as script."""

from __future__ import annotations

from pathlib import Path

import pytest

from routeviz.report import write_report
from tests.report_store import all_runs
from tests.test_report import N_PLOTS

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")]


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return all_runs(tmp_path_factory.mktemp("report-e2e") / "store")


@pytest.mark.parametrize("run,against", [("text", "text-b"), ("image", None), ("dae", None)])
def test_every_figure_renders_offline(browser, store, tmp_path, run, against):
    write_report(store, run, tmp_path / "out", against=against, images=False)
    n_plots = N_PLOTS[run]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused, errors = [], []

    def only_files(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((tmp_path / "out" / "report.html").resolve().as_uri())
    page.wait_for_function(
        "document.querySelectorAll('figure.plot').length > 0 && "
        "[...document.querySelectorAll('figure.plot')].every(f => f.querySelector('.main-svg'))",
        timeout=30_000)
    assert page.locator("figure.plot").count() == n_plots
    assert page.locator("figure.plot:has(.main-svg)").count() == n_plots
    heights = page.eval_on_selector_all(
        "figure.plot .js-plotly-plot", "els => els.map(e => e.getBoundingClientRect().height)")
    assert len(heights) == n_plots and min(heights) > 100  # drawn at their given heights
    assert page.evaluate("typeof window.__pwned") == "undefined"  # no injected script ran
    assert errors == [] and refused == []
    if run in ("image", "dae"):  # gallery crops decode as images
        widths = page.eval_on_selector_all(".crops img", "els => els.map(e => e.naturalWidth)")
        assert widths and min(widths) > 0
    page.close()
