"""Tracing overhead on CPU: untraced vs routeviz vs hand-written `.cpu()` hooks vs nnsight.

All variants run side by side in one process on copies of one model (same weights),
alternating in rotated order each round; times are medians. Two figures per variant:
  forward_ratio - median time of one forward (with routeviz: inside `tracer.batch()`,
                  the tracer open), over untraced;
  block_ratio   - median time of a block of forwards including everything the variant does
                  to keep its records (routeviz: opening the trace, the background writer,
                  the Parquet files, closing), over untraced.
Each is also given in CPU time (`*_cpu_ratio`: the main thread's CPU time per forward; the
whole process's, writer thread included, per block), which other programs sharing the
cores do not inflate: on a busy machine those are the figures to trust.
Peak memory: each variant again alone in a child process, after one plain forward (to find
the sites' call order): the peak RSS of the variant's block (Linux clear_refs window) minus
the RSS just before it, so variants do not share one high-water mark.

usage: python -m benchmarks.overhead [--model mixtral|text-moe] [--shape 8x128] ...
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from benchmarks.common import median, peak_rss_mb, reset_peak_rss, rss_mb, window_peak_rss_mb

DEPS = Path(__file__).resolve().parent / ".deps"  # nnsight lives here, not in the runtime env
VARIANTS = ("untraced", "routeviz", "cpu_hooks", "nnsight")


def tiny_mixtral():
    """4 layers x 8 experts, hidden 256 (as in FIELD-NOTES), random weights."""
    from transformers import AutoModelForCausalLM

    from routeviz.testing import tiny_mixtral_config

    torch.manual_seed(0)
    config = tiny_mixtral_config(hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                                 num_local_experts=8, max_position_embeddings=512)
    return AutoModelForCausalLM.from_config(config).eval(), config.vocab_size


def text_moe():
    from routeviz.runs.models import load_model

    runner = load_model("text-moe")
    return runner.module.eval(), runner.cfg.vocab_size


def default_shapes(model_name) -> list[str]:
    # text-moe has learned positions for 128 tokens: its larger batch is 32 x 128
    return ["8x128", "32x512"] if model_name == "mixtral" else ["8x128", "32x128"]


def load(name):
    if name == "mixtral":
        return tiny_mixtral()
    return text_moe()


def site_names(model, inputs) -> list[str]:
    """Routing sites in the order a forward pass calls them (nnsight needs that order)."""
    from routeviz.capture.sites import find_sites

    sites = [s.name for s in find_sites(model)]
    called = []
    handles = [submodule(model, s).register_forward_hook(
        lambda m, i, o, name=s: called.append(name)) for s in sites]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for h in handles:
            h.remove()
    first = {name: n for n, name in reversed(list(enumerate(called)))}
    return sorted((s for s in sites if s in first), key=first.get)


def submodule(root, name: str):
    for part in name.split("."):
        root = root[int(part)] if part.isdigit() else getattr(root, part)
    return root


def to_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if hasattr(value, "_fields"):  # a NamedTuple output
        return type(value)(*(to_cpu(v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(to_cpu(v) for v in value)
    return value


@contextmanager
def timed(times: list):
    """Append (wall seconds, this thread's CPU seconds) of the block to `times`."""
    wall, cpu = time.perf_counter(), time.thread_time()
    yield
    times.append((time.perf_counter() - wall, time.thread_time() - cpu))


class Untraced:
    def __init__(self, model, sites, store):
        self.model = model

    def block(self, inputs, n, times):
        for _ in range(n):
            with timed(times):
                self.model(inputs)


class RouteViz:
    def __init__(self, model, sites, store):
        self.model, self.store, self.runs = model, store, 0

    def block(self, inputs, n, times):
        import routeviz

        self.runs += 1
        with routeviz.trace(self.model, self.store, f"b{self.runs}") as tracer:
            for _ in range(n):
                with timed(times), tracer.batch():
                    self.model(inputs)


class CpuHooks:
    """What people write by hand: a forward hook per router that copies its output to host."""

    def __init__(self, model, sites, store):
        self.model, self.sites = model, sites

    def block(self, inputs, n, times):
        saved = []
        handles = [submodule(self.model, s).register_forward_hook(
            lambda m, i, o: saved.append(to_cpu(o))) for s in self.sites]
        try:
            for _ in range(n):
                with timed(times):
                    self.model(inputs)
        finally:
            for h in handles:
                h.remove()
        return saved


class NNsightSave:
    """nnsight saving the same router outputs (on its own deepcopy: it rewrites forwards)."""

    def __init__(self, model, sites, store):
        sys.path.insert(0, str(DEPS))
        import nnsight

        self.nnsight = nnsight
        self.wrapped = nnsight.NNsight(model)
        self.sites = sites

    def block(self, inputs, n, times):
        kept = []
        for _ in range(n):
            with timed(times), self.wrapped.trace(inputs):
                saved = self.nnsight.save([submodule(self.wrapped, s).output for s in self.sites])
            kept.append(saved)
        return kept


MAKERS = {"untraced": Untraced, "routeviz": RouteViz, "cpu_hooks": CpuHooks,
          "nnsight": NNsightSave}


def nnsight_status() -> str | None:
    """None when nnsight imports from benchmarks/.deps, else why not."""
    if not (DEPS / "nnsight").is_dir():
        return f"nnsight is not installed in {DEPS} (benchmarks.run_all installs it there)"
    try:
        sys.path.insert(0, str(DEPS))
        import nnsight  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - record why, do not fail the benchmark
        return f"nnsight does not import beside torch {torch.__version__}: {exc}"
    return None


def compare(model_name, shape, rounds, per_block, variants):
    model, vocab = load(model_name)
    b, s = shape
    inputs = torch.randint(1, vocab, (b, s))
    sites = site_names(model, inputs)
    store = Path(tempfile.mkdtemp(prefix="routeviz-overhead-"))
    runners, failed = {}, {}
    with torch.no_grad():
        for v in variants:  # build and warm up, not timed; a variant that fails is reported
            try:
                runners[v] = MAKERS[v](copy.deepcopy(model), sites, store / "store")
                runners[v].block(inputs, 1, [])
            except Exception as exc:  # noqa: BLE001
                runners.pop(v, None)
                failed[v] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    variants = [v for v in variants if v in runners]
    forward = {v: [] for v in variants}
    blocks = {v: [] for v in variants}
    try:
        with torch.no_grad():
            for r in range(rounds):
                order = variants[r % len(variants):] + variants[:r % len(variants)]
                for v in order:
                    wall, cpu = time.perf_counter(), time.process_time()
                    runners[v].block(inputs, per_block, forward[v])
                    blocks[v].append((time.perf_counter() - wall, time.process_time() - cpu))
    finally:
        shutil.rmtree(store, ignore_errors=True)

    def med(samples, i):
        return median([x[i] for x in samples])

    out = {}
    for v in variants:
        out[v] = {"forward_ms": 1e3 * med(forward[v], 0),
                  "forward_ratio": med(forward[v], 0) / med(forward["untraced"], 0),
                  "block_ratio": med(blocks[v], 0) / med(blocks["untraced"], 0),
                  "forward_cpu_ms": 1e3 * med(forward[v], 1),
                  "forward_cpu_ratio": med(forward[v], 1) / med(forward["untraced"], 1),
                  "block_cpu_ratio": med(blocks[v], 1) / med(blocks["untraced"], 1)}
    return {**out, **failed}, len(sites)


def peak_memory(model_name, shape, variant, per_block) -> dict:
    """Run one variant alone in a child process; its peak RSS over the model's RSS."""
    cmd = [sys.executable, "-m", "benchmarks.overhead", "--model", model_name, "--shape",
           f"{shape[0]}x{shape[1]}", "--memory-of", variant, "--per-block", str(per_block)]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_child(model_name, shape, variant, per_block) -> dict:
    model, vocab = load(model_name)
    inputs = torch.randint(1, vocab, (shape[0], shape[1]))
    sites = site_names(model, inputs)
    store = Path(tempfile.mkdtemp(prefix="routeviz-mem-"))
    try:
        runner = MAKERS[variant](model, sites, store / "store")
        gc.collect()
        windowed = reset_peak_rss()  # the peak of the variant's block alone
        base = rss_mb()
        with torch.no_grad():
            runner.block(inputs, per_block, [])
        peak = window_peak_rss_mb() if windowed else peak_rss_mb()
        return {"peak_rss_mb": peak, "peak_over_model_mb": peak - base}
    finally:
        shutil.rmtree(store, ignore_errors=True)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mixtral", choices=["mixtral", "text-moe"])
    parser.add_argument("--shape", action="append", help="BxS, repeatable (default 8x128 and 32x512; text-moe 32x128)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-block", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--memory-of", choices=VARIANTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(x) for x in s.split("x")) for s in (args.shape or default_shapes(args.model))]
    if args.memory_of:
        return memory_child(args.model, shapes[0], args.memory_of, args.per_block)
    why_not = nnsight_status()
    variants = [v for v in VARIANTS if v != "nnsight" or why_not is None]
    result = {"benchmark": "overhead", "model": args.model, "torch_threads": args.threads,
              "rounds": args.rounds, "per_block": args.per_block, "nnsight": why_not or "ok",
              "shapes": {}}
    for shape in shapes:
        per_block = max(1, args.per_block if shape[0] * shape[1] <= 4096 else args.per_block // 8)
        figures, n_sites = compare(args.model, shape, args.rounds, per_block, variants)
        if not args.no_memory:
            for v in [v for v in variants if "error" not in figures[v]]:
                figures[v].update(peak_memory(args.model, shape, v, per_block))
        result["shapes"][f"{shape[0]}x{shape[1]}"] = {"per_block": per_block, "sites": n_sites,
                                                      **figures}
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
