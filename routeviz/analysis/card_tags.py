"""The label of an expert card: the tag values an expert takes beyond chance.

For an expert e at site s and a tag value v (family=value), over the units (tokens, or
examples for per-example routing) that reached s (have a top choice there):

    N      units at s;  K = those carrying v;  n = units routed to e (any rank);
    count  units routed to e that carry v;   share = count / n = P(v | e)
    chance K / N = P(v), the share a router blind to v would give;  lift = share / chance

Chance is the permutation band Focus/Cover use (routeviz.metrics.baseline): tag sets
shuffled across units, tag counts and routing kept. Under that shuffle `count` is
hypergeometric (n draws from N units of which K carry v), so the band and the tail are
exact, the limit of infinitely many shuffles: chance_lo/chance_hi are its central
95% interval of the share and p_value = P(count or more by shuffling alone). A value is
beyond chance when all of
  - count >= min_count (5): a handful of units says nothing;
  - p_value < alpha / m (Bonferroni, alpha 0.05): m = every (expert, tag value) test made
    at the site, so a site's cards claim a false label with probability under 5% in all;
  - lift >= min_lift (1.5): significant on many units yet barely above chance is no label.
The families are the content families (routeviz.metrics.tag_families: provenance such as
`source` is left out, as Focus/Cover leave it out) unless named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from routeviz.metrics import _common as common
from routeviz.metrics.focus_cover import _has, all_tag_values
from routeviz.metrics.tag_families import content_families
from routeviz.metrics.unit_counts import unit_counts

ALPHA = 0.05
MIN_COUNT = 5
MIN_LIFT = 1.5
LEVEL = 0.95  # the chance band's central mass
LABEL_VALUES = 3  # tag values named in a label at most
NO_LABEL = "no tag beyond chance"

COLUMNS = ["site", "expert", "family", "value", "count", "n_expert", "n_value", "n_units",
           "share", "chance", "chance_lo", "chance_hi", "lift", "p_value", "beyond_chance"]


@dataclass
class TagTests:
    """tests: one row per (site, expert, tag value) tested (COLUMNS), strongest first within
    an expert: beyond chance, then lift. m: tests made per site."""

    tests: pd.DataFrame
    families: list
    left_out: dict
    unit: str
    m: dict = field(default_factory=dict)
    alpha: float = ALPHA
    min_count: int = MIN_COUNT
    min_lift: float = MIN_LIFT

    def rule(self, site: str | None = None) -> dict:
        """The test as a card states it (for one site: its m and threshold)."""
        out = {"method": "exact permutation test: tag values shuffled across the units that "
                         "reached the site (hypergeometric tail)",
               "correction": "bonferroni", "alpha": self.alpha, "min_count": self.min_count,
               "min_lift": self.min_lift, "level": LEVEL, "unit": self.unit,
               "families": list(self.families), "left_out": dict(self.left_out)}
        if site is not None:
            m = int(self.m.get(site, 0))
            out.update(m=m, threshold=self.alpha / m if m else None)
        return out

    def of(self, site: str, expert: int) -> pd.DataFrame:
        t = self.tests
        return t[(t.site == site) & (t.expert == int(expert))]

    def labels(self) -> dict:
        """{(site, expert): label} for every expert tested: label_of each expert's rows, in
        one pass (tests are strongest first within an expert, as label_of orders them)."""
        t = self.tests
        sites, experts = t.site.astype(str).to_numpy(), t.expert.to_numpy(dtype="int64")
        out = dict.fromkeys(zip(sites.tolist(), experts.tolist()), NO_LABEL)
        strong = np.flatnonzero(t.beyond_chance.to_numpy(dtype=bool))
        families, values = t.family.to_numpy(), t.value.to_numpy()
        lifts = t.lift.to_numpy(dtype=float)
        named: dict = {}
        for i in strong.tolist():
            key = (sites[i], int(experts[i]))
            parts = named.setdefault(key, [])
            if len(parts) < LABEL_VALUES:
                parts.append(f"{families[i]}={values[i]} · {lifts[i]:.1f}× chance")
        out.update({key: ", ".join(parts) for key, parts in named.items()})
        return out


def label_of(rows: pd.DataFrame) -> str:
    """`family=value · 4.1× chance` for the strongest values beyond chance, or NO_LABEL."""
    strong = rows[rows.beyond_chance.astype(bool)].sort_values(["lift", "count"],
                                                               ascending=False)
    if strong.empty:
        return NO_LABEL
    return ", ".join(f"{r.family}={r.value} · {r.lift:.1f}× chance"
                     for r in strong.head(LABEL_VALUES).itertuples(index=False))


def default_families(store, run: str) -> tuple[list, dict]:
    """(content families, {left-out family: why}) of the run's tags."""
    stats = store.tag_family_stats(run)
    if stats.empty:
        return [], {}
    return content_families(stats)


def expert_unit(store, run: str) -> str:
    """"token" when any expert route is per token, else "example" (per-example routing)."""
    return "token" if _has(store, "routes", run, "kind = 'expert' AND token >= 0") else "example"


def tag_tests(store, run: str, site: str | None = None, tags=None,
              min_count: int = MIN_COUNT, alpha: float = ALPHA,
              min_lift: float = MIN_LIFT) -> TagTests:
    """Every (site, expert, tag value) of `run` tested against chance (module docstring)."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    site = common.require_site(store, run, site, "expert")
    if tags:
        families, left_out = common.require_tags(store, run, tags), {}
    else:
        families, left_out = default_families(store, run)
    unit = expert_unit(store, run)
    result = TagTests(tests=pd.DataFrame(columns=COLUMNS), families=families,
                      left_out=left_out, unit=unit, alpha=alpha, min_count=int(min_count),
                      min_lift=float(min_lift))
    if not families:
        return result
    values = all_tag_values(store, run, families)
    routed = unit_counts(store, run, "expert", values, unit, top1=False, site=site)
    first = unit_counts(store, run, "expert", values, unit, top1=True, site=site)
    frames = []
    for s, top in first["active"].groupby("site"):
        frame = _site_tests(str(s), int(top.n_active.sum()),
                            first["both"][first["both"].site == s], routed, result)
        result.m[str(s)] = len(frame)
        frames.append(frame)
    if frames:
        tests = pd.concat(frames, ignore_index=True)
        result.tests = tests.sort_values(
            ["site", "expert", "beyond_chance", "lift", "count", "family", "value"],
            ascending=[True, True, False, False, False, True, True]).reset_index(drop=True)
    return result


def _site_tests(site: str, n_units: int, first_both: pd.DataFrame, routed: dict,
                result: TagTests) -> pd.DataFrame:
    """The tests of one site: every expert it routed to × every value its units carry."""
    from scipy.stats import hypergeom

    per_value = (first_both.groupby(["name", "value"], as_index=False).n_both.sum()
                 .rename(columns={"name": "family", "n_both": "n_value"}))
    active = routed["active"][routed["active"].site == site].rename(
        columns={"choice": "expert", "n_active": "n_expert"})
    grid = active[["expert", "n_expert"]].merge(per_value, how="cross")
    both = routed["both"][routed["both"].site == site].rename(
        columns={"choice": "expert", "name": "family", "n_both": "count"})
    grid = grid.merge(both[["expert", "family", "value", "count"]],
                      on=["expert", "family", "value"], how="left")
    grid["count"] = grid["count"].fillna(0).astype("int64")
    grid["site"], grid["n_units"] = site, n_units
    n_expert = grid.n_expert.to_numpy(dtype="int64")
    n_value = grid.n_value.to_numpy(dtype="int64")
    count = grid["count"].to_numpy(dtype="int64")
    grid["share"] = count / np.maximum(n_expert, 1)
    grid["chance"] = n_value / max(n_units, 1)
    grid["lift"] = np.divide(grid.share, grid.chance, out=np.zeros(len(grid)),
                             where=grid.chance.to_numpy() > 0)
    # n_expert can exceed n_units by a hair where top-1 and any-rank unit sets differ
    draws = np.minimum(n_expert, n_units)
    low, high = hypergeom_ppf([(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2], n_units, n_value, draws)
    grid["chance_lo"] = low / np.maximum(draws, 1)
    grid["chance_hi"] = high / np.maximum(draws, 1)
    grid["p_value"] = hypergeom.sf(count - 1, n_units, n_value, draws)
    m = len(grid)
    grid["beyond_chance"] = ((grid["count"] >= result.min_count)
                             & (grid.p_value < result.alpha / max(m, 1))
                             & (grid.lift >= result.min_lift) & (grid.share > grid.chance_hi))
    grid["expert"] = grid.expert.astype("int64")
    return grid[COLUMNS]


# The band: scipy's hypergeom.ppf bisects each cell with ~20 calls of boost's cdf (~150 µs
# each at 32,000 units: 40 s for a 500-example report). The same quantiles from one pass:
# every cell's pmf over mean ± SPAN_SD sd (+ SPAN_PAD) by the ratio recurrence
# pmf(k+1)/pmf(k) = (K-k)(n-k) / ((k+1)(N-K-n+k+1)), normalised by its own sum (the mass
# outside is below 1e-40), its cdf a cumulative sum: relative error ~1e-13. Where a cdf value
# lies within TIE of q, float rounding could decide the quantile, so scipy decides it.
SPAN_SD, SPAN_PAD = 16.0, 30
TIE = 1e-9
CELLS = 2_000_000  # pmf values held at once (cells × window)


def hypergeom_ppf(qs, n_units, n_value, draws) -> np.ndarray:
    """[len(qs), cells]: scipy.stats.hypergeom.ppf(q, n_units, n_value, draws) for each q in
    `qs` (in (0, 1)), equal to it (a test compares them), nan for invalid arguments as scipy
    gives. Cells sharing (N, K, n) are solved once."""
    qs = np.asarray(qs, dtype=float)
    total, good, drawn = (a.ravel() for a in np.broadcast_arrays(
        np.asarray(n_units, dtype="int64"), np.asarray(n_value, dtype="int64"),
        np.asarray(draws, dtype="int64")))
    out = np.full((len(qs), len(total)), np.nan)
    valid = (total > 0) & (good >= 0) & (drawn >= 0) & (good <= total) & (drawn <= total)
    if not valid.any():
        return out
    triples, inverse = np.unique(np.stack([total[valid], good[valid], drawn[valid]]),
                                 axis=1, return_inverse=True)
    solved = _unique_ppf(qs, *triples)  # [qs, triples]
    out[:, valid] = solved[:, inverse.ravel()]
    return out


def _unique_ppf(qs: np.ndarray, total, good, drawn) -> np.ndarray:
    lo = np.maximum(drawn + good - total, 0)  # the support: lo..hi
    hi = np.minimum(drawn, good)
    mean = drawn * good / total
    var = np.where(total > 1, mean * (total - good) / total * (total - drawn)
                   / np.maximum(total - 1, 1), 0.0)
    spread = SPAN_SD * np.sqrt(np.maximum(var, 0.0))
    start = np.maximum(lo, np.floor(mean - spread).astype("int64") - SPAN_PAD)
    stop = np.minimum(hi, np.ceil(mean + spread).astype("int64") + SPAN_PAD)  # inclusive
    width = stop - start + 1
    out = np.empty((len(qs), len(total)))
    order = np.argsort(width, kind="stable")
    begin = 0
    while begin < len(order):  # chunks of similar width, at most CELLS values each
        end = begin + 1
        while end < len(order) and (end + 1 - begin) * width[order[end]] <= CELLS:
            end += 1
        rows = order[begin:end]
        out[:, rows] = _window_ppf(qs, total[rows], good[rows], drawn[rows], start[rows],
                                   stop[rows], int(width[rows].max()))
        begin = end
    return out


def _window_ppf(qs, total, good, drawn, start, stop, width) -> np.ndarray:
    k = start[:, None] + np.arange(width)[None, :]  # [cells, window]
    step = k < stop[:, None]  # pmf(k) -> pmf(k + 1) inside the window
    safe = np.where(step, k, start[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = (np.log((good[:, None] - safe).astype(float))
                     + np.log((drawn[:, None] - safe).astype(float))
                     - np.log((safe + 1).astype(float))
                     - np.log((total - good - drawn)[:, None] + safe + 1.0))
    log_ratio = np.where(step, log_ratio, -np.inf)
    log_pmf = np.zeros(k.shape)
    np.cumsum(log_ratio[:, :-1], axis=1, out=log_pmf[:, 1:])  # log pmf(k) - log pmf(start)
    log_pmf -= log_pmf.max(axis=1, keepdims=True)
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    cdf /= cdf[:, -1:]
    rows = np.arange(len(total))
    out = np.empty((len(qs), len(total)))
    for i, q in enumerate(qs):
        place = (cdf < q).sum(axis=1)  # the first k with cdf(k) >= q
        at = cdf[rows, np.minimum(place, width - 1)]
        before = np.where(place > 0, cdf[rows, np.maximum(place - 1, 0)], 0.0)
        out[i] = start + place
        close = (np.abs(at - q) < TIE) | (np.abs(before - q) < TIE)
        if close.any():
            from scipy.stats import hypergeom

            out[i, close] = hypergeom.ppf(q, total[close], good[close], drawn[close])
    return out
