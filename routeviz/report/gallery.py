"""Expert galleries: for each (site, expert), the units it weighted highest — a token in
its context for text, a crop of the patch (or a thumbnail of the whole image, for a
per-example decision) for images, cut from the PNG bytes in the examples table."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pandas as pd

CROP_PX = 56  # side of a patch crop or thumbnail in the report
CROP_MARGIN = 0.5  # context kept around a patch, in patch widths


@dataclass
class GalleryItem:
    example: int
    token: int  # -1: the whole example
    weight: float
    text: str  # the token (or the example's source)
    left: str = ""
    right: str = ""
    png: bytes | None = None  # a crop or thumbnail, for images
    source: str = ""  # the example's file name or first characters


@dataclass
class Gallery:
    modality: str  # "text" or "image"
    items: dict = field(default_factory=dict)  # (site, expert) -> list[GalleryItem]
    n_items: int = 0

    def of(self, site: str, expert: int) -> list[GalleryItem]:
        return self.items.get((site, int(expert)), [])


def build_gallery(store, run: str, contexts: pd.DataFrame, sites: set, limit: int) -> Gallery:
    """contexts: site, expert, example, token, text, left, right, weight (highest weight
    first per expert), from `metrics.expert_profiles(...).examples`. Only `sites` are kept,
    and at most `limit` items in all: every expert's best unit before any expert's second."""
    contexts = contexts[contexts.site.isin(sites)]
    order = contexts.groupby(["site", "expert"], sort=False).cumcount()  # 0 = best of its expert
    contexts = contexts.iloc[order.argsort(kind="stable")].head(limit)
    examples = sorted({int(e) for e in contexts.example})
    images = _images(store, run, examples)
    sources = _sources(store, run, examples)
    gallery = Gallery(modality="image" if images else "text")
    for rec in contexts.itertuples(index=False):
        png = None
        if images:
            png = _crop(images.get(int(rec.example)), int(rec.token))
        item = GalleryItem(example=int(rec.example), token=int(rec.token),
                           weight=float(rec.weight) if pd.notna(rec.weight) else float("nan"),
                           text=str(rec.text or ""), left=str(rec.left or ""),
                           right=str(rec.right or ""), png=png,
                           source=sources.get(int(rec.example), ""))
        gallery.items.setdefault((str(rec.site), int(rec.expert)), []).append(item)
        gallery.n_items += 1
    return gallery


def _sources(store, run: str, examples: list[int]) -> dict:
    if not examples:
        return {}
    return store.example_sources(run, examples)


def _images(store, run: str, examples: list[int]) -> dict:
    """example -> (PIL image, grid_h, grid_w) for the image examples among `examples`."""
    if not examples:
        return {}
    df = store.example_images(run, examples)
    out = {}
    for rec in df.itertuples(index=False):
        image = _decode(rec.image)
        if image is not None:
            out[int(rec.example)] = (image, _int(rec.grid_h), _int(rec.grid_w))
    return out


def _int(value) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _decode(data):
    from routeviz.runs.inputs import load_image

    try:
        return load_image(bytes(data))
    except Exception:  # noqa: BLE001 — a damaged image shows as text, not as a failed report
        return None


def _crop(entry, token: int) -> bytes | None:
    """The patch `token` (row-major over grid_h × grid_w) with a margin, or the whole image
    for token -1 or a token outside the grid (e.g. a class token), as a small PNG."""
    if entry is None:
        return None
    from PIL import Image

    image, grid_h, grid_w = entry
    width, height = image.size
    if 0 <= token < grid_h * grid_w:
        row, col = divmod(token, grid_w)
        cell_w, cell_h = width / grid_w, height / grid_h
        box = (max(0, int((col - CROP_MARGIN) * cell_w)), max(0, int((row - CROP_MARGIN) * cell_h)),
               min(width, int((col + 1 + CROP_MARGIN) * cell_w + 0.999)),
               min(height, int((row + 1 + CROP_MARGIN) * cell_h + 0.999)))
        image = image.crop(box)
    scale = CROP_PX / max(image.size)
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    image = image.resize(size, Image.NEAREST if scale >= 1 else Image.LANCZOS)
    buf = io.BytesIO()  # 64 colours: a thumbnail stays recognisable at a third of the bytes
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG",
                                                                   optimize=True)
    return buf.getvalue()
