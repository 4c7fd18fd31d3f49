"""Train glyph-act from a fixed seed: `python -m sample_models.train glyph-act [--steps N]`.

Same glyph images, batch and schedule as glyph-vit. Loss (A-ViT, Yin et al. 2022, eq. 7-9):
cross entropy + PONDER_WEIGHT · mean ponder (N_k + r_k) + PRIOR_WEIGHT · KL(prior ‖ the
batch's halting-score distribution over layers), the prior a Gaussian over depths centred
at TARGET_DEPTH. Writes config.json, model.safetensors (float16), metrics.json (held-out
accuracy, mean patch depth for glyph and background patches) and train_log.txt.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from sample_models.glyph_act import WEIGHTS, GlyphAct, GlyphActConfig
from sample_models.glyph_soft_train import accuracy, fit, save
from sample_models.glyph_vit_train import N_EVAL, N_TRAIN, glyph_tensors, to_shipped_precision
from sample_models.glyphs import EVAL_SEED, glyph_batch, patch_regions

STEPS = 800
PONDER_WEIGHT = 0.01  # α_p
PRIOR_WEIGHT = 0.1  # α_d
TARGET_DEPTH = 2.0  # centre of the Gaussian depth prior (layers 0-4)


def depth_prior(n_layers: int, target: float = TARGET_DEPTH, std: float = 1.0) -> torch.Tensor:
    weights = torch.tensor([math.exp(-0.5 * ((i - target) / std) ** 2) for i in range(n_layers)])
    return weights / weights.sum()  # [L]


def act_loss(model, x, y):
    out = model(x)
    task = F.cross_entropy(out.logits, y)
    ponder = out.ponder.mean()
    distribution = out.layer_scores.mean((0, 1))  # [L] mean halting score per layer
    distribution = distribution / distribution.sum().clamp_min(1e-9)
    prior = depth_prior(distribution.shape[0]).to(distribution)
    kl = F.kl_div(distribution.clamp_min(1e-9).log(), prior, reduction="sum")
    loss = task + PONDER_WEIGHT * ponder + PRIOR_WEIGHT * kl
    return loss, {"loss": loss.detach(), "task": task.detach(), "ponder": ponder.detach(),
                  "kl": kl.detach()}


@torch.no_grad()
def depth_by_region(model, n: int = 200) -> dict:
    """Mean halting layer of glyph and of background patches over `n` held-out glyphs."""
    glyphs = glyph_batch(n, EVAL_SEED)
    pixels, _ = glyph_tensors(n, EVAL_SEED, model.cfg.classes)
    per_image = model(pixels).halt_layer.float()  # [n, 36]
    depth = per_image.flatten()
    glyph = torch.tensor([r == "glyph" for g in glyphs for r in patch_regions(g.mask)])
    return {"glyph": float(depth[glyph].mean()), "background": float(depth[~glyph].mean()),
            "all": float(depth.mean()),
            "images_with_several_depths": float((per_image.amax(1) > per_image.amin(1)).float().mean())}


def train(name: str = "glyph-act", out_dir=None, steps=None, seed: int = 0, *,
          n_train: int = N_TRAIN, n_eval: int = N_EVAL) -> dict:
    torch.set_num_threads(1)
    out = Path(out_dir) if out_dir else WEIGHTS / "glyph-act"
    out.mkdir(parents=True, exist_ok=True)
    steps = STEPS if steps is None else steps
    cfg = GlyphActConfig()
    train_x, train_y = glyph_tensors(n_train, seed, cfg.classes)
    eval_x, eval_y = glyph_tensors(n_eval, EVAL_SEED, cfg.classes)
    torch.manual_seed(seed)
    model = GlyphAct(cfg)
    with (out / "train_log.txt").open("w") as log_file:
        fit(model, train_x, train_y, steps, seed,
            lambda line: print(line, file=log_file, flush=True), act_loss)
    to_shipped_precision(model)
    save(model, cfg, out)

    class Logits(torch.nn.Module):  # accuracy() wants logits
        def forward(self, x):
            return model(x).logits

    metrics = {"steps": steps, "seed": seed, "n_train": n_train, "n_eval": n_eval,
               "chance": 1 / len(cfg.classes), "params": sum(p.numel() for p in model.parameters()),
               "ponder_weight": PONDER_WEIGHT, "prior_weight": PRIOR_WEIGHT,
               "target_depth": TARGET_DEPTH, "accuracy": accuracy(Logits(), eval_x, eval_y),
               "mean_halt_layer": depth_by_region(model)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{name}: held-out accuracy {metrics['accuracy']:.3f}, depth {metrics['mean_halt_layer']}")
    return metrics
