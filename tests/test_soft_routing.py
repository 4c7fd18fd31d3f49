"""Soft MoE tracing: the tracer's recomputed dispatch and combine weights reproduce the layer's
output (ours and soft-moe-pytorch's), and a trace stores `soft` and `dispatch` rows that sum
to 1 the way the schema says, read back through DuckDB."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import routeviz
from routeviz.capture.adapters.soft import soft_mix
from sample_models.soft_moe import SoftMoE
from tracers import soft_moe as soft_tracer

E, S, D, N = 3, 2, 16, 10  # experts, slots per expert, width, tokens


class Tiny(nn.Module):
    """Two Soft MoE layers over a sequence of vectors."""

    def __init__(self, layer_factory):
        super().__init__()
        self.layers = nn.ModuleList(layer_factory() for _ in range(2))

    def forward(self, x):
        for layer in self.layers:
            x = x + layer(x)
        return x


def ours():
    torch.manual_seed(0)
    layer = SoftMoE(D, 24, E, S)
    with torch.no_grad():
        layer.scale.fill_(4.0)  # sharper than at init, so the softmaxes are far from uniform
    return layer


def test_recomputed_weights_reproduce_our_layer():
    layer, x = ours(), torch.randn(4, N, D)
    logits = soft_tracer.routeviz_logits(layer, x)
    torch.testing.assert_close(soft_mix(x, logits, layer.experts), layer(x))
    # and a wrong recomputation does not: the dispatch softmax over slots instead of tokens
    wrong = logits.softmax(-1).transpose(1, 2) @ x
    assert not torch.allclose(logits.softmax(-1) @ layer.experts(wrong), layer(x), atol=1e-3)


def test_recomputed_weights_reproduce_soft_moe_pytorch():
    soft_moe_pytorch = pytest.importorskip("soft_moe_pytorch")
    torch.manual_seed(0)
    layer = soft_moe_pytorch.SoftMoE(dim=D, num_experts=E, num_slots=S).eval()
    x = torch.randn(4, N, D)
    logits = soft_tracer.lucidrains_logits(layer, (x,))
    normed, _ = soft_tracer.lucidrains_input(layer, (x,))

    def experts(slots):  # [b, E·S, d] -> the library's experts over [b, e, s, d]
        return layer.experts(slots.view(4, E, S, D)).reshape(4, E * S, D)

    torch.testing.assert_close(soft_mix(normed, logits, experts), layer(x))


def traced(model, tmp_path, batches=2):
    store = tmp_path / "store"
    torch.manual_seed(1)
    with routeviz.trace(model, store, "soft") as tracer:
        for b in range(batches):
            with tracer.batch(examples=range(3 * b, 3 * b + 3)):
                model(torch.randn(3, N, D))
    return routeviz.open_store(store)


def sums(store, kind, by):
    return store.sql(f"SELECT {by}, sum(weight) AS total, count(*) AS n FROM routes "
                     f"WHERE run = 'soft' AND kind = '{kind}' GROUP BY {by}").df()


@pytest.mark.parametrize("family", ["routeviz", "soft-moe-pytorch"])
def test_trace_stores_soft_and_dispatch_rows_that_sum_to_one(family, tmp_path):
    if family == "routeviz":
        model = Tiny(ours)
    else:
        lib = pytest.importorskip("soft_moe_pytorch")
        torch.manual_seed(0)
        model = Tiny(lambda: lib.SoftMoE(dim=D, num_experts=E, num_slots=S)).eval()
    store = traced(model, tmp_path)
    soft = sums(store, "soft", "example, token, site")
    assert len(soft) == 6 * N * 2  # every (example, token, site)
    assert set(soft.n) == {E}  # one row per expert
    assert soft.total.sub(1).abs().max() < 1e-5
    dispatch = sums(store, "dispatch", "example, site, choice")
    assert len(dispatch) == 6 * 2 * E * S  # every (example, site, slot)
    assert set(dispatch.n) == {N}  # one row per token
    assert dispatch.total.sub(1).abs().max() < 1e-5
    ranked = store.sql("SELECT example, token, site, arg_max(rank, weight) AS top FROM routes "
                       "WHERE run = 'soft' AND kind = 'soft' GROUP BY ALL").df()
    assert set(ranked.top) == {0}  # rank 0 is the dominant expert
    config = store.config("soft")
    assert config["slots_per_expert"] == S and config["n_experts"] == E
