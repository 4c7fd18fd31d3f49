"""Response bodies saved from a server: a `.json` file (one body, or a list of them) or a
`.jsonl` file (one body a line), in file order. A body that does not parse is refused with its
file and line: a truncated download is the usual cause."""

from __future__ import annotations

import json

from routeviz.errors import RoutevizError


def read_bodies(path) -> list[tuple[dict, str]]:
    """(body, where) for every body in `path`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RoutevizError(f"{path.name}: cannot read it ({exc})") from None
    stripped = text.strip()
    if not stripped:
        raise RoutevizError(f"{path.name}: empty file")
    if path.suffix != ".jsonl":
        try:
            value = json.loads(stripped)
        except ValueError as exc:
            if path.suffix == ".json" or "\n" not in stripped:
                raise RoutevizError(f"{path.name}: not JSON ({exc.args[0][:80]}; a truncated "
                                    "body?)") from None
        else:
            values = value if isinstance(value, list) else [value]
            return [_body(v, f"{path.name}#{i}") for i, v in enumerate(values)]
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise RoutevizError(f"{path.name} line {number}: not JSON ({exc.args[0][:80]}; a "
                                "truncated body?)") from None
        out.append(_body(value, f"{path.name}:{number}"))
    return out


def _body(value, where: str) -> tuple[dict, str]:
    if not isinstance(value, dict):
        raise RoutevizError(f"{where}: expected a JSON object (a response body), got "
                            f"{type(value).__name__}")
    return value, where
