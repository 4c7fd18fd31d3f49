"""Token tags for a WordPiece model (minilm-moe), from each token's character span.

Families (one value per token):
- `piece`: word (starts a word) · continuation (a ## piece) · special ([CLS], [SEP] ...)
- `token_class`: special · punctuation · number · stopword · word
- `case` (from the original text, which the uncased tokenizer lowercases): capitalised ·
  upper · lower · none (no letters)
- `py_token` (only for inputs that are Python code): the `tokenize` type of the Python
  token the piece falls in: NAME · KEYWORD · OP · NUMBER · STRING · COMMENT · OTHER
"""

from __future__ import annotations

import io
import keyword
import tokenize

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


def token_tags(text: str, pieces: list[str], spans: list[tuple[int, int]],
               specials: set[str], code: bool) -> dict[str, list[str]]:
    """Tag lists for the pieces of `text`; spans are (start, end) character offsets."""
    tags = {"piece": [], "token_class": [], "case": []}
    py_types = python_token_types(text) if code else None
    if py_types is not None:
        tags["py_token"] = []
    for piece, (start, end) in zip(pieces, spans):
        surface = text[start:end]
        special = piece in specials or end <= start
        tags["piece"].append("special" if special else
                             "continuation" if piece.startswith("##") else "word")
        tags["token_class"].append("special" if special else token_class(piece, surface))
        tags["case"].append("none" if special else case_of(surface))
        if py_types is not None:
            tags["py_token"].append("OTHER" if special else py_types.get(start, "OTHER"))
    return tags


def token_class(piece: str, surface: str) -> str:
    word = piece.removeprefix("##")
    if word and all(not ch.isalnum() for ch in word):
        return "punctuation"
    if any(ch.isdigit() for ch in word) and all(ch.isdigit() or ch in ".,_" for ch in word):
        return "number"
    if not piece.startswith("##") and surface.lower() in STOPWORDS:
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
    """True for Python source: a hint says so, or it compiles and has code punctuation."""
    if hint is not None:
        return hint in ("code", "python", "py")
    if not any(mark in text for mark in ("(", "=", ":", "import ")):
        return False
    try:
        compile(text, "<input>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def python_token_types(text: str) -> dict[int, str] | None:
    """{character offset: type} for every character inside a Python token; None if the
    text does not tokenize."""
    line_starts = [0]
    for line in text.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    types: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            name = tokenize.tok_name[tok.type]
            if name not in ("NAME", "OP", "NUMBER", "STRING", "COMMENT", "FSTRING_START",
                            "FSTRING_MIDDLE", "FSTRING_END"):
                continue
            if name == "NAME" and keyword.iskeyword(tok.string):
                name = "KEYWORD"
            elif name.startswith("FSTRING"):
                name = "STRING"
            (srow, scol), (erow, ecol) = tok.start, tok.end
            begin, end = line_starts[srow - 1] + scol, line_starts[erow - 1] + ecol
            for offset in range(begin, end):
                types[offset] = name
    except (tokenize.TokenError, IndentationError, SyntaxError, IndexError):
        return None
    return types
