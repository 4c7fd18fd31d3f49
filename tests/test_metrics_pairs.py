"""Co-activation and consecutive tokens count their pairs in numpy (metrics/_pairs.py) from
one read of the (sampled) expert routes; these tests keep the SQL self-joins they replaced
(issue 25) and check that both give the same counts and the same results, on synthetic
stores with duplicates, dropped tokens and per-example routes, on the 10 M-row benchmark's
synthetic run (small) and on the shipped series stores."""

import importlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from routeviz import open_store
from routeviz.metrics import _common as common
from routeviz.metrics import _pairs
from routeviz.metrics._sample import example_sample
from routeviz.metrics.chance_json import chance_parts
from tests.metrics_store import expert_routes, write_run

# the modules (routeviz.metrics re-exports functions of the same names)
coactivation_module = importlib.import_module("routeviz.metrics.coactivation")
consecutive_module = importlib.import_module("routeviz.metrics.consecutive")
SERIES = Path(__file__).resolve().parents[1] / "sample_models" / "data" / "series"

# -- the SQL of the previous version (reference) -----------------------------------------
OLD_COACT_ROUTES = """
SELECT i.idx, """ + common.unit_key("x.example", "x.token") + """ AS u, x.choice, x.rank
FROM routes x JOIN {indexed} i ON i.site = x.site
WHERE x.run = $run AND x.kind = 'expert'{sample}"""

OLD_CONSEC_ROUTES = ("SELECT site, " + common.unit_key() + " AS u, choice, rank FROM routes "
                     "WHERE run = $run AND kind = 'expert' AND token >= 0{sample}")


def old_coactivation_counts(store, run, sample=""):
    names = common.sites_of(store, run, "expert").site.tolist()
    order = pd.DataFrame({"site": names, "idx": np.arange(len(names), dtype="int64")})
    with common.temp_view(store, order) as indexed:
        sampled = OLD_COACT_ROUTES.format(indexed=indexed,
                                          sample=f" AND ({sample})" if sample else "")
        with common.temp_view(store, sampled, {"run": run}) as table:
            routes = f"r AS (SELECT * FROM {table})"
            load = common.df(store,
                f"WITH {routes} SELECT idx, choice, count(*) AS n_choice, "
                "sum(CASE WHEN rank = 0 THEN 1 ELSE 0 END) AS n_top FROM r GROUP BY idx, choice")
            within = common.df(store,
                f"WITH {routes} SELECT a.idx, a.choice AS a, b.choice AS b, count(*) AS n_ab "
                "FROM r a JOIN r b ON b.idx = a.idx AND b.u = a.u AND b.choice <> a.choice "
                "GROUP BY a.idx, a.choice, b.choice")
            across = common.df(store,
                f"WITH {routes}, present AS (SELECT idx, u FROM r WHERE rank = 0), "
                "pairs AS (SELECT a.idx, a.choice AS a, b.choice AS b, count(*) AS n_ab "
                "  FROM r a JOIN r b ON b.idx = a.idx + 1 AND b.u = a.u "
                "  GROUP BY a.idx, a.choice, b.choice), "
                "starts AS (SELECT a.idx, a.choice AS a, count(*) AS n_a FROM r a "
                "  JOIN present n ON n.idx = a.idx + 1 AND n.u = a.u GROUP BY a.idx, a.choice) "
                "SELECT pairs.idx, pairs.a, pairs.b, pairs.n_ab, starts.n_a FROM pairs "
                "JOIN starts ON starts.idx = pairs.idx AND starts.a = pairs.a")
    return load, within, across


def old_consecutive_counts(store, run, sample=""):
    sampled = OLD_CONSEC_ROUTES.format(sample=f" AND ({sample})" if sample else "")
    with common.temp_view(store, sampled, {"run": run}) as table:
        routes = f"r AS (SELECT * FROM {table})"
        pairs = common.df(store,
            f"WITH {routes}, top AS (SELECT site, u, choice FROM r WHERE rank = 0) "
            "SELECT a.site, count(*) AS n_pairs, "
            "sum(CASE WHEN a.choice = b.choice THEN 1 ELSE 0 END) AS n_same "
            "FROM top a JOIN top b ON b.site = a.site AND b.u = a.u + 1 GROUP BY a.site")
        shared = common.df(store,
            f"WITH {routes} SELECT a.site, count(*) AS n_shared FROM r a "
            "JOIN r b ON b.site = a.site AND b.u = a.u + 1 AND b.choice = a.choice "
            "GROUP BY a.site")
        per_expert = common.df(store,
            f"WITH {routes} SELECT site, choice, count(*) AS n_any, "
            "sum(CASE WHEN rank = 0 THEN 1 ELSE 0 END) AS n_top, max(rank) + 1 AS k "
            "FROM r GROUP BY site, choice")
    return pairs, shared, per_expert


# -- stores --------------------------------------------------------------------------------
def odd_store(path):
    """Three top-2 sites with random experts; tokens dropped at some sites, a rank missing
    on some tokens, a duplicated row, and per-example (token -1) routes at a fourth site."""
    rng = np.random.default_rng(3)
    routes = []
    for layer, site in enumerate(["s0", "s1", "s2"]):
        pick = {}
        for e in range(12):
            for t in range(30):
                if rng.random() < 0.1:
                    continue  # dropped at this site
                experts = [int(x) for x in rng.choice(6, 2, replace=False)]
                pick[(e, t)] = experts[:1] if rng.random() < 0.1 else experts
        routes += expert_routes(site, layer, pick)
    routes.append(routes[5])  # a duplicated row: joins count it twice
    routes += [(e, -1, 3, "s3", "expert", int(rng.integers(6)), 0, 1.0) for e in range(12)]
    return write_run(path, "odd", routes, config={"n_experts": 6})


def bench_store(path):
    from benchmarks.metrics_10m import build

    build(str(path), 300)
    return open_store(str(path))


def stores(tmp_path):
    out = [(odd_store(tmp_path / "odd"), "odd"), (bench_store(tmp_path / "bench"), "bench")]
    for name in ("text-moe", "dae-syn"):
        store = open_store(SERIES / name)
        runs = store.run_names()
        out += [(store, runs[0]), (store, runs[-1])]
    return out


def sorted_frame(frame, keys):
    frame = frame.copy()
    for column in frame.columns:
        if column != "site" and column not in ("scope", "to_site", "from_site"):
            frame[column] = frame[column].astype("float64")
    return frame.sort_values(keys).reset_index(drop=True)


def assert_same(new, old, keys, exact=True):
    new, old = sorted_frame(new, keys), sorted_frame(old, keys)
    assert list(new.columns) == list(old.columns)
    if exact:
        pd.testing.assert_frame_equal(new, old, check_dtype=False)
    else:
        pd.testing.assert_frame_equal(new, old, check_dtype=False, rtol=1e-12, atol=1e-15)


@pytest.fixture(scope="module")
def all_stores(tmp_path_factory):
    return stores(tmp_path_factory.mktemp("pairs"))


@pytest.mark.parametrize("sampled", [False, True])
def test_counts_equal_the_sql_self_joins(all_stores, sampled):
    for store, run in all_stores:
        if "expert" not in common.kinds_recorded(store, run):
            continue
        sample = example_sample(store, run, 500, 1)[0] if sampled else ""
        routes = coactivation_module.read_routes(store, run, sample)
        assert len(routes), run
        new, old = coactivation_module._counts(routes), old_coactivation_counts(store, run, sample)
        assert_same(new[0], old[0], ["idx", "choice"])
        assert_same(new[1], old[1], ["idx", "a", "b"])
        assert_same(new[2], old[2], ["idx", "a", "b"])
        names = common.sites_of(store, run, "expert").site.tolist()
        new = consecutive_module._counts(routes, names)
        old = old_consecutive_counts(store, run, sample)
        assert_same(new[0], old[0], ["site"])
        assert_same(new[1], old[1], ["site"])
        assert_same(new[2], old[2], ["site", "choice"])


def test_results_equal_those_of_the_sql_counts(all_stores, monkeypatch):
    """coactivation and consecutive (and chance_parts, as `metrics --json` gives them) from
    the numpy counts equal those from the SQL self-joins, up to float rounding (sums of
    the same shares in another order)."""
    for store, run in all_stores:
        if "expert" not in common.kinds_recorded(store, run):
            continue
        new_co = coactivation_module.coactivation(store, run)
        new_cons = consecutive_module.consecutive(store, run)
        new_parts = chance_parts(store, run, ["expert"], [], 500, 0)
        with monkeypatch.context() as patch:
            sample = example_sample(store, run, 500, 0)[0]
            patch.setattr(coactivation_module, "_counts",
                          lambda routes, s=store, r=run, q=sample: old_coactivation_counts(s, r, q))
            patch.setattr(consecutive_module, "_counts",
                          lambda routes, names, s=store, r=run, q=sample: old_consecutive_counts(s, r, q))
            old_parts = chance_parts(store, run, ["expert"], [], 500, 0)
            patch.setattr(coactivation_module, "_counts",
                          lambda routes, s=store, r=run: old_coactivation_counts(s, r))
            patch.setattr(consecutive_module, "_counts",
                          lambda routes, names, s=store, r=run: old_consecutive_counts(s, r))
            old_co = coactivation_module.coactivation(store, run)
            old_cons = consecutive_module.consecutive(store, run)
        assert_same(new_co.within, old_co.within, ["site", "a", "b"], exact=False)
        assert_same(new_co.across, old_co.across, ["from_site", "a", "b"], exact=False)
        assert_same(new_co.sites, old_co.sites, ["scope", "site"], exact=False)
        assert_same(new_cons, old_cons, ["site"], exact=False)
        if run in ("odd", "bench"):  # top-2 runs with several sites: pairs to compare
            assert len(new_co.within) and len(new_co.across) and len(new_cons) > 2
        for key in ("coactivation", "consecutive"):
            assert_close(new_parts[key], old_parts[key], key)


def assert_close(a, b, path):
    if isinstance(b, dict):
        assert set(a) == set(b), path
        for key in b:
            assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(b, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-15), path
    else:
        assert a == b, path


def test_pairs_helpers_count_every_ordered_pair():
    major = np.array([1, 0, 1, 0, 1, 2, 1])
    minor = np.array([5, 3, 5, 4, 6, 0, 5])
    groups = _pairs.Groups(major, minor)
    assert groups.major.tolist() == [0, 0, 1, 1, 2] and groups.minor.tolist() == [3, 4, 5, 6, 0]
    assert groups.size.tolist() == [1, 1, 3, 1, 1]
    g, h = groups.follows()
    assert g.tolist() == [0, 2] and h.tolist() == [1, 3]
    i, _ = _pairs.cross(groups.start, groups.size, groups.start, groups.size)
    assert len(i) == 1 + 1 + 9 + 1 + 1  # a group of 3 rows: 9 ordered pairs (i = j too)
    a, b, n = _pairs.tally((np.array([2, 0, 2, -1]), np.array([7, 7, 7, 1])))
    assert a.tolist() == [-1, 0, 2] and b.tolist() == [1, 7, 7] and n.tolist() == [1, 1, 2]
    wide = np.array([0, 10**12, 0])
    a, b, n = _pairs.tally((wide, np.array([0, 10**7, 0])), weights=np.array([1.0, 2.0, 3.0]))
    assert a.tolist() == [0, 10**12] and b.tolist() == [0, 10**7] and n.tolist() == [4, 2]
