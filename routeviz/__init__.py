"""routeviz: see where every token went in a conditional-computation model.

    with routeviz.trace(model, store="routes/", run="my-run") as tracer:
        with tracer.batch(examples=ids, tokens=token_strings, tags=tags):
            model(input_ids)
    store = routeviz.open_store("routes/")
"""

__version__ = "0.1.0"

from routeviz.errors import RoutevizError  # noqa: E402
from routeviz.intervene import intervene  # noqa: E402
from routeviz.probe import probe  # noqa: E402
from routeviz.registry import (AdapterSpec, register, register_block, register_exit,  # noqa: E402
                               register_linear_gate, register_matcher, register_selection)
from routeviz.schema import RouteEvent  # noqa: E402
from routeviz.store import Store, open_store  # noqa: E402
from routeviz.trace import trace  # noqa: E402

__all__ = ["AdapterSpec", "RouteEvent", "RoutevizError", "Store", "intervene", "open_store", "probe",
           "register",
           "register_block", "register_exit", "register_linear_gate", "register_matcher",
           "register_selection", "trace", "__version__"]


def __getattr__(name):  # routeviz.metrics etc. import lazily: they pull in heavier deps
    if name in ("metrics", "figures", "report", "models", "record"):
        import importlib

        return importlib.import_module(f"routeviz.{name}")
    raise AttributeError(f"module 'routeviz' has no attribute {name!r}")
