"""Routing entropy per token and per site, in nats.

source "weights": the recorded top-k gate weights renormalised to sum to 1,
    H = ln S - Σ w ln w / S  with S = Σ w  (max ln k);
source "logits": softmax over every expert's router logit (when the run recorded logits),
    H = logsumexp(x) - Σ softmax(x)·x  (max ln E).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from routeviz.metrics import _common as common

# the entropy of one unit's rows: its renormalised top-k weights, or the softmax of its logits
# (v: a logit, m: the unit's largest); shared with the series' batched query (series.py)
WEIGHT_H = "ln(sum(weight)) - sum(weight * ln(weight)) / sum(weight)"
LOGIT_H = "ln(sum(exp(v - m))) + max(m) - sum(exp(v - m) * v) / sum(exp(v - m))"

# grouped by one integer per unit (common.unit_key): it hashes faster than two columns
WEIGHT_ENTROPY = """
SELECT site, any_value(example) AS example, any_value(token) AS token, 'weights' AS source,
       count(*) AS k,
       """ + WEIGHT_H + """ AS entropy
FROM routes WHERE run = $run AND kind = 'expert' AND weight > 0 {where}
GROUP BY site, """ + common.unit_key()

LOGIT_ENTROPY = """
SELECT site, any_value(example) AS example, any_value(token) AS token, 'logits' AS source,
       count(*) AS k,
       """ + LOGIT_H + """ AS entropy
FROM (SELECT site, example, token, list_max("values") AS m, unnest("values") AS v
      FROM logits WHERE run = $run {where})
GROUP BY site, """ + common.unit_key()

# per (site, source): the `sites` frame of `entropy` from per-unit entropies
SITE_STATS = ("avg(entropy) AS mean, median(entropy) AS median, ln(max(k)) AS max_possible, "
              "count(*) AS n_tokens")


@dataclass
class EntropyResult:
    sites: pd.DataFrame  # site, source, mean, median, max_possible, n_tokens
    tokens: pd.DataFrame  # site, example, token, source, entropy (at most `limit` rows)
    tokens_note: str  # how many per-token rows there are and how many are in .tokens


def entropy(store, run: str, site: str | None = None, example: int | None = None,
            limit: int = 100_000) -> EntropyResult:
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    site = common.require_site(store, run, site, "expert")
    where, params = "", {"run": run}
    if site is not None:
        where += " AND site = $site"
        params["site"] = site
    has_logits = bool(common.scalar(
        store, "SELECT EXISTS (SELECT 1 FROM logits WHERE run = $run)", {"run": run}))
    parts = [WEIGHT_ENTROPY.format(where=where)]
    if has_logits:
        parts.append(LOGIT_ENTROPY.format(where=where))
    per_token = " UNION ALL ".join(f"({q})" for q in parts)
    # per-token entropies, computed once, dropped at the end of the block
    with common.temp_view(store, per_token, params) as table:
        sites = common.df(store,
            f"SELECT site, source, {SITE_STATS} FROM {table} GROUP BY site, source", {})
        token_filter, token_params = "", {}
        if example is not None:
            token_filter = "WHERE example = $example"
            token_params["example"] = int(example)
        total = int(common.scalar(store, f"SELECT count(*) FROM {table} {token_filter}",
                                  token_params) or 0)
        tokens = common.df(store,
            f"SELECT site, example, token, source, entropy FROM {table} {token_filter} "
            f"ORDER BY example, token, site, source LIMIT {int(limit)}", token_params)
    order = common.sites_of(store, run, "expert").site.tolist()
    sites["order"] = sites.site.map({s: i for i, s in enumerate(order)})
    sites = sites.sort_values(["source", "order"], ascending=[False, True]).drop(columns="order")
    note = (f"{len(tokens)} of {total} per-token entropies"
            + (f" (capped at {limit})" if total > len(tokens) else ""))
    return EntropyResult(sites=sites.reset_index(drop=True), tokens=tokens, tokens_note=note)
