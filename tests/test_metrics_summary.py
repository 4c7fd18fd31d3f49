"""summary and `metrics --json` on a store with known rows."""

import json

import pytest

from routeviz.cli import main
from routeviz.metrics import summary
from tests.metrics_store import known_run


@pytest.fixture
def store(tmp_path):
    return known_run(tmp_path / "st")


def test_summary_and_cli_metrics_json(store, capsys):
    out = summary(store, "r")
    assert out["kinds"] == ["exit", "expert", "keep", "merge"]
    kinds = {(r["kind"], r["site"], r["tag"]) for r in out["focus_cover"]}
    assert ("expert", "*", "*") in kinds and ("keep", "prune", "kind") in kinds
    assert ("exit", "*", "lang") in kinds
    assert out["load"][0]["shares"] == pytest.approx([6 / 9, 3 / 9, 0, 0])
    assert out["keep"]["tokens"]["n_never_discarded"] == 3
    assert out["exits"]["compute_saved"] == pytest.approx(0.4)
    assert main(["metrics", "--store", str(store.path), "--run", "r", "--tag", "kind",
                 "--kind", "expert", "--top1", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert {r["tag"] for r in cli["focus_cover"]} == {"kind"}
    assert {r["kind"] for r in cli["focus_cover"]} == {"expert"}
