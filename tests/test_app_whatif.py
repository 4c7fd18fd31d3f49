"""The What-if panel (app_pages/whatif.py) in an AppTest: on a text-moe run, ablating an
expert and rerunning records a plain and a what-if run of the same text, the what-if run
never chooses the ablated expert at its site, and the panel shows the changed tokens and
the output change; an example whose text was not kept says so in one line."""

import pytest

import routeviz
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model
from routeviz.runs.record import record
from tests.app_support import open_panel

TEXT = "def add(x, y):\n    return x + y  # add two numbers"
SITE = "blocks.0.mlp.router"



@pytest.fixture(scope="module")
def text_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("whatif") / "store"
    record(load_model("text-moe"), [Item(text=TEXT, source="typed text")], path, "code")
    return path


def panel(store, run="code"):
    return open_panel(store, "whatif", "render_whatif", run, 120)


def test_ablate_and_rerun_shows_both_routings(text_store):
    store = routeviz.open_store(text_store)
    routes = store.example_routes("code", 0)
    chosen = routes[(routes.site == SITE) & (routes.kind == "expert")].choice
    ablated = int(chosen.value_counts().idxmax())  # an expert the plain run uses
    at = panel(text_store)
    key = "whatif-code-0"
    at.multiselect(key=f"{key}-ablate-sites").set_value([SITE]).run()
    at.multiselect(key=f"{key}-ablate-experts").set_value([ablated]).run()
    at.button(key=f"{key}-go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    plain, edited = at.session_state[key]
    store = routeviz.open_store(text_store)
    assert {plain, edited} <= set(store.run_names())
    config = store.facts(edited).config
    assert config["intervention"]["sites"] == {SITE: {"ablate": [ablated]}}
    assert config["whatif_of"] == {"run": "code", "example": 0}
    new_routes = store.example_routes(edited, 0)
    assert ablated not in set(new_routes[(new_routes.site == SITE)].choice)
    plain_routes = store.example_routes(plain, 0)
    assert ablated in set(plain_routes[(plain_routes.site == SITE)].choice)
    assert store.example_tokens(edited, 0) == store.example_tokens("code", 0)
    # the panel: both outputs, the output change, the changed tokens with their text
    assert len(at.code) == 2
    assert any("KL" in m.label for m in at.metric)
    frame = next(d.value for d in at.dataframe if "changed" in d.value.columns)
    assert len(frame) > 0 and frame.changed.all()
    assert set(frame.site) >= {SITE}
    row = frame[frame.site == SITE].iloc[0]
    assert f"e{ablated}" in row.plain.split(", ") and f"e{ablated}" not in row.whatif.split(", ")
    assert row.text == store.example_tokens("code", 0)[int(row.token)]


def test_nothing_chosen_and_lost_text_are_one_line_errors(text_store, tmp_path):
    at = panel(text_store)
    at.button(key="whatif-code-0-go").click().run()
    assert [e.value for e in at.error] and "choose an expert" in at.error[0].value

    old = tmp_path / "old"  # a run recorded without examples.text, as older versions did
    from routeviz.capture.trace import trace

    runner = load_model("text-moe")
    encoded = runner.encode([Item(text=TEXT)])
    with trace(runner.module, old, "old", model_name="text-moe",
               config=runner.trace_config()) as tracer, \
            tracer.batch(tokens=encoded.tokens, meta=encoded.meta):
        runner.module(**encoded.inputs)
    at = panel(old, run="old")
    at.multiselect(key="whatif-old-0-ablate-sites").set_value([SITE]).run()
    at.multiselect(key="whatif-old-0-ablate-experts").set_value([1]).run()
    at.button(key="whatif-old-0-go").click().run()
    assert "did not keep its input texts" in at.error[0].value


def test_image_rerun_from_stored_png_shows_class_probability(tmp_path):
    """glyph-vit: the input is the stored image; forcing an expert everywhere and turning
    merging off changes the routing, and the panel states the predicted class's probability."""
    from routeviz.plugins import load_dataset

    path = tmp_path / "store"
    record(load_model("glyph-vit"), load_dataset("glyphs", limit=1), path, "glyph")
    at = panel(path, run="glyph")
    key = "whatif-glyph-0"
    site = at.selectbox(key=f"{key}-force-site").options[1]
    at.selectbox(key=f"{key}-force-site").set_value(site).run()
    at.selectbox(key=f"{key}-force-expert").set_value(3).run()
    at.multiselect(key=f"{key}-disable").set_value(["merge"]).run()
    at.button(key=f"{key}-go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    plain, edited = at.session_state[key]
    store = routeviz.open_store(path)
    routes = store.example_routes(edited, 0)
    assert set(routes[(routes.site == site) & (routes["rank"] == 0)].choice) == {3}
    assert "merge" not in set(routes.kind) and "merge" in set(store.example_routes(plain, 0).kind)
    assert [m.label for m in at.metric] == ["Probability of the plain prediction"]
    assert store.example_info(edited, 0)["image"] == store.example_info(plain, 0)["image"]


def test_panel_inside_inspect(text_store):
    """Inspect hosts the panel in an expander under the example: the same choices rerun the
    example from there."""
    from tests.app_support import open_page

    at = open_page(text_store, "inspect", run="code")
    assert any(e.label.startswith("What if") for e in at.expander)
    key = "whatif-code-0"
    assert f"{key}-ablate-sites" not in [w.key for w in at.multiselect]  # closed: not drawn
    at.session_state["inspect_panel_whatif"] = True  # opened
    at.run()
    at.multiselect(key=f"{key}-ablate-sites").set_value([SITE]).run()
    at.multiselect(key=f"{key}-ablate-experts").set_value([2]).run()
    at.number_input(key=f"{key}-top-k").set_value(1).run()
    at.button(key=f"{key}-go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    _, edited = at.session_state[key]
    store = routeviz.open_store(text_store)
    routes = store.example_routes(edited, 0)
    expert = routes[routes.kind == "expert"]
    assert (expert.groupby(["site", "token"]).size() == 1).all()
    assert 2 not in set(expert[expert.site == SITE].choice)
    assert store.facts(edited).config["intervention"]["top_k"] == 1
