"""Soft routing in a real browser (Streamlit on 127.0.0.1, Debian Chromium through
Playwright): glyph-soft traced on a few glyphs, the Inspect page draws every slot's
dispatch map over the image."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.streamlit_server import ROOT, streamlit_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")]


@pytest.fixture(scope="module")
def soft_store(tmp_path_factory):
    from routeviz.cli import main

    store = tmp_path_factory.mktemp("soft-e2e") / "store"
    assert main(["trace", "--model", "glyph-soft", "--dataset", "glyphs", "--limit", "2",
                 "--store", str(store), "--run", "soft"]) == 0
    return store


def test_inspect_draws_dispatch_maps_in_the_browser(soft_store):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, streamlit_app(ROOT / "app.py", soft_store) as base:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(90_000)
        page.goto(f"{base}/inspect")
        page.get_by_role("heading", name="Soft routing (Soft MoE)").wait_for()
        time.sleep(0.3)
        maps = page.locator("[data-testid=stPlotlyChart]").filter(has_text="Dispatch weights")
        maps.first.scroll_into_view_if_needed()
        titles = maps.first.locator("text=/slot \\d+ · expert \\d+/")
        titles.first.wait_for()
        assert titles.count() == 8  # 4 experts x 2 slots, one panel each
        assert maps.first.locator("image").count() >= 8  # the glyph under every panel
        browser.close()
