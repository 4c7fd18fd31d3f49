"""Inspect on a first visit: every model described and offering an example that runs with one
click; the legend of every state; a token's other occurrences; the panels Inspect hosts."""

import json

from tests import app_support
from tests.app_support import htmls, open_page, plotly_specs
from tests.test_app_inspect import chips

app_store = app_support.app_store  # shared fixtures
toy_models = app_support.toy_models




def test_first_visit_describes_the_model_and_a_try_button_runs_its_example(tmp_path, toy_models):
    at = open_page(tmp_path / "store", "inspect")
    assert any("No runs yet" in i.value for i in at.info)
    assert at.selectbox(key="inspect_model").value == "text-moe"  # the first installed model
    described = " ".join(m.value for m in at.markdown)
    assert "text input" in described and "routing: expert, keep, exit" in described
    assert "data: stdlib" in described and "Python stdlib" in described
    labels = [b.label for b in at.button]
    assert "Try: a Python function" in labels and "Try: a sentence of prose" in labels
    at.selectbox(key="inspect_model").set_value("toy-text").run()
    at.button(key="inspect_try_0").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert chips(at) == ["the", "cat", "sat", "on", "the", "mat", "."]
    # a dataset example keeps its tags
    at.selectbox(key="inspect_model").set_value("toy-long").run()
    at.button(key="inspect_try_0").click().run()
    assert chips(at)[:3] == ["for", "i", "in"]  # toy-words item 2
    at.selectbox(key="inspect_tag_row").set_value("kind").run()
    tag_row = next(h for h in htmls(at) if "rv-tags" in h)
    assert "for · code" in tag_row


def test_glyph_example_draws_patches_at_aspect_with_hover(tmp_path):
    at = open_page(tmp_path / "store", "inspect")
    at.selectbox(key="inspect_model").set_value("glyph-vit").run()
    assert any(b.label == "Try: glyph 0 (a letter B)" for b in at.button)
    at.button(key="inspect_try_0").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    overlay = plotly_specs(at)[0]
    image, patches = overlay["data"][:2]
    assert image["type"] == "image" and patches["type"] == "heatmap"
    hover = json.dumps(overlay["data"][-1]["text"])  # the click layer's, on top
    assert "text" not in patches  # sent once
    assert "#0 " in hover and "region=background" in hover and "letter=B" in hover
    layout = overlay["layout"]
    assert layout["width"] - 130 == layout["height"] - 50  # a square glyph drawn square
    assert any("States:" in h for h in htmls(at))


def test_legend_token_occurrences_and_hosted_panels(app_store):
    at = open_page(app_store, "inspect", run="words")
    at.number_input(key="inspect_example").set_value(1).run()  # "the cat sat on the mat ."
    legend = next(h for h in htmls(at) if "rv-states" in h)
    for state in ("kept", "dropped (pruned) here", "merged", "exited", "skipped"):
        assert state in legend
    at.number_input(key="inspect_token").set_value(4).run()  # the second "the"
    assert at.session_state["inspect_selected_token"]["text"] == "the"
    table = next(df.value for df in at.dataframe if "source" in df.value.columns)
    assert list(zip(table.example, table.token)) == [(1, 0), (1, 4), (5, 2)]
    titles = [e.label for e in at.expander]
    assert "What if: run it again with routing changed" in titles
    assert "Why: what drives a token's router (click a heatmap cell or a patch, then Explain)" \
        in titles
    hover = json.dumps(plotly_specs(at)[0]["data"][-1]["text"])
    assert "exit at layer" in hover and "(ran " in hover  # exit depth numbered one way
    assert not at.exception
