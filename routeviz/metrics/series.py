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

from routeviz.metrics import _common as common
from routeviz.metrics.baseline import focus_cover_baseline
from routeviz.metrics.entropy import entropy
from routeviz.metrics.focus_cover import focus_cover
from routeviz.metrics.load import load
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
    frames = []
    for run, step in zip(runs.run, runs.step):
        sites = load(store, run).sites
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


def _focus_rows(store, run, step, tags, chance: int = 0) -> list[dict]:
    if not tags and not common.tag_names(store, run):
        return []
    kinds = common.kinds_recorded(store, run)
    kind = next((k for k in common.FOCUS_KINDS if k in kinds), None)
    if kind is None:
        return []
    result = focus_cover(store, run, tags=tags, kind=kind)
    scores = pooled_tag(result.scores)
    rows = [{"step": step, "run": run, "site": s, "metric": m, "value": v}
            for s, f, c in zip(scores.site, scores.focus, scores.cover)
            for m, v in (("focus", f), ("cover", c))]
    if chance:  # tags shuffled across units: the central 95% of `chance` shuffles
        band = pooled_tag(focus_cover_baseline(store, run, tags=tags, kind=kind,
                                               permutations=chance, resamples=0,
                                               result=result).scores)
        rows += [{"step": step, "run": run, "site": site, "metric": f"{name}_{end}",
                  "value": float(band[f"{name}_{end}"].iloc[i])}
                 for i, site in enumerate(band.site) for name in ("focus", "cover")
                 for end in ("lo", "hi")]
    return rows


def _entropy_rows(store, run, step) -> list[dict]:
    """Mean routing entropy per site and pooled (weighted by tokens): over every expert from
    the router logits where the run recorded them, else over the renormalised top-k weights
    (none for a top-1 router without logits: always 0). Rounding below 0 is clipped."""
    sites = entropy(store, run, limit=0).sites
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


def timeline(store, series: str, tags=None, chance: int = 0) -> pd.DataFrame:
    """Every per-step metric of the series as one long frame: step, run, site, metric,
    value. Entropy (nats) is over the router logits where recorded, else the top-k weights.
    chance=N adds the permutation band of Focus and Cover (metrics focus_lo, focus_hi,
    cover_lo, cover_hi; `focus_cover_baseline` with N shuffles, reusing the step's scores)."""
    runs = series_runs(store, series)
    if tags:
        for run in runs.run:
            common.require_tags(store, run, tags)
    sat = saturation(store, series)
    bal = balance(store, series)
    rows = []
    for name, frame, col in (("saturation_top1", sat, "top1"),
                             ("saturation_overlap", sat, "overlap"),
                             ("load_cv", bal, "cv"), ("maxvio", bal, "maxvio")):
        rows += [{"step": s, "run": r, "site": site, "metric": name, "value": v}
                 for s, r, site, v in zip(frame.step, frame.run, frame.site, frame[col])]
    for run, step in zip(runs.run, runs.step):
        rows += _focus_rows(store, run, step, tags, chance)
        rows += _entropy_rows(store, run, step)
    frame = pd.DataFrame(rows, columns=["step", "run", "site", "metric", "value"])
    frame["value"] = frame.value.astype("float64")
    order = {m: i for i, m in enumerate(TIMELINE_METRICS)}
    frame = _ordered(frame.assign(_m=frame.metric.map(order)).sort_values("_m", kind="stable")
                     .drop(columns="_m"), _site_order(store, runs))
    return frame


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
