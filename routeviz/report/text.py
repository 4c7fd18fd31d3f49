"""Formatting shared by the HTML and Markdown writers: numbers, the summary lines, and the
per-site tables, as plain (unescaped) strings — each writer escapes for its own format."""

from __future__ import annotations

import math

import pandas as pd

from routeviz.report.collect import Report


def number(value, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):  # already formatted, or text
        return value
    try:
        if pd.isna(value):
            return "–"
    except (TypeError, ValueError):
        pass
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) > 1):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    try:
        as_float = float(value)
        return number(int(as_float) if as_float.is_integer() and abs(as_float) > 1 else as_float,
                      digits)
    except (TypeError, ValueError):
        return str(value)


def percent(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * float(value):.1f}%"


def summary_rows(report: Report) -> list[tuple[str, str]]:
    """(label, value) lines for the top of the report."""
    o = report.overview
    sites = ", ".join(f"{n} {kind}" for kind, n in sorted(o["sites"].items())) or "none"
    rows = [("model", str(o.get("model") or "–")), ("modality", str(o.get("modality") or "–")),
            ("data", str(o.get("data") or "–")), ("examples", number(o["n_examples"])),
            ("tokens", number(o["n_tokens"]) if o["n_tokens"] else "– (decisions per example)"),
            ("route rows", number(o["n_routes"])),
            ("routing sites", sites)]
    if o.get("focus_kind"):
        rows += [(f"Focus (pooled, {o['focus_kind']})", number(o["focus"])),
                 (f"Cover (pooled, {o['focus_kind']})", number(o["cover"])),
                 ("Focus/Cover pool", str(o.get("tag_families") or "–"))]
    if not math.isnan(o["load_cv"]):
        rows += [("load imbalance (mean CV of expert counts)", number(o["load_cv"])),
                 ("busiest expert / mean (worst site)", number(o["load_max_over_mean"])),
                 ("starved experts (< 1% of tokens)", number(o["n_starved"]))]
    if not math.isnan(o["compute_saved"]):
        rows += [("compute saved by early exit", percent(o["compute_saved"])),
                 ("mean exit layer", number(o.get("mean_exit_layer")))]
    if not math.isnan(o["kept_fraction"]):
        rows.append(("kept fraction (over keep decisions)", percent(o["kept_fraction"])))
    if not math.isnan(o["never_discarded_fraction"]):
        rows.append(("tokens never dropped or merged", percent(o["never_discarded_fraction"])))
    return rows


SCORE_COLUMNS = ["kind", "tag", "unit", "focus", "focus by chance", "cover", "cover by chance",
                 "n_subnetworks", "n_tags"]


def site_scores(report: Report, site: str) -> pd.DataFrame:
    """Focus/Cover rows of one site: kind, tag, unit, focus, cover, n_subnetworks, n_tags."""
    parts = [r.scores[r.scores.site == site] for r in report.focus.values()]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=["kind", "tag", "unit", "focus", "cover"])
    frame = pd.concat(parts)[["kind", "tag", "unit", "focus", "cover", "n_subnetworks",
                              "n_tags"]]
    bands = {(e.get("kind"), e.get("site"), e.get("tag")): e["baseline"]
             for e in report.summary.get("focus_cover", []) if "baseline" in e}
    for score in ("focus", "cover"):
        frame[f"{score} by chance"] = [
            _band(bands.get((kind, site, tag)), score)
            for kind, tag in zip(frame["kind"], frame["tag"])]
    return frame


def _band(baseline: dict | None, score: str) -> str:
    """'0.22 [0.20, 0.25]': the permutation baseline's mean and band (tags shuffled across
    units), or '–' where the summary has none for this row."""
    if not baseline:
        return "–"
    b = baseline[score]
    return f"{b['mean']:.2f} [{b['lo']:.2f}, {b['hi']:.2f}]"


def site_kinds(report: Report, site: str) -> list[str]:
    return report.sites[report.sites.site == site].kind.tolist()


def site_layer(report: Report, site: str) -> int:
    return int(report.sites[report.sites.site == site].layer.min())


def load_stats(report: Report, site: str) -> dict | None:
    if report.load is None:
        return None
    rows = report.load.sites[report.load.sites.site == site]
    return None if rows.empty else rows.iloc[0].to_dict()


def keep_stats(report: Report, site: str) -> dict | None:
    if report.keep is None:
        return None
    rows = report.keep.sites[report.keep.sites.site == site]
    return None if rows.empty else rows.iloc[0].to_dict()


def merge_stats(report: Report, site: str) -> pd.DataFrame:
    if report.keep is None or report.keep.merges.empty:
        return pd.DataFrame()
    return report.keep.merges[report.keep.merges.site == site]


def expert_rows(report: Report, site: str) -> pd.DataFrame:
    """One row per expert of the site: expert, count, share, starved."""
    if report.load is None:
        return pd.DataFrame(columns=["expert", "count", "share", "starved"])
    return report.load.experts[report.load.experts.site == site].sort_values("expert")


def top_tags(report: Report, site: str, expert: int) -> list[str]:
    """The expert's profile tags, ranked by a count-aware score (metrics.expert_profiles)."""
    if report.profiles is None or report.profiles.tags.empty:
        return []
    return _per_expert(report, "tags").get((site, expert), [])


def top_tokens(report: Report, site: str, expert: int) -> list[str]:
    """The expert's profile tokens, ranked by a count-aware score."""
    if report.profiles is None or report.profiles.tokens.empty:
        return []
    return _per_expert(report, "tokens").get((site, expert), [])


def _per_expert(report: Report, part: str) -> dict:
    """{(site, expert): [line]} of one profile table, in its row order, built once per
    report: the HTML and the Markdown ask for every expert of every site (a boolean filter
    of the table per call cost ~2 s of a 500-example report)."""
    key = ("per_expert", part)
    if key not in report.memo:
        t = getattr(report.profiles, part)
        if part == "tags":
            lines = (f"{n}={v} (P {p:.2f} of {int(k)})"
                     for n, v, p, k in zip(t.name, t.value, t.p_expert, t.n_tag))
        else:
            lines = (f"{text} (P {p:.2f} of {int(k)})"
                     for text, p, k in zip(t.text, t.p_expert, t.n_text))
        out: dict = {}
        for site, expert, line in zip(t.site, t.expert, lines):
            out.setdefault((site, expert), []).append(line)
        report.memo[key] = out
    return report.memo[key]


def diff_sites(report: Report) -> pd.DataFrame:
    return pd.DataFrame(report.comparison.diff.get("sites") or [])


def diff_tokens(report: Report) -> pd.DataFrame:
    return pd.DataFrame(report.comparison.diff.get("changed_tokens") or [])
