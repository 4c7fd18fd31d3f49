"""Every input a user can give gets a one-line RoutevizError or a usable value, never a crash."""

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from routeviz.errors import RoutevizError
from routeviz.runs.inputs import MAX_TEXT_BYTES, decode_text, load_image, read_file, read_text_file


def _png(image, fmt="PNG", **kw):
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("data, message", [
    (b"", "empty text"),
    (b"   \n\t ", "empty text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
    (b"caf\xe9 au lait", "not valid UTF-8"),
    (b"x" * (MAX_TEXT_BYTES + 1), "limit"),
])
def test_bad_text_messages(data, message):
    with pytest.raises(RoutevizError, match=message) as err:
        decode_text(data, "upload.txt")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", [
    "مرحبا بالعالم hello",  # right-to-left
    "e\u0301\u0302\u0303 Z\u0351\u0352\u0353",  # stacked combining marks
    "🧑‍🚀🏳️‍🌈 emoji 👍🏽",
    "<script>alert(1)</script>",
])
def test_exotic_unicode_round_trips(text):
    assert decode_text(text.encode("utf-8"), "t") == text


def test_utf8_bom_is_dropped():
    assert decode_text("\ufeffhello".encode("utf-8")) == "hello"


def test_text_file_lines(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("one\n\n two \n")
    items = read_text_file(path, lines=True)
    assert [i.text for i in items] == ["one", " two "]
    assert [i.source for i in items] == ["a.txt:1", "a.txt:3"]


def test_text_named_png_is_refused(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("this is not an image")
    with pytest.raises(RoutevizError, match="not an image"):
        read_file(path)


def _images():
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), np.uint8))
    frames = [Image.new("P", (8, 8), i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: a 30x20 JPEG displays as 20x30
    return {
        "rgba": (_png(rgb.convert("RGBA")), (30, 20)),
        "palette": (_png(rgb.convert("P")), (30, 20)),
        "gray": (_png(rgb.convert("L")), (30, 20)),
        "gray16": (_png(Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)),
                   (30, 20)),
        "cmyk": (_png(rgb.convert("CMYK"), "JPEG"), (30, 20)),
        "animated": (buf.getvalue(), (8, 8)),
        "exif": (_png(rgb, "JPEG", exif=exif), (20, 30)),
        "tall": (_png(Image.new("RGB", (1, 3000))), (1, 3000)),
        "webp": (_png(rgb, "WEBP"), (30, 20)),
        "bmp": (_png(rgb, "BMP"), (30, 20)),
        "tiff": (_png(rgb, "TIFF"), (30, 20)),
    }


@pytest.mark.parametrize("name", list(_images()))
def test_odd_images_become_rgb(name):
    data, size = _images()[name]
    image = load_image(data, name)
    assert image.mode == "RGB" and image.size == size


def test_16bit_gray_keeps_contrast():
    data, _ = _images()["gray16"]
    arr = np.asarray(load_image(data))
    assert arr.min() == 0 and arr.max() == 255


@pytest.mark.parametrize("case, message", [
    ("empty", "empty file"),
    ("garbage", "not an image"),
    ("truncated", "damaged or truncated"),
    ("bomb", "decompression bomb"),
])
def test_bad_images_messages(case, message):
    good = _png(Image.new("RGB", (64, 64), (10, 20, 30)), "JPEG")
    data = {
        "empty": b"",
        "garbage": b"GIF89a" + bytes(range(256)) * 4,
        "truncated": good[: len(good) // 2],
        "bomb": _png(Image.new("1", (12000, 12000))),
    }[case]
    with pytest.raises(RoutevizError, match=message) as err:
        load_image(data, "up.img")
    assert "\n" not in str(err.value) and str(err.value).startswith("up.img")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=4096))
def test_fuzz_text_loader(data):
    try:
        text = decode_text(data)
    except RoutevizError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(text, str) and text.strip()


_SEEDS = [_png(Image.new("RGB", (9, 7), (1, 2, 3))), _png(Image.new("L", (5, 5)), "GIF"),
          _png(Image.new("RGB", (8, 8)), "JPEG")]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_SEEDS), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)),
                                          max_size=8), st.integers(0, 500))
def test_fuzz_image_loader(seed, flips, cut):
    data = bytearray(seed)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    data = bytes(data[: max(len(data) - cut, 0)])
    try:
        image = load_image(data)
    except RoutevizError as exc:
        assert "\n" not in str(exc)
    else:
        assert image.mode == "RGB"
