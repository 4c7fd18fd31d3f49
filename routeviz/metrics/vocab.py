"""Vocabulary specialization (OLMoE §5): for each token (by its text, the tokens table's
surface string; routeviz records no vocabulary id) at an expert site, the share of its
occurrences routed to its most frequent expert.

  topk:  share of occurrences whose experts at any of the top-k ranks include the token's
         most frequent expert — OLMoE's definition (N^(k)_{x,E} / N_x: routed to E among
         the top-k); chance k/E (a uniformly random top-k router picks E with prob. k/E);
  top1:  the same over the rank-0 choice only; chance 1/E.
  corrected = (p − chance) / (1 − chance): 0 for chance, 1 for a router that sends every
  occurrence of a token to one expert.
Tokens seen fewer than `min_count` times at a site are left out (a token seen once is
trivially "specialized"). Per site, p is pooled over the tokens weighted by occurrences
(Σ best / Σ n); "*" pools every site the same way, with the occurrence-weighted chance.
k = the ranks a site records, E = its experts (runs.config n_experts, else the largest id).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from routeviz.errors import RoutevizError
from routeviz.metrics import _common as common
from routeviz.metrics._pooled import pooled
from routeviz.metrics.load import expert_counts

# per (site, token text): occurrences with a top choice (n), the most frequent expert at any
# rank and its count (best_any), the largest rank-0 count of one expert (best_top1); read
# once into a temporary table that the per-site sums and the top tokens share
_PER_TOKEN = """
WITH occ AS (SELECT r.site, t.text, r.choice, count(*) AS n_any,
               sum(CASE WHEN r.rank = 0 THEN 1 ELSE 0 END) AS n_top1
        FROM routes r JOIN (SELECT example, token, text FROM tokens WHERE run = $run{sample}) t
          ON t.example = r.example AND t.token = r.token
        WHERE r.run = $run AND r.kind = 'expert' AND r.token >= 0{route_sample}
        GROUP BY r.site, t.text, r.choice),
ranked AS (SELECT site, text, choice, n_any,
                  sum(n_top1) OVER (PARTITION BY site, text) AS n,
                  max(n_top1) OVER (PARTITION BY site, text) AS best_top1,
                  row_number() OVER (PARTITION BY site, text ORDER BY n_any DESC, choice) AS pick
           FROM occ)
SELECT site, text, n, choice AS expert, n_any AS best_any, best_top1
FROM ranked WHERE pick = 1 AND n >= $min_count"""


@dataclass
class VocabResult:
    sites: pd.DataFrame  # site, k, n_experts, n_tokens, n_occurrences, topk, topk_chance,
    #                      topk_corrected, top1, top1_chance, top1_corrected (then "*")
    tokens: pd.DataFrame  # site, text, n, expert, topk, top1 — the `limit` most frequent
    min_count: int


def vocab_specialization(store, run: str, min_count: int = 5, limit: int = 50,
                         sample: str = "", routes: pd.DataFrame | None = None) -> VocabResult:
    """sample: an SQL condition on `example` (`_sample.example_sample`): the occurrences of
    a seeded sample of whole examples only (`metrics --json` on runs over `max_scan_units`
    tokens, as co-activation and consecutive tokens); "" reads every occurrence. routes:
    instead of reading the routes again, the run's (sampled) expert routes already read
    (`coactivation.read_routes`, with the same `sample`), counted in numpy."""
    if routes is not None:
        return counted_vocab(store, run, *vocab_inputs(store, run, routes, sample), min_count,
                             limit)
    run = _require_texts(store, run)
    p = {"run": run, "min_count": int(min_count)}
    per_token_sql = _PER_TOKEN.format(
        sample=f" AND ({sample})" if sample else "",
        route_sample=f" AND ({sample.replace('example', 'r.example')})" if sample else "")
    with common.temp_view(store, per_token_sql, p) as per_token:
        sums = common.df(store,
            "SELECT site, count(*) AS n_tokens, sum(n) AS n_occurrences, sum(best_any) AS "
            f"best_any, sum(best_top1) AS best_top1 FROM {per_token} GROUP BY site")
        tokens = common.df(store,
            f"SELECT site, text, n, expert, best_any, best_top1 FROM {per_token} "
            f"ORDER BY n DESC, site, text LIMIT {int(limit)}").astype({"n": "int64"})
    return _result(store, run, sums, tokens, min_count)


def _require_texts(store, run: str) -> str:
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    if not common.scalar(store, "SELECT EXISTS (SELECT 1 FROM tokens WHERE run = $run)",
                         {"run": run}):
        raise RoutevizError(f"run {run!r} recorded no token texts; vocabulary specialization "
                            "groups occurrences by token text")
    return run


def vocab_inputs(store, run: str, routes: pd.DataFrame, sample: str = "") -> tuple:
    """What `counted_vocab` counts from routes already read: (names, texts, routes), the
    queries asked here (the texts of the sampled examples' tokens; the per-expert counts
    the result reads, once per store refresh), so that the counting queries nothing and
    may run in another thread (`metrics --json`). Raises as vocab_specialization does."""
    run = _require_texts(store, run)
    names = np.asarray(common.sites_of(store, run, "expert").site.astype(str).tolist(),
                       dtype=object)
    texts = common.df(store, f"SELECT {common.unit_key()} AS u, text FROM tokens "
                      "WHERE run = $run" + (f" AND ({sample})" if sample else ""), {"run": run})
    expert_counts(store, run)  # memo: the result reads it
    return names, texts, routes


def counted_vocab(store, run: str, names, texts: pd.DataFrame, routes: pd.DataFrame,
                  min_count: int = 5, limit: int = 50) -> VocabResult:
    """vocab_specialization from `vocab_inputs`, counted in numpy (no query: the store's
    facts and memo only)."""
    per_token = _per_token_of(names, texts, routes, int(min_count))
    sums = (per_token.groupby("site", sort=False)
            .agg(n_tokens=("n", "size"), n_occurrences=("n", "sum"),
                 best_any=("best_any", "sum"), best_top1=("best_top1", "sum"))
            .reset_index())
    tokens = (per_token.sort_values(["n", "site", "text"], ascending=[False, True, True])
              .head(int(limit)).reset_index(drop=True)).astype({"n": "int64"})
    return _result(store, run, sums, tokens, min_count)


def _result(store, run: str, sums: pd.DataFrame, tokens: pd.DataFrame,
            min_count: int) -> VocabResult:
    ranks = expert_counts(store, run).groupby("site", sort=False).max_rank.max().reset_index()
    ranks = pd.DataFrame({"site": ranks.site.astype(str),
                          "k": ranks.max_rank.astype("int64") + 1})  # the ranks a site records
    sites = common.sites_of(store, run, "expert")[["site"]].merge(ranks, on="site")
    sites = sites.merge(sums, on="site", how="left").fillna(0)
    n_experts = common.n_experts_by_site(store, run, sites.site)
    sites["n_experts"] = sites.site.map(n_experts).astype("int64")
    n = sites.n_occurrences.where(sites.n_occurrences > 0)
    sites["topk"] = sites.best_any / n
    sites["topk_chance"] = (sites.k / sites.n_experts).clip(upper=1.0)
    sites["top1"] = sites.best_top1 / n
    sites["top1_chance"] = 1.0 / sites.n_experts
    for column in ("k", "n_tokens", "n_occurrences"):
        sites[column] = sites[column].astype("int64")
    columns = ["topk", "topk_chance", "top1", "top1_chance"]
    sites = pd.concat([pooled(sites, "n_occurrences", columns, sums=["n_tokens"]), sites],
                      ignore_index=True)
    sites[["k", "n_experts"]] = sites[["k", "n_experts"]].astype("Int64")  # "*": none
    for name in ("topk", "top1"):
        sites[f"{name}_corrected"] = [corrected(v, c) for v, c
                                      in zip(sites[name], sites[f"{name}_chance"])]
    tokens["topk"] = tokens.pop("best_any").astype("float64") / tokens.n  # in pandas: Spark
    tokens["top1"] = tokens.pop("best_top1").astype("float64") / tokens.n  # divides decimals
    keep = ["site", "k", "n_experts", "n_tokens", "n_occurrences", "topk", "topk_chance",
            "topk_corrected", "top1", "top1_chance", "top1_corrected"]
    return VocabResult(sites=sites[keep], tokens=tokens, min_count=int(min_count))


def _per_token_of(names: np.ndarray, texts: pd.DataFrame, routes: pd.DataFrame,
                  min_count: int) -> pd.DataFrame:
    """`_PER_TOKEN` (site, text, n, expert, best_any, best_top1) from routes already read
    (idx, token, u, choice, rank; idx into `names`, the expert sites in model order) and the
    texts (u, text) of their examples' tokens: the same counts as the SQL join, without a
    second scan of the route files."""
    token_u = texts.u.to_numpy(dtype="int64")
    order = np.argsort(token_u, kind="stable")
    token_u = token_u[order]
    codes, vocab = pd.factorize(texts.text.to_numpy(dtype=object)[order], use_na_sentinel=False)
    u = routes.u.to_numpy(dtype="int64")
    at = np.minimum(np.searchsorted(token_u, u), max(len(token_u) - 1, 0))
    joined = ((routes.token.to_numpy() >= 0) & (len(token_u) > 0)
              & (token_u[at] == u if len(token_u) else False))
    site = routes.idx.to_numpy(dtype="int64")[joined]
    text = codes[at[joined]].astype("int64")
    choice = routes.choice.to_numpy(dtype="int64")[joined]
    top = routes["rank"].to_numpy()[joined] == 0
    n_choices = int(choice.max()) + 1 if len(choice) else 1
    key = (site * len(vocab) + text) * n_choices + choice
    cells, cell_of = np.unique(key, return_inverse=True)  # (site, text, choice), sorted
    n_any = np.bincount(cell_of, minlength=len(cells))
    n_top1 = np.bincount(cell_of, weights=top, minlength=len(cells)).astype("int64")
    group = cells // n_choices  # (site, text)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]]) if len(cells) else \
        np.zeros(0, dtype="int64")
    n = np.add.reduceat(n_top1, starts) if len(cells) else n_top1
    best_top1 = np.maximum.reduceat(n_top1, starts) if len(cells) else n_top1
    most = np.maximum.reduceat(n_any, starts) if len(cells) else n_any
    # the most frequent expert at any rank, ties to the smallest id (choices sorted)
    of_group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(cells)]))
    first = np.full(len(starts), len(cells))
    np.minimum.at(first, of_group[n_any == most[of_group]],
                  np.flatnonzero(n_any == most[of_group]))
    keep = n >= min_count
    groups, picked = group[starts][keep], first[keep]
    return pd.DataFrame({"site": names[groups // max(len(vocab), 1)],
                         "text": vocab[groups % max(len(vocab), 1)] if len(vocab) else [],
                         "n": n[keep], "expert": (cells[picked] % n_choices).astype("int32"),
                         "best_any": n_any[picked], "best_top1": best_top1[keep]})


def corrected(p, chance):
    """(p − chance) / (1 − chance); None where p is undefined or chance is 1."""
    if p is None or pd.isna(p) or chance is None or pd.isna(chance) or chance >= 1:
        return None
    return float((p - chance) / (1 - chance))
