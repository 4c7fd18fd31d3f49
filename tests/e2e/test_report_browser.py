"""report.html opened from disk in a real Chromium with every network request refused:
each figure renders (plotly draws its .main-svg), no hostile token runs as script, and the
figures are readable — as `routeviz report` writes the page (a subprocess, no Streamlit
loaded) and as the Export page's zip holds it (built inside the app, where Streamlit makes
its own plotly theme the default): no tick label outside its figure, no "Invalid color"
console message, no tick text showing an HTML entity, no network request."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from routeviz.report import write_report
from tests.app_support import open_page
from tests.report_store import all_runs
from tests.test_report import N_PLOTS

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")]

# Every tick label (and axis title) of every figure, with its box and its svg's box.
TICKS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].flatMap(plot => {
  const svg = plot.querySelector('.main-svg').getBoundingClientRect();
  return [...plot.querySelectorAll('.xtick text, .ytick text, .g-xtitle text, .g-ytitle text')]
    .map(t => { const r = t.getBoundingClientRect();
      return {plot: plot.id, text: t.textContent, left: r.left - svg.left,
              right: svg.right - r.right, top: r.top - svg.top, bottom: svg.bottom - r.bottom,
              width: r.width}; });
})"""


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("report-e2e") / "store"
    all_runs(path)
    return path


def open_report(browser, html_path: Path, n_plots: int):
    """The page, after every figure has drawn; with the refused requests and the console
    and page errors seen while it loaded."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    seen = {"refused": [], "requests": [], "errors": [], "console": []}

    def only_files(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            seen["refused"].append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    page.on("request", lambda req: seen["requests"].append(req.url))
    page.on("pageerror", lambda exc: seen["errors"].append(str(exc)))
    page.on("console", lambda msg: seen["console"].append(msg.text))
    page.goto(html_path.resolve().as_uri())
    page.wait_for_function(
        "document.querySelectorAll('figure.plot').length > 0 && "
        "[...document.querySelectorAll('figure.plot')].every(f => f.querySelector('.main-svg'))",
        timeout=30_000)
    assert page.locator("figure.plot").count() == n_plots
    assert page.locator("figure.plot:has(.main-svg)").count() == n_plots
    return page, seen


def assert_readable(page, seen) -> None:
    ticks = page.evaluate(TICKS_JS)
    assert len(ticks) > 20  # the figures have axes with labels
    clipped = [t for t in ticks if t["width"] > 0 and min(t["left"], t["right"], t["top"],
                                                          t["bottom"]) < -1]
    assert clipped == [], f"{len(clipped)} tick labels outside their figure: {clipped[:5]}"
    entities = [t["text"] for t in ticks if any(e in t["text"] for e in ("&quot;", "&amp;",
                                                                          "&#", "&lt;", "&gt;"))]
    assert entities == []
    assert [m for m in seen["console"] if "Invalid color" in m] == []
    assert seen["errors"] == [] and seen["refused"] == []
    assert [u for u in seen["requests"] if not u.startswith(("file:", "data:", "blob:"))] == []
    assert page.evaluate("typeof window.__pwned") == "undefined"  # no injected script ran


@pytest.mark.parametrize("run,against", [("text", "text-b"), ("image", None), ("dae", None)])
def test_every_figure_renders_offline(browser, store_path, tmp_path, run, against):
    from routeviz.store import open_store

    write_report(open_store(store_path), run, tmp_path / "out", against=against, images=False)
    page, seen = open_report(browser, tmp_path / "out" / "report.html", N_PLOTS[run])
    heights = page.eval_on_selector_all(
        "figure.plot .js-plotly-plot", "els => els.map(e => e.getBoundingClientRect().height)")
    assert len(heights) == N_PLOTS[run] and min(heights) > 100  # drawn at their given heights
    assert_readable(page, seen)
    if run in ("image", "dae"):  # gallery crops decode as images
        widths = page.eval_on_selector_all(".crops img", "els => els.map(e => e.naturalWidth)")
        assert widths and min(widths) > 0
    page.close()


def test_cli_report_is_readable_offline(browser, store_path, tmp_path):
    """`routeviz report` in its own process, as a user runs it."""
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "routeviz.cli", "report", "--store",
                           str(store_path), "--run", "text", "--against", "text-b",
                           "--out", str(out)], capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    page, seen = open_report(browser, out / "report.html", N_PLOTS["text"])
    assert_readable(page, seen)
    page.close()


def test_export_page_report_is_readable_offline(browser, store_path, tmp_path):
    """The Export page's zip, built inside the app (Streamlit's plotly theme is the
    process default there), reads the same as the CLI's page."""
    at = open_page(store_path, "export", run="text")
    at.selectbox(key="export_against").set_value("text-b")
    at.checkbox(key="export_images").uncheck()
    at.button(key="export_report").click().run(timeout=300)
    assert not at.exception and not at.error
    import plotly.io as pio

    assert pio.templates.default == "streamlit"  # the condition the fix must survive
    run, payload = at.session_state["export_report_zip"]
    assert run == "text"
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        (tmp_path / "report.html").write_bytes(archive.read("report.html"))
    page, seen = open_report(browser, tmp_path / "report.html", N_PLOTS["text"])
    assert_readable(page, seen)
    page.close()


def quoted_store(path):
    """One example whose tokens need escaping once on a tick: `\"\"\"`, `a&b`, `<s>`."""
    from tests.metrics_store import expert_routes, write_run

    texts = ['"""', "a&b", "<s>", "x"]
    routes = expert_routes("layers.0.gate", 0, {(0, t): [t % 2, 2] for t in range(len(texts))})
    routes += expert_routes("layers.1.gate", 1, {(0, t): [2, t % 2] for t in range(len(texts))})
    return write_run(path, "quoted", routes, tokens={0: texts},
                     tags=[(0, t, "kind", "quote" if t == 0 else "other") for t in range(4)])


@pytest.mark.parametrize("which", ["text", "quoted"])
def test_exported_figures_are_readable_offline(browser, store_path, tmp_path, which):
    """Every figure the Export page offers, as its HTML file, built where Streamlit's theme
    is the process default: tick labels inside, one colour per legend swatch (no "Invalid
    color" for the load bars' per-bar colours), tick text escaped once."""
    import streamlit.elements.plotly_chart  # noqa: F401 — makes Streamlit's theme the default

    from routeviz.figures import catalog
    from routeviz.figures.export import figure_bytes
    from routeviz.store import open_store

    store = open_store(store_path) if which == "text" else quoted_store(tmp_path / "st")
    run = "text" if which == "text" else "quoted"
    names = catalog.available(store, run)
    assert "Expert load" in names and "Token heatmap (example 0)" in names
    tick_texts = []
    for number, name in enumerate(names):
        path = tmp_path / f"figure-{number}.html"
        path.write_bytes(figure_bytes(catalog.build(store, run, name), "html"))
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        console, requests = [], []
        page.on("console", lambda msg, c=console: c.append(msg.text))
        page.on("request", lambda req, r=requests: r.append(req.url))
        page.goto(path.resolve().as_uri())
        page.wait_for_selector(".main-svg")
        ticks = page.evaluate(TICKS_JS)
        clipped = [t for t in ticks if t["width"] > 0 and min(t["left"], t["right"], t["top"],
                                                              t["bottom"]) < -1]
        assert clipped == [], (name, clipped[:3])
        assert [m for m in console if "Invalid color" in m] == [], name
        assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
        tick_texts += [t["text"] for t in ticks]
        page.close()
    assert not [t for t in tick_texts if any(e in t for e in ("&quot;", "&amp;", "&#", "&lt;"))]
    if which == "quoted":  # the token heatmap shows the tokens as typed
        assert {'0:"""', "1:a&b", "2:<s>"} <= set(tick_texts)
