"""`routeviz import` and `routeviz check`: routing other engines recorded, and the integrity
of any run."""

from __future__ import annotations

import json
import sys

from routeviz.cli.common import json_default


def add_parsers(sub) -> None:
    s = sub.add_parser("import", help="bring in routing that vLLM, SGLang, Megatron-Core or "
                       "an RL framework recorded")
    s.add_argument("format", metavar="FORMAT",
                   help="vllm, sglang, sglang-recorder, megatron, npy (or an installed plugin's)")
    s.add_argument("paths", nargs="+", metavar="PATH", help="the files (or a Megatron trace "
                   "directory), one example per request / sequence, in order")
    s.add_argument("--store", required=True)
    s.add_argument("--run", required=True)
    s.add_argument("--model", metavar="CKPT_DIR", help="the transformers checkpoint the routing "
                   "came from: layer layout, site names as `routeviz trace` gives them, tokenizer")
    s.add_argument("--tokens", metavar="FILE", help='JSONL, one {"token_ids": [...]} per example')
    s.add_argument("--rank-order", choices=["score", "expert-id", "unknown"],
                   help="what the order within a token's top-k means, where the format cannot say")
    s.add_argument("--overwrite", action="store_true", help="replace an existing run")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("check", help="integrity of a run, imported or traced (exit 1 on a "
                       "problem)")
    s.add_argument("--store", required=True)
    s.add_argument("--run", required=True)
    s.add_argument("--json", action="store_true")


def cmd_import(args):
    from routeviz.importers import read

    result = read(args.format, args.paths, args.store, args.run, model=args.model,
                  tokens=args.tokens, overwrite=args.overwrite, rank_order=args.rank_order)
    if args.json:
        print(json.dumps(result.to_json(), default=json_default))
        return 0
    print(f"imported {result.rows} routes for {result.n_examples} example(s) from "
          f"{result.format} ({result.config['import']['version']}) as run {result.run!r} "
          f"in {args.store}")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    _print_problems(result.problems)
    return 0


def cmd_check(args):
    from routeviz.importers.check import check_run
    from routeviz.store import open_store

    result = check_run(open_store(args.store), args.run)
    if args.json:
        print(json.dumps(result, default=json_default))
    elif result["ok"]:
        print(f"run {args.run!r}: no problem found ({', '.join(result['checked'])})")
    else:
        _print_problems(result["problems"])
    return 0 if result["ok"] else 1


def _print_problems(problems) -> None:
    for p in problems:
        where = " ".join(x for x in (p.get("site") and f"site {p['site']}",
                                     p.get("layer") is not None and f"layer {p['layer']}") if x)
        print(f"problem: {p['kind']}{f' at {where}' if where else ''}: {p['detail']}")


COMMANDS = {"import": cmd_import, "check": cmd_check}
