"""The What-if panel in a real browser (Streamlit on 127.0.0.1, Debian Chromium through
Playwright): on Inspect, under a text-moe example, open the What-if expander, pick a site
and an expert to ablate, click the button, and the page shows the plain and what-if
outputs, the next-token KL and the tokens whose routing changed; the store holds the
what-if run, without the ablated expert at its site. Saves whatif.png (to docs/screenshots/
under `make screenshots`, a temporary directory otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.shots import screenshot_dir
from tests.e2e.streamlit_server import ROOT, streamlit_app
from tests.e2e.test_timeline_browser import ARGS, CHROMIUM, idle

TEXT = "def add(x, y):\n    return x + y  # add two numbers"
SITE = "blocks.0.mlp.router"

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")]


@pytest.fixture(scope="module")
def text_store(tmp_path_factory):
    from routeviz.runs.inputs import Item
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record
    from routeviz.store import open_store

    path = tmp_path_factory.mktemp("whatif-e2e") / "store"
    record(load_model("text-moe"), [Item(text=TEXT, source="typed text")], path, "code")
    routes = open_store(path).example_routes("code", 0)
    chosen = routes[(routes.site == SITE) & (routes.kind == "expert")].choice
    return path, int(chosen.value_counts().idxmax())


def pick(pg, label, option):
    """Choose `option` in the multiselect labelled `label` (its list closes if a script run
    lands meanwhile: open it again)."""
    box = pg.locator("[data-testid=stMultiSelect]").filter(has_text=label).first
    item = pg.get_by_role("option", name=option, exact=True)
    def chosen() -> bool:  # its tag shows in the closed box (a rerun may reset the widget)
        return option in box.inner_text().replace(label, "").split()

    for _ in range(5):
        idle(pg)
        if chosen():
            return
        box.click()
        try:
            item.click(timeout=5_000)
        except Exception:  # noqa: BLE001 — playwright's TimeoutError: try again
            pass
        pg.keyboard.press("Escape")
    idle(pg)
    assert chosen(), f"could not choose {option!r} in {label!r}"


def test_ablate_in_the_browser(text_store):
    from playwright.sync_api import sync_playwright

    from routeviz.store import open_store

    path, ablated = text_store
    with streamlit_app(ROOT / "app.py", path) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        pg.set_default_timeout(90_000)
        pg.goto(base)  # Inspect is the default page
        pg.get_by_role("heading", name="Inspect").first.wait_for()
        idle(pg)
        panel = pg.locator("[data-testid=stExpander]").filter(has_text="What if")
        panel.get_by_text("What if: run it again").click()
        idle(pg)
        pick(pg, "Ablate at sites", SITE)
        pick(pg, "these experts", str(ablated))
        pick(pg, "Ablate at sites", SITE)  # still chosen after the experts' rerun
        idle(pg)
        pg.get_by_role("button", name="Run with this intervention").click()
        pg.get_by_text("Next-token KL").wait_for()
        panel.get_by_text("changed a decision").wait_for()  # the last caption of the run
        idle(pg)
        body = panel.inner_text()
        panel.screenshot(path=str(screenshot_dir() / "whatif.png"))
        browser.close()
    assert "Plain: model output" in body and "What if: model output" in body
    assert "changed a decision" in body and "error" not in body.lower()
    store = open_store(path)
    # named after the intervention; the recorded run is the plain run (no duplicate)
    edited = [r for r in store.run_names() if r.startswith(f"whatif-ablate-e{ablated}-")]
    assert len(edited) == 1 and sorted(store.run_names()) == sorted(["code", edited[0]])
    routes = store.example_routes(edited[0], 0)
    assert ablated not in set(routes[routes.site == SITE].choice)
