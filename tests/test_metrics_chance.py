"""Chance-corrected metrics on synthetic stores with known answers: co-activation,
vocabulary specialization, consecutive-token rate, router confidence, and the permutation
baseline / bootstrap interval of Focus/Cover."""

import numpy as np
import pandas as pd
import pytest

from routeviz.errors import RoutevizError
from routeviz.metrics import (
    coactivation,
    confidence,
    consecutive,
    focus_cover,
    focus_cover_baseline,
    summary,
    vocab_specialization,
)
from tests.metrics_store import expert_routes, write_run

N_EX, SEQ, E, VALUES = 16, 25, 8, 4


def unit_index(example, token):
    return example * SEQ + token


def cls_tags():
    return [(e, t, "cls", f"v{unit_index(e, t) % VALUES}") for e in range(N_EX) for t in range(SEQ)]


def assignments(rule):
    return {(e, t): rule(e, t) for e in range(N_EX) for t in range(SEQ)}


def row(frame, **match):
    for key, value in match.items():
        frame = frame[frame[key] == value]
    assert len(frame) == 1, frame
    return frame.iloc[0]


@pytest.fixture
def tag_copy_store(tmp_path):
    """Top-2 router: rank 0 copies the tag value (v -> v), rank 1 is always v + 4, at two
    sites; the second site repeats the first."""
    copy = assignments(lambda e, t: [unit_index(e, t) % VALUES, 4 + unit_index(e, t) % VALUES])
    routes = expert_routes("g0", 0, copy) + expert_routes("g1", 1, copy)
    return write_run(tmp_path / "st", "copy", routes, tags=cls_tags(), config={"n_experts": E})


@pytest.fixture
def random_store(tmp_path):
    rng = np.random.default_rng(7)
    rand = assignments(lambda e, t: [int(x) for x in rng.choice(E, 2, replace=False)])
    return write_run(tmp_path / "st", "rand", expert_routes("g0", 0, rand), tags=cls_tags(),
                     config={"n_experts": E})


def test_tag_copying_router_sits_far_above_its_permutation_band(tag_copy_store):
    base = focus_cover_baseline(tag_copy_store, "copy", permutations=30, resamples=30)
    pooled = row(base.scores, site="*")
    assert pooled.focus == 1.0 and pooled.cover == 1.0
    assert pooled.focus_hi < 0.5 and pooled.cover_hi < 0.5  # chance is near 1/VALUES
    assert pooled.focus_lo <= pooled.focus_mean <= pooled.focus_hi
    assert pooled.focus_ci_lo == pooled.focus_ci_hi == 1.0  # every resample is perfect
    assert not base.sampled and base.n_units == N_EX * SEQ
    # the per-cell band: the copied cell is 1, far above its own band
    cell = row(base.alignment, subnetwork="g0 · expert 0", tag="cls=v0")
    assert cell.f1 == 1.0 and cell.hi < 0.5


def test_uniformly_random_router_sits_inside_its_permutation_band(random_store):
    base = focus_cover_baseline(random_store, "rand", permutations=60, resamples=60, seed=3)
    pooled = row(base.scores, site="*")
    assert pooled.focus_lo <= pooled.focus <= pooled.focus_hi
    assert pooled.cover_lo <= pooled.cover <= pooled.cover_hi
    assert pooled.focus_ci_lo <= pooled.focus <= pooled.focus_ci_hi
    assert pooled.focus_ci_hi - pooled.focus_ci_lo > 0.005  # a real interval, not a point


def test_baseline_observed_scores_equal_focus_cover(random_store):
    fc = focus_cover(random_store, "rand")
    base = focus_cover_baseline(random_store, "rand", permutations=2, resamples=0, result=fc)
    assert list(base.scores.site) == list(fc.scores.site)
    np.testing.assert_allclose(base.scores.focus, fc.scores.focus)
    np.testing.assert_allclose(base.scores.cover, fc.scores.cover)


def test_baseline_is_seeded_and_samples_examples_above_max_units(random_store):
    a = focus_cover_baseline(random_store, "rand", permutations=5, resamples=5, seed=1)
    b = focus_cover_baseline(random_store, "rand", permutations=5, resamples=5, seed=1)
    assert a.scores.equals(b.scores)
    small = focus_cover_baseline(random_store, "rand", permutations=5, resamples=5,
                                 max_units=4 * SEQ)
    assert small.sampled and small.n_units_total == N_EX * SEQ
    assert 0 < small.n_units < N_EX * SEQ and small.n_units % SEQ == 0  # whole examples


@pytest.mark.parametrize("store_name", ["random", "shipped"])
def test_baseline_dense_scoring_equals_the_sparse_one(random_store, store_name, monkeypatch):
    """A shuffle scored as sparse T x dense S (the default) gives exactly the numbers of
    the all-sparse products (kept for large runs), on a synthetic and a shipped store."""
    from pathlib import Path

    from routeviz import open_store
    from routeviz.metrics import baseline

    if store_name == "random":
        store, run = random_store, "rand"
    else:
        store = open_store(Path(__file__).resolve().parents[1] / "sample_models" / "data"
                           / "series" / "text-moe")
        run = store.run_names()[-1]
    dense = focus_cover_baseline(store, run, permutations=7, resamples=7, seed=2)
    monkeypatch.setattr(baseline, "DENSE_UNITS", 0)
    sparse = focus_cover_baseline(store, run, permutations=7, resamples=7, seed=2)
    assert dense.scores.equals(sparse.scores)
    assert dense.alignment.equals(sparse.alignment)
    assert dense.scores.focus_hi.notna().all() and dense.scores.cover_ci_lo.notna().all()


def test_coactivation_deterministic_pairs(tag_copy_store):
    res = coactivation(tag_copy_store, "copy")
    pair = row(res.within, site="g0", a=1, b=5)
    assert pair.p_b_given_a == 1.0 and pair.n_ab == pair.n_a == N_EX * SEQ / VALUES
    assert row(res.within, site="g0", a=5, b=1).p_b_given_a == 1.0
    # uniform load over 8 experts, top-2: chance P(b | a) = (k-1)/(E-1)
    assert pair.p_b == pytest.approx(1 / 7)
    assert not ((res.within.a == 1) & (res.within.b == 2)).any()  # never together
    across = row(res.across, from_site="g0", to_site="g1", a=2, b=2)
    assert across.p_b_given_a == 1.0 and across.p_b == pytest.approx(0.25)
    assert row(res.across, from_site="g0", a=2, b=6).p_b_given_a == 1.0
    assert not ((res.across.a == 2) & (res.across.b == 3)).any()
    within = row(res.sites, scope="within", site="g0")
    assert within.top_conditional == 1.0 and within.chance == pytest.approx(1 / 7)


def test_coactivation_random_router_near_chance(random_store):
    res = coactivation(random_store, "rand")
    assert res.within.p_b_given_a.mean() == pytest.approx(1 / 7, abs=0.02)
    assert res.within.p_b.mean() == pytest.approx(1 / 7, abs=0.01)
    assert res.across.empty  # one site: no consecutive sites


@pytest.mark.parametrize("rule, rate", [
    (lambda e, t: [t % 2], 0.0),  # alternating experts
    (lambda e, t: [3], 1.0),  # always one expert
])
def test_consecutive_rate_known_answers(tmp_path, rule, rate):
    store = write_run(tmp_path / "st", "r", expert_routes("g", 0, assignments(rule)),
                      config={"n_experts": E})
    res = consecutive(store, "r")
    site = row(res, site="g")
    assert site.top1_rate == rate and site.topk_rate == rate
    assert site.n_pairs == N_EX * (SEQ - 1)  # pairs never cross an example boundary
    # sum of squared load shares: 13 and 12 of 25 tokens per example alternate, or all one
    assert site.top1_chance == pytest.approx((13 / 25) ** 2 + (12 / 25) ** 2 if rate == 0 else 1.0)
    assert row(res, site="*").top1_rate == rate


def test_consecutive_top2_chance_from_load(tag_copy_store):
    res = row(consecutive(tag_copy_store, "copy"), site="g0")
    assert res.k == 2 and res.topk_rate == 0.0  # consecutive tokens carry different values
    assert res.topk_chance == pytest.approx(8 * 0.25 ** 2 / 2)  # q_e = 1/4 for all 8 experts


def test_vocab_specialization_token_copying_router_is_one(tmp_path):
    texts = {e: [f"w{(e + t) % 6}" for t in range(SEQ)] for e in range(N_EX)}
    copy = assignments(lambda e, t: [(e + t) % 6, 7])  # rank 0 copies the token id
    store = write_run(tmp_path / "st", "tok", expert_routes("g", 0, copy), tokens=texts,
                      config={"n_experts": E})
    res = vocab_specialization(store, "tok", min_count=3)
    site = row(res.sites, site="g")
    assert site.top1 == 1.0 and site.top1_corrected == 1.0
    assert site.topk == 1.0 and site.topk_corrected == 1.0
    assert site.top1_chance == 1 / E and site.topk_chance == 2 / E and site.n_tokens == 6
    w2 = row(res.tokens, text="w2")
    assert w2.expert in (2, 7) and w2.top1 == 1.0  # expert 7 ties at any rank
    # a min_count above every token's count leaves nothing to score
    assert row(vocab_specialization(store, "tok", min_count=10_000).sites,
               site="g").n_tokens == 0


def test_vocab_specialization_random_router_corrects_to_near_zero(random_store, tmp_path):
    rng = np.random.default_rng(0)
    texts = {e: [f"w{t % 3}" for t in range(SEQ)] for e in range(N_EX)}
    rand = assignments(lambda e, t: [int(rng.integers(E))])
    store = write_run(tmp_path / "st2", "r", expert_routes("g", 0, rand), tokens=texts,
                      config={"n_experts": E})
    site = row(vocab_specialization(store, "r").sites, site="g")
    assert site.top1_chance == 1 / E
    assert abs(site.top1_corrected) < 0.1  # ~130 occurrences per token: max share near 1/E
    with pytest.raises(RoutevizError, match="no token texts"):
        vocab_specialization(random_store, "rand")


def test_confidence_and_unprocessed_tokens(tmp_path):
    # 4 tokens per example: token 3 capacity-dropped (no row), token 2 routed with weight 0
    routes = []
    for e in range(3):
        routes += [(e, 0, 0, "g", "expert", 1, 0, 0.9), (e, 1, 0, "g", "expert", 2, 0, 0.7),
                   (e, 2, 0, "g", "expert", 0, 0, 0.0),
                   (e, 0, 1, "mod", "keep", 1, 0, 0.8), (e, 1, 1, "mod", "keep", 0, 0, 0.1)]
    texts = {e: ["a", "b", "c", "d"] for e in range(3)}
    store = write_run(tmp_path / "st", "c", routes, tokens=texts, config={"n_experts": 4})
    res = confidence(store, "c")
    g = row(res["experts"], site="g")
    assert g.mean_top1_weight == pytest.approx((0.9 + 0.7 + 0.0) / 3)
    assert (g.n_expected, g.n_routed, g.n_dropped, g.n_zero) == (12, 9, 3, 3)
    assert g.unprocessed_fraction == pytest.approx(0.5)
    assert row(res["keep"], site="mod").skipped_fraction == 0.5


def test_summary_json_has_every_chance_key(tag_copy_store):
    result = summary(tag_copy_store, "copy", permutations=10, resamples=10)
    entry = next(e for e in result["focus_cover"] if e["site"] == "*")
    assert entry["focus"] == 1.0 and entry["baseline"]["focus"]["hi"] < 0.5
    assert entry["baseline"]["permutations"] == 10 and entry["ci"]["focus"]["lo"] == 1.0
    assert set(entry["baseline"]["cover"]) == {"mean", "lo", "hi"}
    co = [s for s in result["coactivation"]["sites"] if s["scope"] == "within"]
    assert co[0]["top_conditional"] == 1.0 and co[0]["chance"] == pytest.approx(1 / 7)
    assert co[0]["top_pairs"][0]["p_b_given_a"] == 1.0
    assert result["consecutive"]["sites"][0]["top1_rate"] == 0.0
    assert result["confidence"]["experts"][0]["mean_top1_weight"] == 0.5
    assert "no token texts" in result["vocab_specialization"]["skipped"]
    plain = summary(tag_copy_store, "copy", permutations=0, resamples=0)
    assert "baseline" not in plain["focus_cover"][0]


def test_summary_samples_coactivation_and_consecutive_above_max_scan_units(random_store):
    result = summary(random_store, "rand", permutations=0, resamples=0, max_scan_units=5 * SEQ)
    co, cons = result["coactivation"], result["consecutive"]
    assert co["sampled"] and cons["sampled"] and co["n_units_total"] == N_EX * SEQ
    sampled_pairs = cons["sites"][0]["n_pairs"]
    assert 0 < sampled_pairs < N_EX * (SEQ - 1) and sampled_pairs % (SEQ - 1) == 0
    assert any("sample" in n for n in result["notes"])


def test_cli_metrics_json_carries_baselines_and_chance_keys(tag_copy_store, capsys):
    import json

    from routeviz.cli import main

    main(["metrics", "--store", str(tag_copy_store.path), "--run", "copy", "--permutations", "4",
          "--seed", "2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert {"coactivation", "vocab_specialization", "consecutive", "confidence"} <= set(out)
    assert all(e["baseline"]["permutations"] == 4 and e["baseline"]["seed"] == 2
               for e in out["focus_cover"])
    code = main(["metrics", "--store", str(tag_copy_store.path), "--run", "copy",
                 "--permutations", "-1", "--json"])
    assert code != 0
    assert capsys.readouterr().err.count("\n") == 1  # one line, no traceback


def test_summary_without_chance_or_scans_keeps_the_headline_numbers(tmp_path):
    """Compare asks for the headline only (permutations=0, resamples=0, scans=False): the
    same Focus/Cover, load, keep and exits as the full summary, none of the extras."""
    from routeviz.figures.analysis import headline
    from routeviz.store import open_store
    from tests.metrics_store import known_run

    known_run(tmp_path / "store")
    store = open_store(tmp_path / "store")
    full = summary(store, "r", permutations=5, resamples=5)
    light = summary(store, "r", permutations=0, resamples=0, scans=False)
    assert headline(light) == headline(full) and headline(full)
    assert light["tag_families"] == full["tag_families"]
    for key in ("coactivation", "vocab_specialization", "consecutive", "confidence"):
        assert key in full and key not in light
    assert all("baseline" not in row for row in light["focus_cover"])


def test_summary_samples_vocab_specialization_with_the_same_examples(tmp_path):
    """Above max_scan_units, vocabulary specialization reads the sample of whole examples
    co-activation reads, says so, and equals the metric over a store holding only those
    examples; below it, every occurrence (no sample)."""
    from routeviz.metrics._sample import example_sample

    rng = np.random.default_rng(5)
    texts = {e: [f"w{(e * 3 + t) % 7}" for t in range(SEQ)] for e in range(N_EX)}
    picks = assignments(lambda e, t: [int(x) for x in rng.choice(E, 2, replace=False)])
    store = write_run(tmp_path / "st", "tok", expert_routes("g", 0, picks), tokens=texts,
                      config={"n_experts": E})
    out = summary(store, "tok", permutations=0, resamples=0, max_scan_units=5 * SEQ)
    vocab = out["vocab_specialization"]
    assert vocab["sampled"] and vocab["n_units_total"] == N_EX * SEQ
    assert any("vocab_specialization" in n and "sample" in n for n in out["notes"])
    condition, _, _ = example_sample(store, "tok", 5 * SEQ)
    kept = sorted(int(e) for e in store.query_df(
        f"SELECT DISTINCT example FROM routes WHERE run = 'tok' AND {condition}").example)
    assert 0 < len(kept) < N_EX
    only = write_run(tmp_path / "only", "tok",
                     expert_routes("g", 0, {k: v for k, v in picks.items() if k[0] in kept}),
                     tokens={e: texts[e] for e in kept}, config={"n_experts": E})
    expected = vocab_specialization(only, "tok")
    assert vocab["sites"] == [{k: (None if pd.isna(v) else v) for k, v in r.items()}
                              for r in expected.sites.to_dict("records")]
    whole = summary(store, "tok", permutations=0, resamples=0)["vocab_specialization"]
    assert not whole["sampled"] and whole["sites"][0]["n_occurrences"] == N_EX * SEQ


@pytest.mark.parametrize("min_count", [1, 5])
def test_vocab_from_routes_already_read_equals_the_sql_join(tmp_path, min_count):
    """metrics --json counts vocabulary specialization from the routes co-activation read
    (numpy); the SQL join it replaced gives the same frames, whole and sampled, on a store
    with repeated texts, ties between experts and a site without texts' tokens, and on a
    real text-moe run (special tokens, Unicode)."""
    import importlib

    from routeviz.metrics._sample import example_sample
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record
    from routeviz.runs.uploads import item_from_text

    read_routes = importlib.import_module("routeviz.metrics.coactivation").read_routes
    rng = np.random.default_rng(11)
    texts = {e: [f"w{(e + t) % 5}" for t in range(SEQ)] for e in range(N_EX)}
    picks = assignments(lambda e, t: [int(x) for x in rng.choice(3, 2, replace=False)])
    synthetic = write_run(tmp_path / "st", "tok", expert_routes("g0", 0, picks)
                          + expert_routes("g1", 1, {(e, -1): [1] for e in range(N_EX)}),
                          tokens=texts, config={"n_experts": E})
    record(load_model("text-moe"), [item_from_text(t) for t in (
        "naïve café — 😀 <b>tags</b>\n\tdef f(x): return x", "x = [1, 2, 3]  # three", "x")],
        tmp_path / "real", "real")
    import routeviz

    for store, run in ((synthetic, "tok"), (routeviz.open_store(tmp_path / "real"), "real")):
        for units in (None, 2 * SEQ):
            sample, _, _ = example_sample(store, run, units)
            by_sql = vocab_specialization(store, run, min_count=min_count, sample=sample)
            by_numpy = vocab_specialization(store, run, min_count=min_count, sample=sample,
                                            routes=read_routes(store, run, sample))
            pd.testing.assert_frame_equal(by_numpy.sites, by_sql.sites, check_dtype=False,
                                          check_exact=True)
            pd.testing.assert_frame_equal(by_numpy.tokens, by_sql.tokens, check_dtype=False,
                                          check_exact=True)
            assert len(by_sql.tokens) > 0 or min_count > 1  # a short real run: few repeats


def test_bootstrap_draws_scored_together_equal_one_at_a_time(random_store, monkeypatch):
    """The bootstrap's draws scored several per product (T' [S·w1 | S·w2 | ...]) give
    exactly the numbers of one product per draw."""
    from routeviz.metrics import baseline

    together = focus_cover_baseline(random_store, "rand", permutations=3, resamples=9, seed=4)
    monkeypatch.setattr(baseline, "RESAMPLE_ENTRIES", 1)  # one draw per product
    alone = focus_cover_baseline(random_store, "rand", permutations=3, resamples=9, seed=4)
    assert together.scores.equals(alone.scores)
    assert together.scores.focus_ci_lo.notna().all()


def test_summary_counting_in_a_pool_equals_counting_inline(monkeypatch):
    """`metrics --json` counts the baselines, co-activation and consecutive tokens in a
    thread pool while it queries (on large runs); the JSON is the same, byte for byte, as when every part
    is counted in turn (a shipped run with expert, keep and exit routes, sampled small so
    every sampled note is said)."""
    import importlib
    import json
    from concurrent.futures import Future
    from pathlib import Path

    from routeviz import open_store

    summary_module = importlib.import_module("routeviz.metrics.summary")  # not the function

    class Inline:
        used = False

        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, work, *args, **kwargs):
            future = Future()
            future.set_result(work(*args, **kwargs))
            Inline.used = True
            return future

    store = open_store(Path(__file__).resolve().parents[1] / "sample_models" / "data"
                       / "series" / "text-moe")
    run = store.run_names()[-1]
    args = {"permutations": 5, "resamples": 5, "max_units": 200, "max_scan_units": 200}
    monkeypatch.setattr(summary_module, "POOL_ROUTES", 0)  # a small run: pooled all the same
    pooled = json.dumps(summary(store, run, **args))
    monkeypatch.setattr(summary_module, "ThreadPoolExecutor", Inline)
    inline = json.dumps(summary(store, run, **args))
    assert pooled == inline and Inline.used
    result = json.loads(pooled)
    assert result["coactivation"]["sampled"] and any("baseline" in e for e in result["focus_cover"])
    assert {"expert", "exit"} <= {e["kind"] for e in result["focus_cover"]}
