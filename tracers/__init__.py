"""Family-specific and sample-model adapters: one module per family, each with
`register(registry)` that registers its adapters on the `routeviz.registry.Registry` it is
given. Each is listed in pyproject.toml under the `routeviz.tracers` entry-point group; the
core finds them there (it never imports this package). Generic adapters (transformers top-k
routers, linear gates, fused experts ...) are in the core, `routeviz.adapters`.
"""
