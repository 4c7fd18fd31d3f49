"""load and keep on a store with known rows; errors that name what exists."""

import math

import pytest

from routeviz.cli import main
from routeviz.errors import RoutevizError
from routeviz.metrics import exits, keep, load, summary
from tests.metrics_store import expert_routes, known_run, write_run


@pytest.fixture
def store(tmp_path):
    return known_run(tmp_path / "st")


def test_load_counts_shares_starved_and_dropped(store):
    res = load(store, "r")
    a = res.sites.set_index("site").loc["a"]
    assert a.n_experts == 4 and a.n_tokens == 9 and a.dropped_tokens == 1
    assert a.starved == [2, 3] and a.n_starved == 2
    counts = [6, 3, 0, 0]
    mean = sum(counts) / 4
    std = math.sqrt(sum((c - mean) ** 2 for c in counts) / 4)
    assert a.cv == pytest.approx(std / mean) and a.max_over_mean == pytest.approx(6 / mean)
    experts = res.experts[res.experts.site == "a"].set_index("expert")
    assert list(experts["count"]) == counts  # never-chosen experts are rows with 0
    assert experts.share[0] == pytest.approx(6 / 9)
    b = res.sites.set_index("site").loc["b"]
    assert b.dropped_tokens == 0 and b.starved == [0, 1]
    assert list(res.sites.site) == ["a", "b"]  # model order


def test_keep_merges_and_never_discarded(store):
    res = keep(store, "r")
    prune = res.sites.set_index("site").loc["prune"]
    assert prune.n_seen == 10 and prune.n_kept == 6 and prune.kept_fraction == pytest.approx(0.6)
    # discarded: keep=0 at tokens 0,3,6,9 and merged away 4,5,7 -> 3 never discarded
    assert res.tokens.iloc[0].to_dict() == {"n_tokens": 10, "n_never_discarded": 3,
                                            "never_discarded_fraction": 0.3}
    merges = res.merges.set_index("group_size").n_groups.to_dict()
    assert merges == {3: 1, 2: 1}  # token 3 absorbed 4 and 5; token 6 absorbed 7


def test_errors_name_what_exists(store, tmp_path, capsys):
    with pytest.raises(RoutevizError, match="unknown run 'x'; available: r"):
        load(store, "x")
    with pytest.raises(RoutevizError, match="unknown tag 'colour'.*available: kind, lang"):
        summary(store, "r", tags=["colour"])
    only_experts = write_run(tmp_path / "st2", "e", expert_routes("g", 0, {(0, 0): [0]}))
    for fn in (exits, keep):
        with pytest.raises(RoutevizError, match="it recorded: expert"):
            fn(only_experts, "e")
    assert summary(only_experts, "e")["notes"] == [
        "the run has no tags, so Focus/Cover cannot be computed"]
    assert main(["metrics", "--store", str(store.path), "--run", "nope", "--json"]) == 2
    assert "unknown run 'nope'; available: r" in capsys.readouterr().err
