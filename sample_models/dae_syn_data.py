"""The DAE-Syn images (suboptimal-routing paper §3): 8 letters x 8 locations x 8 foreground
colors x 8 background colors = 4096 unique 32x32 RGB images, drawn with PIL's built-in font.

Every image is fully determined by its four attributes, which are its example-level tags
(`letter`, `location`, `fg`, `bg`): the 32 = 4 x 8 tag values of the paper's tag routing.
Foreground and background palettes are disjoint, so no letter is ever invisible and all
4096 images differ. Drawing is deterministic (same pixels on every run).
"""

from __future__ import annotations

import itertools

import numpy as np

from routeviz.runs.inputs import Item

IMAGE_SIZE = 32  # pixels per side
FONT_SIZE = 14  # PIL's built-in (FreeType) font; glyphs are ~10 px tall at this size
ATTRIBUTES = ("letter", "location", "fg", "bg")  # router i routes by attribute i (tag routing)

LETTERS = ("A", "B", "C", "D", "E", "F", "G", "H")
# location name -> top-left corner of the letter's 11x11 cell (a 3x3 grid without its centre)
LOCATIONS = {
    "top-left": (0, 0), "top": (11, 0), "top-right": (21, 0), "left": (0, 11),
    "right": (21, 11), "bottom-left": (0, 21), "bottom": (11, 21), "bottom-right": (21, 21),
}
FG_COLORS = {
    "red": (230, 40, 40), "green": (40, 200, 60), "blue": (60, 90, 255), "yellow": (240, 220, 40),
    "cyan": (40, 220, 230), "magenta": (230, 50, 220), "white": (250, 250, 250),
    "orange": (255, 140, 20),
}
BG_COLORS = {
    "black": (0, 0, 0), "navy": (10, 20, 90), "maroon": (100, 10, 20), "forest": (10, 80, 30),
    "purple": (70, 20, 100), "teal": (10, 90, 90), "olive": (90, 90, 10), "gray": (110, 110, 110),
}
VALUES = {"letter": LETTERS, "location": tuple(LOCATIONS), "fg": tuple(FG_COLORS),
          "bg": tuple(BG_COLORS)}
N_VALUES = 8


def attribute_indices() -> np.ndarray:
    """All 4096 attribute combinations in dataset order, [4096, 4] (letter, location, fg, bg)."""
    return np.array(list(itertools.product(range(N_VALUES), repeat=len(ATTRIBUTES))),
                    dtype=np.int64)


def tags_of(indices) -> dict:
    """Attribute indices (4 ints) -> the example's tags {letter: 'A', location: ..., ...}."""
    return {name: VALUES[name][int(i)] for name, i in zip(ATTRIBUTES, indices)}


def indices_of(tags: dict):
    """An example's tags -> its 4 attribute indices, or None if any is missing or unknown."""
    out = []
    for name in ATTRIBUTES:
        value = tags.get(name) if tags else None
        if value not in VALUES[name]:
            return None
        out.append(VALUES[name].index(value))
    return out


def draw(indices):
    """One DAE-Syn image (PIL RGB, 32x32) for attribute indices (letter, location, fg, bg)."""
    from PIL import Image, ImageDraw, ImageFont

    letter, location, fg, bg = (int(i) for i in indices)
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BG_COLORS[VALUES["bg"][bg]])
    font = ImageFont.load_default(size=FONT_SIZE)
    text = LETTERS[letter]
    left, top, right, bottom = font.getbbox(text)
    cell_x, cell_y = LOCATIONS[VALUES["location"][location]]
    # centre the glyph's ink box in its 11x11 cell
    x = cell_x + (11 - (right - left)) // 2 - left
    y = cell_y + (11 - (bottom - top)) // 2 - top
    ImageDraw.Draw(image).text((x, y), text, fill=FG_COLORS[VALUES["fg"][fg]], font=font)
    return image


def dae_syn_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All images as uint8 [4096, 32, 32, 3] and their attribute indices [4096, 4]."""
    indices = attribute_indices()
    pixels = np.stack([np.asarray(draw(row), dtype=np.uint8) for row in indices])
    return pixels, indices


def dae_syn_dataset(limit: int | None = None) -> list[Item]:
    """The DAE-Syn images as Items with their four attribute tags (first `limit` if given)."""
    indices = attribute_indices()
    if limit is not None:
        indices = indices[:max(0, int(limit))]
    items = []
    for number, row in enumerate(indices):
        tags = tags_of(row)
        items.append(Item(image=draw(row), source=f"dae-syn/{number:04d}",
                          label=f"{tags['letter']} {tags['location']} {tags['fg']} on {tags['bg']}",
                          tags=tags))
    return items
