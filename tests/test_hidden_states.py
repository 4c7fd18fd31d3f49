"""trace(..., hidden_states=True): the stored vectors are the inputs each router received."""

import numpy as np
import pytest
import torch

import routeviz
from routeviz.cli import main
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model
from routeviz.runs.record import record

TEXTS = ["the model of the expert token route", "def x ( ) : return y", "a gate"]


def router_inputs(module, names, run_model):
    """{(example, token, site): vector} from an independent forward pre-hook on each router.

    A router's first argument is [rows, d]; its second, when a tensor, holds each row's
    position in the input ([b, s'], -1: not a token); otherwise row r is token r % s."""
    seen = {}
    handles = []
    for name in names:
        def pre(mod, args, name=name):
            states = args[0].detach().reshape(-1, args[0].shape[-1])
            positions = args[1] if len(args) > 1 and isinstance(args[1], torch.Tensor) else None
            seen.setdefault(name, []).append((states.clone(), positions))
        handles.append(module.get_submodule(name).register_forward_pre_hook(pre))
    try:
        batch, lengths = run_model()
    finally:
        for h in handles:
            h.remove()
    out = {}
    for name, calls in seen.items():
        for states, positions in calls:
            b = len(lengths)
            if positions is None:
                positions = torch.arange(len(states) // b).expand(b, -1)
            for row, (state, pos) in enumerate(zip(states, positions.reshape(-1))):
                example = row // positions.shape[1]
                if 0 <= int(pos) < lengths[example]:
                    out[(batch[example], int(pos), name)] = state.numpy()
    return out


def stored(store_dir, run):
    df = routeviz.open_store(store_dir).query_df(
        "SELECT example, token, layer, site, vector FROM embeddings WHERE run = ?", [run])
    return df


def check_equal(df, expected, sites):
    got = {(int(r.example), int(r.token), r.site): np.asarray(r.vector, np.float32)
           for r in df[df.site.isin(sites)].itertuples()}
    assert got.keys() == expected.keys() and expected
    for key, vector in expected.items():
        np.testing.assert_allclose(got[key], vector, rtol=1e-3, atol=1e-3)  # float16


def trace_and_expect(runner, suffix, store_dir, run):
    """Trace TEXTS with hidden states; return the routers (names ending in `suffix`), the
    inputs an independent pre-hook saw on them, the stored rows and the token counts."""
    routers = [n for n, m in runner.module.named_modules() if n.endswith(suffix)]
    items = [Item(text=t, source=t) for t in TEXTS]
    encoded = runner.encode(items)
    lengths = [len(t) for t in encoded.tokens]

    def run_model():
        with torch.no_grad():
            runner.module(**encoded.inputs)
        return [0, 1, 2], lengths

    expected = router_inputs(runner.module, routers, run_model)
    record(runner, items, store_dir, run, batch_size=3, hidden_states=True)
    df = stored(store_dir, run)
    check_equal(df, expected, routers)
    return routers, expected, df, lengths


def test_tiny_mixtral_router_inputs_are_stored(mixtral_dir, store_dir):
    routers, expected, df, lengths = trace_and_expect(load_model(str(mixtral_dir)), "mlp.gate",
                                                      store_dir, "h")
    assert len(expected) == sum(lengths) * len(routers)  # every token at every router
    layers = dict(zip(df.site, df.layer))
    assert [layers[r] for r in routers] == [0, 1]  # layer = the site's layer
    assert {len(v) for v in df.vector} >= {32}  # hidden size of the tiny model


def test_text_moe_routers_seeing_subsets_map_to_their_tokens(store_dir):
    routers, expected, df, lengths = trace_and_expect(load_model("text-moe"), "mlp.router",
                                                      store_dir, "t")
    routes = routeviz.open_store(store_dir).query_df(
        "SELECT DISTINCT example, token, site FROM routes WHERE run = 't' AND kind = 'expert'")
    assert {(int(r.example), int(r.token), r.site) for r in routes.itertuples()} == set(expected)
    # mixture-of-depths blocks route only part of the tokens: fewer rows than tokens there
    per_site = df[df.site.isin(routers)].groupby("site").size()
    assert per_site.min() < per_site.max() == sum(lengths)


def test_off_by_default_and_on_from_the_cli(mixtral_dir, store_dir, capsys):
    assert main(["trace", "--model", str(mixtral_dir), "--text", TEXTS[0], "--store",
                 str(store_dir), "--run", "plain", "--json"]) == 0
    assert main(["trace", "--model", str(mixtral_dir), "--text", TEXTS[0], "--store",
                 str(store_dir), "--run", "states", "--hidden-states", "--json"]) == 0
    capsys.readouterr()
    assert stored(store_dir, "plain").empty
    df = stored(store_dir, "states")
    assert len(df) == 7 * 2 and set(df.site) == {"model.layers.0.mlp.gate",
                                                 "model.layers.1.mlp.gate"}
    assert routeviz.open_store(store_dir).facts("states").has_embeddings


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def test_a_vit_pruner_input_drops_its_class_token(store_dir):
    from sample_models.glyphs import glyph_batch, glyph_item

    runner = load_model("glyph-vit")
    items = [glyph_item(g, i) for i, g in enumerate(glyph_batch(2, seed=5))]
    seen = {}

    def pre(module, args):  # hidden [b, 1 + n, d] (class token first), positions [b, n]
        hidden, positions = args[0].detach(), args[2]
        for example in range(hidden.shape[0]):
            for row, pos in enumerate(positions[example].tolist()):
                seen[(example, pos)] = hidden[example, 1 + row].numpy()

    handle = runner.module.get_submodule("blocks.0.reduce").register_forward_pre_hook(pre)
    try:
        with torch.no_grad():
            runner.module(**runner.encode(items).inputs)
    finally:
        handle.remove()
    record(runner, items, store_dir, "v", hidden_states=True)
    df = stored(store_dir, "v")
    expected = {(e, t, "blocks.0.reduce"): v for (e, t), v in seen.items()}
    check_equal(df, expected, ["blocks.0.reduce"])
    assert len(expected) == 2 * 36
