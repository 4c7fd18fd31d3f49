"""Links to the dashboard: the store is in the URL with the run and page, so a reload (or a
link sent to someone on the same machine) reopens the same store; parts of a link that can
not be followed are said in one line, not silently replaced."""

from streamlit.testing.v1 import AppTest

from tests import app_support
from tests.app_support import APP, open_page

app_store = app_support.app_store  # shared fixture


def follow(params: dict, timeout: float = 60) -> AppTest:
    """A fresh session opened from a link with these query parameters (nothing else set)."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.query_params.update(params)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_store_is_in_the_url_and_a_reload_reopens_it(app_store):
    at = open_page(app_store, "load_depth", run="words")
    assert at.query_params["store"] == str(app_store)
    link = {k: at.query_params[k] for k in ("store", "run", "page")}
    assert link["page"] == "load_depth" and link["run"] == "words"

    again = follow(link)  # a reload: a new session with only the URL
    assert again.session_state["store_path"] == str(app_store)
    assert again.session_state["run"] == "words"
    assert again.title[0].value == "Load & depth"
    assert not again.warning and not again.info  # no "no runs yet": the store was found
    assert {m.label for m in again.metric} >= {"Expert sites", "Compute saved"}


def test_a_link_to_a_deleted_run_names_it_in_one_warning(app_store):
    at = follow({"store": str(app_store), "run": "deleted-run", "page": "load_depth"})
    shown = at.session_state["run"]
    assert shown != "deleted-run"
    assert [w.value for w in at.warning] == [
        f"The link's run 'deleted-run' is not in this store (deleted?); showing {shown!r} "
        "instead."]
    at.run()  # said once, not on every rerun
    assert not at.warning


def test_a_link_never_creates_a_store(app_store, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTEVIZ_STORE", str(tmp_path / "default"))  # opened instead
    plain = tmp_path / "not-a-store"
    plain.mkdir()
    at = follow({"store": str(plain), "page": "load_depth"})
    assert [w.value for w in at.warning] == [
        f"The link's store {str(plain)!r} is not a routeviz store here; it was not opened."]
    assert at.session_state["store_path"] == str(tmp_path / "default")
    assert list(plain.iterdir()) == []  # nothing written into it
