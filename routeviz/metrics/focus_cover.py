"""Focus and Cover (suboptimal-routing paper §4.2), with the full alignment matrix A_ij.

A_ij = F1("unit has tag i", "subnetwork j is active for the unit")
     = 2·|tag_i ∧ active_j| / (|tag_i| + |active_j|)      (0 when both sets are empty)
Focus = mean over subnetworks j of max_i A_ij;  Cover = mean over tag values i of max_j A_ij.

The three counts are computed in DuckDB (`unit_counts.py`), so only one row per
(subnetwork, tag value) pair that co-occurs ever reaches Python, never the route rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from routeviz.errors import RoutevizError, choose
from routeviz.metrics import _common as common
from routeviz.metrics.tag_families import TagFamilies, focus_families
from routeviz.metrics.unit_counts import (
    counts_sql_kinds,
    split_counts_kinds,
    tag_ids,
    unit_counts,
    unit_sets,
)

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
    families: TagFamilies = None  # the families pooled and those left out, with why

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
    """Focus/Cover of `run` against its tags: the named families, else its content families
    (tag_families.focus_families: provenance such as `source` left out; `families` says
    which were pooled and which left out).

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
    top1 = top1 or kind == "soft"  # soft routing: active = the dominant expert (rank 0)
    chosen = focus_families(store, run, tags)
    families = chosen.pooled
    site = common.require_site(store, run, site, kind)
    per_token_routes = _has(store, "routes", run, "kind = $kind AND token >= 0", kind=kind)
    if unit is None:
        unit = "token" if per_token_routes else "example"
    choose("unit", unit, ["token", "example"])

    tag_values = all_tag_values(store, run, families)
    counts = unit_counts(store, run, kind, tag_values, unit, top1, site)
    return from_counts(store, run, kind, unit, top1, site, chosen, tag_values, counts)


def focus_cover_kinds(store, run: str, kinds, tags=None, unit: str | None = None,
                      top1: bool = False) -> dict:
    """{kind: focus_cover(store, run, tags, unit, kind, top1)} for several kinds of one run
    (`metrics --json`): the kinds scored per token are counted in one query, which builds
    and joins the run's tagged units once instead of once each (at 10 M routes, 2.3 M
    (unit, tag) pairs: the exit kind beside the expert kind went from +0.5 s to +0.1 s)."""
    run = common.require_run(store, run)
    chosen = focus_families(store, run, tags)
    prepared = {}
    for kind in kinds:
        kind = common.require_kind(store, run, kind)
        per_token = _has(store, "routes", run, "kind = $kind AND token >= 0", kind=kind)
        kind_unit = unit or ("token" if per_token else "example")
        choose("unit", kind_unit, ["token", "example"])
        prepared[kind] = (kind_unit, top1 or kind == "soft")
    by_token = [kind for kind, (kind_unit, _) in prepared.items() if kind_unit == "token"]
    out = {kind: focus_cover(store, run, tags=tags, unit=kind_unit, kind=kind, top1=top1)
           for kind, (kind_unit, _) in prepared.items() if kind not in by_token}
    if not by_token:
        return {kind: out[kind] for kind in prepared}
    tag_values = all_tag_values(store, run, chosen.pooled)
    with common.temp_view(store, tag_ids(tag_values)) as tv_view:
        sets = [unit_sets(store, run, kind, tv_view, "token", prepared[kind][1],
                          kind_param=f"kind_{i}") for i, kind in enumerate(by_token)]
        params = {key: value for _, p in sets for key, value in p.items()}
        parts = common.df(store, counts_sql_kinds([ctes for ctes, _ in sets]), params)
    for kind, counts in zip(by_token, split_counts_kinds(parts, tag_values, len(by_token))):
        out[kind] = from_counts(store, run, kind, "token", prepared[kind][1], None, chosen,
                                tag_values, counts)
    return {kind: out[kind] for kind in prepared}


def from_counts(store, run, kind, unit, top1, site, chosen: TagFamilies,
                tag_values: pd.DataFrame, counts: dict) -> FocusCoverResult:
    """The result from `unit_counts`' three frames (computed for one run, or for a series'
    runs together by `focus_cover_many`)."""
    families = chosen.pooled
    subnetworks = _subnetworks(store, run, kind, site, counts["active"])
    tag_values = _with_counts(tag_values, counts["tag"])
    alignment, dense = _alignment(counts["both"], subnetworks, tag_values)
    scores = _scores(alignment, subnetworks, tag_values, families, unit, kind)
    return FocusCoverResult(scores=scores, alignment=alignment, unit=unit, kind=kind,
                            top1=bool(top1), tags=families, subnetworks=subnetworks,
                            tag_values=tag_values, dense=dense, families=chosen)


def _has(store, table: str, run: str, where: str, **params) -> bool:
    q = f"SELECT EXISTS (SELECT 1 FROM {table} WHERE run = $run AND {where})"
    return bool(common.scalar(store, q, {"run": run, **params}))


def _label(kind: str, choice: int) -> str:
    if kind == "keep":
        return "kept" if choice == 1 else "dropped"
    return f"{kind} {choice}"


def _subnetworks(store, run, kind, site, active: pd.DataFrame) -> pd.DataFrame:
    """Every subnetwork j: (site, choice), in model order, with |active_j| (0 if never)."""
    sites = common.sites_of(store, run, kind)
    if site is not None:
        sites = sites[sites.site == site]
    by_expert = kind in ("expert", "soft")
    n_experts = common.n_experts_by_site(store, run, sites.site) if by_expert else {}
    seen = {s: set(g.choice.astype(int)) for s, g in active.groupby("site")}
    rows = []
    for s, layer in zip(sites.site, sites.layer):
        if by_expert:
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


def all_tag_values(store, run, families) -> pd.DataFrame:
    """Every tag value of the families (name, value), sorted: row i is tag id i."""
    return common.df(store, "SELECT DISTINCT name, value FROM tags WHERE run = $run AND "
                     "list_contains($names, name) ORDER BY name, value",
                     {"run": run, "names": families})


def _with_counts(values: pd.DataFrame, tag_counts: pd.DataFrame) -> pd.DataFrame:
    """Tag values with |tag_i| (0 for a value no unit carries) and the label "name=value"."""
    values = values.merge(tag_counts, on=["name", "value"], how="left")
    values["n_tag"] = values.n_tag.fillna(0).astype("int64")
    values["tag"] = values.name + "=" + values.value
    return values[["name", "value", "tag", "n_tag"]]


def f1(n_both, n_tag, n_active) -> np.ndarray:
    """A_ij from its three counts (arrays that broadcast): 2·n_both / (n_tag + n_active),
    0 where both sets are empty."""
    denominator = np.asarray(n_tag + n_active, dtype="float64")
    return np.divide(2.0 * np.asarray(n_both, dtype="float64"), denominator,
                     out=np.zeros(np.broadcast(n_both, denominator).shape),
                     where=denominator > 0)


def _alignment(both: pd.DataFrame, subs: pd.DataFrame, tag_values: pd.DataFrame):
    """Long A_ij: every (subnetwork, tag value) cell in that order when dense, else the
    cells with n_both > 0."""
    columns = ["site", "choice", "subnetwork", "label", "name", "value", "tag", "f1",
               "n_both", "n_tag", "n_active"]
    dense = len(subs) * len(tag_values) <= DENSE_CELLS
    if not dense:
        cells = both.merge(subs[["site", "choice", "subnetwork", "label", "n_active"]],
                           on=["site", "choice"]).merge(tag_values, on=["name", "value"])
        cells["f1"] = f1(cells.n_both.to_numpy(), cells.n_tag.to_numpy(),
                         cells.n_active.to_numpy())
        return cells[columns].reset_index(drop=True), dense
    n_subs, n_tags = len(subs), len(tag_values)
    sub_of = {(s, int(c)): i for i, (s, c) in enumerate(zip(subs.site, subs.choice))}
    tag_of = {(n, v): i for i, (n, v) in enumerate(zip(tag_values.name, tag_values.value))}
    n_both = np.zeros(n_subs * n_tags, dtype="int64")  # [subnetworks × tag values]
    for s, c, n, v, count in zip(both.site, both.choice, both.name, both.value, both.n_both):
        i, j = sub_of.get((s, int(c))), tag_of.get((n, v))
        if i is not None and j is not None:
            n_both[i * n_tags + j] = count
    left = subs[["site", "choice", "subnetwork", "label", "n_active"]].take(
        np.repeat(np.arange(n_subs), n_tags)).reset_index(drop=True)
    right = tag_values.take(np.tile(np.arange(n_tags), n_subs)).reset_index(drop=True)
    cells = pd.concat([left, right], axis=1)
    cells["n_both"] = n_both
    cells["f1"] = f1(n_both, cells.n_tag.to_numpy(), cells.n_active.to_numpy())
    return cells[columns], dense


def _scores(alignment, subs, tag_values, families, unit, kind) -> pd.DataFrame:
    """Focus and Cover for every (site or "*") × (tag family or "*") from two small arrays:
    best_sub[j, family] = max over the family's values of A_ij, and best_tag[i, site] = max
    over the site's subnetworks of A_ij (0 where no cell), so each score is one mean."""
    if subs.empty or tag_values.empty:
        raise RoutevizError("no subnetworks or no tag values to score")
    sites = list(dict.fromkeys(subs.site))
    sub_pos = pd.Index(subs.subnetwork).get_indexer(alignment.subnetwork)
    family_pos = pd.Index(families).get_indexer(alignment.name)
    tag_pos = pd.Index(tag_values.tag).get_indexer(alignment.tag)
    site_pos = pd.Index(sites).get_indexer(alignment.site)
    f1_values = alignment.f1.to_numpy(dtype="float64")
    best_sub = np.zeros((len(subs), len(families)))  # [subnetworks, families]
    known = (sub_pos >= 0) & (family_pos >= 0)
    np.maximum.at(best_sub, (sub_pos[known], family_pos[known]), f1_values[known])
    best_tag = np.zeros((len(tag_values), len(sites)))  # [tag values, sites]
    known = (tag_pos >= 0) & (site_pos >= 0)
    np.maximum.at(best_tag, (tag_pos[known], site_pos[known]), f1_values[known])
    sub_site = subs.site.to_numpy()
    tag_family = tag_values.name.to_numpy()
    rows = []
    for site in ["*"] + sites:
        site_subs = np.flatnonzero(sub_site == site) if site != "*" else np.arange(len(subs))
        for family in ["*"] + (families if len(families) > 1 else []):
            tags = (np.arange(len(tag_values)) if family == "*"
                    else np.flatnonzero(tag_family == family))
            per_sub = (best_sub[site_subs].max(axis=1) if family == "*"
                       else best_sub[site_subs, families.index(family)])
            per_tag = (best_tag[tags].max(axis=1) if site == "*"
                       else best_tag[tags, sites.index(site)])
            rows.append({
                "site": site,
                "tag": family if family != "*" or len(families) > 1 else families[0],
                "unit": unit, "kind": kind,
                "focus": float(per_sub.mean()), "cover": float(per_tag.mean()),
                "n_subnetworks": len(site_subs), "n_tags": len(tags),
            })
    return pd.DataFrame(rows)

