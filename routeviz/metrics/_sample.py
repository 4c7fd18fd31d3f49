"""A seeded sample of whole examples, as one SQL condition on `example`, for analyses that
cap the units they read on large runs (the permutation baseline, co-activation,
consecutive tokens). Whole examples keep every token's neighbours and inherited tags."""

from __future__ import annotations

from routeviz.metrics import _common as common
from routeviz.metrics.unit_counts import example_lengths_sql

_PRIME = 4_294_967_291  # largest prime below 2^32: (example + seed) · 2654435761 mod it


def n_units(store, run: str, unit: str = "token") -> int:
    """Tokens of the run (from example lengths), or examples with a route."""
    if unit == "example":
        return int(common.scalar(store, "SELECT count(DISTINCT example) FROM routes "
                                 "WHERE run = $run", {"run": run}) or 0)
    return int(common.scalar(store, f"SELECT coalesce(sum(n), 0) FROM "
                             f"({example_lengths_sql(store, run)})", {"run": run}) or 0)


def example_sample(store, run: str, max_units: int | None, seed: int = 0,
                   unit: str = "token") -> tuple[str, int, bool]:
    """(condition, total units, sampled): condition is "" when the run has at most
    `max_units` units (or max_units is None), else a hash test keeping about
    max_units / total of the examples."""
    total = n_units(store, run, unit)
    if max_units is None or total <= max_units:
        return "", total, False
    cut = int(max_units / total * _PRIME)
    return f"((example + {int(seed)}) * 2654435761) % {_PRIME} < {cut}", total, True
