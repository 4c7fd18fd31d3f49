"""Train glyph-vit from a fixed seed: `python -m sample_models.train glyph-vit [--steps N]`.

Draws a fixed training set of glyph images, trains the ViT with every exit head's loss
(token pruning and merging on, as at inference), sets the exit threshold, and reports held-out accuracy, mean kept tokens and mean exit depth.
Writes config.json, model.safetensors, metrics.json and train_log.txt. One CPU thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sample_models import training
from sample_models.glyph_vit import WEIGHTS, GlyphViT, GlyphViTConfig
from sample_models.glyphs import EVAL_SEED, glyph_batch

STEPS = 1200
BATCH = 64
LR = 2e-3
N_TRAIN = 6000
N_EVAL = 1000
EXIT_WEIGHTS = (0.25, 0.5, 0.75, 1.0)  # loss weight of each layer's exit head


def glyph_tensors(n: int, seed: int, classes: str):
    glyphs = glyph_batch(n, seed)
    pixels = torch.from_numpy(np.stack([g.image for g in glyphs])).permute(0, 3, 1, 2).float()
    labels = torch.tensor([classes.index(g.letter) for g in glyphs])
    return (pixels / 255.0 - 0.5) / 0.25, labels


def fit(cfg: GlyphViTConfig, pixels, labels, steps: int, seed: int, log) -> GlyphViT:
    from tqdm import tqdm

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = GlyphViT(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.05)
    warmup = max(1, steps // 20)
    sched = training.warmup_cosine(opt, warmup, steps)
    model.train()
    bar = tqdm(range(steps), desc="glyph-vit", mininterval=2.0)
    for step in bar:
        idx = torch.randint(0, len(labels), (BATCH,), generator=gen)
        out = model(pixels[idx], early_exit=False)
        losses = [F.cross_entropy(lg, labels[idx]) for lg in out.layer_logits]
        loss = sum(w * l for w, l in zip(EXIT_WEIGHTS, losses)) + cfg.aux_loss_weight * out.aux_loss
        training.step(model, opt, sched, loss)
        if step % 25 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{losses[-1].item():.3f}")
            log(json.dumps({"step": step, "final_loss": round(losses[-1].item(), 4),
                            "total_loss": round(loss.item(), 4)}))
    return model.eval()


@torch.no_grad()
def evaluate(model: GlyphViT, pixels, labels, early_exit: bool = True) -> dict:
    correct, exit_sum, kept_sum = 0, 0.0, 0.0
    for batch, target in zip(pixels.split(200), labels.split(200)):
        out = model(batch, early_exit=early_exit)
        correct += int((out.logits.argmax(-1) == target).sum())
        exit_sum += float(out.exit_layer.float().sum())
        # tokens each image's last computed block saw (after the reductions before it)
        tokens = torch.tensor(out.n_tokens, dtype=torch.float)[out.exit_layer]
        kept_sum += float(tokens.sum())
    n = len(labels)
    return {"accuracy": correct / n, "mean_exit_layer": exit_sum / n,
            "mean_tokens_at_exit_layer": kept_sum / n, "tokens_per_layer": out.n_tokens}


@torch.no_grad()
def to_shipped_precision(model) -> None:
    """Round every weight to float16 (as shipped), so metrics describe the shipped model."""
    for tensor in model.state_dict().values():
        tensor.copy_(tensor.half().float())


# Exit when the head is 99.9% sure: accuracy stays within 1% of full depth (0.990 vs 0.992)
# while images spread over every depth. The lowest such threshold (0.9) sends ~75% of
# images out after block 0, and the pruning, merging and deeper experts then rarely show.
EXIT_THRESHOLD = 0.999


def train(name: str = "glyph-vit", out_dir=None, steps=None, seed: int = 0, *,
          n_train: int = N_TRAIN, n_eval: int = N_EVAL):
    """Train and save glyph-vit into `out_dir` (default: the shipped weights folder)."""
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    out = Path(out_dir) if out_dir else WEIGHTS / "glyph-vit"
    out.mkdir(parents=True, exist_ok=True)
    steps = STEPS if steps is None else steps
    cfg = GlyphViTConfig()
    with (out / "train_log.txt").open("w") as log_file:
        def log(line):
            log_file.write(line + "\n")
            log_file.flush()

        train_x, train_y = glyph_tensors(n_train, seed, cfg.classes)
        eval_x, eval_y = glyph_tensors(n_eval, EVAL_SEED, cfg.classes)
        model = fit(cfg, train_x, train_y, steps, seed, log)
        to_shipped_precision(model)
        cfg.exit_threshold = EXIT_THRESHOLD
        for head in model.exits:
            head.threshold = EXIT_THRESHOLD
    cfg.to_json(out / "config.json")
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()},
              out / "model.safetensors")
    metrics = {"steps": steps, "seed": seed, "batch": BATCH, "n_train": n_train,
               "n_eval": n_eval, "chance": 1 / len(cfg.classes),
               "params": sum(p.numel() for p in model.parameters()),
               "exit_threshold": cfg.exit_threshold,
               "full_depth": evaluate(model, eval_x, eval_y, early_exit=False),
               "early_exit": evaluate(model, eval_x, eval_y, early_exit=True)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
