"""Expert load (shares, imbalance, starved experts, drops) and input sparsity (kept fraction,
tokens never discarded, merge-group sizes). Every count is a DuckDB GROUP BY."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from routeviz.errors import RoutevizError
from routeviz.metrics import _common as common
from routeviz.metrics.unit_counts import example_lengths_sql
from routeviz.store.query import split_runs

STARVED = 0.01  # an expert chosen for fewer than 1% of its site's tokens is starved

@dataclass
class LoadResult:
    sites: pd.DataFrame  # one row per expert site
    experts: pd.DataFrame  # one row per (site, expert), never-chosen experts with count 0


@dataclass
class KeepResult:
    sites: pd.DataFrame  # site, layer, n_seen, n_kept, kept_fraction
    tokens: pd.DataFrame  # n_tokens, n_never_discarded, never_discarded_fraction
    merges: pd.DataFrame  # site, layer, group_size, n_groups


def load(store, run: str) -> LoadResult:
    """Per expert site: shares, coefficient of variation, max/mean, starved experts, drops."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    counts = expert_counts(store, run)[["site", "expert", "count", "n_top", "per_example"]]
    return _load_result(store, run, counts, expected_tokens(store, run),
                        lambda: route_examples(store, run))


# per (site, expert) of the expert routes: what load counts, and the rank-0 sums router
# confidence adds up per site and the largest rank vocabulary specialization reads
EXPERT_COUNTS = (
    "SELECT site, choice AS expert, count(*) AS count, "
    "count(*) FILTER (WHERE rank = 0) AS n_top, bool_and(token = -1) AS per_example, "
    "count(*) FILTER (WHERE rank = 0 AND weight = 0) AS n_zero, "
    "coalesce(sum(weight) FILTER (WHERE rank = 0 AND NOT isnan(weight)), 0) AS weight_sum, "
    "count(*) FILTER (WHERE rank = 0 AND NOT isnan(weight)) AS n_weighted, "
    "min(token) FILTER (WHERE rank = 0) AS min_token, max(rank) AS max_rank "
    "FROM routes WHERE run = $run AND kind = 'expert' GROUP BY site, choice "
    "ORDER BY site, choice")  # a fixed row order: confidence adds weight_sum up in it


def expert_counts(store, run: str) -> pd.DataFrame:
    """site, expert, count, n_top, per_example (every route at the site is per example),
    and of the rank-0 routes: n_zero (weight 0), weight_sum and n_weighted (weights not
    NaN), min_token; max_rank (of any route). One pass over the run's expert routes, once
    per store refresh: load, confidence and vocab_specialization all read it."""
    return common.memo(store, ("expert_counts", run), lambda: common.df(
        store, EXPERT_COUNTS, {"run": run})).copy()


def expected_tokens(store, run: str) -> pd.DataFrame:
    """site, n_examples, n_expected: per expert site, the examples with a route there and
    their token count (what load and confidence count drops against); once per store
    refresh, shared by both."""
    def compute():
        return common.df(store,
            f"WITH lengths AS ({example_lengths_sql(store, run)}) "
            "SELECT s.site, count(*) AS n_examples, sum(l.n) AS n_expected FROM "
            "(SELECT site, example FROM routes WHERE run = $run AND kind = 'expert' "
            " GROUP BY site, example) s JOIN lengths l USING (example) GROUP BY s.site",
            {"run": run})
    return common.memo(store, ("expected_tokens", run), compute).copy()


def route_examples(store, run: str) -> int:
    """Examples with a route of any kind (once per store refresh)."""
    return int(common.memo(store, ("route_examples", run), lambda: common.scalar(
        store, "SELECT count(DISTINCT example) FROM routes WHERE run = $run",
        {"run": run}) or 0))


def load_many(store, runs) -> dict:
    """{run: load(store, run)} for several runs (a series' steps) with the same three
    queries, each grouped by run as well."""
    from routeviz.metrics import _batch

    runs = list(runs)
    store.facts_many(runs)
    for run in runs:
        common.require_kind(store, run, "expert", allowed=("expert",))
    p = _batch.run_params(store, runs)
    counts = common.df(store,
        "SELECT run, site, choice AS expert, count(*) AS count, "
        "count(*) FILTER (WHERE rank = 0) AS n_top, bool_and(token = -1) AS per_example "
        "FROM routes WHERE list_contains($runs, run) AND kind = 'expert' "
        "GROUP BY run, site, choice", p)
    expected = common.df(store,
        f"WITH lengths AS ({_batch.lengths_sql()}) "
        "SELECT s.run, s.site, count(*) AS n_examples, sum(l.n) AS n_expected FROM "
        "(SELECT run, site, example FROM routes WHERE list_contains($runs, run) AND "
        " kind = 'expert' GROUP BY run, site, example) s JOIN lengths l USING (run, example) "
        "GROUP BY s.run, s.site", p)
    n_examples = common.df(store,
        "SELECT run, count(DISTINCT example) AS n FROM routes WHERE list_contains($runs, run) "
        "GROUP BY run", p)
    n_examples = dict(zip(n_examples.run.astype(str), n_examples.n))
    counts, expected = split_runs(counts, runs), split_runs(expected, runs)
    return {run: _load_result(store, run, counts[run], expected[run],
                              n_examples.get(run, 0) or 0) for run in runs}


def _load_result(store, run, counts, expected, n_run_examples) -> LoadResult:
    """The frames of `load` from its three queries' results (numpy per site).
    n_run_examples: the run's examples with a route, or a function giving them (called
    only for a per-example site: a count over every route the other runs never need)."""
    sites = common.sites_of(store, run, "expert")
    n_experts = common.n_experts_by_site(store, run, sites.site)
    count_site = counts.site.astype(str).to_numpy()
    count_expert = counts.expert.to_numpy(dtype="int64")
    count_n = counts["count"].to_numpy(dtype="int64")
    count_top = counts.n_top.to_numpy(dtype="int64")
    count_per_example = counts.per_example.to_numpy(dtype=bool)
    expected_of = dict(zip(expected.site.astype(str), expected.n_expected))

    expert_rows = []
    site_rows = []
    for site, layer in zip(sites.site, sites.layer):
        mine = count_site == site
        experts = count_expert[mine]
        size = max(n_experts[site], int(experts.max()) + 1 if len(experts) else 0)
        count = np.zeros(size, dtype="int64")  # never-chosen experts count 0
        count[experts] = count_n[mine]
        n_tokens = int(count_top[mine].sum())
        n_assign = int(count.sum())
        token_fraction = count / n_tokens if n_tokens else np.zeros(size)
        starved = token_fraction < STARVED
        expert_rows.append(pd.DataFrame({
            "site": site, "layer": int(layer), "expert": np.arange(size, dtype="int64"),
            "count": count, "share": count / n_assign if n_assign else np.zeros(size),
            "token_fraction": token_fraction, "starved": starved}))
        c = count.astype("float64")
        mean = c.mean() if len(c) else 0.0
        per_example = bool(count_per_example[mine].all())
        if per_example and callable(n_run_examples):  # only a per-example site reads it
            n_run_examples = n_run_examples()
        n_expected = n_run_examples if per_example else (
            int(expected_of[site]) if site in expected_of else n_tokens)
        dropped = max(n_expected - n_tokens, 0)
        site_rows.append({
            "site": site, "layer": int(layer), "n_experts": size, "n_tokens": n_tokens,
            "n_assignments": n_assign, "cv": float(c.std() / mean) if mean else float("nan"),
            "max_over_mean": float(c.max() / mean) if mean else float("nan"),
            "n_starved": int(starved.sum()),
            "starved": [int(x) for x in np.flatnonzero(starved)],
            "dropped_tokens": int(dropped),
            "dropped_fraction": dropped / n_expected if n_expected else 0.0,
        })
    experts = pd.concat(expert_rows, ignore_index=True) if expert_rows else pd.DataFrame(
        columns=["site", "layer", "expert", "count", "share", "token_fraction", "starved"])
    return LoadResult(sites=pd.DataFrame(site_rows), experts=experts)


def keep(store, run: str) -> KeepResult:
    """Kept fraction per keep site, tokens never discarded (no keep=0 row and never merged
    away), and merge-group sizes per merge site. A run without keep or merge routes raises."""
    run = common.require_run(store, run)
    recorded = common.kinds_recorded(store, run)
    if "keep" not in recorded and "merge" not in recorded:
        raise RoutevizError(f"run {run!r} has no 'keep' or 'merge' routes; it recorded: "
                            + (", ".join(recorded) or "(no routes at all)"))
    p = {"run": run}
    sites = common.df(store, 
        "SELECT site, min(layer) AS layer, count(*) AS n_seen, "
        "count(*) FILTER (WHERE choice = 1) AS n_kept FROM routes "
        "WHERE run = $run AND kind = 'keep' GROUP BY site ORDER BY layer, site", p)
    sites["kept_fraction"] = (sites.n_kept / sites.n_seen).astype("float64")
    n_tokens = int(common.scalar(store, f"SELECT coalesce(sum(n), 0) FROM "
                                        f"({example_lengths_sql(store, run)})",
                                 p) or 0)
    discarded = int(common.scalar(
        store, "SELECT count(*) FROM (SELECT DISTINCT example, token FROM routes WHERE "
               "run = $run AND token >= 0 AND ((kind = 'keep' AND choice = 0) OR "
               "kind = 'merge')) d", p) or 0)
    kept = max(n_tokens - discarded, 0)
    tokens = pd.DataFrame([{"n_tokens": n_tokens, "n_never_discarded": kept,
                            "never_discarded_fraction": kept / n_tokens if n_tokens else 0.0}])
    merges = common.df(store, 
        "SELECT site, layer, group_size, count(*) AS n_groups FROM ("
        "  SELECT site, min(layer) AS layer, example, choice, count(*) + 1 AS group_size "
        "  FROM routes WHERE run = $run AND kind = 'merge' GROUP BY site, example, choice"
        ") GROUP BY site, layer, group_size ORDER BY layer, site, group_size", p)
    return KeepResult(sites=sites, tokens=tokens, merges=merges)
