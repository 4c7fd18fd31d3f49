"""The core depends on no plugin: no module under routeviz/ imports `tracers` or
`sample_models`, by an import statement or by a string given to importlib."""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[1] / "routeviz"
PLUGINS = ("tracers", "sample_models")


def _is_plugin(name) -> bool:
    return isinstance(name, str) and name.split(".")[0].split(":")[0] in PLUGINS


def plugin_imports(source: str) -> list[str]:
    """Plugin modules that `source` imports: `import x`, `from x import y`, and literal
    strings passed to importlib.import_module / __import__ / a `lazy("module:function")`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_plugin(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_plugin(node.module):
            found.append(node.module)
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (called in ("import_module", "__import__", "lazy")
                    and isinstance(first, ast.Constant) and _is_plugin(first.value)):
                found.append(first.value)
    return found


def test_the_core_imports_no_plugin():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 20  # the walk really sees the package
    offenders = {str(f.relative_to(CORE.parent)): plugin_imports(f.read_text()) for f in files}
    assert {f: names for f, names in offenders.items() if names} == {}


@pytest.mark.parametrize("source", [
    "import tracers.hf_topk",
    "from sample_models import REGISTRY",
    "def f():\n    from tracers import BUILTIN",
    "import importlib\nimportlib.import_module('sample_models.text_moe')",
    "from importlib import import_module\nimport_module('tracers')",
])
def test_every_form_of_plugin_import_is_caught(source):
    assert plugin_imports(source)


def test_relative_and_core_imports_are_not_plugin_imports():
    assert plugin_imports("from . import sites\nimport routeviz.adapters\n"
                          "from routeviz.plugins import lazy\nx = 'tracers'") == []
