"""The one listing of a store's series: runs whose config holds {"series", "step"}.

A series is one model recorded at several training steps over the same probe set, whether
probed during training (`routeviz.probe`) or traced afterwards from checkpoints
(`routeviz trace --series`); both write `{"series", "step", "checkpoint"}` into the run's
config, and everything that lists a series (metrics, the Timeline page, the CLI, training
scripts) reads it here.
"""

from __future__ import annotations

import pandas as pd

from routeviz.errors import RoutevizError, choose

# a config that is not a JSON object (NULL, "") reads as no series; CASE guards the parse
SERIES_OF = "CASE WHEN config LIKE '{{%' THEN json_extract_string(config, '$.{key}') END"

SERIES_RUNS = f"""
SELECT *, TRY_CAST({SERIES_OF.format(key="step")} AS BIGINT) AS step,
       {SERIES_OF.format(key="checkpoint")} AS checkpoint
FROM runs WHERE {SERIES_OF.format(key="series")} = $series
ORDER BY step NULLS LAST, created, run"""

# a series' runs as a CTE for queries that join on them
SERIES_CTE = "sr AS (" + SERIES_RUNS + ")"

# the listing: each run with its count of route rows, as `Store.runs()` gives it
LISTING = ("WITH " + SERIES_CTE + " SELECT sr.*, coalesce(c.n_routes, 0) AS n_routes FROM sr "
           "LEFT JOIN (SELECT run, count(*) AS n_routes FROM routes "
           "WHERE run IN (SELECT run FROM sr) GROUP BY run) c USING (run) "
           "ORDER BY step NULLS LAST, created, run")


def _query(store, sql: str, params: dict) -> pd.DataFrame:
    from routeviz.store.core import Store, open_store

    if isinstance(store, Store) or hasattr(store, "engine"):
        return store.engine.query(sql, params)
    handle = open_store(store)
    try:
        return handle.engine.query(sql, params)
    finally:
        handle.close()


def series_names(store) -> list[str]:
    """The series recorded in `store` (a Store or a path), sorted by name."""
    names = _query(store, f"SELECT DISTINCT {SERIES_OF.format(key='series')} AS series "
                          "FROM runs ORDER BY series", {})
    return [str(n) for n in names.series if n is not None and not pd.isna(n)]


def series_runs(store, series: str, *, missing: str = "raise") -> pd.DataFrame:
    """The runs of `series`, one row per step, ordered by step: the `runs` table's columns
    plus `step` (int64), `checkpoint` (str or None) and `n_routes`. An unknown series raises, listing
    the ones there are, unless `missing="empty"`."""
    if series is None:
        raise RoutevizError("no series given; available: "
                            + (", ".join(series_names(store)) or "(none)"))
    runs = _query(store, LISTING, {"series": series})
    if runs.empty:
        if missing == "empty":
            return runs
        choose("series", series, series_names(store))  # raises, listing what exists
    if runs.step.isna().any():
        bad = ", ".join(runs.run[runs.step.isna()])
        raise RoutevizError(f"run(s) {bad} of series {series!r} have no step in their config")
    runs["step"] = runs.step.astype("int64")
    runs["checkpoint"] = runs.checkpoint.astype(object).where(runs.checkpoint.notna(), None)
    return runs.reset_index(drop=True)
