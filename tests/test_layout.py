"""The core's folders show its layers: few modules at the top, no import cycle between any
two modules (lazy imports inside functions included), and every `routeviz.…` name the
README and docs/architecture.md mention imports."""

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "routeviz"
# entry-point groups and the store's marker file: names, not modules
NOT_MODULES = {"routeviz.tracers", "routeviz.datasets", "routeviz.importers.groups",
               "routeviz.json"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in CORE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The routeviz modules `path` imports anywhere in it (top level or inside a function):
    `from routeviz.a import b` names `routeviz.a.b` when that is a module, else `routeviz.a`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                up = up[: len(up) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import routeviz.a.b` where b is a name
                target = target.rpartition(".")[0]
            if target.startswith("routeviz") and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(name, path, set(mods)) for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_at_most_twelve_modules_at_the_top():
    top = sorted(p.name for p in CORE.glob("*.py"))
    assert "__init__.py" in top and len(top) <= 12, top


def test_every_package_has_a_docstring_saying_what_it_holds():
    for init in CORE.glob("*/__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), init


def test_no_two_modules_import_each_other():
    graph = import_graph()
    assert len(graph) > 60  # the walk sees the whole core
    assert graph["routeviz.cli.series"] >= {"routeviz.cli.tracing"}  # lazy imports count
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_layers_point_one_way():
    """The store knows nothing of capture, runs, analyses or the app's figures; capture
    nothing of analyses; metrics nothing of figures or reports."""
    graph = import_graph()
    rules = {"routeviz.store": ("routeviz.capture", "routeviz.runs", "routeviz.metrics",
                                "routeviz.analysis", "routeviz.figures", "routeviz.report",
                                "routeviz.interventions", "routeviz.cli"),
             "routeviz.capture": ("routeviz.metrics", "routeviz.analysis", "routeviz.figures",
                                  "routeviz.report", "routeviz.cli"),
             "routeviz.metrics": ("routeviz.figures", "routeviz.report", "routeviz.cli",
                                  "routeviz.capture")}
    broken = {}
    for name, targets in graph.items():
        for layer, forbidden in rules.items():
            if name == layer or name.startswith(layer + "."):
                bad = sorted(t for t in targets if t.startswith(forbidden))
                if bad:
                    broken[name] = bad
    assert broken == {}


def documented_names() -> list[str]:
    names = set()
    for doc in (ROOT / "README.md", ROOT / "docs" / "architecture.md"):
        names |= set(re.findall(r"\brouteviz(?:\.[A-Za-z_][A-Za-z0-9_]*)+", doc.read_text()))
    return sorted(n for n in names if n not in NOT_MODULES)


def resolve(dotted: str):
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_the_docs_name_many_paths():
    assert len(documented_names()) > 30


@pytest.mark.parametrize("name", documented_names())
def test_every_documented_name_imports(name):
    assert resolve(name) is not None


@pytest.mark.parametrize("old,new", [
    ("routeviz.spark", "routeviz.store.spark"), ("routeviz.sites", "routeviz.capture.sites"),
    ("routeviz.record", "routeviz.runs.record"),
    ("routeviz.explain", "routeviz.interventions.explain"),
    ("routeviz.adapters.hf_topk", "routeviz.capture.adapters.hf_topk"),
    ("routeviz.schema", "routeviz.store.schema")])
def test_paths_from_before_the_packages_are_the_same_modules(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_the_top_level_api_is_functions_not_modules():
    import routeviz

    for name in ("trace", "probe", "intervene", "open_store", "register"):
        assert callable(getattr(routeviz, name)), name


def test_the_architecture_page_names_every_package_and_the_readme_links_it():
    page = (ROOT / "docs" / "architecture.md").read_text()
    packages = sorted(str(init.parent.relative_to(ROOT)) for init in CORE.rglob("__init__.py"))
    assert len(packages) >= 10
    assert [p for p in packages if f"`{p}/`" not in page and f"{p.split('/')[-1]}/" not in page] \
        == []
    assert "(docs/architecture.md)" in (ROOT / "README.md").read_text()
