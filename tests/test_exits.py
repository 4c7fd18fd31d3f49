"""routeviz/exits.py: exit heads get their layer as choice; a unit exits at its first head."""

import torch
from torch import nn

from routeviz.capture.adapters.contract import AdapterSpec
from routeviz.capture.exits import resolve_exits
from routeviz.capture.sites import Site
from routeviz.store.schema import RouteEvent


def head(layer, first_exit=True):
    adapter = AdapterSpec(lambda module, inputs, output: None, first_exit=first_exit)
    return Site(f"blocks.{layer}.exit", nn.Identity(), adapter, layer)


def exit_event(valid):  # [b=1, s=4, k=1]: True where the head's confidence passed
    valid = torch.tensor(valid).reshape(1, 4, 1)
    return RouteEvent("exit", torch.full((1, 4, 1), -1), valid=valid)


def test_each_unit_keeps_only_its_lowest_layer_exit_in_any_event_order():
    deep, shallow = head(5), head(2)
    events = [(deep, exit_event([True, True, False, True])),
              (shallow, exit_event([True, False, False, False]))]
    out = resolve_exits(events)
    (_, at_deep), (_, at_shallow) = out
    assert at_shallow.choice.flatten().tolist() == [2, 2, 2, 2] and at_shallow.layer == 2
    assert at_shallow.valid.flatten().tolist() == [True, False, False, False]
    assert at_deep.choice.flatten().tolist() == [5, 5, 5, 5] and at_deep.layer == 5
    assert at_deep.valid.flatten().tolist() == [False, True, False, True]  # unit 0 left at 2


def test_other_events_pass_through_untouched():
    router = (head(1, first_exit=False), RouteEvent("expert", torch.zeros(4, 2, dtype=torch.long)))
    assert resolve_exits([router]) == [router]
    plain_exit = (head(3, first_exit=False), exit_event([True] * 4))
    out = resolve_exits([router, plain_exit, (head(4), exit_event([True] * 4))])
    assert out[0] is router and out[1] is plain_exit
    assert out[2][1].choice.flatten().tolist() == [4] * 4
