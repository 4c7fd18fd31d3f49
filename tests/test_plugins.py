"""A third-party package adds an adapter, a model and a dataset through entry points only:
`routeviz models`, `routeviz trace --model/--dataset` and the app's model picker use them
without any change to routeviz."""

import json
import sys

import pytest
import torch

import routeviz
from routeviz.capture.registry import Registry
from routeviz.cli import main
from routeviz.plugins import dataset_specs, model_specs
from tests.plugin_dist import write_distribution
from tests.toy import GatedEmbedding

PLUGIN = '''
import zlib

import torch
from torch import nn

from routeviz.runs.inputs import Item
from routeviz.runs.models import Encoded, ModelRunner
from routeviz.plugins import DatasetSpec, ModelSpec
from routeviz.store.schema import RouteEvent

VOCAB, D, E, K = 32, 8, 4, 2


class PluginRouter(nn.Module):
    """No adapter in routeviz knows this class: the plugin's adapter reads it."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(D, E)

    def forward(self, h):  # [b, s, d] -> weights [b, s, k], experts [b, s, k]
        return self.proj(h).softmax(-1).topk(K, dim=-1)


class PluginMoE(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, D)
        self.routers = nn.ModuleList(PluginRouter() for _ in range(2))

    def forward(self, input_ids, attention_mask=None):
        h = self.embed(input_ids)
        return [router(h) for router in self.routers]


def read_router(module, inputs, output):
    weights, experts = output
    return RouteEvent("expert", choice=experts, weight=weights)


def word_id(word):
    return zlib.crc32(word.encode()) % VOCAB


class PluginRunner(ModelRunner):
    def __init__(self, name):
        self.name = name
        self.module = PluginMoE().eval()

    def encode(self, items):
        words = [item.text.split() for item in items]
        width = max(len(w) for w in words)
        ids = torch.zeros(len(items), width, dtype=torch.long)
        mask = torch.zeros(len(items), width, dtype=torch.long)
        for i, ws in enumerate(words):
            ids[i, :len(ws)] = torch.tensor([word_id(w) for w in ws])
            mask[i, :len(ws)] = 1
        meta = [{"modality": "text", "source": item.text, "label": item.label} for item in items]
        return Encoded({"input_ids": ids, "attention_mask": mask}, words,
                       [dict(item.tags) for item in items], meta)

    @torch.no_grad()
    def predict(self, encoded):
        self.module(**encoded.inputs)
        return [None] * len(encoded.tokens)


def register(registry):
    registry.register(PluginRouter, read_router)


MODEL = ModelSpec("plugin-moe", "text", ("expert",), ("plugin-words",),
                  "a tiny MoE from a third-party package", PluginRunner)
DATASET = DatasetSpec("plugin-words", "three tagged sentences", lambda limit: [
    Item(text=t, source=t, tags={"mood": m})
    for t, m in [("a cat sat", "calm"), ("run now fast", "busy"), ("the sea", "calm")]][:limit])
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The throwaway distribution `routeviz-plugin-toy`, installed for one test."""
    write_distribution(tmp_path, "routeviz-plugin-toy", {
        "routeviz.tracers": {"plugin_toy": "rvz_plugin_toy:register"},
        "routeviz.models": {"plugin-moe": "rvz_plugin_toy:MODEL"},
        "routeviz.datasets": {"plugin-words": "rvz_plugin_toy:DATASET"},
    }, {"rvz_plugin_toy.py": PLUGIN})
    monkeypatch.syspath_prepend(str(tmp_path))
    # The plugin's module stays imported between tests, as in a real process: the default
    # registry loaded its adapter (for that module's PluginRouter class) once.


def expected_experts(module, text):
    """What each router of the plugin's model chooses for each word, computed directly."""
    import rvz_plugin_toy

    ids = torch.tensor([[rvz_plugin_toy.word_id(w) for w in text.split()]])
    with torch.no_grad():
        h = module.embed(ids)
        return [router(h)[1][0] for router in module.routers]  # per router: [s, k]


def test_models_lists_the_plugin_model(plugin, capsys):
    assert main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["plugin-moe"] == {"name": "plugin-moe", "modality": "text",
                                    "routing": ["expert"], "datasets": ["plugin-words"],
                                    "description": "a tiny MoE from a third-party package"}
    assert "text-moe" in listed  # the built-in samples still come through their entry points


def test_trace_model_records_the_plugin_routers_choices(plugin, tmp_path, capsys):
    text = "the cat sat on a warm mat"
    store = tmp_path / "store"
    assert main(["trace", "--model", "plugin-moe", "--text", text, "--store", str(store),
                 "--run", "p"]) == 0
    routes = routeviz.open_store(store).routes("p")
    from routeviz.runs.models import load_model

    want = expected_experts(load_model("plugin-moe").module, text)
    assert set(routes.site) == {"routers.0", "routers.1"}
    assert len(routes) == 2 * len(text.split()) * 2
    for row in routes.itertuples():
        site = int(row.site.rsplit(".", 1)[1])
        assert row.choice == int(want[site][row.token, row.rank]), row


def test_trace_dataset_from_the_plugin(plugin, tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["trace", "--model", "plugin-moe", "--dataset", "plugin-words", "--limit", "2",
                 "--store", str(store), "--run", "d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 2
    tags = routeviz.open_store(store).tags("d")
    assert sorted(tags[tags.name == "mood"].value) == ["busy", "calm"]


def test_the_apps_model_picker_offers_the_plugin_model(plugin):
    from app_pages.common import sample_model_names

    names = sample_model_names()
    assert "plugin-moe" in names and "text-moe" in names


def test_without_the_distribution_nothing_of_it_is_found():
    assert "plugin-moe" not in model_specs() and "plugin-words" not in dataset_specs()


def test_a_fresh_registry_isolates_one_trace(plugin, tmp_path):
    """An adapter registered on one Registry is used by the trace given that registry only."""
    import rvz_plugin_toy  # noqa: F401  (the plugin's own module, as the entry point loads it)

    class Opaque(torch.nn.Module):
        def forward(self, h):  # [b, s, d] -> the top-1 of its first 3 channels
            return h[..., :3].softmax(-1).topk(1, dim=-1)

    def Model():  # noqa: N802 (a model factory, read like the class it builds)
        return GatedEmbedding(Opaque(), vocab=8, dim=4)

    own = Registry()
    own.register(Opaque, sys.modules["rvz_plugin_toy"].read_router)
    ids = torch.tensor([[1, 2, 3]])
    with routeviz.trace(Model(), tmp_path / "s", "own", registry=own) as tracer, \
            tracer.batch(examples=[0]), torch.no_grad():
        tracer.model(input_ids=ids)
    assert len(routeviz.open_store(tmp_path / "s").routes("own")) == 3
    with pytest.raises(routeviz.RoutevizError, match="no routing module"):
        routeviz.trace(Model(), tmp_path / "s", "default").__enter__()
