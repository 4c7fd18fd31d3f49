"""Consecutive tokens routed to the same expert, against the rate the load alone would give.

Per expert site, over pairs of neighbouring tokens (t, t+1) of one example that both have a
top choice there:
  top-1  rate = share of pairs whose top-1 experts are equal;
         chance = sum_e s_e², s_e = share of the site's top-1 choices that went to e
         (the rate if tokens picked experts independently with the observed load);
  top-k  rate = mean |S_t ∩ S_t+1| / k (S = the experts chosen at any rank, k = ranks the
         site records); chance = sum_e q_e² / k, q_e = fraction of the site's tokens that
         chose e at any rank (Σ q_e = k, so top-k with k = 1 is the top-1 rate).
Alternating experts give 0, a router that always picks one expert gives 1 (chance 1 too).
Pooled ("*"): rates and chances weighted by each site's number of pairs.
"""

from __future__ import annotations

import pandas as pd

from routeviz.metrics import _common as common
from routeviz.metrics._pooled import pooled

# every expert route of a token as (site, unit key, choice, rank); unit = common.unit_key();
# read from the route files once, into a temporary table the three counts share
_ROUTES = ("SELECT site, " + common.unit_key() + " AS u, choice, rank FROM routes "
           "WHERE run = $run AND kind = 'expert' AND token >= 0{sample}")


def consecutive(store, run: str, sample: str = "", routes: str | None = None) -> pd.DataFrame:
    """One row per expert site, then "*": site, k, n_pairs, top1_rate, top1_chance,
    topk_rate, topk_chance. sample: an SQL condition on `example` (`_sample.example_sample`)
    to read a sample of examples on large runs. routes: instead, a view of the run's
    (sampled) expert routes already read (`coactivation.EXPERT_ROUTES`)."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    p = {"run": run}
    if routes is not None:
        pairs, shared, per_expert = _counts(store, "r AS (SELECT site, u, choice, rank "
                                                   f"FROM {routes} WHERE token >= 0)")
    else:
        sampled = _ROUTES.format(sample=f" AND ({sample})" if sample else "")
        with common.temp_view(store, sampled, p) as table:
            pairs, shared, per_expert = _counts(store, f"r AS (SELECT * FROM {table})")
    sites = common.sites_of(store, run, "expert")
    rows = []
    for site in sites.site:
        per = per_expert[per_expert.site == site]
        n_units = float(per.n_top.sum())
        k = int(per.k.max()) if len(per) else 1
        pair = pairs[pairs.site == site]
        n_pairs = int(pair.n_pairs.iloc[0]) if len(pair) else 0
        n_same = int(pair.n_same.iloc[0]) if len(pair) else 0
        same_k = shared[shared.site == site]
        n_shared = int(same_k.n_shared.iloc[0]) if len(same_k) else 0
        rows.append({
            "site": site, "k": k, "n_pairs": n_pairs,
            "top1_rate": n_same / n_pairs if n_pairs else None,
            "top1_chance": float(((per.n_top / n_units) ** 2).sum()) if n_units else None,
            "topk_rate": n_shared / (n_pairs * k) if n_pairs else None,
            "topk_chance": float(((per.n_any / n_units) ** 2).sum() / k) if n_units else None,
        })
    out = pd.DataFrame(rows, columns=["site", "k", "n_pairs", "top1_rate", "top1_chance",
                                      "topk_rate", "topk_chance"])
    return pd.concat([pooled(out, "n_pairs", ["top1_rate", "top1_chance", "topk_rate",
                                              "topk_chance"], k=None), out],
                     ignore_index=True)


def _counts(store, routes: str) -> tuple:
    """Neighbouring top-1 pairs and equal ones, neighbours sharing an expert at any rank,
    and choices per (site, expert). routes: the CTE `r` (site, u, choice, rank)."""
    p = {}
    pairs = common.df(store,
        f"WITH {routes}, top AS (SELECT site, u, choice FROM r WHERE rank = 0) "
        "SELECT a.site, count(*) AS n_pairs, "
        "sum(CASE WHEN a.choice = b.choice THEN 1 ELSE 0 END) AS n_same "
        "FROM top a JOIN top b ON b.site = a.site AND b.u = a.u + 1 GROUP BY a.site", p)
    shared = common.df(store,
        f"WITH {routes} SELECT a.site, count(*) AS n_shared FROM r a "
        "JOIN r b ON b.site = a.site AND b.u = a.u + 1 AND b.choice = a.choice "
        "GROUP BY a.site", p)
    per_expert = common.df(store,
        f"WITH {routes} SELECT site, choice, count(*) AS n_any, "
        "sum(CASE WHEN rank = 0 THEN 1 ELSE 0 END) AS n_top, max(rank) + 1 AS k "
        "FROM r GROUP BY site, choice", p)
    return pairs, shared, per_expert
