"""`routeviz …` — the command line. Every failure is one line on stderr and a non-zero exit;
`--debug` shows the traceback.

Each module here adds its commands: `tracing` (models, trace, explain), `reading` (runs,
metrics, diff, report), `series` (the --series forms), `importing` (import, check),
`experts` (expert cards). A module gives `add_parsers(sub)` and `COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from routeviz.cli import experts, importing, reading, tracing
from routeviz.errors import RoutevizError

MODULES = (tracing, reading, importing, experts)
COMMANDS = {name: fn for module in MODULES for name, fn in module.COMMANDS.items()}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="routeviz", description=(
        "Record, analyse and show where every token goes in conditional-computation models."))
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in MODULES:
        module.add_parsers(sub)
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if not args.debug:
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.formatwarning = lambda msg, cat, *a, **k: f"warning: {msg}\n"
    try:
        from routeviz.cli.series import command_for

        code = (command_for(args) or COMMANDS[args.command])(args)
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
    return code if isinstance(code, int) else 0  # a command may exit 1 (check: a problem)

