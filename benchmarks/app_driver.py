"""Driving the dashboard in Chromium for the benchmarks: the app opened in Debian's Chromium
(Playwright), a click on Inspect's "Run the model" timed to its drawn result, a page switch
timed to the page drawn with its script run over, and the one-run store and ~200-token
text on text-moe the browser benchmarks start from (app_response, app_ab,
profile_browser, profile_app).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks.common import child_cpu, cpu_spent, scratch

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
TEXT_LINE = "def route(token, experts): return experts[hash(token) % len(experts)]"


def text_of_tokens(runner, n: int = 200) -> tuple[str, int]:
    """A code text of about `n` tokens for `runner`'s tokenizer (before its own truncation)."""
    from routeviz.runs.uploads import item_from_text

    words = (TEXT_LINE + "\n") * 40
    tokenizer = getattr(runner, "tokenizer", None)
    if hasattr(tokenizer, "encode"):  # a `tokenizers.Tokenizer`: count its tokens
        lines = words.splitlines()
        for k in range(1, len(lines) + 1):
            text = "\n".join(lines[:k])
            count = len(tokenizer.encode(text).ids)
            if count >= n:
                return text, count
    text = " ".join(words.split()[:n])
    return text, len(runner.encode([item_from_text(text)]).tokens[0])


# A click's result is drawn: the sidebar names a new run, `selector` is on the page and the
# rerun that draws it has finished. Without the last check (before this round's end) a click
# counted as done while the rerun was still drawing, with the old run's chips still shown.
DONE = """([before, selector]) => {
    if (document.querySelector('[data-testid=stAlertContentError]')) return 'error';
    const box = document.querySelector('[data-testid=stSidebar] input[aria-label=Run]');
    if (!box || !box.value.startsWith('inspect-') || box.value === before) return false;
    const app = document.querySelector('[data-testid=stApp]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    return document.querySelector('[data-testid=stMain] ' + selector) ? box.value : false;
}"""


def click_and_wait(pg, selector: str) -> tuple[float, str, dict | None]:
    """Seconds from the click to `selector` showing under a new run; the run's name; the
    CPU seconds the server and the browser spent on it (to the result, not the idle after)."""
    from tests.e2e.test_app_browser import idle

    before = pg.locator("[data-testid=stSidebar] input[aria-label=Run]").input_value()
    button = pg.get_by_role("button", name="Run the model")
    cpu = child_cpu()
    start = time.perf_counter()
    button.click()
    handle = pg.wait_for_function(DONE, arg=[before, selector], polling=10)
    seconds = time.perf_counter() - start
    spent = cpu_spent(cpu, child_cpu())
    run = handle.json_value()
    if run == "error":
        raise RuntimeError(pg.locator("[data-testid=stAlertContentError]").first.inner_text())
    idle(pg)
    return seconds, run, spent


SHOWN = """([title, selector]) => {
    // the script run finished: the app's own state (the running indicator shows only
    // after 0.5 s, so a page still computing would pass a check of it alone)
    const app = document.querySelector('[data-testid=stApp]');
    if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
    if (document.querySelector('[data-testid=stStatusWidget]')) return false;
    const h1 = document.querySelector('[data-testid=stMain] h1');
    if (!h1 || !h1.innerText.startsWith(title)) return false;
    return !selector || !!document.querySelector('[data-testid=stMain] ' + selector);
}"""


def open_and_wait(pg, click, title: str, selector: str = "") -> float:
    """Seconds from `click()` to the page titled `title` drawn with its run finished (and
    `selector` in it), held for 0.15 s so a rerun that starts late is not missed."""
    seconds, _ = open_and_count(pg, click, title, selector)
    return seconds


def open_and_count(pg, click, title: str, selector: str = "") -> tuple[float, dict | None]:
    """open_and_wait's seconds, and the CPU seconds the server and the browser spent until
    the page was drawn (child_cpu)."""
    cpu = child_cpu()
    start = time.perf_counter()
    click()
    while True:
        pg.wait_for_function(SHOWN, arg=[title, selector], polling=10)
        seconds = time.perf_counter() - start
        spent = cpu_spent(cpu, child_cpu())
        time.sleep(0.15)
        if pg.evaluate(SHOWN, [title, selector]):
            return seconds, spent


def nav(pg, title: str):
    return lambda: pg.locator("[data-testid=stSidebarNav] a").filter(has_text=title).first.click()


def open_app(p, base: str):
    """Chromium on the app at `base`, its sidebar drawn and no script running."""
    from tests.e2e.test_app_browser import idle

    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    pg = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    pg.set_default_timeout(int(os.environ.get("ROUTEVIZ_BENCH_TIMEOUT_MS", "180000")))
    pg.goto(base)
    pg.locator("[data-testid=stSidebar] input[aria-label=Run]").wait_for()
    idle(pg)
    return browser, pg


def inspect_store(prefix: str) -> tuple:
    """(text-moe's runner, the ~200-token text, its token count, a new folder under
    scratch(), its store holding one first run, so the app opens on a store with one)."""
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record
    from routeviz.runs.uploads import item_from_text

    runner = load_model("text-moe")
    text, n_tokens = text_of_tokens(runner)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch()))
    store = folder / "store"
    record(runner, [item_from_text("a first run, so the page opens on a store with one")],
           store, "inspect-0-first")
    return runner, text, n_tokens, folder, store
