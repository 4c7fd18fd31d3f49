"""`routeviz …` — the command line. Every failure is one line on stderr and a non-zero exit;
`--debug` shows the traceback."""

from __future__ import annotations

import argparse
import json
import sys
import warnings

from routeviz.errors import RoutevizError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="routeviz", description=(
        "Record, analyse and show where every token goes in conditional-computation models."))
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("models", help="installed models and what they route")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("trace", help="run a model on inputs and record its routing")
    s.add_argument("--model", required=True, nargs="+", help="sample-model name or checkpoint "
                   "directory; with --series, several checkpoint directories")
    s.add_argument("--series", help="trace each --model checkpoint as one run of this series")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", nargs="+", metavar="T", help="texts, one example each")
    src.add_argument("--file", nargs="+", metavar="PATH", help="text or image files")
    src.add_argument("--dataset", metavar="NAME", help="a bundled dataset (see `models --json`)")
    s.add_argument("--lines", action="store_true", help="each non-empty line is one example")
    s.add_argument("--limit", type=int, help="at most N examples of the dataset")
    s.add_argument("--store", required=True)
    s.add_argument("--run")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--overwrite", action="store_true", help="replace an existing run")
    s.add_argument("--logits", action="store_true", help="also record router logits")
    s.add_argument("--hidden-states", action="store_true", help="also record the hidden state "
                   "each routing site received (float16, the embeddings table)")
    s.add_argument("--trust-remote-code", action="store_true",
                   help="allow a checkpoint's own Python code to run")
    s.add_argument("--ablate", action="append", default=[], metavar="SITE:E",
                   help="the router at SITE (a name or glob) may not choose expert E; repeatable")
    s.add_argument("--force", action="append", default=[], metavar="SITE:E",
                   help="every token at SITE takes expert E at rank 0; repeatable")
    s.add_argument("--top-k", type=int, metavar="K", help="experts per token at every router")
    s.add_argument("--disable", metavar="KINDS", help="turn decisions off, comma-separated: "
                   "keep (no pruning/capacity), merge, exit")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("runs", help="list the runs in a store")
    s.add_argument("--store", required=True)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("metrics", help="specialization, load, keep and exit analyses")
    s.add_argument("--store", required=True)
    s.add_argument("--run")
    s.add_argument("--series", help="every step of a series, plus saturation")
    s.add_argument("--tag", action="append", metavar="NAME", help="tag family (repeatable)")
    s.add_argument("--unit", choices=["token", "example"], default=None)
    s.add_argument("--kind", choices=["expert", "keep", "exit"], default=None)
    s.add_argument("--top1", action="store_true", help="active = top-1 choice only")
    s.add_argument("--permutations", type=int, default=50, metavar="N",
                   help="tag shuffles for the Focus/Cover baseline and bootstrap resamples "
                        "for its ci (0: neither)")
    s.add_argument("--seed", type=int, default=0, help="seed of the shuffles and samples")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("diff", help="compare the routing of two runs over the same examples")
    s.add_argument("--store", required=True)
    s.add_argument("--run", required=True)
    s.add_argument("--against", required=True)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("report", help="write a specialization report (HTML, Markdown, CSV, JSON)")
    s.add_argument("--store", required=True)
    s.add_argument("--run")
    s.add_argument("--series", help="a report over every step of a series")
    s.add_argument("--out", required=True)
    s.add_argument("--against", help="add a comparison with this run")
    s.add_argument("--tag", action="append", metavar="NAME")

    s = sub.add_parser("explain", help="which input tokens (or patches) drive one routing "
                       "decision (Integrated Gradients on a router logit)")
    s.add_argument("--model", required=True, help="sample-model name or checkpoint directory")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", metavar="T", help="the input text")
    src.add_argument("--file", metavar="PATH", help="a text or image file")
    s.add_argument("--site", required=True, help="the expert routing site (module name)")
    s.add_argument("--token", required=True, type=int, help="token (image: patch) index")
    s.add_argument("--expert", type=int, help="the expert whose logit is explained "
                   "(default: the token's top-1 expert)")
    s.add_argument("--steps", type=int, default=32, help="integration steps (default 32)")
    s.add_argument("--trust-remote-code", action="store_true",
                   help="allow a checkpoint's own Python code to run")
    s.add_argument("--json", action="store_true")
    return p


def cmd_models(args):
    from routeviz.models import list_models

    models = list_models()
    if args.json:
        print(json.dumps(models, indent=2))
        return
    for m in models:
        print(f"{m['name']:<22} {m['modality']:<6} {', '.join(m['routing']):<26} {m['description']}")


def cmd_trace(args):
    from tqdm import tqdm

    from routeviz.models import load_model
    from routeviz.record import record
    from routeviz.schema import check_run_name
    from routeviz.store import init_store, run_exists

    check_run_name(args.run)
    init_store(args.store)
    if run_exists(args.store, args.run) and not args.overwrite:
        raise RoutevizError(f"run {args.run!r} already exists in {args.store!r}; "
                            "pass --overwrite to replace it")
    items = trace_items(args)
    runner = load_model(args.model, trust_remote_code=args.trust_remote_code)
    bar = tqdm(total=len(items), unit="ex", desc=f"tracing {args.run}", disable=None,
               file=sys.stderr)

    def progress(done, total):
        bar.update(done - bar.n)

    config = {"inputs": "dataset:" + args.dataset if args.dataset else None}
    try:
        with intervene_from_args(runner.module, args) as edit:
            if not edit.request.empty:
                config["intervention"] = edit.config
            result = record(runner, items, args.store, args.run, batch_size=args.batch_size,
                            overwrite=args.overwrite, progress=progress, logits=args.logits,
                            hidden_states=args.hidden_states, config=config)
    finally:
        bar.close()
    for note in result.notes[:3]:
        print(f"note: {note}", file=sys.stderr)
    if len(result.notes) > 3:
        print(f"note: ... and {len(result.notes) - 3} more like these", file=sys.stderr)
    summary = {"run": result.run, "model": runner.name, "examples": result.n_examples,
               "routes": result.rows, "store": str(args.store)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"recorded {result.rows} routes for {result.n_examples} example(s) "
              f"as run {result.run!r} in {args.store}")


def intervene_from_args(model, args):
    """`routeviz.intervene` with trace's --ablate, --force, --top-k and --disable."""
    from routeviz.intervene import intervene

    disable = [k.strip() for k in (args.disable or "").split(",") if k.strip()]
    return intervene(model, ablate=args.ablate, force=args.force, top_k=args.top_k,
                     disable=disable)


def trace_items(args) -> list:
    """The inputs `trace` was given: --text, --file or --dataset, cut to --limit."""
    from routeviz.inputs import Item, check_text, read_file

    if args.text is not None:
        items = [Item(text=check_text(t, f"--text #{i + 1}"), source=t[:200])
                 for i, t in enumerate(args.text)]
    elif args.file is not None:
        items = [item for path in args.file for item in read_file(path, lines=args.lines)]
    else:
        from routeviz.plugins import load_dataset

        items = load_dataset(args.dataset, limit=args.limit)
    if args.limit is not None:
        items = items[: max(args.limit, 0)]
    return items


def cmd_runs(args):
    from routeviz.query import parse_config
    from routeviz.store import open_store

    store = open_store(args.store)
    df = store.runs()
    if args.json:
        rows = []
        for rec in df.to_dict(orient="records"):
            rows.append({
                "run": rec["run"], "model": rec["model"],
                "created": None if _isnull(rec["created"]) else str(rec["created"]),
                "finished": None if _isnull(rec["finished"]) else str(rec["finished"]),
                "n_examples": _count(rec["n_examples"]), "n_routes": _count(rec["n_routes"]),
                "routeviz_version": None if _isnull(rec["routeviz_version"])
                else rec["routeviz_version"],
                "config": parse_config(rec["config"]),
            })
        print(json.dumps(rows, indent=2))
        return
    if df.empty:
        print("no runs")
        return
    knows_finished = "finished" not in store.missing.get("runs", [])
    for rec in df.to_dict(orient="records"):
        # a store written without `finished` (older, or another writer) says nothing of it
        state = "  (unfinished)" if _isnull(rec["finished"]) and knows_finished else ""
        print(f"{rec['run']:<24} {rec['model']!s:<22} {_count(rec['n_examples']):>7} examples "
              f"{_count(rec['n_routes']):>10} routes{state}")


def _count(value) -> int:
    return 0 if _isnull(value) else int(value)


def _isnull(value) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))


def cmd_metrics(args):
    from routeviz import metrics
    from routeviz.store import open_store

    store = open_store(args.store)
    if args.permutations < 0:
        raise RoutevizError(f"--permutations must be 0 or more, got {args.permutations}")
    result = metrics.summary(store, args.run, tags=args.tag, unit=args.unit, kind=args.kind,
                             top1=args.top1, permutations=args.permutations,
                             resamples=args.permutations, seed=args.seed)
    print(json.dumps(result, indent=None if args.json else 2, default=_json_default))


def cmd_diff(args):
    from routeviz import metrics
    from routeviz.store import open_store

    store = open_store(args.store)
    result = metrics.diff(store, args.run, args.against)
    print(json.dumps(result, indent=None if args.json else 2, default=_json_default))


def cmd_report(args):
    from routeviz.report import write_report
    from routeviz.store import open_store

    store = open_store(args.store)
    if args.against and args.run:  # the report says it too; say it where the user looks
        from routeviz.metrics.pairing import input_difference

        note = input_difference(store, args.run, args.against, refuse_disjoint=True)
        if note:
            print(f"note: {note}", file=sys.stderr)
    paths = write_report(store, args.run, args.out, against=args.against, tags=args.tag)
    for path in paths:
        print(path)


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def cmd_explain(args):
    from routeviz.explain import explain, format_explanation
    from routeviz.inputs import Item, check_text, read_file
    from routeviz.models import load_model

    if args.steps < 1:
        raise RoutevizError(f"--steps must be at least 1, got {args.steps}")
    if args.text is not None:
        item = Item(text=check_text(args.text, "--text"), source=args.text[:200])
    else:
        item = read_file(args.file)[0]
    runner = load_model(args.model, trust_remote_code=args.trust_remote_code)
    result = explain(runner, item, args.site, args.token, args.expert, n_steps=args.steps)
    print(json.dumps(result.to_json()) if args.json else format_explanation(result))


COMMANDS = {"models": cmd_models, "trace": cmd_trace, "runs": cmd_runs,
            "metrics": cmd_metrics, "diff": cmd_diff, "report": cmd_report,
            "explain": cmd_explain}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if not args.debug:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        from routeviz.series import command_for

        (command_for(args) or COMMANDS[args.command])(args)
    except RoutevizError as exc:
        if args.debug:
            raise
        print(f"routeviz: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("routeviz: interrupted; completed batches are stored", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure: still one line, unless --debug
        if args.debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"routeviz: error: {type(exc).__name__}: {first} (rerun with --debug for "
              "the traceback)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
