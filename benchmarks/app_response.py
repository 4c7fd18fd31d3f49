"""The app's response in a real browser: seconds from clicking "Run the model" on Inspect to
the result on screen (text: the token chips; image: the patch views), and its parts.

Serves app.py (through benchmarks/app_timed.py; benchmarks/app_driver.py drives it, which logs record()'s timings) with
`streamlit run` on 127.0.0.1 and drives Debian Chromium with Playwright:
  text  - a ~200-token Python text on text-moe (the model keeps its first 128 tokens);
  image - a 1000 x 1000 photo-like JPEG (1 megapixel) on glyph-vit, or dinov2-small.
The first click loads the model (not counted: the app keeps it warm, see load_runner); then
`--repeats` clicks are timed. Parts per click, from record()'s log: model (encode + forward,
the hooks included), trace (opening the run, attaching the kept hooks), storage (hand-off,
Parquet writes, closing the run); drawing is the rest (the page's rerun: store refresh,
queries, figures, the browser's rendering).

Then, on the same server: page switches (Inspect <-> Experts, medians after a first visit),
Compare's first open on the last run, and Timeline's first paint on a shipped series store
(the app's disk cache in a fresh folder, so the series metrics are computed: a cold start).
`pages`: every page's first visit and revisit on a synthetic run of `--examples` (1,000)
examples, in a new app process. Each page counts as drawn when its title shows and the
app's script run is over; the server's and the browser's CPU seconds come with it.

usage: python -m benchmarks.app_response [--repeats 3] [--image-model glyph-vit]
       [--only text image switch compare timeline pages] [--examples 1000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.app_driver import (
    CHROMIUM,
    click_and_wait,
    inspect_store,
    nav,
    open_and_count,
    open_and_wait,
    open_app,
)
from benchmarks.common import scratch

HERE = Path(__file__).resolve().parent
SERIES = HERE.parent / "sample_models" / "data" / "series"  # shipped series stores


class _Skipped(Exception):
    """A part left out by --only."""


def photo_jpeg(side: int = 1000) -> bytes:
    """A smooth, photo-like 1-megapixel RGB JPEG (gradients and blobs, no text)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side] / side
    img = np.stack([0.5 + 0.5 * np.sin(6 * x + 3 * y), 0.5 + 0.5 * np.cos(5 * y - 2 * x),
                    x * y], -1)
    for _ in range(12):
        cx, cy, r = rng.random(3) * [1, 1, 0.2]
        img += 0.4 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (r * r + 1e-3))[..., None] \
            * rng.random(3)
    buf = io.BytesIO()
    Image.fromarray((255 * img.clip(0, 1)).astype("uint8")).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def timings(log: Path) -> dict:
    out = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line.startswith("record "):
                entry = json.loads(line[len("record "):])
                out[entry["run"]] = entry
    return out


def measure(pg, log: Path, selector: str, repeats: int) -> dict:
    click_and_wait(pg, selector)  # loads the model: not counted
    clicks = []
    for _ in range(repeats):
        clicks.append(click_and_wait(pg, selector))
    logged = timings(log)
    rows = []
    for seconds, run, spent in clicks:
        t = logged.get(run, {})
        model = t.get("encode", 0) + t.get("forward", 0)
        rows.append({"click_to_result_s": seconds, "model_s": model, "trace_s": t.get("open"),
                     "storage_s": t.get("store"),
                     "drawing_s": seconds - t["total"] if "total" in t else None,
                     "server_cpu_s": (spent or {}).get("server"),
                     "browser_cpu_s": (spent or {}).get("browser")})
    med = {k: statistics.median([r[k] for r in rows if r[k] is not None] or [float("nan")])
           for k in rows[0]}
    return {"median": med, "clicks": rows}


def page_switches(pg, repeats: int) -> dict:
    """Inspect -> Experts -> Inspect, `repeats` times after a first visit (not counted)."""
    from tests.e2e.test_app_browser import idle

    first = {"Experts": open_and_wait(pg, nav(pg, "Experts"), "Experts")}
    first["Inspect"] = open_and_wait(pg, nav(pg, "Inspect"), "Inspect")
    times, cpu = [], {"Experts": [], "Inspect": []}
    for _ in range(repeats):
        for title in ("Experts", "Inspect"):
            seconds, spent = open_and_count(pg, nav(pg, title), title)
            times.append(seconds)
            if spent:
                cpu[title].append(spent)
    idle(pg)
    return {"median_s": statistics.median(times), "switches_s": times, "first_visit_s": first,
            "median_cpu_s": {title: {side: statistics.median(s[side] for s in spent)
                                     for side in ("server", "browser")}
                             for title, spent in cpu.items() if spent}}


def compare_first_open(pg, repeats: int) -> dict:
    """Compare opened on the current run (its first open computes), then revisits."""
    first = open_and_wait(pg, nav(pg, "Compare"), "Compare")  # drawn, whatever it shows
    again = []
    for _ in range(repeats):
        open_and_wait(pg, nav(pg, "Inspect"), "Inspect")
        again.append(open_and_wait(pg, nav(pg, "Compare"), "Compare"))
    return {"first_open_s": first, "revisit_median_s": statistics.median(again)}


PAGE_TITLES = ["Experts", "Specialization", "Load & depth", "Embeddings", "Compare", "Runs",
               "Export", "Inspect"]


def every_page(p, n_examples: int) -> dict:
    """Each page's first paint on a synthetic run of `n_examples` examples × 64 tokens × 8
    sites × 16 experts (tests.report_store.large_run), in a new app process with an empty
    disk cache: the first visit (its queries computed), then a revisit after another page.
    Seconds to the page drawn with its script run finished, and the CPU each side spent."""
    from tests.e2e.streamlit_server import streamlit_app
    from tests.report_store import large_run

    folder = Path(tempfile.mkdtemp(prefix="routeviz-pages-", dir=scratch()))
    store = folder / "store"
    out = {"examples": n_examples, "routes": large_run(store, n_examples=n_examples)}
    before = os.environ.get("ROUTEVIZ_APP_CACHE")
    os.environ["ROUTEVIZ_APP_CACHE"] = str(folder / "app-cache")
    try:
        with streamlit_app(HERE / "app_timed.py", store) as base:
            browser, pg = open_app(p, base)
            for title in PAGE_TITLES:
                first, first_cpu = open_and_count(pg, nav(pg, title), title)
                other = "Runs" if title != "Runs" else "Export"
                open_and_wait(pg, nav(pg, other), other)
                again, again_cpu = open_and_count(pg, nav(pg, title), title)
                out[title] = {"first_s": round(first, 3), "first_cpu_s": first_cpu,
                              "revisit_s": round(again, 3), "revisit_cpu_s": again_cpu}
            browser.close()
    finally:
        if before is None:
            os.environ.pop("ROUTEVIZ_APP_CACHE", None)
        else:
            os.environ["ROUTEVIZ_APP_CACHE"] = before
        shutil.rmtree(folder, ignore_errors=True)
    return out


def timeline_first_paint(pg, series_store: Path) -> dict:
    """Timeline on a shipped series store, from the store's path entered in the sidebar to
    the first metric chart: `first_paint_s` in an app process that has not computed it."""
    box = pg.locator("[data-testid=stSidebar] input[aria-label='Store directory']")

    def enter():
        box.fill(str(series_store))
        box.press("Enter")

    open_and_wait(pg, nav(pg, "Timeline"), "Timeline")
    first, done = paint_and_finish(pg, enter)
    open_and_wait(pg, nav(pg, "Runs"), "Runs")
    again, again_done = paint_and_finish(pg, nav(pg, "Timeline"))
    return {"series_store": series_store.name, "first_paint_s": first, "complete_s": done,
            "revisit_s": again, "revisit_complete_s": again_done}


PAINTED = """() => {
    const h1 = document.querySelector('[data-testid=stMain] h1');
    return !!h1 && h1.innerText.startsWith('Timeline')
        && !!document.querySelector('[data-testid=stMain] .js-plotly-plot .main-svg');
}"""


def paint_and_finish(pg, click) -> tuple[float, float]:
    """Seconds from `click()` to Timeline's first chart drawn (its first paint: the page
    goes on drawing the charts below) and to the page complete (script run over)."""
    start = time.perf_counter()
    click()
    pg.wait_for_function(PAINTED, polling=10)
    first = time.perf_counter() - start
    return first, open_and_wait(pg, lambda: None, "Timeline", ".js-plotly-plot") + first



def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-model", default="glyph-vit")
    parser.add_argument("--series", default="text-moe",
                        help="shipped series store for Timeline's first paint")
    parser.add_argument("--only", nargs="*", default=None,
                        help="parts to measure: text image switch compare timeline pages")
    parser.add_argument("--examples", type=int, default=1000,
                        help="examples of the synthetic run the `pages` part visits")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        return {"benchmark": "app_response", "error": f"needs {CHROMIUM}"}
    from playwright.sync_api import sync_playwright

    from routeviz.runs.uploads import item_from_text
    from tests.e2e.streamlit_server import streamlit_app
    from tests.e2e.test_app_browser import choose, idle

    runner, text, n_tokens, folder, store = inspect_store("routeviz-app-")
    log = folder / "timings.log"
    os.environ["ROUTEVIZ_TIMINGS_LOG"] = str(log)
    os.environ.setdefault("ROUTEVIZ_APP_CACHE", str(folder / "app-cache"))  # a cold first paint
    out = {"benchmark": "app_response", "load_average_start": os.getloadavg()[0],
           "text": {"model": "text-moe", "tokens_given": n_tokens,
                    "tokens_traced": len(runner.encode([item_from_text(text)]).tokens[0])},
           "image": {"model": args.image_model, "pixels": "1000x1000 JPEG"}}
    try:
        with streamlit_app(HERE / "app_timed.py", store) as base, sync_playwright() as p:
            browser, pg = open_app(p, base)
            parts = set(args.only or ("text", "image", "switch", "compare", "timeline",
                                      "pages"))
            try:
                if "text" not in parts:
                    raise _Skipped
                choose(pg, "Model", "text-moe")
                pg.get_by_label("Type or paste a text").fill(text)
                out["text"].update(measure(pg, log, ".rv-chips .rv-chip", args.repeats))
            except _Skipped:
                out.pop("text")
            except Exception as exc:  # noqa: BLE001 — the page changed: say where it stopped
                out["text"]["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            for name, measure_part in (("switch", lambda: page_switches(pg, args.repeats)),
                                       ("compare", lambda: compare_first_open(pg, args.repeats))):
                if name in parts:
                    try:
                        out[name] = measure_part()
                    except Exception as exc:  # noqa: BLE001
                        out[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
            try:
                if "image" not in parts:
                    raise _Skipped
                open_and_wait(pg, nav(pg, "Inspect"), "Inspect")
                pg.get_by_label("Type or paste a text").fill("")
                choose(pg, "Model", args.image_model)
                pg.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(
                    {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo_jpeg()})
                time.sleep(1.0)  # the upload reruns the script
                idle(pg)
                out["image"].update(measure(
                    pg, log, "[data-testid=stMain] img, [data-testid=stMain] .js-plotly-plot",
                    args.repeats))
            except _Skipped:
                out.pop("image")
            except Exception as exc:  # noqa: BLE001
                out["image"]["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            if "timeline" in parts:
                try:
                    out["timeline"] = timeline_first_paint(pg, SERIES / args.series)
                except Exception as exc:  # noqa: BLE001
                    out["timeline"] = {"error": f"{type(exc).__name__}: "
                                                f"{str(exc).splitlines()[0]}"}
            browser.close()
        if "pages" in parts:
            with sync_playwright() as p:
                try:
                    out["pages"] = every_page(p, args.examples)
                except Exception as exc:  # noqa: BLE001
                    out["pages"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
        if "timeline" in parts and "error" not in out.get("timeline", {"error": 1}):
            # a new app process, the disk cache it left: what the next start of the app sees
            with streamlit_app(HERE / "app_timed.py", store) as base, sync_playwright() as p:
                browser, pg = open_app(p, base)
                again = timeline_first_paint(pg, SERIES / args.series)
                out["timeline"]["next_process_first_paint_s"] = again["first_paint_s"]
                browser.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out["load_average_end"] = os.getloadavg()[0]
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
