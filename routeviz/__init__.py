"""routeviz: see where every token went in a conditional-computation model.

    with routeviz.trace(model, store="routes/", run="my-run") as tracer:
        with tracer.batch(examples=ids, tokens=token_strings, tags=tags):
            model(input_ids)
    store = routeviz.open_store("routes/")

The packages follow the data flow (docs/architecture.md): `capture` (hooks to rows),
`store` (Parquet and DuckDB), `runs` (models and inputs to stored runs), `interventions`
(ablate, force, explain), `importers` (routing other engines recorded), `metrics` and
`analysis` (numbers and views over a run), `figures` and `report` (pictures and files),
`cli` (the `routeviz` command).
"""

from routeviz.version import __version__  # noqa: E402

import importlib  # noqa: E402
import importlib.abc  # noqa: E402
import importlib.util  # noqa: E402
import sys  # noqa: E402

# Module paths from before the core was grouped into packages: `import routeviz.spark`
# still gives `routeviz.store.spark` (the same module object, not a copy). `trace`, `probe`
# and `intervene` are not here: at the top they name the functions.
MOVED = {
    "hooks": "capture.hooks", "sites": "capture.sites", "registry": "capture.registry",
    "rows": "capture.rows", "transfer": "capture.transfer", "distributed": "capture.distributed",
    "outputs": "capture.outputs", "exits": "capture.exits", "adapters": "capture.adapters",
    "schema": "store.schema", "swap": "store.swap", "query": "store.query",
    "spark": "store.spark", "writer": "store.writer", "runwriter": "store.runwriter",
    "embeddings": "analysis.embeddings", "contexts": "analysis.contexts", "find": "analysis.find",
    "whatif": "interventions.whatif", "explain": "interventions.explain",
    "attribution": "interventions.attribution",
    "record": "runs.record", "inputs": "runs.inputs", "uploads": "runs.uploads",
    "windows": "runs.windows", "models": "runs.models", "series": "cli.series",
}


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `routeviz.<old>` (and `routeviz.<old>.<sub>`) to the module's new home."""

    @staticmethod
    def _target(name: str) -> str | None:
        parts = name.split(".")
        if len(parts) < 2 or parts[0] != "routeviz" or parts[1] not in MOVED:
            return None
        return ".".join(["routeviz", MOVED[parts[1]], *parts[2:]])

    def find_spec(self, name, path=None, target=None):
        new = self._target(name)
        return importlib.util.spec_from_loader(name, self) if new else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        # the import system reads sys.modules back after this, so the name gets the real module
        sys.modules[module.__name__] = importlib.import_module(self._target(module.__name__))


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedFinder())  # before the path finder: no second copy

from routeviz.capture.registry import (  # noqa: E402
    AdapterSpec,
    register,
    register_block,
    register_exit,
    register_linear_gate,
    register_matcher,
    register_selection,
)
from routeviz.capture.trace import trace  # noqa: E402
from routeviz.errors import RoutevizError  # noqa: E402
from routeviz.interventions.intervene import intervene  # noqa: E402
from routeviz.runs.probe import probe  # noqa: E402
from routeviz.store import Store, open_store  # noqa: E402
from routeviz.store.schema import RouteEvent  # noqa: E402

__all__ = ["AdapterSpec", "RouteEvent", "RoutevizError", "Store", "intervene", "open_store", "probe",
           "register", "register_block", "register_exit", "register_linear_gate",
           "register_matcher", "register_selection", "trace", "__version__"]


def __getattr__(name):  # routeviz.metrics etc. import lazily: they pull in heavier deps
    if name in ("metrics", "figures", "report", "importers", "analysis", "runs", "cli"):
        return importlib.import_module(f"routeviz.{name}")
    if name in MOVED:
        return importlib.import_module(f"routeviz.{MOVED[name]}")
    raise AttributeError(f"module 'routeviz' has no attribute {name!r}")
