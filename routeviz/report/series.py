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
from routeviz.report.html import _Figures, environment, table
from routeviz.report.plots import Plot
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


def render_series_html(summary: dict, frame: pd.DataFrame, identity: pd.DataFrame) -> str:
    """report.html from templates/series.html (autoescaped; only plotly's markup is safe)."""
    steps = pd.DataFrame([{"step": s["step"], "run": s["run"],
                           "checkpoint": s.get("checkpoint") or "", "n_routes": s["n_routes"]}
                          for s in summary["steps"]])
    figures = _Figures()  # plotly.js goes into the first figure of the page only
    lines = [Plot(metric.replace("_", "-"), "timeline", timeline_figures.METRIC_TITLES[metric],
                  timeline_figures.metric_lines(frame, metric))
             for metric in TIMELINE_METRICS if (frame["metric"] == metric).any()]
    sites = list(dict.fromkeys(identity.site))[:MAX_IDENTITY_SITES]
    heatmaps = [Plot(f"identity-{number:02d}", "identity", f"Expert identity at {site}",
                     timeline_figures.identity_heatmap(identity, site))
                for number, site in enumerate(sites)]
    moved = identity[identity.changed.astype(bool)]
    return environment().get_template("series.html").render(
        series=summary["series"], n_steps=len(steps), final_step=summary["final_step"],
        steps=table(steps, ["step", "run", "checkpoint", "n_routes"]),
        timeline=figures.of(lines), identity=figures.of(heatmaps),
        moved=table(moved, ["site", "from_step", "to_step", "expert", "matched", "similarity"]),
        version=routeviz.__version__)
