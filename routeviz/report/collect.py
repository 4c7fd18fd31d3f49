"""Everything a report shows, computed once from the store: the `metrics --json` summary,
the frames behind each figure and table, the expert galleries and the comparison.

Sizes are bounded here, so that every writer (HTML, Markdown, CSV) stays small for a large
run: at most MAX_SITES sites get a section of their own (all sites stay in the tables and
CSVs), and the galleries hold at most GALLERY_ITEMS entries in all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

import routeviz
from routeviz import metrics
from routeviz.errors import RoutevizError
from routeviz.metrics.pairing import input_difference
from routeviz.report.gallery import Gallery, build_gallery
from routeviz.store.schema import check_run_name

MAX_SITES = 48  # sites with a section of their own, in model order
GALLERY_ITEMS = 600  # gallery entries (contexts or patch crops) in the whole report
CONTEXTS_PER_EXPERT = (1, 6)  # fewest and most gallery entries per expert
PROFILE_TOP = 5  # top tags / tokens listed per expert
CARD_CONTEXTS = 5  # contexts per expert card (routeviz.analysis.cards.expert_cards' default)
FOCUS_KINDS = ("expert", "keep", "exit")


@dataclass
class Comparison:
    against: str
    diff: dict  # `routeviz diff --json`
    headline: pd.DataFrame  # metric, a, b (the two runs' headline numbers)
    inputs_note: str | None = None  # how the two runs' inputs differ (None: the same)


@dataclass
class Report:
    run: str
    summary: dict  # the `routeviz metrics --json` object
    config: dict
    overview: dict  # headline numbers for the top of the report
    sites: pd.DataFrame  # site, layer, kind, n_rows — model order
    focus: dict = field(default_factory=dict)  # kind -> FocusCoverResult
    load: object = None  # LoadResult
    keep: object = None  # KeepResult
    exits: object = None  # ExitResult
    profiles: object = None  # ProfileResult
    gallery: Gallery = None
    comparison: Comparison = None
    notes: list = field(default_factory=list)
    memo: dict = field(default_factory=dict, repr=False, compare=False)  # text.py's lookups

    @property
    def detailed_sites(self) -> list[str]:
        return list(dict.fromkeys(self.sites.site))[:MAX_SITES]


def collect(store, run: str, against: str | None = None, tags=None,
            summary: dict | None = None) -> Report:
    """Compute everything the report shows; raises RoutevizError for a bad run or tag.
    summary: `metrics.summary(store, run, tags=tags)` where the caller has it already (the
    Export page computed it for its metrics.json button), else computed here."""
    run = store.require_run(check_run_name(run))
    inputs_note = None
    if against is not None:
        against = store.require_run(check_run_name(against))
        inputs_note = input_difference(store, run, against, refuse_disjoint=True)
    if isinstance(tags, str):
        tags = [tags]
    if summary is None:
        summary = metrics.summary(store, run, tags=tags)
    notes = [str(n) for n in summary.get("notes", [])]
    facts = store.facts(run)
    kinds = facts.kinds
    report = Report(run=run, summary=summary, config=dict(facts.config), overview={},
                    sites=_sites(facts), notes=notes)
    for kind in FOCUS_KINDS:
        if kind in kinds:
            report.focus[kind] = _optional(notes, metrics.focus_cover, store, run, tags=tags,
                                           kind=kind)
    report.focus = {k: v for k, v in report.focus.items() if v is not None}
    if "expert" in kinds:
        report.load = metrics.load(store, run)
        n_cards = _n_gallery_cards(report)
        per_expert = max(CONTEXTS_PER_EXPERT[0],
                         min(CONTEXTS_PER_EXPERT[1], GALLERY_ITEMS // max(n_cards, 1)))
        # asked with the cards' number of contexts, so the cards reuse the query (the
        # profiles' contexts are kept per store refresh), then cut to the gallery's share:
        # each expert's first rows, as asking for per_expert would give
        report.profiles = metrics.expert_profiles(store, run, top=PROFILE_TOP,
                                                  contexts=max(per_expert, CARD_CONTEXTS))
        report.profiles.examples = _first_per_expert(report.profiles.examples, per_expert)
        report.gallery = build_gallery(store, run, report.profiles.examples,
                                       set(report.detailed_sites), GALLERY_ITEMS)
    if "keep" in kinds or "merge" in kinds:
        report.keep = metrics.keep(store, run)
    if "exit" in kinds:
        report.exits = metrics.exits(store, run)
    report.overview = overview(store, run, report)
    if len(report.sites.site.unique()) > MAX_SITES:
        notes.append(f"{report.sites.site.nunique()} sites: the first {MAX_SITES} in model "
                     "order have a section each; every site is in the tables and CSV files")
    if against is not None:
        report.comparison = c = compare(store, run, against, report.overview, tags)
        if inputs_note:  # said at the top and in the comparison
            c.inputs_note = inputs_note
            c.diff["note"] = "; ".join(x for x in (inputs_note, c.diff.get("note")) if x)
            notes.append(inputs_note)
    return report


def _first_per_expert(examples: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first n rows of each (site, expert) in the frame's order (weight first)."""
    first = examples.groupby(["site", "expert"], sort=False).cumcount() < n
    return examples[first].reset_index(drop=True)


def _optional(notes: list, func, *args, **kwargs):
    """Call an analysis that may not apply to this run (no tags): its message becomes a note."""
    try:
        return func(*args, **kwargs)
    except RoutevizError as exc:
        message = str(exc)
        if message not in notes:
            notes.append(message)
        return None


def _sites(facts) -> pd.DataFrame:
    return facts.sites[["site", "layer", "kind", "n_rows"]].reset_index(drop=True)


def _n_gallery_cards(report: Report) -> int:
    experts = report.load.experts
    return int(experts.site.isin(report.detailed_sites).sum())


def headline_focus(report: Report):
    """(kind, focus, cover, families) pooled over every site and the pooled tag families
    (metrics.tag_families: content by default), expert kind first."""
    for kind in FOCUS_KINDS:
        result = report.focus.get(kind)
        if result is not None:
            pooled = result.scores[result.scores.site == "*"].iloc[0]
            return kind, float(pooled.focus), float(pooled.cover), result.families
    return None, float("nan"), float("nan"), None


def overview(store, run: str, report: Report) -> dict:
    """The numbers at the top of a report."""
    config = report.config
    facts = store.facts(run)
    inputs = store.input_counts(run)
    kind, focus, cover, families = headline_focus(report)
    out = {
        "run": run, "model": report.summary.get("model") or config.get("model"),
        "modality": config.get("modality") or facts.modality,
        "data": config.get("inputs") or config.get("dataset") or f"{inputs['n_sources']} source(s)",
        "routeviz_version": routeviz.__version__,
        "n_examples": inputs["n_examples"], "n_tokens": inputs["n_tokens"],
        "n_routes": facts.n_routes,
        "sites": {k: int(g.site.nunique()) for k, g in report.sites.groupby("kind")},
        "focus_kind": kind, "focus": focus, "cover": cover,
        "tag_families": families.describe() if families is not None else None,
        "load_cv": float("nan"), "load_max_over_mean": float("nan"), "n_starved": 0,
        "compute_saved": float("nan"), "kept_fraction": float("nan"),
        "never_discarded_fraction": float("nan"),
    }
    if report.load is not None and len(report.load.sites):
        sites = report.load.sites
        out["load_cv"] = float(sites.cv.mean())
        out["load_max_over_mean"] = float(sites.max_over_mean.max())
        out["n_starved"] = int(sites.n_starved.sum())
    if report.exits is not None:
        out["compute_saved"] = float(report.exits.compute_saved)
        out["mean_exit_layer"] = float(report.exits.mean_exit_layer)
    if report.keep is not None:
        if len(report.keep.sites):
            seen = report.keep.sites.n_seen.sum()
            out["kept_fraction"] = float(report.keep.sites.n_kept.sum() / seen) if seen else 0.0
        out["never_discarded_fraction"] = float(
            report.keep.tokens.never_discarded_fraction.iloc[0])
    return out


HEADLINE = (("focus", "Focus (pooled)"), ("cover", "Cover (pooled)"),
            ("load_cv", "load CV (mean over sites)"), ("compute_saved", "compute saved"),
            ("kept_fraction", "kept fraction"))


def compare(store, run: str, against: str, mine: dict, tags) -> Comparison:
    """The diff of two runs and their headline numbers side by side."""
    other_notes: list = []
    facts = store.facts(against)
    other = Report(run=against, summary={}, config=dict(facts.config), overview={},
                   sites=_sites(facts), notes=other_notes)
    kinds = facts.kinds
    for kind in FOCUS_KINDS:
        if kind in kinds:
            result = _optional(other_notes, metrics.focus_cover, store, against, tags=tags,
                               kind=kind)
            if result is not None:
                other.focus[kind] = result
    if "expert" in kinds:
        other.load = metrics.load(store, against)
    if "keep" in kinds or "merge" in kinds:
        other.keep = metrics.keep(store, against)
    if "exit" in kinds:
        other.exits = metrics.exits(store, against)
    theirs = overview(store, against, other)
    headline = pd.DataFrame([{"metric": label, "a": mine.get(key), "b": theirs.get(key)}
                             for key, label in HEADLINE])
    try:
        diff = metrics.diff(store, run, against)
    except RoutevizError as exc:  # e.g. no example in common: the headline still compares
        diff = {"run": run, "against": against, "note": str(exc)}
    return Comparison(against=against, diff=diff, headline=headline)
