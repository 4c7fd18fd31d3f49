"""sample_models.layers, the shared algorithms of sample_models.routing, and their adapters
(tracers/sample_layers.py) on tiny random models."""

import torch
from torch import nn

import routeviz
from routeviz.capture.adapters.hf_topk import is_topk_router
from sample_models import conditional, layers, routing


class TinyText(nn.Module):
    """MoE FFN on all tokens, a mixture-of-depths block whose MoE sees the selected subset,
    then per-token exits after each of 2 layers."""

    def __init__(self, d=16, vocab=32, threshold=0.06):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([nn.ModuleDict({"moe": layers.MoEFeedForward(d, 8, 4, 2)}),
                                     nn.ModuleDict({"mod": layers.MixtureOfDepthsRouter(d, 0.5),
                                                    "moe": layers.MoEFeedForward(d, 8, 4, 2)})])
        self.exits = nn.ModuleList([layers.TokenExitHead(0, threshold),
                                    layers.TokenExitHead(1, threshold, last=True)])
        self.head = nn.Linear(d, vocab)

    def forward(self, ids, attention_mask):
        mask = attention_mask.bool()
        h = self.embed(ids)
        h = h + self.blocks[0]["moe"](h, token_mask=mask).hidden
        exited = self.exits[0](self.head(h), torch.zeros_like(mask), mask).exit_now
        route = self.blocks[1]["mod"](h, mask)
        sub = routing.gather_tokens(h, route.index)
        positions = torch.where(route.slot_valid, route.index, -1)
        update = self.blocks[1]["moe"](sub, positions, route.slot_valid).hidden
        h = routing.scatter_add_tokens(h, route.index, update, route.slot_valid)
        self.exits[1](self.head(h), exited, mask)
        return h


def test_sample_router_is_a_transformers_style_topk_router():
    router = layers.SampleTopKRouter(8, 4, 2)
    logits, weights, index = router(torch.randn(5, 8))
    assert is_topk_router(router)
    assert logits.shape == (5, 4) and weights.shape == index.shape == (5, 2)
    assert torch.allclose(weights.sum(-1), torch.ones(5))
    assert torch.equal(index, logits.topk(2, -1).indices)


def test_mixture_of_depths_keeps_capacity_per_example():
    torch.manual_seed(0)
    router = layers.MixtureOfDepthsRouter(8, capacity=0.25)
    mask = torch.tensor([[1] * 8, [1] * 4 + [0] * 4]).bool()
    route = router(torch.randn(2, 8, 8), mask)
    assert route.selected.sum(1).tolist() == [2, 1]
    assert not route.selected[1, 4:].any()
    assert route.index.shape == (2, 2) and route.slot_valid.tolist() == [[True, True], [True, False]]
    top = route.scores[0].topk(2).indices.sort().values
    assert route.index[0].tolist() == top.tolist()


def test_tome_merges_the_most_similar_pairs_and_tracks_positions():
    x = torch.tensor([[[9.0, 9], [1, 0], [1, 0.01], [0, 1], [-1, 0.5]]])  # CLS + 4 tokens
    merged = layers.ToMeMerger(r=1)(x, x[:, 1:], torch.arange(4)[None], torch.ones(1, 5))
    assert merged.source.tolist() == [[0]] and merged.target.tolist() == [[1]]
    assert merged.hidden.shape == (1, 4, 2) and sorted(merged.positions[0].tolist()) == [1, 2, 3]
    assert merged.sizes.sum().item() == 5


def test_evit_keeps_top_attention_tokens():
    x = torch.randn(1, 5, 3)
    pruned = layers.EViTPruner(0.5)(x, torch.tensor([[0.1, 0.5, 0.05, 0.35]]),
                                     torch.tensor([[10, 11, 12, 13]]))
    assert pruned.positions.tolist() == [[11, 13]]
    assert pruned.kept.tolist() == [[False, True, False, True]]
    assert torch.equal(pruned.hidden[0, 1], x[0, 2])


def test_trace_records_every_kind_with_original_positions(tmp_path):
    torch.manual_seed(0)
    model = TinyText()
    ids = torch.randint(0, 32, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    with routeviz.trace(model, tmp_path, "tiny") as tracer, \
            tracer.batch(examples=[0, 1], attention_mask=mask):
        model(ids, mask)
    store = routeviz.open_store(tmp_path)
    routes = store.routes("tiny")
    keep = routes[routes.kind == "keep"]
    assert len(keep) == 10 and keep.groupby("example").choice.sum().tolist() == [3, 2]
    sub_moe = routes[(routes.kind == "expert") & (routes.layer == 1)]
    kept_tokens = set(map(tuple, keep[keep.choice == 1][["example", "token"]].values.tolist()))
    assert set(map(tuple, sub_moe[["example", "token"]].values.tolist())) == kept_tokens
    assert len(routes[(routes.kind == "expert") & (routes.layer == 0)]) == 10 * 2
    exits = routes[routes.kind == "exit"]
    assert len(exits) == 10 and (exits.choice == exits.layer).all()
    assert not exits.duplicated(["example", "token"]).any()


# --- the shared algorithms (sample_models.routing) give the same decision in both layouts ----
def test_top_fraction_keeps_the_ceiling_share_of_candidates_per_example():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3, 0.7], [5.0, 4.0, 3.0, 2.0, 1.0]])
    candidates = torch.tensor([[True] * 5, [False, True, True, True, False]])
    kept = routing.top_fraction(scores, candidates, 0.5)
    assert kept[0].tolist() == [False, True, True, False, True]  # ceil(2.5) = 3 best
    assert kept[1].tolist() == [False, True, True, False, False]  # ceil(1.5) = 2 of 3


def test_evit_pruner_and_pretrained_token_pruner_keep_the_same_tokens():
    torch.manual_seed(1)
    attn = torch.rand(3, 9)  # CLS attention to 9 tokens
    sample = layers.EViTPruner(0.6)(torch.randn(3, 10, 4), attn, torch.arange(9).expand(3, 9))
    rows = torch.cat([torch.ones(3, 1), attn], 1)  # pretrained layout: CLS is row 0
    active = conditional.Active(torch.arange(3), torch.arange(10).expand(3, 10).clone(),
                                torch.ones(3, 10), 3, 1)
    pretrained = conditional.TokenPruner()(rows, active, 0.6)
    assert torch.equal(pretrained.decision.choice[:, 1:, 0] == 1, sample.kept)
    assert sample.kept.sum(1).tolist() == [6, 6, 6]


def test_tome_merger_and_pretrained_token_merger_make_the_same_merges():
    torch.manual_seed(2)
    tokens = torch.randn(2, 8, 5)
    hidden = torch.cat([torch.zeros(2, 1, 5), tokens], 1)
    sample = layers.ToMeMerger(3)(hidden, tokens, torch.arange(8).expand(2, 8), torch.ones(2, 9))
    active = conditional.Active(torch.arange(2), torch.arange(9).expand(2, 9).clone(),
                                torch.ones(2, 9), 2, 1)
    pretrained = conditional.TokenMerger()(hidden, active, 3).decision
    for b in range(2):
        pairs = {(s, t) for s, t in zip(sample.source[b].tolist(), sample.target[b].tolist())}
        merged = (pretrained.choice[b, :, 0] >= 0).nonzero().squeeze(1)
        assert pairs == {(int(i) - 1, int(pretrained.choice[b, i, 0])) for i in merged}
        assert len(pairs) == 3
    assert torch.allclose(sample.sizes.sum(1), torch.full((2,), 9.0))


def test_merge_rows_is_the_size_weighted_mean():
    x = torch.tensor([[[1.0], [3.0], [10.0]]])
    size = torch.tensor([[1.0, 3.0, 1.0]])
    merged = torch.tensor([[True, False, False]])
    out, mass = routing.merge_rows(x, size, merged, torch.tensor([[1, 1, 2]]))
    assert out[0, 1, 0].item() == (1 * 1 + 3 * 3) / 4 and mass.tolist() == [[0.0, 4.0, 1.0]]
    assert out[0, 2, 0].item() == 10.0
