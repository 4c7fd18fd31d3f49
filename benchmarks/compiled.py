"""A torch.compile'd model traced vs the same compiled model untraced (tiny Mixtral, CPU).

The traced copy has its routing hooks registered before compiling (`SiteHooks`, as the
README says); the hooks run outside the compiled graphs, one graph break per routing site.
Two copies of one model class, one with hooks and one without, share dynamo's compiled
code unless it guards on hooks (`skip_nnmodule_hook_guards = False`, set here): without
that the traced copy would run the untraced copy's code and record nothing.
Both copies are compiled with the same backend and warmed up (compile time not counted),
then take turns call by call; medians of wall and this thread's CPU time. The eager
untraced forward is measured beside them for reference.

usage: python -m benchmarks.compiled [--shape 8x128] [--backend inductor] [--rounds 30]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import median, scratch
from benchmarks.overhead import tiny_mixtral


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="8x128")
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    import routeviz
    from routeviz.capture.hooks import SiteHooks
    from routeviz.capture.sites import find_sites

    torch._dynamo.config.skip_nnmodule_hook_guards = False
    b, s = (int(x) for x in args.shape.split("x"))
    model, vocab = tiny_mixtral()
    inputs = torch.randint(1, vocab, (b, s))
    eager = copy.deepcopy(model)
    plain = torch.compile(copy.deepcopy(model), backend=args.backend)
    traced_model = copy.deepcopy(model)
    kept = SiteHooks(traced_model, find_sites(traced_model))  # hooks first, then compile
    traced = torch.compile(traced_model, backend=args.backend)
    store = Path(tempfile.mkdtemp(prefix="routeviz-compiled-", dir=scratch())) / "store"
    out = {"benchmark": "compiled", "model": "tiny Mixtral", "shape": args.shape,
           "backend": args.backend, "rounds": args.rounds, "torch_threads": 1}
    try:
        with torch.no_grad(), routeviz.trace(traced_model, store, "compiled",
                                             hooks=kept) as tracer:
            start = time.perf_counter()
            try:
                want = plain(inputs)
                with tracer.batch():
                    got = traced(inputs)
            except Exception as exc:  # noqa: BLE001 — no compiler here: say why
                return {**out, "error": f"torch.compile failed: {type(exc).__name__}: {exc}"[:300]}
            out["compile_seconds"] = round(time.perf_counter() - start, 1)
            out["outputs_equal"] = bool(torch.equal(want.logits, got.logits))
            out["outputs_max_abs_diff"] = float((want.logits - got.logits).abs().max())

            def in_trace():
                with tracer.batch():
                    traced(inputs)
            calls = {"eager_untraced": lambda: eager(inputs), "compiled_untraced": lambda: plain(inputs),
                     "compiled_traced": in_trace}
            for fn in calls.values():
                for _ in range(2):
                    fn()
            times = {name: [] for name in calls}
            names = list(calls)
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    wall, cpu = time.perf_counter(), time.thread_time()
                    calls[name]()
                    times[name].append((time.perf_counter() - wall, time.thread_time() - cpu))
        kept.close()
        routes = routeviz.open_store(store).routes("compiled")
        out["route_rows"] = len(routes)  # 0 would mean the hooks never ran
        out["routes_per_call"] = len(routes) / max(1, tracer.n_batches)
    finally:
        shutil.rmtree(store.parent, ignore_errors=True)
    base = times["compiled_untraced"]
    out["load_average"] = os.getloadavg()[0]
    for name, samples in times.items():
        wall, cpu = median([t[0] for t in samples]), median([t[1] for t in samples])
        out[name] = {"wall_ms": 1e3 * wall, "cpu_ms": 1e3 * cpu,
                     "ratio": wall / median([t[0] for t in base]),
                     "cpu_ratio": cpu / median([t[1] for t in base])}
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
