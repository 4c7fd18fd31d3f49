"""Compare page: two runs side by side, per-site agreement, most-changed tokens."""

from routeviz import metrics, open_store
from routeviz.figures import analysis
from routeviz.metrics.pairing import expert_matching
from tests import app_support
from tests.app_support import open_page, plotly_specs
from tests.metrics_store import expert_routes, write_run

app_store = app_support.app_store  # shared fixture


def test_two_runs_side_by_side(app_store):
    at = open_page(app_store, "compare", run="words")
    # run B defaults to the run over the same inputs (another model), and says why
    assert at.selectbox(key="compare_b").value == "words-b"
    assert any("same inputs, model toy-long" in c.value for c in at.caption)
    assert not at.error and not at.exception
    bars, matched, agreement = plotly_specs(at)
    assert [t["name"] for t in bars["data"]] == ["words", "words-b"]
    assert "Focus (pooled)" in bars["data"][0]["x"]
    assert "starved experts" not in bars["data"][0]["x"]  # a count is not on the 0–1 chart
    store = open_store(app_store)
    shown = {m.label: m.value for m in at.metric}
    starved = [analysis.headline(metrics.summary(store, r))["starved experts"]
               for r in ("words", "words-b")]
    assert shown["starved experts: A → B"] == f"{starved[0]:.0f} → {starved[1]:.0f}"
    diff = metrics.diff(store, "words", "words-b")
    assert shown["Units in both"] == f"{diff['n_common_units']:,}"
    assert [round(v, 6) for v in agreement["data"][0]["y"]] == \
        [round(s["top1_agreement"], 6) for s in diff["sites"]]
    # two models: experts matched before agreement, the matching shown
    pairing = expert_matching(store, "words", "words-b")
    assert [round(v, 6) for v in matched["data"][1]["y"]] == \
        [round(v, 6) for v in pairing.sites.agreement_matched]
    assert all(m >= i for m, i in zip(pairing.sites.agreement_matched,
                                      pairing.sites.agreement_by_id))
    table = next(d.value for d in at.dataframe if "expert_b" in d.value)
    assert list(table.columns[:4]) == ["site_a", "site_b", "expert_a", "expert_b"]
    taken = table[table.expert_b >= 0].groupby("site_a").expert_b
    assert (taken.nunique() == taken.size()).all()  # one-to-one


def test_runs_over_different_inputs_are_flagged(app_store):
    at = open_page(app_store, "compare", run="words")
    at.selectbox(key="compare_b").set_value("pictures").run()
    assert not at.exception
    assert any("different text" in w.value for w in at.warning)


def test_nothing_related_is_said_and_b_is_left_to_pick(app_store):
    at = open_page(app_store, "compare", run="pictures")
    assert at.selectbox(key="compare_b").value is None
    assert any("Nothing related to 'pictures'" in i.value for i in at.info)
    assert not at.exception


def test_per_example_runs_name_each_example_once(tmp_path):
    """Two dae-syn-like runs (every route at token -1): the most-changed table lists each
    changed example once, with its own id and token -1."""
    path = tmp_path / "st"
    for run, top1 in (("a", {0: 0, 1: 1, 2: 2, 3: 3}), ("b", {0: 4, 1: 1, 2: 5, 3: 3})):
        write_run(path, run, expert_routes("routers.0", 0, {(e, -1): [c] for e, c in top1.items()}),
                  model="dae-syn-top-k")
    at = open_page(path, "compare", run="a")
    assert at.selectbox(key="compare_b").value == "b"  # same model, same inputs
    changed = next(d.value for d in at.dataframe if "n_flipped" in d.value)
    assert sorted(changed.example) == [0, 2] and set(changed.token) == {-1}


def test_headline_numbers_equal_the_full_summary_of_a_run_with_three_kinds(tmp_path):
    """Compare scores Focus/Cover for the one kind its headline shows (text-moe records
    expert, keep and exit routes): every number on its 0–1 chart equals the headline of the
    full `metrics.summary` (every kind, baselines, scans)."""
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record
    from routeviz.runs.uploads import item_from_text

    runner = load_model("text-moe")
    texts = ["def route(token): return experts[hash(token) % 8]", "x = [1, 2, 3]  # three"]
    for run in ("first", "second"):
        record(runner, [item_from_text(t) for t in texts], tmp_path / "st", run)
    store = open_store(tmp_path / "st")
    assert set(store.facts("first").kinds) >= {"expert", "keep", "exit"}
    at = open_page(tmp_path / "st", "compare", run="first")
    assert at.selectbox(key="compare_b").value == "second" and not at.exception
    bars = plotly_specs(at)[0]
    for trace, run in zip(bars["data"], ("first", "second")):
        full = analysis.headline(metrics.summary(store, run))
        shown = dict(zip(trace["x"], trace["y"]))
        assert set(shown) == {"Focus (pooled)", "Cover (pooled)", "mean kept fraction",
                              "compute saved"}
        assert shown == {k: full[k] for k in shown}
