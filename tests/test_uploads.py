"""routeviz.uploads: what the dashboard accepts, checked by content."""

import io

import pytest
from PIL import Image

from routeviz.errors import RoutevizError
from routeviz.runs.uploads import item_from_text, item_from_upload, upload_kind


def encoded(fmt: str, mode: str = "RGB", size=(20, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("name,fmt,mode", [
    ("a.png", "PNG", "RGBA"), ("a.jpg", "JPEG", "RGB"), ("a.jpeg", "JPEG", "L"),
    ("a.webp", "WEBP", "RGB"), ("a.gif", "GIF", "P"), ("a.bmp", "BMP", "RGB"),
    ("a.tif", "TIFF", "CMYK"), ("a.tiff", "TIFF", "RGB"),
])
def test_every_image_type_becomes_rgb(name, fmt, mode):
    item = item_from_upload(name, encoded(fmt, mode))
    assert item.modality == "image" and item.image.mode == "RGB"
    assert item.image.size == (20, 10) and item.source == name


@pytest.mark.parametrize("name", ["a.txt", "b.py", "c.MD"])
def test_text_types(name):
    item = item_from_upload(name, "héllo <b>x</b>\n".encode())
    assert item.modality == "text" and item.text == "héllo <b>x</b>\n"


@pytest.mark.parametrize("name,data,message", [
    ("a.png", b"", "empty file"),
    ("a.txt", b"", "empty file"),
    ("a.txt", b"   \n", "empty text"),
    ("a.png", b"this is text, not a picture", "not an image"),
    ("a.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "a.png"),
    ("a.py", b"\x00\x01binary", "binary"),
    ("a.txt", b"\xff\xfe\xfa", "not valid UTF-8"),
    ("a.exe", b"MZ", "unsupported file type .exe"),
    ("noext", b"x", r"unsupported file type \(none\)"),
])
def test_bad_uploads_are_one_line_errors(name, data, message):
    with pytest.raises(RoutevizError, match=message) as err:
        item_from_upload(name, data)
    assert "\n" not in str(err.value) and name in str(err.value)


def test_kinds_and_typed_text():
    assert upload_kind("X.JPG") == "image" and upload_kind("notes.md") == "text"
    assert item_from_text("a b").text == "a b"
    with pytest.raises(RoutevizError, match="empty"):
        item_from_text("  ")
