"""Every built-in tracer family on a tiny random model: the rows routeviz stores equal what the
router returned (read here with a plain forward hook of the test's own), padding absent."""

import warnings

import pytest
import torch

import routeviz
from routeviz.cli import main
from tests.families import BY_NAME, FAMILIES, check_weights, decisions, hook_routers
from tests.legacy_moe import LegacyMoE, OpaqueRouter, fuse_layer, opaque_routers
from tests.toy import GatedEmbedding

MASK = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])  # right padding: 8 real tokens
N_REAL = int(MASK.sum())


def _ids(seed=1):
    ids = torch.randint(4, 60, MASK.shape, generator=torch.Generator().manual_seed(seed))
    return ids * MASK  # pad id 0


def _trace(model, store_dir, run, **options):
    with (routeviz.trace(model, store_dir, run, **options) as tracer,
          tracer.batch(examples=[0, 1]), torch.no_grad()):
        model(input_ids=_ids(), attention_mask=MASK)
    store = routeviz.open_store(store_dir)
    return store.routes(run), store


def _check_expert_rows(family, config, seen, routes):
    """Rows per site and token equal the hooked router's decisions; returns rows expected."""
    expected_rows = 0
    for site, [output] in seen.items():
        chosen, logits, _ = decisions(family, output, batch_size=2)
        at_site = routes[(routes.site == site) & (routes.kind == "expert")]
        for b in range(2):
            for s in range(MASK.shape[1]):
                rows = at_site[(at_site.example == b) & (at_site.token == s)].sort_values("rank")
                if not MASK[b, s]:
                    assert rows.empty
                    continue
                want = {int(e) for e in chosen[b, s] if e >= 0}
                assert set(rows.choice) == want, (site, b, s)
                if want:  # rank 0 is the chosen expert with the highest router logit
                    top = max(want, key=lambda e: float(logits[b, s, e]))
                    assert rows.choice.iloc[0] == top
                    assert rows["rank"].tolist() == list(range(len(want)))
                    check_weights(family, config, logits[b, s], rows.weight.tolist())
                expected_rows += len(want)
    return expected_rows


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_family_rows_equal_router_decisions(family, store_dir):
    model = family.build()
    seen, handles = hook_routers(model, family.router)
    try:
        routes, store = _trace(model, store_dir, family.name)
    finally:
        for handle in handles:
            handle.remove()
    assert len(seen) == family.moe_layers
    experts = routes[routes.kind == "expert"]
    assert len(experts) == _check_expert_rows(family, model.config, seen, routes)
    assert set(experts.site) == set(seen)
    if family.name != "switch":  # Switch drops tokens over capacity (checked below)
        assert len(experts) == N_REAL * family.moe_layers * family.k
    assert not ((routes.example == 1) & (routes.token >= 3)).any()  # padding absent
    assert set(routes.token) <= set(range(5))
    config = store.config(family.name)
    assert all(config["sites"][site]["n_experts"] == 4 for site in seen)
    assert (config["n_experts"], config["top_k"]) == (4, family.k)  # filled in from the sites


class ShuffledTopKRouter(torch.nn.Module):
    """A `*TopKRouter` whose top-k comes back in reverse order (DeepSeek's top-k is unsorted)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(4, 16))

    def forward(self, h):  # [b, s, d]
        logits = h.reshape(-1, h.shape[-1]) @ self.weight.T  # [t, e]
        weights, index = logits.softmax(-1).topk(2, dim=-1)  # [t, k]
        return logits, weights.flip(-1), index.flip(-1)


def test_unsorted_topk_is_ranked_by_router_logit(store_dir):
    model = GatedEmbedding(ShuffledTopKRouter())
    with torch.no_grad():
        logits = model(_ids())[0].reshape(2, 5, 4)
    routes, _ = _trace(model, store_dir, "shuffled")
    assert len(routes) == N_REAL * 2
    for row in routes.itertuples():
        assert row.choice == int(logits[row.example, row.token].topk(2).indices[row.rank])


def test_switch_records_capacity_drops_as_keep_rows(store_dir):
    family = BY_NAME["switch"]
    model = family.build()
    seen, handles = hook_routers(model, family.router)
    routes, store = _trace(model, store_dir, "switch")
    for handle in handles:
        handle.remove()
    keep = routes[routes.kind == "keep"]
    assert len(keep) == N_REAL * family.moe_layers  # every real token, kept or dropped
    dropped = 0
    for site, [output] in seen.items():
        chosen, _, _ = decisions(family, output, batch_size=2)
        for row in keep[keep.site == site].itertuples():
            assert row.choice == int(chosen[row.example, row.token, 0] >= 0)
        dropped += int((keep[keep.site == site].choice == 0).sum())
    assert dropped > 0  # capacity 2 for 5 tokens over 4 experts drops some here
    assert len(routes[routes.kind == "expert"]) == len(keep) - dropped
    site = next(iter(seen))
    assert store.config("switch")["sites"][site] == {"n_experts": 4, "top_k": 1,
                                                     "expert_capacity": 2}


def test_qwen2_shared_expert_gate_is_its_own_site(store_dir):
    model = BY_NAME["qwen2_moe"].build()
    gates, handles = {}, []
    for name, module in model.named_modules():
        if name.endswith("shared_expert_gate"):
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: gates.__setitem__(name, o.detach().clone())))
    routes, _ = _trace(model, store_dir, "qwen2")
    for handle in handles:
        handle.remove()
    shared = routes[routes.kind == "keep"]
    assert set(shared.site) == set(gates) and len(gates) == 2
    assert len(shared) == N_REAL * 2 and set(shared.choice) == {1}
    for site, out in gates.items():
        rows = shared[(shared.site == site) & (shared.example == 1)].sort_values("token")
        want = torch.sigmoid(out.reshape(2, 5)[1, :3]).tolist()
        assert rows.weight.tolist() == pytest.approx(want, abs=1e-6)


def test_transformers4_linear_gate_takes_k_from_its_block(store_dir):
    model = LegacyMoE(k=2)
    logits, handles = {}, []
    for name, module in model.named_modules():
        if name.endswith("block_sparse_moe.gate"):
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: logits.__setitem__(name, o.detach().clone())))
    routes, store = _trace(model, store_dir, "legacy")
    for handle in handles:
        handle.remove()
    assert set(routes.site) == set(logits) and len(logits) == 2
    assert len(routes) == N_REAL * 2 * 2
    for site, site_logits in logits.items():
        probs = site_logits.reshape(2, 5, -1).softmax(-1)
        for row in routes[(routes.site == site) & (routes["rank"] == 0)].itertuples():
            assert row.choice == int(probs[row.example, row.token].argmax())
    assert routes.groupby(["site", "example", "token"]).weight.sum().tolist() == pytest.approx(
        [1.0] * (N_REAL * 2), abs=1e-5)
    assert store.config("legacy")["sites"][next(iter(logits))] == {"n_experts": 4, "top_k": 2}


def test_register_linear_gate_opts_in_a_gate_without_block_hints(store_dir):
    model = LegacyMoE(k=1, hints=False)
    with pytest.raises(routeviz.errors.NoRoutingModules):
        routeviz.trace(model, store_dir, "none").__enter__()
    for block in model.layers:
        routeviz.register_linear_gate(block.block_sparse_moe.gate, k=3, normalize=False)
    routes, _ = _trace(model, store_dir, "opted")
    assert len(routes) == N_REAL * 2 * 3
    assert (routes.groupby(["site", "example", "token"]).weight.sum() < 1).all()


def test_fused_moe_is_read_from_experts_arguments_and_unhandled_one_is_named(store_dir):
    family = BY_NAME["mixtral"]
    model = family.build()
    opaque_routers(model)  # routers no adapter knows: the experts' pre-hook reads them
    fuse_layer(model, 1)  # layer 1: router and experts fused in one module, nothing to read
    seen, handles = hook_routers(model, OpaqueRouter.__name__)
    with pytest.warns(UserWarning, match=r"model\.layers\.1\.mlp \(FusedMoE\)") as record:
        routes, _ = _trace(model, store_dir, "fused")
    for handle in handles:
        handle.remove()
    assert not any("layers.0" in str(w.message) for w in record)
    assert set(routes.site) == {"model.layers.0.mlp.experts"}
    [output] = seen["model.layers.0.mlp.gate"]
    index = output[2].reshape(2, 5, 2)
    assert len(routes) == N_REAL * 2
    for row in routes.itertuples():
        assert row.choice == int(index[row.example, row.token, row.rank])


def test_experts_fallback_yields_to_a_recognised_router():
    from routeviz.capture.sites import find_sites

    model = BY_NAME["mixtral"].build()
    names = [s.name for s in find_sites(model)]
    assert names == ["model.layers.0.mlp.gate", "model.layers.1.mlp.gate"]


class ExitHead(torch.nn.Module):
    """Exit head of block i: two class logits per token, sure of ids divisible by i + 2."""

    def __init__(self, divisor):
        super().__init__()
        self.divisor = divisor
        self.proj = torch.nn.Linear(2, 2)

    def forward(self, input_ids):  # -> [b, s, 2]
        sure = (input_ids % self.divisor == 0).float() * 10  # [b, s]
        return torch.stack([sure, torch.zeros_like(sure)], dim=-1)


class ExitModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.heads = torch.nn.ModuleList(ExitHead(i + 2) for i in range(3))

    def forward(self, input_ids, attention_mask=None):
        return [head(input_ids) for head in self.heads]  # every head runs on every token


def test_exit_heads_give_one_row_per_token_at_the_first_sure_head(store_dir):
    model = ExitModel()
    routeviz.register_exit(ExitHead, threshold=0.9)
    routeviz.register_exit(model.heads[2], final=True)  # the last head takes the rest
    routes, _ = _trace(model, store_dir, "exits")
    ids = _ids()
    assert len(routes) == N_REAL and (routes.kind == "exit").all()
    exits = []
    for row in routes.itertuples():
        token_id = int(ids[row.example, row.token])
        first = next((i for i in range(2) if token_id % (i + 2) == 0), 2)
        assert (row.choice, row.layer) == (first, first)
        exits.append(first)
    assert set(exits) == {0, 1, 2}  # the ids exercise every head


class ImageExitHead(torch.nn.Module):
    """Per-image exit head: class logits [b, c]; sure of images whose third id is even."""

    def forward(self, input_ids):
        sure = (input_ids[:, 2] % 2 == 0).float() * 10  # [b]
        return torch.stack([sure, torch.zeros_like(sure)], dim=-1)  # [b, 2]


def test_per_example_exit_heads(store_dir):
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList(ImageExitHead() for _ in range(2))

        def forward(self, input_ids, attention_mask=None):
            return [block(input_ids) for block in self.blocks]

    model = Model()
    routeviz.register_exit(model.blocks[0], threshold=0.9)
    routeviz.register_exit(model.blocks[1], final=True)
    routes, _ = _trace(model, store_dir, "image-exits")
    even = (_ids()[:, 2] % 2 == 0).tolist()
    assert even == [True, False]  # one image exits at the first head, one at the last
    assert routes.token.tolist() == [-1, -1]
    assert routes.sort_values("example").choice.tolist() == [0, 1]


class DepthRouter(torch.nn.Module):
    """Mixture-of-depths: picks the `capacity` tokens with the largest first feature."""

    def __init__(self, capacity=2):
        super().__init__()
        self.capacity = capacity
        self.proj = torch.nn.Linear(2, 1)

    def forward(self, h):  # [b, s, d]
        scores = h[..., 0]  # [b, s]
        weights, index = scores.topk(self.capacity, dim=-1)  # [b, c]
        return weights, index


class TokenPruner(DepthRouter):
    """Token pruning: returns the kept tokens [b, c, d] and their positions [b, c]."""

    def forward(self, h):
        index = h[..., 0].topk(self.capacity, dim=-1).indices  # [b, c]
        kept = h.gather(1, index.unsqueeze(-1).expand(-1, -1, h.shape[-1]))  # [b, c, d]
        return kept, index


@pytest.mark.parametrize("selector", [DepthRouter, TokenPruner], ids=["mod", "pruning"])
def test_selection_keeps_the_tokens_a_module_returns(selector, store_dir):
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(64, 2)
            self.blocks = torch.nn.ModuleList(selector() for _ in range(2))

        def forward(self, input_ids, attention_mask=None):
            h = self.embed(input_ids)
            return [block(h) for block in self.blocks]

    routeviz.register_selection(selector)
    model = Model()
    with torch.no_grad():
        first = model.embed(_ids())[..., 0]  # [b, s]
    routes, _ = _trace(model, store_dir, "selected")
    assert len(routes) == N_REAL * 2 and (routes.kind == "keep").all()
    top = first.topk(2, dim=-1).indices  # the pad positions can be chosen too
    for row in routes.itertuples():
        assert row.choice == int(row.token in top[row.example].tolist())
    kept_weights = routes[routes.choice == 1].weight
    assert kept_weights.notna().all() == (selector is DepthRouter)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_cli_traces_a_saved_checkpoint(family, tmp_path, capsys):
    import transformers

    from routeviz.testing import save_tiny_checkpoint

    save_class = family.extra.get("save_class", family.model_class)
    directory = save_tiny_checkpoint(family.make_config(), tmp_path / family.name,
                                     model_class=getattr(transformers, save_class))
    store = tmp_path / "store"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["trace", "--model", str(directory), "--text", "the model is a token",
                     "def x ( ) : return", "--store", str(store), "--run", "cli"])
    assert code == 0, capsys.readouterr().err
    routes = routeviz.open_store(store).routes("cli")
    assert set(routes.layer[routes.kind == "expert"]).__len__() == family.moe_layers
    assert routes.groupby("example").token.max().tolist() == [4, 5]  # 5 and 6 real tokens


@pytest.mark.parametrize("name, dense", [("qwen2_moe", {"mlp_only_layers": [0]}),
                                         ("deepseek_v3", {"first_k_dense_replace": 1})])
def test_dense_layers_of_moe_models_are_not_reported_as_unhandled(name, dense, store_dir):
    from routeviz.capture.sites import find_sites, unhandled_moe_modules

    family = BY_NAME[name]
    config = family.make_config()
    for key, value in dense.items():
        setattr(config, key, value)
    model = getattr(__import__("transformers"), family.model_class).from_config(config)
    sites = find_sites(model)
    assert {s.layer for s in sites} == {1}
    assert unhandled_moe_modules(model, sites) == []
    fuse_layer(model, 0)  # and a real unhandled MoE in the dense layer's place is named
    assert unhandled_moe_modules(model, find_sites(model)) == ["model.layers.0.mlp (FusedMoE)"]
