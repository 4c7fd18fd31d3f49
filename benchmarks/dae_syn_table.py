"""The README's DAE-Syn table: per routing strategy, the final L2 loss and Focus/Cover.

Traces each shipped `dae-syn-<strategy>` model over all 4096 DAE-Syn images into a
temporary store, runs `routeviz metrics --json` on it and prints one JSON object:
{strategy: {l2_per_image, paper_table1, focus, cover, ...}}, Focus/Cover pooled over the
four routers (site "*") and all 32 attribute tags (tag "*"), unit example, as in the paper.

    .venv/bin/python benchmarks/dae_syn_table.py [--limit N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routeviz.cli import main as routeviz_cli
from routeviz.runs.record import record
from routeviz.runs.sampling import sample_dataset
from sample_models.dae_syn import STRATEGIES, load, weights_dir

# Table 1 of the suboptimal-routing paper, DAE-Syn column (final L2 loss, lower is better)
PAPER_TABLE1 = {"tag": 0.2, "hash": 1587.2, "monolithic": 1018.6, "top-k": 0.7,
                "st-gumbel": 20.9, "reinforce": 26.0}


def pooled_focus_cover(store: Path, run: str) -> dict:
    """`routeviz metrics --json` on one run, reduced to the pooled (site *, tag *) row."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = routeviz_cli(["metrics", "--store", str(store), "--run", run,
                             "--unit", "example", "--json"])
    if code != 0:
        raise SystemExit(f"routeviz metrics failed on {run} (exit {code})")
    summary = json.loads(out.getvalue())
    rows = [r for r in summary["focus_cover"] if r["site"] == "*" and r["tag"] == "*"]
    if not rows:
        raise SystemExit(f"no pooled focus_cover row for {run}: {summary['focus_cover'][:3]}")
    return {"focus": rows[0]["focus"], "cover": rows[0]["cover"],
            "n_subnetworks": rows[0].get("n_subnetworks"), "n_tags": rows[0].get("n_tags")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=None, help="images to trace (default all)")
    args = parser.parse_args(argv)
    items = sample_dataset("dae-syn", args.limit).items  # seeded, every letter, not the head
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        for strategy in STRATEGIES:
            name = f"dae-syn-{strategy}"
            start = time.perf_counter()
            record(load(name), items, store, strategy, batch_size=512)
            trace_seconds = time.perf_counter() - start
            metrics = json.loads((weights_dir(name) / "metrics.json").read_text())
            table[strategy] = {"l2_per_image": round(metrics["l2_per_image"], 2),
                               "paper_table1": PAPER_TABLE1[strategy],
                               **pooled_focus_cover(store, strategy),
                               "n_examples": len(items),
                               "trace_seconds": round(trace_seconds, 2)}
    print(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
