"""A text longer than a model's context, cut into consecutive windows that each fit.

`text_windows(runner, item)` returns the item itself when it fits, else one Item per window:
consecutive substrings of the text (joined they give the text back), cut at whitespace where
there is any, each at most `runner.max_tokens` tokens as the runner encodes it. Every window
keeps the item's tags and adds `window` (its number) and `char_start` (its offset in the text).
"""

from __future__ import annotations

import re
from dataclasses import replace

_BREAK = re.compile(r"\s+")


def _n_tokens(runner, text: str) -> int:
    from routeviz.runs.inputs import Item

    return len(runner.encode([Item(text=text)]).tokens[0])


def _fits(runner, text: str) -> bool:
    """Fewer tokens than the context: a window that fills it exactly may have been cut."""
    return _n_tokens(runner, text) < int(runner.max_tokens)


def _cut_points(text: str) -> list[int]:
    """Offsets where a window may end: after each run of whitespace, else every character."""
    points = [m.end() for m in _BREAK.finditer(text) if 0 < m.end() < len(text)]
    return points or list(range(1, len(text)))


def _longest_fit(runner, text: str, start: int, points: list[int]) -> int:
    """The last cut point after `start` whose window text[start:point] fits; the first point
    after `start` if none does (a single over-long word is cut by the model). Gallops from
    `start` so each probe encodes about a window's text, not the rest of a long text."""
    from bisect import bisect_right

    first = bisect_right(points, start)
    after = points[first:] + [len(text)]

    def fits(i: int) -> bool:
        return _fits(runner, text[start:after[i]])

    lo, hi, step = -1, None, 1  # after[lo] fits (or lo = -1), after[hi] does not
    probe = min(bisect_right(after, start + int(runner.max_tokens)), len(after) - 1)
    while hi is None:
        if fits(probe):
            lo = probe
            if probe == len(after) - 1:
                return after[probe]
            probe, step = min(probe + step, len(after) - 1), step * 2
        else:
            hi = probe
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return after[max(lo, 0)]


def text_windows(runner, item, max_windows: int | None = None) -> list:
    """`[item]` when its text fits the runner's context, else its consecutive windows (the
    first `max_windows` of them if given: they then end before the text does)."""
    text = item.text
    if text is None or _fits(runner, text):
        return [item]
    points = _cut_points(text)
    windows, start = [], 0
    while start < len(text) and (max_windows is None or len(windows) < max_windows):
        end = _longest_fit(runner, text, start, points)
        windows.append((start, end))
        start = end
    name = item.source or "text"
    return [replace(item, text=text[a:b], source=f"{name} [window {i + 1}/{len(windows)}]",
                    tags={**item.tags, "window": str(i), "char_start": str(a)})
            for i, (a, b) in enumerate(windows)]
