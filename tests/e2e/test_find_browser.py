"""Find tokens in a real browser (Streamlit on 127.0.0.1, Debian Chromium through
Playwright): picking a row of the occurrences table opens that example at that token, in
the table's on_select callback (one script run, issue 25)."""

from __future__ import annotations

import pytest

from tests.e2e.streamlit_server import ROOT, streamlit_app
from tests.e2e.test_explain_browser import open_inspect
from tests.e2e.test_timeline_browser import CHROMIUM, idle

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not __import__("pathlib").Path(CHROMIUM).exists(),
                                 reason="needs /usr/bin/chromium")]

TEXTS = ["one two three four", "five six seven", "eight nine one two ten"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record

    path = tmp_path_factory.mktemp("find-e2e") / "store"
    record(load_model("text-moe"), [Item(text=t, source=f"doc-{i}") for i, t in
                                    enumerate(TEXTS)], path, "words")
    return path


def test_picking_an_occurrence_opens_its_example_at_its_token(store):
    from playwright.sync_api import sync_playwright

    from routeviz.store import open_store

    tokens = open_store(store).example_tokens("words", 2)
    token = tokens.index("ight")  # only in example 2: the table's one row
    with streamlit_app(ROOT / "app.py", store) as base, sync_playwright() as p:
        browser, pg = open_inspect(p, base, "run=words&example=0&token=0&q=ight")
        table = pg.locator("[data-testid=stDataFrame]").first
        table.scroll_into_view_if_needed()
        box = table.bounding_box()
        # the row's selection marker: the grid's first column, under its 35-pixel header
        pg.mouse.click(box["x"] + 15, box["y"] + 35 + 17)
        idle(pg)
        pg.wait_for_function(
            "() => document.querySelector('[aria-label^=\"Example (id\"]')?.value === '2'")
        pg.wait_for_function(
            f"() => document.querySelector('[aria-label^=\"Token (0\"]')?.value === '{token}'")
        browser.close()
