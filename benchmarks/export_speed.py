"""The Export page's two waits, timed in one process: a figure exported as PNG (the first,
which starts kaleido's browser, then the next ones, which reuse it) and the report zip with
static PNG figures, on a synthetic run (tests/report_store.large_run: N examples × 64
tokens × 8 sites × 16 experts); with the zip's wall and CPU seconds per step (collect,
plots, PNG export, the expert-card section, ...) and report.html's size and where it goes
(plotly.js, figure JSON, the rest). Prints one JSON object.

usage: python -m benchmarks.export_speed [--examples 500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

STEPS = ("collect", "build_plots", "export_pngs", "render_html", "render_markdown",
         "add_soft_section", "metrics_json", "csv_files", "add_cards_section")


@contextlib.contextmanager
def step_times():
    """{step: [wall s, CPU s]} of build_report_files' steps while the block runs (each
    step's function wrapped in routeviz.report's namespace, put back after)."""
    from routeviz import report

    spent, saved = {}, {name: getattr(report, name) for name in STEPS}

    def timed(name, fn):
        def run(*args, **kwargs):
            result, s, cpu = _timed(lambda: fn(*args, **kwargs))
            spent[name] = [s, cpu]
            return result
        return run

    for name, fn in saved.items():
        setattr(report, name, timed(name, fn))
    try:
        yield spent
    finally:
        for name, fn in saved.items():
            setattr(report, name, fn)


def _timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, round(time.perf_counter() - start, 2), round(time.process_time() - cpu, 2)


def html_parts(html: str) -> dict:
    """Bytes of report.html in plotly.js (the <script> that defines Plotly), in the figures'
    data (Plotly.newPlot calls) and in the rest (tables, text, styles)."""
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.DOTALL)
    library = sum(len(s) for s in scripts if "define" in s[:2000] and len(s) > 1_000_000)
    plots = sum(len(s) for s in scripts if "Plotly.newPlot" in s)
    return {"html_bytes": len(html.encode()), "plotly_js_bytes": library,
            "figure_json_bytes": plots, "plotly_js_copies": html.count("plotly.js v"),
            "figures": html.count("Plotly.newPlot")}


def main(argv=None) -> dict:
    from routeviz.figures import catalog, figure_bytes
    from routeviz.figures.export import chromium_path
    from routeviz.report import build_report_files, build_report_zip
    from routeviz.store import open_store
    from tests.report_store import large_run

    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    out = {"benchmark": "export_speed", "examples": args.examples,
           "load_average_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        out["n_routes"] = large_run(Path(tmp) / "store", n_examples=args.examples)
        store = open_store(Path(tmp) / "store")
        files, s, cpu = _timed(lambda: build_report_files(store, "large", images=False))
        out["report_without_png_s"], out["report_without_png_cpu_s"] = s, cpu
        out["report_html"] = html_parts(files["report.html"].decode())
        if chromium_path() is None:
            out["png"] = "skipped: no Chromium"
            return out
        name = catalog.available(store, "large")[0]
        fig = catalog.build(store, "large", name)
        times = [_timed(lambda: figure_bytes(fig, "png"))[1] for _ in range(args.repeats + 1)]
        out["figure_png"] = {"figure": name, "first_s": times[0],
                             "next_median_s": statistics.median(times[1:]), "all_s": times}
        with step_times() as steps:
            payload, s, cpu = _timed(lambda: build_report_zip(store, "large", images=True))
        out["report_zip_s"], out["report_zip_cpu_s"] = s, cpu
        out["report_zip_steps_s_cpu_s"] = steps  # expert cards: add_cards_section
        out["report_zip_bytes"] = len(payload)
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
