"""report.html: one self-contained page that opens offline.

plotly.js is embedded once, in the first figure; every other figure reuses it. Every
string that comes from the user (token text, tag values, site, run, model and file names)
goes through `esc`; plotly escapes `<` in the JSON it writes into <script> itself.
"""

from __future__ import annotations

import base64
import html

import pandas as pd

from routeviz.report import text as fmt
from routeviz.report.collect import GALLERY_ITEMS, Report
from routeviz.report.plots import Plot

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;
max-width:1180px;padding:0 20px 40px;color:#222;line-height:1.45}
h1{margin-top:24px} h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}
code{background:#f3f3f3;padding:0 4px;border-radius:3px;word-break:break-all}
table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6} td.n{text-align:right;font-variant-numeric:tabular-nums}
figure.plot{margin:12px 0 20px} figcaption{color:#666;font-size:13px}
.notes{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 12px}
nav ul{columns:3;font-size:14px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:10px}
.card{border:1px solid #ddd;border-radius:6px;padding:6px 10px;font-size:13px;overflow:hidden}
.card h4{margin:2px 0 4px} .card.starved{border-color:#d62728}
.pill{display:inline-block;background:#eef3fb;border-radius:10px;padding:0 6px;margin:1px}
.tok{font-family:monospace;background:#f3f3f3;padding:0 3px;white-space:pre}
.ctx{font-family:monospace;margin:4px 0;padding-left:18px} .ctx mark{background:#ffe08a}
.crops img{width:56px;height:56px;object-fit:contain;image-rendering:pixelated;
border:1px solid #ccc;margin:1px}
.muted{color:#888} .summary{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def render_html(report: Report, plots: list[Plot]) -> str:
    by_section: dict[str, list[Plot]] = {}
    for plot in plots:
        by_section.setdefault(plot.section, []).append(plot)
    state = {"first": True}
    parts = [_head(report), _nav(report), _summary(report)]
    parts.append('<section id="overview"><h2>Overview</h2>')
    parts += [_figure(p, state) for p in by_section.get("overview", [])]
    parts.append(_depth_tables(report) + "</section>")
    for number, site in enumerate(report.detailed_sites):
        parts.append(_site(report, site, number, by_section.get(f"site:{site}", []), state))
    if report.comparison is not None:
        parts.append(_comparison(report, by_section.get("comparison", []), state))
    parts.append(f'<footer class="muted"><p>routeviz {esc(report.overview["routeviz_version"])}'
                 " · machine-readable copies: metrics.json, focus_cover.csv, alignment.csv, "
                 "load.csv, experts.csv, exits.csv, keep.csv</p></footer></body></html>")
    return "\n".join(parts)


def _head(report: Report) -> str:
    run = esc(report.run)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>routeviz report: {run}</title><style>{CSS}</style></head><body>"
            f"<h1>Routing report: <code>{run}</code></h1>")


def _nav(report: Report) -> str:
    items = ['<li><a href="#summary">Summary</a></li>', '<li><a href="#overview">Overview</a></li>']
    items += [f'<li><a href="#site-{i:02d}">{esc(site)}</a></li>'
              for i, site in enumerate(report.detailed_sites)]
    if report.comparison is not None:
        items.append('<li><a href="#comparison">Comparison</a></li>')
    return f'<nav><ul>{"".join(items)}</ul></nav>'


def _summary(report: Report) -> str:
    lines = fmt.summary_rows(report)
    half = (len(lines) + 1) // 2
    rows = "".join(
        "<table>" + "".join(f"<tr><th>{esc(label)}</th><td>{esc(value)}</td></tr>"
                            for label, value in part) + "</table>"
        for part in (lines[:half], lines[half:]) if part)
    notes = ""
    if report.notes:
        notes = '<div class="notes"><ul>' + "".join(
            f"<li>{esc(n)}</li>" for n in report.notes) + "</ul></div>"
    return (f'<section id="summary"><h2>Summary</h2><div class="summary">{rows}</div>'
            f"{notes}</section>")


def _figure(plot: Plot, state: dict) -> str:
    div = plot.figure.to_html(full_html=False, include_plotlyjs=state["first"],
                              default_height=f"{plot.height}px", default_width="100%",
                              div_id=f"plot-{plot.key}",  # fixed ids: the same run, the same file
                              config={"displaylogo": False, "responsive": True})
    state["first"] = False
    return (f'<figure class="plot" data-key="{esc(plot.key)}">{div}'
            f"<figcaption>{esc(plot.caption)}</figcaption></figure>")


def table(df: pd.DataFrame, columns: list[str], headers: list[str] | None = None,
          percent: tuple = ()) -> str:
    """An escaped HTML table of `columns` of `df` (numbers right-aligned)."""
    if df is None or df.empty:
        return '<p class="muted">(none)</p>'
    head = "".join(f"<th>{esc(h)}</th>" for h in (headers or columns))
    body = []
    for rec in df[columns].to_dict(orient="records"):
        cells = []
        for col in columns:
            value = rec[col]
            if col in percent:
                cells.append(f'<td class="n">{esc(fmt.percent(value))}</td>')
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                cells.append(f'<td class="n">{esc(fmt.number(value))}</td>')
            else:
                cells.append(f"<td>{esc(fmt.number(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _site(report: Report, site: str, number: int, plots: list[Plot], state: dict) -> str:
    kinds = ", ".join(fmt.site_kinds(report, site))
    parts = [(f'<section id="site-{number:02d}" class="site">'
              f"<h2>Site <code>{esc(site)}</code></h2>"
              f'<p class="muted">layer {fmt.site_layer(report, site)} · {esc(kinds)}</p>')]
    scores = fmt.site_scores(report, site)
    if len(scores):
        parts.append("<h3>Focus and Cover</h3>" + table(
            scores, ["kind", "tag", "unit", "focus", "cover", "n_subnetworks", "n_tags"]))
    parts += [_figure(p, state) for p in plots]
    stats = fmt.load_stats(report, site)
    if stats is not None:
        parts.append("<h3>Expert load</h3>" + table(
            pd.DataFrame([stats]), ["n_experts", "n_tokens", "cv", "max_over_mean", "n_starved",
                                    "dropped_tokens", "dropped_fraction"],
            percent=("dropped_fraction",)))
        parts.append(_gallery(report, site))
    keep = fmt.keep_stats(report, site)
    if keep is not None:
        parts.append("<h3>Kept tokens</h3>" + table(
            pd.DataFrame([keep]), ["n_seen", "n_kept", "kept_fraction"],
            percent=("kept_fraction",)))
    merges = fmt.merge_stats(report, site)
    if len(merges):
        parts.append("<h3>Merge groups</h3>" + table(merges, ["group_size", "n_groups"]))
    parts.append("</section>")
    return "".join(parts)


def _gallery(report: Report, site: str) -> str:
    """One card per expert: load, top tags, top tokens, and its highest-weight units."""
    cards = []
    for rec in fmt.expert_rows(report, site).itertuples(index=False):
        expert = int(rec.expert)
        starved = " starved" if bool(rec.starved) else ""
        head = (f'<h4>expert {expert} <span class="muted">{esc(fmt.percent(rec.share))} of '
                f"assignments · {esc(fmt.number(int(rec.count)))} units"
                f'{" · starved" if starved else ""}</span></h4>')
        tags = "".join(f'<span class="pill">{esc(t)}</span>'
                       for t in fmt.top_tags(report, site, expert))
        tokens = "".join(f'<span class="tok">{esc(t)}</span> '
                         for t in fmt.top_tokens(report, site, expert))
        body = [head]
        if tags:
            body.append(f"<div>top tags: {tags}</div>")
        if tokens:
            body.append(f"<div>top tokens: {tokens}</div>")
        body.append(_items(report.gallery.of(site, expert) if report.gallery else [],
                           int(rec.count)))
        cards.append(f'<div class="card{starved}">{"".join(body)}</div>')
    note = ('<p class="muted">Each card: the expert\'s share, the tags and tokens most '
            "over-represented among its units (lift), and the units it weighted highest.</p>")
    return f'<h3>Expert gallery</h3>{note}<div class="cards">{"".join(cards)}</div>'


def _items(items, count: int) -> str:
    if not items:
        return ('<div class="muted">never chosen</div>' if count == 0 else
                '<div class="muted">(no examples shown: the gallery holds '
                f"{GALLERY_ITEMS} entries in all)</div>")
    if any(item.png for item in items):
        imgs = []
        for item in items:
            where = "whole image" if item.token < 0 else f"patch {item.token}"
            title = esc(f"{item.source or 'example'} (example {item.example}), {where}, "
                        f"weight {fmt.number(item.weight)}")
            if item.png:
                data = base64.b64encode(item.png).decode("ascii")
                imgs.append(f'<img alt="{title}" title="{title}" src="data:image/png;base64,{data}">')
        return f'<div class="crops">{"".join(imgs)}</div>'
    lines = [f'<li title="{esc(item.source)}">{esc(item.left)} <mark>{esc(item.text)}</mark> '
             f"{esc(item.right)} "
             f'<span class="muted">({esc(fmt.number(item.weight, 2))})</span></li>'
             for item in items]
    return f'<ol class="ctx">{"".join(lines)}</ol>'


def _depth_tables(report: Report) -> str:
    parts = []
    if report.exits is not None:
        e = report.exits
        parts.append(f"<h3>Early exit</h3><p>{esc(e.n_layers)} layers; mean exit layer "
                     f"{esc(fmt.number(e.mean_exit_layer))} per {esc(e.unit)}; compute saved "
                     f"{esc(fmt.percent(e.compute_saved))}.</p>")
        hist = e.per_token if len(e.per_token) else e.per_example
        parts.append(table(hist, ["layer", "count", "fraction"], percent=("fraction",)))
    if report.keep is not None and len(report.keep.sites):
        parts.append("<h3>Kept tokens per site</h3>" + table(
            report.keep.sites, ["site", "layer", "n_seen", "n_kept", "kept_fraction"],
            percent=("kept_fraction",)))
    return "".join(parts)


def _comparison(report: Report, plots: list[Plot], state: dict) -> str:
    c = report.comparison
    parts = [f'<section id="comparison"><h2>Comparison with <code>{esc(c.against)}</code></h2>']
    if c.diff.get("note"):
        parts.append(f'<div class="notes">{esc(c.diff["note"])}</div>')
    else:
        parts.append(
            f'<p>{esc(fmt.number(c.diff.get("n_common_units")))} units in both runs; '
            f'{esc(fmt.number(c.diff.get("n_only_run")))} only in <code>{esc(report.run)}</code>, '
            f'{esc(fmt.number(c.diff.get("n_only_against")))} only in '
            f"<code>{esc(c.against)}</code>.</p>")
    parts.append(table(c.headline, ["metric", "a", "b"], ["metric", report.run, c.against]))
    parts += [_figure(p, state) for p in plots]
    sites = fmt.diff_sites(report)
    if len(sites):
        cols = [col for col in ["site", "kind", "n_units", "top1_agreement", "flip_rate",
                                "jaccard"] if col in sites]
        parts.append("<h3>Per site</h3>" + table(sites, cols))
    tokens = fmt.diff_tokens(report)
    if len(tokens):
        cols = [col for col in ["example", "token", "text", "n_sites", "n_flipped",
                                "mean_jaccard"] if col in tokens]
        parts.append("<h3>Tokens whose routing changed most</h3>" + table(tokens, cols))
    parts.append("</section>")
    return "".join(parts)
