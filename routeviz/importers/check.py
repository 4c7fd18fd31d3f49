"""`routeviz check`: is a run's routing plausible, imported or traced?

    check_run(store, run) -> {"ok": bool, "problems": [{kind, site, layer, detail}],
                              "checked": [the kinds that ran]}

Problem kinds:
- `constant_layer`: every token of a site took the same expert set (a zero-filled capture:
  vLLM returns expert 0 where a fused kernel's capture failed, and at dense layers);
- `duplicate_ids`: an expert twice in one token's top-k;
- `ids_out_of_range`: an id below 0 or not below the site's number of experts;
- `token_count`: routed tokens, the tokens table and `examples.n_tokens` disagree;
- `silent_site`: a site the run's config lists that has no row;
- `degenerate_histogram`: a site whose expert histogram is far narrower than the rest of
  the run's (normalised entropy under half the run's median);
- `hook_vs_model`: a traced transformers run whose recorded experts differ from the top-k of
  the model's own `output_router_logits` (`routeviz.importers.check_hf`).
"""

from __future__ import annotations

import math

from routeviz.metrics import _common as common

KINDS = ("constant_layer", "duplicate_ids", "ids_out_of_range", "token_count", "silent_site",
         "degenerate_histogram", "hook_vs_model")

SETS = """SELECT site, min(layer) AS layer, count(*) AS n_units,
  count(DISTINCT chosen) AS n_sets, min(chosen) AS chosen
FROM (SELECT site, layer, example, token, list_sort(list(choice)) AS chosen
      FROM routes WHERE run = $run AND kind = 'expert' GROUP BY site, layer, example, token)
GROUP BY site"""

DUPLICATES = """SELECT site, min(layer) AS layer, count(*) AS n_tokens,
  min(example) AS example, arg_min(token, example) AS token, arg_min(choice, example) AS choice
FROM (SELECT site, layer, example, token, choice FROM routes
      WHERE run = $run AND kind = 'expert' GROUP BY ALL HAVING count(*) > 1)
GROUP BY site"""

RANGES = """SELECT site, min(layer) AS layer, min(choice) AS low, max(choice) AS high
FROM routes WHERE run = $run AND kind = 'expert' GROUP BY site"""

COUNTS = """SELECT coalesce(e.example, t.example, r.example) AS example, e.n_tokens,
  t.n_rows, r.max_token
FROM (SELECT example, any_value(n_tokens) AS n_tokens FROM examples WHERE run = $run
      GROUP BY example) e
FULL OUTER JOIN (SELECT example, count(*) AS n_rows FROM tokens WHERE run = $run
                 GROUP BY example) t USING (example)
FULL OUTER JOIN (SELECT example, max(token) AS max_token FROM routes WHERE run = $run
                 AND token >= 0 GROUP BY example) r USING (example)
ORDER BY example"""

HISTOGRAM = """SELECT site, min(layer) AS layer, choice, count(*) AS n FROM routes
WHERE run = $run AND kind = 'expert' GROUP BY site, choice"""


def problem(kind: str, site, layer, detail: str) -> dict:
    return {"kind": kind, "site": None if site is None else str(site),
            "layer": None if layer is None else int(layer), "detail": detail}


def check_run(store, run: str, model_check: bool = True) -> dict:
    run = common.require_run(store, run)
    facts = common.facts(store, run)
    params = {"run": run}
    problems = []
    problems += _constant(common.df(store, SETS, params))
    problems += _duplicates(common.df(store, DUPLICATES, params))
    problems += _ranges(common.df(store, RANGES, params), facts.config)
    problems += _counts(common.df(store, COUNTS, params), facts.has_tokens)
    problems += _silent(facts)
    problems += _degenerate(common.df(store, HISTOGRAM, params), facts.config)
    checked = list(KINDS[:-1])
    if model_check:
        from routeviz.importers.check_hf import hook_vs_model

        found, ran = hook_vs_model(store, run, facts)
        problems += [problem("hook_vs_model", *entry) for entry in found]
        if ran:
            checked.append("hook_vs_model")
    return {"run": run, "ok": not problems, "problems": problems, "checked": checked}


def _constant(sets) -> list:
    out = []
    for rec in sets.itertuples(index=False):
        if rec.n_units >= 2 and rec.n_sets == 1:
            out.append(problem("constant_layer", rec.site, rec.layer,
                               f"all {rec.n_units} tokens took experts {list(rec.chosen)}: a "
                               "zero-filled or failed capture, or a dense layer routed as MoE"))
    return out


def _duplicates(dups) -> list:
    return [problem("duplicate_ids", rec.site, rec.layer,
                    f"{rec.n_tokens} token(s) list an expert twice in their top-k, first "
                    f"example {rec.example} token {rec.token} (expert {rec.choice})")
            for rec in dups.itertuples(index=False)]


def _n_experts(config: dict, site: str):
    per_site = (config.get("sites") or {}).get(site) or {}
    stated = per_site.get("n_experts") if isinstance(per_site, dict) else None
    if stated is None:
        declared = config.get("n_experts")
        stated = declared.get(site) if isinstance(declared, dict) else declared
    try:
        return int(stated) if stated is not None else None
    except (TypeError, ValueError):
        return None


def _ranges(ranges, config: dict) -> list:
    out = []
    for rec in ranges.itertuples(index=False):
        n = _n_experts(config, str(rec.site))
        if rec.low < 0:
            out.append(problem("ids_out_of_range", rec.site, rec.layer,
                               f"expert id {int(rec.low)} is negative"))
        elif n is not None and rec.high >= n:
            out.append(problem("ids_out_of_range", rec.site, rec.layer,
                               f"expert id {int(rec.high)} is not below the site's {n} experts"))
    return out


def _counts(counts, has_tokens: bool) -> list:
    out = []
    for rec in counts.itertuples(index=False):
        n_tokens = None if _missing(rec.n_tokens) else int(rec.n_tokens)
        n_rows = None if _missing(rec.n_rows) else int(rec.n_rows)
        routed = None if _missing(rec.max_token) else int(rec.max_token) + 1
        where = f"example {int(rec.example)}"
        if n_tokens is not None and has_tokens and n_rows != n_tokens:
            out.append(problem("token_count", None, None, f"{where}: examples.n_tokens is "
                               f"{n_tokens} but the tokens table has {n_rows or 0} row(s)"))
        known = n_tokens if n_tokens is not None else (n_rows if has_tokens else None)
        if routed is not None and known is not None and routed > known:
            out.append(problem("token_count", None, None, f"{where}: routes reach token "
                               f"{routed - 1}, but the example has {known} token(s)"))
    return out


def _silent(facts) -> list:
    listed = facts.config.get("sites")
    if not isinstance(listed, dict):
        return []
    fired = set(facts.sites.site)
    return [problem("silent_site", site, None, "listed in the run's config but never routed a "
                    "token") for site in listed if site not in fired]


def _degenerate(histogram, config: dict) -> list:
    entropy = {}
    for site, rows in histogram.groupby("site", sort=False):
        n = _n_experts(config, str(site)) or int(rows.choice.max()) + 1
        if n < 2:
            continue
        total = rows.n.sum()
        shares = rows.n / total
        h = float(-(shares * shares.map(math.log)).sum()) / math.log(n)
        entropy[str(site)] = (h, int(rows.layer.min()), rows.sort_values("n").iloc[-1])
    if len(entropy) < 3:
        return []
    values = sorted(h for h, _, _ in entropy.values())
    median = values[len(values) // 2]
    out = []
    for site, (h, layer, top) in entropy.items():
        if median > 0 and h < median / 2:
            out.append(problem("degenerate_histogram", site, layer,
                               f"normalised expert entropy {h:.2f} against the run's median "
                               f"{median:.2f}; expert {int(top.choice)} takes "
                               f"{int(top.n)} of its choices"))
    return out


def _missing(value) -> bool:
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
