"""entropy from top-k weights and from router logits with known values."""

import math

import pytest

from routeviz.metrics import entropy
from tests.metrics_store import expert_routes, write_run


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
