"""`routeviz report --series NAME`: a report over every step of a series.

Files (names fixed here, never taken from a series, run, site or token):
    report.html      the metrics as lines over steps (one line per site, "*" pooled), and
                     expert identity across steps; plotly.js embedded once, opens offline
    metrics.json     the `routeviz metrics --series NAME --json` object + routeviz_version
    timeline.csv     step, run, site, metric, value (every line drawn)
    saturation.csv   step, run, site, top1, overlap, n_units
    identity.csv     site, from_step, to_step, expert, matched, similarity, changed
"""

from __future__ import annotations

import json

import pandas as pd

import routeviz
from routeviz.figures import timeline as timeline_figures
from routeviz.metrics.series import TIMELINE_METRICS, saturation, series_summary, timeline
from routeviz.report.html import CSS, esc, table
from routeviz.report.tables import json_default

MAX_IDENTITY_SITES = 8  # identity heatmaps drawn at most (the CSV has every site)


def build_series_files(store, series: str, tags=None) -> dict[str, bytes]:
    """Every file of the series report, in memory."""
    summary = series_summary(store, series, tags=tags)
    frame = timeline(store, series, tags=tags)
    sat = saturation(store, series)
    ids = pd.DataFrame(summary["identity"],
                       columns=["site", "from_step", "to_step", "expert", "matched",
                                "similarity", "changed"])
    out = dict(summary, routeviz_version=routeviz.__version__)
    return {
        "report.html": render_series_html(summary, frame, ids).encode("utf-8"),
        "metrics.json": json.dumps(out, indent=2, default=json_default).encode(),
        "timeline.csv": frame.to_csv(index=False, float_format="%.6g").encode(),
        "saturation.csv": sat.to_csv(index=False, float_format="%.6g").encode(),
        "identity.csv": ids.to_csv(index=False, float_format="%.6g").encode(),
    }


def write_series_report(store, series: str, out_dir, tags=None) -> list:
    """Write the series report into `out_dir` (created if missing); return the paths."""
    from routeviz.report import prepare_out, write_files

    prepare_out(out_dir, images=False)  # fail before the work, not after it
    return write_files(out_dir, build_series_files(store, series, tags=tags))


def _figure(fig, key: str, first: bool) -> str:
    div = fig.to_html(full_html=False, include_plotlyjs=first, default_width="100%",
                      default_height=f"{int(fig.layout.height or 340)}px",
                      div_id=f"plot-{key}", config={"displaylogo": False, "responsive": True})
    return f'<figure class="plot" data-key="{esc(key)}">{div}</figure>'


def render_series_html(summary: dict, frame: pd.DataFrame, identity: pd.DataFrame) -> str:
    name = esc(summary["series"])
    steps = pd.DataFrame([{"step": s["step"], "run": s["run"],
                           "checkpoint": s.get("checkpoint") or "", "n_routes": s["n_routes"]}
                          for s in summary["steps"]])
    parts = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
             f"<title>routeviz series report: {name}</title><style>{CSS}</style></head><body>"
             f"<h1>Routing over training: <code>{name}</code></h1>",
             f'<section id="summary"><h2>Steps</h2><p>{len(steps)} step(s); saturation is '
             f"measured against the last step, {esc(summary['final_step'])}.</p>",
             table(steps, ["step", "run", "checkpoint", "n_routes"]), "</section>",
             '<section id="timeline"><h2>Metrics over steps</h2>']
    first = True
    for metric in TIMELINE_METRICS:
        if (frame["metric"] == metric).any():
            parts.append(_figure(timeline_figures.metric_lines(frame, metric), metric, first))
            first = False
    parts.append("</section>")
    parts.append('<section id="identity"><h2>Expert identity across steps</h2>')
    if identity.empty:
        parts.append('<p class="muted">(one step only: nothing to match)</p>')
    else:
        for number, site in enumerate(list(dict.fromkeys(identity.site))[:MAX_IDENTITY_SITES]):
            fig = timeline_figures.identity_heatmap(identity, site)
            parts.append(_figure(fig, f"identity-{number:02d}", first))
            first = False
        changed = identity[identity.changed.astype(bool)]
        parts.append("<h3>Experts whose best match at the next step has another id</h3>")
        parts.append(table(changed, ["site", "from_step", "to_step", "expert", "matched",
                                     "similarity"]))
    parts.append("</section>")
    parts.append(f'<footer class="muted"><p>routeviz {esc(routeviz.__version__)} · '
                 "machine-readable copies: metrics.json, timeline.csv, saturation.csv, "
                 "identity.csv</p></footer></body></html>")
    return "\n".join(parts)
