"""Where the browser's share of a click on Inspect goes: Chromium's own CPU profile (the
DevTools protocol's sampling profiler, 200 µs) over `--repeats` clicks on "Run the model"
(the ~200-token text on text-moe of benchmarks/app_driver.py) and as many switches
Experts -> Inspect, after a first click that loads the model.

The page's main-thread samples are put in buckets by the script they ran in (a native call,
such as querySelector, counts for the script that made it):
  react       - react-dom: reconciling Streamlit's element tree with the new run's deltas
  css_in_js   - emotion: the styled components' class names and style rules
  markdown    - Streamlit's Markdown/HTML elements (st.html's sanitising and parsing)
  streamlit   - the rest of Streamlit's frontend (messages, widgets, layout code)
  native      - "(program)": V8's samples outside JavaScript (Chromium's own work and the
                profiler's; the trace below splits the main thread's time better)
  gc          - garbage collection
  probe       - this benchmark's own polling for the result (Playwright's injected script)
Idle time is left out. Then the same actions again under a Chromium trace
(devtools.timeline): the renderer's main thread, its events' self time in groups (script,
style_layout, paint_composite, other). Prints one JSON object: per bucket and group,
milliseconds per action and the share of the busy time; the top script files and functions
by self time.

usage: python -m benchmarks.profile_browser [--repeats 3]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
from pathlib import Path

from benchmarks.app_driver import (
    CHROMIUM,
    click_and_wait,
    inspect_store,
    nav,
    open_and_wait,
    open_app,
)

HERE = Path(__file__).resolve().parent

SPECIAL = {"(program)": "native", "(garbage collector)": "gc", "(idle)": "idle",
           "(root)": "idle"}


def bucket_of(url: str) -> str:
    name = url.rsplit("/", 1)[-1]
    if "react-dom" in name:
        return "react"
    if "emotion" in name:
        return "css_in_js"
    if "StreamlitMarkdown" in name:
        return "markdown"
    if "plotly" in name.lower():
        return "plotly"
    return "streamlit"


def summarize(profile: dict, actions: int, top: int = 12) -> dict:
    """Self time per sample bucket (module docstring), per action."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", [])}
    spent = collections.Counter()
    for node, delta in zip(profile["samples"], profile["timeDeltas"]):
        spent[node] += delta

    def owner(node: int) -> str:  # the nearest frame with a script URL, else what it is
        frame = nodes[node]["callFrame"]
        if frame["functionName"] in SPECIAL and not frame["url"]:
            return SPECIAL[frame["functionName"]]
        at = node
        while at is not None:
            url = nodes[at]["callFrame"]["url"]
            if url:
                return "script:" + url
            at = parent.get(at)
        return "probe"

    buckets, files, functions = collections.Counter(), collections.Counter(), collections.Counter()
    for node, us in spent.items():
        who = owner(node)
        kind = bucket_of(who) if who.startswith("script:") else who
        buckets[kind] += us
        if who.startswith("script:"):
            files[who.rsplit("/", 1)[-1]] += us
            frame = nodes[node]["callFrame"]
            functions[f"{frame['functionName'] or '(anonymous)'} "
                      f"{frame['url'].rsplit('/', 1)[-1] or who.rsplit('/', 1)[-1]}"
                      f":{frame['lineNumber']}"] += us
    buckets.pop("idle", None)
    busy = sum(buckets.values())
    per = lambda us: round(us / 1000 / actions, 1)
    return {"busy_ms_per_action": per(busy),
            "buckets": {k: {"ms_per_action": per(v), "share": round(v / busy, 3)}
                        for k, v in buckets.most_common()},
            "top_files_ms_per_action": {k: per(v) for k, v in files.most_common(top)},
            "top_functions_ms_per_action": {k: per(v) for k, v in functions.most_common(top)}}


GROUPS = (("script", ("FunctionCall", "EvaluateScript", "RunMicrotasks", "V8.", "v8.",
                       "TimerFire", "EventDispatch", "FireAnimationFrame", "ParseHTML")),
          ("style_layout", ("recalcStyle", "updateStyle", "Layout", "UpdateStyleAndLayout",
                            "UpdateLayoutTree", "HitTest")),
          ("paint_composite", ("Paint", "Composit", "Commit", "Layerize", "Canvas",
                               "Raster", "Image")))


def group_of(name: str) -> str:
    for group, marks in GROUPS:
        if any(mark in name for mark in marks):
            return group
    return "other"


def main_thread(events: list, actions: int) -> dict:
    """Self time of the renderer main thread's complete events, grouped (GROUPS)."""
    threads = {(e["pid"], e["tid"]) for e in events
               if e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"}
    spans = sorted((e for e in events if (e.get("pid"), e.get("tid")) in threads
                    and e.get("ph") == "X" and "dur" in e), key=lambda e: (e["ts"], -e["dur"]))
    own, stack = collections.Counter(), []
    for e in spans:  # nested events: a parent's self time excludes its children
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
            stack.pop()
        if stack:
            own[stack[-1]["name"]] -= e["dur"]
        own[e["name"]] += e["dur"]
        stack.append(e)
    groups = collections.Counter()
    for name, us in own.items():
        groups[group_of(name)] += us
    busy = sum(groups.values())
    return {"busy_ms_per_action": round(busy / 1000 / actions, 1),
            "groups": {k: {"ms_per_action": round(v / 1000 / actions, 1),
                           "share": round(v / busy, 3)} for k, v in groups.most_common()},
            "top_events_ms_per_action": {k: round(v / 1000 / actions, 1)
                                         for k, v in own.most_common(8)}}


def traced(browser, pg, actions, path: Path) -> dict:
    browser.start_tracing(page=pg, path=str(path),
                          categories=["devtools.timeline", "v8.execute", "blink"])
    seconds = [action() for action in actions]
    browser.stop_tracing()
    events = json.loads(path.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    return {"seconds": [round(s, 3) for s in seconds], **main_thread(events, len(actions))}


def profiled(pg, actions) -> dict:
    cdp = pg.context.new_cdp_session(pg)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    cdp.send("Profiler.start")
    seconds = [action() for action in actions]
    profile = cdp.send("Profiler.stop")["profile"]
    cdp.detach()
    return {"seconds": [round(s, 3) for s in seconds], **summarize(profile, len(actions))}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        return {"benchmark": "profile_browser", "error": f"needs {CHROMIUM}"}
    from playwright.sync_api import sync_playwright

    from tests.e2e.streamlit_server import streamlit_app
    from tests.e2e.test_app_browser import choose, idle

    _, text, n_tokens, folder, store = inspect_store("routeviz-browser-")
    os.environ.setdefault("ROUTEVIZ_APP_CACHE", str(folder / "app-cache"))
    out = {"benchmark": "profile_browser", "load_average_start": round(os.getloadavg()[0], 2),
           "text_tokens_given": n_tokens, "sampling_interval_us": 200}
    chips = ".rv-chips .rv-chip"
    try:
        with streamlit_app(HERE / "app_timed.py", store) as base, sync_playwright() as p:
            browser, pg = open_app(p, base)
            choose(pg, "Model", "text-moe")
            pg.get_by_label("Type or paste a text").fill(text)
            click_and_wait(pg, chips)  # loads the model: not counted
            click_and_wait(pg, chips)
            click = [lambda: click_and_wait(pg, chips)[0]] * args.repeats
            out["click"] = profiled(pg, click)
            idle(pg)
            out["click"]["main_thread"] = traced(browser, pg, click, folder / "click.json")
            idle(pg)

            def switch() -> float:
                open_and_wait(pg, nav(pg, "Experts"), "Experts")
                return open_and_wait(pg, nav(pg, "Inspect"), "Inspect")

            open_and_wait(pg, nav(pg, "Experts"), "Experts")  # first visits: not counted
            open_and_wait(pg, nav(pg, "Inspect"), "Inspect")
            out["switch_experts_and_back"] = profiled(pg, [switch] * args.repeats)
            out["switch_experts_and_back"]["main_thread"] = traced(
                browser, pg, [switch] * args.repeats, folder / "switch.json")
            browser.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
