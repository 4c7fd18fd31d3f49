"""Compare page: two runs side by side, per-site agreement, most-changed tokens."""

from routeviz import metrics, open_store
from tests import app_support
from tests.app_support import open_page, plotly_specs

app_store = app_support.app_store  # shared fixture


def test_two_runs_side_by_side(app_store):
    at = open_page(app_store, "compare", run="words")
    at.selectbox(key="compare_b").set_value("words-b").run()
    assert not at.error and not at.exception
    bars, agreement = plotly_specs(at)
    assert [t["name"] for t in bars["data"]] == ["words", "words-b"]
    assert "Focus (pooled)" in bars["data"][0]["x"]
    diff = metrics.diff(open_store(app_store), "words", "words-b")
    shown = {m.label: m.value for m in at.metric}
    assert shown["Units in both"] == f"{diff['n_common_units']:,}"
    assert [round(v, 6) for v in agreement["data"][0]["y"]] == \
        [round(s["top1_agreement"], 6) for s in diff["sites"]]


def test_runs_over_different_inputs_are_flagged(app_store):
    at = open_page(app_store, "compare", run="words")
    at.selectbox(key="compare_b").set_value("pictures").run()
    assert not at.exception
    assert any("different text" in w.value for w in at.warning)
