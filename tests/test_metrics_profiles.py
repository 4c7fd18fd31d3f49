"""expert_profiles: lift and contexts on a store with known rows."""

import pytest

from routeviz.metrics import expert_profiles
from tests.metrics_store import known_run


@pytest.fixture
def store(tmp_path):
    return known_run(tmp_path / "st")


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
