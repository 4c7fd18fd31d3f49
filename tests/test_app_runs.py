"""Runs page: list runs, trace a bundled dataset with a progress bar, delete a run."""

from routeviz import open_store
from routeviz.runs.record import record
from tests import app_support
from tests.app_support import open_page
from tests.app_toys import load, toy_dataset

toy_models = app_support.toy_models  # shared fixture


def test_trace_dataset_then_delete(tmp_path, toy_models):
    store = tmp_path / "store"
    record(load("toy-text"), toy_dataset(2), store, "first")
    at = open_page(store, "runs")
    table = at.dataframe[0].value
    assert table["run"].tolist() == ["first"]
    at.selectbox(key="runs_model").set_value("toy-text").run()
    at.selectbox(key="runs_dataset").set_value("toy-words")
    at.number_input(key="runs_limit").set_value(6)
    at.text_input(key="runs_name").set_value("traced")
    at.button(key="runs_trace").click().run()
    assert not at.error and not at.exception
    assert sorted(open_store(store).run_names()) == ["first", "traced"]
    assert at.session_state["run"] == "traced"  # the new run is selected
    assert at.text_input(key="runs_name").value == ""  # the next trace gets a fresh name
    assert sorted(at.dataframe[0].value["run"]) == ["first", "traced"]
    assert int(at.dataframe[0].value.set_index("run").loc["traced", "n_examples"]) == 6

    at.selectbox(key="runs_delete").set_value("first")
    at.checkbox(key="runs_delete_sure").check()
    at.run()
    at.button(key="runs_delete_go").click().run()
    assert not at.exception
    assert open_store(store).run_names() == ["traced"]
    assert at.dataframe[0].value["run"].tolist() == ["traced"]


def test_empty_store_is_created_and_explained(tmp_path, toy_models):
    store = tmp_path / "fresh"
    at = open_page(store, "runs")
    assert (store / "routeviz.json").exists()
    assert any("No runs yet" in i.value for i in at.info)


def test_a_path_that_cannot_be_a_store_is_an_error(tmp_path, toy_models):
    bad = tmp_path / "file.txt"
    bad.write_text("x")
    at = open_page(bad, "runs")
    assert "is a file" in at.error[0].value


def test_second_trace_gets_a_fresh_name_and_a_taken_name_needs_overwrite(tmp_path, toy_models):
    store = tmp_path / "store"
    record(load("toy-text"), toy_dataset(2), store, "first")
    at = open_page(store, "runs")
    at.selectbox(key="runs_model").set_value("toy-text").run()
    at.selectbox(key="runs_dataset").set_value("toy-words")
    at.number_input(key="runs_limit").set_value(3)
    assert at.text_input(key="runs_name").placeholder == "toy-text-toy-words"
    at.button(key="runs_trace").click().run()  # empty name: the default
    assert not at.error and not at.exception
    assert at.text_input(key="runs_name").value == ""
    assert at.text_input(key="runs_name").placeholder == "toy-text-toy-words-2"
    at.button(key="runs_trace").click().run()  # a second trace does not collide
    assert not at.error and not at.exception
    assert sorted(open_store(store).run_names()) == ["first", "toy-text-toy-words",
                                                     "toy-text-toy-words-2"]

    at.text_input(key="runs_name").set_value("first")
    at.button(key="runs_trace").click().run()
    assert "already exists" in at.error[0].value and "Replace" in at.error[0].value
    assert len(at.get("progress")) == 0  # no progress bar left beside the error
    assert at.text_input(key="runs_name").value == "first"  # kept, to fix or overwrite
    assert int(open_store(store).runs().set_index("run").loc["first", "n_examples"]) == 2

    at.checkbox(key="runs_overwrite").check()
    at.button(key="runs_trace").click().run()
    assert not at.error and not at.exception
    assert at.session_state["run"] == "first"
    assert int(open_store(store).runs().set_index("run").loc["first", "n_examples"]) == 3
