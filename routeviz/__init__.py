"""routeviz: see where every token went in a conditional-computation model.

    with routeviz.trace(model, store="routes/", run="my-run") as tracer:
        with tracer.batch(examples=ids, tokens=token_strings, tags=tags):
            model(input_ids)
    store = routeviz.open_store("routes/")
"""

__version__ = "0.1.0"

from routeviz.errors import RoutevizError  # noqa: E402
from routeviz.registry import register, register_matcher  # noqa: E402
from routeviz.schema import RouteEvent  # noqa: E402
from routeviz.store import Store, open_store  # noqa: E402
from routeviz.trace import trace  # noqa: E402

__all__ = ["RouteEvent", "RoutevizError", "Store", "open_store", "register",
           "register_matcher", "trace", "__version__"]


def __getattr__(name):  # routeviz.metrics etc. import lazily: they pull in heavier deps
    if name in ("metrics", "figures", "report", "models", "record"):
        import importlib

        return importlib.import_module(f"routeviz.{name}")
    raise AttributeError(f"module 'routeviz' has no attribute {name!r}")
