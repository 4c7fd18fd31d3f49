"""The Why panel (app_pages/explain_panel.py) in an AppTest, through a tiny page that calls
`render_explain` on a recorded example: on text-moe it draws one chip per token with the
attributions routeviz.explain computes, escaped, with a colour legend and a colour scale
the target does not take, and states the delta (a warning when large); it follows the
token and site selected on Inspect; it offers only the tokens the site routed; on
glyph-vit it draws a patch overlay."""

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


def test_the_picker_offers_only_tokens_the_site_routed(store):
    """Mixture-of-depths skips tokens at blocks.1: the picker listed them and Explain then
    failed; now it lists the routed ones, and a skipped token selected on the page is named."""
    routes = routeviz.open_store(store).example_routes("code", 0)
    at_site = routes[(routes.site == "blocks.1.mlp.router") & (routes.kind == "expert")]
    routed = sorted(set(at_site.token))
    n_tokens = len(routeviz.open_store(store).example_tokens("code", 0))
    skipped = min(set(range(n_tokens)) - set(routed))
    at = panel(store, "code")
    at.selectbox(key="explain_site").set_value("blocks.1.mlp.router").run()
    assert at.selectbox(key="explain_token").options == [
        o for o in at.selectbox(key="explain_token").options if int(o.split()[0][1:]) in routed]
    assert len(at.selectbox(key="explain_token").options) == len(routed) < n_tokens
    at = panel(store, "code", selected={"run": "code", "example": 0, "token": skipped,
                                        "text": "", "site": "blocks.1.mlp.router"})
    assert any(f"Token #{skipped} " in i.value and "was not routed" in i.value for i in at.info)
    at.button(key="explain_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]


def _alphas(body):
    """(index, alpha, outlined) per chip."""
    return [(int(i), float(a), "outline" in style) for i, a, style in re.findall(
        r'title="#(\d+): [^"]*" style="background:rgba\([0-9,]+,([0-9.]+)\);([^"]*)"', body)]


def test_colour_scale_leaves_out_the_target_and_a_legend_says_it(store):
    at = panel(store, "code")
    at.selectbox(key="explain_site").set_value(SITE)
    at.selectbox(key="explain_token").set_value(8).run()
    at.button(key="explain_go").click().run()
    found, body = chips(at)
    values = {int(i): abs(float(v)) for i, v, _ in found}
    assert values[8] > 2 * max(v for i, v in values.items() if i != 8)  # the target dominates
    alphas = _alphas(body)
    others = [a for i, a, _ in alphas if i != 8]
    assert max(others) == 1.0  # the strongest other token gets full colour, not a pale tint
    assert [a for i, a, outlined in alphas if i == 8 and outlined] == [1.0]  # clipped
    legend = next(el.proto.body for el in at.get("html") if "rv-attr-legend" in el.proto.body)
    assert "raises the router logit" in legend and "lowers it" in legend
    assert "rgba(214,39,40,1)" in legend and "rgba(31,119,180,1)" in legend
    assert f"±{max(v for i, v in values.items() if i != 8):.3g}" in legend
    assert not at.warning  # delta ~0 at the first layer


def test_a_large_convergence_delta_is_a_warning(store):
    at = panel(store, "code")
    at.selectbox(key="explain_site").set_value("blocks.2.mlp.router")
    at.selectbox(key="explain_token").set_value(12).run()
    at.button(key="explain_go").click().run()
    expected = explain(load_model("text-moe"), Item(text=TEXT), "blocks.2.mlp.router", 12).to_json()
    change = expected["target"]["logit"] - expected["target"]["baseline_logit"]
    assert abs(expected["convergence_delta"]) > 0.2 * abs(change)  # routing moved on the path
    assert len(at.warning) == 1 and "Convergence delta" in at.warning[0].value
    assert f"{expected['convergence_delta']:+.3g}" in at.warning[0].value


def test_image_overlay(store):
    at = panel(store, "glyph")
    at.selectbox(key="explain_site").set_value("blocks.1.mlp.router")
    at.selectbox(key="explain_token").set_value(7).run()
    at.button(key="explain_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.get("image")) == 1
    assert any("convergence delta" in c.value for c in at.caption)
    assert any("Patch #7" in m.value for m in at.markdown)
