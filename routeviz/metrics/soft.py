"""Soft routing (Soft MoE): load as combine mass, combine entropy per token, dispatch entropy
and effective tokens per slot, per-slot dispatch maps and top patches.

`soft` rows: (token, site, expert) with weight = the token's combine mass on the expert
(summing to 1 per token and site); `dispatch` rows: (token, site, slot) with weight = the
slot's dispatch weight on the token (summing to 1 per slot over an example's tokens). A slot
belongs to expert slot // slots_per_expert (runs.config `slots_per_expert`, an int or
{site: int}). Entropies are in nats; effective tokens = exp(dispatch entropy), 1 when a
slot takes one token, n when it averages all n evenly.
"""

from __future__ import annotations

import math

import pandas as pd

from routeviz.metrics import _common as common


def slots_per_expert(store, run: str, site: str) -> int:
    """Slots per expert at `site` from the run's config (1 where it does not say)."""
    value = common.config_of(store, run).get("slots_per_expert") or 1
    return int(value.get(site, 1) if isinstance(value, dict) else value)


def soft_load(store, run: str) -> pd.DataFrame:
    """site, layer, expert, mass (summed combine mass over the run's tokens), share (of the
    site's tokens), dominant (tokens whose largest mass is this expert)."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "soft", allowed=("soft",))
    frame = common.df(store,
        "SELECT site, min(layer) AS layer, choice AS expert, sum(weight) AS mass, "
        "count(*) FILTER (WHERE rank = 0) AS dominant FROM routes "
        "WHERE run = $run AND kind = 'soft' GROUP BY site, choice ORDER BY layer, site, expert",
        {"run": run})
    frame["share"] = frame.mass / frame.groupby("site").mass.transform("sum")
    return frame


def combine_entropy(store, run: str) -> pd.DataFrame:
    """Per site: mean, min and max over tokens of the entropy of the token's combine mass
    over experts, and log(n_experts), its largest possible value."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "soft", allowed=("soft",))
    return common.df(store,
        "WITH t AS (SELECT site, min(layer) AS layer, count(*) AS n_experts, "
        "  -sum(CASE WHEN weight > 0 THEN weight * ln(weight) ELSE 0 END) AS entropy "
        "  FROM routes WHERE run = $run AND kind = 'soft' GROUP BY site, example, token) "
        "SELECT site, min(layer) AS layer, avg(entropy) AS mean_entropy, "
        "min(entropy) AS min_entropy, max(entropy) AS max_entropy, "
        "ln(max(n_experts)) AS max_possible, count(*) AS n_tokens "
        "FROM t GROUP BY site ORDER BY layer, site", {"run": run})


def dispatch_entropy(store, run: str) -> pd.DataFrame:
    """Per (site, slot): the slot's expert, the mean over examples of the entropy of its
    dispatch weights over the example's tokens, and of its effective tokens exp(entropy)."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "dispatch", allowed=("dispatch",))
    frame = common.df(store,
        "WITH e AS (SELECT site, min(layer) AS layer, choice AS slot, count(*) AS n_tokens, "
        "  -sum(CASE WHEN weight > 0 THEN weight * ln(weight) ELSE 0 END) AS entropy "
        "  FROM routes WHERE run = $run AND kind = 'dispatch' GROUP BY site, choice, example) "
        "SELECT site, min(layer) AS layer, slot, avg(entropy) AS mean_entropy, "
        "avg(exp(entropy)) AS effective_tokens, avg(n_tokens) AS mean_tokens "
        "FROM e GROUP BY site, slot ORDER BY layer, site, slot", {"run": run})
    frame["expert"] = [slot // slots_per_expert(store, run, site)
                       for site, slot in zip(frame.site, frame.slot)]
    return frame


def dispatch_map(store, run: str, example: int, site: str) -> pd.DataFrame:
    """slot, expert, token, weight: every slot's dispatch weight on every token of one
    example at one site (an image's patches: token = row-major patch index)."""
    frame = common.df(store,
        "SELECT choice AS slot, token, weight FROM routes WHERE run = $run AND "
        "kind = 'dispatch' AND example = $example AND site = $site ORDER BY slot, token",
        {"run": run, "example": int(example), "site": site})
    frame["expert"] = frame.slot // slots_per_expert(store, run, site)
    return frame


def dominant_experts(store, run: str, example: int, site: str) -> pd.DataFrame:
    """token, expert, mass: each token's dominant expert (largest combine mass) at a site."""
    return common.df(store,
        "SELECT token, choice AS expert, weight AS mass FROM routes WHERE run = $run AND "
        "kind = 'soft' AND rank = 0 AND example = $example AND site = $site ORDER BY token",
        {"run": run, "example": int(example), "site": site})


def slot_top_tokens(store, run: str, site: str, k: int = 8) -> pd.DataFrame:
    """Per slot of a site: its `k` (example, token) pairs of highest dispatch weight, with
    rank 0 for the highest."""
    return common.df(store,
        "SELECT * FROM (SELECT choice AS slot, example, token, weight, row_number() OVER "
        "(PARTITION BY choice ORDER BY weight DESC, example, token) - 1 AS place FROM routes "
        "WHERE run = $run AND kind = 'dispatch' AND site = $site) WHERE place < $k "
        "ORDER BY slot, place", {"run": run, "site": site, "k": int(k)})


def soft_sites(store, run: str) -> list[str]:
    return common.sites_of(store, run, "dispatch").site.tolist()


def soft_summary(store, run: str) -> dict:
    """`metrics --json`'s `soft` key: per site combine entropy and, per slot, dispatch
    entropy and effective tokens."""
    out = {}
    recorded = common.kinds_recorded(store, run)
    if "soft" in recorded:
        out["combine_entropy"] = common.records(combine_entropy(store, run))
    if "dispatch" in recorded:
        out["dispatch"] = common.records(dispatch_entropy(store, run))
    return out


def soft_load_json(store, run: str) -> list[dict]:
    """`metrics --json`'s `load` entries for soft sites: shares = combine mass per expert."""
    frame = soft_load(store, run)
    out = []
    for site, per in frame.groupby("site", sort=False):
        mass = per.mass.to_numpy(dtype="float64")
        mean = mass.mean() if len(mass) else 0.0
        cv = float(mass.std() / mean) if mean else math.nan
        out.append({"site": site, "layer": int(per.layer.iloc[0]), "kind": "soft",
                    "n_experts": len(per), "shares": [float(s) for s in per.share],
                    "mass": [float(m) for m in mass],
                    "dominant": [int(d) for d in per.dominant],
                    "cv": common.plain(cv), "max_over_mean": common.plain(
                        float(mass.max() / mean) if mean else math.nan)})
    return out
