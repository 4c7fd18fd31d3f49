"""glyph-vit: a small vision transformer for glyph images with all three kinds of routing.

48×48 RGB images as 6×6 patches of 8×8 pixels, a CLS token, 4 blocks of width 96:
- between blocks, tokens are dropped (EViT: keep the tokens CLS attends to most) or merged
  (ToMe bipartite matching on attention keys); the original patch of every token is tracked;
- blocks 1-3 have a top-2 mixture of 8 experts as FFN;
- every block ends in a per-image exit head: at inference an image stops at the first layer
  whose classifier is confident enough; its later routing is not recorded.

Trained on `sample_models.glyphs` by `glyph_vit_train.py`; any other image is resized to
48×48 first, so photos run, but the model only knows glyphs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from routeviz.figures.labels import exit_label
from routeviz.runs.models import Encoded, ModelRunner
from sample_models import GLYPH_VIT, layers
from sample_models.glyphs import LETTERS, PATCH, SIZE

WEIGHTS = Path(__file__).parent / "weights"


@dataclass
class GlyphViTConfig:
    image_size: int = SIZE  # input side in pixels (any image is resized to this)
    patch: int = PATCH  # patch side in pixels
    d_model: int = 96  # residual width
    n_heads: int = 3  # attention heads
    n_layers: int = 4  # blocks
    mlp_hidden: int = 192  # dense FFN width (block 0)
    moe_layers: list = field(default_factory=lambda: [1, 2, 3])  # blocks with an MoE FFN
    n_experts: int = 8  # experts per MoE FFN
    top_k: int = 2  # experts per token
    expert_hidden: int = 96  # hidden width of one expert
    # token reduction after each block: ["evit", keep rate] / ["tome", merges] / ["none", 0]
    reductions: list = field(default_factory=lambda: [["evit", 0.75], ["tome", 6], ["evit", 0.75], ["none", 0]])
    classes: str = LETTERS  # class i is classes[i]
    exit_threshold: float = 0.999  # per-image confidence (max softmax prob) to exit early
    aux_loss_weight: float = 0.01  # load-balancing loss weight

    @classmethod
    def from_json(cls, path: Path) -> GlyphViTConfig:
        return cls(**json.loads(Path(path).read_text()))

    def to_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


class ViTOutput(NamedTuple):
    logits: torch.Tensor  # [b, classes] from each image's exit layer
    layer_logits: list  # per layer [b, classes]
    exit_layer: torch.Tensor  # [b] last layer computed
    n_tokens: list  # per layer, patch tokens the block saw
    aux_loss: torch.Tensor  # scalar


class ViTAttention(nn.Module):
    """Self-attention that also returns CLS attention [b, n] and mean keys [b, n, dh] of the
    patch tokens; `sizes` [b, 1+n] adds log(size) to the logits (ToMe proportional attention)."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x, sizes):
        b, n1, d = x.shape
        q, k, v = self.qkv(x).view(b, n1, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) * (d // self.n_heads) ** -0.5  # [b, h, n1, n1]
        attn = (logits + sizes.log()[:, None, None, :]).softmax(-1)
        y = (attn @ v).transpose(1, 2).reshape(b, n1, d)
        return self.out(y), attn[:, :, 0, 1:].mean(1), k[:, :, 1:].mean(1)


class ViTBlock(nn.Module):
    def __init__(self, cfg: GlyphViTConfig, layer: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = ViTAttention(cfg.d_model, cfg.n_heads)
        self.moe = layer in cfg.moe_layers
        self.mlp = (layers.MoEFeedForward(cfg.d_model, cfg.expert_hidden, cfg.n_experts, cfg.top_k)
                    if self.moe else nn.Sequential(nn.Linear(cfg.d_model, cfg.mlp_hidden), nn.GELU(),
                                                   nn.Linear(cfg.mlp_hidden, cfg.d_model)))
        kind, amount = cfg.reductions[layer]
        self.reduce = (layers.EViTPruner(amount) if kind == "evit" else
                       layers.ToMeMerger(int(amount)) if kind == "tome" else None)

    def forward(self, x, sizes, positions):
        # x [b, 1+n, d], sizes [b, 1+n], positions [b, n] (-1: not recorded)
        attn_out, cls_attention, keys = self.attn(self.norm1(x), sizes)
        x = x + attn_out
        aux = x.new_zeros(())
        if self.moe:
            row_positions = torch.cat([torch.full_like(positions[:, :1], -1), positions], 1)
            ffn = self.mlp(self.norm2(x), row_positions)
            x, aux = x + ffn.hidden, ffn.aux_loss
        else:
            x = x + self.mlp(self.norm2(x))
        if isinstance(self.reduce, layers.EViTPruner):
            pruned = self.reduce(x, cls_attention, positions)
            keep = torch.cat([torch.zeros_like(pruned.kept_index[:, :1]),
                              pruned.kept_index + 1], 1)  # [b, 1 + n_keep], CLS first
            x, sizes, positions = pruned.hidden, torch.gather(sizes, 1, keep), pruned.positions
        elif isinstance(self.reduce, layers.ToMeMerger):
            merged = self.reduce(x, keys, positions, sizes)
            x, sizes, positions = merged.hidden, merged.sizes, merged.positions
        return x, sizes, positions, aux


class GlyphViT(nn.Module):
    def __init__(self, cfg: GlyphViTConfig):
        super().__init__()
        self.cfg = cfg
        n_patches = (cfg.image_size // cfg.patch) ** 2
        self.patch_embed = nn.Linear(3 * cfg.patch * cfg.patch, cfg.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.d_model))
        self.pos = nn.Parameter(torch.randn(1, 1 + n_patches, cfg.d_model) * 0.02)
        self.blocks = nn.ModuleList(ViTBlock(cfg, i) for i in range(cfg.n_layers))
        self.exits = nn.ModuleList(
            layers.ImageExitHead(cfg.d_model, len(cfg.classes), i, cfg.exit_threshold,
                                 last=i == cfg.n_layers - 1) for i in range(cfg.n_layers))

    def patches(self, pixels):  # [b, 3, H, W] -> [b, n, 3 * p * p], row-major patches
        p = self.cfg.patch
        return F.unfold(pixels, kernel_size=p, stride=p).transpose(1, 2)

    def forward(self, pixels, early_exit: bool = True) -> ViTOutput:
        b = pixels.shape[0]
        # subtract each image's per-channel median (its background color): letters are
        # then the same signal on any background
        pixels = pixels - pixels.flatten(2).median(-1).values[..., None, None]
        tokens = self.patch_embed(self.patches(pixels))  # [b, n, d]
        x = torch.cat([self.cls.expand(b, -1, -1), tokens], 1) + self.pos
        n = tokens.shape[1]
        positions = torch.arange(n, device=x.device).expand(b, n)  # [b, n]
        sizes = torch.ones(b, 1 + n, device=x.device)
        exited = torch.zeros(b, dtype=torch.bool, device=x.device)
        exit_layer = torch.full((b,), self.cfg.n_layers - 1, dtype=torch.long, device=x.device)
        final, layer_logits, n_tokens, aux = None, [], [], x.new_zeros(())
        for i, block in enumerate(self.blocks):
            n_tokens.append(x.shape[1] - 1)
            x, sizes, positions, block_aux = block(x, sizes, positions)
            aux = aux + block_aux
            decision = self.exits[i](x[:, 0], exited)
            layer_logits.append(decision.logits)
            exit_layer = torch.where(decision.exit_now, i, exit_layer)
            final = decision.logits if final is None else torch.where(
                decision.exit_now[:, None], decision.logits, final)
            if early_exit:  # later routing of exited images is not recorded
                exited = exited | decision.exit_now
                positions = torch.where(exited[:, None], torch.full_like(positions, -1), positions)
        if not early_exit:
            final = layer_logits[-1]
        return ViTOutput(final, layer_logits, exit_layer, n_tokens, aux)


def to_pixels(images, size: int = SIZE) -> torch.Tensor:
    """PIL images (any size or mode) -> [b, 3, size, size] normalised floats."""
    from routeviz.runs.inputs import to_rgb

    arrays = [np.asarray(_resized(to_rgb(im), size), dtype=np.float32) for im in images]
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0
    return (pixels - 0.5) / 0.25


def _resized(image, size: int):
    from PIL import Image

    return image if image.size == (size, size) else image.resize((size, size), Image.BILINEAR)


# --- runner -------------------------------------------------------------------------------
def load_weights(directory: Path, model_class=None, config_class=None):
    """A glyph model (GlyphViT unless told another, with its config class) from its shipped
    config.json and float16 model.safetensors, in eval mode."""
    from safetensors.torch import load_file

    model_class, config_class = model_class or GlyphViT, config_class or GlyphViTConfig
    model = model_class(config_class.from_json(directory / "config.json"))
    state = {k: v.float() for k, v in load_file(directory / "model.safetensors").items()}
    model.load_state_dict(state)  # shipped as float16
    return model.eval()


class GlyphViTRunner(ModelRunner):
    """A glyph model behind the runner interface; glyph-soft and glyph-act subclass it with
    their own model and config classes and description, and share its encoding (48×48
    resize, r<row>c<col> patch labels, glyph tags)."""

    spec = GLYPH_VIT
    model_class, config_class = None, None  # None: GlyphViT, GlyphViTConfig

    def __init__(self, name: str, directory: Path):
        self.name = name
        self.module = load_weights(directory, self.model_class, self.config_class)
        self.cfg = self.module.cfg
        self.grid = self.cfg.image_size // self.cfg.patch
        self.max_tokens = self.grid * self.grid
        self.description = self.describe()

    def describe(self) -> str:
        return (f"small ViT trained on synthetic glyph images (letters {self.cfg.classes}); "
                f"any image is resized to {self.cfg.image_size}×{self.cfg.image_size} and "
                "runs, but it only knows glyphs: token dropping/merging, MoE, per-image early exit")

    def encode(self, items) -> Encoded:
        from routeviz.errors import RoutevizError

        if any(item.image is None for item in items):
            raise RoutevizError(f"{self.name} is an image model; it cannot take a text")
        from routeviz.runs.inputs import input_png, to_rgb

        resized = [_resized(to_rgb(item.image), self.cfg.image_size) for item in items]
        labels = [f"r{r}c{c}" for r in range(self.grid) for c in range(self.grid)]
        meta, tags = [], []
        for item, image in zip(items, resized):
            meta.append({"modality": "image", "source": item.source or "image", "label": item.label,
                         "image": input_png(image, item.image), "grid_h": self.grid,
                         "grid_w": self.grid,
                         "patch": self.cfg.patch})
            tags.append({k: v for k, v in item.tags.items()
                         if not isinstance(v, (list, tuple)) or len(v) == self.max_tokens})
        return Encoded(inputs={"pixels": to_pixels(resized, self.cfg.image_size)},
                       tokens=[list(labels) for _ in items], tags=tags, meta=meta)

    @torch.no_grad()
    def predict(self, encoded: Encoded) -> list[str]:
        out = self.module(**encoded.inputs)
        probs = out.logits.softmax(-1)
        conf, cls = probs.max(-1)
        return [f"letter {self.cfg.classes[int(c)]} (probability {float(p):.2f}; exit at "
                f"{exit_label(int(e), self.cfg.n_layers)})"
                for c, p, e in zip(cls, conf, out.exit_layer)]

    def trace_config(self) -> dict:
        cfg = self.cfg
        return {**super().trace_config(), "n_layers": cfg.n_layers,
                "n_experts": cfg.n_experts, "top_k": cfg.top_k, "moe_layers": list(cfg.moe_layers),
                "reductions": cfg.reductions, "exit_threshold": cfg.exit_threshold,
                "image_size": cfg.image_size, "patch": cfg.patch, "classes": cfg.classes}


def load(name: str = "glyph-vit") -> GlyphViTRunner:
    return GlyphViTRunner(name, WEIGHTS / "glyph-vit")
