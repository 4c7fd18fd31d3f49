"""Focus/Cover and A_ij against chance: a permutation baseline and bootstrap intervals.

One SQL fetch (the `tagged` and `active` sets of `unit_counts.unit_sets`) gives two sparse
indicator matrices, unit × tag value (T) and unit × subnetwork (S); everything else is
numpy/scipy:
  permutation  the rows of T are shuffled across units (each unit keeps a whole tag set, so
               every tag count and every tag co-occurrence is preserved; routing and load
               are untouched) and Focus/Cover recomputed, `permutations` times;
               baseline = mean and the central `level` band of those scores;
  bootstrap    units resampled with replacement (`resamples` times), Focus/Cover recomputed;
               ci = the central `level` percentile interval shifted by the bootstrap bias
               (mean of the resampled scores − the observed one): duplicated units inflate
               a max of F1 scores, so the raw percentile interval sits above the estimate.
The units are those with a tag or an active subnetwork. Above `max_units` units, a seeded
hash sample of whole examples holding about `max_units` units is used, and the result says
so (`sampled`, `n_units`, `n_units_total`); `observed` is then the scores on that sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from routeviz.metrics import _common as common
from routeviz.metrics._sample import example_sample
from routeviz.metrics.focus_cover import DENSE_CELLS, f1, focus_cover
from routeviz.metrics.unit_counts import (
    ACTIVE,
    LENGTHS,
    TAGGED,
    TV,
    ctes_named,
    tag_ids,
    unit_sets,
    without_ctes,
)


@dataclass
class BaselineResult:
    scores: pd.DataFrame  # site, tag, focus, cover (on the units used), focus_mean, focus_lo,
    #   focus_hi, cover_mean, cover_lo, cover_hi (permutation), focus_ci_lo, focus_ci_hi,
    #   cover_ci_lo, cover_ci_hi (bootstrap) — one row per row of focus_cover's scores
    alignment: pd.DataFrame | None  # subnetwork, tag, f1, mean, lo, hi (None above max_cells)
    n_units: int
    n_units_total: int
    sampled: bool
    permutations: int
    resamples: int
    seed: int
    level: float


def focus_cover_baseline(store, run: str, tags=None, unit=None, kind="expert", top1=False,
                         site=None, permutations: int = 50, resamples: int = 50, seed: int = 0,
                         max_units: int = 20_000, level: float = 0.95, result=None,
                         max_cells: int = 2_000_000) -> BaselineResult:
    """`result`: the run's FocusCoverResult with the same arguments, if already computed.
    max_cells: the per-cell A_ij band is kept when permutations × cells stays under it."""
    if result is None:
        result = focus_cover(store, run, tags=tags, unit=unit, kind=kind, top1=top1, site=site)
    run = common.require_run(store, run)
    site = common.require_site(store, run, site, result.kind)
    sample, total, sampled = example_sample(store, run, max_units, seed, result.unit)
    with common.temp_view(store, tag_ids(result.tag_values)) as tv_view:
        ctes, params = unit_sets(store, run, result.kind, tv_view, result.unit, result.top1,
                                 site, sample=sample)
        pairs = common.df(store, "WITH " + ", ".join(ctes) + " "
                          "SELECT 0 AS part, u, tid AS id, NULL AS site, NULL AS choice "
                          "FROM tagged UNION ALL SELECT 1, u, NULL, site, choice FROM active",
                          params)
    return from_pairs(pairs, result, total, sampled, permutations, resamples, seed, level,
                      max_cells)


def focus_cover_baselines(store, run: str, results: dict, permutations: int = 50,
                          resamples: int = 50, seed: int = 0, max_units: int = 20_000,
                          level: float = 0.95) -> dict:
    """{kind: focus_cover_baseline(store, run, kind=kind, result=results[kind], ...)} for
    several kinds of one run (`metrics --json`): the kinds scored on the same units and tag
    values share one sample and one read of its tagged units (the tag rows, and the tokens
    a per-example tag covers), instead of one each; each kind reads its active units.
    Equal to the per-kind calls (tests/test_metrics_chance.py)."""
    inputs = baseline_inputs(store, run, results, max_units, seed)
    return {kind: from_pairs(pairs, results[kind], total, sampled, permutations, resamples,
                             seed, level)
            for kind, (pairs, total, sampled) in inputs.items()}


def baseline_inputs(store, run: str, results: dict, max_units: int = 20_000,
                    seed: int = 0) -> dict:
    """{kind: (pairs, total, sampled)}: what `from_pairs` scores for each kind of
    `focus_cover_baselines`, read from the store (the scoring itself reads nothing, so a
    caller may run it in another thread while this one queries)."""
    run = common.require_run(store, run)
    out = {}
    groups = {}  # kinds with the same units and tag values share the tagged read
    for kind, result in results.items():
        key = (result.unit, tuple(result.tag_values.name), tuple(result.tag_values.value))
        groups.setdefault(key, []).append(kind)
    for (unit, _, _), kinds in groups.items():
        first = results[kinds[0]]
        sample, total, sampled = example_sample(store, run, max_units, seed, unit)
        with common.temp_view(store, tag_ids(first.tag_values)) as tv_view:
            ctes, params = unit_sets(store, run, first.kind, tv_view, unit, first.top1,
                                     sample=sample)
            tagged = common.df(store, "WITH " + ", ".join(without_ctes(ctes, ACTIVE))
                               + " SELECT 0 AS part, u, tid AS id FROM tagged", params)
            for kind in kinds:
                result = results[kind]
                ctes, params = unit_sets(store, run, kind, tv_view, unit, result.top1,
                                         sample=sample)
                (active_sql,) = ctes_named(ctes, ACTIVE)
                ctes = without_ctes(ctes, TV, TAGGED, *(
                    [] if f"{LENGTHS} l" in active_sql else [LENGTHS]))  # lengths: if used
                active = common.df(store, "WITH " + ", ".join(ctes) + " SELECT 1 AS part, u, "
                                   "site, choice FROM active", params)
                out[kind] = (pd.concat([tagged, active], ignore_index=True), total, sampled)
    return {kind: out[kind] for kind in results}


def from_pairs(pairs: pd.DataFrame, result, total: int, sampled: bool, permutations: int,
               resamples: int, seed: int, level: float = 0.95,
               max_cells: int = 2_000_000) -> BaselineResult:
    """The baseline from the units' sets, `pairs` (part 0: u, id = tag id; part 1: u, site,
    choice), fetched for one run or for a series' runs together (`focus_cover_many`)."""
    tag_matrix, sub_matrix = _indicators(pairs, result)
    groups = _groups(result)
    rng = np.random.default_rng(seed)
    n = tag_matrix.shape[0]
    keep_cells = permutations * tag_matrix.shape[1] * sub_matrix.shape[1] <= max_cells
    score = _scorer(tag_matrix, sub_matrix, groups)
    observed = score(dense=keep_cells)
    orders = [rng.permutation(n) for _ in range(permutations)]  # drawn before the bootstrap
    shuffled, cells = [], []
    for start in range(0, permutations, SHUFFLES_AT_ONCE):
        for scores, alignment in score.shuffles(orders[start:start + SHUFFLES_AT_ONCE],
                                                dense=keep_cells):
            shuffled.append(scores)
            cells.append(alignment)
    draws = [rng.multinomial(n, np.full(n, 1 / n)) for _ in range(resamples)] if n else []
    boot = score.resamples(draws)
    scores = _table(result.scores, observed[0], np.array(shuffled), np.array(boot), level)
    alignment = (_cell_band(observed[1], cells, result, level)
                 if keep_cells and permutations else None)
    return BaselineResult(scores=scores, alignment=alignment, n_units=n,
                          n_units_total=int(total), sampled=sampled,
                          permutations=int(permutations), resamples=int(resamples),
                          seed=int(seed), level=float(level))


def _indicators(pairs: pd.DataFrame, result):
    """T [units, tag values] and S [units, subnetworks], 0/1 CSR, rows = units seen."""
    units, row = np.unique(pairs.u.to_numpy(dtype="int64"), return_inverse=True)
    is_tag = (pairs.part == 0).to_numpy()
    subs = result.subnetworks.reset_index(drop=True)
    sub_id = pd.Series(np.arange(len(subs)),
                       index=pd.MultiIndex.from_arrays([subs.site, subs.choice.astype("int64")]))
    active = pairs[~is_tag]
    cols = sub_id.reindex(pd.MultiIndex.from_arrays(
        [active.site.astype(str), active.choice.astype("int64")])).to_numpy()
    known = ~np.isnan(cols)

    def matrix(rows, columns, width):
        m = sparse.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(units), width))
        m.data[:] = 1.0  # duplicates summed by the constructor count once
        return m

    tag_matrix = matrix(row[is_tag], pairs.id[is_tag].to_numpy(dtype="int64"),
                        len(result.tag_values))
    sub_matrix = matrix(row[~is_tag][known], cols[known].astype("int64"), len(subs))
    return tag_matrix, sub_matrix


def _groups(result) -> list:
    """(subnetwork columns, tag-value rows) per row of result.scores."""
    sub_sites = result.subnetworks.site.to_numpy()
    names = result.tag_values.name.to_numpy()
    families = set(names)
    all_cols, all_rows = np.arange(len(sub_sites)), np.arange(len(names))
    out = []
    for site, tag in zip(result.scores.site, result.scores.tag):
        cols = np.flatnonzero(sub_sites == site) if site != "*" else all_cols
        rows = (np.flatnonzero(names == tag) if tag in families and len(families) > 1
                else all_rows)
        out.append((cols, rows))
    return out


# Up to this many unit × subnetwork entries S is held dense: a shuffle is then one sparse
# (T, shuffled) × dense (S) product, exact (0/1 entries, integer sums in float64) and
# single-threaded (a BLAS product of two dense matrices spins its threads on a busy machine).
DENSE_UNITS = 20_000_000


SHUFFLES_AT_ONCE = 10  # shuffles scored by one stacked product (memory: 10 × T)
RESAMPLE_ENTRIES = 4_000_000  # bootstrap draws scored by one product: units × draws × subs


def _scorer(tag_matrix, sub_matrix, groups):
    """score(order=None, weights=None, dense=False) -> `_scores` of the rows of T taken in
    `order` (a permutation of the units), the units weighted by `weights` (a bootstrap);
    score.shuffles(orders, dense) -> the same for several orders at once."""
    if tag_matrix.shape[0] * sub_matrix.shape[1] > DENSE_UNITS:
        def sparse_score(order=None, weights=None, dense=False):
            tags = tag_matrix if order is None else tag_matrix[order]
            return _scores(tags, sub_matrix, groups, weights=weights, dense=dense)
        sparse_score.shuffles = lambda orders, dense=False: [
            sparse_score(order=order, dense=dense) for order in orders]
        sparse_score.resamples = lambda draws: [sparse_score(weights=w)[0] for w in draws]
        return sparse_score
    subs = sub_matrix.toarray()  # [units, subnetworks]
    n_tag = np.asarray(tag_matrix.sum(axis=0)).ravel()
    n_active = subs.sum(axis=0)

    def dense_score(order=None, weights=None, dense=False):
        tags = tag_matrix if order is None else tag_matrix[order]  # [units, tag values]
        if weights is None:
            both = np.asarray(tags.T @ subs)  # [tag values, subnetworks]
            tag_counts, active_counts = n_tag, n_active
        else:
            weighted = subs * weights[:, None]
            both = np.asarray(tags.T @ weighted)
            tag_counts = np.asarray(tags.T @ weights).ravel()
            active_counts = weighted.sum(axis=0)  # not weights @ subs: BLAS threads spin
        cells = f1(both, tag_counts[:, None], active_counts[None, :])
        return _group_scores(cells, groups), (cells if dense else None)

    def shuffles(orders, dense=False):
        """dense_score(order=o) for each o: one product of the stacked shuffled T."""
        if not orders:
            return []
        n_values = tag_matrix.shape[1]
        stacked = sparse.hstack([tag_matrix[order] for order in orders]).tocsr()
        both = np.asarray(stacked.T @ subs).reshape(len(orders), n_values, subs.shape[1])
        cells = f1(both, n_tag[None, :, None], n_active[None, None, :])
        scores = _group_scores_stacked(cells, groups)
        return [(scores[i], cells[i] if dense else None) for i in range(len(orders))]

    def resamples(draws):
        """dense_score(weights=w)[0] for each bootstrap draw w, a few draws per product:
        T' [S·w1 | S·w2 | ...] (the same integer sums, exact in float64)."""
        n_units, n_subs = subs.shape
        at_once = max(1, RESAMPLE_ENTRIES // max(1, n_units * n_subs))
        out = []
        for start in range(0, len(draws), at_once):
            w = np.stack(draws[start:start + at_once], axis=1).astype("float64")  # [units, R]
            weighted = subs[:, None, :] * w[:, :, None]  # [units, R, subnetworks]
            both = np.asarray(tag_matrix.T @ weighted.reshape(n_units, -1))
            both = both.reshape(-1, w.shape[1], n_subs).transpose(1, 0, 2)  # [R, values, subs]
            tag_counts = np.asarray(tag_matrix.T @ w).T  # [R, values]
            active_counts = weighted.sum(axis=0)  # [R, subnetworks]
            cells = f1(both, tag_counts[:, :, None], active_counts[:, None, :])
            out.extend(_group_scores_stacked(cells, groups))
        return out

    dense_score.shuffles = shuffles
    dense_score.resamples = resamples
    return dense_score


def _group_scores(cells: np.ndarray, groups) -> np.ndarray:
    """Focus and Cover of every group from the dense A_ij [tag values, subnetworks]: each
    distinct row set's column maxima and column set's row maxima taken once, then each
    group's two means over the same values, in the same order, as its block would give."""
    best_of_rows, best_of_cols, scores = {}, {}, []
    for cols, rows in groups:
        rows_key, cols_key = rows.tobytes(), cols.tobytes()
        if rows_key not in best_of_rows:
            best_of_rows[rows_key] = cells[rows].max(axis=0) if len(rows) else None
        if cols_key not in best_of_cols:
            best_of_cols[cols_key] = cells[:, cols].max(axis=1) if len(cols) else None
        focus = (float(best_of_rows[rows_key][cols].mean()) if len(cols) and len(rows)
                 else float("nan"))
        cover = (float(best_of_cols[cols_key][rows].mean()) if len(rows) and len(cols)
                 else float("nan"))
        scores.append((focus, cover))
    return np.array(scores)


def _group_scores_stacked(cells: np.ndarray, groups) -> np.ndarray:
    """`_group_scores` of each of cells[0], cells[1], ... ([shuffles, tag values,
    subnetworks]) -> [shuffles, groups, 2]; each mean over the same values in the same
    order as the shuffle's own would take them (a reduction along the last axis)."""
    best_of_rows, best_of_cols = {}, {}
    n = cells.shape[0]
    scores = np.empty((n, len(groups), 2))
    for g, (cols, rows) in enumerate(groups):
        rows_key, cols_key = rows.tobytes(), cols.tobytes()
        if len(cols) and len(rows):
            if rows_key not in best_of_rows:
                best_of_rows[rows_key] = cells[:, rows, :].max(axis=1)  # [shuffles, subs]
            if cols_key not in best_of_cols:
                best_of_cols[cols_key] = cells[:, :, cols].max(axis=2)  # [shuffles, values]
            focus = np.ascontiguousarray(best_of_rows[rows_key][:, cols])
            cover = np.ascontiguousarray(best_of_cols[cols_key][:, rows])
            scores[:, g, 0] = focus.mean(axis=1)  # per row: the 1-D mean's pairwise sum
            scores[:, g, 1] = cover.mean(axis=1)
        else:
            scores[:, g, :] = float("nan")
    return scores


def _scores(tag_matrix, sub_matrix, groups, weights=None, dense=False):
    """Focus and Cover of every group from A_ij = F1 of the (weighted) unit counts."""
    weighted = tag_matrix if weights is None else tag_matrix.multiply(weights[:, None]).tocsr()
    n_tag = np.asarray(weighted.sum(axis=0)).ravel()
    n_active = (np.asarray(sub_matrix.sum(axis=0)).ravel() if weights is None
                else np.asarray(sub_matrix.T @ weights).ravel())
    both = (weighted.T @ sub_matrix).tocoo()  # [tag values, subnetworks], non-zero cells
    cells = sparse.csr_matrix((f1(both.data, n_tag[both.row], n_active[both.col]),
                               (both.row, both.col)), shape=both.shape)
    small = both.shape[0] * both.shape[1] <= DENSE_CELLS
    if small:
        cells = cells.toarray()
    scores = []
    for cols, rows in groups:
        block = cells[np.ix_(rows, cols)] if small else cells[rows][:, cols]
        focus = _mean_of_max(block, axis=0) if len(cols) else float("nan")
        cover = _mean_of_max(block, axis=1) if len(rows) else float("nan")
        scores.append((focus, cover))
    if dense and not small:
        cells = cells.toarray()
    return np.array(scores), (cells if dense else None)


def _mean_of_max(block, axis: int) -> float:
    best = block.max(axis=axis)
    return float((best.toarray() if sparse.issparse(best) else best).mean())


def _table(base: pd.DataFrame, observed, shuffled, boot, level) -> pd.DataFrame:
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    out = base[["site", "tag"]].reset_index(drop=True).copy()
    out["focus"], out["cover"] = observed[:, 0], observed[:, 1]
    for i, name in enumerate(("focus", "cover")):
        if len(shuffled):
            out[f"{name}_mean"] = shuffled[:, :, i].mean(axis=0)
            out[f"{name}_lo"] = np.quantile(shuffled[:, :, i], lo_q, axis=0)
            out[f"{name}_hi"] = np.quantile(shuffled[:, :, i], hi_q, axis=0)
        if len(boot):  # percentile interval less the bootstrap's bias (a max is biased up)
            bias = boot[:, :, i].mean(axis=0) - observed[:, i]
            out[f"{name}_ci_lo"] = np.quantile(boot[:, :, i], lo_q, axis=0) - bias
            out[f"{name}_ci_hi"] = np.quantile(boot[:, :, i], hi_q, axis=0) - bias
    return out


def _cell_band(observed, cells, result, level) -> pd.DataFrame:
    stack = np.stack(cells)  # [permutations, tag values, subnetworks]
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    tags = np.repeat(result.tag_values.tag.to_numpy(), stack.shape[2])
    subs = np.tile(result.subnetworks.subnetwork.to_numpy(), stack.shape[1])
    return pd.DataFrame({"subnetwork": subs, "tag": tags, "f1": observed.ravel(),
                         "mean": stack.mean(axis=0).ravel(),
                         "lo": np.quantile(stack, lo_q, axis=0).ravel(),
                         "hi": np.quantile(stack, hi_q, axis=0).ravel()})
