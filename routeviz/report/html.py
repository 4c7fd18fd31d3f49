"""report.html: one self-contained page that opens offline, from Jinja2 templates.

The templates (`routeviz/report/templates/`) are rendered with autoescaping on: every value
this module hands them (token text, tag values, site, run, model and file names, numbers)
is escaped unless it is marked safe, and only two things are: plotly's own figure markup
(`Figure.to_html`, which escapes `<` in the JSON it writes into <script>) and our static
CSS (a template file, included as template text). plotly.js is embedded once, gzipped, in
the first figure of the page (`plotly_loader`); every figure's script runs once it is
unpacked.
"""

from __future__ import annotations

import base64
import re
from functools import lru_cache
from typing import NamedTuple

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from routeviz.report import text as fmt
from routeviz.report.collect import GALLERY_ITEMS, Report
from routeviz.report.plots import Plot


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(loader=PackageLoader("routeviz.report", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


class Cell(NamedTuple):
    text: str
    numeric: bool  # right-aligned


class Table(NamedTuple):
    headers: list
    rows: list  # [[Cell]]


def render_html(report: Report, plots: list[Plot]) -> str:
    by_section: dict[str, list[Plot]] = {}
    for plot in plots:
        by_section.setdefault(plot.section, []).append(plot)
    figures = _Figures()
    overview = figures.of(by_section.get("overview", []))
    sites = [_site(report, site, number, figures.of(by_section.get(f"site:{site}", [])))
             for number, site in enumerate(report.detailed_sites)]
    comparison = None
    if report.comparison is not None:
        comparison = _comparison(report, figures.of(by_section.get("comparison", [])))
    lines = fmt.summary_rows(report)
    half = (len(lines) + 1) // 2
    return environment().get_template("report.html").render(
        run=report.run, version=report.overview["routeviz_version"],
        summary=[part for part in (lines[:half], lines[half:]) if part], notes=report.notes,
        overview=overview, depth=_depth(report), sites=sites, comparison=comparison)


class _Figures:
    """Each plot's figure markup (plotly's, marked safe), plotly.js in the first one only;
    figures must be asked for in the order the page shows them."""

    def __init__(self):
        self.first = True

    def of(self, plots: list[Plot]) -> list[dict]:
        out = []
        for plot in plots:
            div = plot.figure.to_html(full_html=False, include_plotlyjs=False,
                                      default_height=f"{plot.height}px", default_width="100%",
                                      div_id=f"plot-{plot.key}",  # the same run, the same file
                                      config={"displaylogo": False, "responsive": True})
            # drawn by the loader once plotly.js is unpacked (PLOT_SCRIPT)
            div = re.sub(r"<script(?: type=\"text/javascript\")?>", f'<script type="{PLOT_SCRIPT}">',
                         div, count=1)
            if self.first:
                div = plotly_loader() + div
            self.first = False
            out.append({"key": plot.key, "caption": plot.caption, "div": Markup(div)})
        return out


PLOT_SCRIPT = "text/x-routeviz-plot"  # a figure's Plotly.newPlot, run after plotly.js loads

_LOADER = """<script type="text/javascript">/* plotly.js v%(version)s (MIT), gzip + base64: \
unpacked once by the browser, then every figure of the page is drawn */
window.PlotlyConfig = {MathJaxConfig: 'local'};
(function () {
  var bytes = Uint8Array.from(atob("%(packed)s"), function (c) { return c.charCodeAt(0); });
  var unpacked = new Response(new Blob([bytes]).stream()
    .pipeThrough(new DecompressionStream("gzip"))).text();
  var parsed = new Promise(function (done) {
    if (document.readyState !== "loading") { done(); }
    else { document.addEventListener("DOMContentLoaded", done); }
  });
  Promise.all([unpacked, parsed]).then(function (got) {
    (0, eval)(got[0]);
    document.querySelectorAll('script[type="%(plot)s"]').forEach(function (s) {
      (0, eval)(s.textContent);
    });
  });
})();
</script>"""


@lru_cache(maxsize=1)
def plotly_loader() -> str:
    """plotly.js, gzipped and base64-encoded in one <script> that unpacks it with the
    browser's DecompressionStream and then runs every figure's script: report.html is
    ~1.9 MB of library instead of 4.8 MB (benchmarks/export_speed.py), still offline."""
    import gzip

    import plotly.offline

    packed = base64.b64encode(gzip.compress(plotly.offline.get_plotlyjs().encode(), 9,
                                            mtime=0)).decode()
    return _LOADER % {"version": plotly.offline.get_plotlyjs_version(), "packed": packed,
                      "plot": PLOT_SCRIPT}


def table(df: pd.DataFrame, columns: list[str], headers: list[str] | None = None,
          percent: tuple = ()) -> Table | None:
    """`columns` of `df` as formatted cells (numbers right-aligned); None when empty."""
    if df is None or df.empty:
        return None
    rows = []
    for rec in df[columns].to_dict(orient="records"):
        cells = []
        for col in columns:
            value = rec[col]
            if col in percent:
                cells.append(Cell(fmt.percent(value), True))
            else:
                numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
                cells.append(Cell(fmt.number(value), numeric))
        rows.append(cells)
    return Table(list(headers or columns), rows)


def _site(report: Report, site: str, number: int, figures: list[dict]) -> dict:
    scores = fmt.site_scores(report, site)
    stats = fmt.load_stats(report, site)
    keep = fmt.keep_stats(report, site)
    merges = fmt.merge_stats(report, site)
    return {
        "number": number, "site": site, "layer": fmt.site_layer(report, site),
        "kinds": ", ".join(fmt.site_kinds(report, site)), "figures": figures,
        "scores": table(scores, fmt.SCORE_COLUMNS) if len(scores) else None,
        "load": None if stats is None else table(
            pd.DataFrame([stats]), ["n_experts", "n_tokens", "cv", "max_over_mean", "n_starved",
                                    "dropped_tokens", "dropped_fraction"],
            percent=("dropped_fraction",)),
        "gallery": None if stats is None else _gallery(report, site),
        "keep": None if keep is None else table(
            pd.DataFrame([keep]), ["n_seen", "n_kept", "kept_fraction"],
            percent=("kept_fraction",)),
        "merges": table(merges, ["group_size", "n_groups"]) if len(merges) else None,
    }


def _gallery(report: Report, site: str) -> list[dict]:
    """One card per expert: load, top tags, top tokens, and its highest-weight units."""
    cards = []
    for rec in fmt.expert_rows(report, site).itertuples(index=False):
        expert, count = int(rec.expert), int(rec.count)
        items = report.gallery.of(site, expert) if report.gallery else []
        cards.append({
            "expert": expert, "share": fmt.percent(rec.share), "count": fmt.number(count),
            "starved": bool(rec.starved), "tags": fmt.top_tags(report, site, expert),
            "tokens": fmt.top_tokens(report, site, expert), "never_chosen": count == 0,
            "crops": _crops(items) if any(item.png for item in items) else [],
            "contexts": [] if any(item.png for item in items) else [
                {"source": item.source, "left": item.left, "text": item.text,
                 "right": item.right, "weight": fmt.number(item.weight, 2)} for item in items],
        })
    return cards


def _crops(items) -> list[dict]:
    crops = []
    for item in items:
        if not item.png:
            continue
        where = "whole image" if item.token < 0 else f"patch {item.token}"
        crops.append({"title": f"{item.source or 'example'} (example {item.example}), {where}, "
                               f"weight {fmt.number(item.weight)}",
                      "data": base64.b64encode(item.png).decode("ascii")})
    return crops


def _depth(report: Report) -> dict:
    exits = keep = None
    if report.exits is not None:
        e = report.exits
        hist = e.per_token if len(e.per_token) else e.per_example
        exits = {"n_layers": e.n_layers, "mean_exit_layer": fmt.number(e.mean_exit_layer),
                 "unit": e.unit, "compute_saved": fmt.percent(e.compute_saved),
                 "table": table(hist, ["layer", "count", "fraction"], percent=("fraction",))}
    if report.keep is not None and len(report.keep.sites):
        keep = table(report.keep.sites, ["site", "layer", "n_seen", "n_kept", "kept_fraction"],
                     percent=("kept_fraction",))
    return {"exits": exits, "keep": keep, "gallery_items": GALLERY_ITEMS}


def _comparison(report: Report, figures: list[dict]) -> dict:
    c = report.comparison
    sites, tokens = fmt.diff_sites(report), fmt.diff_tokens(report)
    site_cols = [col for col in ["site", "kind", "n_units", "top1_agreement", "flip_rate",
                                 "jaccard"] if col in sites]
    token_cols = [col for col in ["example", "token", "text", "n_sites", "n_flipped",
                                  "mean_jaccard"] if col in tokens]
    return {
        "against": c.against, "note": c.diff.get("note"),
        "n_common": fmt.number(c.diff.get("n_common_units")),
        "n_only_run": fmt.number(c.diff.get("n_only_run")),
        "n_only_against": fmt.number(c.diff.get("n_only_against")),
        "headline": table(c.headline, ["metric", "a", "b"], ["metric", report.run, c.against]),
        "figures": figures,
        "sites": table(sites, site_cols) if len(sites) else None,
        "tokens": table(tokens, token_cols) if len(tokens) else None,
    }


def append_section(files: dict, markdown: str, section_html: str) -> None:
    """Add one section to a written report in place: its Markdown at the end of report.md,
    its HTML just before report.html's </body> (at the end where there is none)."""
    files["report.md"] = files["report.md"] + markdown.encode("utf-8")
    page = files["report.html"].decode("utf-8")
    cut = page.rfind("</body>")
    page = page[:cut] + section_html + page[cut:] if cut >= 0 else page + section_html
    files["report.html"] = page.encode("utf-8")
