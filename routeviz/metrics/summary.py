"""`routeviz metrics --json`: every analysis of a run as one JSON-able dict."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

from routeviz.errors import choose
from routeviz.metrics import _common as common
from routeviz.metrics import provenance
from routeviz.metrics.chance_json import add_baselines_many, start_chance_parts
from routeviz.metrics.depth import exits
from routeviz.metrics.focus_cover import focus_cover_kinds
from routeviz.metrics.load import keep, load
from routeviz.metrics.soft import soft_load_json, soft_summary
from routeviz.metrics.tag_families import focus_families

POOL_ROUTES = 2_000_000  # route rows from which summary counts in a thread pool


def summary(store, run: str, tags=None, unit: str | None = None, kind: str | None = None,
            top1: bool = False, permutations: int = 50, resamples: int = 50, seed: int = 0,
            max_units: int = 20_000, max_scan_units: int = 100_000,
            scans: bool = True) -> dict:
    """Keys: run, model, config, kinds, n_routes, focus_cover (list of {site, tag, unit,
    kind, focus, cover, n_subnetworks, n_tags}), tag_families ({pooled, left_out,
    why_left_out, rule}: the families Focus/Cover pooled, by default the content ones, as
    on the Specialization page and in the report; None without tags), load (list, one per
    expert site, with `shares` and `counts` per expert id), keep ({sites, tokens, merges} or None), exits
    ({per_token, per_example, n_layers, mean_exit_layer, compute_saved, unit} or None),
    notes (list of strings). Entropy, paths and profiles are separate calls: each needs a
    pass over every unit, and `routeviz metrics` stays a few seconds at 10 M rows.
    Chance (chance_json.py): each focus_cover entry also has `baseline` (permutation mean and
    band over `permutations` tag shuffles) and `ci` (bootstrap over `resamples`), on at most
    `max_units` units (a seeded example sample above that, said in notes; 0 permutations and
    resamples: neither); keys coactivation, vocab_specialization, consecutive, confidence
    (co-activation, consecutive and vocabulary specialization on a seeded example sample
    above `max_scan_units` tokens; scans=False leaves these four out, for a caller that
    shows only the headline numbers)."""
    run = common.require_run(store, run)
    recorded = common.kinds_recorded(store, run)
    if kind is not None:
        common.require_kind(store, run, kind)
    if tags:
        common.require_tags(store, run, tags)
    if unit is not None:
        choose("unit", unit, ["token", "example"])
    if top1:  # an imported run may not rank by score: say so rather than count rank 0
        provenance.require_ranks(store, run, "top-1 (--top1)")
    notes = []
    model = common.scalar(store, "SELECT max(model) FROM runs WHERE run = $run", {"run": run})
    result = {"run": run, "model": model, "config": common.config_of(store, run),
              "kinds": recorded, "n_routes": int(common.facts(store, run).n_routes)}

    focus_kinds = [kind] if kind else [k for k in common.FOCUS_KINDS if k in recorded]
    result["focus_cover"] = []
    result["tag_families"] = None
    scan_notes = []  # said after the baselines' notes, as before the pool
    # The store is asked from this thread only; the pool runs the numpy counting behind
    # co-activation, consecutive tokens and the baselines meanwhile, each started as soon
    # as its rows are read (issue 25: on two cores, `metrics --json` at 10 M routes went
    # from ~3.4x to ~2.9x plain Focus/Cover). Below POOL_ROUTES the threads cost more CPU
    # than they save wall time (512,000 routes: 2.0 -> 2.4 CPU-s for 2.0 -> 1.9 s).
    big = result["n_routes"] >= POOL_ROUTES
    with ThreadPoolExecutor(2, thread_name_prefix="routeviz-metrics") if big else (
            nullcontext()) as pool:  # no pool: each part counted in turn (pool None)
        baselines_done = _nothing
        scans_done = (start_chance_parts(store, run, recorded, scan_notes, max_scan_units,
                                         seed, pool=pool) if scans else dict)
        if not tags and not common.tag_names(store, run):
            notes.append("the run has no tags, so Focus/Cover cannot be computed")
        else:
            result["tag_families"] = focus_families(store, run, tags).as_json()
            scored_kinds = focus_cover_kinds(store, run, focus_kinds, tags=tags, unit=unit,
                                             top1=top1)  # one query for all kinds
            entries = {k: common.records(scored_kinds[k].scores) for k in focus_kinds}
            baselines_done = add_baselines_many(
                store, run, {k: scored_kinds[k] for k in focus_kinds}, entries, notes,
                permutations, resamples, seed, max_units, pool=pool)
            for k in focus_kinds:
                result["focus_cover"].extend(entries[k])  # filled in by baselines_done()

        result["load"] = _load_json(store, run) if "expert" in recorded else []
        if "soft" in recorded:  # soft routing: load = combine mass per expert
            result["load"] += soft_load_json(store, run)
        if {"soft", "dispatch"} & set(recorded):  # combine entropy, dispatch entropy per slot
            result["soft"] = soft_summary(store, run)
        result["keep"] = _keep_json(store, run) if {"keep", "merge"} & set(recorded) else None
        result["exits"] = _exits_json(store, run) if "exit" in recorded else None
        result.update(scans_done())
        baselines_done()
    notes.extend(scan_notes)
    notes.extend(provenance.notes(store, run))  # an import without weights or ranks says so
    result["notes"] = notes
    return result


def _nothing() -> None:
    pass


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
            "compute_saved": common.plain(res.compute_saved), "unit": res.unit,
            "halted_tokens": res.halted_tokens}
