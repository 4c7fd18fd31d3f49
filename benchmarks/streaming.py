"""Streaming trace of a long dataset: resident memory after 10, 100 and 1000 batches.

A small Mixtral (4 layers x 8 experts, hidden 64) traces 1000 batches of 8 x 128 tokens
(8,192 route rows and 1,024 token strings per batch, 8.2 M route rows in all) into one run.
Memory stays flat because the writer's queue is bounded (a producer faster than the disk
waits) and buffered rows are flushed to Parquet every `flush_rows` rows.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import rss_mb

CHECKPOINTS = (10, 100, 1000)
BATCH, SEQ = 8, 128


def main(n_batches: int = CHECKPOINTS[-1]) -> dict:
    from transformers import AutoModelForCausalLM

    import routeviz
    from routeviz.testing import tiny_mixtral_config

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = tiny_mixtral_config(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                                 num_local_experts=8, max_position_embeddings=256)
    model = AutoModelForCausalLM.from_config(config).eval()
    inputs = torch.randint(1, config.vocab_size, (BATCH, SEQ))
    tokens = [[f"w{i}" for i in range(SEQ)] for _ in range(BATCH)]
    store = Path(tempfile.mkdtemp(prefix="routeviz-stream-")) / "store"
    rss, times = {}, {}
    try:
        before = rss_mb()
        start = time.perf_counter()
        with torch.no_grad(), routeviz.trace(model, store, "stream") as tracer:
            for i in range(1, n_batches + 1):
                with tracer.batch(tokens=tokens):
                    model(inputs)
                if i in CHECKPOINTS:
                    rss[str(i)] = rss_mb()
                    times[str(i)] = time.perf_counter() - start
            pending = tracer.writer._queue.maxsize
        elapsed = time.perf_counter() - start
        s = routeviz.open_store(store)
        rows = s.con.execute("SELECT count(*) FROM routes").fetchone()[0]
        n_files = len(list((store / "routes").rglob("*.parquet")))
        s.close()
    finally:
        shutil.rmtree(store.parent, ignore_errors=True)
    return {
        "benchmark": "streaming", "batches": n_batches, "batch": f"{BATCH}x{SEQ}",
        "route_rows": rows, "route_files": n_files, "rss_before_mb": before,
        "rss_mb_after_batches": rss, "seconds_after_batches": times,
        "growth_100_to_1000_mb": rss.get("1000", float("nan")) - rss.get("100", float("nan")),
        "writer_queue_bound": pending, "seconds": elapsed,
    }


if __name__ == "__main__":
    print(json.dumps(main()))
