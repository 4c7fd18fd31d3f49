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
from routeviz.metrics import _pairs

# the run's expert routes as `coactivation` and `consecutive` both read them (site, token,
# u = common.unit_key(), choice, rank); `read_routes` reads them with the site's position
EXPERT_ROUTES = ("SELECT site, token, " + common.unit_key() + " AS u, choice, rank "
                 "FROM routes WHERE run = $run AND kind = 'expert'{sample}")


def read_routes(store, run: str, sample: str = "") -> pd.DataFrame:
    """The run's expert routes (a seeded example sample where `sample`, an SQL condition on
    `example`, is given) as arrays for `coactivation` and `consecutive`: idx (the site's
    position in model order, `common.sites_of`), token, u (`common.unit_key`), choice,
    rank. Read once, the two count them in numpy (`_pairs`)."""
    names = common.sites_of(store, run, "expert").site.tolist()
    order = pd.DataFrame({"site": names, "idx": np.arange(len(names), dtype="int64")})
    read = EXPERT_ROUTES.format(sample=f" AND ({sample})" if sample else "")
    with common.temp_view(store, order) as indexed:
        return common.df(store, f"SELECT i.idx, x.token, x.u, x.choice, x.rank FROM ({read}) x "
                         f"JOIN {indexed} i ON i.site = x.site", {"run": run})


@dataclass
class CoactivationResult:
    within: pd.DataFrame  # site, a, b, n_a, n_ab, p_b_given_a, p_b, lift
    across: pd.DataFrame  # from_site, to_site, a, b, n_a, n_ab, p_b_given_a, p_b, lift
    sites: pd.DataFrame  # scope ("within"/"across"), site, to_site, n_units, top_conditional, chance


def coactivation(store, run: str, sample: str = "", routes: pd.DataFrame | None = None
                 ) -> CoactivationResult:
    """sample: an SQL condition on `example` (`_sample.example_sample`) to read a sample of
    examples on large runs. routes: instead, the run's (sampled) expert routes already read
    (`read_routes`), shared with `consecutive`."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    names = common.sites_of(store, run, "expert").site.tolist()  # idx order
    if routes is None:
        routes = read_routes(store, run, sample)
    load, within, across = _counts(routes)
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


def _counts(routes: pd.DataFrame) -> tuple:
    """Per (site, expert): choices and top choices; pairs within a site; pairs across
    consecutive sites. routes: `read_routes` (idx, u, choice, rank). The same counts as
    the SQL self-joins on (idx, u) they replace (tests/test_metrics_pairs.py keeps them)."""
    idx = routes.idx.to_numpy(dtype="int64")
    choice = routes.choice.to_numpy()
    top = routes["rank"].to_numpy() == 0
    l_idx, l_choice, n_choice = _pairs.tally((idx, choice))
    n_top = _pairs.tally((idx, choice), weights=top.astype("float64"), keep_zero=True)[2]
    load = pd.DataFrame({"idx": l_idx, "choice": l_choice.astype(choice.dtype),
                         "n_choice": n_choice, "n_top": n_top})
    groups = _pairs.Groups(routes.u.to_numpy(dtype="int64"), idx)  # (unit, site) sorted
    s_idx, s_choice, s_top = idx[groups.order], choice[groups.order], top[groups.order]
    i, j = _pairs.cross(groups.start, groups.size, groups.start, groups.size)
    differ = s_choice[i] != s_choice[j]
    i, j = i[differ], j[differ]
    w_idx, w_a, w_b, w_n = _pairs.tally((s_idx[i], s_choice[i], s_choice[j]))
    within = pd.DataFrame({"idx": w_idx, "a": w_a.astype(choice.dtype),
                           "b": w_b.astype(choice.dtype), "n_ab": w_n})
    g, h = groups.follows()  # the unit's group at site idx + 1
    i, j = _pairs.cross(groups.start[g], groups.size[g], groups.start[h], groups.size[h])
    p_idx, p_a, p_b, p_n = _pairs.tally((s_idx[i], s_choice[i], s_choice[j]))
    # n_a: rows at idx times the unit's rank-0 rows at idx + 1 (a join's multiplicity)
    n_first = (np.add.reduceat(s_top.astype("int64"), groups.start)
               if len(groups.start) else np.zeros(0, dtype="int64"))
    successor = np.full(len(groups.start), -1, dtype="int64")
    successor[g] = h
    of_row = successor[groups.of_row()]
    rows = np.flatnonzero(of_row >= 0)
    a_idx, a_a, a_n = _pairs.tally((s_idx[rows], s_choice[rows]),
                                   weights=n_first[of_row[rows]].astype("float64"))
    pairs = pd.DataFrame({"idx": p_idx, "a": p_a.astype(choice.dtype),
                          "b": p_b.astype(choice.dtype), "n_ab": p_n})
    starts = pd.DataFrame({"idx": a_idx, "a": a_a.astype(choice.dtype), "n_a": a_n})
    across = pairs.merge(starts, on=["idx", "a"])
    return load, within, across


def _summaries(pairs: pd.DataFrame, load: pd.DataFrame, names: list, scope: str) -> pd.DataFrame:
    """top_conditional and its chance value per site (within) or site pair (across): the
    best P(b | a) per (site, a) in one grouping, the chances per site from its load in numpy
    (a site with 16 experts, 30 sites: ~500 pandas selections before, ~1.6 s of a first
    visit to Experts on a 1,000-example run)."""
    step = 1 if scope == "across" else 0
    best = (pairs.groupby(["idx", "a"], sort=True)
            .agg(best=("p_b_given_a", "max"), n_a=("n_a", "first")).reset_index())
    best_idx, best_a = best.idx.to_numpy(), best.a.to_numpy()
    best_p, best_n = best.best.to_numpy(), best.n_a.to_numpy()
    load_idx, load_p = load.idx.to_numpy(), load.p
    load_choice, load_top = load.choice.to_numpy(), load.n_top.to_numpy()
    rows = []
    for idx in range(len(names) - step):
        row = {"scope": scope, "site": names[idx],
               "to_site": names[idx + step] if step else None,
               "n_units": int(load_top[load_idx == idx].sum()), "top_conditional": None,
               "chance": None}
        here = best_idx == idx
        if here.any():
            weights = best_n[here]
            row["top_conditional"] = float(np.average(best_p[here], weights=weights))
            at = load_idx == idx + step
            chance = _best_chances(load_p[at], load_choice[at], best_a[here], step)
            row["chance"] = float(np.average(chance, weights=weights))
        rows.append(row)
    return pd.DataFrame(rows, columns=["scope", "site", "to_site", "n_units", "top_conditional",
                                       "chance"])


def _best_chances(p: pd.Series, choice: np.ndarray, a: np.ndarray, step: int) -> np.ndarray:
    """For each expert a: max over b of the chance P(b | a), from the load p (one row per
    choice) at the next site (across: max q_b), or at a's site (within: (k − 1) · q_b /
    (k − q_a) over b ≠ a, k = Σ q rounded, 0 where no other expert or k ≤ q_a)."""
    q = p.to_numpy(dtype="float64")
    if step:
        return np.full(len(a), float(q.max()) if len(q) else 0.0)
    if not len(q):
        return np.zeros(len(a))
    k = max(round(float(p.sum())), 1)
    # max of q without row j: the larger of the maxima before and after it
    before = np.concatenate([[-np.inf], np.maximum.accumulate(q)[:-1]])
    after = np.concatenate([np.maximum.accumulate(q[::-1])[::-1][1:], [-np.inf]])
    row = {int(c): j for j, c in enumerate(choice)}
    j = np.array([row.get(int(x), -1) for x in a])
    present = j >= 0
    q_a = np.where(present, q[np.where(present, j, 0)], 0.0)
    others = np.where(present, np.maximum(before[np.where(present, j, 0)],
                                          after[np.where(present, j, 0)]), q.max())
    n_others = len(q) - present
    ok = (n_others > 0) & (k > q_a)
    return np.where(ok, (k - 1) * np.where(ok, others, 0.0) / np.where(ok, k - q_a, 1.0), 0.0)
