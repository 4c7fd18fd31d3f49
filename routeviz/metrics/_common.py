"""Checks and small lookups every analysis shares: run, kind, site and tag validation,
n_experts / n_layers from runs.config, and frame-to-JSON conversion."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from routeviz.errors import RoutevizError, choose

FOCUS_KINDS = ("expert", "keep", "exit")


def require_run(store, run: str) -> str:
    if run is None:
        raise RoutevizError("no run given; available: " + (", ".join(store.run_names()) or "(none)"))
    return store.require_run(run)


def scalar(store, query: str, params=()):
    if isinstance(params, dict):
        row = execute(store.con, query, params).fetchone()
    else:
        row = store.con.execute(query, list(params)).fetchone()
    return None if row is None else row[0]


def kinds_recorded(store, run: str) -> list[str]:
    rows = store.con.execute(
        "SELECT DISTINCT kind FROM routes WHERE run = ? ORDER BY kind", [run]).fetchall()
    return [r[0] for r in rows]


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
    where, params = "run = ?", [run]
    if kind is not None:
        where += " AND kind = ?"
        params.append(kind)
    return store.query_df(
        f"SELECT site, min(layer) AS layer, count(*) AS n_rows FROM routes WHERE {where} "
        "GROUP BY site ORDER BY layer, site", params)


def require_site(store, run: str, site: str | None, kind: str | None = None) -> str | None:
    if site is None or site == "*":
        return None
    return choose("site", site, sites_of(store, run, kind)["site"].tolist())


def tag_names(store, run: str) -> list[str]:
    rows = store.con.execute(
        "SELECT DISTINCT name FROM tags WHERE run = ? ORDER BY name", [run]).fetchall()
    return [r[0] for r in rows]


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
    try:
        return store.config(run)
    except (ValueError, TypeError):
        return {}


def n_experts_by_site(store, run: str, sites) -> dict[str, int]:
    """Experts per site from runs.config `n_experts` (int or {site: int}); where the config
    does not say, 1 + the largest expert id recorded at that site."""
    cfg = config_of(store, run).get("n_experts")
    observed = dict(store.con.execute(
        "SELECT site, max(choice) + 1 FROM routes WHERE run = ? AND kind = 'expert' GROUP BY site",
        [run]).fetchall())
    out = {}
    for site in sites:
        declared = cfg.get(site) if isinstance(cfg, dict) else cfg
        try:
            declared = int(declared) if declared is not None else None
        except (TypeError, ValueError):
            declared = None
        seen = int(observed.get(site) or 0)
        out[site] = max(declared or 0, seen)
    return out


def n_layers_of(store, run: str) -> int:
    """Model depth from runs.config `n_layers`, else 1 + the deepest layer recorded."""
    declared = config_of(store, run).get("n_layers")
    try:
        declared = int(declared) if declared is not None else None
    except (TypeError, ValueError):
        declared = None
    deepest = scalar(store, "SELECT max(greatest(layer, CASE WHEN kind = 'exit' THEN choice "
                            "ELSE layer END)) FROM routes WHERE run = ?", [run])
    seen = int(deepest) + 1 if deepest is not None else 0
    return max(declared or 0, seen)


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


_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def execute(con, query: str, params: dict | None = None):
    """con.execute with only the named parameters the query uses (DuckDB refuses extras)."""
    used = set(_PARAM.findall(query))
    return con.execute(query, {k: v for k, v in (params or {}).items() if k in used})


def df(store, query: str, params: dict) -> pd.DataFrame:
    """A query's result as a DataFrame, with named parameters."""
    return execute(store.con, query, params).df()
