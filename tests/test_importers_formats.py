"""Each format, written the way its engine writes it, imports with every (example, token,
layer) set of experts equal to the router's own top-k, on a tiny Mixtral (every layer
routes) and a tiny Qwen2-MoE whose middle layer is dense; rows take the site names
`routeviz trace` gives the same model's routers."""

import json

import numpy as np
import pytest

from routeviz import importers, metrics
from routeviz.capture.sites import find_sites
from routeviz.store import open_store
from routeviz.testing import save_tiny_checkpoint, tiny_mixtral_config
from tests.import_fixtures import (
    megatron_trace,
    model_routing,
    qwen_moe_config,
    sglang_body,
    sglang_recorder_dump,
    token_ids,
    vllm_body,
    write_tokens,
)


@pytest.fixture(scope="module", params=["mixtral", "qwen2-moe"])
def model(request, tmp_path_factory):
    config = tiny_mixtral_config() if request.param == "mixtral" else qwen_moe_config()
    ckpt = save_tiny_checkpoint(config, tmp_path_factory.mktemp(request.param))
    ids = token_ids(ckpt)
    return {"name": request.param, "ckpt": ckpt, "ids": ids, "routing": model_routing(ckpt, ids)}


def traced_sites(ckpt) -> dict:
    from transformers import AutoModelForCausalLM

    module = AutoModelForCausalLM.from_pretrained(ckpt)
    return {s.layer: s.name for s in find_sites(module) if "n_experts" in s.describe()}


def stored_sets(store_path, run) -> dict:
    routes = open_store(store_path).routes(run)
    return {(int(e), int(t), int(layer)): (sorted(int(c) for c in g.choice), str(g.site.iloc[0]))
            for (e, t, layer), g in routes.groupby(["example", "token", "layer"])}


def expected_sets(routing, n_rows=None, start=0) -> dict:
    out = {}
    for example, r in enumerate(routing):
        rows = n_rows(r) if n_rows else len(r["ids"])
        for token in range(start, rows):
            for layer in r["moe_layers"]:
                out[(example, token, layer)] = sorted(int(x) for x in r["experts"][token, layer])
    return out


def assert_same_routing(store_path, run, model, n_rows=None, start=0):
    got = stored_sets(store_path, run)
    want = expected_sets(model["routing"], n_rows, start)
    assert {k: v[0] for k, v in got.items()} == want
    sites = traced_sites(model["ckpt"])
    assert {k[2]: v[1] for k, v in got.items()} == sites  # the trace's own site names
    if model["name"] == "qwen2-moe":
        assert 1 not in {k[2] for k in got}  # the dense layer has no rows


def minus_last(r):
    return len(r["ids"]) - 1


@pytest.mark.parametrize("encoding", ["base64", "lists"])
def test_vllm_server_bodies(model, tmp_path, encoding):
    bodies = tmp_path / "bodies.jsonl"
    bodies.write_text("".join(json.dumps(vllm_body(r, encoding)) + "\n" for r in model["routing"]))
    result = importers.read("vllm", [bodies], tmp_path / "st", "v", model=model["ckpt"])
    assert result.config["import"]["version"] == (
        "openai-0.22+ (base64 .npy)" if encoding == "base64" else "openai-0.21 (nested lists)")
    assert result.config["rank_order"] == "unknown" and result.config["weights"] == "none"
    assert_same_routing(tmp_path / "st", "v", model, minus_last)
    store = open_store(tmp_path / "st")
    tokens = store.tokens("v")
    # the tokens table holds the routed tokens; the last, sampled one is in the example's text
    assert len(tokens) == sum(len(i) - 1 for i in model["ids"])
    last = tokens.groupby("example").token.max()
    assert list(last) == [len(i) - 2 for i in model["ids"]]
    examples = store.examples("v").set_index("example")
    assert examples.loc[0, "text"].split()[-1] == "expert"  # the whole sequence, decoded
    assert result.problems == []
    summary = metrics.summary(store, "v", permutations=0, resamples=0)
    load = summary["load"]
    assert [x["dropped_tokens"] for x in load] == [0] * len(load)  # none counted as dropped
    assert any("no gate weights (NULL)" in n for n in summary["notes"])
    nulls = store.sql("SELECT count(*) FILTER (WHERE weight IS NULL), count(*) FROM routes "
                      "WHERE run = 'v'").fetchall()[0]
    assert nulls[0] == nulls[1] > 0  # NULL, not NaN: SQL aggregates skip it


def test_vllm_offline_arrays_with_token_file(model, tmp_path):
    paths = []
    for i, r in enumerate(model["routing"]):
        paths.append(tmp_path / f"req{i}.npy")
        np.save(paths[-1], r["experts"][:-1].astype(np.int32))  # RequestOutput's array
    tokens = write_tokens(tmp_path / "tokens.jsonl", model["ids"])
    importers.read("vllm", paths, tmp_path / "st", "off", model=model["ckpt"], tokens=tokens)
    assert_same_routing(tmp_path / "st", "off", model, minus_last)


def test_vllm_prompt_start_is_inferred_from_the_token_ids(model, tmp_path):
    body = tmp_path / "b.json"
    body.write_text(json.dumps([vllm_body(r, prompt_start=2) for r in model["routing"]]))
    importers.read("vllm", [body], tmp_path / "st", "ps", model=model["ckpt"])
    assert_same_routing(tmp_path / "st", "ps", model, minus_last, start=2)
    store = open_store(tmp_path / "st")
    assert int(store.routes("ps").token.min()) == 2
    # the skipped prefix keeps its tokens (unrouted), so positions line up
    assert store.example_tokens("ps", 0) == importers_layout_decode(model)[:-1]


@pytest.mark.parametrize("dtype", ["int32", "uint8", None])
def test_sglang_generate_bodies(model, tmp_path, dtype):
    bodies = tmp_path / "gen.jsonl"
    bodies.write_text("".join(json.dumps(sglang_body(r, dtype)) + "\n" for r in model["routing"]))
    tokens = write_tokens(tmp_path / "tokens.jsonl", model["ids"])
    result = importers.read("sglang", [bodies], tmp_path / "st", "s", model=model["ckpt"],
                            tokens=tokens)
    assert ("no routed_experts_dtype" in result.config["import"]["version"]) == (dtype is None)
    assert_same_routing(tmp_path / "st", "s", model, minus_last)


def test_sglang_start_len_offsets_the_rows(model, tmp_path):
    bodies = tmp_path / "gen.json"
    bodies.write_text(json.dumps([sglang_body(r, "int32", start_len=3) for r in model["routing"]]))
    tokens = write_tokens(tmp_path / "tokens.jsonl", model["ids"])
    importers.read("sglang", [bodies], tmp_path / "st", "s3", model=model["ckpt"], tokens=tokens)
    assert_same_routing(tmp_path / "st", "s3", model, minus_last, start=3)


def test_sglang_recorder_maps_physical_to_logical(model, tmp_path):
    n_layers = model["routing"][0]["experts"].shape[1]
    # EPLB: 4 logical experts on 6 physical slots, a different placement per layer
    placement = [[(e + 2 * layer) % 6 for e in range(4)] for layer in range(n_layers)]
    dump = sglang_recorder_dump(tmp_path / "expert_distribution_recorder_1.0_0.pt",
                                model["routing"], placement, n_physical=6)
    result = importers.read("sglang-recorder", [dump], tmp_path / "st", "rec",
                            model=model["ckpt"])
    assert_same_routing(tmp_path / "st", "rec", model)  # every forwarded token, -1 dropped
    assert result.n_examples == len(model["ids"])
    assert list(open_store(tmp_path / "st").tokens("rec").text[:3]) == \
        [t for t in importers_layout_decode(model)][:3]


def importers_layout_decode(model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model["ckpt"])
    return [tok.decode([i]) for i in model["ids"][0]]


@pytest.mark.parametrize("logits", [False, True])
def test_megatron_trace_cut_by_the_token_file(model, tmp_path, logits):
    trace = megatron_trace(tmp_path / "trace", model["routing"], logits=logits)
    tokens = write_tokens(tmp_path / "tokens.jsonl", model["ids"])
    result = importers.read("megatron", [trace], tmp_path / "st", "meg", model=model["ckpt"],
                            tokens=tokens)
    assert result.config["rank_order"] == ("score" if logits else "expert-id")
    assert_same_routing(tmp_path / "st", "meg", model)
    routes = open_store(tmp_path / "st").routes("meg")
    if logits:  # ranked by logit: rank 0 is the router's own top choice, weights given
        top = routes[routes["rank"] == 0]
        for rec in top.head(12).itertuples():
            r = model["routing"][rec.example]
            assert rec.choice == r["experts"][rec.token, rec.layer, 0]
            assert rec.weight == pytest.approx(
                np.exp(r["logits"][rec.token, rec.layer]).max()
                / np.exp(r["logits"][rec.token, rec.layer]).sum(), rel=0.02)
    else:
        assert routes.weight.isna().all()


def test_megatron_one_based_layers_of_earlier_versions(model, tmp_path):
    trace = megatron_trace(tmp_path / "trace", model["routing"], one_based=True)
    tokens = write_tokens(tmp_path / "tokens.jsonl", model["ids"])
    result = importers.read("megatron", [trace / "router_trace_rank0.jsonl"], tmp_path / "st",
                            "m1", model=model["ckpt"], tokens=tokens)
    assert result.config["import"]["layer_base"] == 1
    assert_same_routing(tmp_path / "st", "m1", model)


def test_npy_arrays_with_padding(model, tmp_path):
    paths = []
    for i, r in enumerate(model["routing"]):
        padded = np.full(r["experts"].shape[:2] + (3,), -1, np.int16)  # a k=3 slot, unused
        padded[:, :, :2] = r["experts"]
        moe = padded[:, r["moe_layers"]]  # the layer axis counts only routing layers
        paths.append(tmp_path / f"{i}.npy")
        np.save(paths[-1], moe)
    tokens = write_tokens(tmp_path / "tokens.jsonl", model["ids"])
    importers.read("npy", paths, tmp_path / "st", "n", model=model["ckpt"], tokens=tokens)
    assert_same_routing(tmp_path / "st", "n", model)


def test_sglang_openai_endpoint_bodies(model, tmp_path):
    """An OpenAI-endpoint body: each choice carries its meta_info."""
    bodies = tmp_path / "chat.jsonl"
    lines = []
    for r in model["routing"]:
        generate = sglang_body(r, "int32")
        lines.append(json.dumps({"id": "chatcmpl", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "..."},
             "meta_info": generate["meta_info"]}]}))
    bodies.write_text("\n".join(lines) + "\n")
    tokens = write_tokens(tmp_path / "tokens.jsonl", model["ids"])
    importers.read("sglang", [bodies], tmp_path / "st", "oa", model=model["ckpt"], tokens=tokens)
    assert_same_routing(tmp_path / "st", "oa", model, minus_last)
