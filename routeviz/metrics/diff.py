"""Compare the routing of two runs over the same examples (two checkpoints, precisions or
models, an intervened run and the plain one): per site, top-1 agreement, flip rate and
Jaccard of the chosen sets, the tokens whose routing changed most, the sites whose routing
changed (and of those, the ones downstream of an intervention: not edited themselves), and
how much the model's output changed (routeviz.metrics.output_change).

A unit is (site, kind, example, token); exits are compared per (example, token) whatever
head they exited at (site "*"). Units present in one run only are counted, not compared.

Engines side by side (an import from vLLM, SGLang or Megatron against a trace, or two
imports): per site, `share_differing` is the share of tokens whose chosen set differs (the
number RL people need for the rollout/training mismatch), `first_divergence` the first
(example, token, layer) where the runs part, as Megatron's OFF/ON comparator reports it, and
`differing_units` the units that differ with each run's experts. Top-1 agreement needs both
runs' ranks to mean "best first": an imported run whose config says `rank_order` is
`expert-id` or `unknown` gets null top-1 numbers and a note saying why.
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
            "avg(jaccard) AS jaccard, count(*) FILTER (WHERE top1_a <> top1_b) AS n_flipped, "
            "avg(CAST(jaccard < 1 AS DOUBLE)) AS share_differing "
            f"FROM {table} WHERE in_a AND in_b GROUP BY site, kind")
        differing = _differing_units(store, table, params, top)
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
    ranked = {name: rank_order(store, name) for name in (run, against)}
    unranked = {name: order for name, order in ranked.items() if order != "score"}
    n_common, n_only_run, n_only_against = (int(v or 0) for v in coverage)
    if n_common == 0:
        bare = [name for name in (run, against) if _imported_without_model(store, name)]
        hint = (f"; {bare[0]!r} was imported without --model, so its sites are layers.N: "
                "import it with --model CKPT_DIR to get the trace's site names") if bare else ""
        raise RoutevizError(f"runs {run!r} and {against!r} share no routed tokens: diff "
                            f"compares two runs over the same examples{hint}")
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
    if unranked:
        name, meaning = next(iter(unranked.items()))
        notes.append(f"top-1 agreement not computed: run {name!r} has rank order {meaning!r} "
                     "(its top-k order does not put the best expert first); Jaccard and "
                     "share_differing compare the chosen sets")
        for frame in (sites, overall):
            frame[["top1_agreement", "flip_rate"]] = None
        sites["n_flipped"] = None
        changed = changed[changed.mean_jaccard < 1].assign(n_flipped=None)
    layers = common.df(store, "SELECT site, min(layer) AS layer FROM routes WHERE run = $a_run "
                       "GROUP BY site", {"a_run": run})
    sites["layer"] = sites.site.map(dict(zip(layers.site.astype(str), layers.layer)))
    changed_sites = [str(x) for x in sites.site[(sites.jaccard < 1) if unranked else
                                                (sites.n_flipped > 0) | (sites.jaccard < 1)]]
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
        "outputs": outputs, "notes": notes, "rank_order": ranked,
        "first_divergence": differing[0] if differing else None,
        "differing_units": differing,
    }


def _imported_without_model(store, run: str) -> bool:
    config = store.facts(run).config
    return isinstance(config.get("import"), dict) and not config.get("checkpoint")


def rank_order(store, run: str) -> str:
    """What a run's top-k order means: `score` (best first) for a traced run, the config's
    `rank_order` for an imported one (`expert-id`, `unknown`)."""
    order = store.facts(run).config.get("rank_order")
    return order if order in ("score", "expert-id", "unknown") else "score"


DIFFERING = """WITH d AS (SELECT site, kind, u FROM {table}
                WHERE in_a AND in_b AND jaccard < 1 AND kind = 'expert'),
first AS (SELECT d.site, d.u, min(r.layer) AS layer FROM d JOIN routes r
          ON r.run = $a_run AND r.site = d.site AND r.kind = 'expert' AND {key} = d.u
          GROUP BY d.site, d.u ORDER BY d.u, layer, d.site LIMIT {top})
SELECT f.site, f.u, f.layer, r.run, list_sort(list(r.choice)) AS experts
FROM first f JOIN routes r ON r.run IN ($a_run, $b_run) AND r.site = f.site
  AND r.kind = 'expert' AND {key} = f.u
GROUP BY f.site, f.u, f.layer, r.run"""


def _differing_units(store, table: str, params: dict, top: int) -> list[dict]:
    """The first `top` expert units (by example, token, layer) whose chosen sets differ,
    with each run's experts."""
    rows = common.df(store, DIFFERING.format(table=table, key=common.unit_key("r.example",
                                                                              "r.token"),
                                             top=int(top)), params)
    units = {}
    for rec in rows.itertuples(index=False):
        unit = units.setdefault((int(rec.u), int(rec.layer), str(rec.site)), {})
        unit["run" if rec.run == params["a_run"] else "against"] = [int(c) for c in rec.experts]
    out = []
    for (u, layer, site), experts in sorted(units.items()):
        example, token = divmod(u, common.UNIT_KEY)
        out.append({"example": example, "token": token - 1, "layer": layer, "site": site,
                    "run_experts": experts.get("run", []),
                    "against_experts": experts.get("against", [])})
    return out


def _intervened_sites(store, run: str) -> set:
    """Sites a run's config says were edited (routeviz.intervene)."""
    intervention = store.facts(run).config.get("intervention") or {}
    if not isinstance(intervention, dict):
        return set()
    sites = set(intervention.get("sites") or {})
    return sites | ({"*"} if "exit" in (intervention.get("disable") or ()) else set())
