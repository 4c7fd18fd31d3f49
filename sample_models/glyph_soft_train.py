"""Train glyph-soft from a fixed seed: `python -m sample_models.train glyph-soft [--steps N]`.

Same glyph images, batch and schedule as glyph-vit (`glyph_vit_train`), one cross entropy
on the mean-pooled head (Soft MoE needs no balancing loss: every slot takes a mix of every
token). Writes config.json, model.safetensors (float16), metrics.json (held-out accuracy)
and train_log.txt. One CPU thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from sample_models import training
from sample_models.glyph_soft import WEIGHTS, GlyphSoft, GlyphSoftConfig
from sample_models.glyph_vit_train import (
    BATCH,
    LR,
    N_EVAL,
    N_TRAIN,
    glyph_tensors,
    to_shipped_precision,
)
from sample_models.glyphs import EVAL_SEED

STEPS = 800


@torch.no_grad()
def accuracy(model, pixels, labels) -> float:
    correct = sum(int((model(x).argmax(-1) == y).sum())
                  for x, y in zip(pixels.split(200), labels.split(200)))
    return correct / len(labels)


def fit(model, pixels, labels, steps: int, seed: int, log, loss_fn) -> None:
    """AdamW with warm-up and cosine decay over `steps` batches; loss_fn(model, x, y) ->
    (loss, dict to log)."""
    from tqdm import tqdm

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.05)
    sched = training.warmup_cosine(opt, max(1, steps // 20), steps)
    model.train()
    for step in tqdm(range(steps), desc=type(model).__name__, mininterval=5.0):
        idx = torch.randint(0, len(labels), (BATCH,), generator=gen)
        loss, parts = loss_fn(model, pixels[idx], labels[idx])
        training.step(model, opt, sched, loss)
        if step % 25 == 0 or step == steps - 1:
            log(json.dumps({"step": step, **{k: round(float(v), 4) for k, v in parts.items()}}))
    model.eval()


def save(model, cfg, out: Path) -> None:
    from safetensors.torch import save_file

    cfg.to_json(out / "config.json")
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()},
              out / "model.safetensors")


def train(name: str = "glyph-soft", out_dir=None, steps=None, seed: int = 0, *,
          n_train: int = N_TRAIN, n_eval: int = N_EVAL) -> dict:
    torch.set_num_threads(1)
    out = Path(out_dir) if out_dir else WEIGHTS / "glyph-soft"
    out.mkdir(parents=True, exist_ok=True)
    steps = STEPS if steps is None else steps
    cfg = GlyphSoftConfig()
    train_x, train_y = glyph_tensors(n_train, seed, cfg.classes)
    eval_x, eval_y = glyph_tensors(n_eval, EVAL_SEED, cfg.classes)
    torch.manual_seed(seed)
    model = GlyphSoft(cfg)

    def loss_fn(model, x, y):
        loss = F.cross_entropy(model(x), y)
        return loss, {"loss": loss.detach()}

    with (out / "train_log.txt").open("w") as log_file:
        fit(model, train_x, train_y, steps, seed, lambda line: print(line, file=log_file, flush=True),
            loss_fn)
    to_shipped_precision(model)
    save(model, cfg, out)
    metrics = {"steps": steps, "seed": seed, "batch": BATCH, "n_train": n_train,
               "n_eval": n_eval, "chance": 1 / len(cfg.classes),
               "params": sum(p.numel() for p in model.parameters()),
               "accuracy": accuracy(model, eval_x, eval_y)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{name}: held-out accuracy {metrics['accuracy']:.3f}")
    return metrics
