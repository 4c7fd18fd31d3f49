"""routeviz.register and the `routeviz.tracers` entry-point group: the README's custom-router
example runs as written, and a plugin found through a real dist-info folder is loaded."""

import importlib.metadata
import re
import sys
from pathlib import Path

import torch

import routeviz
from routeviz.registry import Registry
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


def test_entry_point_plugin_is_loaded_by_a_registry(tmp_path, monkeypatch):
    (tmp_path / "my_routeviz_plugin.py").write_text(
        "import torch, routeviz\n"
        "class PluginRouter(torch.nn.Module):\n"
        "    pass\n"
        "def register():\n"
        "    routeviz.register(PluginRouter, lambda m, i, o: None)\n")
    dist = tmp_path / "my_routeviz_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-routeviz-plugin\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[routeviz.tracers]\nmine = my_routeviz_plugin:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert [ep.name for ep in importlib.metadata.entry_points(group="routeviz.tracers")
            if ep.name == "mine"] == ["mine"]
    registry = Registry()
    registry.load_plugins()
    plugin = sys.modules["my_routeviz_plugin"]
    assert registry is not routeviz.registry.REGISTRY
    assert routeviz.registry.REGISTRY.lookup(plugin.PluginRouter()) is not None
