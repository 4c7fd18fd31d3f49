"""`routeviz metrics --json`: every analysis of a run as one JSON-able dict."""

from __future__ import annotations

from routeviz.errors import choose
from routeviz.metrics import _common as common
from routeviz.metrics.depth import exits
from routeviz.metrics.focus_cover import focus_cover
from routeviz.metrics.load import keep, load


def summary(store, run: str, tags=None, unit: str | None = None, kind: str | None = None,
            top1: bool = False) -> dict:
    """Keys: run, model, config, kinds, n_routes, focus_cover (list of {site, tag, unit,
    kind, focus, cover, n_subnetworks, n_tags}), load (list, one per expert site, with
    `shares` and `counts` per expert id), keep ({sites, tokens, merges} or None), exits
    ({per_token, per_example, n_layers, mean_exit_layer, compute_saved, unit} or None),
    notes (list of strings). Entropy, paths and profiles are separate calls: each needs a
    pass over every unit, and `routeviz metrics` stays a few seconds at 10 M rows."""
    run = common.require_run(store, run)
    recorded = common.kinds_recorded(store, run)
    if kind is not None:
        common.require_kind(store, run, kind)
    if tags:
        common.require_tags(store, run, tags)
    if unit is not None:
        choose("unit", unit, ["token", "example"])
    notes = []
    row = store.con.execute("SELECT model, n_routes FROM (SELECT model FROM runs WHERE run = ?) "
                            ", (SELECT count(*) AS n_routes FROM routes WHERE run = ?)",
                            [run, run]).fetchone()
    result = {"run": run, "model": row[0] if row else None, "config": common.config_of(store, run),
              "kinds": recorded, "n_routes": int(row[1]) if row else 0}

    focus_kinds = [kind] if kind else [k for k in common.FOCUS_KINDS if k in recorded]
    result["focus_cover"] = []
    if not tags and not common.tag_names(store, run):
        notes.append("the run has no tags, so Focus/Cover cannot be computed")
    else:
        for k in focus_kinds:
            scores = focus_cover(store, run, tags=tags, unit=unit, kind=k, top1=top1).scores
            result["focus_cover"].extend(common.records(scores))

    result["load"] = _load_json(store, run) if "expert" in recorded else []
    result["keep"] = _keep_json(store, run) if {"keep", "merge"} & set(recorded) else None
    result["exits"] = _exits_json(store, run) if "exit" in recorded else None
    result["notes"] = notes
    return result


def _load_json(store, run) -> list:
    res = load(store, run)
    out = []
    for rec in common.records(res.sites):
        per = res.experts[res.experts.site == rec["site"]].sort_values("expert")
        rec["counts"] = [int(c) for c in per["count"]]
        rec["shares"] = [float(s) for s in per["share"]]
        out.append(rec)
    return out


def _keep_json(store, run) -> dict:
    res = keep(store, run)
    return {"sites": common.records(res.sites), "tokens": common.records(res.tokens)[0],
            "merges": common.records(res.merges)}


def _exits_json(store, run) -> dict:
    res = exits(store, run)
    return {"per_token": common.records(res.per_token),
            "per_example": common.records(res.per_example), "n_layers": res.n_layers,
            "mean_exit_layer": common.plain(res.mean_exit_layer),
            "compute_saved": common.plain(res.compute_saved), "unit": res.unit}
