"""What the dashboard accepts as an upload, checked by content, not by name.

`item_from_upload(name, data)` turns an uploaded file into one `Item`: an image when the
name says image (the bytes must then decode as one), a text when it says text (the bytes
must be UTF-8 text, not binary). Every failure is a one-line RoutevizError.
"""

from __future__ import annotations

from pathlib import PurePath

from routeviz.errors import RoutevizError
from routeviz.runs.inputs import Item, check_text, decode_text, load_image

TEXT_TYPES = ("txt", "py", "md")
IMAGE_TYPES = ("png", "jpg", "jpeg", "webp", "gif", "bmp", "tif", "tiff")
UPLOAD_TYPES = TEXT_TYPES + IMAGE_TYPES


def upload_kind(name: str) -> str:
    """"text" or "image" from the file name's extension; anything else is refused."""
    suffix = PurePath(name).suffix.lower().lstrip(".")
    if suffix in TEXT_TYPES:
        return "text"
    if suffix in IMAGE_TYPES:
        return "image"
    raise RoutevizError(f"{name}: unsupported file type {('.' + suffix) if suffix else '(none)'}; "
                        f"upload one of {', '.join('.' + t for t in UPLOAD_TYPES)}")


def item_from_upload(name: str, data: bytes) -> Item:
    """One uploaded file as an Item (image: RGB PIL with its original size in tags)."""
    kind = upload_kind(name)
    if not data:
        raise RoutevizError(f"{name}: empty file")
    if kind == "image":
        image = load_image(data, name)
        return Item(image=image, source=name)
    return Item(text=decode_text(data, name), source=name)


def item_from_text(text: str, source: str = "typed text") -> Item:
    return Item(text=check_text(text, source), source=source)
