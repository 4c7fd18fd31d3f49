"""Output error and compute saved by minilm-moe and dinov2-small at their default knobs.

For each model: the dense output (every knob off, equal to the original model) against the
output with the default knobs, and with each kind of routing alone. Error is 1 - cosine
between the two outputs (MiniLM: the sentence embedding; DINOv2: the pooled CLS feature)
and the relative L2 error; compute is the multiply-adds actually spent over the dense
model's (attention + FFN; embeddings excluded), counted from the tokens, experts and
layers each example really ran. Wall time is reported too but is not the point: on CPU
the per-expert loop costs more than it saves. Prints one JSON object.

    python -m benchmarks.pretrained_quality [--texts N] [--images N]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch


def text_items(n: int):
    from routeviz.runs.inputs import Item

    try:
        from sample_models.text_data import stdlib_dataset

        items = stdlib_dataset(n)
        if items:
            return items, "stdlib (held-out chunks of Python source and pydoc prose)"
    except ImportError:
        pass
    texts = ["A mixture of experts sends every token to a few of many feed-forward networks.",
             "def add(x, y):\n    return x + y", "The cat sat on the mat.",
             "Return a list of the lines in the string, breaking at line boundaries."]
    return [Item(text=texts[i % len(texts)]) for i in range(n)], "built-in sentences"


def image_items(n: int):
    from PIL import Image

    from routeviz.runs.inputs import Item
    from sample_models.glyphs import glyph_dataset

    glyphs = glyph_dataset(n - n // 4)
    rng = np.random.default_rng(0)
    photos = []
    for i in range(n // 4):  # smooth scenes with a few shapes: closer to photos than glyphs
        h, w = 180 + 20 * i, 240
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx / w, yy / h, 0.5 + 0.5 * np.sin(xx / 17.0)], -1) * 200
        for _ in range(3):
            cy, cx, r = rng.integers(20, h - 20), rng.integers(20, w - 20), rng.integers(10, 40)
            base[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 255, 3)
        photos.append(Item(image=Image.fromarray(base.astype(np.uint8)), source=f"scene-{i}"))
    return glyphs + photos, f"{len(glyphs)} glyph images + {len(photos)} synthetic scenes"


def run(runner, items, output: str, knobs, batch: int = 8):
    runner.set_knobs(knobs)
    outs, macs, dense, exits, seconds = [], [], [], [], 0.0
    for start in range(0, len(items), batch):
        encoded = runner.encode(items[start:start + batch])
        begin = time.perf_counter()
        result = runner.module(**encoded.inputs)
        seconds += time.perf_counter() - begin
        outs.append(getattr(result, output))
        macs.append(result.macs)
        dense.append(result.dense_macs)
        exits.append(result.exit_layer)
    return (torch.cat(outs), torch.cat(macs).sum().item(), torch.cat(dense).sum().item(),
            torch.cat(exits), seconds)


def compare(runner, items, output: str, knobs, reference) -> dict:
    out, macs, dense, exits, seconds = run(runner, items, output, knobs)
    cosine = torch.nn.functional.cosine_similarity(out, reference, dim=-1)
    rel = (out - reference).norm(dim=-1) / reference.norm(dim=-1)
    n_layers = len(runner.encoder.layers)
    return {"knobs": knobs.as_dict(),
            "error_1_minus_cosine_mean": round(float(1 - cosine.mean()), 4),
            "error_1_minus_cosine_max": round(float(1 - cosine.min()), 4),
            "relative_l2_error_mean": round(float(rel.mean()), 4),
            "compute_fraction": round(macs / dense, 4),
            "compute_saved": round(1 - macs / dense, 4),
            "exit_layers": {int(k): int(v) for k, v in zip(*np.unique(exits.numpy(),
                                                                     return_counts=True))},
            "early_exits": int((exits < n_layers - 1).sum()),
            "forward_seconds": round(seconds, 3)}


def measure(runner, items, output: str, source: str) -> dict:
    default = runner.default_knobs
    dense = default.dense(runner.n_experts)
    reference, _, _, _, dense_seconds = run(runner, items, output, dense)
    alone = {
        "experts": replace(dense, top_k=default.top_k, router=default.router),
        "pruning": replace(dense, keep_ratio=default.keep_ratio),
        "merging": replace(dense, merge_count=default.merge_count),
        "early_exit": replace(dense, exit_threshold=default.exit_threshold),
    }
    sweep = {f"top_k={k} router={router}": replace(dense, top_k=k, router=router)
             for router, ks in (("norm", (4, 8, 14)), ("centroid", (8, 12))) for k in ks}
    sweep.update({f"exit_threshold={t}": replace(dense, exit_threshold=t,
                                                 exit_patience=default.exit_patience)
                  for t in (0.9, 0.95)})
    result = {"model": runner.name, "inputs": f"{len(items)} ({source})",
              "n_layers": len(runner.encoder.layers), "n_experts": runner.n_experts,
              "dense_forward_seconds": round(dense_seconds, 3),
              "default": compare(runner, items, output, default, reference),
              "alone": {name: compare(runner, items, output, knobs, reference)
                        for name, knobs in alone.items()},
              "sweep": {name: compare(runner, items, output, knobs, reference)
                        for name, knobs in sweep.items()}}
    runner.set_knobs(default)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=48)
    parser.add_argument("--images", type=int, default=16)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from sample_models.dinov2_small import load as load_dinov2
    from sample_models.minilm_moe import load as load_minilm

    texts, text_source = text_items(args.texts)
    images, image_source = image_items(args.images)
    report = {"torch_threads": 1,
              "minilm-moe": measure(load_minilm(), texts, "embedding", text_source),
              "dinov2-small": measure(load_dinov2(), images, "pooler_output", image_source)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
