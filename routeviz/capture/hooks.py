"""The hook lifecycle: register a list of hooks, remove every one of them on the way out.

    with hooks(model, fwd_hooks=[("layers.0.gate", fn)], pre_hooks=[(model, pre_fn)]):
        model(x)

The shape of TransformerLens' `HookedRootModule.hooks()`: targets are modules or names of
submodules; the handles are owned by the block and removed in `finally`, so no hook
outlives it, even when registering one of them or the forward pass raises. `SiteHooks`
keeps the hooks of a traced model registered across traces (one at a time attached).
"""

from __future__ import annotations

import threading
from contextlib import ExitStack, contextmanager

import torch
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


class SiteHooks:
    """Hooks on a model's routing sites and its root, registered until `close`, calling the
    tracer that is attached (`attach`/`detach`) and doing nothing between traces.

    A trace makes its own and closes it at its end. `routeviz.record.WarmRunner` keeps one
    across traces, so that a page tracing one input at a time pays no registration: then
    one trace at a time uses it (`attach` waits for the previous one to detach), and only
    forwards run on the attaching thread are recorded (another thread may run the model
    untraced meanwhile).

    target: an object with `on_root_pre(args, kwargs)`, `on_site(site, module, inputs,
    output)` and `on_root_post()` (a `routeviz.trace.Tracer`).
    """

    def __init__(self, model: nn.Module, sites: list):
        self.model, self.sites = model, sites
        self.target = None
        self._thread: int | None = None  # set: hooks answer forwards of this thread only
        self._lock = threading.Lock()
        self._registered = ExitStack()
        self._registered.enter_context(hooks(
            model,
            pre_hooks=[(model, outside_graphs(self._root_pre))]
            + [(s.module, self._site_hook(s)) for s in sites if s.hook == "pre"],
            fwd_hooks=[(model, outside_graphs(self._root_post))]
            + [(s.module, self._site_hook(s)) for s in sites if s.hook != "pre"]))

    def attach(self, target, this_thread_only: bool = False) -> None:
        self._lock.acquire()
        for site in self.sites:
            site.fired = 0
        self._thread = threading.get_ident() if this_thread_only else None
        self.target = target

    def detach(self) -> None:
        if self.target is not None:
            self.target = self._thread = None
            self._lock.release()

    def close(self) -> None:
        """Remove every hook (a trace attached now is detached first)."""
        self.detach()
        self._registered.close()

    # the hooks: on the forward path, keep them cheap
    def _current(self):
        target = self.target
        if target is None or (self._thread is not None and threading.get_ident() != self._thread):
            return None
        return target

    def _site_hook(self, site):
        def hook(module, inputs, output):
            target = self._current()
            if target is not None:
                target.on_site(site, module, inputs, output)
        return outside_graphs(hook)

    def _root_pre(self, module, args, kwargs):
        target = self._current()
        if target is not None:
            target.on_root_pre(args, kwargs)

    def _root_post(self, module, inputs, output):
        target = self._current()
        if target is not None:
            target.on_root_post()


def outside_graphs(hook):
    """`hook`, run as plain Python even inside a torch.compile'd model (a graph break there).

    Traced into a graph, the hooks would guard on the tracer's batch object and compile the
    model again for every batch. `torch.compiler.disable` alone costs in eager mode too: its
    wrapper makes every frame the hook runs go through dynamo's frame callback (~5x slower
    hooks), so it is used only while dynamo traces (`is_compiling()` is true there).
    """
    disabled = torch.compiler.disable(hook)

    def run(*args):
        if torch.compiler.is_compiling():
            return disabled(*args)
        return hook(*args)

    return run
