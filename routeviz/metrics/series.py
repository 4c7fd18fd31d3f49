"""Metrics over a series: the runs of one model traced at several training steps over the
same probe set (runs.config holds {"series", "step", "checkpoint"}).

    series_names(store) -> [name, ...]
    series_runs(store, series) -> frame: run, step, checkpoint (ordered by step)
    saturation(store, series) -> frame: step, run, site, top1, overlap, n_units
        OLMoE's router saturation against the LAST step: per probe token and site, the
        share of its top-k experts at step t that are also among its top-k at the final
        step (`overlap`, any rank), and whether its top-1 expert is the same (`top1`).
        Averaged per site and pooled over every site ("*"); tokens routed at step t but not
        at the final step are not compared.
    balance(store, series) -> frame: step, run, site, layer, n_experts, cv, maxvio
        load CV (std/mean of per-expert counts) and MaxVio = (max - mean) / mean per site;
        "*" is the mean over sites.
    timeline(store, series, tags=None) -> long frame: step, run, site, metric, value
        metric: saturation_top1, saturation_overlap, load_cv, maxvio, focus, cover, entropy
        (nats; softmax over the router logits where the run recorded them, else the
        renormalised top-k weights).
        With chance=N also focus_lo, focus_hi, cover_lo, cover_hi: the chance band of
        Focus and Cover (the central 95% of N shuffles of the tags across units).
    series_summary(store, series, ...) -> dict (`routeviz metrics --series NAME --json`)
Expert identity across steps is in `routeviz.metrics.identity`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from routeviz.metrics import _batch
from routeviz.metrics import _common as common
from routeviz.metrics.baseline import focus_cover_baseline, from_pairs
from routeviz.metrics.entropy import LOGIT_H, SITE_STATS, WEIGHT_H, entropy
from routeviz.metrics.focus_cover import focus_cover, from_counts
from routeviz.metrics.load import load_many
from routeviz.metrics.tag_families import focus_families_many
from routeviz.metrics.unit_counts import split_counts, tag_ids
from routeviz.store.query import split_runs
from routeviz.store.series import SERIES_CTE, series_names, series_runs  # noqa: F401

POOLED = "*"
TIMELINE_METRICS = ("saturation_top1", "saturation_overlap", "load_cv", "maxvio", "focus",
                    "cover", "entropy")

SATURATION = """
WITH """ + SERIES_CTE + """,
r AS (
  SELECT run, site, """ + common.unit_key() + """ AS u, choice, rank FROM routes
  WHERE kind = 'expert' AND run IN (SELECT run FROM sr)),
f AS (SELECT site, u, choice, rank FROM r WHERE run = $final),
fu AS (SELECT DISTINCT site, u FROM f),
units AS (
  SELECT r.run, r.site, r.u, count(*) AS k, count(f.choice) AS n_shared,
         bool_or(coalesce(r.rank = 0 AND f.rank = 0, false)) AS top1_same
  FROM r JOIN fu ON r.site = fu.site AND r.u = fu.u
  LEFT JOIN f ON r.site = f.site AND r.u = f.u AND r.choice = f.choice
  GROUP BY r.run, r.site, r.u)
SELECT run, coalesce(site, '*') AS site, avg(CAST(top1_same AS DOUBLE)) AS top1,
       avg(n_shared / k) AS overlap, count(*) AS n_units
FROM units GROUP BY GROUPING SETS ((run, site), (run))"""


def _steps(runs: pd.DataFrame) -> dict[str, int]:
    return dict(zip(runs.run, runs.step))


def _site_order(store, runs: pd.DataFrame) -> dict[str, int]:
    sites = common.sites_of(store, runs.run.iloc[-1], "expert").site.tolist()
    return {s: i for i, s in enumerate([POOLED] + sites)}


def _ordered(frame: pd.DataFrame, order: dict[str, int]) -> pd.DataFrame:
    key = frame.site.map(order).fillna(len(order))
    return (frame.assign(_order=key).sort_values(["step", "_order", "site"])
            .drop(columns="_order").reset_index(drop=True))


def saturation(store, series: str) -> pd.DataFrame:
    """Router saturation of every step against the last step (see the module doc)."""
    runs = series_runs(store, series)
    final = runs.run.iloc[-1]
    common.require_kind(store, final, "expert", allowed=("expert",))
    result = common.df(store, SATURATION, {"series": series, "final": final})
    result["step"] = result.run.map(_steps(runs)).astype("int64")
    cols = ["step", "run", "site", "top1", "overlap", "n_units"]
    return _ordered(result[cols], _site_order(store, runs))


def balance(store, series: str) -> pd.DataFrame:
    """Load CV and MaxVio per step and site (from `metrics.load`); "*" = mean over sites."""
    runs = series_runs(store, series)
    loads = load_many(store, runs.run)  # every step's `load`, in three queries
    frames = []
    for run, step in zip(runs.run, runs.step):
        sites = loads[run].sites
        per = pd.DataFrame({"step": step, "run": run, "site": sites.site, "layer": sites.layer,
                            "n_experts": sites.n_experts, "cv": sites.cv,
                            "maxvio": sites.max_over_mean - 1.0})
        pooled = {"step": step, "run": run, "site": POOLED, "layer": -1,
                  "n_experts": int(per.n_experts.sum()), "cv": per.cv.mean(),
                  "maxvio": per.maxvio.mean()}
        frames += [pd.DataFrame([pooled]), per]
    return _ordered(pd.concat(frames, ignore_index=True), _site_order(store, runs))


def pooled_tag(scores: pd.DataFrame) -> pd.DataFrame:
    """Focus/Cover rows that pool every tag family ("*", or the only family)."""
    if scores.empty:
        return scores
    tag = POOLED if (scores.tag == POOLED).any() else scores.tag.iloc[0]
    return scores[scores.tag == tag]


def _focus_kind(facts) -> str | None:
    """The kind a step's Focus/Cover scores: the first of FOCUS_KINDS it recorded."""
    return next((k for k in common.FOCUS_KINDS if k in facts.kinds), None)


def _focus_rows(store, run, step, tags, chance: int = 0) -> list[dict]:
    """One step's Focus/Cover rows (and its chance band) computed for that run alone;
    `focus_many` gives the same for every step at once."""
    if not tags and not common.tag_names(store, run):
        return []
    kind = _focus_kind(common.facts(store, run))
    if kind is None:
        return []
    result = focus_cover(store, run, tags=tags, kind=kind)
    band = None
    if chance:
        band = focus_cover_baseline(store, run, tags=tags, kind=kind, permutations=chance,
                                    resamples=0, result=result)
    return _rows_of(run, step, result, band)


def _rows_of(run, step, result, band) -> list[dict]:
    scores = pooled_tag(result.scores)
    rows = [{"step": step, "run": run, "site": s, "metric": m, "value": v}
            for s, f, c in zip(scores.site, scores.focus, scores.cover)
            for m, v in (("focus", f), ("cover", c))]
    if band is not None:  # tags shuffled across units: the central 95% of the shuffles
        band = pooled_tag(band.scores)
        rows += [{"step": step, "run": run, "site": site, "metric": f"{name}_{end}",
                  "value": float(band[f"{name}_{end}"].iloc[i])}
                 for i, site in enumerate(band.site) for name in ("focus", "cover")
                 for end in ("lo", "hi")]
    return rows


BAND_MAX_UNITS = 20_000  # focus_cover_baseline's default max_units: above it, a sample


def focus_many(store, runs, tags=None, chance: int = 0) -> dict:
    """{run: (FocusCoverResult, BaselineResult or None)} for the runs of a series that have
    tags and a Focus/Cover kind: what `_focus_rows` computes per run (focus_cover and, with
    chance=N, its N-shuffle band), with the unit sets of every step in one query. A run
    scored per example, or whose band reads a sample, is computed alone."""
    runs = list(runs)
    facts = store.facts_many(runs)
    kinds = {run: _focus_kind(facts[run]) for run in runs}
    kinds = {run: kind for run, kind in kinds.items()
             if kind is not None and (tags or facts[run].tags)}

    def per_token(run):
        sites = facts[run].sites
        return not sites[sites.kind == kinds[run]].per_example.all()

    batched = [run for run in kinds if per_token(run)]
    out = {}
    for run in [run for run in kinds if run not in batched]:
        result = focus_cover(store, run, tags=tags, kind=kinds[run])
        out[run] = (result, focus_cover_baseline(
            store, run, tags=tags, kind=kinds[run], permutations=chance, resamples=0,
            result=result) if chance else None)
    if not batched:
        return out
    families = focus_families_many(store, batched, tags)
    values = common.df(store, "SELECT DISTINCT run, name, value FROM tags WHERE "
                       "list_contains($runs, run) ORDER BY run, name, value",
                       {"runs": batched})
    values = split_runs(values, batched)
    tag_values, tv = {}, []
    for run in batched:  # each run's all_tag_values: row i is its tag id i
        own = values[run]
        tag_values[run] = own[own.name.isin(families[run].pooled)].reset_index(drop=True)
        tv.append(tag_ids(tag_values[run]).assign(run=run))
    top1 = {run: kinds[run] == "soft" for run in batched}  # soft: the dominant expert
    params = _batch.run_params(store, batched)
    rk = _batch.kinds_frame({run: kinds[run] for run in batched}, top1)
    with common.temp_view(store, pd.concat(tv, ignore_index=True)) as tv_view, \
            common.temp_view(store, rk) as rk_view:
        ctes = "WITH " + ", ".join(_batch.unit_sets(tv_view, rk_view)) + " "
        parts = common.df(store, ctes + _batch.COUNTS + (_batch.PAIRS if chance else ""),
                          params)
    parts = split_runs(parts, batched)
    for run in batched:
        own = parts[run]
        counts = own[own.part.isin(["active", "tag", "both"])]
        result = from_counts(store, run, kinds[run], "token", top1[run], None, families[run],
                             tag_values[run], split_counts(counts, tag_values[run]))
        band = None
        total = int(own.n[own.part == "total"].sum()) if chance else 0
        if chance and total <= BAND_MAX_UNITS:
            band = from_pairs(_batch.pairs_of(own), result, total, False, chance, 0, seed=0)
        elif chance:
            band = focus_cover_baseline(store, run, tags=tags, kind=kinds[run],
                                        permutations=chance, resamples=0, result=result)
        out[run] = (result, band)
    return out


def _entropy_many(store, runs, steps: dict) -> list[dict]:
    """`_entropy_rows` of every run at once: `metrics.entropy`'s per-unit entropies grouped
    by run as well."""
    key = common.unit_key()
    per_unit = (
        "SELECT run, site, 'weights' AS source, count(*) AS k, " + WEIGHT_H +
        " AS entropy FROM routes WHERE list_contains($runs, run) AND kind = 'expert' AND "
        f"weight > 0 GROUP BY run, site, {key} UNION ALL "
        "SELECT run, site, 'logits', count(*), " + LOGIT_H + " FROM ("
        "SELECT run, site, example, token, list_max(\"values\") AS m, unnest(\"values\") AS v "
        f"FROM logits WHERE list_contains($runs, run)) GROUP BY run, site, {key}")
    stats = common.df(store, f"SELECT run, site, source, {SITE_STATS} FROM "
                             f"({per_unit}) GROUP BY run, site, source", {"runs": list(runs)})
    stats = split_runs(stats, runs)
    rows = []
    for run in runs:
        order = {s: i for i, s in enumerate(common.sites_of(store, run, "expert").site)}
        own = stats[run]
        own = own.assign(order=own.site.map(order)).sort_values(
            ["source", "order"], ascending=[False, True]).drop(columns="order")
        rows += _entropy_of(run, steps[run], own)
    return rows


def _entropy_rows(store, run, step) -> list[dict]:
    """Mean routing entropy per site and pooled (weighted by tokens): over every expert from
    the router logits where the run recorded them, else over the renormalised top-k weights
    (none for a top-1 router without logits: always 0). Rounding below 0 is clipped."""
    return _entropy_of(run, step, entropy(store, run, limit=0).sites)


def _entropy_of(run, step, sites: pd.DataFrame) -> list[dict]:
    source = "logits" if (sites.source == "logits").any() else "weights"
    sites = sites[(sites.source == source) & (sites.max_possible > 0)]
    if sites.empty:
        return []
    means = sites["mean"].clip(lower=0.0)
    pooled = float(np.average(means, weights=sites.n_tokens))
    rows = [{"step": step, "run": run, "site": POOLED, "metric": "entropy", "value": pooled}]
    rows += [{"step": step, "run": run, "site": s, "metric": "entropy", "value": float(v)}
             for s, v in zip(sites.site, means)]
    return rows


# the two halves of `timeline` a page can draw one after the other: the routing metrics
# (a few grouped queries) before the scores (Focus/Cover with its band, entropy: ~2/3 of it)
TIMELINE_PARTS = {"routing": TIMELINE_METRICS[:4], "scores": TIMELINE_METRICS[4:]}


def timeline(store, series: str, tags=None, chance: int = 0,
             parts=("routing", "scores")) -> pd.DataFrame:
    """Every per-step metric of the series as one long frame: step, run, site, metric,
    value. Entropy (nats) is over the router logits where recorded, else the top-k weights.
    chance=N adds the permutation band of Focus and Cover (metrics focus_lo, focus_hi,
    cover_lo, cover_hi; `focus_cover_baseline` with N shuffles, reusing the step's scores).
    parts: the halves of TIMELINE_PARTS to compute; `timeline_joined` puts halves computed
    apart back together, row for row the frame of both computed at once."""
    runs = series_runs(store, series)
    store.facts_many(runs.run)  # every step's facts in one set of queries
    if tags:
        for run in runs.run:
            common.require_tags(store, run, tags)
    rows = []
    if "routing" in parts:
        sat = saturation(store, series)
        bal = balance(store, series)
        for name, frame, col in (("saturation_top1", sat, "top1"),
                                 ("saturation_overlap", sat, "overlap"),
                                 ("load_cv", bal, "cv"), ("maxvio", bal, "maxvio")):
            rows += [{"step": s, "run": r, "site": site, "metric": name, "value": v}
                     for s, r, site, v in zip(frame.step, frame.run, frame.site, frame[col])]
    if "scores" in parts:
        steps = _steps(runs)
        focus = focus_many(store, runs.run, tags, chance)  # every step's Focus/Cover at once
        for run, step in zip(runs.run, runs.step):
            if run in focus:
                rows += _rows_of(run, step, *focus[run])
        rows += _entropy_many(store, runs.run, steps)
    frame = pd.DataFrame(rows, columns=["step", "run", "site", "metric", "value"])
    frame["value"] = frame.value.astype("float64")
    return _in_timeline_order(store, runs, frame)


def timeline_joined(store, series: str, frames) -> pd.DataFrame:
    """`timeline` frames of different parts of one series as the one frame of all of them."""
    return _in_timeline_order(store, series_runs(store, series),
                              pd.concat(list(frames), ignore_index=True))


def _in_timeline_order(store, runs: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """By step, site (pooled first, then model order) and metric (TIMELINE_METRICS)."""
    order = {m: i for i, m in enumerate(TIMELINE_METRICS)}
    return _ordered(frame.assign(_m=frame.metric.map(order)).sort_values("_m", kind="stable")
                    .drop(columns="_m"), _site_order(store, runs))


def series_summary(store, series: str, tags=None, unit=None, kind=None, top1=False) -> dict:
    """`routeviz metrics --series NAME --json`: keys series, final_step, steps (per step: the
    `summary` object of its run plus step, checkpoint, saturation [{site, top1, overlap,
    n_units}], balance [{site, cv, maxvio}] and entropy [{site, mean}]), and identity (each
    expert matched to its most similar expert at the next step)."""
    from routeviz.metrics.identity import identity
    from routeviz.metrics.summary import summary

    runs = series_runs(store, series)
    sat = saturation(store, series)
    bal = balance(store, series)
    ent = pd.DataFrame(
        [r for run, step in zip(runs.run, runs.step) for r in _entropy_rows(store, run, step)],
        columns=["step", "run", "site", "metric", "value"])
    steps = []
    for run, step, checkpoint in zip(runs.run, runs.step, runs.checkpoint):
        out = summary(store, run, tags=tags, unit=unit, kind=kind, top1=top1)
        out["step"], out["checkpoint"] = int(step), checkpoint
        out["saturation"] = common.records(sat[sat.run == run][["site", "top1", "overlap",
                                                                "n_units"]])
        out["balance"] = common.records(bal[bal.run == run][["site", "cv", "maxvio"]])
        out["entropy"] = common.records(
            ent[ent.run == run][["site", "value"]].rename(columns={"value": "mean"}))
        steps.append(out)
    ids = identity(store, series)
    return {"series": series, "n_steps": len(runs), "final_step": int(runs.step.iloc[-1]),
            "runs": runs.run.tolist(), "steps": steps, "identity": common.records(ids)}
