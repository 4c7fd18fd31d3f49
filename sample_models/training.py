"""Training pieces the sample models share: the LR schedule and one optimizer step."""

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
