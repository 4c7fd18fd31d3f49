"""load and keep on a store with known rows; errors that name what exists."""

import math

import numpy as np
import pandas as pd
import pytest

from routeviz.cli import main
from routeviz.errors import RoutevizError
from routeviz.metrics import exits, keep, load, summary
from tests.metrics_store import expert_routes, known_run, write_run


@pytest.fixture
def store(tmp_path):
    return known_run(tmp_path / "st")


def test_load_counts_shares_starved_and_dropped(store):
    res = load(store, "r")
    a = res.sites.set_index("site").loc["a"]
    assert a.n_experts == 4 and a.n_tokens == 9 and a.dropped_tokens == 1
    assert a.starved == [2, 3] and a.n_starved == 2
    counts = [6, 3, 0, 0]
    mean = sum(counts) / 4
    std = math.sqrt(sum((c - mean) ** 2 for c in counts) / 4)
    assert a.cv == pytest.approx(std / mean) and a.max_over_mean == pytest.approx(6 / mean)
    experts = res.experts[res.experts.site == "a"].set_index("expert")
    assert list(experts["count"]) == counts  # never-chosen experts are rows with 0
    assert experts.share[0] == pytest.approx(6 / 9)
    b = res.sites.set_index("site").loc["b"]
    assert b.dropped_tokens == 0 and b.starved == [0, 1]
    assert list(res.sites.site) == ["a", "b"]  # model order


def test_keep_merges_and_never_discarded(store):
    res = keep(store, "r")
    prune = res.sites.set_index("site").loc["prune"]
    assert prune.n_seen == 10 and prune.n_kept == 6 and prune.kept_fraction == pytest.approx(0.6)
    # discarded: keep=0 at tokens 0,3,6,9 and merged away 4,5,7 -> 3 never discarded
    assert res.tokens.iloc[0].to_dict() == {"n_tokens": 10, "n_never_discarded": 3,
                                            "never_discarded_fraction": 0.3}
    merges = res.merges.set_index("group_size").n_groups.to_dict()
    assert merges == {3: 1, 2: 1}  # token 3 absorbed 4 and 5; token 6 absorbed 7


def test_errors_name_what_exists(store, tmp_path, capsys):
    with pytest.raises(RoutevizError, match="unknown run 'x'; available: r"):
        load(store, "x")
    with pytest.raises(RoutevizError, match="unknown tag 'colour'.*available: kind, lang"):
        summary(store, "r", tags=["colour"])
    only_experts = write_run(tmp_path / "st2", "e", expert_routes("g", 0, {(0, 0): [0]}))
    for fn in (exits, keep):
        with pytest.raises(RoutevizError, match="it recorded: expert"):
            fn(only_experts, "e")
    assert summary(only_experts, "e")["notes"] == [
        "the run has no tags, so Focus/Cover cannot be computed"]
    assert main(["metrics", "--store", str(store.path), "--run", "nope", "--json"]) == 2
    assert "unknown run 'nope'; available: r" in capsys.readouterr().err


# -- load's per-site numpy against the pandas merges it replaced -------------------------
def reference_load(store, run):
    """`load` as it was: a pandas grid merge per site."""
    from routeviz.metrics import _common as common
    from routeviz.metrics.load import STARVED
    from routeviz.metrics.unit_counts import example_lengths_sql

    p = {"run": run}
    sites = common.sites_of(store, run, "expert")
    n_experts = common.n_experts_by_site(store, run, sites.site)
    counts = common.df(store,
        "SELECT site, choice AS expert, count(*) AS count, "
        "count(*) FILTER (WHERE rank = 0) AS n_top, bool_and(token = -1) AS per_example "
        "FROM routes WHERE run = $run AND kind = 'expert' GROUP BY site, choice", p)
    units = counts.groupby("site").agg(n_tokens=("n_top", "sum"),
                                       per_example=("per_example", "all")).reset_index()
    expected = common.df(store,
        f"WITH lengths AS ({example_lengths_sql(store, run)}) "
        "SELECT s.site, count(*) AS n_examples, sum(l.n) AS n_expected FROM "
        "(SELECT site, example FROM routes WHERE run = $run AND kind = 'expert' "
        " GROUP BY site, example) s JOIN lengths l USING (example) GROUP BY s.site", p)
    n_run_examples = common.scalar(
        store, "SELECT count(DISTINCT example) FROM routes WHERE run = $run", p) or 0
    expert_rows = []
    site_rows = []
    for site, layer in zip(sites.site, sites.layer):
        grid = pd.DataFrame({"expert": np.arange(n_experts[site], dtype="int64")})
        got = counts[counts.site == site][["expert", "count"]].astype("int64")
        per = grid.merge(got, on="expert", how="outer").fillna(0).astype("int64")
        u = units[units.site == site].iloc[0]
        n_tokens = int(u.n_tokens)
        n_assign = int(per["count"].sum())
        per["site"], per["layer"] = site, int(layer)
        per["share"] = per["count"] / n_assign if n_assign else 0.0
        per["token_fraction"] = per["count"] / n_tokens if n_tokens else 0.0
        per["starved"] = per.token_fraction < STARVED
        expert_rows.append(per)
        c = per["count"].to_numpy(dtype="float64")
        mean = c.mean() if len(c) else 0.0
        e = expected[expected.site == site]
        n_expected = n_run_examples if bool(u.per_example) else (
            int(e.n_expected.iloc[0]) if len(e) else n_tokens)
        dropped = max(n_expected - n_tokens, 0)
        site_rows.append({
            "site": site, "layer": int(layer), "n_experts": len(per), "n_tokens": n_tokens,
            "n_assignments": n_assign, "cv": float(c.std() / mean) if mean else float("nan"),
            "max_over_mean": float(c.max() / mean) if mean else float("nan"),
            "n_starved": int(per.starved.sum()),
            "starved": [int(x) for x in per.expert[per.starved]],
            "dropped_tokens": int(dropped),
            "dropped_fraction": dropped / n_expected if n_expected else 0.0,
        })
    experts = pd.concat(expert_rows, ignore_index=True) if expert_rows else pd.DataFrame(
        columns=["site", "layer", "expert", "count", "share", "token_fraction", "starved"])
    experts = experts[["site", "layer", "expert", "count", "share", "token_fraction", "starved"]]
    return pd.DataFrame(site_rows), experts


@pytest.mark.parametrize("name", ["text-moe", "dae-syn"])
def test_load_equals_the_pandas_reference_on_shipped_stores(name):
    from pathlib import Path

    from routeviz import open_store
    from routeviz.metrics.load import load_many

    store = open_store(Path(__file__).resolve().parents[1] / "sample_models" / "data"
                       / "series" / name)
    runs = store.run_names()[:6]
    batched = load_many(store, runs)
    for run in runs:
        sites, experts = reference_load(store, run)
        res = load(store, run)
        pd.testing.assert_frame_equal(res.sites, sites, check_exact=True)
        pd.testing.assert_frame_equal(res.experts, experts, check_exact=True)
        pd.testing.assert_frame_equal(batched[run].sites, sites, check_exact=True)
        pd.testing.assert_frame_equal(batched[run].experts, experts, check_exact=True)
    assert (sites.cv > 0).all()
