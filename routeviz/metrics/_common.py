"""Checks and small lookups every analysis shares, and the one way analyses run SQL.

The query interface (routeviz/query.py) — every analysis, old or new, uses only this, so
DuckDB and Spark are two back ends of one code path:

    common.df(store, sql, params) -> pandas.DataFrame
    common.scalar(store, sql, params) -> the first value of the first row (or None)
    with common.temp_view(store, source, params) as name: ...
        `source` is a pandas DataFrame or a SQL query; `name` is a private view of it
        (a SQL source is computed once) until the block ends. Use it, or CTEs, for an
        intermediate result read several times — never CREATE TEMP TABLE.
    common.facts(store, run) -> routeviz.query.RunFacts (kinds, sites, tags, n_layers,
        n_experts per site, n_examples, config), cached per store refresh.

SQL is written in DuckDB's dialect over the views runs, examples, tokens, tags, routes,
logits, embeddings, with named parameters `$name` (params: a dict; keys the query does not
use are ignored; values str/int/float/bool/None or lists of those). On Spark it is
translated by sqlglot (routeviz.store.spark.spark_sql), so keep to SQL both engines have:
no arg_max/max(x, n) top-n aggregates (use row_number() in a subquery), no
list(x ORDER BY y) (aggregate per position instead), one unnest per SELECT, no QUALIFY,
no UBIGINT. tests/test_spark.py runs every analysis on both engines and compares numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from routeviz.errors import RoutevizError, choose

FOCUS_KINDS = ("expert", "keep", "exit", "soft")  # soft: the token's dominant expert

# One BIGINT per unit so joins and GROUP BYs hash integers: example · 2^24 + token + 1.
# The +1 keeps a whole-example row (token -1) inside its own example's block; without it
# (example e, token -1) read back as (e - 1, token 16777215).
UNIT_KEY = 16_777_216  # 2^24 token positions per example


def unit_key(example: str = "example", token: str = "token") -> str:
    """SQL for the unit key of columns `example`, `token` (e.g. `unit_key("r.example", "r.token")`)."""
    return f"({example} * {UNIT_KEY} + {token} + 1)"


def unit_example(key: str = "u") -> str:
    """SQL reading the example back from a `unit_key` column."""
    return f"({key} // {UNIT_KEY})"


def unit_token(key: str = "u") -> str:
    """SQL reading the token (-1 for a whole-example unit) back from a `unit_key` column."""
    return f"({key} % {UNIT_KEY} - 1)"


def df(store, query: str, params: dict | None = None) -> pd.DataFrame:
    """A query's result as a DataFrame (DuckDB-dialect SQL, named `$parameters`)."""
    return store.engine.query(query, params or {})


def scalar(store, query: str, params: dict | None = None):
    frame = df(store, query, params)
    if frame.empty:
        return None
    value = frame.iat[0, 0]
    return None if value is None or value is pd.NA or (
        isinstance(value, float) and math.isnan(value)) else value


def temp_view(store, source, params: dict | None = None):
    """Context manager: a private view name for a DataFrame or a query, dropped at the end."""
    return store.engine.temp_view(source, params or {})


def facts(store, run: str):
    return store.facts(run)


def memo(store, key, compute):
    """compute() once per store refresh for `key` (store.memo), else every call."""
    keep = getattr(store, "memo", None)
    return keep(key, compute) if keep is not None else compute()


def require_run(store, run: str) -> str:
    if run is None:
        raise RoutevizError("no run given; available: " + (", ".join(store.run_names()) or "(none)"))
    return store.require_run(run)


def kinds_recorded(store, run: str) -> list[str]:
    return list(store.facts(run).kinds)


def require_kind(store, run: str, kind: str, allowed=FOCUS_KINDS) -> str:
    """`kind` must be a known kind and recorded in `run`; the error lists what is recorded."""
    choose("kind", kind, allowed)
    recorded = kinds_recorded(store, run)
    if kind not in recorded:
        shown = ", ".join(recorded) if recorded else "(no routes at all)"
        raise RoutevizError(f"run {run!r} has no {kind!r} routes; it recorded: {shown}")
    return kind


def sites_of(store, run: str, kind: str | None = None) -> pd.DataFrame:
    """Sites of a run (optionally of one kind) with their layer, in model order."""
    return store.facts(run).sites_of(kind)


def require_site(store, run: str, site: str | None, kind: str | None = None) -> str | None:
    if site is None or site == "*":
        return None
    return choose("site", site, sites_of(store, run, kind)["site"].tolist())


def tag_names(store, run: str) -> list[str]:
    return list(store.facts(run).tags)


def require_tags(store, run: str, tags) -> list[str]:
    """The tag families to use: all of the run's, or the named ones (each must exist)."""
    available = tag_names(store, run)
    if isinstance(tags, str):
        tags = [tags]
    if not tags:
        if not available:
            raise RoutevizError(f"run {run!r} has no tags; Focus/Cover needs tagged examples or "
                                "tokens (trace with tags=..., or a dataset that carries tags)")
        return available
    for name in tags:
        if name not in available:
            listed = ", ".join(available) if available else "(none: the run has no tags)"
            raise RoutevizError(f"unknown tag {name!r} in run {run!r}; available: {listed}")
    return sorted(set(tags))


def config_of(store, run: str) -> dict:
    return dict(store.facts(run).config)


def n_experts_by_site(store, run: str, sites) -> dict[str, int]:
    """Experts per site from runs.config `n_experts` (int or {site: int}); where the config
    does not say, 1 + the largest expert id recorded at that site."""
    known = store.facts(run).n_experts
    return {site: int(known.get(site, 0)) for site in sites}


def n_layers_of(store, run: str) -> int:
    """Model depth from runs.config `n_layers`, else 1 + the deepest layer recorded."""
    return int(store.facts(run).n_layers)


def records(df: pd.DataFrame) -> list[dict]:
    """DataFrame -> list of plain-Python dicts (NaN -> None), ready for json.dumps."""
    return [{k: plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is pd.NA or value is pd.NaT:
        return None
    return value
