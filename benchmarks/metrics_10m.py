"""`routeviz metrics` at scale: a store of ~10 million route rows (synthetic, deterministic),
and the time and peak memory of focus_cover, load and exits over it.

    python -m benchmarks.metrics_10m [--store DIR] [--examples N]

`metrics_json_s`: the whole `routeviz metrics --json` (chance baselines on, their defaults)
beside the plain Focus/Cover query, in wall and CPU seconds (`metrics_json`: medians of 5
turns each, every sample kept).
`series_timeline`: the Timeline page's series metrics on the shipped text-moe series (21
steps, with the 20-shuffle Focus/Cover band), wall and CPU seconds.

The store is written straight as Parquet parts (routeviz.store.write_part) in a child
process, so the parent's peak RSS measures the analyses alone: DuckDB streams the rows, and
only per-(subnetwork, tag) counts reach Python. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

SEQ = 64  # tokens per example
LAYERS = 4  # expert sites
EXPERTS = 8
TOP_K = 2
POS = 12  # values of the token-level tag family "pos"
DOMAINS = 5  # values of the example-level tag family "domain"
CHUNK = 2000  # examples per part file


def _routes_chunk(rng, first: int, n: int) -> tuple[pa.Table, np.ndarray]:
    from routeviz.store import schema

    t = n * SEQ
    example = np.repeat(np.arange(first, first + n, dtype=np.int64), SEQ)  # [t]
    token = np.tile(np.arange(SEQ, dtype=np.int32), n)  # [t]
    pos = rng.integers(0, POS, t)  # [t] the token-level tag each token carries
    cols = {k: [] for k in ("example", "token", "layer", "site", "kind", "choice", "rank",
                            "weight")}
    for layer in range(LAYERS):
        # top-1 follows the tag 70% of the time, so Focus/Cover land strictly inside (0, 1)
        follow = rng.random(t) < 0.7
        top1 = np.where(follow, (pos + layer) % EXPERTS, rng.integers(0, EXPERTS, t))
        top2 = (top1 + rng.integers(1, EXPERTS, t)) % EXPERTS  # never equal to top1
        w1 = rng.uniform(0.5, 0.9, t).astype(np.float32)
        choice = np.stack([top1, top2], 1).reshape(-1)  # [t*k]
        weight = np.stack([w1, 1 - w1], 1).reshape(-1)
        cols["example"].append(np.repeat(example, TOP_K))
        cols["token"].append(np.repeat(token, TOP_K))
        cols["layer"].append(np.full(t * TOP_K, layer, np.int16))
        cols["site"].append(np.full(t * TOP_K, f"model.layers.{layer}.mlp.gate"))
        cols["kind"].append(np.full(t * TOP_K, "expert"))
        cols["choice"].append(choice.astype(np.int32))
        cols["rank"].append(np.tile(np.arange(TOP_K, dtype=np.int8), t))
        cols["weight"].append(weight)
    exit_layer = rng.integers(1, LAYERS, t).astype(np.int32)  # one exit row per token
    cols["example"].append(example)
    cols["token"].append(token)
    cols["layer"].append(exit_layer.astype(np.int16))
    cols["site"].append(np.full(t, "exit_head"))
    cols["kind"].append(np.full(t, "exit"))
    cols["choice"].append(exit_layer)
    cols["rank"].append(np.zeros(t, np.int8))
    cols["weight"].append(rng.uniform(0.5, 1.0, t).astype(np.float32))
    arrays = {k: np.concatenate(v) for k, v in cols.items()}
    table = pa.table({
        "example": arrays["example"], "token": arrays["token"], "layer": arrays["layer"],
        "site": pa.array(arrays["site"]).dictionary_encode(),
        "kind": pa.array(arrays["kind"]).dictionary_encode().cast(
            pa.dictionary(pa.int8(), pa.string())),
        "choice": arrays["choice"], "rank": arrays["rank"],
        "weight": arrays["weight"].astype(np.float32)}).cast(schema.ROUTES)
    return table, pos


def build(store: str, n_examples: int) -> int:
    """Write the synthetic run `bench` into `store`; returns the number of route rows."""
    from routeviz.store import init_store, schema, write_part

    init_store(store)
    rng = np.random.default_rng(0)
    now = dt.datetime.now(dt.timezone.utc)
    config = {"model": "synthetic", "n_layers": LAYERS, "n_experts": EXPERTS, "top_k": TOP_K}
    write_part(store, "runs", "bench", pa.table(
        {"model": ["synthetic"], "created": [now], "finished": [now],
         "routeviz_version": ["bench"], "n_examples": [n_examples],
         "config": [json.dumps(config)]}, schema=schema.RUNS))
    rows = 0
    for first in range(0, n_examples, CHUNK):
        n = min(CHUNK, n_examples - first)
        routes, pos = _routes_chunk(rng, first, n)
        write_part(store, "routes", "bench", routes)
        rows += routes.num_rows
        example = np.repeat(np.arange(first, first + n, dtype=np.int64), SEQ)
        token = np.tile(np.arange(SEQ, dtype=np.int32), n)
        ex_ids = np.arange(first, first + n, dtype=np.int64)
        tags = pa.table({
            "example": np.concatenate([example, ex_ids]),
            "token": np.concatenate([token, np.full(n, -1, np.int32)]),
            "name": ["pos"] * len(example) + ["domain"] * n,
            "value": [f"p{v}" for v in pos] + [f"d{e % DOMAINS}" for e in ex_ids]},
            schema=schema.TAGS)
        write_part(store, "tags", "bench", tags)
        write_part(store, "tokens", "bench", pa.table(
            {"example": example, "token": token, "text": [f"w{v}" for v in pos],
             "char_start": pa.nulls(len(example), pa.int32()),
             "char_end": pa.nulls(len(example), pa.int32())}, schema=schema.TOKENS))
    return rows


def _timed(fn):
    from benchmarks.common import peak_rss_mb

    start = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - start, 3), round(peak_rss_mb(), 1)


def _cpu_timed(fn) -> tuple:
    """(result, wall s, CPU s of this process, DuckDB's threads included): on a shared
    machine the CPU seconds compare two queries better than the wall clock."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, round(time.perf_counter() - start, 3), round(time.process_time() - cpu, 3)


def metrics_json(store_path: str, repeats: int = 5) -> dict:
    """`routeviz metrics --json` in this process (the command's parse, every analysis with
    the chance baselines at their defaults, the JSON dump; not the interpreter's start),
    timed beside the plain Focus/Cover query it contains, the two taking turns `repeats`
    times (medians: one sample of either swings by a third on a shared machine). Returns
    the keys metrics_json_s, focus_cover_s, their CPU seconds and ratios (of the medians),
    every sample, and what the JSON says was sampled."""
    import contextlib
    import io
    import statistics

    from routeviz import metrics, open_store
    from routeviz.cli import main as cli

    store = open_store(store_path)
    metrics.focus_cover(store, "bench")  # warm the file cache for both
    runs = {"focus_cover": [], "metrics_json": []}
    for _ in range(repeats):
        _, wall, cpu = _cpu_timed(lambda: metrics.focus_cover(store, "bench"))
        runs["focus_cover"].append((wall, cpu))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            _, wall, cpu = _cpu_timed(lambda: cli(["metrics", "--store", store_path,
                                                   "--run", "bench", "--json"]))
        runs["metrics_json"].append((wall, cpu))
    (fc_s, fc_cpu), (js_s, js_cpu) = (
        tuple(round(statistics.median(v[i] for v in runs[key]), 3) for i in (0, 1))
        for key in ("focus_cover", "metrics_json"))
    summary = json.loads(out.getvalue())
    sampled = sorted({f"{e['kind']} baseline: {e['baseline']['n_units']} of "
                      f"{e['baseline']['n_units_total']} units"
                      for e in summary["focus_cover"] if (e.get("baseline") or {}).get("sampled")})
    return {"metrics_json_s": js_s, "focus_cover_s": fc_s,
            "ratio_wall": round(js_s / fc_s, 2) if fc_s else None,
            "metrics_json_cpu_s": js_cpu, "focus_cover_cpu_s": fc_cpu,
            "ratio_cpu": round(js_cpu / fc_cpu, 2) if fc_cpu else None,
            "repeats": repeats, "samples_wall_cpu": runs,
            "sampled": sampled, "notes": summary["notes"]}


def series_timeline(name: str = "text-moe", chance: int = 20) -> dict:
    """The Timeline page's series metrics (`metrics.series.timeline` with its 20-shuffle
    Focus/Cover band) on a shipped series store, computed once in a fresh store handle,
    in wall and CPU seconds."""
    from routeviz import open_store
    from routeviz.metrics import series

    store = open_store(Path(__file__).resolve().parents[1] / "sample_models" / "data"
                       / "series" / name)
    names = series.series_names(store)
    frame, wall, cpu = _cpu_timed(lambda: series.timeline(store, names[0], chance=chance))
    return {"series": names[0], "steps": int(frame.step.nunique()), "rows": len(frame),
            "wall_s": wall, "cpu_s": cpu}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="reuse or create this store (default: a temp dir)")
    parser.add_argument("--examples", type=int, default=18_000,
                        help="examples of 64 tokens; 18,000 gives ~10.4 M route rows")
    args = parser.parse_args(argv)
    tmp = None
    store_path = args.store
    if store_path is None:
        tmp = tempfile.mkdtemp(prefix="routeviz-bench-")
        store_path = str(Path(tmp) / "store")
    try:
        build_seconds = None
        if not (Path(store_path) / "routes" / "run=bench").is_dir():
            start = time.perf_counter()
            ctx = multiprocessing.get_context("spawn")  # keep the parent's RSS for the analyses
            with ctx.Pool(1) as pool:
                pool.apply(build, (store_path, args.examples))
            build_seconds = round(time.perf_counter() - start, 2)
        from benchmarks.common import peak_rss_mb
        from routeviz import metrics, open_store

        store = open_store(store_path)
        baseline = round(peak_rss_mb(), 1)
        n_rows = store.con.execute("SELECT count(*) FROM routes WHERE run = 'bench'").fetchone()[0]
        fc, fc_s, fc_rss = _timed(lambda: metrics.focus_cover(store, "bench"))
        _fc1, fc1_s, _ = _timed(lambda: metrics.focus_cover(store, "bench", tags=["pos"],
                                                           unit="example", top1=True))
        _ld, ld_s, ld_rss = _timed(lambda: metrics.load(store, "bench"))
        ex, ex_s, ex_rss = _timed(lambda: metrics.exits(store, "bench"))
        _, sm_s, sm_rss = _timed(lambda: metrics.summary(store, "bench"))  # `routeviz metrics`
        pooled = fc.scores[(fc.scores.site == "*") & (fc.scores.tag == "*")].iloc[0]
        out = {
            "benchmark": "metrics_10m", "route_rows": int(n_rows),
            "examples": args.examples, "tokens": args.examples * SEQ,
            "build_seconds": build_seconds,
            "seconds": {"focus_cover_token_all_tags": fc_s, "focus_cover_example_top1": fc1_s,
                        "load": ld_s, "exits": ex_s, "summary_all_kinds": sm_s},
            "peak_rss_mb": {"after_open": baseline, "after_focus_cover": fc_rss,
                            "after_load": ld_rss, "after_exits": ex_rss,
                            "after_summary": sm_rss},
            "focus": round(float(pooled.focus), 4), "cover": round(float(pooled.cover), 4),
            "compute_saved": round(ex.compute_saved, 4),
            "alignment_cells": len(fc.alignment),
        }
        out["metrics_json"] = metrics_json(store_path)  # `routeviz metrics --json` vs plain
        out["metrics_json_s"] = out["metrics_json"]["metrics_json_s"]
        out["series_timeline"] = series_timeline()  # the Timeline page's first computation
        from benchmarks.common import machine

        out["machine"] = machine()
        out["load_average"] = round(os.getloadavg()[0], 2)  # 1 minute, as the others
        print(json.dumps(out))
        return out
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
