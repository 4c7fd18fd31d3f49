"""What every command's output shares."""

from __future__ import annotations


def json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def count(value) -> int:
    return 0 if isnull(value) else int(value)


def isnull(value) -> bool:
    import pandas as pd

    return value is None or bool(pd.isna(value))
