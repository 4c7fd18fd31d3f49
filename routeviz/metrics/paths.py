"""Expert paths: how a token's top-1 expert at one expert site relates to its top-1 expert
at the next (a transition matrix per consecutive site pair), and the most frequent paths
through all expert sites. A token absent at a site (dropped) simply has a shorter path."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from routeviz.metrics import _common as common

# top-1 expert per unit and expert site; sites numbered 0.. in model order (idx), units keyed
# by one integer (common.unit_key) so the joins and GROUP BYs hash integers
TOP1 = """
ordered AS (SELECT site, min(layer) AS layer,
                   CAST(row_number() OVER (ORDER BY min(layer), site) - 1 AS INTEGER) AS idx
            FROM routes WHERE run = $run AND kind = 'expert' GROUP BY site),
top1 AS MATERIALIZED (SELECT o.idx, r.choice, """ + common.unit_key("r.example", "r.token") + """ AS u
         FROM routes r JOIN ordered o USING (site)
         WHERE r.run = $run AND r.kind = 'expert' AND r.rank = 0)"""


@dataclass
class PathResult:
    transitions: pd.DataFrame  # from_site, from_layer, to_site, to_layer, from_expert,
    #                            to_expert, count, fraction (of the from_expert row)
    top_paths: pd.DataFrame  # path ("0>1>..." top-1 experts in site order), sites (the
    #                          expert site of each step: a token dropped at a site skips it),
    #                          count, fraction
    n_tokens: int  # units with at least one top-1 expert
    sites: list  # expert sites in the order paths list them


def paths(store, run: str, top: int = 20) -> PathResult:
    run = common.require_run(store, run)
    common.require_kind(store, run, "expert", allowed=("expert",))
    p = {"run": run}
    counts = common.df(store,
        f"WITH {TOP1} "
        "SELECT a.idx, a.choice AS from_expert, b.choice AS to_expert, count(*) AS count "
        "FROM top1 a JOIN top1 b ON b.u = a.u AND b.idx = a.idx + 1 "
        "GROUP BY ALL ORDER BY a.idx, from_expert, to_expert", p)
    ordered = common.df(store, f"WITH {TOP1} SELECT idx, site, layer FROM ordered", p)
    site_of = dict(zip(ordered.idx, ordered.site))
    layer_of = dict(zip(ordered.idx, ordered.layer))
    transitions = pd.DataFrame({
        "from_site": counts.idx.map(site_of), "from_layer": counts.idx.map(layer_of),
        "to_site": (counts.idx + 1).map(site_of), "to_layer": (counts.idx + 1).map(layer_of),
        "from_expert": counts.from_expert, "to_expert": counts.to_expert,
        "count": counts["count"]})
    row_total = transitions.groupby(["from_site", "from_expert"])["count"].transform("sum")
    transitions["fraction"] = transitions["count"] / row_total
    per_unit = (f"WITH {TOP1} SELECT list(choice ORDER BY idx) AS path, "
                "list(idx ORDER BY idx) AS idxs FROM top1 GROUP BY u")
    top_paths = common.df(store,
        f"SELECT path, idxs, count(*) AS count, sum(count(*)) OVER () AS n_units "
        f"FROM ({per_unit}) GROUP BY path, idxs ORDER BY count DESC, path, idxs "
        f"LIMIT {int(top)}", p)
    n_tokens = int(top_paths.n_units.iloc[0]) if len(top_paths) else 0
    top_paths = pd.DataFrame({"path": [">".join(str(int(c)) for c in path)
                                       for path in top_paths.path],
                              "sites": [tuple(site_of[int(i)] for i in idxs)
                                        for idxs in top_paths.idxs],
                              "count": top_paths["count"].astype("int64")})
    top_paths["fraction"] = top_paths["count"] / n_tokens if n_tokens else 0.0
    sites = common.sites_of(store, run, "expert").site.tolist()
    return PathResult(transitions=transitions, top_paths=top_paths, n_tokens=n_tokens,
                      sites=sites)
