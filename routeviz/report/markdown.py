"""report.md: the report's findings as Markdown tables, figures as image files beside it.

User strings are escaped for Markdown and for the inline HTML that Markdown renderers
accept: `<`, `>` and `&` become entities, Markdown punctuation gets a backslash, newlines
become spaces, so a token cannot open a tag, a link or a table cell.
"""

from __future__ import annotations

import html
import re

import pandas as pd

from routeviz.report import text as fmt
from routeviz.report.collect import Report
from routeviz.report.plots import Plot

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(value) -> str:
    """Escape a user string for a Markdown table cell or paragraph."""
    text = " ".join(str(value).splitlines()) if str(value).strip() else str(value).replace("\n", "↵")
    text = html.escape(text, quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_table(df: pd.DataFrame, columns: list[str], headers: list[str] | None = None,
             percent: tuple = ()) -> str:
    if df is None or df.empty:
        return "_(none)_\n"
    lines = ["| " + " | ".join(md(h) for h in (headers or columns)) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for rec in df[columns].to_dict(orient="records"):
        cells = [fmt.percent(rec[c]) if c in percent else fmt.number(rec[c]) for c in columns]
        lines.append("| " + " | ".join(md(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(report: Report, plots: list[Plot], images: dict[str, str],
                    image_note: str | None) -> str:
    """images: plot key -> relative path of its static copy (missing keys: no copy)."""
    by_section: dict[str, list[Plot]] = {}
    for plot in plots:
        by_section.setdefault(plot.section, []).append(plot)
    out = [f"# Routing report: {md(report.run)}\n",
           ("Open `report.html` for the interactive version; the numbers are also in "
            "`metrics.json` and the CSV files.\n"), "## Summary\n",
           md_table(pd.DataFrame(fmt.summary_rows(report), columns=["what", "value"]),
                    ["what", "value"], ["", ""])]
    if report.notes:
        out += ["**Notes**\n"] + [f"- {md(n)}" for n in report.notes] + [""]
    if image_note:
        out.append(f"_{md(image_note)}_\n")
    out.append("## Overview\n")
    out += [_figure(p, images) for p in by_section.get("overview", [])]
    out.append(_depth(report))
    for site in report.detailed_sites:
        out.append(_site(report, site, by_section.get(f"site:{site}", []), images))
    if report.comparison is not None:
        out.append(_comparison(report, by_section.get("comparison", []), images))
    return "\n".join(out)


def _figure(plot: Plot, images: dict[str, str]) -> str:
    path = images.get(plot.key)
    if path is None:
        return f"_Figure: {md(plot.caption)} (in report.html)_\n"
    return f"![{md(plot.caption)}]({path})\n"


def _site(report: Report, site: str, plots: list[Plot], images: dict[str, str]) -> str:
    out = [f"## Site {md(site)}\n",
           f"Layer {fmt.site_layer(report, site)} · {md(', '.join(fmt.site_kinds(report, site)))}\n"]
    scores = fmt.site_scores(report, site)
    if len(scores):
        out += ["### Focus and Cover\n", md_table(scores, fmt.SCORE_COLUMNS)]
    out += [_figure(p, images) for p in plots]
    stats = fmt.load_stats(report, site)
    if stats is not None:
        out += ["### Expert load\n", md_table(
            pd.DataFrame([stats]), ["n_experts", "n_tokens", "cv", "max_over_mean", "n_starved",
                                    "dropped_tokens", "dropped_fraction"],
            percent=("dropped_fraction",)), "### Experts\n", _experts(report, site)]
        if images.get(f"gallery:{site}"):
            out.append(f"![patches each expert weighted highest]({images[f'gallery:{site}']})\n")
    keep = fmt.keep_stats(report, site)
    if keep is not None:
        out += ["### Kept tokens\n", md_table(pd.DataFrame([keep]),
                                              ["n_seen", "n_kept", "kept_fraction"],
                                              percent=("kept_fraction",))]
    merges = fmt.merge_stats(report, site)
    if len(merges):
        out += ["### Merge groups\n", md_table(merges, ["group_size", "n_groups"])]
    return "\n".join(out)


def _experts(report: Report, site: str) -> str:
    rows = []
    for rec in fmt.expert_rows(report, site).itertuples(index=False):
        expert = int(rec.expert)
        items = report.gallery.of(site, expert) if report.gallery else []
        examples = "; ".join(
            (f"{i.left} «{i.text}» {i.right}".strip() if i.png is None else
             (i.source or f"example {i.example}")
             + (" (whole image)" if i.token < 0 else f" patch {i.token}"))
            for i in items[:3])
        rows.append({"expert": expert, "share": rec.share, "count": int(rec.count),
                     "starved": bool(rec.starved),
                     "top tags": ", ".join(fmt.top_tags(report, site, expert)[:3]),
                     "top tokens": ", ".join(fmt.top_tokens(report, site, expert)[:5]),
                     "highest-weight units": examples})
    columns = ["expert", "share", "count", "starved", "top tags", "top tokens",
               "highest-weight units"]
    return md_table(pd.DataFrame(rows, columns=columns), columns, percent=("share",))


def _depth(report: Report) -> str:
    out = []
    if report.exits is not None:
        e = report.exits
        out.append(f"### Early exit\n\n{e.n_layers} layers; mean exit layer "
                   f"{fmt.number(e.mean_exit_layer)} per {md(e.unit)}; compute saved "
                   f"{fmt.percent(e.compute_saved)}.\n")
        hist = e.per_token if len(e.per_token) else e.per_example
        out.append(md_table(hist, ["layer", "count", "fraction"], percent=("fraction",)))
    if report.keep is not None and len(report.keep.sites):
        out += ["### Kept tokens per site\n", md_table(
            report.keep.sites, ["site", "layer", "n_seen", "n_kept", "kept_fraction"],
            percent=("kept_fraction",))]
    return "\n".join(out)


def _comparison(report: Report, plots: list[Plot], images: dict[str, str]) -> str:
    c = report.comparison
    out = [f"## Comparison with {md(c.against)}\n",
           f"_{md(c.diff['note'])}_\n" if c.diff.get("note") else
           f"{fmt.number(c.diff.get('n_common_units'))} units in both runs.\n",
           md_table(c.headline, ["metric", "a", "b"], ["metric", report.run, c.against])]
    out += [_figure(p, images) for p in plots]
    sites = fmt.diff_sites(report)
    if len(sites):
        cols = [col for col in ["site", "kind", "n_units", "top1_agreement", "flip_rate",
                                "jaccard"] if col in sites]
        out += ["### Per site\n", md_table(sites, cols)]
    tokens = fmt.diff_tokens(report)
    if len(tokens):
        cols = [col for col in ["example", "token", "text", "n_sites", "n_flipped",
                                "mean_jaccard"] if col in tokens]
        out += ["### Tokens whose routing changed most\n", md_table(tokens, cols)]
    return "\n".join(out)
