"""Engines side by side: an import of a model's routing against `routeviz trace` of the same
token ids compares every unit with Jaccard 1; a perturbed import names exactly the changed
token and layer; top-1 agreement only where both runs rank by score."""

import json

import pytest

from routeviz.cli import main
from tests.import_fixtures import (
    TEXTS,
    megatron_trace,
    model_routing,
    qwen_moe_config,
    token_ids,
    vllm_body,
    write_tokens,
)


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """A tiny Qwen2-MoE (middle layer dense), traced by the CLI over TEXTS."""
    from routeviz.testing import save_tiny_checkpoint

    root = tmp_path_factory.mktemp("engines")
    ckpt = save_tiny_checkpoint(qwen_moe_config(), root / "ckpt")
    store = root / "store"
    assert main(["trace", "--model", str(ckpt), "--text", *TEXTS, "--store", str(store),
                 "--run", "hf"]) == 0
    ids = token_ids(ckpt)
    return {"ckpt": ckpt, "store": store, "ids": ids, "routing": model_routing(ckpt, ids),
            "root": root}


def diff_json(capsys, store, run, against="hf"):
    capsys.readouterr()
    assert main(["diff", "--store", str(store), "--run", run, "--against", against,
                 "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def import_vllm(traced, run, routing, capsys):
    bodies = traced["root"] / f"{run}.jsonl"
    bodies.write_text("".join(json.dumps(vllm_body(r)) + "\n" for r in routing))
    assert main(["import", "vllm", str(bodies), "--store", str(traced["store"]), "--run", run,
                 "--model", str(traced["ckpt"]), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_an_import_of_the_same_tokens_agrees_everywhere(traced, capsys):
    result = import_vllm(traced, "served", traced["routing"], capsys)
    assert result["ok"] and result["examples"] == len(TEXTS)
    out = diff_json(capsys, traced["store"], "served")
    n_rows = sum(len(i) - 1 for i in traced["ids"])  # vLLM: prompt + output - 1 rows
    assert out["n_common_units"] == 2 * n_rows and out["n_only_run"] == 0
    n_tokens = sum(len(i) for i in traced["ids"])
    # only traced: each text's last token at both routers, and the shared-expert gates' keep
    # decisions (a sigmoid gate, no engine returns them)
    assert out["n_only_against"] == 2 * len(TEXTS) + 2 * n_tokens
    assert out["n_text_mismatch"] == 0  # the tokenizer decodes as the trace did
    assert [s["site"] for s in out["sites"]] == ["model.layers.0.mlp.gate",
                                                 "model.layers.2.mlp.gate"]
    for site in out["sites"]:
        assert site["jaccard"] == 1.0 and site["share_differing"] == 0.0
        assert site["top1_agreement"] is None  # vLLM's rank order is unknown
    assert out["first_divergence"] is None and out["differing_units"] == []
    assert any("top-1 agreement not computed" in n for n in out["notes"])


def test_a_perturbed_import_names_the_changed_token_and_layer(traced, capsys):
    routing = [dict(r, experts=r["experts"].copy()) for r in traced["routing"]]
    example, token, layer = 1, 3, 2
    chosen = set(routing[example]["experts"][token, layer])
    other = sorted(set(range(4)) - chosen)
    routing[example]["experts"][token, layer] = other[:2]  # a wholly different pair
    import_vllm(traced, "perturbed", routing, capsys)
    out = diff_json(capsys, traced["store"], "perturbed")
    first = out["first_divergence"]
    assert (first["example"], first["token"], first["layer"]) == (example, token, layer)
    assert first["site"] == "model.layers.2.mlp.gate"
    assert first["run_experts"] == other[:2] and first["against_experts"] == sorted(chosen)
    assert len(out["differing_units"]) == 1
    sites = {s["layer"]: s for s in out["sites"]}
    assert sites[0]["jaccard"] == 1.0 and sites[2]["jaccard"] < 1.0
    n_units = sites[2]["n_units"]
    assert sites[2]["share_differing"] == pytest.approx(1 / n_units)
    assert out["changed_sites"] == ["model.layers.2.mlp.gate"]


def test_top1_agreement_where_both_runs_rank_by_score(traced, capsys):
    trace_dir = megatron_trace(traced["root"] / "megatron", traced["routing"], logits=True)
    tokens = write_tokens(traced["root"] / "tokens.jsonl", traced["ids"])
    assert main(["import", "megatron", str(trace_dir), "--store", str(traced["store"]),
                 "--run", "trainer", "--model", str(traced["ckpt"]), "--tokens",
                 str(tokens)]) == 0
    out = diff_json(capsys, traced["store"], "trainer")
    assert out["rank_order"] == {"trainer": "score", "hf": "score"}
    for site in out["sites"]:
        assert site["jaccard"] == 1.0 and site["top1_agreement"] == 1.0
    # two imports side by side: the served one has no ranks, so top-1 is left out
    out = diff_json(capsys, traced["store"], "served", against="trainer")
    assert all(s["top1_agreement"] is None and s["jaccard"] == 1.0 for s in out["sites"])


def test_without_ranks_metrics_top1_says_so(traced, capsys):
    capsys.readouterr()
    code = main(["metrics", "--store", str(traced["store"]), "--run", "served", "--top1",
                 "--json", "--permutations", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "rank order" in err



@pytest.mark.parametrize("fmt", ["sglang", "sglang-recorder", "megatron", "npy"])
def test_every_format_against_the_trace_agrees_everywhere(traced, fmt):
    from routeviz import importers, metrics
    from routeviz.store import open_store
    from tests.import_fixtures import sglang_body, sglang_recorder_dump

    root, routing = traced["root"] / f"all-{fmt}", traced["routing"]
    root.mkdir()
    tokens = write_tokens(root / "tokens.jsonl", traced["ids"])
    if fmt == "sglang":
        paths = [root / "gen.jsonl"]
        paths[0].write_text("".join(json.dumps(sglang_body(r, "uint8")) + "\n" for r in routing))
    elif fmt == "sglang-recorder":
        paths = [sglang_recorder_dump(root / "dump.pt", routing, [[3, 2, 1, 0]] * 3, 4)]
    elif fmt == "megatron":
        paths = [megatron_trace(root / "trace", routing)]
    else:
        import numpy as np

        paths = []
        for i, r in enumerate(routing):
            paths.append(root / f"{i}.npy")
            np.save(paths[-1], r["experts"])  # every layer, the dense one zero-filled
    run = f"from-{fmt}"
    importers.read(fmt, paths, traced["store"], run, model=traced["ckpt"], tokens=tokens)
    out = metrics.diff(open_store(traced["store"]), run, "hf")
    assert out["n_common_units"] >= 2 * sum(len(i) - 1 for i in traced["ids"])
    assert [s["jaccard"] for s in out["sites"]] == [1.0, 1.0]
    assert out["first_divergence"] is None and out["n_text_mismatch"] == 0


def test_an_import_without_model_says_why_it_shares_no_unit(traced, capsys):
    import numpy as np

    np.save(traced["root"] / "bare.npy", traced["routing"][0]["experts"])
    assert main(["import", "npy", str(traced["root"] / "bare.npy"), "--store",
                 str(traced["store"]), "--run", "bare"]) == 0
    capsys.readouterr()
    assert main(["diff", "--store", str(traced["store"]), "--run", "bare", "--against",
                 "hf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'bare' was imported without --model" in err


def test_the_traced_qwen_run_agrees_with_its_own_router_logits(traced):
    from routeviz.importers.check import check_run
    from routeviz.store import open_store

    result = check_run(open_store(traced["store"]), "hf")
    assert result["ok"] and "hook_vs_model" in result["checked"]  # dense layer skipped too
