"""The chance-corrected parts of `routeviz metrics --json` (see `summary`): co-activation,
vocabulary specialization, consecutive tokens, router confidence, and the permutation
baseline and bootstrap interval beside each Focus/Cover entry."""

from __future__ import annotations

from concurrent.futures import Future

from routeviz.errors import RoutevizError
from routeviz.metrics import _common as common
from routeviz.metrics._sample import example_sample
from routeviz.metrics.baseline import baseline_inputs, focus_cover_baseline, from_pairs
from routeviz.metrics.coactivation import coactivation, read_routes
from routeviz.metrics.confidence import confidence
from routeviz.metrics.consecutive import consecutive
from routeviz.metrics.vocab import counted_vocab, vocab_inputs

TOP_PAIRS = 5  # pairs listed per site (the full P(b|a) tables: metrics.coactivation)
TOP_TOKENS = 20  # most frequent tokens listed (all of them: metrics.vocab_specialization)


def chance_parts(store, run: str, recorded: list, notes: list, max_units: int | None = None,
                 seed: int = 0, pool=None) -> dict:
    """Keys coactivation, vocab_specialization, consecutive, confidence (None where the run
    records no expert routes; vocab_specialization is {"skipped": why} without token
    texts). Co-activation, consecutive tokens and vocabulary specialization read a seeded
    sample of whole examples when the run has more than `max_units` tokens (each says
    `sampled`, `n_units_total`); confidence reads every row. pool: an executor that counts
    co-activation and consecutive tokens (numpy over the routes read here, no query) while
    this thread asks the store for the rest."""
    return start_chance_parts(store, run, recorded, notes, max_units, seed, pool)()


def start_chance_parts(store, run: str, recorded: list, notes: list,
                       max_units: int | None = None, seed: int = 0, pool=None):
    """`chance_parts` in two halves: this reads the sampled routes and hands co-activation
    and consecutive tokens to `pool`; the function it returns asks the store for the rest
    and gives `chance_parts`' dict (its caller queries for other parts in between, while
    the pool counts)."""
    if "expert" not in recorded:
        return lambda: _chance_rest(store, run, recorded, None)
    sample, total, sampled = example_sample(store, run, max_units, seed)
    scope = {"sampled": sampled, "n_units_total": total, "max_units": max_units}
    if sampled:
        notes.append(f"coactivation, consecutive and vocab_specialization: a seeded sample "
                     f"of whole examples, about {max_units} of {total} tokens")
    routes = read_routes(store, run, sample)  # read once for all three, counted in numpy
    submit = pool.submit if pool is not None else _done
    counted = (submit(_coactivation_json, store, run, routes),
               submit(consecutive, store, run, routes=routes))
    return lambda: _chance_rest(store, run, recorded, (sample, scope, routes, *counted), pool)


def _chance_rest(store, run, recorded, started, pool=None) -> dict:
    out = {"coactivation": None, "vocab_specialization": None, "consecutive": None,
           "confidence": None}
    if started is not None:
        sample, scope, routes, coactivation_json, consecutive_sites = started
        try:  # the texts read here, counted in the pool while confidence is asked for
            inputs = vocab_inputs(store, run, routes, sample)
            vocab = (pool.submit if pool is not None else _done)(counted_vocab, store, run,
                                                                 *inputs)
        except RoutevizError as exc:
            vocab = None
            out["vocab_specialization"] = {"skipped": str(exc)}
    if {"expert", "keep"} & set(recorded):
        conf = confidence(store, run)
        out["confidence"] = {key: None if frame is None else common.records(frame)
                             for key, frame in conf.items()}
    if started is not None:
        if vocab is not None:
            vocab = vocab.result()
            out["vocab_specialization"] = {
                "min_count": vocab.min_count, "sites": common.records(vocab.sites),
                "top_tokens": common.records(vocab.tokens.head(TOP_TOKENS)), **scope}
        out["coactivation"] = {**coactivation_json.result(), **scope}
        out["consecutive"] = {"sites": common.records(consecutive_sites.result()), **scope}
    return out


def _done(work, *args, **kwargs) -> Future:
    """work(*args, **kwargs) now, as a finished future (no pool)."""
    future = Future()
    future.set_result(work(*args, **kwargs))
    return future


def _coactivation_json(store, run, routes) -> dict:
    res = coactivation(store, run, routes=routes)
    sites = []
    for rec in common.records(res.sites):
        if rec["scope"] == "within":
            pairs = res.within[res.within.site == rec["site"]]
        else:
            pairs = res.across[res.across.from_site == rec["site"]]
        top = pairs.sort_values(["p_b_given_a", "n_ab"], ascending=False).head(TOP_PAIRS)
        rec["top_pairs"] = common.records(top[["a", "b", "n_a", "n_ab", "p_b_given_a", "p_b",
                                               "lift"]])
        sites.append(rec)
    return {"sites": sites, "top_pairs_per_site": TOP_PAIRS}


def add_baselines_many(store, run: str, results: dict, entries: dict, notes: list,
                       permutations: int, resamples: int, seed: int, max_units: int,
                       pool=None):
    """`add_baselines` for several kinds ({kind: FocusCoverResult}, {kind: entries}), their
    samples' tagged units read once (`baseline.focus_cover_baselines`); notes in kind order.
    pool: an executor that scores the shuffles and resamples (numpy, no query) while this
    thread goes on; then the entries and notes are filled by the function this returns,
    which waits for it (without a pool they are filled before it returns)."""
    if permutations <= 0 and resamples <= 0:
        return lambda: None
    inputs = baseline_inputs(store, run, results, max_units=max_units, seed=seed)
    submit = pool.submit if pool is not None else _done
    bases = {kind: submit(from_pairs, pairs, results[kind], total, sampled, permutations,
                          resamples, seed)
             for kind, (pairs, total, sampled) in inputs.items()}

    def finish():
        for kind, result in results.items():
            add_baselines(store, run, result, entries[kind], notes, permutations, resamples,
                          seed, max_units, base=bases[kind].result())

    if pool is None:
        finish()
        return lambda: None
    return finish


def add_baselines(store, run: str, result, entries: list, notes: list, permutations: int,
                  resamples: int, seed: int, max_units: int, base=None) -> None:
    """Adds `baseline` {focus: {mean, lo, hi}, cover: {...}, permutations, n_units,
    n_units_total, sampled[, observed]} and `ci` {focus: {lo, hi}, cover: {...}, resamples}
    to each entry (records of result.scores, same order). base: the BaselineResult, if
    already computed."""
    if permutations <= 0 and resamples <= 0:
        return
    if base is None:
        base = focus_cover_baseline(store, run, tags=result.tags, top1=result.top1,
                                    kind=result.kind, unit=result.unit, result=result,
                                    permutations=permutations, resamples=resamples,
                                    seed=seed, max_units=max_units)
    if base.sampled:
        notes.append(f"{result.kind} Focus/Cover baseline and ci: a seeded sample of whole "
                     f"examples, {base.n_units} of {base.n_units_total} units "
                     f"(max_units={max_units}); `observed` gives the scores on that sample")
    for entry, row in zip(entries, common.records(base.scores)):
        if permutations > 0:
            entry["baseline"] = {
                **{s: {"mean": row[f"{s}_mean"], "lo": row[f"{s}_lo"], "hi": row[f"{s}_hi"]}
                   for s in ("focus", "cover")},
                "permutations": base.permutations, "level": base.level, "seed": base.seed,
                "n_units": base.n_units, "n_units_total": base.n_units_total,
                "sampled": base.sampled}
            if base.sampled:
                entry["baseline"]["observed"] = {"focus": row["focus"], "cover": row["cover"]}
        if resamples > 0:
            entry["ci"] = {**{s: {"lo": row[f"{s}_ci_lo"], "hi": row[f"{s}_ci_hi"]}
                              for s in ("focus", "cover")},
                           "resamples": base.resamples, "level": base.level}
