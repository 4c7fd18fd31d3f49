"""One input at a time (1 x 16 tokens, tiny Mixtral): what a user tracing prompt by prompt pays.

Every variant runs on its own copy of one model (same weights) and they take turns call by
call (rotated order each round), so load from other programs falls on all of them alike;
figures are medians over rounds, wall and this thread's CPU time. Variants:
  untraced        - model(x)
  routeviz        - `with tracer.batch(): model(x)` inside a trace opened once (per forward)
  routeviz_hooks  - the same model(x) alone, without the batch's hand-off to the writer
                    (what the hooks cost; the rest of `routeviz` is the hand-off)
  cpu_hooks       - hand-written forward hooks copying each router output with `.cpu()`
  nnsight         - nnsight 0.8.1 saving every router output (in memory, nothing written)
  stored_cold     - a whole stored trace of one input: routeviz.trace opened, one batch,
                    closed (sites found and hooks registered each time)
  stored_warm     - the same with the hooks kept registered (trace(hooks=...), what the app's
                    record() does): open the run, forward, write, close
Stored traces are reported as milliseconds over untraced; the others as ratios.

usage: python -m benchmarks.single_input [--rounds 40] [--shape 1x16]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import median, scratch
from benchmarks.overhead import DEPS, nnsight_status, site_names, submodule, tiny_mixtral, to_cpu


def clock(fn, out):
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    out.append((time.perf_counter() - wall, time.thread_time() - cpu))


def variants(model, inputs, store: Path, with_nnsight: bool) -> tuple[dict, list]:
    """name -> a callable doing one call of the variant; plus things to close at the end."""
    import routeviz
    from routeviz.capture.hooks import SiteHooks
    from routeviz.capture.sites import find_sites

    copies = {name: copy.deepcopy(model) for name in
              ("untraced", "routeviz", "cpu_hooks", "nnsight", "stored_cold", "stored_warm")}
    sites = site_names(model, inputs)
    open_trace = routeviz.trace(copies["routeviz"], store, "open").__enter__()
    saved = []
    for s in sites:
        submodule(copies["cpu_hooks"], s).register_forward_hook(
            lambda m, i, o: saved.append(to_cpu(o)))
    kept = SiteHooks(copies["stored_warm"], find_sites(copies["stored_warm"]))
    runs = iter(range(10**9))

    def in_trace():
        with open_trace.batch():
            copies["routeviz"](inputs)

    def cold():
        with routeviz.trace(copies["stored_cold"], store, f"cold-{next(runs)}") as tracer:  # noqa: SIM117
            with tracer.batch():
                copies["stored_cold"](inputs)

    def warm():
        with routeviz.trace(copies["stored_warm"], store, f"warm-{next(runs)}",  # noqa: SIM117
                            hooks=kept) as tracer:
            with tracer.batch():
                copies["stored_warm"](inputs)

    def hooks_only():  # the forward inside an open batch, the batch's end not timed
        batch = open_trace.batch()
        batch.__enter__()
        out = []
        clock(lambda: copies["routeviz"](inputs), out)
        batch.__exit__(None, None, None)
        return out[0]

    calls = {"untraced": lambda: copies["untraced"](inputs), "routeviz": in_trace,
             "routeviz_hooks": hooks_only,
             "cpu_hooks": lambda: (copies["cpu_hooks"](inputs), saved.clear()),
             "stored_cold": cold, "stored_warm": warm}
    if with_nnsight:
        sys.path.insert(0, str(DEPS))
        import nnsight

        wrapped = nnsight.NNsight(copies["nnsight"])

        def nn_save():
            with wrapped.trace(inputs):
                nnsight.save([submodule(wrapped, s).output for s in sites])
        calls["nnsight"] = nn_save
    return calls, [lambda: open_trace.__exit__(None, None, None), kept.close]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--shape", default="1x16")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    b, s = (int(x) for x in args.shape.split("x"))
    model, vocab = tiny_mixtral()
    torch.manual_seed(1)
    inputs = torch.randint(1, vocab, (b, s))
    why_not = nnsight_status()
    store = Path(tempfile.mkdtemp(prefix="routeviz-single-", dir=scratch())) / "store"
    times: dict = {}
    try:
        with torch.no_grad():
            calls, closers = variants(model, inputs, store, why_not is None)
            names = list(calls)
            for name in names:  # warm up, not timed
                for _ in range(3):
                    calls[name]()
            times = {name: [] for name in names}
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    if name == "routeviz_hooks":
                        times[name].append(calls[name]())
                    else:
                        clock(calls[name], times[name])
            for close in closers:
                close()
    finally:
        shutil.rmtree(store.parent, ignore_errors=True)
    base_wall = median([t[0] for t in times["untraced"]])
    base_cpu = median([t[1] for t in times["untraced"]])
    out = {"benchmark": "single_input", "model": "tiny Mixtral (4 layers x 8 experts, hidden 256)",
           "shape": args.shape, "rounds": args.rounds, "torch_threads": 1,
           "load_average": os.getloadavg()[0], "nnsight": why_not or "ok", "variants": {}}
    for name, samples in times.items():
        wall, cpu = median([t[0] for t in samples]), median([t[1] for t in samples])
        out["variants"][name] = {"wall_ms": 1e3 * wall, "cpu_ms": 1e3 * cpu,
                                 "ratio": wall / base_wall, "cpu_ratio": cpu / base_cpu,
                                 "over_untraced_ms": 1e3 * (wall - base_wall),
                                 "over_untraced_cpu_ms": 1e3 * (cpu - base_cpu)}
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
