"""Specialization page: Focus/Cover per site and pooled, the A_ij heatmap, filters."""

import math

import pytest

from routeviz import metrics, open_store
from tests import app_support, ranking_store
from tests.app_support import open_page, plotly_specs

app_store = app_support.app_store  # shared fixtures
skewed_store = ranking_store.skewed_store


def test_focus_cover_matches_metrics_and_matrix_is_drawn(app_store):
    at = open_page(app_store, "specialization", run="words")
    assert not at.error
    expected = metrics.focus_cover(open_store(app_store), "words")
    pooled = expected.scores[(expected.scores.site == "*") & (expected.scores.tag == "*")].iloc[0]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Focus (pooled)"] == f"{pooled.focus:.3f}"
    assert shown["Cover (pooled)"] == f"{pooled.cover:.3f}"
    bars, matrix = plotly_specs(at)
    assert [t["name"] for t in bars["data"]] == ["Focus", "Cover", "chance band (Focus)",
                                                 "chance band (Cover)"]
    assert bars["data"][0]["x"][0] == "all sites (pooled)"  # named, not a bare "*"
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


def test_chance_band_is_drawn_over_each_bar(app_store):
    """Each bar carries a grey strip from the low to the high end of its permutation band,
    at the same position as the bar (offsetgroup), for every site and the pooled one."""
    at = open_page(app_store, "specialization", run="words")
    band = metrics.focus_cover_baseline(open_store(app_store), "words", permutations=30,
                                        resamples=30).scores
    band = band[band.tag == "*"].set_index("site")
    bars, _ = plotly_specs(at)
    traces = {t["name"]: t for t in bars["data"]}
    for score, name in (("focus", "Focus"), ("cover", "Cover")):
        strip, bar = traces[f"chance band ({name})"], traces[name]
        assert strip["type"] == "bar" and strip["offsetgroup"] == bar["offsetgroup"]
        assert strip["x"] == bar["x"]
        sites = ["*"] + [s for s in band.index if s != "*"]
        lo, hi = band.loc[sites, f"{score}_lo"], band.loc[sites, f"{score}_hi"]
        middle = [b + h / 2 for b, h in zip(strip["base"], strip["y"])]
        assert middle == pytest.approx(((lo + hi) / 2).tolist())
        assert all(h >= max(w, 0.006) - 1e-9 for h, w in zip(strip["y"], hi - lo))
        assert "chance band" in strip["hovertemplate"]
        assert strip["customdata"][0] == pytest.approx([lo.iloc[0], hi.iloc[0]])
    assert not any(x == "*" or "(*)" in x for x in bars["data"][0]["x"])


def test_scores_table_and_site_picker_name_the_pooled_site(app_store):
    at = open_page(app_store, "specialization", run="words")
    box = at.selectbox(key="spec_site")
    assert box.options[0] == "all sites (pooled)"
    assert not at.dataframe  # the table is sent only once its expander is opened
    at.session_state["spec_scores_table"] = True
    at.run()
    table = at.dataframe[-1].value
    assert "*" not in set(table["site"]) and "all sites (pooled)" in set(table["site"])


def test_default_families_leave_out_provenance_and_say_so(skewed_store):
    at = open_page(skewed_store, "specialization", run="skewed")
    assert not at.error
    assert at.multiselect(key="spec_tags").value == ["kind", "token_type"]
    note = next(c.value for c in at.caption if c.value.startswith("Left out by default"))
    assert "`source` (provenance)" in note and "`doc` (20 values over 20 examples)" in note
    expected = metrics.focus_cover(open_store(skewed_store), "skewed",
                                   tags=["kind", "token_type"])
    pooled = expected.scores[(expected.scores.site == "*") & (expected.scores.tag == "*")].iloc[0]
    assert {m.label: m.value for m in at.metric}["Cover (pooled)"] == f"{pooled.cover:.3f}"
    default = metrics.focus_cover(open_store(skewed_store), "skewed")  # the same rule
    assert default.tags == ["kind", "token_type"]
    assert default.scores.cover.iloc[0] == pooled.cover
    headline = next(c.value for c in at.caption if c.value.startswith("Focus and Cover pool"))
    assert "pooled: kind, token_type; left out: doc (20 values over 20 examples), " \
        "source (provenance)" in headline
    everything = metrics.focus_cover(open_store(skewed_store), "skewed",
                                     tags=["doc", "kind", "source", "token_type"])
    pooled_all = everything.scores[(everything.scores.site == "*")
                                   & (everything.scores.tag == "*")].iloc[0]
    assert pooled_all.cover < pooled.cover  # 40 id values would pull Cover down
    at.multiselect(key="spec_tags").set_value(["kind", "source"]).run()  # still changeable
    matrix = plotly_specs(at)[1]["data"][0]
    assert any(str(y).startswith("source=") for y in matrix["y"])


def test_matrix_rows_and_columns_follow_the_best_match(app_store):
    at = open_page(app_store, "specialization", run="words")
    at.selectbox(key="spec_site").set_value(at.selectbox(key="spec_site").options[1]).run()
    heat = plotly_specs(at)[1]
    z = [[0.0 if v is None or math.isnan(v) else v for v in row] for row in heat["data"][0]["z"]]
    best_cols = [row.index(max(row)) for row in z]
    assert best_cols == sorted(best_cols)  # a diagonal from the top left
    assert heat["layout"]["yaxis"]["autorange"] == "reversed"  # first row drawn on top


def test_diagonal_order_puts_each_best_match_on_the_diagonal():
    import pandas as pd

    from routeviz.figures.analysis import diagonal_order

    matrix = pd.DataFrame([[0.1, 0.9, 0.0], [0.0, 0.2, 0.5], [0.8, 0.1, 0.0], [0.0, 0.7, 0.1]],
                          index=["a", "b", "c", "d"], columns=["x", "y", "z"])
    ordered = diagonal_order(matrix)
    assert list(ordered.index) == ["a", "d", "c", "b"]  # y's rows (best first), then x, z
    assert list(ordered.columns) == ["y", "x", "z"]
    assert ordered.loc["a", "y"] == 0.9  # cells travel with their labels
