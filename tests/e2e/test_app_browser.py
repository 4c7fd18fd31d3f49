"""The real app in a real browser: Streamlit on 127.0.0.1 driven by Debian Chromium through
Playwright. Types a text and uploads an image on Inspect, opens Specialization, checks long
inputs, bad uploads and HTML in tokens, and saves full-page screenshots (tests/e2e/shots.py:
a temporary directory, or docs/screenshots/ under `make screenshots`).

Runs `streamlit run app.py` with the sample models text-moe and glyph-vit; where their
weights do not load, it serves tests/e2e/toy_app.py (app.py plus the tests' toy models)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.shots import screenshot_dir
from tests.e2e.streamlit_server import ARGS, CHROMIUM, ROOT, streamlit_app  # noqa: F401
TIMEOUT_MS = 60_000

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs /usr/bin/chromium")]


def loadable(name: str) -> bool:
    from routeviz.runs.models import load_model

    try:
        load_model(name)
        return True
    except Exception:  # noqa: BLE001 — weights not built yet
        return False


@pytest.fixture(scope="module")
def models():
    return {"text": "text-moe" if loadable("text-moe") else "toy-text",
            "image": "glyph-vit" if loadable("glyph-vit") else "toy-image"}


@pytest.fixture(scope="module")
def store(tmp_path_factory, models):
    """A store holding a tagged dataset run, so Specialization has something to show."""
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record
    from tests.app_toys import load, toy_dataset

    path = tmp_path_factory.mktemp("e2e") / "store"
    if models["text"] == "text-moe":
        from routeviz.plugins import load_dataset

        record(load_model("text-moe"), load_dataset("stdlib", 24), path, "stdlib-24")
    else:
        record(load("toy-text"), toy_dataset(), path, "toy-words")
    return path, ("stdlib-24" if models["text"] == "text-moe" else "toy-words")


@pytest.fixture(scope="module")
def server(store, models):
    """`streamlit run app.py`; the toy wrapper only when a sample model's weights are missing."""
    real = models == {"text": "text-moe", "image": "glyph-vit"}
    script = ROOT / ("app.py" if real else "tests/e2e/toy_app.py")
    with streamlit_app(script, store[0]) as base:
        yield base


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.base = server
    yield pg
    context.close()


# -- driving Streamlit --------------------------------------------------------------
def open_page(pg, path=""):
    pg.goto(f"{pg.base}/{path}")
    pg.get_by_role("heading", level=1).first.wait_for()
    pg.locator("[data-testid=stSidebar] input[aria-label=Run]").wait_for()  # the store has runs
    idle(pg)


def idle(pg):
    """Wait until the script run finished (the running indicator is gone)."""
    time.sleep(0.3)
    pg.wait_for_function(IDLE)


# The script run is over: the app says so (the running indicator shows only after 0.5 s)
IDLE = """() => {
    const app = document.querySelector('[data-testid=stApp]');
    return (!app || app.getAttribute('data-test-script-state') !== 'running')
        && !document.querySelector('[data-testid=stStatusWidget]');
}"""


def choose(pg, label, option):
    pg.locator("[data-testid=stSelectbox]").filter(has_text=label).first.click()
    pg.get_by_role("option", name=option, exact=True).click()
    idle(pg)


def run_model(pg, model, text=None, upload=None, timeout=TIMEOUT_MS):
    choose(pg, "Model", model)
    if text is not None:
        pg.get_by_label("Type or paste a text").fill(text)
    if upload is not None:
        name, data, mime = upload
        pg.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(
            {"name": name, "mimeType": mime, "buffer": data})
        pg.get_by_text(name).first.wait_for()
        idle(pg)  # the upload reruns the script; clicking before it ends races the upload
    click_and_wait_for_run(pg, "Run the model", timeout)


def click_and_wait_for_run(pg, button, timeout=TIMEOUT_MS):
    """Click `button`; done when the sidebar shows a new run, or an error is on the page."""
    before = current_run(pg)
    pg.get_by_role("button", name=button).click()
    pg.wait_for_function(
        """(before) => {
            if (document.querySelector('[data-testid=stAlertContentError]')) return true;
            const box = document.querySelector('[data-testid=stSidebar] input[aria-label=Run]');
            return box && box.value.startsWith('inspect-') && box.value !== before;
        }""", arg=before)
    idle(pg)


def current_run(pg) -> str:
    """The run picked in the sidebar (a combobox whose value is the run name)."""
    return pg.locator("[data-testid=stSidebar] input[aria-label=Run]").input_value()


def screenshot(pg, name):
    """Full page: the main area scrolls, so grow the viewport to its height first."""
    pg.evaluate("() => document.activeElement && document.activeElement.blur()")
    measure = "() => document.querySelector('[data-testid=stMain]').scrollHeight"
    height = 0
    for _ in range(4):  # charts below the fold render once visible: grow until it settles
        new = int(min(max(pg.evaluate(measure), 900), 6000))
        if new == height:
            break
        height = new
        pg.set_viewport_size({"width": 1400, "height": height})
        time.sleep(1.0)
    pg.screenshot(path=str(screenshot_dir() / name), full_page=True)
    pg.set_viewport_size({"width": 1400, "height": 900})


def image_bytes(width, height, fmt="PNG") -> bytes:
    """A smooth photo-like gradient with a few shapes (compresses like a photo)."""
    from PIL import Image, ImageDraw

    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                    (x + y) * 255 // max(width + height - 2, 1)], -1).astype("uint8")
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    draw.ellipse([width // 4, height // 4, width // 2, height // 2], fill=(250, 250, 250))
    draw.rectangle([width // 2, height // 2, 3 * width // 4, 7 * height // 8], fill=(20, 20, 20))
    buf = io.BytesIO()
    image.save(buf, format=fmt, quality=90) if fmt == "JPEG" else image.save(buf, format=fmt)
    return buf.getvalue()


def errors(pg) -> list[str]:
    return pg.locator("[data-testid=stAlertContentError]").all_inner_texts()


# -- the checks ---------------------------------------------------------------------
def test_typed_text_shows_chips_and_heatmap(page, models):
    open_page(page)
    run_model(page, models["text"], text="def route(token):\n    return experts[token % 8]\n"
                                         "# every token goes somewhere")
    chips = page.locator(".rv-chips .rv-chip")
    chips.first.wait_for()
    assert chips.count() > 5
    assert chips.first.get_attribute("title").startswith("#0")  # the hover card
    heatmap = page.locator("[data-testid=stPlotlyChart]").first
    heatmap.locator(".heatmaplayer, .hm").first.wait_for(state="attached")
    assert "Token × layer" in heatmap.inner_text()
    assert not errors(page)
    screenshot(page, "inspect-text.png")


def test_uploaded_png_shows_patch_overlay(page, models):
    open_page(page)
    run_model(page, models["image"], upload=("shapes.png", image_bytes(320, 240), "image/png"))
    overlay = page.locator("[data-testid=stPlotlyChart]").filter(has_text="per patch").first
    overlay.wait_for()
    assert overlay.locator("image").count() >= 1  # the picture under the grid
    assert not errors(page)
    screenshot(page, "inspect-image.png")


def test_specialization_shows_focus_and_cover(page, store):
    open_page(page, "specialization")
    choose(page, "Run", store[1])
    figure = page.locator("[data-testid=stPlotlyChart]").filter(has_text="Focus and Cover").first
    figure.wait_for()
    assert "Focus" in figure.inner_text() and "Cover" in figure.inner_text()
    page.locator("[data-testid=stPlotlyChart]").filter(has_text="A_ij").first.wait_for()
    metrics = page.locator("[data-testid=stMetric]").all_inner_texts()
    assert any(m.startswith("Focus (pooled)") for m in metrics)
    screenshot(page, "specialization.png")
    page.locator("[data-testid=stSidebarNav] a").filter(has_text="Load & depth").click()
    idle(page)
    page.locator("[data-testid=stPlotlyChart]").first.wait_for()
    screenshot(page, "load-depth.png")
    page.locator("[data-testid=stSidebarNav] a").filter(has_text="Experts").click()
    idle(page)
    page.get_by_text("Expert 0").first.wait_for()
    screenshot(page, "experts.png")


def test_long_text_runs_in_windows_and_says_so(page, models):
    open_page(page)
    lines = [f"the router sends word{i} to an expert and the expert returns it ." for i in range(1540)]
    # 20,020 words: text-moe's context is 128 tokens, so ~320 windows, each traced
    run_model(page, models["text"], text="\n".join(lines), timeout=5 * TIMEOUT_MS)
    page.locator("[data-testid=stAlertContentInfo]").filter(
        has_text="consecutive windows").wait_for()
    page.locator(".rv-chip").first.wait_for()
    assert page.locator(".rv-chips .rv-chip").count() <= 2000
    assert not page.locator("[data-testid=stAlertContentInfo]").filter(
        has_text="truncated to").count()


def test_first_visit_try_button_runs_an_example(page, models):
    open_page(page)
    choose(page, "Model", models["text"])
    tries = page.get_by_role("button", name="Try:")
    assert tries.count() >= 1 or models["text"] == "toy-text"
    if not tries.count():
        pytest.skip("the toy fallback model offers no example")
    name = tries.first.inner_text().strip()
    page.get_by_text("routing:").first.wait_for()  # the model's one-line description
    click_and_wait_for_run(page, name)
    page.locator(".rv-chips .rv-chip").first.wait_for()
    page.locator(".rv-states").first.wait_for()  # the legend of every state
    assert not errors(page)


def test_image_patches_answer_a_hover(page, models):
    open_page(page)
    if models["image"] == "glyph-vit":
        choose(page, "Model", "glyph-vit")
        click_and_wait_for_run(page, "Try: glyph 0 (a letter B)")
    else:
        run_model(page, models["image"], upload=("shapes.png", image_bytes(320, 240), "image/png"))
    overlay = page.locator("[data-testid=stPlotlyChart]").filter(has_text="per patch").first
    overlay.wait_for()
    drag = overlay.locator(".nsewdrag").first
    drag.scroll_into_view_if_needed()
    time.sleep(0.5)
    box = drag.bounding_box()
    assert box["width"] == pytest.approx(box["height"], rel=0.1) or models["image"] != "glyph-vit"
    drag.hover(position={"x": box["width"] * 0.6, "y": box["height"] * 0.6}, timeout=5000)
    page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] * 0.62, steps=4)
    hover = page.locator(".hoverlayer .hovertext").first
    hover.wait_for()
    text = hover.text_content()
    assert text.startswith("#") and "tags:" in text  # the patch: its number, route, tags
    assert not errors(page)


def test_big_photo_is_downscaled_and_says_so(page, models):
    open_page(page)
    run_model(page, models["image"], upload=("photo.jpg", image_bytes(4000, 3000, "JPEG"),
                                              "image/jpeg"))
    # the page names the photo's size and what it draws (waits until it is there)
    assert not errors(page), errors(page)
    page.locator("[data-testid=stAlertContentInfo]").filter(has_text="4000×3000").wait_for()
    page.locator("[data-testid=stPlotlyChart]").first.wait_for()
    assert not errors(page)


@pytest.mark.parametrize("name,data,mime,expected", [
    ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50, "image/png", "broken.png"),
    ("empty.txt", b"", "text/plain", "empty"),
])
def test_bad_upload_shows_an_error_and_the_app_keeps_running(page, models, name, data, mime,
                                                              expected):
    open_page(page)
    model = models["image"] if mime.startswith("image") else models["text"]
    run_model(page, model, upload=(name, data, mime))
    page.locator("[data-testid=stAlertContentError]").first.wait_for()
    assert any(expected in e for e in errors(page))
    open_page(page, "runs")  # still serving
    assert page.get_by_role("heading", name="Runs").count() == 1


def test_html_in_tokens_renders_as_text(page, models):
    open_page(page)
    run_model(page, models["text"],
              text="<script>window.__xss=1</script> <img src=x onerror=window.__xss=2> ok")
    page.locator(".rv-chip").first.wait_for()
    shown = "".join(page.locator(".rv-chip").all_inner_texts())
    assert "<script>" in shown.replace(" ", "") or "script" in shown
    assert page.evaluate("() => window.__xss") is None
    assert page.locator(".rv-chips script, .rv-chips img").count() == 0
