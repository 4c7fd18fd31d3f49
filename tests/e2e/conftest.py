"""The browser every e2e module shares the recipe of: Debian's Chromium driven by Playwright,
one per module (Playwright's sync API does not nest)."""

import pytest

from tests.e2e.streamlit_server import ARGS, CHROMIUM


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()
