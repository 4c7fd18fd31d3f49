"""Click-to-explain in a real browser (Streamlit on 127.0.0.1, Debian Chromium through
Playwright), through Inspect: a link selects a token and a site of a recorded text-moe
example (a glyph-vit image's patch), the "Why" panel under the example follows that
selection, "Explain" draws one attribution chip per token (a patch overlay on the image)
and states the convergence delta. Saves explain-text.png and explain-image.png (to
docs/screenshots/ for the README under `make screenshots`, a temporary directory otherwise)."""

from __future__ import annotations

import pytest

from tests.e2e.shots import screenshot_dir
from tests.e2e.streamlit_server import ROOT, streamlit_app
from tests.e2e.test_timeline_browser import ARGS, CHROMIUM, idle

TEXT = "def add(x, y):\n    return x + y  # add two numbers"
PANEL = "Why: what drives a token's router"

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(),
                                 reason="needs /usr/bin/chromium")]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record
    from sample_models.glyphs import glyph_batch, glyph_item

    path = tmp_path_factory.mktemp("explain-e2e") / "store"
    record(load_model("text-moe"), [Item(text=TEXT, source="typed text")], path, "code")
    record(load_model("glyph-vit"), [glyph_item(glyph_batch(1, seed=3)[0], 0)], path, "glyph")
    return path


def open_inspect(p, base: str, query: str):
    """(browser, page): Chromium on Inspect at `base/?query`, its script run finished."""
    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    pg = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    pg.set_default_timeout(120_000)
    pg.goto(f"{base}/?{query}")
    pg.get_by_role("heading", name="Inspect").wait_for()
    idle(pg)
    return browser, pg


def explain_in_browser(pg, base, run, token, site, shot):
    pg.goto(f"{base}/?run={run}&example=0&token={token}&site={site}")
    pg.get_by_role("heading", name="Inspect").wait_for()
    idle(pg)
    pg.get_by_text(PANEL).first.click()
    idle(pg)
    panel = pg.locator("[data-testid=stExpander]").filter(has_text=PANEL).first
    panel.get_by_role("button", name="Explain").click()
    panel.get_by_text("convergence delta").wait_for()
    idle(pg)
    panel.scroll_into_view_if_needed()
    panel.screenshot(path=str(screenshot_dir() / shot))
    return panel


def test_click_to_explain_a_text_token_and_an_image_patch(store):
    from playwright.sync_api import sync_playwright

    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model

    n_tokens = len(load_model("text-moe").encode([Item(text=TEXT)]).tokens[0])
    with streamlit_app(ROOT / "app.py", store) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        pg.set_default_timeout(120_000)
        panel = explain_in_browser(pg, base, "code", 4, "blocks.0.mlp.router",
                                   "explain-text.png")
        chips = panel.locator(".rv-attr")
        assert chips.count() == n_tokens  # one chip per input token
        assert chips.nth(4).get_attribute("title").startswith("#4: ")
        text = panel.inner_text()
        assert "Token #4" in text and "error" not in text.lower()

        panel = explain_in_browser(pg, base, "glyph", 7, "blocks.1.mlp.router",
                                   "explain-image.png")
        assert panel.locator("img").count() == 1
        text = panel.inner_text()
        assert "Patch #7" in text and "error" not in text.lower()
        browser.close()


def test_a_click_on_a_heatmap_cell_selects_its_token_and_site(store):
    """Issue 24: the panel said "click-to-explain" but a click selected nothing. A click on
    the heatmap cell of a token in the row of blocks.2 makes it Inspect's token and the Why
    panel's token and site."""
    from playwright.sync_api import sync_playwright

    from routeviz.store import open_store

    routes = open_store(store).example_routes("code", 0)
    routed = set(routes[routes.site == "blocks.2.mlp.router"].token)
    token, row = max(t for t in routed if t <= 8), 2  # rows: blocks.0 .. blocks.3, top down
    with streamlit_app(ROOT / "app.py", store) as base, sync_playwright() as p:
        browser, pg = open_inspect(p, base, "run=code&example=0&token=0")
        heatmap = pg.locator("[data-testid=stPlotlyChart]").filter(has_text="Token × layer").first
        heatmap.scroll_into_view_if_needed()
        box = heatmap.locator(".nsewdrag").first.bounding_box()
        n_tokens = len(open_store(store).example_tokens("code", 0))  # one column each
        n_rows = 4
        pg.mouse.click(box["x"] + (token + 0.5) * box["width"] / n_tokens,
                       box["y"] + (row + 0.5) * box["height"] / n_rows)
        idle(pg)
        pg.wait_for_function(
            f"() => document.querySelector('[aria-label^=\"Token (0\"]')?.value === '{token}'")
        pg.get_by_text(PANEL).first.click()
        idle(pg)
        panel = pg.locator("[data-testid=stExpander]").filter(has_text=PANEL).first
        # opening the panel reruns the page, which then draws the panel's widgets: wait for
        # its token box (a loaded machine can start that rerun after idle() looked)
        panel.locator("input").nth(1).wait_for()
        idle(pg)
        shown = panel.locator("input").evaluate_all("els => els.map(e => e.value)")
        text = panel.inner_text()
        browser.close()
    assert any(v.startswith(f"#{token} ") for v in shown) and "2.mlp.router" in shown, shown
    assert "error" not in text.lower()
