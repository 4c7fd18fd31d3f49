"""Router confidence and the tokens no expert processed.

Per expert site:
  mean_top1_weight  mean gate weight of the rank-0 choice (rows with a NaN weight skipped);
  n_expected        tokens the site should have seen: the token count of every example with
                    a route at the site (examples for a per-example site);
  n_dropped         of those, tokens with no expert row at the site (capacity-dropped, as in
                    Switch, or pruned before the site);
  n_zero            tokens whose top choice has gate weight 0 (routed, but nothing computed);
  unprocessed_fraction = (n_dropped + n_zero) / n_expected.
Per keep site (mixture-of-depths, token pruning): skipped_fraction = keep=0 rows / keep rows,
the tokens the block did not process. These are reported apart, not added to the above.
Pooled ("*"): counts summed, mean_top1_weight weighted by the rank-0 rows with a weight.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from routeviz.metrics import _common as common
from routeviz.metrics._pooled import pooled
from routeviz.metrics.load import expected_tokens, expert_counts, route_examples

COLUMNS = ["site", "mean_top1_weight", "n_weighted", "n_expected", "n_routed", "n_dropped",
           "n_zero", "unprocessed_fraction"]


def confidence(store, run: str) -> dict:
    """{"experts": frame (COLUMNS, one row per expert site then "*"), "keep": frame (site,
    n_seen, n_skipped, skipped_fraction) or None when the run records no keep routes}."""
    run = common.require_run(store, run)
    recorded = common.kinds_recorded(store, run)
    p = {"run": run}
    experts = None
    if "expert" in recorded:
        experts = _experts(store, run, p)
    keeps = None
    if "keep" in recorded:
        keeps = common.df(store,
            "SELECT site, min(layer) AS layer, count(*) AS n_seen, "
            "sum(CASE WHEN choice = 0 THEN 1 ELSE 0 END) AS n_skipped FROM routes "
            "WHERE run = $run AND kind = 'keep' GROUP BY site ORDER BY layer, site", p)
        keeps["skipped_fraction"] = keeps.n_skipped / keeps.n_seen
        keeps = keeps[["site", "n_seen", "n_skipped", "skipped_fraction"]]
    return {"experts": experts, "keep": keeps}


def _experts(store, run, p) -> pd.DataFrame:
    # per site from load's per-(site, expert) counts (one pass over the routes for both):
    # the rank-0 routes, those of weight 0, the mean of the weights that are not NaN
    counts = expert_counts(store, run)
    counts = counts[counts.n_top > 0]
    per_site = counts.groupby("site", sort=False).agg(
        n_routed=("n_top", "sum"), n_zero=("n_zero", "sum"),
        n_weighted=("n_weighted", "sum"), min_token=("min_token", "min")).reset_index()
    per_site["site"] = per_site.site.astype(str)
    site_of = counts.site.astype(str).to_numpy()
    weight_sum = counts.weight_sum.to_numpy(dtype="float64")  # a NaN the SQL let in stays
    per_site["weight_sum"] = [float(np.sum(weight_sum[site_of == s])) for s in per_site.site]
    per_site["mean_top1_weight"] = (per_site.weight_sum / per_site.n_weighted.where(
        per_site.n_weighted > 0)).astype("float64")
    per_site["per_example"] = per_site.min_token < 0
    return experts_frame(store, run, per_site[["site", "n_routed", "n_zero", "mean_top1_weight",
                                               "n_weighted", "per_example"]])


def experts_frame(store, run, per_site: pd.DataFrame) -> pd.DataFrame:
    """The `experts` frame (COLUMNS, "*" first) from per-site counts of the rank-0 routes:
    site, n_routed, n_zero, mean_top1_weight, n_weighted, per_example (every route at
    token -1); the tokens each site should have seen come from the run's example lengths."""
    expected = expected_tokens(store, run).rename(columns={"n_expected": "n_tokens"})
    frame = common.sites_of(store, run, "expert")[["site"]].merge(per_site, on="site", how="left")
    frame = frame.merge(expected, on="site", how="left")
    # the run's examples with a route: only where a site routes per example (or has no
    # rank-0 route, whose NaN flag reads as true) — a count over every route otherwise spared
    n_examples = (route_examples(store, run)
                  if any(bool(flag) for flag in frame.per_example) else 0)
    frame["n_expected"] = [
        int(n_examples) if per_example else int(max(n_tokens or 0, routed))
        for per_example, n_tokens, routed in zip(frame.per_example, frame.n_tokens.fillna(0),
                                                 frame.n_routed)]
    frame["n_dropped"] = (frame.n_expected - frame.n_routed).clip(lower=0)
    frame["unprocessed_fraction"] = (frame.n_dropped + frame.n_zero) / frame.n_expected
    for column in ("n_routed", "n_zero", "n_weighted", "n_expected", "n_dropped"):
        frame[column] = frame[column].astype("int64")
    row = pooled(frame, "n_weighted", ["mean_top1_weight"],
                 sums=["n_expected", "n_routed", "n_dropped", "n_zero"])
    n_expected = int(row.n_expected.iloc[0])
    row["unprocessed_fraction"] = (int(row.n_dropped.iloc[0] + row.n_zero.iloc[0]) / n_expected
                                   if n_expected else None)
    return pd.concat([row, frame], ignore_index=True)[COLUMNS]
