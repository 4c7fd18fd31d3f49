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

import numpy as np
import pandas as pd

from routeviz.metrics import _common as common
from routeviz.metrics import _pairs
from routeviz.metrics._pooled import pooled
from routeviz.metrics.coactivation import read_routes


def consecutive(store, run: str, sample: str = "", routes: pd.DataFrame | None = None
                ) -> pd.DataFrame:
    """One row per expert site, then "*": site, k, n_pairs, top1_rate, top1_chance,
    topk_rate, topk_chance. sample: an SQL condition on `example` (`_sample.example_sample`)
    to read a sample of examples on large runs. routes: instead, the run's (sampled) expert
    routes already read (`coactivation.read_routes`), shared with `coactivation`."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    sites = common.sites_of(store, run, "expert")
    if routes is None:
        routes = read_routes(store, run, sample)
    pairs, shared, per_expert = _counts(routes, sites.site.tolist())
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


def _counts(routes: pd.DataFrame, names: list) -> tuple:
    """Neighbouring top-1 pairs and equal ones, neighbours sharing an expert at any rank,
    and choices per (site, expert), over the routes of tokens (token >= 0). routes:
    `coactivation.read_routes` (idx, token, u, choice, rank), names: the sites in idx
    order. The same counts as the SQL self-joins on (site, u, u + 1) they replace
    (tests/test_metrics_pairs.py keeps them)."""
    routes = routes[routes.token.to_numpy() >= 0]
    idx = routes.idx.to_numpy(dtype="int64")
    u = routes.u.to_numpy(dtype="int64")
    choice = routes.choice.to_numpy(dtype="int64")
    rank = routes["rank"].to_numpy(dtype="int64")
    top = rank == 0
    n_sites = len(names)
    # top-1: rank-0 rows of token t and of token t + 1 at one site
    t_idx, t_choice = idx[top], choice[top]
    groups = _pairs.Groups(t_idx, u[top])
    g, h = groups.follows()
    i, j = _pairs.cross(groups.start[g], groups.size[g], groups.start[h], groups.size[h])
    a_idx = t_idx[groups.order][i]
    same = t_choice[groups.order][i] == t_choice[groups.order][j]
    n_pairs = np.bincount(a_idx, minlength=n_sites)
    n_same = np.bincount(a_idx[same], minlength=n_sites)
    # any rank: rows of t and t + 1 that chose the same expert
    groups = _pairs.Groups(idx, u)
    g, h = groups.follows()
    i, j = _pairs.cross(groups.start[g], groups.size[g], groups.start[h], groups.size[h])
    s_choice = choice[groups.order]
    equal = s_choice[i] == s_choice[j]
    n_shared = np.bincount(idx[groups.order][i][equal], minlength=n_sites)
    site = np.asarray(names, dtype=object)
    has_pairs = np.flatnonzero(n_pairs > 0)
    pairs = pd.DataFrame({"site": site[has_pairs], "n_pairs": n_pairs[has_pairs],
                          "n_same": n_same[has_pairs]})
    has_shared = np.flatnonzero(n_shared > 0)
    shared = pd.DataFrame({"site": site[has_shared], "n_shared": n_shared[has_shared]})
    e_idx, e_choice, n_any = _pairs.tally((idx, choice))
    n_top = _pairs.tally((idx, choice), weights=top.astype("float64"), keep_zero=True)[2]
    # k = the largest rank + 1 of each (site, expert): the last rank of the rows sorted by
    # (idx, choice, rank)
    last = np.lexsort((rank, choice, idx))[np.cumsum(n_any) - 1] if len(n_any) else []
    per_expert = pd.DataFrame({"site": site[e_idx], "choice": e_choice, "n_any": n_any,
                               "n_top": n_top, "k": rank[last] + 1})
    return pairs, shared, per_expert
