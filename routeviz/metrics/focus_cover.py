"""Focus and Cover (suboptimal-routing paper §4.2), with the full alignment matrix A_ij.

A_ij = F1("unit has tag i", "subnetwork j is active for the unit")
     = 2·|tag_i ∧ active_j| / (|tag_i| + |active_j|)      (0 when both sets are empty)
Focus = mean over subnetworks j of max_i A_ij;  Cover = mean over tag values i of max_j A_ij.

The three counts are computed in DuckDB (GROUP BY over the views), so only one row per
(subnetwork, tag value) pair that co-occurs ever reaches Python, never the route rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from routeviz.errors import RoutevizError, choose
from routeviz.metrics import _common as common

# Above this many (subnetwork, tag value) cells the alignment frame keeps only the non-zero
# cells (every score stays exact; a figure then fills the zeros or aggregates).
DENSE_CELLS = 400_000


@dataclass
class FocusCoverResult:
    """scores: site, tag, unit, kind, focus, cover, n_subnetworks, n_tags — site "*" pools
    every site (the paper's definition), tag "*" pools every tag family used.
    alignment: long A_ij — site, choice, subnetwork, label, name, value, tag, f1, n_both,
    n_tag, n_active (dense when small, else only the non-zero cells: see `dense`)."""

    scores: pd.DataFrame
    alignment: pd.DataFrame
    unit: str
    kind: str
    top1: bool
    tags: list
    subnetworks: pd.DataFrame = field(repr=False, default=None)  # site, choice, label, n_active
    tag_values: pd.DataFrame = field(repr=False, default=None)  # name, value, tag, n_tag
    dense: bool = True

    def matrix(self, site: str = "*", tag: str = "*") -> pd.DataFrame:
        """A_ij as a wide frame: one row per tag value ("name=value"), one column per
        subnetwork, zeros filled, restricted to one site and/or one tag family."""
        subs = self.subnetworks if site == "*" else self.subnetworks[self.subnetworks.site == site]
        tags = self.tag_values if tag == "*" else self.tag_values[self.tag_values.name == tag]
        cells = self.alignment[self.alignment.f1 > 0]
        cells = cells[cells.subnetwork.isin(subs.subnetwork) & cells.tag.isin(tags.tag)]
        wide = cells.pivot_table(index="tag", columns="subnetwork", values="f1", aggfunc="max")
        return wide.reindex(index=list(tags.tag), columns=list(subs.subnetwork)).fillna(0.0)


def focus_cover(store, run: str, tags=None, unit: str | None = None, kind: str = "expert",
                top1: bool = False, site: str | None = None) -> FocusCoverResult:
    """Focus/Cover of `run` against its tags (all families, or the named ones).

    unit: "token" (tokens inherit their example's tags), "example" (an example has a tag or
    activates a subnetwork if any of its tokens does), or None: "example" when every route
    of `kind` is a per-example decision, else "token".
    kind: "expert" — subnetworks are (site, expert) for every expert in runs.config
    n_experts, including experts never chosen (they score max_i A_ij = 0 and pull Focus
    down, as in the paper where C counts all subnetworks); "keep" — (site, kept) and
    (site, dropped); "exit" — (site, exit layer) for each exit layer recorded.
    top1: active = chosen at rank 0 only (default: at any rank).
    site: restrict to one site (scores then have that site and "*", equal).
    """
    run = common.require_run(store, run)
    kind = common.require_kind(store, run, kind)
    families = common.require_tags(store, run, tags)
    site = common.require_site(store, run, site, kind)
    per_example_routes = _has(store, "routes", run, "kind = $kind AND token = -1", kind=kind)
    per_token_routes = _has(store, "routes", run, "kind = $kind AND token >= 0", kind=kind)
    if unit is None:
        unit = "token" if per_token_routes else "example"
    choose("unit", unit, ["token", "example"])

    counts = _counts(store, run, kind, families, unit, top1, site, per_example_routes)
    subnetworks = _subnetworks(store, run, kind, site, counts["active"])
    tag_values = _tag_values(store, run, families, counts["tag"])
    alignment, dense = _alignment(counts["both"], subnetworks, tag_values)
    scores = _scores(alignment, subnetworks, tag_values, families, unit, kind)
    return FocusCoverResult(scores=scores, alignment=alignment, unit=unit, kind=kind,
                            top1=bool(top1), tags=families, subnetworks=subnetworks,
                            tag_values=tag_values, dense=dense)


def _has(store, table: str, run: str, where: str, **params) -> bool:
    q = f"SELECT EXISTS (SELECT 1 FROM {table} WHERE run = $run AND {where})"
    return bool(store.con.execute(q, {"run": run, **params}).fetchone()[0])


def _counts(store, run, kind, families, unit, top1, site, per_example_routes) -> dict:
    """|active_j|, |tag_i| and |tag_i ∧ active_j| per the unit, as three small frames, from
    one DuckDB query (materialised CTEs: the unit sets are built once, never leave DuckDB)."""
    params = {"run": run, "kind": kind, "names": families}
    route_filter = "run = $run AND kind = $kind"
    if top1:
        route_filter += " AND rank = 0"
    if site is not None:
        route_filter += " AND site = $site"
        params["site"] = site
    tag_filter = "run = $run AND list_contains($names, name)"
    ctes = []
    if unit == "example":
        ctes.append(f"active AS MATERIALIZED (SELECT DISTINCT site, choice, example "
                    f"FROM routes WHERE {route_filter})")
        ctes.append(f"tagged AS MATERIALIZED (SELECT DISTINCT name, value, example "
                    f"FROM tags WHERE {tag_filter})")
        key = "example"
    else:
        example_tags = _has(store, "tags", run, "token = -1 AND list_contains($names, name)",
                            names=families)
        if example_tags or per_example_routes:
            # tokens of each example: the tokens table, plus any token seen in a route
            ctes.append("universe AS MATERIALIZED ("
                        "SELECT example, token FROM tokens WHERE run = $run AND token >= 0 "
                        "UNION SELECT DISTINCT example, token FROM routes "
                        "WHERE run = $run AND token >= 0)")
        inherit_route = (" UNION SELECT DISTINCT r.site, r.choice, u.example, u.token "
                         f"FROM (SELECT * FROM routes WHERE {route_filter} AND token = -1) r "
                         "JOIN universe u USING (example)") if per_example_routes else ""
        ctes.append(f"active AS MATERIALIZED (SELECT DISTINCT site, choice, example, token "
                    f"FROM routes WHERE {route_filter} AND token >= 0{inherit_route})")
        inherit_tag = (" UNION SELECT DISTINCT t.name, t.value, u.example, u.token "
                       f"FROM (SELECT * FROM tags WHERE {tag_filter} AND token = -1) t "
                       "JOIN universe u USING (example)") if example_tags else ""
        ctes.append(f"tagged AS MATERIALIZED (SELECT DISTINCT name, value, example, token "
                    f"FROM tags WHERE {tag_filter} AND token >= 0{inherit_tag})")
        key = "example, token"
    query = (
        "WITH " + ", ".join(ctes) + " "
        "SELECT 'active' AS part, site, choice, NULL AS name, NULL AS value, count(*) AS n "
        "FROM active GROUP BY site, choice "
        "UNION ALL SELECT 'tag', NULL, NULL, name, value, count(*) FROM tagged GROUP BY name, value "
        "UNION ALL SELECT 'both', a.site, a.choice, t.name, t.value, count(*) "
        f"FROM active a JOIN tagged t USING ({key}) GROUP BY a.site, a.choice, t.name, t.value")
    parts = common.df(store, query, params)
    active = parts[parts.part == "active"]
    tagged = parts[parts.part == "tag"]
    both = parts[parts.part == "both"]
    return {
        "active": pd.DataFrame({"site": active.site.astype(str).to_numpy(),
                                "choice": active.choice.astype("int64").to_numpy(),
                                "n_active": active.n.astype("int64").to_numpy()}),
        "tag": pd.DataFrame({"name": tagged.name.astype(str).to_numpy(),
                             "value": tagged.value.astype(str).to_numpy(),
                             "n_tag": tagged.n.astype("int64").to_numpy()}),
        "both": pd.DataFrame({"site": both.site.astype(str).to_numpy(),
                              "choice": both.choice.astype("int64").to_numpy(),
                              "name": both.name.astype(str).to_numpy(),
                              "value": both.value.astype(str).to_numpy(),
                              "n_both": both.n.astype("int64").to_numpy()}),
    }


def _label(kind: str, choice: int) -> str:
    if kind == "keep":
        return "kept" if choice == 1 else "dropped"
    return f"{kind} {choice}"


def _subnetworks(store, run, kind, site, active: pd.DataFrame) -> pd.DataFrame:
    """Every subnetwork j: (site, choice), in model order, with |active_j| (0 if never)."""
    sites = common.sites_of(store, run, kind)
    if site is not None:
        sites = sites[sites.site == site]
    n_experts = common.n_experts_by_site(store, run, sites.site) if kind == "expert" else {}
    seen = {s: set(g.choice.astype(int)) for s, g in active.groupby("site")}
    rows = []
    for s, layer in zip(sites.site, sites.layer):
        if kind == "expert":
            choices = set(range(n_experts[s])) | seen.get(s, set())
        elif kind == "keep":
            choices = {0, 1}
        else:
            choices = seen.get(s, set())
        rows.extend((s, int(layer), c) for c in sorted(choices))
    subs = pd.DataFrame(rows, columns=["site", "layer", "choice"])
    subs["label"] = [_label(kind, c) for c in subs.choice]
    subs["subnetwork"] = subs.site + " · " + subs.label
    subs = subs.merge(active, on=["site", "choice"], how="left")
    subs["n_active"] = subs.n_active.fillna(0).astype("int64")
    return subs


def _tag_values(store, run, families, tag_counts: pd.DataFrame) -> pd.DataFrame:
    """Every tag value i of the families (also one no unit carries), with |tag_i|."""
    values = common.df(store, "SELECT DISTINCT name, value FROM tags WHERE run = $run AND "
                            "list_contains($names, name) ORDER BY name, value",
                            {"run": run, "names": families})
    values = values.merge(tag_counts, on=["name", "value"], how="left")
    values["n_tag"] = values.n_tag.fillna(0).astype("int64")
    values["tag"] = values.name + "=" + values.value
    return values[["name", "value", "tag", "n_tag"]]


def _alignment(both: pd.DataFrame, subs: pd.DataFrame, tag_values: pd.DataFrame):
    cells = both.merge(subs[["site", "choice", "subnetwork", "label", "n_active"]],
                       on=["site", "choice"]).merge(tag_values, on=["name", "value"])
    dense = len(subs) * len(tag_values) <= DENSE_CELLS
    if dense:
        grid = subs[["site", "choice", "subnetwork", "label", "n_active"]].merge(
            tag_values, how="cross")
        cells = grid.merge(cells[["site", "choice", "name", "value", "n_both"]],
                           on=["site", "choice", "name", "value"], how="left")
        cells["n_both"] = cells.n_both.fillna(0).astype("int64")
    denominator = (cells.n_tag + cells.n_active).astype("float64")
    cells["f1"] = (2.0 * cells.n_both / denominator.where(denominator > 0)).fillna(0.0)
    columns = ["site", "choice", "subnetwork", "label", "name", "value", "tag", "f1",
               "n_both", "n_tag", "n_active"]
    return cells[columns].reset_index(drop=True), dense


def _mean_best(cells: pd.DataFrame, by: str, universe) -> float:
    """Mean over `universe` of the best f1 per `by` value (0 where there is no cell)."""
    if len(universe) == 0:
        return float("nan")
    best = cells.groupby(by).f1.max() if len(cells) else pd.Series(dtype="float64")
    return float(best.reindex(list(universe)).fillna(0.0).mean())


def _scores(alignment, subs, tag_values, families, unit, kind) -> pd.DataFrame:
    site_choices = ["*"] + list(dict.fromkeys(subs.site))
    family_choices = ["*"] + (families if len(families) > 1 else [])
    rows = []
    for site in site_choices:
        site_subs = subs if site == "*" else subs[subs.site == site]
        for family in family_choices:
            fam_tags = tag_values if family == "*" else tag_values[tag_values.name == family]
            cells = alignment[alignment.subnetwork.isin(site_subs.subnetwork)
                              & alignment.tag.isin(fam_tags.tag)]
            rows.append({
                "site": site, "tag": family if family != "*" else ("*" if len(families) > 1
                                                                  else families[0]),
                "unit": unit, "kind": kind,
                "focus": _mean_best(cells, "subnetwork", site_subs.subnetwork),
                "cover": _mean_best(cells, "tag", fam_tags.tag),
                "n_subnetworks": len(site_subs), "n_tags": len(fam_tags),
            })
    if not rows:
        raise RoutevizError("no subnetworks to score")
    return pd.DataFrame(rows)
