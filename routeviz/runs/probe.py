"""Routing over training: trace a fixed probe set every N steps, one run per step, grouped
as a *series* in one store.

    for step in range(1, steps + 1):
        train_one_step(model)
        routeviz.probe(model, probe_batches, "routes/", "my-moe", every=50, step=step)

    trainer = Trainer(..., callbacks=[RouteProbeCallback(probe_batches, "routes/", "my-moe",
                                                          every=50)])

Each probe writes the run `f"{series}-step{step:06d}"` whose `runs.config` holds
`{"series": series, "step": step, "checkpoint": path or None}`; `series_runs(store, series)`
lists a series' runs ordered by step. During a probe the model is in eval mode under
`torch.no_grad()` with the RNG state forked, so a training run with probes is the same
training run as one without; every module's train/eval mode is restored afterwards.

A probe set is one of:
- a list of batch dicts: `{"inputs": tensor or dict of tensors, "examples": [ids],
  "tokens": [[str]], "tags": [{name: value or [value per token]}], "meta": [{...}]}`
  (all but "inputs" optional): the model is called as `model(**inputs)` or `model(inputs)`;
- a list of `routeviz.inputs.Item` (or `Encoded` batches) when `model` is a
  `routeviz.models.ModelRunner`: encoded by the runner, run by `runner.predict`;
- a callable `probe(tracer)` that runs the model itself inside `tracer.batch(...)` blocks.
Use the same probe set, in the same order, at every step: example ids then match across
steps, which is what saturation and expert-identity metrics compare.
"""

from __future__ import annotations

import functools
import weakref
from contextlib import contextmanager

import torch

from routeviz.capture.trace import trace
from routeviz.errors import RoutevizError
from routeviz.store import schema
from routeviz.store import series as _listing

PROBE_BATCH = 8  # examples per forward when a probe set of Items is encoded by a runner
_calls: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {series: calls}


def run_name(series: str, step: int) -> str:
    """The run a probe at `step` writes: `<series>-step<step, 6 digits>`."""
    if int(step) < 0:
        raise RoutevizError(f"probe step must be >= 0, got {step}")
    return schema.check_run_name(f"{series}-step{int(step):06d}")


def probe(model, probe, store, series: str, every: int = 1, step: int | None = None, *,
          checkpoint=None, config=None, weight_dtype: str = "float32",
          overwrite: bool = True, include=None, model_name=None) -> str | None:
    """Trace `probe` through `model` into `store` as one run of `series` if `step` is a
    multiple of `every`; return the run name, or None when this step is not probed.

    Call it after each optimizer step with `step` = updates done so far (or 0 before
    training); step=None counts this model's calls for `series` (1, 2, ...). `checkpoint`
    (a path saved at this step) and `config` (any JSON-able dict) go into the run's config.
    overwrite: replace a run of the same step already in the store (a restarted training).
    """
    if every < 1:
        raise RoutevizError(f"probe every must be >= 1, got {every}")
    module = getattr(model, "module", model) if _is_runner(model) else model
    if step is None:
        counts = _calls.setdefault(module, {})
        counts[series] = step = counts.get(series, 0) + 1
    if step % every:
        return None
    run = run_name(series, step)
    run_config = dict(model.trace_config()) if _is_runner(model) else {}
    run_config.update(config or {})
    run_config.update(series=series, step=int(step),
                      checkpoint=None if checkpoint is None else str(checkpoint))
    name = model_name or getattr(model, "name", None) or type(module).__name__
    with _probing(module), trace(module, store, run, include=include, overwrite=overwrite,
                                 model_name=name, config=run_config,
                                 weight_dtype=weight_dtype, distributed=False) as tracer:
        if callable(probe):
            probe(tracer)
        elif _is_runner(model):
            _run_items(model, list(probe), tracer)
        else:
            _run_batches(module, list(probe), tracer)
    return run


def series_runs(store, series: str):
    """The runs of `series` in `store` (a Store or a path), ordered by step; empty when the
    store has no such series (the one listing: `routeviz.store.series`)."""
    return _listing.series_runs(store, series, missing="empty")


series_names = _listing.series_names


@contextmanager
def _probing(module: torch.nn.Module):
    """Eval mode, no_grad and a forked RNG for the probe; each module's mode restored."""
    modes = [(m, m.training) for m in module.modules()]
    devices = sorted({p.device.index or 0 for p in module.parameters() if p.is_cuda})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        module.eval()
        try:
            yield
        finally:
            for m, training in modes:
                m.training = training


def _is_runner(model) -> bool:
    from routeviz.runs.models import ModelRunner

    return isinstance(model, ModelRunner)


def _run_items(runner, items, tracer) -> None:
    from routeviz.runs.models import Encoded

    if items and all(isinstance(i, Encoded) for i in items):
        batches = items
    else:
        batches = [runner.encode(items[i:i + PROBE_BATCH])
                   for i in range(0, len(items), PROBE_BATCH)]
    first = 0
    for encoded in batches:
        ids = list(range(first, first + len(encoded.tokens)))
        first += len(ids)
        inputs = encoded.inputs
        mask = inputs.get("attention_mask") if isinstance(inputs, dict) else None
        with tracer.batch(examples=ids, tokens=encoded.tokens, tags=encoded.tags,
                          meta=encoded.meta, attention_mask=mask) as batch:
            batch.predict(runner.predict(encoded))


def _run_batches(module, batches, tracer) -> None:
    for i, entry in enumerate(batches):
        if not isinstance(entry, dict) or "inputs" not in entry:
            raise RoutevizError(f"probe batch {i} is not a dict with 'inputs' (see routeviz.probe)")
        inputs = entry["inputs"]
        with tracer.batch(examples=entry.get("examples"), tokens=entry.get("tokens"),
                          tags=entry.get("tags"), meta=entry.get("meta"),
                          attention_mask=entry.get("attention_mask")):
            module(**inputs) if isinstance(inputs, dict) else module(inputs)


@functools.cache
def _callback_class():
    from transformers import TrainerCallback

    class RouteProbeCallback(TrainerCallback):
        """`routeviz.probe` from a transformers `Trainer`: traces `probe` into `store` as
        `series` every `every` optimizer steps (`state.global_step`), and once more at the
        end of training if the last step was not a multiple of `every`. The checkpoint the
        Trainer saves at a probed step is recorded in the run's config."""

        def __init__(self, probe, store, series: str, every: int = 100, **options):
            self.probe, self.store, self.series, self.every = probe, store, series, every
            self.options = options  # passed on to routeviz.probe (config, weight_dtype, ...)
            self.last_step = None

        def _trace(self, args, state, control, model, every):
            if model is None or not state.is_world_process_zero:
                return
            checkpoint = None
            if control.should_save and args.output_dir:
                checkpoint = f"{args.output_dir}/checkpoint-{state.global_step}"
            if probe(model, self.probe, self.store, self.series, every=every,
                     step=state.global_step, checkpoint=checkpoint, **self.options):
                self.last_step = state.global_step

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self._trace(args, state, control, model, self.every)

        def on_train_end(self, args, state, control, model=None, **kwargs):
            if self.last_step != state.global_step:
                self._trace(args, state, control, model, 1)

    return RouteProbeCallback


def __getattr__(name):  # the callback class imports transformers only when asked for
    if name == "RouteProbeCallback":
        return _callback_class()
    raise AttributeError(f"module 'routeviz.runs.probe' has no attribute {name!r}")
