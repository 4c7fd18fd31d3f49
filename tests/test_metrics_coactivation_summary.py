"""co-activation's per-site summaries (top_conditional and its chance) in numpy equal the
per-site, per-expert pandas code they replaced, to the bit, on random loads with ties,
missing experts, single-expert sites and sites without pairs."""

import importlib

import numpy as np
import pandas as pd
import pytest

coactivation = importlib.import_module("routeviz.metrics.coactivation")


def reference_summaries(pairs, load, names, scope):
    """The code before: one pandas selection per site and per expert."""
    step = 1 if scope == "across" else 0
    rows = []
    for idx in range(len(names) - step):
        here = pairs[pairs.idx == idx]
        targets = load[load.idx == idx + step]
        row = {"scope": scope, "site": names[idx], "to_site": names[idx + step] if step else None,
               "n_units": int(load.n_top[load.idx == idx].sum()), "top_conditional": None,
               "chance": None}
        if len(here):
            best = here.groupby("a").agg(best=("p_b_given_a", "max"), n_a=("n_a", "first"))
            row["top_conditional"] = float(np.average(best.best, weights=best.n_a))
            chance = [reference_best(targets, a, step) for a in best.index]
            row["chance"] = float(np.average(chance, weights=best.n_a))
        rows.append(row)
    return pd.DataFrame(rows, columns=["scope", "site", "to_site", "n_units", "top_conditional",
                                       "chance"])


def reference_best(targets, a, step):
    if step:
        return float(targets.p.max()) if len(targets) else 0.0
    k = max(round(float(targets.p.sum())), 1)
    q_a = float(targets.p[targets.choice == a].sum())
    others = targets.p[targets.choice != a]
    return float((k - 1) * others.max() / (k - q_a)) if len(others) and k > q_a else 0.0


def random_case(rng, trial):
    n_sites, n_experts = int(rng.integers(1, 6)), int(rng.integers(1, 7))
    rows = []
    for idx in range(n_sites):
        for c in sorted(rng.choice(n_experts, rng.integers(0, n_experts + 1), replace=False)):
            rows.append((idx, int(c), int(rng.integers(1, 50)), int(rng.integers(0, 30))))
    load = pd.DataFrame(rows, columns=["idx", "choice", "n_choice", "n_top"])
    if trial % 3 == 0:  # every expert equally loaded: ties for the max
        load["n_choice"] = 10
    n_units = load.groupby("idx").n_top.sum()
    load["p"] = load.n_choice / load.idx.map(n_units).replace(0, 1)
    pairs = pd.DataFrame([(int(rng.integers(0, n_sites)), a, b, int(rng.integers(1, 9)),
                           int(rng.integers(1, 20)))
                          for a in range(n_experts) for b in range(n_experts)
                          if rng.random() < 0.4], columns=["idx", "a", "b", "n_ab", "n_a"])
    pairs["p_b_given_a"] = pairs.n_ab / pairs.n_a
    return pairs, load, [f"s{i}" for i in range(n_sites)]


@pytest.mark.parametrize("scope", ["within", "across"])
def test_summaries_equal_the_per_expert_code(scope):
    rng = np.random.default_rng(0)
    seen_chance = 0
    for trial in range(150):
        pairs, load, names = random_case(rng, trial)
        expected = reference_summaries(pairs, load, names, scope)
        got = coactivation._summaries(pairs, load, names, scope)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        seen_chance += int(expected.chance.notna().sum())
    assert seen_chance > 100  # the cases exercised the chance, not only empty sites


def test_within_chance_leaves_out_the_expert_itself():
    """Two experts, q = (0.9, 0.1), k = 1 recorded rank: P(b | a) has k − 1 = 0 other
    slots, so chance is 0; with k = 2 (q = 1.2, 0.8): for a = 0 the other is 0.8 / (2 − 1.2)."""
    load = pd.DataFrame({"idx": [0, 0], "choice": [0, 1], "n_choice": [12, 8],
                         "n_top": [6, 4]})
    load["p"] = load.n_choice / 10
    got = coactivation._best_chances(load.p, load.choice.to_numpy(), np.array([0, 1]), 0)
    assert got[0] == pytest.approx(1 * 0.8 / (2 - 1.2))
    assert got[1] == pytest.approx(1 * 1.2 / (2 - 0.8))
