"""Store write rate and bytes per route row, float32 (lossless) and float16 weights.

Route rows like a Mixtral router's (4 layers, 8 experts, top-2, softmax weights) go through
the real background `Writer` (sort, Arrow table, Parquet part files); the files are read
back and compared with what went in, and DuckDB reads them through `open_store`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from benchmarks.common import median, mixtral_like_routes
from routeviz.store import init_store, open_store
from routeviz.store.writer import RouteColumns, Writer

N_BATCHES = 64
EXAMPLES_PER_BATCH = 32
SEQ = 128
REPEATS = 3


def make_batches(seed: int = 0) -> list[RouteColumns]:
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(N_BATCHES):
        layers = mixtral_like_routes(rng, EXAMPLES_PER_BATCH, SEQ,
                                     first_example=i * EXAMPLES_PER_BATCH)
        sizes = np.cumsum([0] + [len(c) for c in layers])
        batches.append(RouteColumns(  # one segment per layer, as expand_batch makes them
            segments=list(zip(sizes[:-1], sizes[1:])),
            **{n: np.concatenate([getattr(c, n) for c in layers]) for n in RouteColumns.COLUMNS}))
    return batches


def write_once(store: Path, batches, weight_dtype: str) -> tuple[float, float]:
    if store.exists():
        shutil.rmtree(store)
    init_store(store)
    writer = Writer(store, "bench", weight_dtype=weight_dtype, flush_seconds=60)
    for i in range(4):
        writer.site_code(f"model.layers.{i}.mlp.gate")
    start, cpu = time.perf_counter(), time.process_time()
    for cols in batches:
        writer.put(lambda cols=cols: (cols, {}))
    writer.close()
    return time.perf_counter() - start, time.process_time() - cpu


def read_back_equal(store: Path, batches, weight_dtype: str) -> bool:
    table = pq.read_table(store / "routes").to_pandas()
    got = table.sort_values(["example", "layer", "token", "rank"]).reset_index(drop=True)
    want = {n: np.concatenate([getattr(c, n) for c in batches]) for n in RouteColumns.COLUMNS}
    order = np.lexsort((want["rank"], want["token"], want["layer"], want["example"]))
    weight = want["weight"][order].astype(weight_dtype)
    return bool(
        len(got) == len(order)
        and np.array_equal(got.example.to_numpy(), want["example"][order])
        and np.array_equal(got.token.to_numpy(), want["token"][order])
        and np.array_equal(got.choice.to_numpy(), want["choice"][order])
        and np.array_equal(got["rank"].to_numpy(), want["rank"][order])
        and np.array_equal(got.weight.to_numpy().astype(weight_dtype), weight)
        and (got.weight.dtype == np.dtype(weight_dtype))
    )


def duckdb_reads(store: Path, batches, weight_dtype: str) -> bool:
    s = open_store(store)
    try:
        n, total = s.con.execute("SELECT count(*), sum(weight) FROM routes").fetchone()
    finally:
        s.close()
    want = np.concatenate([c.weight for c in batches]).astype(weight_dtype).astype(np.float64)
    return bool(n == len(want) and abs(total - want.sum()) < 1e-6 * len(want))


def main() -> dict:
    batches = make_batches()
    n_rows = sum(len(c) for c in batches)
    result = {"benchmark": "store_write", "rows": n_rows,
              "rows_per_batch": len(batches[0]), "layout": "4 layers x 8 experts, top-2"}
    tmp = Path(tempfile.mkdtemp(prefix="routeviz-bench-"))
    try:
        for dtype in ("float32", "float16"):
            store = tmp / dtype
            runs = [write_once(store, batches, dtype) for _ in range(REPEATS)]
            files = list((store / "routes").rglob("*.parquet"))
            size = sum(f.stat().st_size for f in files)
            result[dtype] = {
                "rows_per_s": n_rows / median([wall for wall, _ in runs]),
                # CPU seconds of the whole process: what other programs' load does not inflate
                "rows_per_cpu_s": n_rows / median([cpu for _, cpu in runs]),
                "bytes_per_row": size / n_rows,
                "files": len(files),
                "read_back_equal": read_back_equal(store, batches, dtype),
                "duckdb_reads": duckdb_reads(store, batches, dtype),
            }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
