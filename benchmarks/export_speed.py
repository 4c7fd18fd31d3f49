"""The Export page's two waits, timed in one process: a figure exported as PNG (the first,
which starts the process's browser, then the next ones, which reuse it) and the report zip
with static PNG figures, both cold (the browser not started: the zip pays for its start)
and warm (started before, as after the Export page's warm_up or a figure download), on a
synthetic run (tests/report_store.large_run: N examples × 64
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

# finish_pngs is the wait for Chromium left after the HTML and the cards were written
# while it drew (start_pngs only hands the figures over)
STEPS = ("collect", "build_plots", "start_pngs", "render_html", "card_result", "finish_pngs",
         "render_markdown", "add_soft_section", "metrics_json", "csv_files",
         "add_cards_section")


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


def chromium_cpu_s() -> float | None:
    """CPU seconds (user + system) the process's browser has spent so far: every process in
    the session its launcher leads (Chromium and its renderer, GPU and utility processes),
    read from /proc; None where there is no browser or no /proc."""
    from routeviz.figures.export import _BROWSER

    k = _BROWSER._kaleido
    process = getattr(k, "subprocess", None)
    if process is None or not Path("/proc").is_dir():
        return None
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == process.pid:  # the process group (start_new_session)
            ticks += int(fields[11]) + int(fields[12])
    return round(ticks / os.sysconf("SC_CLK_TCK"), 2)


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
    from routeviz.figures.export import _BROWSER, chromium_path
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
        _BROWSER.close()  # cold: nothing started yet in this process
        with step_times() as steps:
            payload, s, cpu = _timed(lambda: build_report_zip(store, "large", images=True))
        out["report_zip_cold_s"], out["report_zip_cold_cpu_s"] = s, cpu
        out["report_zip_cold_steps_s_cpu_s"] = steps
        out["report_zip_cold_chromium_cpu_s"] = chromium_cpu_s()
        name = catalog.available(store, "large")[0]
        fig = catalog.build(store, "large", name)
        _BROWSER.close()
        times = [_timed(lambda: figure_bytes(fig, "png"))[1] for _ in range(args.repeats + 1)]
        out["figure_png"] = {"figure": name, "first_s": times[0],
                             "next_median_s": statistics.median(times[1:]), "all_s": times,
                             "note": "first: starts the browser; next: the kept one"}
        before = chromium_cpu_s()
        with step_times() as steps:  # warm: the browser the figure download started
            payload, s, cpu = _timed(lambda: build_report_zip(store, "large", images=True))
        out["report_zip_chromium_cpu_s"] = round(chromium_cpu_s() - before, 2)
        out["report_zip_s"], out["report_zip_cpu_s"] = s, cpu
        out["report_zip_steps_s_cpu_s"] = steps  # expert cards: card_result
        out["report_zip_bytes"] = len(payload)
        from routeviz.metrics import summary as metrics_summary

        numbers = metrics_summary(store, "large")  # the Export page has it from metrics.json
        payload, s, cpu = _timed(lambda: build_report_zip(store, "large", images=True,
                                                          summary=numbers))
        out["report_zip_app_s"], out["report_zip_app_cpu_s"] = s, cpu
        out["measures"] = ("report_zip_s: browser already started (Export page open or a "
                           "figure exported before); report_zip_cold_s: in a process where "
                           "it was not; report_zip_app_s: as the Export page builds it, warm "
                           "and with the metrics summary the page computed for metrics.json; "
                           "CPU s are this process's (Chromium's not counted)")
    out["load_average_end"] = round(os.getloadavg()[0], 2)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
