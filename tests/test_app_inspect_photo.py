"""Inspect on a real photo-like upload with glyph-vit (issue 24, "Misread"): a 640×480
image is drawn 4:3 (it was squashed to the model's square), in grey under the expert tint
(a colourful photo drowned the 45% tint), and patches dropped or merged before the chosen
site are faded and said so (they were left unmarked)."""

import base64
import io

import numpy as np
import pytest
import torch

from routeviz.figures.images import GONE_BEFORE
from tests.app_support import open_page, plotly_specs


def photo_bytes(width=640, height=480) -> bytes:
    """A colourful 'photo': saturated hue bands and noise."""
    from PIL import Image

    rng = np.random.default_rng(7)
    hue = np.linspace(0, 255, width, dtype=np.float64)[None, :].repeat(height, 0)
    pixels = np.stack([hue, 255 - hue, (hue * 3) % 256], -1) + rng.normal(0, 20, (height, width, 3))
    buf = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype("uint8")).save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo_page(tmp_path_factory):
    torch.set_num_threads(1)
    at = open_page(tmp_path_factory.mktemp("photo") / "store", "inspect")
    at.selectbox(key="inspect_model").set_value("glyph-vit")
    at.file_uploader(key="inspect_upload").set_value(("photo.jpg", photo_bytes(), "image/jpeg"))
    at.button(key="inspect_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def overlay(at):
    return next(f for f in plotly_specs(at) if f["data"][0]["type"] == "image")


def test_a_640x480_photo_is_drawn_4_to_3_in_grey(photo_page):
    from PIL import Image

    fig = overlay(photo_page)
    width, height = fig["layout"]["width"] - 130, fig["layout"]["height"] - 50
    assert width / height == pytest.approx(640 / 480, rel=0.02)
    uri = fig["data"][0]["source"]
    drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))
    assert drawn.shape[1] / drawn.shape[0] == pytest.approx(640 / 480, rel=0.02)
    spread = drawn.max(-1).astype(int) - drawn.min(-1).astype(int)  # 0 on grey
    assert spread.max() <= 2  # grey under the tint


def test_patches_gone_before_the_site_are_faded_and_said(photo_page):
    at = photo_page
    sites = at.select_slider(key="inspect_site").options
    for site in sites[::-1]:  # the deepest site first: the most patches dropped before it
        at.select_slider(key="inspect_site").set_value(site).run()
        fig = overlay(at)
        patches = np.array(fig["data"][1]["z"], dtype=float)
        if np.isnan(patches).any():
            break
    else:
        pytest.fail("glyph-vit dropped or merged no patch before any expert site")
    faded = next(t for t in fig["data"] if t.get("name") == GONE_BEFORE)
    marked = np.array(faded["z"], dtype=float)
    assert np.array_equal(np.isnan(patches), marked == 1)
    assert any("Faded patches made no decision at this site" in c.value for c in at.caption)


def test_the_exit_depth_says_what_its_score_is(photo_page):
    metric = next(m for m in photo_page.metric if m.label == "Exit depth")
    assert metric.value.startswith("layer ") and "(ran " in metric.value
    assert metric.proto.help.startswith("exit score ")


def test_a_patch_answers_a_click(photo_page):
    """Each patch carries its number on a selectable layer, so a click selects it."""
    click = next(t for t in overlay(photo_page)["data"] if t.get("name") == "click")
    assert click["type"] == "scatter" and list(click["customdata"]) == list(range(36))
    chart = next(c for c in photo_page.get("plotly_chart") if "inspect_overlay" in c.proto.id)
    assert list(chart.proto.selection_mode)  # on_select: the app hears the click
