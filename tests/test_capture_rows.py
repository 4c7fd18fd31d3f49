"""routeviz/capture/rows.py: a finished batch (host arrays) expanded into table rows.

Events are packed by the real `pack_events` (host tensors), so the arrays are what a trace
hands the writer; every expected row is written out by hand.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from routeviz.capture.rows import expand_batch, hidden_rows, side_tables, token_positions
from routeviz.capture.trace import Batch
from routeviz.capture.transfer import pack_events
from routeviz.store import schema
from routeviz.store.schema import SKIP, RouteEvent

GATE = SimpleNamespace(name="blocks.2.gate", layer=2)  # a capture.sites.Site's two fields


def _expand(batch, mask=None, with_logits=False, hidden=None):
    packed = pack_events(batch.events, mask, with_logits)
    codes = list(range(len(batch.events)))
    return expand_batch(batch, packed, codes, with_logits, hidden)


def test_token_positions_number_real_tokens_and_mark_padding():
    assert token_positions(None, 2, 3).tolist() == [[0, 1, 2], [0, 1, 2]]
    left_and_right = np.array([[0, 0, 1, 1], [1, 1, 1, 0]])
    assert token_positions(left_and_right, 2, 4).tolist() == [[-1, -1, 0, 1], [0, 1, 2, -1]]
    # a mask shorter than the positions (a prepended CLS): positions are kept as they are
    assert token_positions(np.array([[0, 1]]), 1, 3).tolist() == [[0, 1, 2]]


def test_expert_rows_skip_padding_and_invalid_slots_and_keep_rank():
    choice = torch.tensor([[[1, 0], [2, 1], [3, 2]],
                           [[0, 1], [1, 2], [2, 3]]])  # [b, s, k]
    valid = torch.ones(2, 3, 2, dtype=torch.bool)
    valid[1, 2, 1] = False  # a slot dropped for capacity
    weight = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2) / 16
    event = RouteEvent("expert", choice=choice, weight=weight, valid=valid)
    batch = Batch(examples=[10, 11], events=[(GATE, event)])
    routes, _ = _expand(batch, mask=torch.tensor([[0, 1, 1], [1, 1, 1]]))  # ex 10 left-padded
    assert routes.example.tolist() == [10, 10, 10, 10, 11, 11, 11, 11, 11]
    assert routes.token.tolist() == [0, 0, 1, 1, 0, 0, 1, 1, 2]
    assert routes.choice.tolist() == [2, 1, 3, 2, 0, 1, 1, 2, 2]
    assert routes.rank.tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0]
    assert routes.weight.tolist() == [w / 16 for w in (2, 3, 4, 5, 6, 7, 8, 9, 10)]
    assert set(routes.layer.tolist()) == {2}
    assert set(routes.kind.tolist()) == {schema.KINDS.index("expert")}
    assert routes.segments == [(0, 9)]


def test_per_example_event_is_token_minus_one_and_its_own_segment():
    expert = RouteEvent("expert", choice=torch.tensor([[1], [2]]))  # [t, k], t = b * s
    halt = RouteEvent("exit", choice=torch.tensor([[3], [1]]), weight=torch.tensor([[.9], [.8]]),
                      per_example=True, layer=5)
    batch = Batch(examples=[0, 1], events=[(GATE, expert), (GATE, halt)])
    routes, _ = _expand(batch)
    assert routes.segments == [(0, 2), (2, 4)]
    assert routes.token.tolist() == [0, 0, -1, -1]
    assert routes.layer.tolist() == [2, 2, 5, 5]  # the event's layer wins over the site's
    assert routes.site.tolist() == [0, 0, 1, 1]
    assert routes.choice[2:].tolist() == [3, 1]
    assert np.isnan(routes.weight[:2]).all()  # no weight given: NaN, not 0
    assert routes.weight[2:].tolist() == pytest.approx([0.9, 0.8])


def test_token_index_maps_rows_to_original_positions():
    # a router that saw tokens 0, 2 and 3 of one example (the others were pruned before it)
    event = RouteEvent("expert", choice=torch.tensor([[[5], [6], [7]]]),
                       token_index=torch.tensor([[0, 2, 3]]))
    routes, _ = _expand(Batch(examples=[4], events=[(GATE, event)]))
    assert routes.token.tolist() == [0, 2, 3]
    assert routes.choice.tolist() == [5, 6, 7]


def test_rows_that_do_not_split_into_examples_warn_and_record_nothing():
    event = RouteEvent("expert", choice=torch.tensor([[1], [2], [3]]))  # 3 rows, 2 examples
    with pytest.warns(UserWarning, match="blocks.2.gate: 3 rows do not split into 2"):
        routes, tables = _expand(Batch(examples=[0, 1], events=[(GATE, event)]))
    assert routes is None
    assert tables["examples"].column("example").to_pylist() == [0, 1]


def test_side_tables_examples_tokens_spans_and_tags():
    batch = Batch(examples=[7, 8], tokens=[["Hello", "Ġworld"], ["[CLS]", "x"]],
                  tags=[{"lang": "py", "pos": ["N", None]}, None],
                  meta=[{"text": "Hello world", "source": "s" * 300, "label": 3},
                        {"text": "x", "offsets": [(0, 0), (0, 1)], "prediction": "cat"}])
    tables = side_tables(batch, mask=None)
    examples = tables["examples"].to_pylist()
    assert [e["n_tokens"] for e in examples] == [2, 2]
    assert examples[0]["source"] == "s" * 200 and examples[0]["label"] == "3"
    assert examples[1]["prediction"] == "cat" and examples[1]["modality"] == "text"
    tokens = tables["tokens"].to_pylist()
    assert [(t["example"], t["token"], t["text"]) for t in tokens] == [
        (7, 0, "Hello"), (7, 1, "Ġworld"), (8, 0, "[CLS]"), (8, 1, "x")]
    # found in the text (7), or the runner's offsets ((0, 0): not in the text) for 8
    assert [(t["char_start"], t["char_end"]) for t in tokens] == [
        (0, 5), (5, 11), (None, None), (0, 1)]
    tags = tables["tags"].to_pylist()  # a None per-token value and a None tags dict: no rows
    assert [(g["example"], g["token"], g["name"], g["value"]) for g in tags] == [
        (7, -1, "lang", "py"), (7, 0, "pos", "N")]


def test_side_tables_count_tokens_from_the_mask_without_token_strings():
    batch = Batch(examples=[0, 1], meta=[{"image": b"png"}, {}])
    tables = side_tables(batch, mask=np.array([[1, 1, 0], [1, 1, 1]]))
    assert tables["examples"].column("n_tokens").to_pylist() == [2, 3]
    assert tables["examples"].column("modality").to_pylist() == ["image", "text"]
    assert set(tables) == {"examples"}  # no tokens, no tags given: no such tables


def test_hidden_rows_line_up_with_class_token_and_decided_only_layouts():
    pos = np.array([[0, 1, -1]])  # [b, s]: the last position is padding
    choice = np.array([[[1], [SKIP], [2]]])  # token 1 not decided
    per_token = np.arange(3 * 2, dtype=np.float32).reshape(1, 3, 2)  # [b, s, d]
    rows = hidden_rows(per_token, choice, pos, np.array([9]), 1, "g")
    assert rows.column("token").to_pylist() == [0]
    assert rows.column("vector").to_pylist() == [[0.0, 1.0]]
    with_cls = np.arange(4 * 2, dtype=np.float32).reshape(1, 4, 2)  # CLS row first
    assert hidden_rows(with_cls, choice, pos, np.array([9]), 1, "g").column(
        "vector").to_pylist() == [[2.0, 3.0]]
    decided_only = np.array([[5.0, 6.0], [7.0, 8.0]], dtype=np.float32)  # one per decided row
    assert hidden_rows(decided_only, choice, pos, np.array([9]), 1, "g").column(
        "vector").to_pylist() == [[5.0, 6.0]]
    with pytest.warns(UserWarning, match="g: its input does not line up"):
        assert hidden_rows(np.zeros((5, 2)), choice, pos, np.array([9]), 1, "g") is None


@pytest.mark.parametrize("case", ["top2", "padded", "skips", "flat", "mixed-kinds"])
def test_events_of_one_shape_give_the_rows_of_the_loop(case, monkeypatch):
    """A batch whose events share one shape is expanded for all events at once
    (rows.uniform_routes); the rows, their order and segments equal the per-event loop's."""
    import routeviz.capture.rows as rows

    gen = torch.Generator().manual_seed(len(case))
    b, s, k, layers = 3, 5, 2, 4
    mask = None
    if case == "padded":
        mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    events = []
    for layer in range(layers):
        choice = torch.randint(0, 8, (b * s, k), generator=gen)
        weight = torch.rand(b * s, k, generator=gen)
        valid = None
        if case == "skips":
            valid = torch.rand(b * s, k, generator=gen) > 0.3
        if case == "flat":
            choice, weight = choice[:, 0], weight[:, 0]  # [t]: one choice a token
        kind = "keep" if case == "mixed-kinds" and layer % 2 else "expert"
        site = SimpleNamespace(name=f"blocks.{layer}.gate", layer=layer)
        events.append((site, RouteEvent(kind, choice=choice, weight=weight, valid=valid,
                                        layer=7 if layer == 3 else None)))
    batch = Batch(examples=[4, 9, 2], events=events)
    fast, fast_tables = _expand(batch, mask=mask)
    host_events, host_mask = pack_events(events, mask, False)
    assert rows.uniform_routes(events, host_events, list(range(layers)), host_mask,
                               np.array(batch.examples)) is not None  # the path taken
    monkeypatch.setattr(rows, "uniform_routes", lambda *args: None)
    loop, loop_tables = _expand(batch, mask=mask)
    assert fast.segments == loop.segments
    for name in fast.COLUMNS:
        got, want = getattr(fast, name), getattr(loop, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert len(fast) == len(loop) > 0
    assert fast_tables["examples"].equals(loop_tables["examples"])
