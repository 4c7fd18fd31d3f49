"""Pairs of route rows counted in numpy, for co-activation and consecutive tokens: the
rows of one group (a unit at a site) with each other, and with the rows of the group that
follows (the next site for the same unit, the next token at the same site).

The counts equal those of the SQL self-joins they replace (the reference queries are kept
in tests/test_metrics_pairs.py): every ordered pair of rows is counted, duplicates
included, as a join counts them. Reading the (sampled) rows once as arrays and counting
them in numpy costs a fraction of the four self-joins (issue 25: `metrics --json` at 10 M
routes).
"""

from __future__ import annotations

import numpy as np

# bincount up to this many bins; np.unique (a sort) above it
_DENSE_BINS = 1 << 24


class Groups:
    """Rows sorted by (major, minor) and cut into groups of equal (major, minor).

    order: the sort (row indices); start, size: each group's first sorted row and row
    count; major, minor: each group's key. `follows`: the groups whose next group has the
    same major and minor + 1 (the group, its successor)."""

    def __init__(self, major: np.ndarray, minor: np.ndarray):
        major, minor = np.asarray(major, dtype="int64"), np.asarray(minor, dtype="int64")
        self.order = _sort(major, minor)
        ma, mi = major[self.order], minor[self.order]
        n = len(ma)
        new = np.ones(n, dtype=bool)
        if n:
            new[1:] = (ma[1:] != ma[:-1]) | (mi[1:] != mi[:-1])
        self.start = np.flatnonzero(new)
        self.size = np.diff(np.append(self.start, n))
        self.major, self.minor = ma[self.start], mi[self.start]

    def of_row(self) -> np.ndarray:
        """The group of every sorted row."""
        return np.repeat(np.arange(len(self.start)), self.size)

    def follows(self) -> tuple[np.ndarray, np.ndarray]:
        g = np.flatnonzero((self.major[1:] == self.major[:-1])
                           & (self.minor[1:] == self.minor[:-1] + 1))
        return g, g + 1


def _sort(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """The row order by (major, minor): one int64 key where it fits (a single sort), else
    np.lexsort."""
    if not len(major):
        return np.zeros(0, dtype="int64")
    lo_a, lo_b = int(major.min()), int(minor.min())
    span_a, span_b = int(major.max()) - lo_a + 1, int(minor.max()) - lo_b + 1
    if float(span_a) * float(span_b) < 2.0**62:
        return np.argsort((major - lo_a) * span_b + (minor - lo_b), kind="stable")
    return np.lexsort((minor, major))


def cross(start_a, size_a, start_b, size_b) -> tuple[np.ndarray, np.ndarray]:
    """(i, j): for each p, every sorted row i of [start_a[p], +size_a[p]) with every j of
    [start_b[p], +size_b[p])."""
    size_a, size_b = np.asarray(size_a, dtype="int64"), np.asarray(size_b, dtype="int64")
    if not len(size_a):
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    ka, kb = int(size_a[0]), int(size_b[0])
    if (size_a == ka).all() and (size_b == kb).all():  # every group of k rows (top-k)
        i = np.asarray(start_a)[:, None, None] + np.arange(ka)[None, :, None]
        j = np.asarray(start_b)[:, None, None] + np.arange(kb)[None, None, :]
        shape = (len(size_a), ka, kb)
        return np.broadcast_to(i, shape).ravel(), np.broadcast_to(j, shape).ravel()
    n = size_a * size_b
    total = int(n.sum())
    p = np.repeat(np.arange(len(n)), n)
    offset = np.arange(total, dtype="int64") - np.repeat(np.cumsum(n) - n, n)
    return start_a[p] + offset // size_b[p], start_b[p] + offset % size_b[p]


def tally(columns, weights=None, keep_zero: bool = False) -> tuple:
    """The distinct rows of integer columns, sorted, and their count (or summed integer
    weights): (*columns, n) with n > 0, or every distinct row (n >= 0) with keep_zero."""
    columns = [np.asarray(c, dtype="int64") for c in columns]
    n_rows = len(columns[0])
    if not n_rows:
        return (*columns, np.zeros(0, dtype="int64"))
    lows = [int(c.min()) for c in columns]
    spans = [int(c.max()) - low + 1 for c, low in zip(columns, lows)]
    key = np.zeros(n_rows, dtype="int64")
    for c, low, span in zip(columns, lows, spans):
        key = key * span + (c - low)
    bins = float(np.prod([float(s) for s in spans]))
    if bins <= _DENSE_BINS:
        counts = np.bincount(key, weights=weights, minlength=int(bins))
        keys = (np.flatnonzero(np.bincount(key, minlength=int(bins))) if keep_zero
                else np.flatnonzero(counts))
        counts = counts[keys]
    elif bins < 2.0**62:
        keys, inverse = np.unique(key, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=weights, minlength=len(keys))
        keep = np.ones(len(keys), dtype=bool) if keep_zero else counts != 0
        keys, counts = keys[keep], counts[keep]
    else:  # keys too wide for one int64: sort the rows themselves
        keyed, inverse = np.unique(np.stack(columns), axis=1, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=weights, minlength=keyed.shape[1])
        keep = np.ones(len(counts), dtype=bool) if keep_zero else counts != 0
        return (*keyed[:, keep], counts[keep].astype("int64"))
    out = []
    for low, span in zip(reversed(lows), reversed(spans)):
        keys, code = np.divmod(keys, span)
        out.append(code + low)
    return (*reversed(out), np.asarray(counts).astype("int64"))
