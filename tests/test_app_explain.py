"""The click-to-explain panel (app_pages/explain_panel.py) in an AppTest, through a tiny
page that calls `render_explain` on a recorded example: on text-moe it draws one chip per
token with the attributions routeviz.explain computes, escaped, and states the delta; it
follows the token and site selected on Inspect; on glyph-vit it draws a patch overlay; a
token the site did not route is a one-line error."""

import re

import pytest
import torch

import routeviz
from routeviz.interventions.explain import explain
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model
from routeviz.runs.record import record
from tests.app_support import open_panel

TEXT = "def add(x, y):\n    return x + y  # <b>sum</b>"
SITE = "blocks.0.mlp.router"



@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from sample_models.glyphs import glyph_batch, glyph_item

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("explain") / "store"
    record(load_model("text-moe"), [Item(text=TEXT, source="typed text")], path, "code")
    record(load_model("glyph-vit"), [glyph_item(glyph_batch(1, seed=3)[0], 0)], path, "glyph")
    return path


def panel(store, run, selected=None):
    state = {} if selected is None else {"inspect_selected_token": selected}
    return open_panel(store, "explain_panel", "render_explain", run, 180, state)


def chips(at):
    bodies = [el.proto.body for el in at.get("html") if "rv-explain" in el.proto.body]
    assert len(bodies) == 1
    return re.findall(r'title="#(\d+): ([+-][0-9.]+)"[^>]*>(.*?)</span>', bodies[0]), bodies[0]


def test_text_chips_carry_the_attributions(store):
    at = panel(store, "code")
    at.selectbox(key="explain_site").set_value(SITE)
    at.selectbox(key="explain_token").set_value(4).run()
    assert not [c for c in at.get("html") if "rv-explain" in c.proto.body]  # not until asked
    at.button(key="explain_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    found, body = chips(at)
    expected = explain(load_model("text-moe"), Item(text=TEXT), SITE, 4).to_json()
    assert len(found) == len(expected["attributions"])  # one chip per input token
    for (index, value, _), want in zip(found, expected["attributions"]):
        assert int(index) == want["index"] and float(value) == pytest.approx(
            want["attribution"], abs=1e-4)
    texts = [text for _, _, text in found]
    assert "<b>" not in body and "&lt;" in texts and not any("<" in t for t in texts)
    assert "outline:2px" in re.findall(r'<span[^>]*title="#4:[^>]*>', body)[0]  # the target
    caption = next(c.value for c in at.caption if "convergence delta" in c.value)
    assert f"{expected['convergence_delta']:.4g}" in caption


def test_follows_the_selected_token_and_site(store):
    at = panel(store, "code", selected={"run": "code", "example": 0, "token": 2,
                                        "text": "(", "site": "blocks.2.mlp.router"})
    assert at.selectbox(key="explain_token").value == 2
    assert at.selectbox(key="explain_site").value == "blocks.2.mlp.router"


def test_a_token_the_site_skipped_is_one_line(store):
    routes = routeviz.open_store(store).example_routes("code", 0)
    routed = set(routes[routes.site == "blocks.1.mlp.router"].token)
    skipped = min(set(range(len(TEXT))) - routed)  # mixture-of-depths left it out
    at = panel(store, "code")
    at.selectbox(key="explain_site").set_value("blocks.1.mlp.router")
    at.selectbox(key="explain_token").set_value(skipped).run()
    at.button(key="explain_go").click().run()
    assert not at.exception
    assert len(at.error) == 1 and f"token {skipped} is not routed" in at.error[0].value


def test_image_overlay(store):
    at = panel(store, "glyph")
    at.selectbox(key="explain_site").set_value("blocks.1.mlp.router")
    at.selectbox(key="explain_token").set_value(7).run()
    at.button(key="explain_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("image")) == 1
    assert any("convergence delta" in c.value for c in at.caption)
    assert any("Patch #7" in m.value for m in at.markdown)
