"""Analyses of a recorded run: pure functions over a `routeviz.store.Store` (DuckDB SQL over
its views) returning pandas frames, small dataclasses of frames, or JSON-able dicts.
No torch, no Streamlit here. Every function raises `RoutevizError` for a run, kind, site or
tag that does not exist, listing the ones that do.

Specialization (`focus_cover.py`, seed suboptimal-routing-paper §4.2)
    focus_cover(store, run, tags=None, unit=None, kind="expert", top1=False, site=None)
        -> FocusCoverResult(.scores, .alignment, .subnetworks, .tag_values, .matrix(site, tag))
    A_ij = F1("unit has tag i", "subnetwork j active for the unit"), F1 of two empty sets = 0;
    Focus = mean_j max_i A_ij; Cover = mean_i max_j A_ij. A tag i is one (name, value) pair;
    without `tags` every family of the run is pooled. Subnetworks j: (site, expert) for every
    expert 0..n_experts-1 of runs.config (never-chosen experts count, with max_i A_ij = 0),
    (site, kept|dropped), or (site, exit layer). Active = any rank unless top1.
    unit "token": tokens inherit example-level tags (and per-example routes); unit
    "example": an example has a tag / activates j if any of its tokens does. Default unit:
    "example" when every route of the kind is per-example, else "token".
    .scores: site ("*" = pooled over all sites, as the paper does, then one row per site),
             tag ("*" = all families pooled when several, else the family name; then one row
             per family), unit, kind, focus, cover, n_subnetworks, n_tags.
    .alignment: long A_ij: site, choice, subnetwork, label, name, value, tag ("name=value"),
             f1, n_both, n_tag, n_active.

Load and input sparsity (`load.py`)
    load(store, run) -> LoadResult(.sites, .experts)
        .sites: site, layer, n_experts, n_tokens (units with a top choice at the site),
                n_assignments, cv (std/mean of per-expert counts, idle experts included),
                max_over_mean, n_starved, starved (expert ids chosen for < 1% of the site's
                tokens), dropped_tokens (tokens of the site's examples without a top choice
                there: capacity drops, or pruned earlier), dropped_fraction
        .experts: site, layer, expert, count, share (of assignments), token_fraction,
                  starved — one row per expert 0..n_experts-1, never-chosen ones with 0;
                  the tokens-per-expert curve across layers is this frame by layer.
    keep(store, run) -> KeepResult(.sites, .tokens, .merges)
        .sites: site, layer, n_seen, n_kept, kept_fraction
        .tokens: n_tokens, n_never_discarded, never_discarded_fraction (one row)
        .merges: site, layer, group_size, n_groups (group = a kept token + the tokens merged in)

Depth (`depth.py`)
    exits(store, run) -> ExitResult(.per_token, .per_example, n_layers, mean_exit_layer,
                                    compute_saved)
        histograms: layer, count, fraction. Per example: its token=-1 exit rows, else the
        deepest exit among its tokens. compute_saved = 1 - mean((exit + 1) / n_layers), with
        n_layers from runs.config.

Entropy (`entropy.py`; not in `summary`: it needs a pass over every unit)
    entropy(store, run, site=None, example=None, limit=100_000) -> EntropyResult(.sites, .tokens)
        From recorded weights (the top-k weights renormalised), and from the logits table
        (softmax over all experts) when it was recorded; .sites: site, source, mean, median,
        max_possible, n_tokens; .tokens: site, example, token, source, entropy (at most
        `limit` rows, stated in .tokens_note).

Paths (`paths.py`)
    paths(store, run, top=20) -> PathResult(.transitions, .top_paths, .n_tokens)
        .transitions: from_site, from_layer, to_site, to_layer, from_expert, to_expert,
                      count, fraction (row-normalised) — top-1 experts of consecutive
                      expert sites; .top_paths: path (e.g. "3>1>0"), sites (the site of each
                      step), count, fraction.

Expert profiles (`profiles.py`)
    expert_profiles(store, run, site=None, tag=None, top=10, min_count=2, contexts=5, window=4)
        -> ProfileResult(.tags, .tokens, .examples)
        .tags: site, expert, name, value, count, lift (P(tag|expert)/P(tag)), precision,
               p_expert (P(expert|tag)), score (Wilson lower bound of p_expert; ranked by)
        .tokens: site, expert, text, count, n_text, lift, p_expert, score (as .tags)
        .examples: site, expert, example, token, text, left, right, weight  (gallery contexts)

Diff (`diff.py`)
    diff(store, run, against, top=20) -> dict (JSON-able; `routeviz diff --json`)
        keys: run, against, n_common_units, n_only_run, n_only_against, sites (list of
        {site, kind, n_units, top1_agreement, flip_rate, jaccard}), changed_tokens (list of
        {example, token, text, n_sites, n_flipped, mean_jaccard}), overall {...}.

Chance (one module each; every score beside the value chance would give it)
    focus_cover_baseline(store, run, tags=None, unit=None, kind="expert", top1=False,
        site=None, permutations=50, resamples=50, seed=0, max_units=20_000, level=0.95,
        result=None) -> BaselineResult(.scores, .alignment, n_units, n_units_total, sampled)
        (`baseline.py`) tags shuffled across units (counts kept) -> Focus/Cover mean and
        band; units resampled -> bias-shifted bootstrap ci; .alignment: A_ij per cell with
        its band (subnetwork, tag, f1, mean, lo, hi). Above max_units: an example sample.
    coactivation(store, run) -> CoactivationResult(.within, .across, .sites)
        (`coactivation.py`) P(b|a) at one site (any rank) and from a site to the next, with
        the chance value from the load; .sites: top_conditional vs chance per site (pair).
    vocab_specialization(store, run, min_count=5, limit=50) -> VocabResult(.sites, .tokens)
        (`vocab.py`) per token text, share routed to its most frequent expert (topk: any
        rank, OLMoE's; top1), chance k/E and 1/E, corrected (p - c) / (1 - c).
    consecutive(store, run) -> frame (`consecutive.py`): same expert for tokens t, t+1,
        top1_rate vs sum of squared load shares, topk_rate vs sum q_e^2 / k.
    confidence(store, run) -> {"experts", "keep"} (`confidence.py`): mean top-1 weight,
        tokens no expert processed (dropped or zero weight), tokens a keep site skipped.

Summary (`summary.py`)
    summary(store, run, tags=None, unit=None, kind=None, top1=False, permutations=50,
            resamples=50, seed=0, max_units=20_000) -> dict (JSON-able; the
        `routeviz metrics --json` object): run, model, config, kinds, n_routes, focus_cover
        (list of {site, tag, unit, kind, focus, cover, n_subnetworks, n_tags}), load (list per
        expert site, with `counts` and `shares` per expert id), keep, exits, notes; from
        `chance_json.py`: `baseline` and `ci` in each focus_cover entry, coactivation,
        vocab_specialization, consecutive, confidence.
"""

from routeviz.metrics._common import FOCUS_KINDS  # the kinds Focus/Cover scores, in summary's order
from routeviz.metrics.baseline import BaselineResult, focus_cover_baseline
from routeviz.metrics.coactivation import CoactivationResult, coactivation
from routeviz.metrics.confidence import confidence
from routeviz.metrics.consecutive import consecutive
from routeviz.metrics.depth import ExitResult, exits
from routeviz.metrics.diff import diff
from routeviz.metrics.entropy import EntropyResult, entropy
from routeviz.metrics.focus_cover import FocusCoverResult, focus_cover
from routeviz.metrics.load import KeepResult, LoadResult, keep, load
from routeviz.metrics.paths import PathResult, paths
from routeviz.metrics.profiles import ProfileResult, expert_profiles
from routeviz.metrics.summary import summary
from routeviz.metrics.vocab import VocabResult, vocab_specialization

__all__ = [
    "FOCUS_KINDS", "BaselineResult", "CoactivationResult", "EntropyResult", "ExitResult", "FocusCoverResult",
    "KeepResult", "LoadResult", "PathResult", "ProfileResult", "VocabResult", "coactivation",
    "confidence", "consecutive", "diff", "entropy", "exits", "expert_profiles", "focus_cover",
    "focus_cover_baseline", "keep", "load", "paths", "summary", "vocab_specialization",
]
