"""Markup in user data never runs: a store whose tokens, file names and tag values carry
script payloads is shown by the real app (Streamlit on 127.0.0.1, Debian Chromium through
Playwright) on every page that shows them; no payload runs and the literal text is visible.

Run names cannot carry markup at all: `check_run_name` refuses them (asserted below)."""

from __future__ import annotations

import os
import time

import pytest

from tests.e2e.streamlit_server import ROOT, streamlit_app
from tests.e2e.test_app_browser import ARGS, CHROMIUM, TIMEOUT_MS, idle

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs /usr/bin/chromium")]

SCRIPT = "<script>window.__pwned=1;console.log('PWNED')</script>"
IMG = "<img/src=x/onerror=window.__pwned=2;console.log('PWNED')>"
SVG = "<svg/onload=window.__pwned=3;console.log('PWNED')>"
SOURCE = "<img/src=y/onerror=window.__pwned=4>.txt"
RUN = "hostile-markup"


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    from routeviz.errors import RoutevizError
    from routeviz.runs.inputs import Item
    from routeviz.runs.record import record
    from routeviz.store.schema import check_run_name
    from tests.app_toys import load

    for name in (SCRIPT, "<b>run</b>", "a'onmouseover=alert(1)"):
        with pytest.raises(RoutevizError):
            check_run_name(name)
    items = [Item(text=f"alpha {SCRIPT} beta {IMG} gamma {SVG} {i}",
                  source=SOURCE if i == 0 else f"doc-{i}.txt",
                  tags={"kind": SCRIPT if i % 2 else IMG, "topic": SVG})
             for i in range(6)]
    path = tmp_path_factory.mktemp("markup") / "store"
    record(load("toy-text"), items, path, RUN, batch_size=3)
    return path


@pytest.fixture(scope="module")
def server(hostile_store):
    with streamlit_app(ROOT / "tests/e2e/toy_app.py", hostile_store) as base:
        yield base


INJECTED = """() => ({
    pwned: typeof window.__pwned,
    scripts: [...document.scripts].filter(s => s.text.includes('__pwned')).length,
    handlers: document.querySelectorAll('[onerror], [onload], [onmouseover]').length,
})"""


TEXT = """() => document.body.textContent + [...document.querySelectorAll('input')]
    .map(i => i.value).join(' ')"""


def test_payloads_are_shown_as_text_and_never_run(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            console, dialogs = [], []
            page.on("console", lambda msg: console.append(msg.text))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            seen = {}
            for path in ("", "experts", "specialization", "runs", "embeddings"):
                page.goto(f"{server}/{path}")
                page.get_by_role("heading", level=1).first.wait_for()
                page.locator("[data-testid=stSidebar] input[aria-label=Run]").wait_for()
                idle(page)
                if path in ("", "specialization"):  # the payloads asserted below: drawn
                    page.wait_for_function(f"s => ({TEXT})().includes(s)", arg=SCRIPT)
                time.sleep(1.0)  # charts draw after the script run ends
                charts = page.locator(".js-plotly-plot .nsewdrag")
                for i in range(min(charts.count(), 3)):  # hover labels are drawn too
                    box = charts.nth(i).bounding_box()
                    if box:
                        page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 2)
                        time.sleep(0.2)
                assert page.evaluate(INJECTED) == {"pwned": "undefined", "scripts": 0,
                                                   "handlers": 0}, path
                seen[path or "inspect"] = page.evaluate(TEXT)
            assert not [m for m in console if "PWNED" in m] and dialogs == []
        finally:
            browser.close()
    assert SCRIPT in seen["inspect"] and IMG in seen["inspect"]  # token chips, literal
    assert SOURCE in seen["inspect"] or SOURCE in seen["runs"]  # the file name
    assert SCRIPT in seen["specialization"] and IMG in seen["specialization"]  # tag values
