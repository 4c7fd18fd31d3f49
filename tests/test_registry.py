"""routeviz.register and the `routeviz.tracers` entry-point group: the README's custom-router
example runs as written, and a plugin found through a real dist-info folder is loaded."""

import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
import torch

import routeviz
from routeviz.capture.registry import Registry
from tests.plugin_dist import write_distribution
from tests.test_tracers import N_REAL, _ids, _trace

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_example() -> str:
    section = README.read_text().split("## Custom routers", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_readme_custom_router_example_runs(store_dir):
    namespace = {}
    exec(compile(_readme_example(), "README.md", "exec"), namespace)  # noqa: S102 (our README)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(64, 16)
            self.routers = torch.nn.ModuleList(namespace["MyRouter"]() for _ in range(2))

        def forward(self, input_ids, attention_mask=None):
            h = self.embed(input_ids)
            return [router(h) for router in self.routers]

    model = Model()
    with torch.no_grad():
        want = model.routers[1].proj(model.embed(_ids())).argmax(-1)  # [b, s]
    routes, _ = _trace(model, store_dir, "custom")
    assert len(routes) == N_REAL * 2 * 2 and (routes.kind == "expert").all()
    top = routes[(routes.site == "routers.1") & (routes["rank"] == 0)]
    assert [int(want[r.example, r.token]) for r in top.itertuples()] == top.choice.tolist()


def test_entry_point_plugin_registers_on_the_registry_it_is_given(tmp_path, monkeypatch):
    write_distribution(tmp_path, "my-routeviz-plugin",
                       {"routeviz.tracers": {"mine": "my_routeviz_plugin:register"}},
                       {"my_routeviz_plugin.py": (
                           "import torch\n"
                           "class PluginRouter(torch.nn.Module):\n"
                           "    pass\n"
                           "def register(registry):\n"
                           "    registry.register(PluginRouter, lambda m, i, o: None)\n")})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert [ep.name for ep in importlib.metadata.entry_points(group="routeviz.tracers")
            if ep.name == "mine"] == ["mine"]
    registry = Registry()
    registry.load_plugins()
    plugin = sys.modules["my_routeviz_plugin"]
    assert registry.lookup(plugin.PluginRouter()) is not None
    assert registry.lookup(torch.nn.Linear(2, 2)) is None
    assert plugin.PluginRouter not in routeviz.registry.REGISTRY.by_class  # only on `registry`


def test_a_broken_plugin_is_named_and_the_rest_still_load(tmp_path, monkeypatch):
    write_distribution(tmp_path, "broken-plugin",
                       {"routeviz.tracers": {"broken": "no_such_module_here:register"}})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    with pytest.warns(UserWarning, match=r"plugin 'broken' \(routeviz.tracers\) failed to load"):
        registry.load_plugins()
    assert "<transformers *TopKRouter>" in registry.describe()  # the core's adapters are there
    assert "SampleTopKRouter" in registry.describe()  # and the built-in plugins'


def test_every_builtin_plugin_is_an_entry_point():
    """Each module of tracers/ with a register() is listed under routeviz.tracers."""
    tracers = Path(__file__).resolve().parent.parent / "tracers"
    modules = {f"tracers.{p.stem}" for p in tracers.glob("*.py")
               if "\ndef register(" in p.read_text()}
    listed = {ep.value.split(":")[0]
              for ep in importlib.metadata.entry_points(group="routeviz.tracers")}
    assert modules and modules <= listed
