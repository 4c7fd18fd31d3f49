"""Expert co-activation (OLMoE §5): how often expert b is chosen when expert a is.

within  at one site: P(b | a) = units that chose both a and b (any rank) / units that chose a,
        for a ≠ b; chance = (k − 1) · q_b / (k − q_a), q_e = the fraction of the site's units
        that chose e (Σ q_e = k, the ranks recorded): with a holding one of the k slots, the
        other k − 1 go to the remaining experts in proportion to the load (uniform load:
        (k − 1) / (E − 1)). P(b), the load alone, would overstate it: b cannot be a.
across  between consecutive expert sites s → s+1 (model order): P(b at s+1 | a at s) over
        the units present at both; chance = P(b) at s+1.
Per site (or site pair) one summary: top_conditional = mean over a (weighted by the units
that chose a) of max_b P(b | a) — how predictable a's partner is — and its chance value,
the same mean of max_b of the chance P(b | a). Units: tokens (example · 2^24 + token)
or examples for per-example routes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from routeviz.metrics import _common as common

# expert routes with their site's position in model order (idx, from a view of the sites
# in order) and one integer unit key; read from the route files once, into a temporary
# table the three counts share
_ROUTES = """
SELECT i.idx, """ + common.unit_key("x.example", "x.token") + """ AS u, x.choice, x.rank
FROM routes x JOIN {indexed} i ON i.site = x.site
WHERE x.run = $run AND x.kind = 'expert'{sample}"""

# the run's expert routes as `coactivation` and `consecutive` both read them (site, token,
# u = common.unit_key(), choice, rank), for a temporary view the two share
EXPERT_ROUTES = ("SELECT site, token, " + common.unit_key() + " AS u, choice, rank "
                 "FROM routes WHERE run = $run AND kind = 'expert'{sample}")


@dataclass
class CoactivationResult:
    within: pd.DataFrame  # site, a, b, n_a, n_ab, p_b_given_a, p_b, lift
    across: pd.DataFrame  # from_site, to_site, a, b, n_a, n_ab, p_b_given_a, p_b, lift
    sites: pd.DataFrame  # scope ("within"/"across"), site, to_site, n_units, top_conditional, chance


def coactivation(store, run: str, sample: str = "", routes: str | None = None
                 ) -> CoactivationResult:
    """sample: an SQL condition on `example` (`_sample.example_sample`) to read a sample of
    examples on large runs. routes: instead, a view of the run's (sampled) expert routes
    already read (`expert_routes`), shared with `consecutive`."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    p = {"run": run}
    names = common.sites_of(store, run, "expert").site.tolist()  # idx order
    order = pd.DataFrame({"site": names, "idx": np.arange(len(names), dtype="int64")})
    with common.temp_view(store, order) as indexed:
        if routes is not None:
            load, within, across = _counts(store, "r AS (SELECT i.idx, x.u, x.choice, x.rank "
                                                  f"FROM {routes} x JOIN {indexed} i "
                                                  "ON i.site = x.site)")
        else:
            sampled = _ROUTES.format(indexed=indexed,
                                     sample=f" AND ({sample})" if sample else "")
            with common.temp_view(store, sampled, p) as table:
                load, within, across = _counts(store, f"r AS (SELECT * FROM {table})")
    n_units = load.groupby("idx").n_top.sum()
    load["p"] = load.n_choice / load.idx.map(n_units)
    within = within.merge(load[["idx", "choice", "n_choice"]].rename(
        columns={"choice": "a", "n_choice": "n_a"}), on=["idx", "a"])
    within = within.merge(load[["idx", "choice", "p"]].rename(
        columns={"choice": "b", "p": "q_b"}), on=["idx", "b"])
    within = within.merge(load[["idx", "choice", "p"]].rename(
        columns={"choice": "a", "p": "q_a"}), on=["idx", "a"])
    k = load.groupby("idx").p.sum().round().clip(lower=1)
    within["p_b"] = (within.idx.map(k) - 1) * within.q_b / (within.idx.map(k) - within.q_a)
    next_load = load[["idx", "choice", "p"]].assign(idx=load.idx - 1)
    across = across.merge(next_load.rename(columns={"choice": "b", "p": "p_b"}), on=["idx", "b"])
    for frame in (within, across):
        frame["p_b_given_a"] = frame.n_ab / frame.n_a
        frame["lift"] = frame.p_b_given_a / frame.p_b
    sites = pd.concat([_summaries(within, load, names, "within"),
                       _summaries(across, load, names, "across")], ignore_index=True)
    within.insert(0, "site", within.pop("idx").map(dict(enumerate(names))))
    idx = across.pop("idx")
    across.insert(0, "from_site", idx.map(dict(enumerate(names))))
    across.insert(1, "to_site", (idx + 1).map(dict(enumerate(names))))
    order = ["n_a", "n_ab", "p_b_given_a", "p_b", "lift"]
    within = within[["site", "a", "b", *order]].sort_values(["site", "a", "b"])
    across = across[["from_site", "to_site", "a", "b", *order]].sort_values(
        ["from_site", "a", "b"])
    return CoactivationResult(within=within.reset_index(drop=True),
                              across=across.reset_index(drop=True), sites=sites)


def _counts(store, routes: str) -> tuple:
    """Per (site, expert): choices and top choices; pairs within a site; pairs across
    consecutive sites. routes: the CTE `r` (idx, u, choice, rank)."""
    p = {}
    load = common.df(store,
        f"WITH {routes} SELECT idx, choice, count(*) AS n_choice, "
        "sum(CASE WHEN rank = 0 THEN 1 ELSE 0 END) AS n_top FROM r GROUP BY idx, choice", p)
    within = common.df(store,
        f"WITH {routes} SELECT a.idx, a.choice AS a, b.choice AS b, count(*) AS n_ab "
        "FROM r a JOIN r b ON b.idx = a.idx AND b.u = a.u AND b.choice <> a.choice "
        "GROUP BY a.idx, a.choice, b.choice", p)
    across = common.df(store,
        f"WITH {routes}, present AS (SELECT idx, u FROM r WHERE rank = 0), "
        "pairs AS (SELECT a.idx, a.choice AS a, b.choice AS b, count(*) AS n_ab "
        "  FROM r a JOIN r b ON b.idx = a.idx + 1 AND b.u = a.u GROUP BY a.idx, a.choice, b.choice), "
        "starts AS (SELECT a.idx, a.choice AS a, count(*) AS n_a FROM r a "
        "  JOIN present n ON n.idx = a.idx + 1 AND n.u = a.u GROUP BY a.idx, a.choice) "
        "SELECT pairs.idx, pairs.a, pairs.b, pairs.n_ab, starts.n_a FROM pairs "
        "JOIN starts ON starts.idx = pairs.idx AND starts.a = pairs.a", p)
    return load, within, across


def _summaries(pairs: pd.DataFrame, load: pd.DataFrame, names: list, scope: str) -> pd.DataFrame:
    """top_conditional and its chance value per site (within) or site pair (across)."""
    step = 1 if scope == "across" else 0
    rows = []
    for idx in range(len(names) - step):
        here = pairs[pairs.idx == idx]
        targets = load[load.idx == idx + step]
        row = {"scope": scope, "site": names[idx],
               "to_site": names[idx + step] if step else None,
               "n_units": int(load.n_top[load.idx == idx].sum()), "top_conditional": None, "chance": None}
        if len(here):
            best = here.groupby("a").agg(best=("p_b_given_a", "max"), n_a=("n_a", "first"))
            row["top_conditional"] = float(np.average(best.best, weights=best.n_a))
            chance = [_best_chance(targets, a, step) for a in best.index]
            row["chance"] = float(np.average(chance, weights=best.n_a))
        rows.append(row)
    return pd.DataFrame(rows, columns=["scope", "site", "to_site", "n_units", "top_conditional",
                                       "chance"])


def _best_chance(targets: pd.DataFrame, a: int, step: int) -> float:
    """max over b of the chance P(b | a): q_b at the next site (across), or
    (k − 1) · q_b / (k − q_a) over b ≠ a (within)."""
    if step:
        return float(targets.p.max()) if len(targets) else 0.0
    k = max(round(float(targets.p.sum())), 1)
    q_a = float(targets.p[targets.choice == a].sum())
    others = targets.p[targets.choice != a]
    return float((k - 1) * others.max() / (k - q_a)) if len(others) and k > q_a else 0.0
