"""Synthetic glyph images whose ground truth is known: a letter at one of four locations,
in a foreground color on a background color, plus pixel noise.

Drawn with PIL's built-in font, so nothing downloads. Each image comes with example tags
(letter, location, fg, bg) and a per-patch `region` tag (glyph / background) read from the
drawing mask, for the glyph-vit sample model (48×48 images, 8×8 patches, a 6×6 grid).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from routeviz.runs.inputs import Item

SIZE = 48  # image side in pixels
PATCH = 8  # patch side: a 6×6 grid
LETTERS = "ABCDEFGHKM"
LOCATIONS = {"top-left": (0, 0), "top-right": (24, 0), "bottom-left": (0, 24), "bottom-right": (24, 24)}
COLORS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (235, 210, 40),
          "white": (245, 245, 245), "black": (15, 15, 15), "purple": (150, 60, 190), "gray": (128, 128, 128)}
STROKE = 1  # extra stroke width in pixels, so strokes span more than one pixel
NOISE_STD = 12.0  # pixel noise (0-255 scale)
MIN_GLYPH_PIXELS = 4  # a patch is `glyph` if the letter covers at least this many pixels of it


class Glyph(NamedTuple):
    image: np.ndarray  # [SIZE, SIZE, 3] uint8
    mask: np.ndarray  # [SIZE, SIZE] bool, where the letter was drawn
    letter: str
    location: str
    fg: str
    bg: str


def draw_glyph(letter: str, location: str, fg: str, bg: str, rng: np.random.Generator) -> Glyph:
    """One image: the letter (~22 px) in its 24×24 quadrant, jittered by up to 2 px."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=22)
    mask_img = Image.new("L", (SIZE, SIZE), 0)
    left, top = LOCATIONS[location]
    box = ImageDraw.Draw(mask_img).textbbox((0, 0), letter, font=font, stroke_width=STROKE)
    x = left + (24 - (box[2] - box[0])) // 2 - box[0] + int(rng.integers(-2, 3))
    y = top + (24 - (box[3] - box[1])) // 2 - box[1] + int(rng.integers(-2, 3))
    ImageDraw.Draw(mask_img).text((x, y), letter, fill=255, font=font, stroke_width=STROKE,
                                  stroke_fill=255)
    alpha = np.asarray(mask_img, dtype=np.float32)[..., None] / 255.0  # [h, w, 1]
    pixels = alpha * np.array(COLORS[fg], np.float32) + (1 - alpha) * np.array(COLORS[bg], np.float32)
    pixels += rng.normal(0.0, NOISE_STD, pixels.shape)
    image = np.clip(pixels, 0, 255).astype(np.uint8)
    return Glyph(image, alpha[..., 0] > 0.5, letter, location, fg, bg)


def patch_regions(mask: np.ndarray, patch: int = PATCH) -> list[str]:
    """Row-major per patch: `glyph` if the letter covers enough of it, else `background`."""
    h, w = mask.shape
    counts = mask.reshape(h // patch, patch, w // patch, patch).sum(axis=(1, 3))  # [gh, gw]
    return ["glyph" if c >= MIN_GLYPH_PIXELS else "background" for c in counts.reshape(-1)]


def random_glyph(rng: np.random.Generator) -> Glyph:
    colors = list(COLORS)
    fg = colors[int(rng.integers(len(colors)))]
    bg = colors[int(rng.integers(len(colors) - 1))]
    bg = colors[-1] if bg == fg else bg  # fg != bg
    return draw_glyph(LETTERS[int(rng.integers(len(LETTERS)))],
                      list(LOCATIONS)[int(rng.integers(len(LOCATIONS)))], fg, bg, rng)


def glyph_batch(n: int, seed: int) -> list[Glyph]:
    rng = np.random.default_rng(seed)
    return [random_glyph(rng) for _ in range(n)]


EVAL_SEED = 1_000_003  # held-out images; training uses other seeds


def glyph_item(glyph: Glyph, index: int) -> Item:
    from PIL import Image

    return Item(image=Image.fromarray(glyph.image, "RGB"),
                source=f"glyph-{index:04d}-{glyph.letter}-{glyph.location}",
                label=glyph.letter,
                tags={"letter": glyph.letter, "location": glyph.location, "fg": glyph.fg,
                      "bg": glyph.bg, "region": patch_regions(glyph.mask)})


def glyph_dataset(limit: int | None = None) -> list[Item]:
    """Held-out glyph images (deterministic); `region` is a per-patch tag list."""
    n = 256 if limit is None else limit
    return [glyph_item(g, i) for i, g in enumerate(glyph_batch(n, EVAL_SEED))]
