"""The `stdlib` dataset: Python's own standard library (code) and pydoc topics (prose).

Both ship with every Python install, so nothing downloads. Whole modules (and whole prose
topics) are held out for evaluation by a stable hash of their name. Texts are cut into
chunks on line boundaries. Examples carry `source` and `kind` (code / prose); the models add
token tags with `sample_models.text_tags`.
"""

from __future__ import annotations

import os
import sysconfig
import zlib
from pathlib import Path

from routeviz.runs.inputs import Item

CHUNK_CHARS = 320  # about 128 byte-level BPE tokens of code
HELD_OUT_PERCENT = 10  # share of modules / topics kept for evaluation
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__", "encodings",
             "pydoc_data", "_bundled", "lib2to3"}


def held_out(name: str) -> bool:
    """Whole top-level modules (or prose topics) go to evaluation by a stable hash."""
    return zlib.crc32(name.split(".")[0].encode()) % 100 < HELD_OUT_PERCENT


def stdlib_sources(wanted=None) -> list[tuple[str, str]]:
    """(module name, source text) for every stdlib .py file (whose module name `wanted`
    accepts, if given), sorted by module name."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for file in sorted(files):
            if not file.endswith(".py"):
                continue
            path = Path(directory) / file
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            if wanted is not None and not wanted(module):
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            if text.strip():
                found.append((module.removesuffix(".__init__"), text))
    return sorted(found)


def prose_topics() -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    return sorted((name, text) for name, text in topics.items() if text.strip())


def chunk_text(text: str, max_chars: int = CHUNK_CHARS) -> list[str]:
    """Consecutive runs of whole lines, each at most `max_chars` (longer lines are cut)."""
    chunks, current = [], ""
    for line in text.splitlines(keepends=True):
        while len(line) > max_chars:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:max_chars])
            line = line[max_chars:]
        if len(current) + len(line) > max_chars and current:
            chunks.append(current)
            current = ""
        current += line
    if current:
        chunks.append(current)
    return [c for c in chunks if c.strip()]


def stdlib_chunks(split: str = "eval", max_chars: int = CHUNK_CHARS) -> list[Item]:
    """Chunks of the `train`, `eval` or `all` split, code and prose interleaved.

    Order is deterministic: first chunks of every module before second chunks, so a small
    limit still spans many modules; code and prose alternate while prose lasts.
    """
    def pick(name):
        return split == "all" or held_out(name) == (split == "eval")

    def items(pairs, kind):
        per_source = [[Item(text=chunk, source=name, tags={"source": name, "kind": kind})
                       for chunk in chunk_text(text, max_chars)]
                      for name, text in pairs if pick(name)]
        depth = max((len(c) for c in per_source), default=0)
        return [c[i] for i in range(depth) for c in per_source if i < len(c)]

    code, prose = items(stdlib_sources(pick), "code"), items(prose_topics(), "prose")
    merged = []
    for i in range(max(len(code), len(prose))):
        merged.extend(x[i] for x in (code, prose) if i < len(x))
    return merged


def stdlib_dataset(limit: int | None = None) -> list[Item]:
    """Held-out stdlib chunks (modules and topics the sample models never trained on)."""
    items = stdlib_chunks("eval")
    return items if limit is None else items[:limit]
