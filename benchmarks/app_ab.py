"""Two versions of the app side by side in a real browser: the working tree against a git
revision (default HEAD), each served by its own `streamlit run` and drawn by its own
Chromium, taking turns action by action (the order rotated each round), so the load of a
shared machine falls on both alike. Per action it reports wall seconds and the CPU seconds
the server and the browser spent (benchmarks.common.child_cpu's reading, per process tree):
the figures to compare a change by, where wall time alone swings with the machine's load.

Actions: `switch:<Page>` opens that page from the sidebar (after a first visit that fills
the caches, not counted); `click` runs the model on Inspect (a ~200-token text on
text-moe). Each version records its own store with its own code.

usage: python -m benchmarks.app_ab [--base HEAD] [--rounds 6]
       [--actions switch:Experts switch:Inspect click]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import _descendants

ROOT = Path(__file__).resolve().parents[1]
RECORD = """
import sys
try:
    from benchmarks.app_driver import text_of_tokens
except ImportError:  # a revision from before benchmarks/app_driver.py
    from benchmarks.app_response import text_of_tokens
from routeviz.runs.models import load_model
from routeviz.runs.record import record
from routeviz.runs.uploads import item_from_text
runner = load_model("text-moe")
text, _ = text_of_tokens(runner)
record(runner, [item_from_text(text)], sys.argv[1], "inspect-0-first")
print(text)
"""


def _cpu(pids) -> float:
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
    return total


def _chromium_pids() -> set:
    out = set()
    for pid in _descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if b"chrom" in fh.read():
                    out.add(pid)
        except OSError:
            continue
    return out


class Version:
    """One app version: its source folder, store, server and browser page."""

    def __init__(self, name: str, root: Path, folder: Path):
        self.name, self.root = name, root
        self.store = folder / f"store-{name}"
        env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "ROUTEVIZ_APP_CACHE": str(folder / f"cache-{name}")}
        self.text = subprocess.run([sys.executable, "-c", RECORD, str(self.store)], cwd=root,
                                   env=env, check=True, capture_output=True,
                                   text=True).stdout.strip()
        from tests.e2e.streamlit_server import free_port

        self.port = free_port()
        env["ROUTEVIZ_STORE"] = str(self.store)
        self.server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(root / "app.py"),
             "--server.headless=true", "--server.address=127.0.0.1",
             f"--server.port={self.port}", "--browser.gatherUsageStats=false",
             "--server.fileWatcherType=none"], cwd=root, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"{self.base}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"{name}: the app did not start")

    def open(self, p) -> None:
        from benchmarks.app_driver import open_app

        before = _chromium_pids()
        self.browser, self.pg = open_app(p, self.base)
        self.roots = _chromium_pids() - before

    def cpu(self) -> dict:
        browser = set(self.roots)
        for root in self.roots:
            browser.update(_descendants(root))
        return {"server": _cpu([self.server.pid]), "browser": _cpu(browser)}

    def close(self) -> None:
        self.browser.close()
        self.server.terminate()
        self.server.wait(timeout=20)


def act(version: Version, action: str) -> dict:
    from benchmarks.app_driver import DONE, nav, open_and_wait

    pg = version.pg
    before, start = version.cpu(), time.perf_counter()
    if action.startswith("switch:"):
        title = action.split(":", 1)[1]
        open_and_wait(pg, nav(pg, title), title)
    elif action == "click":
        run = pg.locator("[data-testid=stSidebar] input[aria-label=Run]").input_value()
        pg.get_by_role("button", name="Run the model").click()
        pg.wait_for_function(DONE, arg=[run, ".rv-chips .rv-chip"], polling=10)
    else:
        raise ValueError(f"unknown action {action!r}")
    wall = time.perf_counter() - start
    after = version.cpu()
    from tests.e2e.test_app_browser import idle

    idle(pg)
    return {"wall_s": wall, **{f"{k}_cpu_s": after[k] - before[k] for k in before}}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="HEAD")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--actions", nargs="*", default=["switch:Experts", "switch:Inspect"])
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from tests.e2e.test_app_browser import choose, idle

    folder = Path(tempfile.mkdtemp(prefix="routeviz-ab-"))
    base_root = folder / "base"
    base_root.mkdir()
    archive = subprocess.run(["git", "archive", args.base], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base_root)], input=archive, check=True)
    versions = [Version("base", base_root, folder), Version("work", ROOT, folder)]
    out = {"benchmark": "app_ab", "base": args.base,
           "load_average_start": round(os.getloadavg()[0], 2), "actions": {}}
    samples = {(v.name, a): [] for v in versions for a in args.actions}
    try:
        with sync_playwright() as p:
            for v in versions:
                v.open(p)
                if "click" in args.actions:
                    choose(v.pg, "Model", "text-moe")
                    v.pg.get_by_label("Type or paste a text").fill(v.text)
                    v.pg.keyboard.press("Tab")  # the text's rerun, before anything is timed
                    time.sleep(0.5)
                    idle(v.pg)
                for action in args.actions:  # first visits and the model's load: not counted
                    try:
                        act(v, action)
                    except Exception:
                        v.pg.screenshot(path=str(folder / f"failed-{v.name}.png"))
                        print(f"{v.name} failed on {action}: {folder}/failed-{v.name}.png",
                              file=sys.stderr)
                        raise
            for r in range(args.rounds):
                order = versions if r % 2 == 0 else versions[::-1]
                for action in args.actions:
                    for v in order:
                        samples[(v.name, action)].append(act(v, action))
    finally:
        for v in versions:
            try:
                v.close()
            except Exception:  # noqa: BLE001 — a version that failed to open
                pass
    for action in args.actions:
        out["actions"][action] = {
            v.name: {k: round(statistics.median(s[k] for s in samples[(v.name, action)]), 3)
                     for k in ("wall_s", "server_cpu_s", "browser_cpu_s")} for v in versions}
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
