"""Specialization page: Focus/Cover per site and pooled, the A_ij heatmap, filters."""

import pytest

from routeviz import metrics, open_store
from tests import app_support
from tests.app_support import open_page, plotly_specs

app_store = app_support.app_store  # shared fixture


def test_focus_cover_matches_metrics_and_matrix_is_drawn(app_store):
    at = open_page(app_store, "specialization", run="words")
    assert not at.error
    expected = metrics.focus_cover(open_store(app_store), "words")
    pooled = expected.scores[(expected.scores.site == "*") & (expected.scores.tag == "*")].iloc[0]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Focus (pooled)"] == f"{pooled.focus:.3f}"
    assert shown["Cover (pooled)"] == f"{pooled.cover:.3f}"
    bars, matrix = plotly_specs(at)
    assert [t["name"] for t in bars["data"]] == ["Focus", "Cover"]
    assert bars["data"][0]["x"][0].startswith("pooled")
    assert len(bars["data"][0]["x"]) == 3  # pooled + two expert sites
    assert matrix["data"][0]["type"] == "heatmap"
    # rows: the tag values of both families (kind: code/prose, token_type: punct/word)
    assert sorted(matrix["data"][0]["y"]) == ["kind=code", "kind=prose", "token_type=punct",
                                               "token_type=word"]
    assert len(matrix["data"][0]["x"]) == 8  # 2 sites × 4 experts
    assert "Focus" in at.expander[0].label or "Focus" in at.expander[0].children[0].value


@pytest.mark.parametrize("kind", ["keep", "exit"])
def test_filters_change_what_is_scored(app_store, kind):
    at = open_page(app_store, "specialization", run="words")
    at.multiselect(key="spec_tags").set_value(["kind"])
    at.selectbox(key="spec_kind").set_value(kind)
    at.radio(key="spec_unit").set_value("example")
    at.run()
    assert not at.error and not at.exception
    expected = metrics.focus_cover(open_store(app_store), "words", tags=["kind"], kind=kind,
                                   unit="example")
    pooled = expected.scores[expected.scores.site == "*"].iloc[0]
    assert {m.label: m.value for m in at.metric}["Focus (pooled)"] == f"{pooled.focus:.3f}"
    matrix = plotly_specs(at)[1]["data"][0]
    assert sorted(matrix["y"]) == ["kind=code", "kind=prose"]


def test_top1_toggle(app_store):
    at = open_page(app_store, "specialization", run="words")
    at.toggle(key="spec_top1").set_value(True).run()
    expected = metrics.focus_cover(open_store(app_store), "words", top1=True)
    pooled = expected.scores[(expected.scores.site == "*") & (expected.scores.tag == "*")].iloc[0]
    assert {m.label: m.value for m in at.metric}["Cover (pooled)"] == f"{pooled.cover:.3f}"
    assert "top-1" in {m.label: m.value for m in at.metric}["Unit"]


def test_definition_is_one_click_away(app_store):
    at = open_page(app_store, "specialization", run="words")
    text = at.expander[0].markdown[0].value
    assert "A_{ij}" in text and "Focus" in text and "Cover" in text


def test_pooled_scores_show_their_permutation_band(app_store):
    at = open_page(app_store, "specialization", run="words")
    band = metrics.focus_cover_baseline(open_store(app_store), "words", permutations=30,
                                        resamples=30)
    pooled = band.scores[(band.scores.site == "*") & (band.scores.tag == "*")].iloc[0]
    caption = " ".join(c.value for c in at.caption)
    assert f"Focus {pooled.focus_lo:.3f}–{pooled.focus_hi:.3f}" in caption
    assert f"Cover {pooled.cover_lo:.3f}–{pooled.cover_hi:.3f}" in caption
    deltas = {m.label: m.delta for m in at.metric}
    assert deltas["Focus (pooled)"] == f"{pooled.focus - pooled.focus_mean:+.3f} vs chance"
    bars, _ = plotly_specs(at)
    assert "chance band" in bars["data"][0]["hovertemplate"]
    assert bars["data"][0]["customdata"][0] == pytest.approx([pooled.focus_lo, pooled.focus_hi])
