"""Adapters from routing modules to RouteEvents, one module per family.

Each module here has a `register()` that calls `routeviz.register(...)` for its classes;
`routeviz.registry` calls them on first lookup (no import-time side effects).
"""

BUILTIN = [
    "tracers.hf_topk",
]
