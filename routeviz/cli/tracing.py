"""`routeviz models`, `trace` and `explain`: models and inputs in, runs out."""

from __future__ import annotations

import json
import sys

from routeviz.errors import RoutevizError


def add_parsers(sub) -> None:
    s = sub.add_parser("models", help="installed models and what they route")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("trace", help="run a model on inputs and record its routing")
    s.add_argument("--model", required=True, nargs="+", action="extend",
                   help="sample-model name or checkpoint directory; with --series, several "
                        "checkpoint directories (`--model A B` or `--model A --model B`)")
    s.add_argument("--series", help="trace each --model checkpoint as one run of this series")
    src = s.add_mutually_exclusive_group(required=True)
    # extend: `--text A B` and `--text A --text B` both keep every input (append would
    # nest lists, store would let a repeated flag replace the earlier ones)
    src.add_argument("--text", nargs="+", action="extend", metavar="T",
                     help="texts, one example each (repeatable)")
    src.add_argument("--file", nargs="+", action="extend", metavar="PATH",
                     help="text or image files (repeatable)")
    src.add_argument("--dataset", metavar="NAME", help="a bundled dataset (see `models --json`)")
    s.add_argument("--lines", action="store_true", help="each non-empty line is one example")
    s.add_argument("--limit", type=int, help="at most N examples: of a dataset, a seeded "
                   "sample spread over its tags (recorded in the run's config)")
    s.add_argument("--seed", type=int, default=0, help="seed of the --limit sample (default 0)")
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


def cmd_models(args):
    from routeviz.runs.models import list_models

    models = list_models()
    if args.json:
        print(json.dumps(models, indent=2))
        return
    for m in models:
        print(f"{m['name']:<22} {m['modality']:<6} {', '.join(m['routing']):<26} {m['description']}")


def cmd_trace(args):
    from tqdm import tqdm

    from routeviz.runs.models import load_model
    from routeviz.runs.record import record
    from routeviz.store import init_store, run_exists
    from routeviz.store.schema import check_run_name

    check_run_name(args.run)
    init_store(args.store)
    if run_exists(args.store, args.run) and not args.overwrite:
        raise RoutevizError(f"run {args.run!r} already exists in {args.store!r}; "
                            "pass --overwrite to replace it")
    items, config = trace_items(args)
    runner = load_model(args.model, trust_remote_code=args.trust_remote_code)
    bar = tqdm(total=len(items), unit="ex", desc=f"tracing {args.run}", disable=None,
               file=sys.stderr)

    def progress(done, total):
        bar.update(done - bar.n)

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
    from routeviz.interventions.intervene import intervene

    disable = [k.strip() for k in (args.disable or "").split(",") if k.strip()]
    return intervene(model, ablate=args.ablate, force=args.force, top_k=args.top_k,
                     disable=disable)


def trace_items(args) -> tuple[list, dict]:
    """The inputs `trace` was given (--text, --file, or --dataset: a seeded sample of
    --limit, routeviz.runs.sampling) and the run config saying where they came from; a
    sample that leaves a tag family with one value is warned about on stderr."""
    from routeviz.runs.inputs import Item, check_text, read_file

    if args.limit is not None and args.limit < 1:
        raise RoutevizError(f"--limit must be 1 or more, got {args.limit}")
    if args.dataset is not None:
        from routeviz.runs.sampling import sample_dataset

        subset = sample_dataset(args.dataset, args.limit, seed=args.seed)
        for warning in subset.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        config = {"inputs": "dataset:" + args.dataset}
        if subset.config is not None:
            config["sampling"] = subset.config
        return subset.items, config
    if args.text is not None:
        items = [Item(text=check_text(t, f"--text #{i + 1}"), source=t[:200])
                 for i, t in enumerate(args.text)]
    else:
        items = [item for path in args.file for item in read_file(path, lines=args.lines)]
    return items[:args.limit], {"inputs": None}  # the user's own inputs: the first --limit


def cmd_explain(args):
    from routeviz.interventions.explain import explain, format_explanation
    from routeviz.runs.inputs import Item, check_text, read_file
    from routeviz.runs.models import load_model

    if args.steps < 1:
        raise RoutevizError(f"--steps must be at least 1, got {args.steps}")
    if args.text is not None:
        item = Item(text=check_text(args.text, "--text"), source=args.text[:200])
    else:
        item = read_file(args.file)[0]
    runner = load_model(args.model, trust_remote_code=args.trust_remote_code)
    result = explain(runner, item, args.site, args.token, args.expert, n_steps=args.steps)
    print(json.dumps(result.to_json()) if args.json else format_explanation(result))


COMMANDS = {"models": cmd_models, "trace": cmd_trace, "explain": cmd_explain}
