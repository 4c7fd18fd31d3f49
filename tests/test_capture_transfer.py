"""routeviz/capture/transfer.py: events kept on their device, then one copy to the host.

On this CPU-only suite the host path is what runs (a device buffer needs a GPU; the CUDA
tracer tests cover it); what is checked is the dtypes, the SKIP fill for invalid entries,
NaN for a missing weight, and that copies are safe from later in-place edits.
"""

import numpy as np
import torch

from routeviz.capture.transfer import detach_event, keep_site_input, pack_events, pack_hidden
from routeviz.store.schema import SKIP, RouteEvent


def test_detach_event_copies_tensors_and_drops_logits_unless_kept():
    choice, weight = torch.tensor([[1, 2]]), torch.tensor([[0.75, 0.25]])
    logits = torch.tensor([[0.5, 1.0, 2.0]])
    event = RouteEvent("expert", choice=choice, weight=weight, logits=logits, layer=3)
    kept = detach_event(event)
    choice[0, 0] = 9  # the model edits its tensors in place after the hook
    weight.zero_()
    logits.zero_()
    assert kept.choice.tolist() == [[1, 2]] and kept.weight.tolist() == [[0.75, 0.25]]
    assert kept.logits.tolist() == [[0.5, 1.0, 2.0]]
    assert kept.layer == 3 and kept.kind == "expert"
    assert detach_event(event, logits=False).logits is None


def test_pack_events_gives_int32_choices_float32_weights_and_the_mask():
    events = [(None, RouteEvent("expert", choice=torch.tensor([[3, 1]], dtype=torch.int64),
                                weight=torch.tensor([[0.6, 0.4]], dtype=torch.float64))),
              (None, RouteEvent("keep", choice=torch.tensor([1, 0]), weight=None))]
    mask = torch.tensor([[1, 1, 0]])
    out, host_mask = pack_events(events, mask, with_logits=False)
    (c0, w0, t0, l0), (c1, w1, _, _) = out
    assert c0.dtype == np.int32 and c0.tolist() == [[3, 1]]
    assert w0.dtype == np.float32 and w0.tolist() == [[np.float32(0.6), np.float32(0.4)]]
    assert t0 is None and l0 is None
    assert c1.tolist() == [1, 0] and np.isnan(w1).all() and w1.shape == (2,)  # no weight: NaN
    assert host_mask.tolist() == [[1, 1, 0]]
    assert pack_events(events, None, with_logits=False)[1] is None


def test_invalid_entries_become_skip_and_token_index_and_logits_travel():
    valid = torch.tensor([[True, False], [False, True]])
    event = RouteEvent("expert", choice=torch.tensor([[0, 1], [2, 3]]),
                       weight=torch.ones(2, 2), valid=valid,
                       token_index=torch.tensor([[0, 4]]), logits=torch.full((2, 4), 0.5))
    (choice, _, token_index, logits), = pack_events([(None, event)], None, with_logits=True)[0]
    assert choice.tolist() == [[0, SKIP], [SKIP, 3]]
    assert token_index.dtype == np.int32 and token_index.tolist() == [[0, 4]]
    assert logits.shape == (2, 4) and (logits == 0.5).all()
    # logits are left behind when the trace does not record them
    assert pack_events([(None, event)], None, with_logits=False)[0][0][3] is None


def test_bfloat16_weights_reach_the_host_as_float32():
    event = RouteEvent("expert", choice=torch.tensor([[1]]),
                       weight=torch.tensor([[0.5]], dtype=torch.bfloat16))
    (_, weight, _, _), = pack_events([(None, event)], None, with_logits=False)[0]
    assert weight.dtype == np.float32 and weight.tolist() == [[0.5]]


def test_site_input_is_the_first_float_argument_copied_once_per_tensor():
    hidden = {}
    state = torch.tensor([[1.5, -2.0]])
    keep_site_input(hidden, [0, 1], (torch.tensor([3]), state, torch.zeros(1)))
    assert set(hidden) == {0, 1} and hidden[0] is hidden[1]  # one copy for both events
    assert hidden[0].dtype == torch.float16
    state.zero_()  # an in-place edit after the hook does not reach the kept copy
    keep_site_input(hidden, [2], (torch.tensor([1, 2]),))  # no floating-point input: nothing
    assert set(hidden) == {0, 1}
    hidden[3] = torch.tensor([[0.25]], dtype=torch.float16)
    host = pack_hidden(hidden)
    assert host[0].tolist() == [[1.5, -2.0]] and host[1].tolist() == [[1.5, -2.0]]
    assert host[3].tolist() == [[0.25]] and host[0].dtype == np.float16
    assert pack_hidden({}) == {}
