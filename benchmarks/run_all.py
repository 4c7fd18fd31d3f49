"""Run every benchmark (each in its own process) and write benchmarks/results.json.

    python -m benchmarks.run_all            # `make bench`

Each benchmark prints one JSON object; a benchmark that fails or is skipped is recorded
with the reason instead of stopping the others. nnsight, a comparison point only, is
installed into benchmarks/.deps (never into the runtime environment) when missing, and so is
py-spy, which profiles where tracing time goes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NNSIGHT = ["nnsight==0.8.1", "httpcore", "httpx", "websocket-client", "zstandard"]


def ensure_tools() -> str:
    """nnsight (a comparison point) and py-spy (the profiler) in benchmarks/.deps only."""
    wanted = [] if (HERE / ".deps" / "nnsight").is_dir() else NNSIGHT
    wanted += [] if (HERE / ".deps" / "bin" / "py-spy").exists() else ["py-spy"]
    if not wanted:
        return "present"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--upgrade", "--target",
           str(HERE / ".deps"), *wanted]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "pip install timed out"
    if done.returncode:
        return "pip install failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    return "installed " + " ".join(wanted)


def run(module: str, *args: str, timeout: float = 600) -> dict:
    cmd = [sys.executable, "-m", f"benchmarks.{module}", *args]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    seconds = round(time.perf_counter() - start, 1)
    lines = [ln for ln in done.stdout.strip().splitlines() if ln.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail}", "wall_seconds": seconds}
    result = json.loads(lines[-1])
    result["wall_seconds"] = seconds
    return result


def benchmarks() -> dict:
    """key in results.json -> a function measuring it (each in its own process, so a slow
    one cannot take the others' figures along)."""
    plan = {"store_write": lambda: run("store_write")}
    for shape in ("8x128", "32x512"):
        plan[f"overhead_mixtral_{shape}"] = lambda shape=shape: run(
            "overhead", "--model", "mixtral", "--shape", shape)
    trained = (ROOT / "sample_models" / "weights" / "text-moe" / "model.safetensors").exists()
    for shape in ("8x128", "32x128"):
        plan[f"overhead_text_moe_{shape}"] = (
            (lambda shape=shape: run("overhead", "--model", "text-moe", "--shape", shape))
            if trained else (lambda: {"skipped": "sample_models/weights/text-moe not trained"}))
    # issue 18: one input at a time, compiled models, the app's response
    plan["single_input"] = lambda: run("single_input")
    plan["compiled"] = lambda: run("compiled", timeout=1200)
    plan["app_response"] = lambda: run("app_response", timeout=1200)
    plan["streaming"] = lambda: run("streaming")
    plan["profile_trace"] = lambda: run("profile_trace")
    plan["metrics_10m"] = lambda: run("metrics_10m")
    # issue 25: the app's redraw without a browser, figure export and the report zip
    plan["profile_app"] = lambda: run("profile_app", "--top", "15", timeout=1200)
    plan["export_speed"] = lambda: run("export_speed", timeout=1200)
    plan["profile_browser"] = lambda: run("profile_browser", "--repeats", "5", timeout=1200)
    return plan


def main(argv=None) -> dict:
    """Every benchmark; or, with `--only KEY ...`, those and the rest kept from results.json
    (their times listed under `measured`)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", nargs="+", choices=list(benchmarks()))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    plan = benchmarks()
    results = {}
    if args.only and (HERE / "results.json").exists():
        results = json.loads((HERE / "results.json").read_text())
    when = results.setdefault("measured", {})
    results.update({"machine": machine(), "tools_setup": ensure_tools()})
    for key in args.only or plan:
        results[key] = plan[key]()
        when[key] = results["machine"]["when"]
    if not args.only:
        results["total_seconds"] = round(time.perf_counter() - start, 1)
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    print(json.dumps(main()))
