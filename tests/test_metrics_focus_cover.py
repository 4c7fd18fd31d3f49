"""Focus/Cover against hand-computed cases, the two extreme routers, a brute-force reference
(hypothesis) and the errors for unknown runs, tags and kinds."""

import importlib
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routeviz import open_store
from routeviz.errors import RoutevizError
from routeviz.metrics import focus_cover
from tests.metrics_store import expert_routes, write_run

fc_module = importlib.import_module("routeviz.metrics.focus_cover")

TOKENS = {0: ["a", "b", "c", "d"], 1: []}  # example 1 has no tokens
# tag family t: tokens 0,1 -> x; tokens 2,3 -> y; z only on example 1 (no token carries it)
TAGS = [(0, 0, "t", "x"), (0, 1, "t", "x"), (0, 2, "t", "y"), (0, 3, "t", "y"),
        (1, -1, "t", "z")]
# site s0 (3 experts, expert 2 never chosen): rank 0 splits by tag, rank 1 mixes
S0 = {(0, 0): [0, 1], (0, 1): [0, 1], (0, 2): [1, 0], (0, 3): [1]}
# site s1 (2 experts): everything to expert 0
S1 = {(0, t): [0] for t in range(4)}


@pytest.fixture
def hand_store(tmp_path):
    routes = expert_routes("s0", 0, S0) + expert_routes("s1", 1, S1)
    return write_run(tmp_path / "st", "hand", routes, tags=TAGS, tokens=TOKENS,
                     config={"n_experts": {"s0": 3, "s1": 2}, "n_layers": 2})


def score(result, site="*", tag="t"):
    row = result.scores[(result.scores.site == site) & (result.scores.tag == tag)]
    assert len(row) == 1, result.scores
    return float(row.focus.iloc[0]), float(row.cover.iloc[0])


def test_hand_computed_any_rank(hand_store):
    r = focus_cover(hand_store, "hand")
    assert r.unit == "token"
    a = r.alignment.set_index(["subnetwork", "tag"]).f1
    assert a[("s0 · expert 0", "t=x")] == pytest.approx(0.8)  # 2·2 / (2 + 3)
    assert a[("s0 · expert 0", "t=y")] == pytest.approx(0.4)  # 2·1 / (2 + 3)
    assert a[("s0 · expert 1", "t=x")] == pytest.approx(2 / 3)  # 2·2 / (2 + 4)
    assert a[("s0 · expert 2", "t=x")] == 0.0  # never chosen: in the matrix, all zeros
    assert a[("s0 · expert 2", "t=z")] == 0.0  # F1 of two empty sets is 0
    assert r.tag_values.set_index("tag").n_tag["t=z"] == 0  # a tag with no units
    # s0: Focus = (0.8 + 2/3 + 0) / 3 experts; Cover = (0.8 + 2/3 + 0) / 3 tag values
    assert score(r, "s0") == pytest.approx(((0.8 + 2 / 3) / 3, (0.8 + 2 / 3) / 3))
    # s1: expert 0 has 2/3 for x and y, expert 1 never chosen
    assert score(r, "s1") == pytest.approx(((2 / 3) / 2, (4 / 3) / 3))
    # pooled over 5 subnetworks and 3 tag values (the paper's C and T)
    assert score(r, "*") == pytest.approx(((0.8 + 2 / 3 + 2 / 3) / 5, (0.8 + 2 / 3) / 3))
    assert set(r.scores.n_subnetworks) == {5, 3, 2}


def test_hand_computed_top1(hand_store):
    r = focus_cover(hand_store, "hand", top1=True)
    assert score(r, "s0") == pytest.approx((2 / 3, 2 / 3))  # experts 0,1 match x,y exactly
    assert score(r, "*") == pytest.approx(((1 + 1 + 2 / 3) / 5, 1 * 2 / 3))


def test_hand_computed_unit_example(hand_store):
    r = focus_cover(hand_store, "hand", unit="example")
    # example 0 has x and y and activates s0.0, s0.1, s1.0; example 1 has z only
    assert score(r, "*") == pytest.approx((3 / 5, 2 / 3))


def test_site_filter_and_per_family_rows(hand_store, tmp_path):
    r = focus_cover(hand_store, "hand", site="s0")
    assert set(r.scores.site) == {"*", "s0"}
    assert score(r, "*") == score(r, "s0")
    m = r.matrix()
    assert m.shape == (3, 3) and m.loc["t=x", "s0 · expert 0"] == pytest.approx(0.8)


def test_copy_router_scores_one_and_constant_router_cover_is_one_over_t(tmp_path):
    n_values, n_tokens = 4, 40
    tags = [(0, t, "cls", f"v{t % n_values}") for t in range(n_tokens)]
    copy = expert_routes("gate", 0, {(0, t): [t % n_values] for t in range(n_tokens)})
    store = write_run(tmp_path / "st", "copy", copy, tags=tags,
                      config={"n_experts": n_values})
    assert score(focus_cover(store, "copy"), tag="cls") == pytest.approx((1.0, 1.0))
    const = expert_routes("gate", 0, {(0, t): [0] for t in range(n_tokens)})
    store = write_run(tmp_path / "st", "const", const, tags=tags, config={"n_experts": n_values})
    focus, cover = score(focus_cover(store, "const"), tag="cls")
    assert cover == pytest.approx(2 / (n_values + 1))  # F1 = 2·(N/T) / (N/T + N)
    assert focus == pytest.approx(2 / (n_values + 1) / n_values)  # 3 idle experts score 0


def test_keep_and_exit_subnetworks(tmp_path):
    routes = [(0, t, 1, "prune", "keep", int(t < 2), 0, 0.5) for t in range(4)]
    routes += [(0, t, 2 if t < 2 else 5, "exit", "exit", 2 if t < 2 else 5, 0, 0.9)
               for t in range(4)]
    tags = [(0, t, "half", "first" if t < 2 else "second") for t in range(4)]
    store = write_run(tmp_path / "st", "r", routes, tags=tags, config={"n_layers": 6})
    keep = focus_cover(store, "r", kind="keep")
    assert list(keep.subnetworks.label) == ["dropped", "kept"]
    assert score(keep, tag="half") == pytest.approx((1.0, 1.0))
    ex = focus_cover(store, "r", kind="exit")
    assert sorted(ex.subnetworks.label) == ["exit 2", "exit 5"]
    assert score(ex, tag="half") == pytest.approx((1.0, 1.0))


def test_per_example_routes_default_to_unit_example(tmp_path):
    routes = [(e, -1, 0, "router", "expert", e % 2, 0, 1.0) for e in range(6)]
    tags = [(e, -1, "colour", "red" if e % 2 else "blue") for e in range(6)]
    store = write_run(tmp_path / "st", "img", routes, tags=tags, config={"n_experts": 2})
    r = focus_cover(store, "img")
    assert r.unit == "example"
    assert score(r, tag="colour") == pytest.approx((1.0, 1.0))


def test_errors_list_what_exists(hand_store):
    with pytest.raises(RoutevizError, match="unknown run 'nope'; available: hand"):
        focus_cover(hand_store, "nope")
    with pytest.raises(RoutevizError, match="unknown tag 'colour'.*available: t"):
        focus_cover(hand_store, "hand", tags=["colour"])
    with pytest.raises(RoutevizError, match="no 'keep' routes; it recorded: expert"):
        focus_cover(hand_store, "hand", kind="keep")
    with pytest.raises(RoutevizError, match="unknown kind"):
        focus_cover(hand_store, "hand", kind="merge")
    with pytest.raises(RoutevizError, match="unknown site 'x'; available: s0, s1"):
        focus_cover(hand_store, "hand", site="x")


def test_run_without_tags_is_a_clear_error(tmp_path):
    store = write_run(tmp_path / "st", "bare", expert_routes("g", 0, {(0, 0): [1]}))
    with pytest.raises(RoutevizError, match="has no tags"):
        focus_cover(store, "bare")


# -- a brute-force reference over Python sets --------------------------------------------

def reference(assign, tags, n_experts, top1):
    """assign {(site, token): [experts by rank]}; tags {token: {value}} -> (focus, cover)."""
    units_of_tag = {}
    for token, values in tags.items():
        for v in values:
            units_of_tag.setdefault(v, set()).add(token)
    active = {(s, e): set() for s in n_experts for e in range(n_experts[s])}
    for (s, token), experts in assign.items():
        for e in experts[:1] if top1 else experts:
            active[(s, e)].add(token)

    def f1(a, b):
        return 2 * len(a & b) / (len(a) + len(b)) if (a or b) else 0.0

    a = {(j, i): f1(units_of_tag[i], active[j]) for j in active for i in units_of_tag}
    focus = sum(max(a[(j, i)] for i in units_of_tag) for j in active) / len(active)
    cover = sum(max(a[(j, i)] for j in active) for i in units_of_tag) / len(units_of_tag)
    return focus, cover


cases = st.integers(2, 4).flatmap(lambda e: st.tuples(
    st.just(e),
    st.lists(st.lists(st.integers(0, e - 1), min_size=1, max_size=2, unique=True),
             min_size=2, max_size=12),  # per token at site g0
    st.lists(st.sampled_from(["p", "q", "r"]), min_size=12, max_size=12),  # tag per token
    st.booleans()))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases)
@pytest.mark.slow  # many random stores against the reference
def test_matches_reference_and_stays_in_bounds(case):
    n_experts, choices, tag_values, top1 = case
    assign = {("g0", t): c for t, c in enumerate(choices)}
    assign.update({("g1", t): [(c[0] + 1) % n_experts] for t, c in enumerate(choices)})
    tags = {t: {tag_values[t]} for t in range(len(choices))}
    routes = []
    for (site, token), experts in assign.items():
        layer = int(site[1])
        routes += [(0, token, layer, site, "expert", e, r, 0.5) for r, e in enumerate(experts)]
    tag_rows = [(0, t, "k", v) for t, vs in tags.items() for v in vs]
    with tempfile.TemporaryDirectory() as tmp:
        store = write_run(f"{tmp}/st", "h", routes, tags=tag_rows,
                          config={"n_experts": n_experts})
        result = focus_cover(store, "h", top1=top1)
        store.close()
    scores = result.scores
    assert ((scores.focus >= 0) & (scores.focus <= 1)).all()
    assert ((scores.cover >= 0) & (scores.cover <= 1)).all()
    assert ((result.alignment.f1 >= 0) & (result.alignment.f1 <= 1)).all()
    expected = reference(assign, tags, {"g0": n_experts, "g1": n_experts}, top1)
    assert score(result, "*", "k") == pytest.approx(expected)
    # identity: the pooled Focus is the subnetwork-weighted mean of the per-site Focus
    per_site = scores[scores.site != "*"]
    pooled = (per_site.focus * per_site.n_subnetworks).sum() / per_site.n_subnetworks.sum()
    assert score(result, "*", "k")[0] == pytest.approx(pooled)
    # identity: pooled Cover is at least every per-site Cover (max over more subnetworks)
    assert (per_site.cover <= score(result, "*", "k")[1] + 1e-12).all()


def test_tokens_inherit_example_tags_without_a_tokens_table(tmp_path):
    # two examples of 3 tokens; example tag "lang"; expert 0 for example 0, expert 1 for 1
    routes = expert_routes("g", 0, {(e, t): [e] for e in range(2) for t in range(3)})
    tags = [(0, -1, "lang", "py"), (1, -1, "lang", "en"), (0, 1, "pos", "noun")]
    store = write_run(tmp_path / "st", "r", routes, tags=tags, config={"n_experts": 2})
    r = focus_cover(store, "r", tags=["lang"])
    assert score(r, tag="lang") == pytest.approx((1.0, 1.0))
    assert r.tag_values.set_index("tag").n_tag.to_dict() == {"lang=en": 3, "lang=py": 3}
    both = focus_cover(store, "r")  # pos=noun: one token of example 0 -> F1 with e0 = 2/4
    assert both.alignment.set_index(["subnetwork", "tag"]).f1[("g · expert 0", "pos=noun")] \
        == pytest.approx(0.5)
    assert set(both.scores.tag) == {"*", "lang", "pos"}


# -- the vectorised scores against the pandas ones they replaced ------------------------
SERIES_STORE = Path(__file__).resolve().parents[1] / "sample_models" / "data" / "series"


def reference_scores(alignment, subs, tag_values, families, unit, kind) -> pd.DataFrame:
    """The pandas `_scores` before numpy (pivot tables, .loc per group). Focus and Cover for every (site or "*") × (tag family or "*") from two small tables:
    best[j, family] = max over the family's values of A_ij, and best[i, site] = max over the
    site's subnetworks of A_ij (0 where no cell), so each score is one mean."""
    if subs.empty or tag_values.empty:
        raise RoutevizError("no subnetworks or no tag values to score")
    sites = list(dict.fromkeys(subs.site))
    per_sub = alignment.pivot_table(index="subnetwork", columns="name", values="f1",
                                    aggfunc="max")
    per_sub = per_sub.reindex(index=list(subs.subnetwork), columns=families).fillna(0.0)
    per_tag = alignment.pivot_table(index="tag", columns="site", values="f1", aggfunc="max")
    per_tag = per_tag.reindex(index=list(tag_values.tag), columns=sites).fillna(0.0)
    rows = []
    for site in ["*"] + sites:
        site_subs = list(subs.subnetwork if site == "*" else subs.subnetwork[subs.site == site])
        for family in ["*"] + (families if len(families) > 1 else []):
            tags = list(tag_values.tag if family == "*"
                        else tag_values.tag[tag_values.name == family])
            best_per_sub = (per_sub.loc[site_subs].max(axis=1) if family == "*"
                            else per_sub.loc[site_subs, family])
            best_per_tag = (per_tag.loc[tags].max(axis=1) if site == "*"
                            else per_tag.loc[tags, site])
            rows.append({
                "site": site,
                "tag": family if family != "*" or len(families) > 1 else families[0],
                "unit": unit, "kind": kind,
                "focus": float(best_per_sub.mean()), "cover": float(best_per_tag.mean()),
                "n_subnetworks": len(site_subs), "n_tags": len(tags),
            })
    return pd.DataFrame(rows)


@pytest.mark.parametrize("dense_cells", [fc_module.DENSE_CELLS, 0])
def test_scores_equal_the_pandas_reference_on_shipped_stores(dense_cells, monkeypatch):
    monkeypatch.setattr(fc_module, "DENSE_CELLS", dense_cells)  # 0: sparse alignment
    checked = 0
    for name in ("text-moe", "dae-syn"):
        store = open_store(SERIES_STORE / name)
        runs = store.run_names()
        for run in (runs[0], runs[len(runs) // 2], runs[-1]):
            kinds = store.facts(run).kinds
            for kind in [k for k in ("expert", "keep", "exit") if k in kinds]:
                for top1 in (False, True):
                    res = focus_cover(store, run, kind=kind, top1=top1)
                    old = reference_scores(res.alignment, res.subnetworks, res.tag_values,
                                           res.tags, res.unit, res.kind)
                    pd.testing.assert_frame_equal(res.scores, old, check_exact=True)
                    checked += 1
    assert checked >= 12


def reference_alignment(both, subs, tag_values):
    """The pandas `_alignment` before numpy (a cross merge, then a left merge)."""
    cells = both.merge(subs[["site", "choice", "subnetwork", "label", "n_active"]],
                       on=["site", "choice"]).merge(tag_values, on=["name", "value"])
    dense = len(subs) * len(tag_values) <= fc_module.DENSE_CELLS
    if dense:
        grid = subs[["site", "choice", "subnetwork", "label", "n_active"]].merge(
            tag_values, how="cross")
        cells = grid.merge(cells[["site", "choice", "name", "value", "n_both"]],
                           on=["site", "choice", "name", "value"], how="left")
        cells["n_both"] = cells.n_both.fillna(0).astype("int64")
    cells["f1"] = fc_module.f1(cells.n_both.to_numpy(), cells.n_tag.to_numpy(), cells.n_active.to_numpy())
    columns = ["site", "choice", "subnetwork", "label", "name", "value", "tag", "f1",
               "n_both", "n_tag", "n_active"]
    return cells[columns].reset_index(drop=True), dense


def test_alignment_equals_the_pandas_reference_on_shipped_stores():
    checked = 0
    for name in ("text-moe", "dae-syn"):
        store = open_store(SERIES_STORE / name)
        runs = store.run_names()
        for run in (runs[0], runs[-1]):
            for kind in [k for k in ("expert", "keep", "exit") if k in store.facts(run).kinds]:
                res = focus_cover(store, run, kind=kind)
                both = res.alignment[res.alignment.n_both > 0][
                    ["site", "choice", "name", "value", "n_both"]].sample(frac=1, random_state=0)
                subs = res.subnetworks
                values = res.tag_values
                new, dense = fc_module._alignment(both, subs, values)
                old, old_dense = reference_alignment(both, subs, values)
                assert dense and old_dense
                pd.testing.assert_frame_equal(new, old, check_exact=True)
                assert (new.f1 > 0).any()
                checked += 1
    assert checked >= 6


def test_focus_cover_kinds_equals_focus_cover_per_kind():
    """`metrics --json`'s kinds scored over one read of the tagged units give the results
    `focus_cover` gives kind by kind."""
    store = open_store(SERIES_STORE / "text-moe")  # expert, keep and exit routes
    run = store.run_names()[-1]
    kinds = [k for k in ("expert", "keep", "exit") if k in store.facts(run).kinds]
    together = fc_module.focus_cover_kinds(store, run, kinds)
    assert list(together) == kinds and len(kinds) >= 2
    for kind in kinds:
        alone = focus_cover(store, run, kind=kind)
        pd.testing.assert_frame_equal(together[kind].scores, alone.scores, check_exact=True)
        pd.testing.assert_frame_equal(together[kind].alignment, alone.alignment,
                                      check_exact=True)
        assert together[kind].unit == alone.unit
