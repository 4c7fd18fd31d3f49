"""Timeline page: a series' metrics over steps, expert identity, a figure at one step, two
steps side by side; and what it says when the store has no series."""

from pathlib import Path

import pytest

from tests.app_support import _decode, open_page, plotly_specs
from tests.series_store import three_step_store


@pytest.fixture(scope="module")
def series_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("timeline") / "store"
    three_step_store(path)
    return path


def pooled_line(spec) -> list:
    return next(t["y"] for t in spec["data"] if t.get("name") == "all sites (pooled)")


def title(spec) -> str:
    """A figure's title as one line (long titles are broken with <br> to fit half a page)."""
    return spec["layout"]["title"]["text"].replace("<br>", " ")


def test_metrics_as_lines_over_steps(series_store):
    at = open_page(series_store, "timeline")
    assert at.selectbox(key="timeline_series").value == "s"
    specs = {title(s): s for s in plotly_specs(at)}
    assert {"Router saturation, top-1 agreement with the last step",
            "Router saturation, share of top-k kept at the last step",
            "Load CV (std / mean of expert counts)",
            "MaxVio ((max − mean) / mean of expert counts)", "Focus", "Cover",
            "Routing entropy (nats; router logits where recorded, else top-k weights)",
            } <= set(specs)
    top1 = specs["Router saturation, top-1 agreement with the last step"]
    overlap = specs["Router saturation, share of top-k kept at the last step"]
    assert pooled_trace(top1)["x"] == [10, 20, 30]
    assert pooled_line(top1) == [0.0, 0.0, 1.0]
    assert pooled_line(overlap) == [0.5, 0.5, 1.0]
    assert {t["name"] for t in top1["data"]} == {"all sites (pooled)", "g0", "g1"}


def pooled_trace(spec) -> dict:
    return next(t for t in spec["data"] if t.get("name") == "all sites (pooled)")


def test_focus_and_cover_lines_draw_their_chance_band(series_store):
    """The pooled line's permutation band (tags shuffled across units, 20 per step) is a
    grey area between two lines, equal to metrics.series.timeline(..., chance=20)."""
    from routeviz.metrics.series import timeline
    from routeviz.store import open_store

    at = open_page(series_store, "timeline")
    frame = timeline(open_store(series_store), "s", chance=20)
    pooled = frame[frame.site == "*"].sort_values("step")
    specs = {title(s): s for s in plotly_specs(at)}
    for metric, name in (("focus", "Focus"), ("cover", "Cover")):
        traces = specs[name]["data"]
        upper = next(i for i, t in enumerate(traces) if t.get("name") == "chance band (pooled)")
        lower = traces[upper - 1]  # filled up to from the trace before it
        lo = pooled[pooled.metric == f"{metric}_lo"].value
        hi = pooled[pooled.metric == f"{metric}_hi"].value
        assert traces[upper]["fill"] == "tonexty" and traces[upper]["x"] == [10, 20, 30]
        assert lower["y"] == pytest.approx(lo.tolist())
        assert traces[upper]["y"] == pytest.approx(hi.tolist())
        assert (lo.to_numpy() <= hi.to_numpy()).all() and (lo > 0).all()
    assert any("grey area on Focus and Cover is its chance band" in c.value for c in at.caption)
    saturation = specs["Router saturation, top-1 agreement with the last step"]
    assert not any(t.get("name") == "chance band (pooled)" for t in saturation["data"])


def test_long_titles_are_broken_to_fit_half_a_page(series_store):
    """The entropy title (73 characters) ran past the right edge of its half-page chart;
    it is broken into lines of at most 40 characters, with room above the plot for them."""
    at = open_page(series_store, "timeline")
    entropy = next(s for s in plotly_specs(at) if title(s).startswith("Routing entropy"))
    lines = entropy["layout"]["title"]["text"].split("<br>")
    assert len(lines) == 2 and all(len(line) <= 40 for line in lines)
    assert entropy["layout"]["margin"]["t"] >= 20 + 22 * len(lines)


def test_expert_identity_shows_who_became_whom(series_store):
    at = open_page(series_store, "timeline")
    heatmap = next(s for s in plotly_specs(at) if title(s).startswith("Expert identity at g0"))
    assert heatmap["data"][0]["x"] == ["10→20", "20→30"]
    assert [row[1] for row in heatmap["data"][0]["text"]] == ["→ e1", "→ e2", "→ e3", "→ e0"]
    moved = next(d.value for d in at.dataframe if "became" in d.value)
    assert "expert 0 became expert 1" in moved["became"].tolist()
    assert set(moved["from_step"]) == {20}


def test_step_slider_draws_the_figure_of_that_step(series_store):
    at = open_page(series_store, "timeline")
    assert at.select_slider(key="timeline_step").value == 30
    at.selectbox(key="timeline_figure").set_value("Token heatmap (example 0)").run()
    assert not at.exception
    last = _step_figure(at)
    at.select_slider(key="timeline_step").set_value(10).run()
    first = _step_figure(at)
    # top-1 expert of token t: (t + 2) % 4 at step 30, t % 4 at step 10
    assert first != last
    assert sorted(set(v for row in first for v in row if v == v)) == [0, 1, 2, 3]


def _step_figure(at):
    import json

    from tests.app_support import _decode

    chart = next(c for c in at.get("plotly_chart") if "timeline_step_figure" in c.proto.id)
    return _decode(json.loads(chart.proto.spec))["data"][0]["z"]


def test_two_steps_side_by_side_with_diff(series_store):
    at = open_page(series_store, "timeline")
    at.select_slider(key="timeline_step_a").set_value(10).run()
    at.select_slider(key="timeline_step_b").set_value(30).run()
    assert not at.exception and not at.error
    diff = next(s for s in plotly_specs(at) if title(s) == "Where steps 10 and 30 route alike")
    top1, jaccard = diff["data"]
    assert top1["y"] == [0.0, 0.0]  # t vs t + 2: never the same top-1
    assert [round(v, 6) for v in jaccard["y"]] == [round(1 / 3, 6)] * 2  # {t,t+1} vs {t+1,t+2}
    assert any("12 units compared" in c.value for c in at.caption)


def test_the_step_diff_names_the_exit_site(tmp_path):
    """metrics.diff compares exits under site "*" (whatever head took them): the bars name
    it "exit (any layer)", never a bare "*"."""
    from tests.metrics_store import expert_routes, write_run

    path = tmp_path / "store"
    for step, shift in ((1, 0), (2, 1)):
        chosen = {(0, t): [(t + shift) % 4] for t in range(6)}
        exits = [(0, t, t % 2, f"exits.{t % 2}", "exit", t % 2, 0, 0.9) for t in range(6)]
        write_run(path, f"x-step{step:06d}", expert_routes("g0", 0, chosen) + exits,
                  tokens={0: [f"w{t}" for t in range(6)]},
                  config={"series": "x", "step": step, "n_experts": 4})
    at = open_page(path, "timeline")
    assert not at.exception and not at.error
    diff = next(s for s in plotly_specs(at) if title(s) == "Where steps 1 and 2 route alike")
    labels = diff["data"][0]["x"]
    assert labels == ["exit (any layer)", "g0"] or labels == ["g0", "exit (any layer)"]
    assert "*" not in labels


def test_store_without_series_says_how_to_make_one(tmp_path):
    at = open_page(tmp_path / "empty", "timeline")
    assert not at.exception
    assert any("routeviz trace --model out/checkpoint-*" in i.value for i in at.info)
    assert not at.get("plotly_chart")


SHIPPED = Path(__file__).resolve().parents[1] / "sample_models" / "data" / "series"
SHIPPED_STORES = sorted(p for p in SHIPPED.glob("*") if (p / "routeviz.json").is_file())


@pytest.mark.skipif(not SHIPPED_STORES, reason="no series shipped under sample_models/data/series")
def test_an_empty_store_offers_the_shipped_series(tmp_path):
    from routeviz.metrics.series import series_names
    from routeviz.store import open_store

    at = open_page(tmp_path / "empty", "timeline")
    first = SHIPPED_STORES[0]
    button = next(b for b in at.button if first.name in b.label)
    before = sorted(str(p) for p in first.rglob("*"))
    button.click().run()
    assert not at.exception and not at.error
    assert at.session_state["store_path"] == str(first)
    assert at.selectbox(key="timeline_series").value == series_names(open_store(first))[0]
    assert at.get("plotly_chart")
    assert sorted(str(p) for p in first.rglob("*")) == before  # the shipped store is unchanged


def test_the_long_table_is_sent_once_opened(series_store):
    at = open_page(series_store, "timeline")
    assert not any("metric" in d.value.columns for d in at.dataframe)  # closed: not sent
    at.session_state["timeline_long_table"] = True
    at.run()
    table = next(d.value for d in at.dataframe if "metric" in d.value.columns)
    assert "focus" in set(table["metric"]) and "*" not in set(table["site"])


def test_charts_drawn_in_two_parts_equal_the_whole_timeline(tmp_path):
    """The page draws the routing metrics before computing Focus/Cover and entropy; every
    chart, in the same places, is the one the whole `timeline` frame gives (the shipped
    text-moe series, copied)."""
    import json
    import shutil

    from routeviz import open_store
    from routeviz.figures import timeline as timeline_figures
    from routeviz.metrics import series as series_metrics

    shipped = Path(__file__).resolve().parents[1] / "sample_models/data/series/text-moe"
    shutil.copytree(shipped, tmp_path / "store")
    at = open_page(tmp_path / "store", "timeline")
    assert not at.exception
    series = at.selectbox(key="timeline_series").value
    frame = series_metrics.timeline(open_store(tmp_path / "store"), series, chance=20)
    names = [m for m in series_metrics.TIMELINE_METRICS if (frame["metric"] == m).any()]
    assert len(names) == 7
    shown = plotly_specs(at)[:len(names)]  # the left column's charts, then the right's
    for name, spec in zip(names[0::2] + names[1::2], shown):
        expected = _decode(json.loads(timeline_figures.metric_lines(frame, name).to_json()))
        assert _same(spec["data"], expected["data"]), name
    assert "chance band" in " ".join(c.value for c in at.caption)


def _same(a, b) -> bool:
    """Equal, floats to 1e-12 relative: entropy is a DuckDB sum of doubles, which its
    threads may add in another order in another query (last-bit differences, seen once)."""
    import math

    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15) or a == b or (
            math.isnan(a) and math.isnan(b))
    return a == b
