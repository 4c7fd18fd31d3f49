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
from routeviz.metrics.focus_cover import all_tag_values
from routeviz.metrics.tag_families import content_families
from routeviz.metrics.unit_counts import run_tags, unit_counts_ranked, unit_counts_read

ALPHA = 0.05
MIN_COUNT = 5
MIN_LIFT = 1.5
LEVEL = 0.95  # the chance band's central mass
LABEL_VALUES = 3  # tag values named in a label at most
NO_LABEL = "no tag beyond chance"
SMALL_RUN = 100_000  # expert route rows up to which counts are read into pandas, not SQL

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


def family_stats(tags: pd.DataFrame) -> pd.DataFrame:
    """store.tag_family_stats(run) from the run's tag rows (unit_counts.run_tags)."""
    tags = tags[tags.name.notna()]
    grouped = tags.groupby("name", sort=True)
    return pd.DataFrame({"name": grouped.name.first().index.astype(str),
                         "n_values": grouped.value.nunique().to_numpy(dtype="int64"),
                         "n_examples": grouped.example.nunique().to_numpy(dtype="int64"),
                         "per_token": (grouped.token.max() >= 0).to_numpy(dtype=bool)})


def expert_unit(store, run: str) -> str:
    """"token" when any expert route is per token, else "example" (per-example routing)."""
    sites = store.facts(run).sites
    return "token" if (~sites[sites.kind == "expert"].per_example.astype(bool)).any() else "example"


def expert_rows(store, run: str) -> int:
    """The run's expert route rows (from its facts: no query)."""
    sites = store.facts(run).sites
    return int(sites[sites.kind == "expert"].n_rows.sum())


def tag_tests(store, run: str, site: str | None = None, tags=None,
              min_count: int = MIN_COUNT, alpha: float = ALPHA,
              min_lift: float = MIN_LIFT) -> TagTests:
    """Every (site, expert, tag value) of `run` tested against chance (module docstring)."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    site = common.require_site(store, run, site, "expert")
    small = expert_rows(store, run) <= SMALL_RUN  # e.g. the run one click on Inspect recorded
    recorded = run_tags(store, run) if small else None
    if tags:
        families, left_out = common.require_tags(store, run, tags), {}
    elif small:
        families, left_out = content_families(family_stats(recorded)) if len(recorded) \
            else ([], {})
    else:
        families, left_out = default_families(store, run)
    unit = expert_unit(store, run)
    result = TagTests(tests=pd.DataFrame(columns=COLUMNS), families=families,
                      left_out=left_out, unit=unit, alpha=alpha, min_count=int(min_count),
                      min_lift=float(min_lift))
    if not families:
        return result
    if small:
        counts = unit_counts_read(store, run, "expert", recorded, families, unit, site=site)
    else:
        values = all_tag_values(store, run, families)
        counts = coded_counts(*unit_counts_ranked(store, run, "expert", values, unit, site=site))
    tests, m = _tests_frame(counts, result)
    result.m = m
    if len(tests):
        result.tests = tests.sort_values(
            ["site", "expert", "beyond_chance", "lift", "count", "family", "value"],
            ascending=[True, True, False, False, False, True, True]).reset_index(drop=True)
    return result


def coded_counts(routed: dict, first: dict) -> dict:
    """unit_counts' frames (routed: any rank, first: top-1) coded as unit_counts_read's."""
    def strings(column) -> np.ndarray:
        return column.astype(str).to_numpy(dtype=object)

    frames = (routed, first)
    sites = np.unique(np.concatenate([strings(f["active"].site) for f in frames]))
    name_of = [strings(f["both"].name) for f in frames]
    text_of = [strings(f["both"].value) for f in frames]
    names, texts = np.unique(np.concatenate(name_of)), np.unique(np.concatenate(text_of))
    width = max(len(texts), 1)
    pair_of = [np.searchsorted(names, n) * width + np.searchsorted(texts, t)
               for n, t in zip(name_of, text_of)]
    pairs = np.unique(np.concatenate(pair_of))
    out = {"sites": sites, "names": names[pairs // width], "values": texts[pairs % width]}
    for part, frame, pair in (("routed", routed, pair_of[0]), ("first", first, pair_of[1])):
        active, both = frame["active"], frame["both"]
        out[part] = {
            "active": (np.searchsorted(sites, strings(active.site)),
                       active.choice.to_numpy(dtype="int64"),
                       active.n_active.to_numpy(dtype="int64")),
            "both": (np.searchsorted(sites, strings(both.site)),
                     both.choice.to_numpy(dtype="int64"), np.searchsorted(pairs, pair),
                     both.n_both.to_numpy(dtype="int64"))}
    return out


def _tests_frame(counts: dict, result: TagTests) -> tuple[pd.DataFrame, dict]:
    """The tests of every site with top-1 routes: every expert it routed to (any rank) ×
    every value its top-1 units carry (COLUMNS, unsorted), and {site: m}. counts: coded
    as unit_counts.unit_counts_read gives them."""
    from scipy.stats import hypergeom

    sites, n_sites, n_values = counts["sites"], len(counts["sites"]), len(counts["values"])
    top_site, _, top_n = counts["first"]["active"]
    units = np.zeros(n_sites, dtype="int64")  # N per site: its top-1 units
    np.add.at(units, top_site, top_n)
    tested = np.zeros(n_sites, dtype=bool)
    tested[top_site] = True
    b_site, _, b_value, b_n = counts["first"]["both"]  # K per (site, value), sorted
    (v_site, v_value), v_inverse = (np.unique(np.stack([b_site, b_value]), axis=1,
                                              return_inverse=True)
                                    if len(b_site) else ((b_site, b_value), b_site))
    v_n = np.zeros(len(v_site), dtype="int64")
    np.add.at(v_n, v_inverse.ravel(), b_n)
    e_site, e_expert, e_n = counts["routed"]["active"]
    keep = tested[e_site]
    e_site, e_expert, e_n = e_site[keep], e_expert[keep], e_n[keep]
    begin = np.searchsorted(v_site, e_site, side="left")  # the site's values: begin..end-1
    width = np.searchsorted(v_site, e_site, side="right") - begin
    row = np.repeat(np.arange(len(e_site)), width)  # [tests]: expert row × its site's values
    value_row = np.repeat(begin, width) + np.arange(len(row)) - np.repeat(
        np.cumsum(width) - width, width)
    site, expert, value = e_site[row], e_expert[row], v_value[value_row]
    experts = int(max(e_expert.max(initial=0), counts["routed"]["both"][1].max(initial=0))) + 1
    c_site, c_expert, c_value, c_n = counts["routed"]["both"]
    c_key = (c_site * experts + c_expert) * n_values + c_value
    order = np.argsort(c_key, kind="stable")
    c_key, c_n = c_key[order], c_n[order]
    key = (site * experts + expert) * n_values + value
    at = np.minimum(np.searchsorted(c_key, key), max(len(c_key) - 1, 0))
    count = np.where((len(c_key) > 0) & (c_key[at] == key), c_n[at] if len(c_n) else 0, 0)
    count = count.astype("int64")
    per_site = np.zeros(n_sites, dtype="int64")
    np.add.at(per_site, site, 1)
    m = {str(sites[i]): int(per_site[i]) for i in np.flatnonzero(tested)}
    n_units = units[site]
    n_expert = e_n[row]
    n_value = v_n[value_row]
    share = count / np.maximum(n_expert, 1)
    chance = n_value / np.maximum(n_units, 1)
    lift = np.divide(share, chance, out=np.zeros(len(row)), where=chance > 0)
    # n_expert can exceed n_units by a hair where top-1 and any-rank unit sets differ
    draws = np.minimum(n_expert, n_units)
    low, high = hypergeom_ppf([(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2], n_units, n_value, draws)
    chance_hi = high / np.maximum(draws, 1)
    p_value = hypergeom.sf(count - 1, n_units, n_value, draws) if len(row) else np.zeros(0)
    beyond = ((count >= result.min_count)
              & (p_value < result.alpha / np.maximum(per_site[site], 1))
              & (lift >= result.min_lift) & (share > chance_hi))
    frame = pd.DataFrame({
        "site": sites[site], "expert": expert.astype("int64"),
        "family": counts["names"][value], "value": counts["values"][value], "count": count,
        "n_expert": n_expert, "n_value": n_value, "n_units": n_units, "share": share,
        "chance": chance, "chance_lo": low / np.maximum(draws, 1), "chance_hi": chance_hi,
        "lift": lift, "p_value": p_value, "beyond_chance": beyond}, columns=COLUMNS)
    return frame, m


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
