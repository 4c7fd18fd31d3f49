"""paths: layer-to-layer transitions and top paths on a store with known rows."""

import pytest

from routeviz.metrics import paths
from tests.metrics_store import known_run


@pytest.fixture
def store(tmp_path):
    return known_run(tmp_path / "st")


def test_paths_transitions_and_top_paths(store):
    res = paths(store, "r", top=3)
    assert res.sites == ["a", "b"]
    t = res.transitions.set_index(["from_expert", "to_expert"])
    assert t.loc[(0, 2), "count"] == 3 and t.loc[(0, 3), "count"] == 3
    assert t.loc[(1, 2), "count"] == 2 and t.loc[(1, 3), "count"] == 1  # tokens 6, 8 / 7
    assert t.loc[(1, 2), "fraction"] == pytest.approx(2 / 3)
    assert res.n_tokens == 10
    assert list(res.top_paths.path) == ["0>2", "0>3", "1>2"]  # token 9 (dropped at a): "3"
    assert list(res.top_paths.sites) == [("a", "b")] * 3  # the site of each step
    assert list(res.top_paths["count"]) == [3, 3, 2]


def test_a_path_names_the_sites_it_went_through(store):
    """Token 9 is dropped at site a: its one-step path "3" is at site b, not a."""
    res = paths(store, "r", top=10)
    short = res.top_paths[res.top_paths.path == "3"]
    assert list(short.sites) == [("b",)] and list(short["count"]) == [1]
