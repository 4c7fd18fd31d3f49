"""The hook lifecycle: register a list of hooks, remove every one of them on the way out.

    with hooks(model, fwd_hooks=[("layers.0.gate", fn)], pre_hooks=[(model, pre_fn)]):
        model(x)

The shape of TransformerLens' `HookedRootModule.hooks()`: targets are modules or names of
submodules; the handles are owned by the block and removed in `finally`, so no hook
outlives it, even when registering one of them or the forward pass raises.
"""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


@contextmanager
def hooks(model: nn.Module, fwd_hooks=(), pre_hooks=()):
    """Register `fwd_hooks` and `pre_hooks`, yield the handles, remove them all at the end.

    fwd_hooks: (module or name, hook(module, inputs, output)) pairs, registered in order;
    pre_hooks: (module or name, hook(module, args, kwargs)) pairs, called before the
    module's forward with its keyword arguments.
    """
    handles: list = []
    try:
        for target, hook in pre_hooks:
            handles.append(_module(model, target).register_forward_pre_hook(hook, with_kwargs=True))
        for target, hook in fwd_hooks:
            handles.append(_module(model, target).register_forward_hook(hook))
        yield handles
    finally:
        for handle in handles:
            handle.remove()
        handles.clear()


def _module(model: nn.Module, target) -> nn.Module:
    return model.get_submodule(target) if isinstance(target, str) else target
