"""Two runs side by side: do they cover the same inputs, which run is related to a run, and
which expert of one run "is" which expert of the other.

    input_difference(store, run, against) -> None, or one line saying how the inputs differ
        (example ids, token counts per example, token text)
    related_run(store, run) -> (name or None, why): same model and same inputs, else the same
        inputs (another model), else the most recent other run of the same model
    expert_matching(store, run_a, run_b) -> ExpertMatching(.pairs, .sites)
        Expert sites are paired in model order (the i-th expert site of each run). Within a
        pair, an expert's profile is the set of shared units (example, token) it was the top
        choice for; two experts' similarity is the cosine n_both / sqrt(n_a · n_b), and the
        experts are matched one-to-one (Hungarian, `identity.match`). Independently trained
        models number their experts arbitrarily: agreement is measured after the matching
        (`agreement_matched`) beside the raw by-id agreement (`agreement_by_id`). The
        matching is fitted on the units it is scored on, so it is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from routeviz.errors import RoutevizError
from routeviz.metrics import _common as common
from routeviz.metrics.identity import NO_MATCH, match
from routeviz.metrics.unit_counts import example_lengths_sql


def _lengths(store, run: str) -> pd.DataFrame:
    return common.df(store, example_lengths_sql(store, run), {"run": run})


def input_difference(store, run: str, against: str, refuse_disjoint: bool = False) -> str | None:
    """None when both runs have the same example ids, the same token count per example and
    the same token text; else one line saying what differs. refuse_disjoint: raise
    RoutevizError when the runs share no example at all."""
    run, against = common.require_run(store, run), common.require_run(store, against)
    a = _lengths(store, run).set_index("example")["n"]
    b = _lengths(store, against).set_index("example")["n"]
    only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
    both = a.index.intersection(b.index)
    if len(both) == 0:
        note = f"{run!r} and {against!r} share no example ids"
        if refuse_disjoint:
            raise RoutevizError(f"{note}: a comparison needs two runs over the same inputs")
        return note
    parts = []
    if len(only_a) or len(only_b):
        parts.append(f"{len(only_a)} example(s) only in {run!r}, {len(only_b)} only in "
                     f"{against!r}")
    lengths = int((a[both] != b[both]).sum())
    if lengths:
        parts.append(f"{lengths} of {len(both)} shared example(s) have different token counts")
    texts = common.scalar(store,
        "SELECT count(*) FROM (SELECT example, token, text FROM tokens WHERE run = $a) x "
        "JOIN (SELECT example, token, text FROM tokens WHERE run = $b) y USING (example, token) "
        "WHERE x.text IS DISTINCT FROM y.text", {"a": run, "b": against})
    if texts:
        parts.append(f"{int(texts)} token(s) have different text")
    if not parts:
        return None
    return f"{run!r} and {against!r} are not over the same inputs: " + "; ".join(parts)


def related_run(store, run: str, limit: int = 20) -> tuple[str | None, str]:
    """The run to compare `run` with, and why it was picked (or why none was)."""
    runs = store.runs()
    runs = runs[runs["run"].astype(str) != run]
    model = str(store.runs().set_index("run").loc[run, "model"])
    if runs.empty:
        return None, "no other run in the store"
    runs = runs.assign(model=runs["model"].astype(str)).sort_values("created", ascending=False)
    same_model = runs[runs["model"] == model]
    for candidates, why in ((same_model, "same model, same inputs"),
                            (runs[runs["model"] != model], "same inputs, model {model}")):
        for rec in candidates.head(limit).itertuples(index=False):
            if input_difference(store, run, str(rec.run)) is None:
                return str(rec.run), why.format(model=rec.model)
    if len(same_model):
        return str(same_model["run"].iloc[0]), ("most recent other run of the same model "
                                                "(its inputs differ)")
    return None, f"no other run of model {model!r} or over the same inputs"


@dataclass
class ExpertMatching:
    pairs: pd.DataFrame  # site_a, site_b, expert_a, expert_b (NO_MATCH: none), similarity, n_both
    sites: pd.DataFrame  # site_a, site_b, n_units, agreement_by_id, agreement_matched


TOP1 = """
{r}_sites AS (SELECT site, row_number() OVER (ORDER BY min(layer), site) - 1 AS idx
         FROM routes WHERE run = ${r} AND kind = 'expert' GROUP BY site),
{r}_top AS (SELECT s.idx, x.site, {key} AS u, x.choice FROM routes x JOIN {r}_sites s USING (site)
         WHERE x.run = ${r} AND x.kind = 'expert' AND x.rank = 0)"""

OVERLAP = ("WITH " + TOP1.format(r="a", key=common.unit_key("x.example", "x.token")) + ", "
           + TOP1.format(r="b", key=common.unit_key("x.example", "x.token")) + """
SELECT x.idx, x.site AS site_a, y.site AS site_b, x.choice AS expert_a,
       y.choice AS expert_b, count(*) AS n_both
FROM a_top x JOIN b_top y ON y.idx = x.idx AND y.u = x.u
GROUP BY x.idx, x.site, y.site, x.choice, y.choice""")


def expert_matching(store, run_a: str, run_b: str) -> ExpertMatching:
    run_a, run_b = common.require_run(store, run_a), common.require_run(store, run_b)
    overlap = common.df(store, OVERLAP, {"a": run_a, "b": run_b})
    pairs, sites = [], []
    for _, sub in overlap.groupby("idx", sort=True):
        site_a, site_b = str(sub.site_a.iloc[0]), str(sub.site_b.iloc[0])
        n_a = int(sub.expert_a.max()) + 1
        n_b = int(sub.expert_b.max()) + 1
        both = np.zeros((n_a, n_b))  # [experts of a, experts of b] shared top-1 units
        both[sub.expert_a.to_numpy(int), sub.expert_b.to_numpy(int)] = sub.n_both.to_numpy()
        sizes = np.sqrt(both.sum(1))[:, None] * np.sqrt(both.sum(0))[None, :]
        cosine = np.divide(both, sizes, out=np.zeros_like(both), where=sizes > 0)
        matched = match(cosine)
        total = both.sum()
        kept = 0.0
        for expert_a, expert_b in enumerate(matched):
            ok = expert_b >= 0 and cosine[expert_a, expert_b] > 0
            kept += both[expert_a, expert_b] if ok else 0.0
            pairs.append({"site_a": site_a, "site_b": site_b, "expert_a": expert_a,
                          "expert_b": int(expert_b) if ok else NO_MATCH,
                          "similarity": float(cosine[expert_a, expert_b]) if ok else 0.0,
                          "n_both": int(both[expert_a, expert_b]) if ok else 0})
        same_id = sum(both[e, e] for e in range(min(n_a, n_b)))
        sites.append({"site_a": site_a, "site_b": site_b, "n_units": int(total),
                      "agreement_by_id": same_id / total, "agreement_matched": kept / total})
    return ExpertMatching(
        pairs=pd.DataFrame(pairs, columns=["site_a", "site_b", "expert_a", "expert_b",
                                           "similarity", "n_both"]),
        sites=pd.DataFrame(sites, columns=["site_a", "site_b", "n_units", "agreement_by_id",
                                           "agreement_matched"]))
