"""Damaged input, whatever the damage, is a RoutevizError (one line, before any run is
opened): each format's fixture cut short, spliced with random bytes, or with one field
replaced by any JSON value (hypothesis)."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routeviz.errors import RoutevizError
from routeviz.importers import common
from routeviz.importers.layout import Layout
from routeviz.importers.registry import get
from tests.import_fixtures import megatron_trace, sglang_body, sglang_recorder_dump, vllm_body

LAYOUT = Layout(n_layers=2, moe_layers=[0, 1], sites={0: "a", 1: "b"}, n_experts=4, top_k=2)
RNG = np.random.default_rng(0)
ROUTING = {"ids": list(range(4, 10)), "moe_layers": [0, 1],
           "experts": np.stack([np.stack([RNG.choice(4, 2, replace=False) for _ in range(2)])
                                for _ in range(6)]),
           "logits": RNG.normal(size=(6, 2, 4)).astype(np.float32)}
SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=False)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.text(max_size=4), inner, max_size=3), max_leaves=8)


def fixture(fmt, directory):
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "sglang-recorder":
        return sglang_recorder_dump(directory / "dump.pt", [ROUTING], [[0, 1, 2, 3]] * 2, 4)
    if fmt == "megatron":
        return megatron_trace(directory / "trace", [ROUTING], logits=True) / \
            "router_trace_rank0.jsonl"
    path = directory / "body.json"
    body = vllm_body(ROUTING) if fmt == "vllm" else sglang_body(ROUTING, "int16")
    path.write_text(json.dumps(body))
    return path


def only_routeviz_errors(fmt, path):
    try:
        capture = get(fmt).read([path], {"layout": LAYOUT, "token_lists": None})
        common.prepare(capture, LAYOUT, None, fmt)
    except RoutevizError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("fmt", ["vllm", "sglang", "megatron", "sglang-recorder"])
@SETTINGS
@given(cut=st.floats(0, 1), splice=st.binary(max_size=6), at=st.floats(0, 1))
def test_cut_or_spliced_bytes(fmt, tmp_path, cut, splice, at):
    path = fixture(fmt, tmp_path / fmt)
    data = path.read_bytes()
    data = data[: int(len(data) * cut)] if splice == b"" else (
        data[: int(len(data) * at)] + splice + data[int(len(data) * at) + len(splice):])
    path.write_bytes(data)
    only_routeviz_errors(fmt, path)


FIELDS = {"vllm": ["routed_experts", "token_ids", "routed_experts_prompt_start"],
          "sglang": ["routed_experts", "routed_experts_dtype", "routed_experts_start_len",
                     "prompt_tokens"],
          "megatron": ["top_indices", "layer", "step", "num_tokens", "logit_offset",
                       "logit_shape", "block"]}


@pytest.mark.parametrize("fmt", ["vllm", "sglang", "megatron"])
@SETTINGS
@given(field=st.integers(0, 6), value=JSON)
def test_one_field_replaced_by_any_json(fmt, tmp_path, field, value):
    path = fixture(fmt, tmp_path / fmt)
    name = FIELDS[fmt][field % len(FIELDS[fmt])]
    if fmt == "megatron":
        lines = path.read_text().splitlines()
        record = json.loads(lines[0])
        record[name] = value
        path.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    else:
        body = json.loads(path.read_text())
        target = body["choices"][0] if fmt == "vllm" else body["meta_info"]
        target[name] = value
        path.write_text(json.dumps(body))
    only_routeviz_errors(fmt, path)
