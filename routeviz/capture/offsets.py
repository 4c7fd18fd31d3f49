"""Where each token sits in its example's original text: `token_offsets`, run when a batch
is written (`tokens.char_start`/`char_end`) and again when an older store is read.

A tokenizer's pieces are not the text: byte-level BPE marks spaces (`Ġ`), SentencePiece
`▁`, WordPiece continues words with `##` and may lowercase. Each piece, cleaned of those
markers, is looked up in order from where the previous one ended.
"""

from __future__ import annotations

MARKERS = {"Ġ": " ", "▁": " ", "Ċ": "\n", "ĉ": "\t"}
LOOKAHEAD = 64  # characters a piece may lie beyond the previous one (skipped spaces, junk)


def _clean(piece: str) -> str:
    piece = str(piece).removeprefix("##")
    for marker, char in MARKERS.items():
        piece = piece.replace(marker, char)
    return piece


def token_offsets(text: str, tokens) -> list:
    """Per token, its (start, end) character span in `text`, or None where it is not there.

    A piece is taken where the previous one ended (after any whitespace), else as a repeat
    of the previous piece's character (byte-level pieces of one multi-byte character each
    show that character), else at its next occurrence within LOOKAHEAD characters."""
    spans, cursor, previous = [], 0, None
    folded = text.lower() if len(text.lower()) == len(text) else None
    for token in tokens:
        piece = _clean(token)
        span = None
        for candidate in dict.fromkeys((piece, piece.lstrip(), piece.strip())):
            if candidate:
                span = _find(text, folded, candidate, cursor, previous)
            if span is not None:
                break
        spans.append(span)
        if span is not None:
            cursor, previous = span[1], span
    return spans


def _find(text, folded, piece, cursor, previous):
    skip = cursor + len(text[cursor:cursor + LOOKAHEAD]) - len(text[cursor:cursor + LOOKAHEAD]
                                                               .lstrip())
    for at in (cursor, skip):
        if text.startswith(piece, at) or (folded is not None
                                          and folded.startswith(piece.lower(), at)):
            return at, at + len(piece)
    if previous is not None and text[previous[0]:previous[1]] == piece and len(piece) == 1:
        return previous
    limit = cursor + LOOKAHEAD + len(piece)
    found = text.find(piece, cursor, limit)
    if found < 0 and folded is not None:
        found = folded.find(piece.lower(), cursor, limit)
    return None if found < 0 else (found, found + len(piece))
