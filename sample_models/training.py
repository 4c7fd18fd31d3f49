"""Training pieces the sample models share: the LR schedule, one optimizer step, and
emptying a probe series before a retraining writes it again."""

from __future__ import annotations

import math

import torch


def warmup_cosine(opt, warmup: int, steps: int):
    """Linear warm-up for `warmup` steps, then cosine decay to 0 at `steps`."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps)))


def step(model, opt, sched, loss, max_grad_norm: float = 1.0) -> None:
    """Backward, clip the gradient norm, update, advance the schedule."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()
    sched.step()


def start_series(store, series: str) -> None:
    """Empty `series` in the probe store `store` (a retraining replaces the whole series,
    not only the steps it probes again); other runs in the store are kept."""
    from pathlib import Path

    from routeviz.runs.probe import series_runs
    from routeviz.store import open_store

    if not (Path(store) / "runs").is_dir():
        return
    handle = open_store(store)
    try:
        for run in series_runs(handle, series)["run"]:
            handle.delete_run(run)
    finally:
        handle.close()
