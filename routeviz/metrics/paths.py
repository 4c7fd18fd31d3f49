"""Expert paths: how a token's top-1 expert at one expert site relates to its top-1 expert
at the next (a transition matrix per consecutive site pair), and the most frequent paths
through all expert sites. A token absent at a site (dropped) simply has a shorter path."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from routeviz.metrics import _common as common

TOP1 = """
top1 AS (SELECT site, example, token, choice FROM routes
         WHERE run = $run AND kind = 'expert' AND rank = 0),
ordered AS (SELECT site, min(layer) AS layer, row_number() OVER (ORDER BY min(layer), site) AS idx
            FROM routes WHERE run = $run AND kind = 'expert' GROUP BY site)"""


@dataclass
class PathResult:
    transitions: pd.DataFrame  # from_site, from_layer, to_site, to_layer, from_expert,
    #                            to_expert, count, fraction (of the from_expert row)
    top_paths: pd.DataFrame  # path ("e0>e1>..." in site order), count, fraction
    n_tokens: int  # units with at least one top-1 expert
    sites: list  # expert sites in the order paths list them


def paths(store, run: str, top: int = 20) -> PathResult:
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    p = {"run": run}
    transitions = common.df(store, 
        f"WITH {TOP1} "
        "SELECT sa.site AS from_site, sa.layer AS from_layer, sb.site AS to_site, "
        "sb.layer AS to_layer, a.choice AS from_expert, b.choice AS to_expert, count(*) AS count "
        "FROM top1 a JOIN ordered sa ON a.site = sa.site "
        "JOIN ordered sb ON sb.idx = sa.idx + 1 "
        "JOIN top1 b ON b.site = sb.site AND b.example = a.example AND b.token = a.token "
        "GROUP BY ALL ORDER BY from_layer, from_site, from_expert, to_expert", p)
    row_total = transitions.groupby(["from_site", "from_expert"])["count"].transform("sum")
    transitions["fraction"] = transitions["count"] / row_total
    per_unit = (f"WITH {TOP1} SELECT string_agg(CAST(t.choice AS VARCHAR), '>' ORDER BY o.idx) "
                "AS path FROM top1 t JOIN ordered o USING (site) GROUP BY t.example, t.token")
    n_tokens = int(common.scalar(store, f"SELECT count(*) FROM ({per_unit})", p) or 0)
    top_paths = common.df(store, 
        f"SELECT path, count(*) AS count FROM ({per_unit}) GROUP BY path "
        f"ORDER BY count DESC, path LIMIT {int(top)}", p)
    top_paths["fraction"] = top_paths["count"] / n_tokens if n_tokens else 0.0
    sites = common.sites_of(store, run, "expert").site.tolist()
    return PathResult(transitions=transitions, top_paths=top_paths, n_tokens=n_tokens,
                      sites=sites)
