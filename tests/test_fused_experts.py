"""The fused-experts fallback (routeviz/adapters/fused_experts.py) finds an experts module by
its call, `experts(hidden, top_k_index, top_k_weights)`, whatever holds its weights."""

import pytest
import torch
from torch import nn

from routeviz.capture.adapters.fused_experts import takes_routing
from tests.families import BY_NAME, hook_routers
from tests.legacy_moe import OpaqueRouter, opaque_routers
from tests.test_tracers import N_REAL, _trace


class WeightStore(nn.Module):
    """The experts' weights, one module below the experts module (no 3-D parameter of its own)."""

    def __init__(self, experts, hidden, inner):
        super().__init__()
        self.up = nn.Parameter(torch.randn(experts, inner, hidden) * 0.1)
        self.down = nn.Parameter(torch.randn(experts, hidden, inner) * 0.1)


def run_experts(hidden, index, weights, up, down):  # [t, d], [t, k], [t, k], [e, i, d], [e, d, i]
    inner = torch.einsum("tkid,td->tki", up[index], hidden).relu()  # [t, k, i]
    out = torch.einsum("tkdi,tki->tkd", down[index], inner)  # [t, k, d]
    return (out * weights[..., None]).sum(1)


class BankedExperts(nn.Module):
    """Weights in a child module; positional arguments under names of its own."""

    def __init__(self, experts, hidden, inner=8):
        super().__init__()
        self.bank = WeightStore(experts, hidden, inner)

    def forward(self, x, chosen, gate):
        return run_experts(x, chosen, gate, self.bank.up, self.bank.down)


class FlatExpertBank(nn.Module):
    """Not named *Experts; 2-D parameters viewed as [e, ...] at call time."""

    def __init__(self, experts, hidden, inner=8):
        super().__init__()
        self.shape = (experts, inner, hidden)
        self.up = nn.Parameter(torch.randn(experts * inner, hidden) * 0.1)
        self.down = nn.Parameter(torch.randn(experts * hidden, inner) * 0.1)

    def forward(self, hidden_states, top_k_index, top_k_weights):
        e, i, d = self.shape
        return run_experts(hidden_states, top_k_index, top_k_weights,
                           self.up.view(e, i, d), self.down.view(e, d, i))


@pytest.mark.parametrize("experts_class", [BankedExperts, FlatExpertBank])
def test_experts_module_is_found_by_its_call(experts_class, store_dir):
    family = BY_NAME["mixtral"]
    model = family.build()
    opaque_routers(model)  # routers no adapter knows: only the experts' call tells the routing
    for layer in model.model.layers:
        layer.mlp.experts = experts_class(model.config.num_local_experts,
                                          model.config.hidden_size)
        assert not any(p.dim() == 3 for p in layer.mlp.experts.parameters(recurse=False))
    seen, handles = hook_routers(model, OpaqueRouter.__name__)
    routes, _ = _trace(model, store_dir, experts_class.__name__)
    for handle in handles:
        handle.remove()
    assert set(routes.site) == {"model.layers.0.mlp.experts", "model.layers.1.mlp.experts"}
    assert len(routes) == N_REAL * 2 * 2
    for layer in (0, 1):
        [(_, weights, index)] = seen[f"model.layers.{layer}.mlp.gate"]
        index = index.reshape(2, 5, 2)  # [b, s, k] as the experts module got it
        weights = weights.reshape(2, 5, 2)
        at_site = routes[routes.site == f"model.layers.{layer}.mlp.experts"]
        for row in at_site.itertuples():
            ranked = weights[row.example, row.token].argsort(descending=True)  # rank 0 = top
            assert row.choice == int(index[row.example, row.token, ranked[row.rank]])


def test_a_module_that_cannot_take_routing_is_not_a_candidate():
    class DenseExperts(nn.Module):  # named like experts, but called with hidden states only
        def forward(self, hidden_states):
            return hidden_states

    assert not takes_routing(DenseExperts())
    assert not takes_routing(nn.Linear(2, 2))
    assert takes_routing(BankedExperts(4, 16)) and takes_routing(FlatExpertBank(4, 16))
