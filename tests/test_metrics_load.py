"""load, keep, exits, entropy, paths, expert_profiles and summary on stores with known rows."""

import json
import math

import pytest

from routeviz.cli import main
from routeviz.errors import RoutevizError
from routeviz.metrics import entropy, exits, expert_profiles, keep, load, paths, summary
from tests.metrics_store import expert_routes, write_run

# 10 tokens in one example; site a (layer 0) and site b (layer 1), 4 experts, top-1
# a: tokens 0-5 -> expert 0, 6-8 -> expert 1, token 9 dropped (no row); expert 2, 3 idle
# b: tokens 0-9 -> expert (token % 2) + 2
A = {(0, t): [0 if t < 6 else 1] for t in range(9)}
B = {(0, t): [t % 2 + 2] for t in range(10)}
TEXT = ["def", "x", "(", "y", ")", ":", "return", "x", "+", "y"]
TAGS = [(0, t, "kind", "kw" if TEXT[t] in ("def", "return") else "other") for t in range(10)]
TAGS += [(0, -1, "lang", "py")]


@pytest.fixture
def store(tmp_path):
    routes = expert_routes("a", 0, A) + expert_routes("b", 1, B)
    routes += [(0, t, 1, "prune", "keep", int(t % 3 != 0), 0, 0.5) for t in range(10)]
    routes += [(0, 4, 1, "merge", "merge", 3, 0, 0.9), (0, 5, 1, "merge", "merge", 3, 0, 0.8),
               (0, 7, 1, "merge", "merge", 6, 0, 0.7)]
    routes += [(0, t, 1 if t < 8 else 3, "exit", "exit", 1 if t < 8 else 3, 0, 0.9)
               for t in range(10)]
    return write_run(tmp_path / "st", "r", routes, tags=TAGS, tokens={0: TEXT},
                     config={"n_experts": 4, "n_layers": 4})


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


def test_exits_histograms_and_compute_saved(store):
    res = exits(store, "r")
    assert res.n_layers == 4 and res.unit == "token"
    assert list(res.per_token["count"]) == [0, 8, 0, 2]
    assert list(res.per_example["count"]) == [0, 0, 0, 1]  # the example ran to its deepest token
    assert res.mean_exit_layer == pytest.approx((8 * 1 + 2 * 3) / 10)
    assert res.compute_saved == pytest.approx(1 - (8 * 2 / 4 + 2 * 4 / 4) / 10)


def test_entropy_from_weights_and_logits(tmp_path):
    routes = expert_routes("g", 0, {(0, 0): [0, 1], (0, 1): [2, 3]},
                           weights={(0, 0): [0.5, 0.5], (0, 1): [0.9, 0.1]})
    logits = [(0, 0, 0, "g", [0.0, 0.0, 0.0, 0.0]), (0, 1, 0, "g", [10.0, -10.0, -10.0, -10.0])]
    st = write_run(tmp_path / "st", "r", routes, logits=logits)
    res = entropy(st, "r")
    tok = res.tokens.set_index(["source", "token"]).entropy
    assert tok[("weights", 0)] == pytest.approx(math.log(2))
    assert tok[("weights", 1)] == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)),
                                                rel=1e-5)
    assert tok[("logits", 0)] == pytest.approx(math.log(4), rel=1e-3)
    assert tok[("logits", 1)] == pytest.approx(0.0, abs=1e-3)
    sites = res.sites.set_index("source")
    assert sites.max_possible["weights"] == pytest.approx(math.log(2))
    assert sites.max_possible["logits"] == pytest.approx(math.log(4))
    assert entropy(st, "r", limit=1).tokens_note == "1 of 4 per-token entropies (capped at 1)"


def test_paths_transitions_and_top_paths(store):
    res = paths(store, "r", top=3)
    assert res.sites == ["a", "b"]
    t = res.transitions.set_index(["from_expert", "to_expert"])
    assert t.loc[(0, 2), "count"] == 3 and t.loc[(0, 3), "count"] == 3
    assert t.loc[(1, 2), "count"] == 2 and t.loc[(1, 3), "count"] == 1  # tokens 6, 8 / 7
    assert t.loc[(1, 2), "fraction"] == pytest.approx(2 / 3)
    assert res.n_tokens == 10
    assert list(res.top_paths.path) == ["0>2", "0>3", "1>2"]  # token 9 (dropped at a): "3"
    assert list(res.top_paths["count"]) == [3, 3, 2]


def test_expert_profiles_lift_and_contexts(store):
    res = expert_profiles(store, "r", site="a", min_count=1)
    kw = res.tags[(res.tags.name == "kind") & (res.tags.value == "kw")].set_index("expert")
    # expert 0 holds 'def' of 6 tokens, expert 1 'return' of 3; P(kw) = 2/10
    assert kw.lift[0] == pytest.approx((1 / 6) / (2 / 10))
    assert kw.lift[1] == pytest.approx((1 / 3) / (2 / 10))
    x = res.tokens[(res.tokens.expert == 0) & (res.tokens.text == "x")].iloc[0]
    assert x["count"] == 1 and x.lift == pytest.approx((1 / 6) / (2 / 10))
    ctx = res.examples[(res.examples.expert == 1) & (res.examples.token == 7)].iloc[0]
    assert (ctx.left, ctx.text, ctx.right) == ("y ) : return", "x", "+ y")
    assert set(res.examples.expert) == {0, 1}


def test_summary_and_cli_metrics_json(store, capsys):
    out = summary(store, "r")
    assert out["kinds"] == ["exit", "expert", "keep", "merge"]
    kinds = {(r["kind"], r["site"], r["tag"]) for r in out["focus_cover"]}
    assert ("expert", "*", "*") in kinds and ("keep", "prune", "kind") in kinds
    assert ("exit", "*", "lang") in kinds
    assert out["load"][0]["shares"] == pytest.approx([6 / 9, 3 / 9, 0, 0])
    assert out["keep"]["tokens"]["n_never_discarded"] == 3
    assert out["exits"]["compute_saved"] == pytest.approx(0.4)
    assert main(["metrics", "--store", str(store.path), "--run", "r", "--tag", "kind",
                 "--kind", "expert", "--top1", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert {r["tag"] for r in cli["focus_cover"]} == {"kind"}
    assert {r["kind"] for r in cli["focus_cover"]} == {"expert"}


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
