"""The capture layer: from a forward pass to rows.

`trace` (the context manager users open), `sites` and `registry` (which modules route,
found by adapter lookup on the module class), `adapters/` (the generic adapters: one small
function per router shape, `(module, inputs, output) -> RouteEvent`), `hooks` (forward
hooks that only observe), `transfer` (one device-to-host copy per batch), `rows` (events
to Arrow columns), `exits` (resolving per-token exit layers), `outputs` (the model's own
predictions), `distributed` (ranks writing one run). It writes through `routeviz.store`.
"""
