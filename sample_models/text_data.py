"""The `stdlib` dataset: Python's own standard library (code) and pydoc topics (prose).

Both ship with every Python install, so nothing downloads. Whole modules (and whole prose
topics) are held out for evaluation by a stable hash of their name. Texts are cut into
chunks on line boundaries; token tags (`token_type`) come from Python's `tokenize` and are
computed per character here, then aligned with a model's token offsets (`token_types`).
"""

from __future__ import annotations

import ast
import re
import io
import keyword
import os
import sysconfig
import tokenize
import zlib
from pathlib import Path

from routeviz.inputs import Item

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


# --- token types ---------------------------------------------------------------------------
TOKEN_TYPES = ("keyword", "name", "operator", "number", "string", "comment", "whitespace", "prose")


def looks_like_code(text: str) -> bool:
    """Guess for texts without a `kind` tag: Python that parses and has some structure.

    Only the first ~20k characters are parsed, cut before the last unindented line (so a
    block is not split): the model reads far less, and CPython's parser can run out of
    memory on a huge single line.
    """
    head = text
    if len(text) > 20_000:
        cuts = [m.start() + 1 for m in re.finditer(r"\n(?=[^\s])", text[:20_000])]
        head = text[: cuts[-1]] if cuts else text[:20_000]
    try:
        ast.parse(head)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return any(ch in text for ch in "()=:[]") or "\n" in text.strip()


def char_types(text: str) -> list[str]:
    """Per character of Python source, its tokenize type; characters outside any token (or
    after a tokenize error) are whitespace / the best guess of a simple scan."""
    types = ["whitespace"] * len(text)
    line_starts = [0]
    for line in text.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    reached = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            kind = _tokenize_type(tok)
            start = line_starts[tok.start[0] - 1] + tok.start[1]
            end = line_starts[min(tok.end[0] - 1, len(line_starts) - 1)] + tok.end[1]
            for i in range(start, min(end, len(text))):
                types[i] = kind
            reached = max(reached, end)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        _scan(text, reached, types)
    return types


def _tokenize_type(tok) -> str:
    if tok.type == tokenize.NAME:
        return "keyword" if keyword.iskeyword(tok.string) or keyword.issoftkeyword(tok.string) else "name"
    if tok.type == tokenize.OP:
        return "operator"
    if tok.type == tokenize.NUMBER:
        return "number"
    if tok.type == tokenize.STRING or tokenize.tok_name.get(tok.type, "").startswith("FSTRING"):
        return "string"
    if tok.type == tokenize.COMMENT:
        return "comment"
    if tok.type == tokenize.ERRORTOKEN:
        return "string" if tok.string in "'\"" else "operator"
    return "whitespace"  # NEWLINE, NL, INDENT, DEDENT, ENDMARKER


def _scan(text: str, start: int, types: list[str]) -> None:
    """Rough types for the tail tokenize could not read (e.g. a chunk ends inside a string)."""
    i, n = start, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
            kind = "comment"
        elif ch in "'\"":
            end, kind = n, "string"  # an unterminated string runs to the end
        elif ch.isalpha() or ch == "_":
            end = i
            while end < n and (text[end].isalnum() or text[end] == "_"):
                end += 1
            word = text[i:end]
            kind = "keyword" if keyword.iskeyword(word) else "name"
        elif ch.isdigit():
            end = i
            while end < n and (text[end].isalnum() or text[end] in "._"):
                end += 1
            kind = "number"
        else:
            end, kind = i + 1, "operator"
        for j in range(i, end):
            types[j] = kind
        i = end


def token_types(text: str, offsets, is_code: bool) -> list[str]:
    """Type per model token from its character span [start, end): the type of its first
    non-whitespace character (whitespace if it has none); `prose` for non-code texts."""
    if not is_code:
        return ["prose"] * len(offsets)
    chars = char_types(text)
    out = []
    for start, end in offsets:
        kind = "whitespace"
        for i in range(start, min(end, len(text))):
            if not text[i].isspace():
                kind = chars[i] if chars[i] != "whitespace" else "operator"
                break
        out.append(kind)
    return out
