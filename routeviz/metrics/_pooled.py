"""The pooled "*" row of a per-site frame, shared by the chance-corrected metrics."""

from __future__ import annotations

import pandas as pd


def pooled(per_site: pd.DataFrame, weight: str, columns=(), sums=(), **extra) -> pd.DataFrame:
    """One row, site "*": `weight` and every column in `sums` summed; each column in
    `columns` its `weight`-weighted mean over the sites where it is defined (None where none
    is); `extra` added as is."""
    row = {"site": "*", weight: int(per_site[weight].sum()),
           **{c: int(per_site[c].sum()) for c in sums}, **extra}
    for column in columns:
        values = pd.to_numeric(per_site[column], errors="coerce")
        w = per_site[weight].where(values.notna(), 0)
        row[column] = float((values.fillna(0) * w).sum() / w.sum()) if w.sum() else None
    return pd.DataFrame([row])
