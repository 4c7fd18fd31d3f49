"""Expert identity across steps (routeviz.metrics.identity): one-to-one matching, idle experts."""

from __future__ import annotations

import numpy as np

from routeviz.metrics import identity as identity_mod
from routeviz.metrics.identity import identity, match


def test_an_idle_expert_matches_no_one(tmp_path):
    from tests.metrics_store import expert_routes, write_run

    for step, (a, b) in ((1, (0, 1)), (2, (1, 0))):  # top-1: tokens 0-2 -> a, 3-5 -> b
        store = write_run(tmp_path, f"i-step{step:06d}", expert_routes(
            "g", 0, {(0, t): [a if t < 3 else b] for t in range(6)}),
            config={"series": "i", "step": step, "n_experts": 4})
    ids = identity(store, "i")
    assert ids.matched.tolist() == [1, 0, -1, -1]  # experts 2 and 3 were never chosen
    assert ids.changed.tolist() == [True, True, False, False]
    assert ids.similarity.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_match_is_one_to_one_with_and_without_scipy(monkeypatch):
    similarity = np.array([[0.9, 0.8, 0.0], [0.85, 0.1, 0.0], [0.0, 0.0, 0.2]])
    assert match(similarity).tolist() == [1, 0, 2]  # Hungarian: 0.8 + 0.85 beats 0.9 + 0.1
    monkeypatch.setitem(__import__("sys").modules, "scipy.optimize", None)
    assert match(similarity).tolist() == [0, 1, 2]  # greedy: the best pair first
    assert identity_mod.match(np.zeros((2, 2))).tolist() in ([0, 1], [1, 0])
