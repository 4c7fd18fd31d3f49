"""The expert-card tag test's fast parts against their references: the chance band
(card_tags.hypergeom_ppf) against scipy's hypergeom.ppf cell by cell, and TagTests.labels
against label_of per expert (tests/cards_store.py)."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import hypergeom

from routeviz import open_store
from routeviz.analysis.card_tags import NO_LABEL, hypergeom_ppf, label_of, tag_tests
from tests import cards_store
from tests.cards_store import SITE_A

cards_store = cards_store.cards_store  # fixture

QS = [0.025, 0.975, 0.5, 1e-6, 1 - 1e-6]


def edge_cases() -> list:
    """(N, K, n): K = 0, K = N, n = 0, n = N, N = 1, cdf values exactly at a quantile
    (N = 40, K = 1, n = 1: cdf(0) = 0.975), and large N."""
    cases = []
    for total in [1, 2, 3, 5, 10, 37, 40, 216, 1000, 32_000, 100_000]:
        picks = sorted({0, 1, 2, total // 3, total // 2, total - 1, total})
        cases += [(total, good, drawn) for good in picks for drawn in picks
                  if 0 <= good <= total and 0 <= drawn <= total]
    cases += [(40, 1, 1), (40, 39, 1), (80, 2, 1), (400, 10, 1)]
    for total in [10**6, 10**7]:
        cases += [(total, total // 2, total // 3), (total, 3, total // 2),
                  (total, total // 100, 5000), (total, total, 17), (total, 0, 99)]
    return cases


def random_cases(count: int = 800, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    total = rng.integers(1, 40_000, count)
    good = (rng.random(count) ** 3 * (total + 1)).astype(int).clip(0, total)  # rare values too
    drawn = (rng.random(count) * (total + 1)).astype(int).clip(0, total)
    return list(zip(total.tolist(), good.tolist(), drawn.tolist()))


@pytest.mark.parametrize("cases", [edge_cases(), random_cases()], ids=["edges", "random"])
def test_band_equals_scipy_ppf_cell_by_cell(cases):
    total, good, drawn = map(np.array, zip(*cases))
    fast = hypergeom_ppf(QS, total, good, drawn)
    for i, q in enumerate(QS):
        np.testing.assert_array_equal(fast[i], hypergeom.ppf(q, total, good, drawn),
                                      err_msg=f"q={q}")


def test_band_keeps_shape_duplicates_and_invalid_cells():
    total = np.array([100, 100, 100, 5, 0])
    good = np.array([30, 30, 30, 9, 0])  # K > N and N = 0: invalid, nan as scipy
    drawn = np.array([10, 10, 50, 2, 0])
    fast = hypergeom_ppf([0.025, 0.975], total, good, drawn)
    assert fast.shape == (2, 5)
    assert fast[0, 0] == fast[0, 1] and np.isnan(fast[:, 3:]).all()
    np.testing.assert_array_equal(fast[1], hypergeom.ppf(0.975, total, good, drawn))


@pytest.mark.parametrize("run", ["copy-tag", "random", "copy-token", "train-0", "train-2"])
def test_labels_equal_label_of_each_expert(cards_store, run):
    tests = tag_tests(open_store(cards_store), run)
    labels = tests.labels()
    expected = {(str(s), int(e)): label_of(rows)
                for (s, e), rows in tests.tests.groupby(["site", "expert"], sort=False)}
    assert labels == expected and len(labels) == 8
    if run == "copy-tag":
        assert all(label != NO_LABEL for label in labels.values())
        assert labels[(SITE_A, 0)].startswith("token_type=")


def test_band_and_p_value_columns_are_scipys(cards_store):
    frame = tag_tests(open_store(cards_store), "copy-tag").tests
    draws = np.minimum(frame.n_expert, frame.n_units).to_numpy()
    args = (frame.n_units.to_numpy(), frame.n_value.to_numpy(), draws)
    np.testing.assert_array_equal(frame.chance_lo * np.maximum(draws, 1),
                                  hypergeom.ppf(0.025, *args))
    np.testing.assert_array_equal(frame.chance_hi * np.maximum(draws, 1),
                                  hypergeom.ppf(0.975, *args))
    np.testing.assert_array_equal(frame.p_value, hypergeom.sf(frame["count"] - 1, *args))


@pytest.fixture(scope="module")
def report_runs(tmp_path_factory):
    """text (per-example tags), image (patches, per-example exits), dae (per-example
    experts: unit "example") and text-b."""
    from tests.report_store import all_runs

    path = tmp_path_factory.mktemp("card-tags-report") / "store"
    all_runs(path)
    return path


def both_paths(monkeypatch, store, run, **kw):
    from routeviz.analysis import card_tags

    monkeypatch.setattr(card_tags, "SMALL_RUN", 10**12)
    read = tag_tests(store, run, **kw)
    monkeypatch.setattr(card_tags, "SMALL_RUN", -1)
    sql = tag_tests(store, run, **kw)
    return read, sql


@pytest.mark.parametrize("run", ["copy-tag", "random", "copy-token", "train-1"])
def test_small_run_counts_equal_the_sql_counts_cards(monkeypatch, cards_store, run):
    read, sql = both_paths(monkeypatch, open_store(cards_store), run)
    pd.testing.assert_frame_equal(read.tests, sql.tests, check_exact=True)
    assert read.m == sql.m and read.families == sql.families and read.left_out == sql.left_out
    assert len(read.tests) == 48 and read.unit == "token"


@pytest.mark.parametrize("run,unit", [("text", "token"), ("image", "token"),
                                      ("dae", "example"), ("text-b", "token")])
def test_small_run_counts_equal_the_sql_counts_report(monkeypatch, report_runs, run, unit):
    store = open_store(report_runs)
    read, sql = both_paths(monkeypatch, store, run)
    pd.testing.assert_frame_equal(read.tests, sql.tests, check_exact=True)
    assert read.m == sql.m and read.families == sql.families and read.unit == unit
    assert len(read.tests) > 0
    one_site = str(read.tests.site.iloc[0])
    read, sql = both_paths(monkeypatch, store, run, site=one_site)
    pd.testing.assert_frame_equal(read.tests, sql.tests, check_exact=True)
    assert set(read.tests.site) == {one_site}


def test_family_stats_are_the_stores(report_runs):
    from routeviz.analysis.card_tags import family_stats
    from routeviz.metrics.unit_counts import run_tags

    store = open_store(report_runs)
    for run in ("text", "image", "dae"):
        expected = store.tag_family_stats(run)
        got = family_stats(run_tags(store, run))
        assert got.name.tolist() == expected.name.astype(str).tolist() and len(got) >= 1
        for column in ("n_values", "n_examples", "per_token"):
            assert got[column].tolist() == expected[column].tolist(), (run, column)


@pytest.mark.parametrize("run", ["text", "image", "dae"])
def test_ranked_counts_equal_two_unit_counts(report_runs, run):
    """One query with a top-1 flag gives unit_counts(top1=False) and (top1=True)."""
    from routeviz.analysis.card_tags import default_families, expert_unit
    from routeviz.metrics.focus_cover import all_tag_values
    from routeviz.metrics.unit_counts import unit_counts, unit_counts_ranked

    store = open_store(report_runs)
    values = all_tag_values(store, run, default_families(store, run)[0])
    unit = expert_unit(store, run)
    routed, first = unit_counts_ranked(store, run, "expert", values, unit)
    for got, top1 in ((routed, False), (first, True)):
        expected = unit_counts(store, run, "expert", values, unit, top1=top1)
        for part, keys in (("active", ["site", "choice"]), ("tag", ["name", "value"]),
                           ("both", ["site", "choice", "name", "value"])):
            pd.testing.assert_frame_equal(
                got[part].sort_values(keys).reset_index(drop=True),
                expected[part].sort_values(keys).reset_index(drop=True), check_exact=True)
    assert len(first["both"]) > 0 and (routed["active"].n_active.sum()
                                       >= first["active"].n_active.sum())
