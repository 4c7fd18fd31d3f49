"""Formats without request boundaries: Megatron's ranks (replicas read once, data-parallel
ranks concatenated in rank order) and SGLang's recorder (a sequence continued across
forward passes by its positions: chunked prefill, then decode), and the layout read from a
config without building the model."""

import json

import numpy as np
import pytest
import torch

from routeviz import importers
from routeviz.importers.layout import Layout, moe_layers_from_config
from routeviz.store import open_store
from tests.import_fixtures import megatron_trace, qwen_moe_config


def routing(n_tokens, seed, layers=(0, 1), n_layers=2, k=2, n_experts=4):
    rng = np.random.default_rng(seed)
    experts = np.zeros((n_tokens, n_layers, k), np.int64)
    for layer in layers:
        experts[:, layer] = [rng.choice(n_experts, k, replace=False) for _ in range(n_tokens)]
    return {"ids": list(range(4, 4 + n_tokens)), "experts": experts, "moe_layers": list(layers)}


def sets(store_path, run):
    routes = open_store(store_path).routes(run)
    return {(int(e), int(t), int(layer)): sorted(int(c) for c in g.choice)
            for (e, t, layer), g in routes.groupby(["example", "token", "layer"])}


def want(routings, order=None):
    out = {}
    for example, r in enumerate(routings):
        for token in range(len(r["ids"])):
            for layer in r["moe_layers"]:
                out[(example, token, layer)] = sorted(int(x) for x in r["experts"][token, layer])
    return out


def test_megatron_replica_ranks_are_read_once_and_data_ranks_concatenated(tmp_path):
    first, second = routing(5, 0), routing(7, 1)
    trace = tmp_path / "trace"
    megatron_trace(trace, [first], rank=0)
    megatron_trace(trace, [first], rank=1)  # a tensor-parallel replica: the same tokens
    megatron_trace(trace, [second], rank=2)  # another data-parallel rank
    tokens = tmp_path / "tokens.jsonl"
    tokens.write_text(json.dumps({"token_ids": first["ids"]}) + "\n"
                      + json.dumps({"token_ids": second["ids"]}) + "\n")
    result = importers.read("megatron", [trace], tmp_path / "st", "m", tokens=tokens)
    assert sets(tmp_path / "st", "m") == want([first, second])
    assert result.config["import"]["ranks"] == [0, 1, 2]
    assert any("rank 1: the same tokens as an earlier rank" in n for n in result.notes)


def test_megatron_without_a_token_file_is_one_example(tmp_path):
    trace = megatron_trace(tmp_path / "trace", [routing(3, 0), routing(4, 1)])
    result = importers.read("megatron", [trace], tmp_path / "st", "m")
    assert result.n_examples == 1
    assert len(open_store(tmp_path / "st").tokens("m")) == 7


def recorder_pass(pass_id, ids, positions, experts, extend=None):
    """A per_token record as _DetailSinglePassGatherer.collect returns it (identity map)."""
    n_layers = experts.shape[1]
    topk = torch.full((n_layers, len(ids), 8), -1, dtype=torch.int32)
    topk[:, :, :experts.shape[2]] = torch.tensor(experts.transpose(1, 0, 2), dtype=torch.int32)
    return {"forward_pass_id": pass_id, "rank": 0, "gatherer_key": "primary",
            "input_ids": ids, "positions": positions, "extend_seq_lens": extend,
            "forward_mode": 1 if extend else 2, "topk_ids_of_layer": topk, "misc_objects": []}


def test_recorder_follows_a_sequence_across_chunked_prefill_and_decode(tmp_path):
    a, b = routing(6, 0), routing(3, 1)
    ea, eb = a["experts"], b["experts"]
    records = [
        # pass 0: the first 4 tokens of a (a chunk) and all of b's prompt but its last token
        recorder_pass(0, a["ids"][:4] + b["ids"][:2], [0, 1, 2, 3, 0, 1],
                      np.concatenate([ea[:4], eb[:2]]), extend=[4, 2]),
        # pass 1: the rest of a's prompt (positions 4, 5 continue it)
        recorder_pass(1, a["ids"][4:], [4, 5], ea[4:], extend=[2]),
        # pass 2: decode, one token for b (position 2)
        recorder_pass(2, b["ids"][2:], [2], eb[2:]),
    ]
    torch.save({"records": records,
                "last_physical_to_logical_map": torch.arange(4).repeat(2, 1)},
               tmp_path / "dump.pt")
    result = importers.read("sglang-recorder", [tmp_path / "dump.pt"], tmp_path / "st", "r")
    assert result.n_examples == 2
    assert sets(tmp_path / "st", "r") == want([a, b])


def test_recorder_dump_that_is_not_one(tmp_path, capsys):
    torch.save({"something": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(Exception, match="not a per_token recorder dump"):
        importers.read("sglang-recorder", [tmp_path / "x.pt"], tmp_path / "st", "r")
    assert not (tmp_path / "st" / "routes").exists()


@pytest.mark.parametrize("overrides,routing_layers", [
    ({"mlp_only_layers": [1], "decoder_sparse_step": 1}, [0, 2, 3]),
    ({"mlp_only_layers": [], "decoder_sparse_step": 2}, [1, 3]),
])
def test_layout_from_config_fields_matches_the_traced_sites(tmp_path, overrides,
                                                            routing_layers):
    from routeviz.testing import save_tiny_checkpoint

    config = qwen_moe_config(num_hidden_layers=4, **overrides)
    assert moe_layers_from_config(config) == routing_layers
    layout = Layout.from_checkpoint(save_tiny_checkpoint(config, tmp_path / "ckpt"))
    assert layout.moe_layers == routing_layers and layout.facts["sites_from"] == "traced sites"
    assert layout.sites == {i: f"model.layers.{i}.mlp.gate" for i in routing_layers}
    assert layout.axis_layers(4, "x") == [i if i in routing_layers else None for i in range(4)]
    assert layout.axis_layers(len(routing_layers), "x") == routing_layers
