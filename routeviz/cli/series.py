"""Series on the command line: `routeviz trace --model CKPT... --series NAME` traces each
checkpoint directory saved during a training into one run of the series, and
`routeviz metrics|report --series NAME` analyse every step of it.

A checkpoint's step is the N of a directory named `checkpoint-N` (what transformers'
Trainer saves), else `global_step` of its trainer_state.json. Each run is named like a
probe's (`routeviz.runs.probe.run_name`: `<series>-step000100`) and its config records
{"series", "step", "checkpoint"}, so series traced afterwards and series probed during
training read the same way.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from routeviz.errors import RoutevizError

CHECKPOINT_DIR = re.compile(r"^checkpoint[-_](\d+)$")


def checkpoint_step(path) -> int:
    """The training step a checkpoint directory was saved at."""
    path = Path(path)
    found = CHECKPOINT_DIR.match(path.name)
    if found:
        return int(found.group(1))
    state = path / "trainer_state.json"
    if state.is_file():
        try:
            step = json.loads(state.read_text()).get("global_step")
        except (OSError, ValueError, AttributeError) as exc:
            raise RoutevizError(f"{state}: unreadable trainer_state.json ({exc})") from None
        if isinstance(step, int) and step >= 0:
            return step
    raise RoutevizError(f"cannot tell the training step of {str(path)!r}: name it "
                        "checkpoint-N or give it a trainer_state.json with global_step")


def checkpoint_steps(paths) -> list[tuple[int, Path]]:
    """(step, directory) for each checkpoint, ordered by step; steps must differ."""
    steps = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_dir():
            raise RoutevizError(f"--model {raw!r} is not a checkpoint directory "
                                "(with --series every --model is one)")
        steps.append((checkpoint_step(path), path))
    steps.sort(key=lambda sp: sp[0])
    for (a, pa), (b, pb) in zip(steps, steps[1:]):
        if a == b:
            raise RoutevizError(f"{str(pa)!r} and {str(pb)!r} are both step {a}")
    return steps


def trace_checkpoints(paths, items, store, series: str, *, batch_size: int = 8,
                      overwrite: bool = False, logits: bool = False, hidden_states: bool = False,
                      trust_remote_code: bool = False, config=None, progress=None) -> list:
    """Trace `items` through each checkpoint into `store`, one run per step of `series`.
    Every run name is checked (and, without overwrite, found free) before any model loads.
    Returns one RecordResult per checkpoint, in step order."""
    from routeviz.runs.models import load_model
    from routeviz.runs.probe import run_name
    from routeviz.runs.record import record
    from routeviz.store import init_store, run_exists

    steps = checkpoint_steps(paths)
    runs = [run_name(series, step) for step, _ in steps]
    init_store(store)
    taken = [r for r in runs if run_exists(store, r)]
    if taken and not overwrite:
        raise RoutevizError(f"run {taken[0]!r} already exists in {str(store)!r}; pass "
                            "--overwrite to replace the series' runs")
    results = []
    for (step, path), run in zip(steps, runs):
        runner = load_model(str(path), trust_remote_code=trust_remote_code)
        run_config = {**(config or {}), "series": series, "step": step,
                      "checkpoint": str(path)}
        results.append(record(runner, items, store, run, batch_size=batch_size,
                              overwrite=overwrite, logits=logits, hidden_states=hidden_states,
                              config=run_config,
                              progress=None if progress is None else
                              lambda done, total, run=run: progress(run, done, total)))
    return results


# -- the CLI's --series paths -----------------------------------------------------------
def command_for(args):
    """The handler for a parsed command line when it asks for a series, else None (after
    checking that the one-run form got one --model and a --run)."""
    if getattr(args, "series", None) is not None:
        if getattr(args, "run", None) is not None:
            raise RoutevizError("give --run or --series, not both")
        if getattr(args, "against", None) is not None:
            raise RoutevizError("--against compares two runs; a series report compares its "
                                "steps already (leave out --against)")
        return SERIES_COMMANDS.get(args.command)
    if args.command == "trace":
        if len(args.model) > 1:
            raise RoutevizError("several --model directories are traced as a series: add "
                                "--series NAME")
        args.model = args.model[0]
    if hasattr(args, "run") and args.run is None:
        raise RoutevizError(f"{args.command} needs --run NAME (or --series NAME)")
    return None


def cmd_trace_series(args) -> None:
    from routeviz.cli.tracing import trace_items

    if args.ablate or args.force or args.top_k is not None or args.disable:
        raise RoutevizError("--ablate, --force, --top-k and --disable trace one run; they "
                            "are not taken with --series")
    items, config = trace_items(args)
    bars = {}

    def progress(run, done, total):  # one bar per checkpoint, as `trace` draws for one run
        from tqdm import tqdm

        if run not in bars:
            bars[run] = tqdm(total=total, unit="ex", desc=f"tracing {run}", disable=None,
                             file=sys.stderr)
        bars[run].update(done - bars[run].n)
        if done >= total:
            bars[run].close()

    results = trace_checkpoints(args.model, items, args.store, args.series, progress=progress,
                                batch_size=args.batch_size, overwrite=args.overwrite,
                                logits=args.logits,
                                hidden_states=getattr(args, "hidden_states", False),
                                trust_remote_code=args.trust_remote_code,
                                config=config)
    steps = [{"run": r.run, "examples": r.n_examples, "routes": r.rows} for r in results]
    if args.json:
        print(json.dumps({"series": args.series, "store": str(args.store), "runs": steps}))
        return
    for r in results:
        print(f"recorded {r.rows} routes for {r.n_examples} example(s) as run {r.run!r}",
              file=sys.stderr)
    print(f"series {args.series!r}: {len(results)} run(s) in {args.store}")


def cmd_metrics_series(args) -> None:
    from routeviz.cli.common import json_default
    from routeviz.metrics.series import series_summary
    from routeviz.store import open_store

    store = open_store(args.store)
    result = series_summary(store, args.series, tags=args.tag, unit=args.unit, kind=args.kind,
                            top1=args.top1)
    print(json.dumps(result, indent=None if args.json else 2, default=json_default))


def cmd_report_series(args) -> None:
    from routeviz.report.series import write_series_report
    from routeviz.store import open_store

    store = open_store(args.store)
    for path in write_series_report(store, args.series, args.out, tags=args.tag):
        print(path)


SERIES_COMMANDS = {"trace": cmd_trace_series, "metrics": cmd_metrics_series,
                   "report": cmd_report_series}
