"""Per-expert profiles for the expert-token gallery (LIMoE-style): the tag values and token
strings an expert most reliably gets, and example contexts.

For an item x (a token string or a tag value) and an expert e, with n_both units of x routed
to e (at any rank) of the n_x units of x:

    p_expert = P(e | x) = n_both / n_x
    score    = the Wilson lower bound of P(e | x) (95%, z = 1.96): count-aware, so a token
               seen twice and routed twice to e (score 0.34) ranks below one routed 45 times
               in 50 (0.79); lift alone saturates at 1 / P(e) for every item always routed to e
    lift     = P(x | e) / P(x) = P(e | x) / P(e)  (shown, not ranked by)

Items are ranked by score; those seen fewer than `min_count` times with the expert are left
out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from routeviz.analysis.contexts import context_windows
from routeviz.metrics import _common as common
from routeviz.metrics.focus_cover import _has, all_tag_values
from routeviz.metrics.unit_counts import example_lengths_sql, unit_counts


@dataclass
class ProfileResult:
    tags: pd.DataFrame  # site, expert, name, value, count, n_expert, n_tag, lift, precision,
    #                     p_expert, score
    tokens: pd.DataFrame  # site, expert, text, count, n_expert, n_text, lift, p_expert, score
    examples: pd.DataFrame  # site, expert, example, token, text, left, right, weight
    unit: str


def expert_profiles(store, run: str, site: str | None = None, tag=None, top: int = 10,
                    min_count: int = 2, contexts: int = 5, window: int = 4,
                    tag_profiles: bool = True) -> ProfileResult:
    """tag_profiles=False leaves `tags` empty (expert cards read tokens and contexts only)."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    site = common.require_site(store, run, site, "expert")
    per_token = _has(store, "routes", run, "kind = 'expert' AND token >= 0")
    unit = "token" if per_token else "example"
    tags = _tag_profiles(store, run, site, tag, unit, top, min_count) if tag_profiles \
        else pd.DataFrame(columns=TAG_COLUMNS)
    tokens = _token_profiles(store, run, site, top, min_count) if per_token else pd.DataFrame(
        columns=TOKEN_COLUMNS)
    examples = _contexts(store, run, site, contexts, window)
    return ProfileResult(tags=tags, tokens=tokens, examples=examples, unit=unit)


Z = 1.96  # the Wilson bound's normal quantile (95%)
TOKEN_COLUMNS = ["site", "expert", "text", "count", "n_expert", "n_text", "lift", "p_expert",
                 "score"]


def wilson_lower(count, n, z: float = Z):
    """The Wilson score interval's lower bound for a proportion count / n (arrays or scalars)."""
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    p = np.asarray(count, dtype=float) / n
    z2 = z * z
    spread = z * np.sqrt(np.maximum(p * (1 - p) / n + z2 / (4 * n * n), 0.0))
    return np.maximum((p + z2 / (2 * n) - spread) / (1 + z2 / n), 0.0)


def _wilson_sql(count: str, n: str, z: float = Z) -> str:
    """wilson_lower as a SQL expression (DuckDB and Spark) over numeric columns."""
    def num(v: float) -> str:  # a double, not a decimal literal (Spark's decimals round)
        return f"CAST({v!r} AS DOUBLE)"

    z2 = z * z
    n = f"CAST({n} AS DOUBLE)"
    p = f"(CAST({count} AS DOUBLE) / {n})"
    return (f"greatest(({p} + {num(z2 / 2)} / {n} - {num(z)} * sqrt(greatest({p} * (1 - {p}) "
            f"/ {n} + {num(z2 / 4)} / ({n} * {n}), {num(0.0)}))) / (1 + {num(z2)} / {n}), "
            f"{num(0.0)})")


def _top_per_expert(df: pd.DataFrame, top: int) -> pd.DataFrame:
    df = df.sort_values(["site", "expert", "score", "count", "name", "value"],  # ties: by name
                        ascending=[True, True, False, False, True, True])
    return df.groupby(["site", "expert"], sort=False).head(top).reset_index(drop=True)


TAG_COLUMNS = ["site", "expert", "name", "value", "count", "n_expert", "n_tag", "lift",
               "precision", "p_expert", "score"]


def _tag_profiles(store, run, site, tag, unit, top, min_count) -> pd.DataFrame:
    columns = TAG_COLUMNS
    families = common.tag_names(store, run)
    if tag is not None:
        families = common.require_tags(store, run, tag)
    if not families:
        return pd.DataFrame(columns=columns)
    counts = unit_counts(store, run, "expert", all_tag_values(store, run, families), unit,
                         site=site)
    if unit == "token":
        n_units = common.scalar(store, f"SELECT sum(n) FROM ({example_lengths_sql(store, run)})",
                                {"run": run})
    else:
        n_units = common.scalar(store, "SELECT count(DISTINCT example) FROM routes "
                                       "WHERE run = $run", {"run": run})
    both = counts["both"].rename(columns={"choice": "expert", "n_both": "count"})
    both = both.merge(counts["active"].rename(columns={"choice": "expert",
                                                       "n_active": "n_expert"}),
                      on=["site", "expert"]).merge(counts["tag"], on=["name", "value"])
    both = both[both["count"] >= min_count].copy()
    both["precision"] = both["count"] / both.n_expert
    both["lift"] = both.precision / (both.n_tag / float(n_units or 1))
    both["p_expert"] = both["count"] / both.n_tag
    both["score"] = wilson_lower(both["count"], both.n_tag)
    return _top_per_expert(both, top)[columns]


def _token_profiles(store, run, site, top, min_count) -> pd.DataFrame:
    params = {"run": run, "min_count": int(min_count), "top": int(top)}
    site_filter = ""
    if site is not None:
        site_filter = " AND r.site = $site"
        params["site"] = site
    return common.df(store, 
        # texts get integer ids and units one integer key, so the big join hashes integers
        "WITH tok AS MATERIALIZED (SELECT example * 16777216 + token AS u, text, "
        "  CAST(dense_rank() OVER (ORDER BY text) AS INTEGER) AS text_id "
        "  FROM tokens WHERE run = $run), "
        "text_n AS (SELECT text_id, any_value(text) AS text, count(*) AS n_text FROM tok "
        "  GROUP BY text_id), "
        "total AS (SELECT count(*) AS n FROM tok), "
        "routed AS (SELECT r.site, r.choice AS expert, t.text_id FROM routes r "
        "  JOIN tok t ON t.u = r.example * 16777216 + r.token "
        f"  WHERE r.run = $run AND r.kind = 'expert'{site_filter}), "
        "per_expert AS (SELECT site, expert, count(*) AS n_expert FROM routed GROUP BY ALL), "
        "cell AS (SELECT site, expert, text_id, count(*) AS count FROM routed GROUP BY ALL), "
        "scored AS (SELECT c.site, c.expert, n.text, c.count, e.n_expert, n.n_text, "
        "  (c.count / e.n_expert) / (n.n_text / total.n) AS lift, "
        "  CAST(c.count AS DOUBLE) / n.n_text AS p_expert, "
        f"  {_wilson_sql('c.count', 'n.n_text')} AS score "
        "  FROM cell c JOIN per_expert e USING (site, expert) JOIN text_n n USING (text_id), "
        "  total WHERE c.count >= $min_count) "
        f"SELECT {', '.join(TOKEN_COLUMNS)} FROM ("
        "  SELECT *, row_number() OVER (PARTITION BY site, expert "
        "    ORDER BY score DESC, count DESC, text) AS place FROM scored) ranked "
        "WHERE place <= $top ORDER BY site, expert, score DESC, count DESC, text", params)


def _contexts(store, run, site, contexts, window) -> pd.DataFrame:
    """The `contexts` highest-weight units of each expert, with `window` tokens each side:
    slices of the example's original text where the store has it (routeviz.contexts).
    Once per store refresh for the same arguments (store.memo; a copy each time): the
    report and its expert cards both ask (~1 CPU-s each at 500 examples)."""
    key = ("expert_contexts", run, site, int(contexts), int(window))
    return common.memo(store, key, lambda: _contexts_of(store, run, site, contexts,
                                                        window)).copy()


def _contexts_of(store, run, site, contexts, window) -> pd.DataFrame:
    params = {"run": run, "n": int(contexts)}
    site_filter = ""
    if site is not None:
        site_filter = " AND site = $site"
        params["site"] = site
    # ties broken by (example, token), so the gallery is the same from run to run
    picks = common.df(store,
        "SELECT site, expert, example, token, weight FROM ("
        "  SELECT site, choice AS expert, example, token, coalesce(weight, 0) AS weight, "
        "    row_number() OVER (PARTITION BY site, choice "
        "      ORDER BY coalesce(weight, 0) DESC, example, token) AS place "
        f"  FROM routes WHERE run = $run AND kind = 'expert'{site_filter}) picked "
        "WHERE place <= $n ORDER BY site, expert, weight DESC, example, token", params)
    examples = sorted({int(e) for e in picks.example}) or [-1]
    windows = context_windows(store, run, examples)
    rows = []
    for rec in picks.itertuples(index=False):
        left, middle, right = windows(int(rec.example), int(rec.token), window)
        rows.append({"site": rec.site, "expert": int(rec.expert), "example": int(rec.example),
                     "token": int(rec.token), "text": middle, "left": left, "right": right,
                     "weight": rec.weight})
    return pd.DataFrame(rows, columns=["site", "expert", "example", "token", "text", "left",
                                       "right", "weight"])
