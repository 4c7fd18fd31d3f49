"""The README's DAE-Syn supervision table (paper §4.4): per learned strategy and share P of
tag-supervised examples (0, 1, 10, 100 %), the final L2 loss and pooled Focus/Cover.

Traces each shipped `dae-syn-<strategy>` and `dae-syn-<strategy>-sup<P>` over all 4096
DAE-Syn images into a temporary store and runs `routeviz metrics --json` on each, as
`dae_syn_table.py` does. `--continued DIR` adds the "supervision removed, training
continued" check: weights in DIR (trained with `--init-from
sample_models/weights/dae-syn-top-k-sup10` and no `--supervise`) traced the same way.

    .venv/bin/python benchmarks/dae_syn_supervision.py [--limit N] [--continued DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.dae_syn_table import pooled_focus_cover
from routeviz.runs.record import record
from routeviz.runs.sampling import sample_dataset
from sample_models import DAE_SYN_SUPERVISED_STRATEGIES, DAE_SYN_SUPERVISION
from sample_models.dae_syn import DAESynRunner, load, load_module, weights_dir


def row(runner, directory: Path, items, store: Path, run: str) -> dict:
    record(runner, items, store, run, batch_size=512)
    metrics = json.loads((directory / "metrics.json").read_text())
    return {"l2_per_image": round(metrics["l2_per_image"], 2), "steps": metrics["steps"],
            **{k: round(v, 3) for k, v in pooled_focus_cover(store, run).items()
               if k in ("focus", "cover")}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=None, help="images to trace (default all)")
    parser.add_argument("--continued", help="weights folder of the continued-unsupervised run")
    parser.add_argument("--only", nargs="*", metavar="MODEL", help="these models only")
    args = parser.parse_args(argv)
    items = sample_dataset("dae-syn", args.limit).items  # seeded, every letter, not the head
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        for strategy in DAE_SYN_SUPERVISED_STRATEGIES:
            for percent in (0, *DAE_SYN_SUPERVISION):
                name = f"dae-syn-{strategy}" + (f"-sup{percent}" if percent else "")
                if not (weights_dir(name) / "model.safetensors").is_file() or (
                        args.only is not None and name not in args.only):
                    continue
                table.setdefault(strategy, {})[percent] = row(
                    load(name), weights_dir(name), items, store, name)
        if args.continued:
            directory = Path(args.continued)
            runner = DAESynRunner("dae-syn-top-k", load_module(directory))
            table["top-k sup10, then unsupervised"] = row(runner, directory, items, store,
                                                          "continued")
    print(json.dumps(table, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
