"""routeviz/capture/outputs.py: the model's own predictions, as float16 log-probabilities,
per token for text and per example for images, recorded while a budget lasts."""

import threading

import numpy as np
import pytest
import torch
from torch import nn

from routeviz.capture.outputs import OutputRecorder, model_logits, output_rows


class FixedLogits(nn.Module):
    """Returns {"logits": the ids' one-hot rows scaled}: [b, s, v]."""

    def forward(self, ids):
        return {"logits": nn.functional.one_hot(ids, 4).float() * 2.0}


class CollectingWriter:
    """Takes what a trace's writer takes (`put(build)`) and builds it at once."""

    def __init__(self):
        self.tables = []

    def put(self, build):
        routes, tables = build()
        assert routes is None
        self.tables.append(tables["outputs"])


def test_model_logits_reads_attribute_or_key_and_refuses_other_shapes():
    logits = torch.zeros(1, 2, 3)
    assert model_logits(type("Out", (), {"logits": logits})()) is logits
    assert model_logits({"logits": logits}) is logits
    assert model_logits({"logits": torch.zeros(2)}) is None  # 1-D: not a prediction
    assert model_logits(torch.zeros(1, 2, 3)) is None  # a bare tensor has no `logits`
    assert model_logits({"hidden": logits}) is None


def test_output_rows_per_token_leave_padding_out():
    logprobs = np.log(np.array([[[0.5, 0.5], [0.25, 0.75], [1.0, 1e-4]]]))  # [b, s, v]
    table = output_rows([7], logprobs, mask=np.array([[0, 1, 1]]))  # left padding
    assert table.column("example").to_pylist() == [7, 7]
    assert table.column("token").to_pylist() == [0, 1]
    values = table.column("logprobs").to_pylist()
    assert values[0] == pytest.approx(np.log([0.25, 0.75]), abs=1e-3)
    assert str(table.schema.field("logprobs").type) == "list<item: halffloat>"


def test_output_rows_per_example_for_class_logits():
    table = output_rows([3, 4], np.log(np.array([[0.9, 0.1], [0.2, 0.8]])), mask=None)
    assert table.column("token").to_pylist() == [-1, -1]
    assert table.column("example").to_pylist() == [3, 4]
    assert np.exp(table.column("logprobs").to_pylist()[1]) == pytest.approx([0.2, 0.8], abs=1e-3)


def test_recorder_writes_log_softmax_of_the_last_forward_and_removes_its_hook():
    model = FixedLogits()
    writer = CollectingWriter()
    with OutputRecorder(model) as outputs:
        model(torch.tensor([[0, 3]]))
        outputs.write(writer, [5])
        outputs.write(writer, [5])  # nothing new since: nothing written
    assert not model._forward_hooks
    (table,) = writer.tables
    assert table.column("token").to_pylist() == [0, 1]
    first = np.exp(table.column("logprobs").to_pylist()[0])
    e2 = np.exp(2.0)
    assert first == pytest.approx([e2 / (e2 + 3), 1 / (e2 + 3), 1 / (e2 + 3), 1 / (e2 + 3)],
                                  abs=1e-3)
    assert outputs.recorded == 2 * 4 and outputs.examples == 1 and outputs.note() is None


def test_budget_stops_recording_whole_batches_and_says_so():
    model, writer = FixedLogits(), CollectingWriter()
    with OutputRecorder(model, budget=12) as outputs:  # one [1, 2, 4] batch fits, two do not
        for _ in range(3):
            model(torch.tensor([[1, 2]]))
            outputs.write(writer, [0])
    assert len(writer.tables) == 1 and outputs.stopped
    assert outputs.note() == ("model outputs recorded for the first 1 example(s) only "
                              "(budget 12 values)")


def test_recorder_skips_other_threads_and_mismatched_examples():
    model, writer = FixedLogits(), CollectingWriter()
    with OutputRecorder(model) as outputs:
        other = threading.Thread(target=lambda: model(torch.tensor([[1]])))
        other.start()
        other.join()
        outputs.write(writer, [0])  # the other thread's forward was not captured
        model(torch.tensor([[1], [2]]))
        outputs.write(writer, [0])  # two rows of logits, one example id: not recorded
    assert writer.tables == [] and outputs.recorded == 0
