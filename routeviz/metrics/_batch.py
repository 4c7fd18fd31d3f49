"""Several runs in one query (a series' steps, for the Timeline): the per-run queries of
`unit_counts` (lengths, the `tagged` and `active` unit sets) grouped by run as well, so a
21-step series costs a few queries instead of hundreds (each query plans the store's views
over every run's files: ~6 ms before it reads a row). Each mirrors the per-run SQL it is
named after; tests/test_metrics_series.py compares the batched results with the per-run
ones on the shipped series stores.

Parameters: $runs (the runs, a list), $unrecorded (those of them with neither token rows
nor examples.n_tokens)."""

from __future__ import annotations

import pandas as pd

from routeviz.metrics import _common as common


def run_params(store, runs) -> dict:
    """$runs and $unrecorded for `lengths_sql` and `unit_sets`."""
    runs = [str(run) for run in runs]
    recorded = set(common.df(store,
        "SELECT DISTINCT run FROM tokens WHERE list_contains($runs, run) UNION "
        "SELECT DISTINCT run FROM examples WHERE list_contains($runs, run) AND n_tokens IS NOT "
        "NULL", {"runs": runs}).run.astype(str))
    return {"runs": runs, "unrecorded": [run for run in runs if run not in recorded] or [""]}


def lengths_sql() -> str:
    """(run, example, n): `unit_counts.example_lengths_sql` for every run of $runs."""
    return ("SELECT run, example, max(n) AS n FROM ("
            "SELECT run, example, count(*) AS n FROM tokens WHERE list_contains($runs, run) "
            "AND token >= 0 GROUP BY run, example "
            "UNION ALL SELECT run, example, n_tokens FROM examples WHERE "
            "list_contains($runs, run) AND n_tokens IS NOT NULL "
            "UNION ALL SELECT run, example, max(token) + 1 FROM routes WHERE "
            "list_contains($unrecorded, run) GROUP BY run, example) GROUP BY run, example")


def kinds_frame(kinds: dict, top1: dict) -> pd.DataFrame:
    """run, kind, top1: the routes each run's `active` set reads (the rk view)."""
    return pd.DataFrame({"run": list(kinds), "kind": [kinds[r] for r in kinds],
                         "top1": [bool(top1[r]) for r in kinds]})


def unit_sets(tv_view: str, rk_view: str) -> list:
    """The CTEs `tagged` (run, u, tid) and `active` (run, site, choice, u) of
    `unit_counts.unit_sets` at unit "token", for every run of $runs. tv_view: run, name,
    value, tid (each run's `unit_counts.tag_ids`); rk_view: `kinds_frame`."""
    key = common.unit_key
    return [
        f"tv AS (SELECT run, name, value, tid FROM {tv_view})",
        f"rk AS (SELECT run, kind, top1 FROM {rk_view})",
        f"lengths AS MATERIALIZED ({lengths_sql()})",
        ("tagged AS MATERIALIZED (SELECT DISTINCT run, u, tid FROM ("
         f"SELECT t.run, {key('t.example', 't.token')} AS u, tv.tid FROM tags t "
         "JOIN tv USING (run, name, value) WHERE list_contains($runs, t.run) AND t.token >= 0 "
         f"UNION ALL SELECT run, {key('example', 'pos')} AS u, tid FROM ("
         "SELECT t.run, t.example, tv.tid, unnest(range(l.n)) AS pos FROM tags t "
         "JOIN tv USING (run, name, value) JOIN lengths l USING (run, example) "
         "WHERE list_contains($runs, t.run) AND t.token = -1)))"),
        ("picked AS (SELECT r.run, r.site, r.choice, r.example, r.token FROM routes r "
         "JOIN rk ON rk.run = r.run AND rk.kind = r.kind "
         "WHERE list_contains($runs, r.run) AND (NOT rk.top1 OR r.rank = 0))"),
        (f"active AS MATERIALIZED (SELECT run, site, choice, {key()} AS u FROM picked "
         f"WHERE token >= 0 UNION ALL SELECT run, site, choice, {key('example', 'pos')} AS u "
         "FROM (SELECT p.run, p.site, p.choice, p.example, unnest(range(l.n)) AS pos "
         "FROM picked p JOIN lengths l USING (run, example) WHERE p.token = -1))"),
    ]


COUNTS = (
    "SELECT run, 'active' AS part, site, choice, NULL::BIGINT AS tid, count(*) AS n, "
    "NULL::BIGINT AS u FROM active GROUP BY run, site, choice "
    "UNION ALL SELECT run, 'tag', NULL, NULL, tid, count(*), NULL FROM tagged GROUP BY run, tid "
    "UNION ALL SELECT a.run, 'both', a.site, a.choice, t.tid, count(*), NULL "
    "FROM active a JOIN tagged t USING (run, u) GROUP BY a.run, a.site, a.choice, t.tid")

# with the counts, in the same query (the CTEs computed once): the baseline's unit sets
# (`baseline.from_pairs`) and each run's token count (`_sample.n_units`)
PAIRS = (
    " UNION ALL SELECT run, 'pair_tag', NULL, NULL, tid, NULL, u FROM tagged "
    "UNION ALL SELECT run, 'pair_active', site, choice, NULL, NULL, u FROM active "
    "UNION ALL SELECT run, 'total', NULL, NULL, NULL, coalesce(sum(n), 0), NULL FROM lengths "
    "GROUP BY run")


def pairs_of(parts: pd.DataFrame) -> pd.DataFrame:
    """The `pairs` frame of `baseline.from_pairs` (part 0: u, id; part 1: u, site, choice)
    from one run's rows of COUNTS + PAIRS."""
    pairs = parts[parts.part.isin(["pair_tag", "pair_active"])]
    return pd.DataFrame({"part": (pairs.part == "pair_active").astype("int64").to_numpy(),
                         "u": pairs.u.to_numpy(dtype="int64"), "id": pairs.tid.to_numpy(),
                         "site": pairs.site.to_numpy(), "choice": pairs.choice.to_numpy()})
