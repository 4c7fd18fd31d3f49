"""`routeviz check`: every problem kind fires on a run that has it, a clean import and a clean
trace pass, `import` prints what it finds, `--json` has the contract's keys, exit 1 on a
problem."""

import json

import numpy as np
import pytest

from routeviz.cli import main
from routeviz.importers.check import KINDS, check_run
from routeviz.store import open_store
from routeviz.testing import save_tiny_checkpoint, tiny_mixtral_config
from tests.import_fixtures import TEXTS, model_routing, token_ids, vllm_body
from tests.metrics_store import expert_routes, write_run


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory):
    ckpt = save_tiny_checkpoint(tiny_mixtral_config(), tmp_path_factory.mktemp("mix"))
    ids = token_ids(ckpt)
    return {"ckpt": ckpt, "ids": ids, "routing": model_routing(ckpt, ids)}


def kinds(result) -> set:
    return {p["kind"] for p in result["problems"]}


def check_json(capsys, store, run):
    capsys.readouterr()
    code = main(["check", "--store", str(store), "--run", run, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_zero_filled_layer_is_flagged_and_a_clean_import_passes(mixtral, tmp_path, capsys):
    clean, zeroed = tmp_path / "clean.jsonl", tmp_path / "zeroed.jsonl"
    clean.write_text("".join(json.dumps(vllm_body(r)) + "\n" for r in mixtral["routing"]))
    broken = []
    for r in mixtral["routing"]:
        experts = r["experts"].copy()
        experts[:, 1] = 0  # a fused kernel's capture that failed: expert 0 everywhere
        broken.append(dict(r, experts=experts))
    zeroed.write_text("".join(json.dumps(vllm_body(r)) + "\n" for r in broken))
    store = tmp_path / "st"
    for run, path in (("clean", clean), ("zeroed", zeroed)):
        assert main(["import", "vllm", str(path), "--store", str(store), "--run", run,
                     "--model", str(mixtral["ckpt"])]) == 0
    printed = capsys.readouterr().out
    assert "problem: constant_layer at site model.layers.1.mlp.gate layer 1" in printed
    code, out = check_json(capsys, store, "clean")
    assert code == 0 and out == {"run": "clean", "ok": True, "problems": [],
                                 "checked": list(KINDS[:-1])}
    code, out = check_json(capsys, store, "zeroed")
    assert code == 1 and not out["ok"]
    assert {(p["kind"], p["site"], p["layer"]) for p in out["problems"]} == {
        ("constant_layer", "model.layers.1.mlp.gate", 1),
        ("duplicate_ids", "model.layers.1.mlp.gate", 1)}
    assert all(set(p) == {"kind", "site", "layer", "detail"} for p in out["problems"])


def test_duplicate_ids_within_a_top_k(tmp_path):
    routes = np.array([[[0, 1]], [[2, 2]], [[1, 3]]])  # token 1 lists expert 2 twice
    np.save(tmp_path / "a.npy", routes)
    main(["import", "npy", str(tmp_path / "a.npy"), "--store", str(tmp_path / "st"),
          "--run", "dup"])
    result = check_run(open_store(tmp_path / "st"), "dup")
    assert kinds(result) == {"duplicate_ids"}
    assert "example 0 token 1 (expert 2)" in result["problems"][0]["detail"]


def test_ids_out_of_range(tmp_path):
    store = write_run(tmp_path, "r", expert_routes("gate", 0, {(0, 0): [1], (0, 1): [7]}),
                      config={"n_experts": 4})
    result = check_run(store, "r")
    assert kinds(result) == {"ids_out_of_range"}
    assert "7 is not below the site's 4 experts" in result["problems"][0]["detail"]


def test_token_counts_that_disagree_with_tokens(tmp_path):
    routes = expert_routes("gate", 0, {(0, t): [t % 2] for t in range(5)})
    store = write_run(tmp_path, "r", routes, tokens={0: ["a", "b", "c"]})
    result = check_run(store, "r")
    assert kinds(result) == {"token_count"}
    assert "routes reach token 4, but the example has 3 token(s)" in \
        result["problems"][0]["detail"]


def test_sites_that_never_fired(tmp_path):
    routes = expert_routes("model.layers.0.mlp.gate", 0, {(0, t): [t % 2] for t in range(4)})
    config = {"sites": {"model.layers.0.mlp.gate": {"n_experts": 2},
                        "model.layers.1.mlp.gate": {"n_experts": 2}}}
    result = check_run(write_run(tmp_path, "r", routes, config=config), "r")
    assert [(p["kind"], p["site"]) for p in result["problems"]] == [
        ("silent_site", "model.layers.1.mlp.gate")]


def test_an_expert_histogram_degenerate_against_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    routes = rng.integers(0, 4, size=(200, 4, 1))  # top-1 over 4 experts, 4 layers
    routes[:, 3, 0] = np.where(rng.random(200) < 0.97, 0, rng.integers(1, 4, 200))
    np.save(tmp_path / "a.npy", routes)
    main(["import", "npy", str(tmp_path / "a.npy"), "--store", str(tmp_path / "st"),
          "--run", "skew"])
    result = check_run(open_store(tmp_path / "st"), "skew")
    assert [(p["kind"], p["layer"]) for p in result["problems"]] == [
        ("degenerate_histogram", 3)]


def test_hook_capture_against_the_models_router_logits(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tiny_mixtral_config(), tmp_path / "ckpt", seed=0)
    store = tmp_path / "st"
    assert main(["trace", "--model", str(ckpt), "--text", *TEXTS, "--store", str(store),
                 "--run", "hf"]) == 0
    code, out = check_json(capsys, store, "hf")
    assert code == 0 and "hook_vs_model" in out["checked"]  # Mixtral offers router logits
    save_tiny_checkpoint(tiny_mixtral_config(), ckpt, seed=1)  # the weights changed since
    code, out = check_json(capsys, store, "hf")
    assert code == 1 and kinds(out) == {"hook_vs_model"}
    assert {p["site"] for p in out["problems"]} <= {"model.layers.0.mlp.gate",
                                                   "model.layers.1.mlp.gate"}
    assert "recorded" in out["problems"][0]["detail"]


def test_check_of_an_unknown_run_is_one_line(tmp_path, capsys):
    write_run(tmp_path, "r", expert_routes("gate", 0, {(0, 0): [1]}))
    assert main(["check", "--store", str(tmp_path), "--run", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown run 'nope'" in err
