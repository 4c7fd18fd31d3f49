"""`routeviz runs`, `metrics`, `diff` and `report`: reading what a store holds."""

from __future__ import annotations

import json
import sys

from routeviz.cli.common import count, isnull, json_default
from routeviz.errors import RoutevizError


def add_parsers(sub) -> None:
    s = sub.add_parser("runs", help="list the runs in a store")
    s.add_argument("--store", required=True)
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("metrics", help="specialization, load, keep and exit analyses")
    s.add_argument("--store", required=True)
    s.add_argument("--run")
    s.add_argument("--series", help="every step of a series, plus saturation")
    s.add_argument("--tag", action="append", metavar="NAME", help="tag family (repeatable)")
    s.add_argument("--unit", choices=["token", "example"], default=None)
    s.add_argument("--kind", choices=["expert", "keep", "exit", "soft"], default=None)
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


def cmd_runs(args):
    from routeviz.store import open_store
    from routeviz.store.query import parse_config

    store = open_store(args.store)
    df = store.runs()
    if args.json:
        rows = []
        for rec in df.to_dict(orient="records"):
            rows.append({
                "run": rec["run"], "model": rec["model"],
                "created": None if isnull(rec["created"]) else str(rec["created"]),
                "finished": None if isnull(rec["finished"]) else str(rec["finished"]),
                "n_examples": count(rec["n_examples"]), "n_routes": count(rec["n_routes"]),
                "routeviz_version": None if isnull(rec["routeviz_version"])
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
        state = "  (unfinished)" if isnull(rec["finished"]) and knows_finished else ""
        print(f"{rec['run']:<24} {rec['model']!s:<22} {count(rec['n_examples']):>7} examples "
              f"{count(rec['n_routes']):>10} routes{state}")


def cmd_metrics(args):
    from routeviz import metrics
    from routeviz.store import open_store

    store = open_store(args.store)
    if args.permutations < 0:
        raise RoutevizError(f"--permutations must be 0 or more, got {args.permutations}")
    result = metrics.summary(store, args.run, tags=args.tag, unit=args.unit, kind=args.kind,
                             top1=args.top1, permutations=args.permutations,
                             resamples=args.permutations, seed=args.seed)
    print(json.dumps(result, indent=None if args.json else 2, default=json_default))


def cmd_diff(args):
    from routeviz import metrics
    from routeviz.store import open_store

    store = open_store(args.store)
    result = metrics.diff(store, args.run, args.against)
    print(json.dumps(result, indent=None if args.json else 2, default=json_default))


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


COMMANDS = {"runs": cmd_runs, "metrics": cmd_metrics, "diff": cmd_diff, "report": cmd_report}
