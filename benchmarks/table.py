"""Render benchmarks/results.json as the Markdown tables of README "Performance".

    python -m benchmarks.table
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results.json"
VARIANTS = (("routeviz", "routeviz"), ("cpu_hooks", "hooks + .cpu()"), ("nnsight", "nnsight"))


def _f(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def overhead_rows(results: dict) -> list[str]:
    rows = [("| model, batch | untraced forward (ms, CPU) | variant | forward ratio CPU (wall) "
            "| block ratio CPU (wall) | peak RSS over model (MB) |"),
            "|---|---|---|---|---|---|"]
    for key, label in (("overhead_mixtral_8x128", "tiny Mixtral 8×128"),
                       ("overhead_mixtral_32x512", "tiny Mixtral 32×512"),
                       ("overhead_text_moe_8x128", "text-moe 8×128"),
                       ("overhead_text_moe_32x128", "text-moe 32×128")):
        entry = results.get(key, {})
        if "shapes" not in entry:
            rows.append(f"| {label} | – | – | {entry.get('error') or entry.get('skipped')} | | |")
            continue
        shape = next(iter(entry["shapes"].values()))
        base = shape.get("untraced", {})
        base_mem = base.get("peak_over_model_mb")
        rows.append(f"| {label} | {_f(base.get('forward_cpu_ms'), 0)} | untraced | 1 | 1 "
                    f"| {_f(base_mem, 0)} |")
        for name, shown in VARIANTS:
            v = shape.get(name)
            if v is None:
                rows.append(f"| | | {shown} | {entry.get('nnsight', 'not run')} | | |")
            elif "error" in v:
                rows.append(f"| | | {shown} | {v['error'][:80]} | | |")
            else:
                rows.append(
                    f"| | | {shown} | {_f(v['forward_cpu_ratio'], 3)} ({_f(v['forward_ratio'])}) "
                    f"| {_f(v['block_cpu_ratio'], 3)} ({_f(v['block_ratio'])}) "
                    f"| {_f(v.get('peak_over_model_mb'), 0)} |")
    return rows


def main() -> str:
    r = json.loads(RESULTS.read_text())
    m = r["machine"]
    out = [(f"Machine: {m['cpu_count']} cores ({m['processor']}), no GPU, torch {m['torch']}, "
           f"{m['when']}; shared with other jobs, so wall-clock figures are noisy and CPU-time "
           "figures are the ones to compare."), ""]
    out += overhead_rows(r)
    sw = r.get("store_write", {})
    out += ["", "| store | float32 weights (lossless) | float16 weights |", "|---|---|---|"]
    if "float32" in sw:
        f32, f16 = sw["float32"], sw["float16"]
        out += [f"| bytes per route row | {_f(f32['bytes_per_row'])} | {_f(f16['bytes_per_row'])} |",
                (f"| route rows written per CPU-second (per wall second) | "
                f"{f32['rows_per_cpu_s'] / 1e6:.1f} M ({f32['rows_per_s'] / 1e6:.1f} M) | "
                f"{f16['rows_per_cpu_s'] / 1e6:.1f} M ({f16['rows_per_s'] / 1e6:.1f} M) |"),
                (f"| read back equal / DuckDB reads | {f32['read_back_equal']} / "
                f"{f32['duckdb_reads']} | {f16['read_back_equal']} / {f16['duckdb_reads']} |")]
    st = r.get("streaming", {})
    if "rss_mb_after_batches" in st:
        rss = st["rss_mb_after_batches"]
        out += ["", (f"Streaming ({st['batches']} batches of {st['batch']}, "
                f"{st['route_rows'] / 1e6:.1f} M route rows): RSS "
                f"{_f(rss['10'], 0)} MB after 10 batches, {_f(rss['100'], 0)} MB after 100, "
                f"{_f(rss['1000'], 0)} MB after 1000 (writer queue bound: "
                f"{st['writer_queue_bound']} batches).")]
    q = r.get("metrics_10m", {})
    if isinstance(q.get("seconds"), dict):
        shown = ", ".join(f"{k} {v:.2f} s" for k, v in q["seconds"].items())
        peak = q.get("peak_rss_mb", {})
        out += ["", (f"Queries over {q['route_rows'] / 1e6:.1f} M route rows (DuckDB): {shown}; "
                f"peak RSS {max(peak.values()) if peak else '–'} MB.")]
    p = r.get("profile_trace", {})
    if "hooks_share_of_tracing_thread" in p:
        out += ["", (f"Profile (py-spy, tiny Mixtral 8×128): routeviz's hooks and batch hand-off "
                f"take {100 * p['hooks_share_of_tracing_thread']:.1f}% of the tracing thread's "
                f"samples; the writer thread works for "
                f"{100 * p['writer_share_of_tracing_thread']:.1f}% as many.")]
    out += ["", f"`make bench` took {r.get('total_seconds', 0) / 60:.1f} minutes."]
    return "\n".join(out)


if __name__ == "__main__":
    print(main())
