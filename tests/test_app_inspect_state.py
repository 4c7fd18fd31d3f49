"""Inspect's state: every example of a large run reachable, the view restored from a URL's
query parameters and written back to it, model and text kept across a page switch."""

import pytest
from streamlit.testing.v1 import AppTest

from routeviz.runs.inputs import Item
from routeviz.runs.record import record
from tests import app_support
from tests.app_support import APP, open_page
from tests.app_toys import load
from tests.test_app_inspect import chips

app_store = app_support.app_store  # shared fixtures
toy_models = app_support.toy_models


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    """A run of 1,024 one-word-pair examples."""
    path = tmp_path_factory.mktemp("big") / "store"
    items = [Item(text=f"item{i} end", source=f"ex-{i}") for i in range(1024)]
    record(load("toy-text"), items, path, "many", batch_size=256, outputs=False)
    return path




def test_a_1024_example_run_counts_all_and_the_last_can_be_picked(big_store):
    at = open_page(big_store, "inspect", run="many")
    assert any("1,024 example(s), ids 0–1,023" in m.value for m in at.markdown)
    picker = at.number_input(key="inspect_example")
    assert picker.max == 1023
    picker.set_value(1023).run()
    assert not at.exception
    assert chips(at) == ["item1023", "end"]
    assert any("ex-1023" in c.value for c in at.caption)


def test_view_restored_from_the_url_and_written_back(app_store):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["store_path"] = str(app_store)
    at.query_params.update({"run": "words", "page": "inspect", "example": "5",
                            "site": "moe.1.router", "token": "2", "q": "the",
                            "tag": "kind=prose"})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="run").value == "words"
    assert at.number_input(key="inspect_example").value == 5
    assert chips(at)[:3] == ["it", "was", "the"]  # toy-5: "it was the best of times ."
    assert at.select_slider(key="inspect_site").value == "moe.1.router"
    assert at.number_input(key="inspect_token").value == 2
    assert at.text_input(key="inspect_search").value == "the"
    assert at.selectbox(key="inspect_tag").value == "kind=prose"
    assert at.session_state["inspect_selected_token"] == {
        "run": "words", "example": 5, "token": 2, "text": "the", "site": "moe.1.router"}
    # tokens containing "the" in prose examples: "the" of toy-1 and toy-5, "they" of toy-7
    found = [df.value for df in at.dataframe if "source" in df.value.columns]
    assert sorted(set(found[0].source)) == ["toy-1", "toy-5", "toy-7"]
    at.number_input(key="inspect_example").set_value(3).run()
    assert at.query_params["example"] == ["3"] or at.query_params["example"] == "3"
    assert at.query_params["run"] in ("words", ["words"])
    assert at.query_params["q"] in ("the", ["the"])


def test_a_link_to_another_page_opens_it(app_store):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["store_path"] = str(app_store)
    at.query_params.update({"run": "words-b", "page": "experts"})
    at.run()
    assert not at.exception
    assert at.title[0].value != "Inspect"
    assert at.selectbox(key="run").value == "words-b"


def test_model_text_and_example_kept_across_pages(app_store, toy_models):
    at = open_page(app_store, "inspect", run="words")
    at.selectbox(key="inspect_model").set_value("toy-long")
    at.text_area(key="inspect_text").set_value("remember me")
    at.number_input(key="inspect_example").set_value(6).run()
    at.switch_page("app_pages/experts.py").run()
    assert not at.exception
    at.switch_page("app_pages/inspect.py").run()
    assert at.selectbox(key="inspect_model").value == "toy-long"
    assert at.text_area(key="inspect_text").value == "remember me"
    assert at.number_input(key="inspect_example").value == 6
