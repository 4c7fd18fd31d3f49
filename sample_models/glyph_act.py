"""glyph-act: the glyph ViT with A-ViT halting (Yin et al. 2022): every patch stops at its
own depth.

48×48 glyph images as 6×6 patches, no CLS token, 5 dense blocks of width 64. After block l
each running patch k gets a halting score from one embedding channel,

    h_k,l = sigmoid(halt_scale · x_k,l[0] − halt_center)        (A-ViT's γ, β)

accumulated over depth; the patch halts at the first layer where the sum reaches 1 − ε
(every patch still running halts at the last block). Its output is the ACT mean of its
states, Σ_l p_k,l · x_k,l, with p = h before the halting layer and the remainder
r_k = 1 − Σ_{l<N_k} h_k,l at it; the class comes from the mean of those outputs. Training
adds the ponder loss (N_k + r_k) and A-ViT's prior: the KL divergence from a Gaussian over
depths to the batch's distribution of halting scores per layer.

Halted patches are *masked*, not removed: every block still computes all 36 patches (a
batch keeps its shape), a halted patch's state is frozen and it is no longer a key in the
running patches' attention. So halting here saves no compute, and the run config says so
(`halted_tokens: "masked"`); routeviz's compute saved counts only removed tokens.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from sample_models import GLYPH_ACT
from sample_models.glyph_soft import GlyphPatches, PlainBlock, dense_ffn
from sample_models.glyph_vit import GlyphViTRunner
from sample_models.glyphs import LETTERS, PATCH, SIZE

WEIGHTS = Path(__file__).parent / "weights"


@dataclass
class GlyphActConfig:
    image_size: int = SIZE  # input side in pixels (any image is resized to this)
    patch: int = PATCH  # patch side in pixels
    d_model: int = 64  # residual width
    n_heads: int = 2  # attention heads
    n_layers: int = 5  # blocks
    mlp_hidden: int = 128  # FFN width
    halt_scale: float = 10.0  # γ: halting score = sigmoid(γ · x[0] − β)
    halt_center: float = 3.0  # β
    halt_eps: float = 0.01  # a patch halts once its cumulative score reaches 1 − ε
    classes: str = LETTERS  # class i is classes[i]

    @classmethod
    def from_json(cls, path: Path) -> GlyphActConfig:
        return cls(**json.loads(Path(path).read_text()))

    def to_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


class Halting(NamedTuple):
    """What a HaltingGate decided after one block (the tracer records it)."""

    exit_now: torch.Tensor  # [b, n] bool: the patch halts at this layer
    confidence: torch.Tensor  # [b, n] cumulative halting score after this layer
    layer: int
    positions: torch.Tensor | None = None  # always None: every patch is present
    score: torch.Tensor | None = None  # [b, n] this layer's halting score h


class HaltingGate(nn.Module):
    """Halting score of one layer from channel 0, cumulated with the earlier layers'."""

    def __init__(self, layer: int, scale: float, center: float, eps: float, last: bool):
        super().__init__()
        self.layer, self.scale, self.center, self.eps, self.last = layer, scale, center, eps, last

    def forward(self, x, cumulative, running) -> Halting:
        # x [b, n, d] block output; cumulative [b, n] score so far; running [b, n] bool
        score = torch.sigmoid(self.scale * x[..., 0] - self.center)  # [b, n]
        total = cumulative + score * running
        exit_now = running & ((total >= 1 - self.eps) | self.last)
        return Halting(exit_now, total, self.layer, None, score)


class ActOutput(NamedTuple):
    logits: torch.Tensor  # [b, classes]
    halt_layer: torch.Tensor  # [b, n] layer at which each patch halted
    ponder: torch.Tensor  # [b, n] N_k + r_k (layers run, plus remainder)
    layer_scores: torch.Tensor  # [b, n, L] halting score of each layer (0 once halted)


class GlyphAct(nn.Module):
    def __init__(self, cfg: GlyphActConfig):
        super().__init__()
        self.cfg = cfg
        self.patches = GlyphPatches(cfg.image_size, cfg.patch, cfg.d_model)
        self.blocks = nn.ModuleList(PlainBlock(cfg.d_model, cfg.n_heads,
                                               dense_ffn(cfg.d_model, cfg.mlp_hidden))
                                    for _ in range(cfg.n_layers))
        self.halting = nn.ModuleList(
            HaltingGate(i, cfg.halt_scale, cfg.halt_center, cfg.halt_eps, i == cfg.n_layers - 1)
            for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, len(cfg.classes))

    def forward(self, pixels) -> ActOutput:
        x = self.patches(pixels)  # [b, n, d]
        b, n, _ = x.shape
        running = torch.ones(b, n, dtype=torch.bool, device=x.device)
        cumulative = x.new_zeros(b, n)
        output = torch.zeros_like(x)  # ACT mean of each patch's states
        halt_layer = torch.full((b, n), self.cfg.n_layers - 1, dtype=torch.long, device=x.device)
        ponder, scores = x.new_zeros(b, n), []
        for block, gate in zip(self.blocks, self.halting):
            x = torch.where(running[..., None], block(x, key_mask=running), x)  # halted: frozen
            halt = gate(x, cumulative, running)
            # p = h while running, the remainder 1 - cumulative at the halting layer
            p = torch.where(halt.exit_now, 1 - cumulative, halt.score * running)
            output = output + p[..., None] * x
            ponder = ponder + running.float() + torch.where(halt.exit_now, 1 - cumulative, 0.0)
            scores.append(halt.score * running)
            halt_layer = torch.where(halt.exit_now, gate.layer, halt_layer)
            cumulative, running = halt.confidence, running & ~halt.exit_now
        logits = self.head(self.norm(output).mean(1))
        return ActOutput(logits, halt_layer, ponder, torch.stack(scores, -1))


class GlyphActRunner(GlyphViTRunner):
    """glyph-vit's runner and encoding with this model."""

    spec = GLYPH_ACT
    model_class, config_class = GlyphAct, GlyphActConfig

    def describe(self) -> str:
        return (f"small ViT trained on synthetic glyph images (letters "
                f"{self.cfg.classes}) with A-ViT halting: each patch stops at its "
                f"own depth (0-{self.cfg.n_layers - 1}); halted patches are masked, "
                "not removed")

    @torch.no_grad()
    def predict(self, encoded) -> list[str]:
        out = self.module(**encoded.inputs)
        conf, cls = out.logits.softmax(-1).max(-1)
        depth = out.halt_layer.float().mean(1)
        return [f"letter {self.cfg.classes[int(c)]} (p={float(p):.2f}, mean patch depth "
                f"{float(d):.1f})" for c, p, d in zip(cls, conf, depth)]

    def trace_config(self) -> dict:
        cfg = self.cfg
        base = super(GlyphViTRunner, self).trace_config()
        return {**base, "n_layers": cfg.n_layers, "halting": "a-vit", "halted_tokens": "masked",
                "halt_eps": cfg.halt_eps, "image_size": cfg.image_size, "patch": cfg.patch,
                "classes": cfg.classes}


def load(name: str = "glyph-act") -> GlyphActRunner:
    return GlyphActRunner(name, WEIGHTS / "glyph-act")
