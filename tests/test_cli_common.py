"""routeviz/cli/common.py: what every command's JSON output shares (numpy to plain values,
missing counts as 0, one test for a missing value)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from routeviz.cli.common import count, isnull, json_default


def test_json_default_turns_numpy_into_plain_values_and_the_rest_into_text():
    out = json.dumps({"n": np.int64(3), "w": np.float32(0.5), "ok": np.bool_(True),
                      "v": np.array([[1, 2]]), "p": Path("a/b"), "t": pd.Timestamp("2024-01-02")},
                     default=json_default)
    assert json.loads(out) == {"n": 3, "w": 0.5, "ok": True, "v": [[1, 2]], "p": "a/b",
                               "t": "2024-01-02 00:00:00"}
    assert type(json_default(np.int64(3))) is int
    assert type(json_default(np.float64(1.5))) is float


@pytest.mark.parametrize("value", [None, float("nan"), np.nan, pd.NA, pd.NaT, np.float32("nan")])
def test_missing_values(value):
    assert isnull(value)
    assert count(value) == 0


@pytest.mark.parametrize("value, expected", [(0, 0), (3, 3), (np.int64(7), 7), (2.0, 2),
                                             (np.float64(5.0), 5)])
def test_count_of_present_values(value, expected):
    assert not isnull(value)
    assert count(value) == expected and type(count(value)) is int


@pytest.mark.parametrize("value", ["", "x", 0, False, pd.Timestamp("2024-01-01")])
def test_present_values_are_not_null(value):
    assert isnull(value) is False
