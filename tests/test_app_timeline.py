"""Timeline page: a series' metrics over steps, expert identity, a figure at one step, two
steps side by side; and what it says when the store has no series."""

from pathlib import Path

import pytest

from tests.app_support import open_page, plotly_specs
from tests.series_store import three_step_store


@pytest.fixture(scope="module")
def series_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("timeline") / "store"
    three_step_store(path)
    return path


def pooled_line(spec) -> list:
    return next(t["y"] for t in spec["data"] if t["name"] == "all sites (pooled)")


def test_metrics_as_lines_over_steps(series_store):
    at = open_page(series_store, "timeline")
    assert at.selectbox(key="timeline_series").value == "s"
    specs = {s["layout"]["title"]["text"]: s for s in plotly_specs(at)}
    assert {"Router saturation, top-1 agreement with the last step",
            "Router saturation, share of top-k kept at the last step",
            "Load CV (std / mean of expert counts)",
            "MaxVio ((max − mean) / mean of expert counts)", "Focus", "Cover",
            "Routing entropy (nats; router logits where recorded, else top-k weights)",
            } <= set(specs)
    top1 = specs["Router saturation, top-1 agreement with the last step"]
    overlap = specs["Router saturation, share of top-k kept at the last step"]
    assert top1["data"][0]["x"] == [10, 20, 30]
    assert pooled_line(top1) == [0.0, 0.0, 1.0]
    assert pooled_line(overlap) == [0.5, 0.5, 1.0]
    assert {t["name"] for t in top1["data"]} == {"all sites (pooled)", "g0", "g1"}


def test_expert_identity_shows_who_became_whom(series_store):
    at = open_page(series_store, "timeline")
    heatmap = next(s for s in plotly_specs(at) if s["layout"]["title"]["text"]
                   .startswith("Expert identity at g0"))
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
    diff = next(s for s in plotly_specs(at)
                if s["layout"]["title"]["text"] == "Where steps 10 and 30 route alike")
    top1, jaccard = diff["data"]
    assert top1["y"] == [0.0, 0.0]  # t vs t + 2: never the same top-1
    assert [round(v, 6) for v in jaccard["y"]] == [round(1 / 3, 6)] * 2  # {t,t+1} vs {t+1,t+2}
    assert any("12 units compared" in c.value for c in at.caption)


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
