"""exits (routeviz/metrics/depth.py) on a store with known rows."""

import pytest

from routeviz.metrics import exits
from tests.metrics_store import known_run


@pytest.fixture
def store(tmp_path):
    return known_run(tmp_path / "st")


def test_exits_histograms_and_compute_saved(store):
    res = exits(store, "r")
    assert res.n_layers == 4 and res.unit == "token"
    assert list(res.per_token["count"]) == [0, 8, 0, 2]
    assert list(res.per_example["count"]) == [0, 0, 0, 1]  # the example ran to its deepest token
    assert res.mean_exit_layer == pytest.approx((8 * 1 + 2 * 3) / 10)
    assert res.compute_saved == pytest.approx(1 - (8 * 2 / 4 + 2 * 4 / 4) / 10)
