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


def _ratio(entry: dict, shape: str, variant: str):
    v = entry.get("shapes", {}).get(shape, {}).get(variant, {})
    return v.get("forward_cpu_ratio"), v.get("forward_ratio")


def target_rows(r: dict) -> list[str]:
    """Issue 18's targets beside nnsight and hand-written hooks, as measured in `r`."""
    rows = ["| target | routeviz | hand-written hooks + .cpu() | nnsight | met? |",
            "|---|---|---|---|---|"]

    def both(pair):
        return "–" if pair[0] is None else f"{pair[0]:.3f} ({pair[1]:.2f})"

    si = r.get("single_input", {}).get("variants", {})
    if si:
        rv, hk, nn = si["routeviz"], si["cpu_hooks"], si.get("nnsight", {})
        rows.append(f"| 1×16 forward inside an open trace ≤ 1.03× untraced, below nnsight "
                    f"(CPU (wall)) | {both((rv['cpu_ratio'], rv['ratio']))} "
                    f"| {both((hk['cpu_ratio'], hk['ratio']))} "
                    f"| {both((nn.get('cpu_ratio'), nn.get('ratio')))} "
                    f"| {_met(rv['cpu_ratio'] <= 1.03 and rv['cpu_ratio'] < nn.get('cpu_ratio', 9))} |")
        for key, label in (("stored_warm", "hooks kept (the app)"),
                           ("stored_cold", "hooks registered per trace")):
            v = si[key]
            rows.append(f"| whole stored trace of one 1×16 input ≤ untraced + 2 ms, {label} "
                        f"(CPU (wall), ms over untraced {_f(si['untraced']['cpu_ms'])} ms) "
                        f"| +{_f(v['over_untraced_cpu_ms'])} (+{_f(v['over_untraced_ms'])}) "
                        f"| nothing stored | nothing stored | {_met(v['over_untraced_cpu_ms'] <= 2)} |")
    for shape, key in (("8x128", "overhead_mixtral_8x128"), ("32x512", "overhead_mixtral_32x512")):
        entry = r.get(key, {})
        ours = _ratio(entry, shape, "routeviz")
        if ours[0] is not None:
            rows.append(f"| tiny Mixtral {shape.replace('x', '×')} forward ≤ 1.01× (CPU (wall)) "
                        f"| {both(ours)} | {both(_ratio(entry, shape, 'cpu_hooks'))} "
                        f"| {both(_ratio(entry, shape, 'nnsight'))} | {_met(ours[0] <= 1.01)} |")
    c = r.get("compiled", {})
    if "compiled_traced" in c:
        t = c["compiled_traced"]
        rows.append(f"| torch.compile ({c['backend']}) {c['shape'].replace('x', '×')} traced ≤ "
                    f"1.03× compiled untraced (CPU (wall)) | {both((t['cpu_ratio'], t['ratio']))}"
                    f"; outputs equal: {c.get('outputs_equal')} | – | – "
                    f"| {_met(t['cpu_ratio'] <= 1.03)} |")
    elif c:
        rows.append(f"| torch.compile traced ≤ 1.03× | {c.get('error', '–')[:80]} | – | – | – |")
    a = r.get("app_response", {})
    for kind in ("text", "image"):
        med = a.get(kind, {}).get("median")
        if med:
            info = a[kind]
            what = (f"{info['tokens_given']}-token text ({info['tokens_traced']} traced) on "
                    f"{info['model']}" if kind == "text" else f"1-megapixel photo on {info['model']}")
            rows.append(f"| app: {what}, click to result ≤ 1 s | {_f(med['click_to_result_s'])} s "
                        f"(model {_f(med['model_s'])}, trace {_f(med['trace_s'], 3)}, storage "
                        f"{_f(med['storage_s'])}, drawing {_f(med['drawing_s'])}) | – | – "
                        f"| {_met(med['click_to_result_s'] <= 1)} |")
    return rows


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def main() -> str:
    r = json.loads(RESULTS.read_text())
    m = r["machine"]
    out = [(f"Machine: {m['cpu_count']} cores ({m['processor']}), no GPU, torch {m['torch']}, "
           f"{m['when']}; shared with other jobs, so wall-clock figures are noisy and CPU-time "
           "figures are the ones to compare."), ""]
    loads = [v.get("load_average") for v in r.values() if isinstance(v, dict)]
    loads = [x for x in loads if x is not None]
    if loads:
        out[0] += f" Load average during the runs: {min(loads):.1f}–{max(loads):.1f}."
    dates: dict = {}
    for key, when in r.get("measured", {}).items():
        dates.setdefault(when, []).append(key)
    if len(dates) > 1:
        out += ["Measured at different times: " + "; ".join(
            f"{when}: {', '.join(keys)}" for when, keys in sorted(dates.items())) + ".", ""]
    out += target_rows(r) + [""]
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
