"""Record what the model predicted, beside its routing, so `routeviz diff` can say how much an
intervention (or another checkpoint) changed the output.

Stored in the `outputs` table (schema.OUTPUTS): for a text model, per token, the
log-probabilities of its next-token distribution; for an image model, per example (token
-1), the log-probabilities of its classes; float16 either way. Read from the `logits` field
of the model's return value (transformers `*ForCausalLM`, the sample models); a model
whose output has none (an encoder without a head) records nothing.

Compact by a budget rather than by approximation: a run records outputs until it holds
`budget` values (default 2^22, ~8 MB before compression: ~2000 tokens of a 2048-token
vocabulary, ~130 of a 32000-token one), whole batches only, so a long dataset trace stays
small and the few-input runs that interventions compare are recorded in full.
"""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import torch

from routeviz.capture.hooks import hooks
from routeviz.capture.rows import token_positions
from routeviz.store import schema

OUTPUT_BUDGET = 1 << 22  # float16 values recorded per run at most


def model_logits(output):
    """The `logits` tensor of a model's return value ([b, s, v] or [b, c]), or None."""
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, dict):
        logits = output.get("logits")
    return logits if isinstance(logits, torch.Tensor) and logits.dim() in (2, 3) else None


def output_rows(examples, logprobs: np.ndarray, mask) -> pa.Table:
    """Rows of the outputs table: logprobs [b, s, v] per token (padding left out by `mask`
    [b, s]) or [b, c] per example."""
    examples = np.asarray(examples, dtype=np.int64)
    if logprobs.ndim == 2:
        keep = np.ones(len(examples), dtype=bool)
        token = np.full(len(examples), -1, dtype=np.int32)
        example, values = examples, logprobs
    else:
        b, s, _ = logprobs.shape
        pos = token_positions(None if mask is None else np.asarray(mask), b, s)
        keep = pos >= 0
        token = pos[keep]
        example = np.broadcast_to(examples[:, None], (b, s))[keep]
        values = logprobs[keep]
    width = values.shape[-1]
    offsets = pa.array(np.arange(0, values.size + 1, width, dtype=np.int32))
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float16).reshape(-1), pa.float16())
    return pa.table({"example": pa.array(example, pa.int64()),
                     "token": pa.array(token, pa.int32()),
                     "logprobs": pa.ListArray.from_arrays(offsets, flat)},
                    schema=schema.OUTPUTS)


class OutputRecorder:
    """Captures the model's logits on every forward in the block run by the thread that
    entered it (a shared model may run elsewhere meanwhile); `write` hands the last batch's
    log-probabilities to a trace's writer while the budget lasts.

        with OutputRecorder(model) as outputs:
            ... model(**inputs) ...
            outputs.write(tracer.writer, example_ids, attention_mask)
    """

    def __init__(self, model, budget: int | None = OUTPUT_BUDGET):
        self.model, self.budget = model, budget
        self.recorded = 0  # values recorded
        self.examples = 0  # examples whose outputs were recorded
        self.stopped = False  # the budget ran out: later batches were not recorded
        self._last = None
        self._hooks = None
        self._thread = None

    def __enter__(self):
        self._thread = threading.get_ident()
        self._hooks = hooks(self.model, fwd_hooks=[(self.model, self._capture)])
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)

    def _capture(self, module, inputs, output):
        if threading.get_ident() != self._thread:
            return
        logits = model_logits(output)
        self._last = None if logits is None else logits.detach()

    def write(self, writer, examples, mask=None) -> None:
        logits, self._last = self._last, None
        if logits is None or self.stopped or len(examples) != logits.shape[0]:
            return
        if logits.dim() == 3 and mask is not None:
            logits = logits[:, :mask.shape[1]]
        size = logits[..., 0].numel() * logits.shape[-1]
        if self.budget is not None and self.recorded + size > self.budget:
            self.stopped = True
            return
        self.recorded += size
        self.examples += len(examples)
        logprobs = torch.log_softmax(logits.float(), dim=-1).to(torch.float16).cpu().numpy()
        mask = None if mask is None else mask.detach().cpu().numpy()
        ids = list(examples)
        writer.put(lambda: (None, {"outputs": output_rows(ids, logprobs, mask)}))

    def note(self) -> str | None:
        if self.stopped:
            return (f"model outputs recorded for the first {self.examples} example(s) only "
                    f"(budget {self.budget} values)")
        return None
