"""routeviz.capture.hooks.hooks: every hook it registers is gone after the block, even after an error."""

import pytest
import torch
from torch import nn

from routeviz.capture.hooks import hooks


def _model():
    return nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 2))


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_hooks_fire_by_name_or_module_then_are_removed():
    model = _model()
    seen = []
    fwd = [("0", lambda m, i, o: seen.append(("out", tuple(o.shape)))),
           (model[2], lambda m, i, o: seen.append(("last", tuple(o.shape))))]
    pre = [(model, lambda m, args, kwargs: seen.append(("pre", tuple(args[0].shape))))]
    with hooks(model, fwd_hooks=fwd, pre_hooks=pre) as handles:
        assert len(handles) == 3 and _hook_count(model) == 3
        model(torch.zeros(4, 3))
    assert seen == [("pre", (4, 3)), ("out", (4, 3)), ("last", (4, 2))]
    assert _hook_count(model) == 0
    model(torch.zeros(1, 3))
    assert len(seen) == 3  # nothing fires after the block


def test_an_error_in_the_block_or_in_registering_leaves_no_hook():
    model = _model()
    with pytest.raises(RuntimeError, match="inside"), hooks(model, fwd_hooks=[("0", print)]):
        assert _hook_count(model) == 1
        raise RuntimeError("inside")
    assert _hook_count(model) == 0
    with pytest.raises(AttributeError), hooks(model, fwd_hooks=[("0", print), ("nope", print)]):
        pass
    assert _hook_count(model) == 0  # the first one, registered before the bad name, is gone
