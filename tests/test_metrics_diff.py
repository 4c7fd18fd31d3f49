"""`routeviz diff`: one tiny Mixtral traced at float32 and at bfloat16."""

import json

import pytest
import torch

from routeviz.cli import main
from routeviz.errors import RoutevizError
from routeviz.metrics import diff
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model
from routeviz.runs.record import record
from routeviz.store import open_store
from tests.metrics_store import expert_routes, write_run

TEXTS = ["the model of the expert token route layer gate", "def x ( y ) : return y + 1",
         "import self from class while try except print", "a is it that for on with as was",
         "x = y * 2 / z - 1", "the gate of the layer is the expert",
         "for x in y : print ( x )", "class model : def route ( self , token ) : return 0"]


@pytest.fixture(scope="module")
def precision_store(mixtral_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("diff") / "store"
    items = [Item(text=t, source=t) for t in TEXTS]
    runner = load_model(str(mixtral_dir))
    record(runner, items, path, "f32")
    runner.module.to(torch.bfloat16)
    record(runner, items, path, "bf16")
    return path


def test_diff_json_float32_vs_bfloat16_reports_agreement_and_flips(precision_store, capsys):
    assert main(["diff", "--store", str(precision_store), "--run", "f32", "--against", "bf16",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    n_tokens = sum(len(t.split()) for t in TEXTS)
    assert out["n_common_units"] == 2 * n_tokens  # 2 router sites, same tokens in both runs
    assert out["n_only_run"] == out["n_only_against"] == out["n_text_mismatch"] == 0
    sites = {s["site"]: s for s in out["sites"]}
    assert set(sites) == {"model.layers.0.mlp.gate", "model.layers.1.mlp.gate"}
    for s in sites.values():
        assert s["n_units"] == n_tokens
        assert s["flip_rate"] == pytest.approx(1 - s["top1_agreement"])
        assert 0 <= s["jaccard"] <= 1
    flipped = sum(s["n_flipped"] for s in sites.values())
    assert flipped >= 1  # bfloat16 rounding moves at least one near-tie of this model
    assert 0.5 < out["overall"][0]["top1_agreement"] < 1.0
    changed = out["changed_tokens"]
    assert changed and changed[0]["n_flipped"] >= 1 and changed[0]["text"] in " ".join(TEXTS)
    assert sum(c["n_flipped"] for c in changed) == flipped


def test_diff_of_a_run_with_itself_agrees_fully(precision_store):
    out = diff(open_store(precision_store), "f32", "f32")
    assert all(s["top1_agreement"] == 1.0 and s["jaccard"] == 1.0 for s in out["sites"])
    assert out["changed_tokens"] == []


def test_diff_counts_jaccard_of_topk_sets(tmp_path):
    a = expert_routes("g", 0, {(0, 0): [0, 1], (0, 1): [2, 3], (0, 2): [1, 2]})
    b = expert_routes("g", 0, {(0, 0): [1, 0], (0, 1): [2, 0], (0, 3): [1, 2]})
    path = tmp_path / "st"
    write_run(path, "a", a)
    store = write_run(path, "b", b)
    out = diff(store, "a", "b")
    site = out["sites"][0]
    assert site["n_units"] == 2 and out["n_only_run"] == 1 and out["n_only_against"] == 1
    assert site["top1_agreement"] == 0.5  # token 0 flips 0 -> 1, token 1 keeps 2
    assert site["jaccard"] == pytest.approx((1.0 + 1 / 3) / 2)
    assert [c["token"] for c in out["changed_tokens"]] == [0, 1]
    assert out["notes"]


def test_diff_errors(precision_store, tmp_path):
    store = open_store(precision_store)
    with pytest.raises(RoutevizError, match="unknown run 'fp8'; available: bf16, f32"):
        diff(store, "f32", "fp8")
    other = write_run(tmp_path / "st", "x", expert_routes("g", 0, {(0, 0): [0]}))
    write_run(tmp_path / "st", "y", expert_routes("h", 0, {(0, 0): [0]}))
    other.refresh()
    with pytest.raises(RoutevizError, match="share no routed tokens"):
        diff(other, "x", "y")
