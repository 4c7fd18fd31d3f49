"""A hand-built MoE whose router weights make each token's experts known in advance."""

import torch
from torch import nn

import routeviz
from routeviz import RouteEvent

N_EXPERTS = 4
VOCAB = 16


class ToyRouter(nn.Module):
    """Token id i scores expert i % E highest and expert (i + 1) % E second."""

    def __init__(self, k=2):
        super().__init__()
        self.k = k
        self.scores = nn.Embedding(VOCAB, N_EXPERTS)
        with torch.no_grad():
            table = torch.zeros(VOCAB, N_EXPERTS)
            for i in range(VOCAB):
                table[i, i % N_EXPERTS] = 3.0
                table[i, (i + 1) % N_EXPERTS] = 2.0
            self.scores.weight.copy_(table)

    def forward(self, ids):  # ids [b, s]
        probs = self.scores(ids).softmax(-1)  # [b, s, e]
        weights, index = probs.topk(self.k, dim=-1)  # [b, s, k]
        return weights, index


class ToyMoE(nn.Module):
    def __init__(self, layers=2, k=2):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 8)
        self.routers = nn.ModuleList(ToyRouter(k) for _ in range(layers))
        self.experts = nn.ModuleList(nn.Linear(8, 8) for _ in range(N_EXPERTS))  # one bank, shared by layers

    def forward(self, ids, attention_mask=None):
        h = self.embed(ids)
        for router in self.routers:
            weights, index = router(ids)
            out = torch.zeros_like(h)
            for slot in range(index.shape[-1]):
                for e, expert in enumerate(self.experts):
                    sel = (index[..., slot] == e).unsqueeze(-1)
                    out = out + sel * weights[..., slot:slot + 1] * expert(h)
            h = h + out
        return h


def toy_adapter(module, inputs, output):
    weights, index = output
    return RouteEvent("expert", choice=index, weight=weights)


def register_toy():
    routeviz.register(ToyRouter, toy_adapter)


def expected_experts(token_id, k=2):
    return [token_id % N_EXPERTS, (token_id + 1) % N_EXPERTS][:k]


class GatedEmbedding(nn.Module):
    """The smallest model around one routing module: a token embedding, then `gate`."""

    def __init__(self, gate: nn.Module, vocab: int = 64, dim: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.gate = gate

    def forward(self, input_ids, attention_mask=None):
        return self.gate(self.embed(input_ids))
