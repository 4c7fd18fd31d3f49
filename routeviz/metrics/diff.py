"""Compare the routing of two runs over the same examples (two checkpoints, precisions or
models, an intervened run and the plain one): per site, top-1 agreement, flip rate and
Jaccard of the chosen sets, the tokens whose routing changed most, the sites whose routing
changed (and of those, the ones downstream of an intervention: not edited themselves), and
how much the model's output changed (routeviz.metrics.output_change).

A unit is (site, kind, example, token); exits are compared per (example, token) whatever
head they exited at (site "*"). Units present in one run only are counted, not compared.
"""

from __future__ import annotations

import pandas as pd

from routeviz.errors import RoutevizError
from routeviz.metrics import _common as common
from routeviz.metrics.output_change import output_change

# Chosen sets as 64-bit masks (bit c = choice c) when every choice is in 0..63, so Jaccard
# is two popcounts; otherwise as lists. Units keyed by one integer (common.unit_key).
MASK = "bit_or(CAST(1 AS BIGINT) << CAST(choice AS INTEGER))"
MASK_JACCARD = ("CAST(bit_count(a.chosen & b.chosen) AS DOUBLE) "
                "/ bit_count(a.chosen | b.chosen)")
LIST = "array_distinct(list(choice))"
LIST_JACCARD = ("CAST(array_length(array_intersect(a.chosen, b.chosen)) AS DOUBLE) "
                "/ array_length(array_distinct(array_concat(a.chosen, b.chosen)))")

SETS = """
{name} AS (
  SELECT CASE WHEN kind = 'exit' THEN '*' ELSE site END AS site, kind,
         {key} AS u, arg_min(choice, rank) AS top1, {chosen} AS chosen
  FROM routes WHERE run = ${name}_run AND kind IN ('expert', 'keep', 'exit')
  GROUP BY ALL)"""

JOINED = """WITH {a}, {b},
joined AS (
  SELECT site, kind, u, a.top1 AS top1_a, b.top1 AS top1_b,
         a.top1 IS NOT NULL AS in_a, b.top1 IS NOT NULL AS in_b, {jaccard} AS jaccard
  FROM a FULL OUTER JOIN b USING (site, kind, u))"""


def _joined_sql(store, params) -> str:
    low, high = common.df(store,
        "SELECT min(choice) AS low, max(choice) AS high FROM routes WHERE run IN ($a_run, $b_run) "
        "AND kind IN ('expert', 'keep', 'exit')", params).iloc[0]
    masks = not pd.isna(low) and low >= 0 and high < 63  # bit 63 is a signed BIGINT's sign
    chosen, jaccard = (MASK, MASK_JACCARD) if masks else (LIST, LIST_JACCARD)
    return JOINED.format(a=SETS.format(name="a", chosen=chosen, key=common.unit_key()),
                         b=SETS.format(name="b", chosen=chosen, key=common.unit_key()),
                         jaccard=jaccard)


def diff(store, run: str, against: str, top: int = 20) -> dict:
    """A JSON-able dict: run, against, counts of compared units, per-site agreement,
    an overall line per kind, and the `top` tokens whose routing changed most."""
    run = common.require_run(store, run)
    against = common.require_run(store, against)
    params = {"a_run": run, "b_run": against}
    # the joined units, computed once, dropped at the end of the block
    with common.temp_view(store, f"{_joined_sql(store, params)} SELECT * FROM joined",
                          params) as table:
        sites = common.df(store, 
            "SELECT site, kind, count(*) AS n_units, "
            "avg(CAST(top1_a = top1_b AS DOUBLE)) AS top1_agreement, "
            "avg(jaccard) AS jaccard, count(*) FILTER (WHERE top1_a <> top1_b) AS n_flipped "
            f"FROM {table} WHERE in_a AND in_b GROUP BY site, kind")
        coverage = common.df(store,
            "SELECT count(*) FILTER (WHERE in_a AND in_b) AS n_common, count(*) FILTER (WHERE "
            "in_a AND NOT in_b) AS n_only_a, count(*) FILTER (WHERE in_b AND NOT in_a) AS "
            f"n_only_b FROM {table}").iloc[0]
        overall = common.df(store, 
            "SELECT kind, count(*) AS n_units, avg(CAST(top1_a = top1_b AS DOUBLE)) AS "
            f"top1_agreement, avg(jaccard) AS jaccard FROM {table} WHERE in_a AND in_b "
            "GROUP BY kind ORDER BY kind")
        changed = common.df(store, 
            f"SELECT any_value({common.unit_example('x.u')}) AS example, "
            f"any_value({common.unit_token('x.u')}) AS token, "
            "any_value(t.text) AS text, count(*) AS n_sites, "
            "count(*) FILTER (WHERE top1_a <> top1_b) AS n_flipped, avg(jaccard) AS mean_jaccard "
            f"FROM {table} x LEFT JOIN (SELECT {common.unit_key()} AS u, text FROM tokens "
            "WHERE run = $a_run) t USING (u) WHERE in_a AND in_b "
            "GROUP BY x.u HAVING n_flipped > 0 OR mean_jaccard < 1 "
            f"ORDER BY n_flipped DESC, mean_jaccard, x.u LIMIT {int(top)}",
            {"a_run": run})
        mismatched = common.scalar(store, 
            "SELECT count(*) FROM (SELECT example, token, text FROM tokens WHERE run = $a_run) x "
            "JOIN (SELECT example, token, text FROM tokens WHERE run = $b_run) y "
            "USING (example, token) WHERE x.text IS DISTINCT FROM y.text", params)
    n_common, n_only_run, n_only_against = (int(v or 0) for v in coverage)
    if n_common == 0:
        raise RoutevizError(f"runs {run!r} and {against!r} share no routed tokens: diff "
                            "compares two runs over the same examples")
    order = {s: i for i, s in enumerate(common.sites_of(store, run).site)}
    sites["flip_rate"] = 1.0 - sites.top1_agreement
    sites["order"] = sites.site.map(order).fillna(len(order))
    sites = sites.sort_values(["kind", "order", "site"]).drop(columns="order")
    overall["flip_rate"] = 1.0 - overall.top1_agreement
    notes = []
    if n_only_run or n_only_against:
        notes.append(f"{n_only_run} unit(s) routed only in {run!r} and {n_only_against} only "
                     f"in {against!r} were not compared")
    if mismatched:
        notes.append(f"{mismatched} token(s) have different text in the two runs: the runs "
                     "may not be over the same inputs")
    changed_sites = [str(x) for x in sites.site[(sites.n_flipped > 0) | (sites.jaccard < 1)]]
    edited = _intervened_sites(store, run) | _intervened_sites(store, against)
    outputs = output_change(store, run, against)
    if outputs.get("note"):
        notes.append(outputs["note"])
    return {
        "run": run, "against": against, "n_common_units": n_common, "n_only_run": n_only_run,
        "n_only_against": n_only_against, "n_text_mismatch": int(mismatched),
        "overall": common.records(overall), "sites": common.records(sites),
        "changed_tokens": common.records(changed), "changed_sites": changed_sites,
        "intervened_sites": sorted(edited),
        "downstream_changed_sites": [x for x in changed_sites if x not in edited],
        "outputs": outputs, "notes": notes,
    }


def _intervened_sites(store, run: str) -> set:
    """Sites a run's config says were edited (routeviz.intervene)."""
    intervention = store.facts(run).config.get("intervention") or {}
    if not isinstance(intervention, dict):
        return set()
    sites = set(intervention.get("sites") or {})
    return sites | ({"*"} if "exit" in (intervention.get("disable") or ()) else set())
