"""The Experts page's grid of expert cards in a real browser (Streamlit + Debian Chromium
through Playwright): cards sorted by label strength, a card's link opening its full view,
token text that is markup shown as text inside cards. Saves the grid of text-moe over
`stdlib` as expert-cards.png (tests/e2e/shots.py; docs/screenshots/ under
`make screenshots`), or of the hand-written run where text-moe's weights do not load."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cards_store import SITE_A, VALUES, write_cards_run
from tests.e2e.streamlit_server import ROOT, streamlit_app
from tests.e2e.test_app_browser import CHROMIUM, TIMEOUT_MS, errors, idle, screenshot

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")]

STDLIB = "stdlib-96"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Hand-written runs with known labels; text-moe over 96 stdlib examples when it loads."""
    path = tmp_path_factory.mktemp("e2e-experts") / "store"
    write_cards_run(path, "copy-tag", "copy-tag")
    write_cards_run(path, "copy-token", "copy-token")
    try:
        from routeviz.runs.models import load_model
        from routeviz.runs.record import record
        from routeviz.runs.sampling import sample_dataset

        # the sample `routeviz trace --dataset stdlib --limit 96` takes (README's numbers)
        record(load_model("text-moe"), sample_dataset("stdlib", 96).items, path, STDLIB)
    except Exception as exc:  # noqa: BLE001 — weights not built: the hand-written runs only
        print(f"text-moe not recorded ({type(exc).__name__}: {exc}); hand-written runs only")
    return path


@pytest.fixture(scope="module")
def server(store):
    with streamlit_app(ROOT / "app.py", store) as base:
        yield base


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    yield ctx
    ctx.close()


def open_experts(context, base, query: str):
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.goto(f"{base}/?{query}")
    pg.get_by_role("heading", level=1).first.wait_for()
    idle(pg)
    return pg


def all_cards_drawn(pg) -> int:
    """Wait until every card the caption counts has its link and its table is drawn."""
    caption = pg.get_by_text("experts at", exact=False).first
    caption.wait_for()
    n = int(caption.inner_text().split(" ", 1)[0])
    pg.wait_for_function("(n) => [...document.querySelectorAll('a')].filter("
                         "a => a.innerText.includes('Open card')).length === n", arg=n)
    pg.wait_for_function("(n) => document.querySelectorAll('.rv-card table').length >= n",
                         arg=n)
    time.sleep(1.0)
    return n


def card_labels(pg) -> list[str]:
    """The label line of each grid card, in page order."""
    return pg.locator(".rv-card > p:nth-child(2)").all_inner_texts()


def test_grid_names_the_copied_values_and_a_link_opens_the_card(context, server):
    pg = open_experts(context, server, "page=experts&run=copy-tag")
    assert all_cards_drawn(pg) == 4
    labels = card_labels(pg)
    assert len(labels) == 4
    assert sorted(label.split(" ")[0] for label in labels) == [f"token_type={v}" for v in VALUES]
    assert all(label.count("× chance") == 1 for label in labels)
    link = pg.get_by_role("link", name="Open card →").nth(2)
    href = link.get_attribute("href")
    assert f"site={SITE_A}" in href.replace("%2E", ".") and "expert=" in href
    expert = int(href.rsplit("expert=", 1)[1])
    with context.expect_page() as opened:  # Streamlit opens markdown links in a new tab
        link.click()
    card = opened.value
    card.set_default_timeout(TIMEOUT_MS)
    card.get_by_role("heading", name=f"Expert {expert} at 0.mlp.gate").wait_for()
    idle(card)
    assert card.get_by_text("Fires with").count() + card.get_by_text("Feeds").count() >= 1
    assert not errors(card)
    card.get_by_role("button", name="← All experts at this site").click()
    idle(card)
    card.get_by_role("link", name="Open card →").first.wait_for()
    assert "expert=" not in card.url


def test_markup_in_token_text_stays_text_inside_cards(context, server):
    pg = open_experts(context, server, f"page=experts&run=copy-token&site={SITE_A}&expert=2")
    pg.get_by_role("heading", name="Expert 2 at 0.mlp.gate").wait_for()
    main = pg.locator("[data-testid=stMain]")
    never = main.get_by_text("Never shared", exact=False).first
    never.wait_for()
    assert "<b>bold</b>" in never.inner_text()  # shown as the characters typed
    assert main.locator("b", has_text="bold").count() == 0  # never an element
    contexts = main.locator("[data-testid=stText]").all_inner_texts()
    assert any("⟦<b>bold</b>⟧" in t for t in contexts)
    assert pg.evaluate("() => window.__pwned === undefined")


def test_grid_screenshot(context, server, store):
    run = STDLIB if (store / "runs" / f"run={STDLIB}").exists() else "copy-tag"
    pg = open_experts(context, server, f"page=experts&run={run}")
    n = all_cards_drawn(pg)
    assert not errors(pg)
    labels = card_labels(pg)
    assert len(labels) == n and all(("× chance" in x) or x == "no tag beyond chance" for x in labels)
    screenshot(pg, "expert-cards.png")
