"""Run a model over items under `routeviz.trace` and store the run: the loop the CLI, the
app and the dataset tracer share. `WarmRunner` keeps a runner's routing hooks registered
between recordings (the app's cached models), so one input costs its forward and its write.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from routeviz.capture.hooks import SiteHooks
from routeviz.capture.outputs import OUTPUT_BUDGET, OutputRecorder
from routeviz.capture.trace import trace
from routeviz.errors import RoutevizError


@dataclass
class RecordResult:
    run: str
    n_examples: int
    n_batches: int
    rows: int
    notes: list = field(default_factory=list)
    predictions: list = field(default_factory=list)
    # seconds: open (the run opened, hooks attached), encode, forward (the model's calls,
    # hooks included), store (hand-offs, rows written, run closed), total; logged to the
    # `routeviz.record` logger at INFO (benchmarks/app_response.py reads them)
    timings: dict = field(default_factory=dict)


class WarmRunner:
    """A model runner (routeviz.models) with its routing sites found and hooked once, kept
    until `close`: `record(warm, ...)` traces through those hooks instead of finding and
    registering them per call. Between recordings the hooks do nothing; one recording at a
    time uses them (others wait), and only forwards on the recording's thread are recorded.
    Everything else is the runner's (`warm.name`, `warm.encode(...)`, `warm.module`)."""

    def __init__(self, runner):
        from routeviz.capture.sites import find_sites

        self.runner = runner
        self.hooks = SiteHooks(runner.module, find_sites(runner.module))

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def close(self) -> None:
        self.hooks.close()


def record(runner, items, store, run, *, batch_size: int = 8, overwrite: bool = False,
           append: bool = False, progress=None, logits: bool = False,
           example_offset: int = 0, write_run: bool = True, config=None,
           hidden_states: bool = False, outputs: bool = True) -> RecordResult:
    """Trace `runner` over `items` into `store` as `run`.

    runner: a routeviz.models runner, or a WarmRunner (its hooks kept between calls);
    progress: optional callable(done, total) called after each batch; hidden_states: also
    record each routing site's input (routeviz.trace); outputs: also record the model's
    output distribution while the run is small (routeviz.outputs). A text input's full text
    is kept in examples.text, so the example can be run again (e.g. with an intervention).
    """
    items = list(items)
    if not items:
        raise RoutevizError("nothing to trace: no inputs given")
    if batch_size < 1:
        raise RoutevizError("--batch-size must be at least 1")
    wrong = [i for i in items if i.modality != runner.modality]
    if wrong:
        raise RoutevizError(
            f"{runner.name} takes {runner.modality} input, but {wrong[0].source or 'an input'} "
            f"is {wrong[0].modality}")
    result = RecordResult(run=run, n_examples=0, n_batches=0, rows=0)
    timings = result.timings = dict.fromkeys(("open", "encode", "forward", "store"), 0.0)
    started = clock = time.perf_counter()
    run_config = {**runner.trace_config(), **(config or {})}
    with trace(runner.module, store, run, overwrite=overwrite, append=append, logits=logits,
               model_name=runner.name, config=run_config, write_run=write_run,
               hidden_states=hidden_states,
               hooks=runner.hooks if isinstance(runner, WarmRunner) else None) as tracer, \
            OutputRecorder(runner.module, OUTPUT_BUDGET if outputs else 0) as recorded:
        start = example_offset + tracer.next_example
        timings["open"], clock = _lap(clock)
        for begin in range(0, len(items), batch_size):
            chunk = items[begin:begin + batch_size]
            encoded = runner.encode(chunk)
            encoding, clock = _lap(clock)
            timings["encode"] += encoding
            result.notes.extend(encoded.notes)
            ids = list(range(start + begin, start + begin + len(chunk)))
            mask = encoded.inputs.get("attention_mask") if isinstance(encoded.inputs, dict) else None
            for meta, item in zip(encoded.meta, chunk):
                if item.text is not None:
                    meta.setdefault("text", item.text)
            with tracer.batch(examples=ids, tokens=encoded.tokens, tags=encoded.tags,
                              meta=encoded.meta, attention_mask=mask) as batch:
                predictions = runner.predict(encoded)
                batch.predict(predictions)
                forward, clock = _lap(clock)
                timings["forward"] += forward
            recorded.write(tracer.writer, ids, mask)
            result.predictions.extend(predictions)
            result.n_batches += 1
            result.n_examples += len(chunk)
            if progress is not None:
                progress(result.n_examples, len(items))
            handed, clock = _lap(clock)  # the batch's hand-off, outputs, progress
            timings["store"] += handed
    if outputs and recorded.note():
        result.notes.append(recorded.note())
    result.rows = tracer.writer.rows_written
    closing, _ = _lap(clock)
    timings["store"] += closing
    timings["total"] = time.perf_counter() - started
    logging.getLogger(__name__).info("record %s", json.dumps(
        {"run": run, "model": runner.name, "examples": result.n_examples, **timings}))
    return result


def _lap(since: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now - since, now
