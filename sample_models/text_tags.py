"""Token tags for every text model (text-moe's byte-level BPE, minilm-moe's WordPiece), from
each token's character span in the text, so runs of different models on the same dataset
share their tag families and values.

Example family:
- `kind`: code · prose (the item's own `kind` tag if it has one, else a guess)

Token families (one value per token; every value lower case):
- `token_type`: the Python `tokenize` type of the token's first non-space character in a
  code input: keyword · name · operator · number · string · comment · whitespace;
  `prose` for every token of a prose input
- `token_class`: punctuation · number · stopword · word · whitespace
- `case` (from the original text, which an uncased tokenizer lowercases): capitalised ·
  upper · lower · none (no letters)
- `piece`: word (starts a word) · continuation (the rest of a word split into pieces)

A special token ([CLS], [SEP] ...) is `special` in every token family.
"""

from __future__ import annotations

import ast
import io
import keyword
import re
import tokenize

CODE_HINTS = ("code", "python", "py")  # `kind` tag values that mean Python source
PROSE_HINTS = ("prose",)
SPECIAL = "special"

STOPWORDS = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are",
    "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but",
    "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for",
    "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself",
    "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just",
    "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once",
    "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she",
    "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them",
    "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too",
    "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
    "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours", "yourself",
    "yourselves",
})


def text_tags(item, spans, special=None) -> dict:
    """The item's own tags plus `kind` and the token families for tokens at character
    `spans` [(start, end)] of `item.text`; `special[i]` marks special tokens."""
    hint = item.tags.get("kind")
    code = looks_like_code(item.text, hint if isinstance(hint, str) else None)
    kind = hint if isinstance(hint, str) and hint else ("code" if code else "prose")
    return {**item.tags, "kind": kind,
            **token_tags(item.text, spans, code, special or [False] * len(spans))}


def token_tags(text: str, spans, code: bool, special) -> dict[str, list[str]]:
    """{family: value per token} for the tokens at `spans` of `text`."""
    types = token_types(text, spans, code)
    tags = {"token_type": [], "token_class": [], "case": [], "piece": []}
    for (start, end), is_special, token_type in zip(spans, special, types):
        if is_special or end <= start:
            for values in tags.values():
                values.append(SPECIAL)
            continue
        raw = text[start:end]
        begin = start + len(raw) - len(raw.lstrip())  # first non-space character
        surface = raw.strip()
        before = text[begin - 1] if begin > 0 else " "
        continuation = bool(surface) and surface[0].isalnum() and before.isalnum()
        tags["token_type"].append(token_type)
        tags["token_class"].append(token_class(surface, continuation))
        tags["case"].append(case_of(surface))
        tags["piece"].append("continuation" if continuation else "word")
    return tags


def token_class(surface: str, continuation: bool = False) -> str:
    if not surface:
        return "whitespace"
    if all(not ch.isalnum() for ch in surface):
        return "punctuation"
    if any(ch.isdigit() for ch in surface) and all(ch.isdigit() or ch in ".,_" for ch in surface):
        return "number"
    if not continuation and surface.lower() in STOPWORDS:
        return "stopword"
    return "word"


def case_of(surface: str) -> str:
    letters = [ch for ch in surface if ch.isalpha()]
    if not letters:
        return "none"
    if len(letters) > 1 and all(ch.isupper() for ch in letters):
        return "upper"
    if letters[0].isupper():
        return "capitalised"
    return "lower"


def looks_like_code(text: str, hint: str | None = None) -> bool:
    """True for Python source: a `kind` hint says so (code, python, py; prose says not),
    else the text parses and has some structure.

    Only the first ~20k characters are parsed, cut before the last unindented line (so a
    block is not split): the models read far less, and CPython's parser can run out of
    memory on a huge single line.
    """
    if hint in CODE_HINTS:
        return True
    if hint in PROSE_HINTS:
        return False
    head = text
    if len(text) > 20_000:
        cuts = [m.start() + 1 for m in re.finditer(r"\n(?=[^\s])", text[:20_000])]
        head = text[: cuts[-1]] if cuts else text[:20_000]
    try:
        ast.parse(head)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return any(ch in text for ch in "()=:[]") or "\n" in text.strip()


# --- token_type: Python tokenize types ------------------------------------------------------
TOKEN_TYPES = ("keyword", "name", "operator", "number", "string", "comment", "whitespace", "prose")


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
