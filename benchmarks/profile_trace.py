"""Where tracing time goes: py-spy samples of a traced tiny Mixtral (8 x 128, 60 batches).

Counts the samples of the tracing thread spent in routeviz's hooks and batch hand-off, and
the samples of the writer thread doing work (not waiting on its queue), as shares of the
tracing thread's samples. Needs py-spy (benchmarks.run_all installs it in
benchmarks/.deps); prints {"error": ...} without it.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY_SPY = HERE / ".deps" / "bin" / "py-spy"
BATCHES = 60

TARGET = f"""
import sys, tempfile, torch
sys.path.insert(0, {str(HERE.parent)!r})
import routeviz
from benchmarks.overhead import tiny_mixtral
torch.set_num_threads(1)
model, vocab = tiny_mixtral()
ids = torch.randint(1, vocab, (8, 128))
with torch.no_grad(), routeviz.trace(model, tempfile.mkdtemp() + "/s", "p") as tracer:
    for _ in range({BATCHES}):
        with tracer.batch():
            model(ids)
"""
# frames that are routeviz's own work on the tracing thread (hooks, packing, hand-off)
HOOK_FRAMES = ("run (routeviz/hooks.py", "hook (routeviz/hooks.py", "_root_pre (routeviz",
               "_root_post (routeviz", "on_site (routeviz", "_finish (")
WAITING = ("Condition.wait (", "Queue.get (", "wait (", "get (")


def summarise(raw: str) -> dict:
    threads = collections.Counter()
    in_hooks = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        thread = "writer" if "routeviz-writer" in stack else "tracing"
        leaf = stack.rsplit(";", 1)[-1]
        if thread == "writer" and leaf.startswith(WAITING):
            continue  # the writer idling on its queue
        threads[thread] += n
        if thread == "tracing" and any(f in stack for f in HOOK_FRAMES):
            # attribute to the outermost routeviz frame only once
            in_hooks[next(f for f in HOOK_FRAMES if f in stack)] += n
    tracing = threads["tracing"] or 1
    return {"samples_tracing_thread": threads["tracing"],
            "samples_writer_working": threads["writer"],
            "hooks_share_of_tracing_thread": sum(in_hooks.values()) / tracing,
            "writer_share_of_tracing_thread": threads["writer"] / tracing,
            "hooks_by_frame": dict(in_hooks)}


def main() -> dict:
    if not PY_SPY.exists():
        return {"benchmark": "profile_trace", "error": f"py-spy not installed in {PY_SPY.parent}"}
    with tempfile.TemporaryDirectory() as tmp:
        script, out = Path(tmp) / "target.py", Path(tmp) / "raw.txt"
        script.write_text(TARGET)
        cmd = [str(PY_SPY), "record", "--threads", "--format", "raw", "-r", "200", "-o",
               str(out), "--", sys.executable, str(script)]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600)
        if done.returncode or not out.exists():
            return {"benchmark": "profile_trace",
                    "error": (done.stderr.strip().splitlines() or ["py-spy failed"])[-1]}
        return {"benchmark": "profile_trace", "tool": "py-spy", "batches": BATCHES,
                "shape": "8x128", **summarise(out.read_text())}


if __name__ == "__main__":
    print(json.dumps(main()))
