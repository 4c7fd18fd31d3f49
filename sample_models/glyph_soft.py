"""glyph-soft: the glyph ViT with Soft MoE feed-forward layers in its later blocks.

48×48 RGB glyph images as 6×6 patches of 8×8 pixels, no CLS token (the class comes from the
mean of the patch tokens, so every token a slot mixes is an image patch), 4 blocks of width
64; blocks 2 and 3 have a Soft MoE FFN (`sample_models.soft_moe`: 4 experts × 2 slots,
L2-normalised logits as in vmoe) instead of a dense one. No token dropping, merging or exit:
the only routing is soft. Trained by `glyph_soft_train.py`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sample_models import GLYPH_SOFT
from sample_models.glyph_vit import GlyphViTRunner, ViTAttention
from sample_models.glyphs import LETTERS, PATCH, SIZE
from sample_models.soft_moe import SoftMoE

WEIGHTS = Path(__file__).parent / "weights"


@dataclass
class GlyphSoftConfig:
    image_size: int = SIZE  # input side in pixels (any image is resized to this)
    patch: int = PATCH  # patch side in pixels
    d_model: int = 64  # residual width
    n_heads: int = 2  # attention heads
    n_layers: int = 4  # blocks
    mlp_hidden: int = 128  # dense FFN width (blocks without Soft MoE)
    soft_layers: list = field(default_factory=lambda: [2, 3])  # blocks with a Soft MoE FFN
    n_experts: int = 4  # experts per Soft MoE layer
    slots_per_expert: int = 2  # slots per expert (slot i belongs to expert i // this)
    expert_hidden: int = 64  # hidden width of one expert
    router_scale_init: float = 10.0  # initial scale of the L2-normalised routing logits
    classes: str = LETTERS  # class i is classes[i]

    @classmethod
    def from_json(cls, path: Path) -> GlyphSoftConfig:
        return cls(**json.loads(Path(path).read_text()))

    def to_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


class PlainBlock(nn.Module):
    """Pre-norm attention + FFN over every token (no reduction); `ffn` maps [b, n, d]."""

    def __init__(self, d_model: int, n_heads: int, ffn: nn.Module):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attn = ViTAttention(d_model, n_heads)
        self.mlp = ffn

    def forward(self, x, key_mask=None):  # x [b, n, d]; key_mask [b, n] bool, False: ignored
        sizes = torch.ones(x.shape[:2], device=x.device) if key_mask is None else \
            key_mask.float().clamp_min(1e-30)  # log(size): -69 for a masked key
        x = x + self.attn(self.norm1(x), sizes)[0]
        return x + self.mlp(self.norm2(x))


def dense_ffn(d_model: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))


class GlyphPatches(nn.Module):
    """Pixels [b, 3, H, W] -> patch tokens with positions [b, n, d], each image's median
    colour subtracted first (as glyph-vit does)."""

    def __init__(self, image_size: int, patch: int, d_model: int):
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(3 * patch * patch, d_model)
        self.pos = nn.Parameter(torch.randn(1, (image_size // patch) ** 2, d_model) * 0.02)

    def forward(self, pixels):
        pixels = pixels - pixels.flatten(2).median(-1).values[..., None, None]
        patches = F.unfold(pixels, kernel_size=self.patch, stride=self.patch).transpose(1, 2)
        return self.embed(patches) + self.pos


class GlyphSoft(nn.Module):
    def __init__(self, cfg: GlyphSoftConfig):
        super().__init__()
        self.cfg = cfg
        self.patches = GlyphPatches(cfg.image_size, cfg.patch, cfg.d_model)
        self.blocks = nn.ModuleList(
            PlainBlock(cfg.d_model, cfg.n_heads,
                       SoftMoE(cfg.d_model, cfg.expert_hidden, cfg.n_experts, cfg.slots_per_expert,
                               cfg.router_scale_init)
                       if i in cfg.soft_layers else dense_ffn(cfg.d_model, cfg.mlp_hidden))
            for i in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, len(cfg.classes))

    def forward(self, pixels) -> torch.Tensor:  # [b, 3, H, W] -> logits [b, classes]
        x = self.patches(pixels)  # [b, n, d]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(1))


class GlyphSoftRunner(GlyphViTRunner):
    """glyph-vit's runner and encoding with this model."""

    spec = GLYPH_SOFT
    model_class, config_class = GlyphSoft, GlyphSoftConfig

    def describe(self) -> str:
        return (f"small ViT trained on synthetic glyph images (letters "
                f"{self.cfg.classes}) with Soft MoE FFNs in blocks "
                f"{self.cfg.soft_layers} ({self.cfg.n_experts} experts × "
                f"{self.cfg.slots_per_expert} slots): soft routing only")

    @torch.no_grad()
    def predict(self, encoded) -> list[str]:
        probs = self.module(**encoded.inputs).softmax(-1)
        conf, cls = probs.max(-1)
        return [f"letter {self.cfg.classes[int(c)]} (p={float(p):.2f})" for c, p in zip(cls, conf)]

    def trace_config(self) -> dict:
        cfg = self.cfg
        base = {k: v for k, v in super(GlyphViTRunner, self).trace_config().items()}
        return {**base, "n_layers": cfg.n_layers, "n_experts": cfg.n_experts,
                "slots_per_expert": cfg.slots_per_expert, "soft_layers": list(cfg.soft_layers),
                "image_size": cfg.image_size, "patch": cfg.patch, "classes": cfg.classes}


def load(name: str = "glyph-soft") -> GlyphSoftRunner:
    return GlyphSoftRunner(name, WEIGHTS / "glyph-soft")
