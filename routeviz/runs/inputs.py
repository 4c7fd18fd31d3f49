"""What users feed routeviz — texts, text files, images — read defensively.

Every failure is a RoutevizError with a one-line message; nothing here trusts a file name,
an extension or a header.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from routeviz.errors import RoutevizError

MAX_TEXT_BYTES = 10 * 1024 * 1024  # a text larger than this is refused
MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard (PIL's default is ~89 M)
MAX_IMAGE_BYTES = 50 * 1024 * 1024
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
TEXT_SUFFIXES = {".txt", ".py", ".md", ".rst", ".json", ".csv", ".tsv", ".html", ".log"}


@dataclass
class Item:
    """One example to run: a text or an image, where it came from, and its tags."""

    text: str | None = None
    image: object = None  # PIL.Image.Image, RGB
    source: str = ""
    label: str | None = None
    tags: dict = field(default_factory=dict)  # example-level tags {name: value}

    @property
    def modality(self) -> str:
        return "image" if self.image is not None else "text"


def decode_text(data: bytes, name: str = "text") -> str:
    """Bytes to text: UTF-8 (BOM allowed); binary or undecodable input is refused."""
    if len(data) > MAX_TEXT_BYTES:
        raise RoutevizError(f"{name}: {len(data) / 1e6:.1f} MB is over the "
                            f"{MAX_TEXT_BYTES // (1024 * 1024)} MB limit for a text")
    if b"\x00" in data[:8192]:
        raise RoutevizError(f"{name}: looks like a binary file (contains NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RoutevizError(f"{name}: not valid UTF-8 text (byte {exc.start})") from None
    return check_text(text, name)


def check_text(text: str, name: str = "text") -> str:
    if text is None or not text.strip():
        raise RoutevizError(f"{name}: empty text; give at least one non-blank character")
    if "\x00" in text:
        text = text.replace("\x00", "\N{REPLACEMENT CHARACTER}")
    return text


def read_text_file(path, lines: bool = False) -> list[Item]:
    path = Path(path)
    if not path.exists():
        raise RoutevizError(f"file {str(path)!r} does not exist")
    if path.is_dir():
        raise RoutevizError(f"{str(path)!r} is a directory, not a file")
    size = path.stat().st_size
    if size > MAX_TEXT_BYTES:
        raise RoutevizError(f"{path.name}: {size / 1e6:.1f} MB is over the "
                            f"{MAX_TEXT_BYTES // (1024 * 1024)} MB limit for a text")
    text = decode_text(path.read_bytes(), path.name)
    if not lines:
        return [Item(text=text, source=path.name)]
    items = [Item(text=line, source=f"{path.name}:{i + 1}")
             for i, line in enumerate(text.splitlines()) if line.strip()]
    if not items:
        raise RoutevizError(f"{path.name}: no non-empty lines")
    return items


def load_image(data: bytes, name: str = "image"):
    """Bytes to an RGB PIL image: first frame, EXIF orientation applied, any mode converted."""
    from PIL import Image, ImageOps

    if not data:
        raise RoutevizError(f"{name}: empty file")
    if len(data) > MAX_IMAGE_BYTES:
        raise RoutevizError(f"{name}: {len(data) / 1e6:.0f} MB is over the "
                            f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB limit for an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise RoutevizError(f"{name}: {width}×{height} pixels is over the "
                                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} MP limit (possible "
                                    "decompression bomb)")
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)
            image.load()
            image = ImageOps.exif_transpose(image)
            image = to_rgb(image)
    except RoutevizError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise RoutevizError(f"{name}: too many pixels (possible decompression bomb)") from None
    except Image.UnidentifiedImageError:
        raise RoutevizError(f"{name}: not an image file PIL can read") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise RoutevizError(f"{name}: damaged or truncated image ({exc})") from None
    if min(image.size) < 1:
        raise RoutevizError(f"{name}: image has no pixels")
    return image


def to_rgb(image):
    """Any PIL mode (palette, LA, RGBA, CMYK, I;16, F, 1) to 8-bit RGB on white."""
    import numpy as np
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
        image = Image.fromarray(arr.astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").split()[-1])
        return background
    return image.convert("RGB")


ORIGINAL_SIZE = "routeviz-original-size"  # PNG text chunk: "WxH" before the model's resize


def input_png(image, original=None) -> bytes:
    """The image a model ran on (its input size, e.g. a 224×224 square) as PNG bytes for
    `examples.image`, the pixels a rerun needs; `original`, the image before that resize, is
    recorded as its size in a PNG text chunk, so pages draw it at its own aspect ratio
    (a 640×480 photo is not shown squashed to a square)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    # an image read back from the store (a what-if rerun) carries its own original's size
    size = None if original is None else original_size(original) or tuple(original.size)
    if size and size != tuple(image.size):
        info.add_text(ORIGINAL_SIZE, "{}x{}".format(*size))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def original_size(image) -> tuple[int, int] | None:
    """(width, height) `input_png` recorded for a stored image (a PIL image), else None."""
    text = (getattr(image, "text", None) or image.info or {}).get(ORIGINAL_SIZE)
    try:
        width, height = (int(v) for v in str(text).split("x"))
    except ValueError:
        return None
    return (width, height) if width > 0 and height > 0 else None


def at_aspect(image, size: tuple[int, int] | None):
    """`image` resized to the aspect ratio of `size` (its longer side kept); as is if None."""
    if not size:
        return image
    side = max(image.size)
    width, height = size
    target = (max(1, round(side * width / max(width, height))),
              max(1, round(side * height / max(width, height))))
    return image if target == image.size else image.resize(target)


def read_image_file(path):
    path = Path(path)
    if not path.exists():
        raise RoutevizError(f"file {str(path)!r} does not exist")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise RoutevizError(f"{path.name}: over the {MAX_IMAGE_BYTES // (1024 * 1024)} MB "
                            "limit for an image")
    return Item(image=load_image(path.read_bytes(), path.name), source=path.name)


def read_file(path, lines: bool = False) -> list[Item]:
    """A file given on the command line: an image by its type, else a text."""
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [read_image_file(path)]
    return read_text_file(path, lines=lines)
