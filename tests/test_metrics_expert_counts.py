"""load, confidence and vocabulary specialization read one per-(site, expert) aggregate of
the expert routes (`load.expert_counts`, once per store refresh) instead of a pass each
(issue 25). These tests keep the queries they replaced and check that the results are the
same (confidence's mean weight up to float rounding: per-expert sums added per site),
on synthetic stores with NaN and zero weights, dropped tokens and per-example routes, on
the 10 M-row benchmark's synthetic run (small) and on the shipped series stores."""

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from routeviz import open_store
from routeviz.metrics import _common as common
from tests.metrics_store import known_run, write_run

load_module = importlib.import_module("routeviz.metrics.load")
confidence_module = importlib.import_module("routeviz.metrics.confidence")
vocab_module = importlib.import_module("routeviz.metrics.vocab")
SERIES = Path(__file__).resolve().parents[1] / "sample_models" / "data" / "series"


# -- the previous version (reference) -----------------------------------------------------
def old_load(store, run):
    counts = common.df(store,
        "SELECT site, choice AS expert, count(*) AS count, "
        "count(*) FILTER (WHERE rank = 0) AS n_top, bool_and(token = -1) AS per_example "
        "FROM routes WHERE run = $run AND kind = 'expert' GROUP BY site, choice", {"run": run})
    return load_module._load_result(store, run, counts, load_module.expected_tokens(store, run),
                                    load_module.route_examples(store, run))


def old_confidence_experts(store, run):
    p = {"run": run}
    per_site = common.df(store,
        "WITH top AS (SELECT site, example, token, weight FROM routes "
        "WHERE run = $run AND kind = 'expert' AND rank = 0) "
        "SELECT site, count(*) AS n_routed, "
        "sum(CASE WHEN weight = 0 THEN 1 ELSE 0 END) AS n_zero, "
        "avg(CASE WHEN isnan(weight) THEN NULL ELSE weight END) AS mean_top1_weight, "
        "count(CASE WHEN isnan(weight) THEN NULL ELSE weight END) AS n_weighted, "
        "min(token) < 0 AS per_example FROM top GROUP BY site", p)
    # the per-site query is what changed; the frame built from it is confidence's own
    return confidence_module.experts_frame(store, run, per_site)


def old_ranks(store, run):
    return common.df(store, "SELECT site, max(rank) + 1 AS k FROM routes "
                            "WHERE run = $run AND kind = 'expert' GROUP BY site", {"run": run})


# -- stores ------------------------------------------------------------------------------
def weights_store(path):
    """Two top-2 sites; rank-0 weights of 0 and NaN on some tokens, tokens dropped at the
    second site, a third site routed per example (token -1), token texts."""
    rng = np.random.default_rng(5)
    routes, texts = [], {}
    for e in range(10):
        texts[e] = [f"w{(e * t) % 7}" for t in range(20)]
        for t in range(20):
            for layer, site in enumerate(["a", "b"]):
                if site == "b" and rng.random() < 0.2:
                    continue
                experts = rng.choice(5, 2, replace=False)
                w0 = [0.0, float("nan"), float(rng.uniform(0.3, 1))][int(rng.integers(3))]
                routes += [(e, t, layer, site, "expert", int(experts[0]), 0, w0),
                           (e, t, layer, site, "expert", int(experts[1]), 1, 0.1)]
        routes.append((e, -1, 2, "c", "expert", int(rng.integers(5)), 0,
                       float(rng.uniform(0, 1))))
    return write_run(path, "w", routes, tokens=texts, config={"n_experts": 5})


@pytest.fixture(scope="module")
def all_stores(tmp_path_factory):
    from benchmarks.metrics_10m import build

    tmp = tmp_path_factory.mktemp("counts")
    build(str(tmp / "bench"), 200)
    out = [(weights_store(tmp / "w"), "w"), (known_run(tmp / "k"), "r"),
           (open_store(str(tmp / "bench")), "bench")]
    for name in ("text-moe", "dae-syn"):
        store = open_store(SERIES / name)
        runs = store.run_names()
        out += [(store, runs[0]), (store, runs[-1])]
    return out


def test_load_confidence_vocab_equal_the_previous_queries(all_stores):
    for store, run in all_stores:
        if "expert" not in common.kinds_recorded(store, run):
            continue
        new, old = load_module.load(store, run), old_load(store, run)
        pd.testing.assert_frame_equal(new.sites, old.sites)
        pd.testing.assert_frame_equal(new.experts, old.experts)
        new = confidence_module.confidence(store, run)["experts"]
        old = old_confidence_experts(store, run)
        pd.testing.assert_frame_equal(new.drop(columns="mean_top1_weight"),
                                      old.drop(columns="mean_top1_weight"), check_dtype=False)
        np.testing.assert_allclose(new.mean_top1_weight.astype(float),
                                   old.mean_top1_weight.astype(float), rtol=1e-12, atol=0)
        assert new.mean_top1_weight.isna().tolist() == old.mean_top1_weight.isna().tolist()
        if common.scalar(store, "SELECT EXISTS (SELECT 1 FROM tokens WHERE run = $run)",
                         {"run": run}):
            sites = vocab_module.vocab_specialization(store, run, min_count=1).sites
            ranks = old_ranks(store, run)  # once: a GROUP BY's row order is not fixed
            k = dict(zip(ranks.site.astype(str), ranks.k))
            assert {s: int(v) for s, v in zip(sites.site, sites.k) if s != "*"} == {
                s: int(v) for s, v in k.items()}


def test_weights_store_has_the_cases_it_tests(all_stores):
    store, run = all_stores[0]
    conf = confidence_module.confidence(store, run)["experts"].set_index("site")
    assert conf.loc["a", "n_zero"] > 0
    assert conf.loc["b", "n_dropped"] > 0 and conf.loc["c", "n_expected"] == 10
    # the NaN weights reach the mean at a and b, as they did before (DuckDB's isnan does
    # not flag them here); c's weights give a plain mean
    assert np.isnan(conf.loc["a", "mean_top1_weight"])
    assert 0 < conf.loc["c", "mean_top1_weight"] < 1


def test_baselines_of_several_kinds_equal_the_per_kind_ones(all_stores, tmp_path):
    """`metrics --json` computes the kinds' permutation baselines together (one read of the
    sample's tagged units): the same numbers as one focus_cover_baseline per kind, sampled
    (max_units below the run's units) or not."""
    from benchmarks.metrics_10m import build
    from routeviz.metrics.baseline import focus_cover_baseline, focus_cover_baselines
    from routeviz.metrics.focus_cover import focus_cover_kinds

    build(str(tmp_path / "bench"), 40)
    cases = [(open_store(str(tmp_path / "bench")), "bench"), (all_stores[1][0], "r")]
    for store, run in cases:
        kinds = [k for k in ("expert", "keep", "exit") if k in common.kinds_recorded(store, run)]
        assert len(kinds) >= 2
        results = focus_cover_kinds(store, run, kinds)
        for max_units in (200, 20_000):
            together = focus_cover_baselines(store, run, results, permutations=7, resamples=5,
                                             seed=2, max_units=max_units)
            for kind in kinds:
                alone = focus_cover_baseline(store, run, kind=kind, result=results[kind],
                                             permutations=7, resamples=5, seed=2,
                                             max_units=max_units)
                pd.testing.assert_frame_equal(together[kind].scores, alone.scores)
                assert (together[kind].n_units, together[kind].sampled) == (
                    alone.n_units, alone.sampled)
            if max_units == 200 and run == "bench":
                assert together["expert"].sampled

