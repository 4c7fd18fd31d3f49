"""Hand-built MoE blocks for tracer tests: a transformers 4.x-style block (plain `nn.Linear`
gate, a list of expert MLPs), a router no adapter knows, and a fully fused MoE."""

import torch
import torch.nn.functional as F
from torch import nn

HIDDEN, EXPERTS = 16, 4


class LegacySparseMoeBlock(nn.Module):
    """transformers 4.x MixtralSparseMoeBlock: `gate` returns logits, top-k in the block."""

    def __init__(self, k=2, hints=True):
        super().__init__()
        if hints:
            self.top_k = k
            self.num_experts = EXPERTS
        self.k = k
        self.gate = nn.Linear(HIDDEN, EXPERTS, bias=False)
        self.experts = nn.ModuleList(nn.Linear(HIDDEN, HIDDEN) for _ in range(EXPERTS))

    def forward(self, h):  # [b, s, d]
        b, s, d = h.shape
        flat = h.reshape(-1, d)
        router_logits = self.gate(flat)  # [t, e]
        weights = F.softmax(router_logits, dim=1, dtype=torch.float)
        weights, selected = torch.topk(weights, self.k, dim=-1)  # [t, k]
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(selected == e)
            out.index_add_(0, token, expert(flat[token]) * weights[token, slot, None])
        return out.reshape(b, s, d)


class LegacyLayer(nn.Module):
    def __init__(self, k, hints):
        super().__init__()
        self.block_sparse_moe = LegacySparseMoeBlock(k, hints)

    def forward(self, h):
        return h + self.block_sparse_moe(h)


class LegacyMoE(nn.Module):
    def __init__(self, k=2, hints=True, layers=2):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(64, HIDDEN)
        self.layers = nn.ModuleList(LegacyLayer(k, hints) for _ in range(layers))

    def forward(self, input_ids, attention_mask=None):
        h = self.embed(input_ids)
        for layer in self.layers:
            h = layer(h)
        return h


class OpaqueRouter(nn.Module):
    """Routes like Mixtral's router, under a class name no adapter knows."""

    def __init__(self, router):
        super().__init__()
        self.weight = router.weight
        self.k = router.top_k

    def forward(self, h):  # [t, d]
        logits = F.linear(h, self.weight)  # [t, e]
        weights, index = logits.softmax(-1).topk(self.k, dim=-1)  # [t, k]
        return logits, weights / weights.sum(-1, keepdim=True), index


class FusedMoE(nn.Module):
    """Router and experts in one module: nothing routeviz can hook."""

    def __init__(self, hidden, experts=EXPERTS):
        super().__init__()
        self.router_weight = nn.Parameter(torch.randn(experts, hidden) * 0.1)
        self.expert_weight = nn.Parameter(torch.randn(experts, hidden, hidden) * 0.1)

    def forward(self, h):  # [b, s, d]
        probs = (h @ self.router_weight.T).softmax(-1)  # [b, s, e]
        return torch.einsum("bse,edh,bsh->bsd", probs, self.expert_weight, h)


def opaque_routers(model):
    for layer in model.model.layers:
        layer.mlp.gate = OpaqueRouter(layer.mlp.gate)


def fuse_layer(model, index):
    model.model.layers[index].mlp = FusedMoE(model.config.hidden_size)
