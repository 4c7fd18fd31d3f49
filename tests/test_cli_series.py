"""`routeviz trace --model CKPT... --series NAME`, `metrics --series`, `report --series`:
two tiny random Mixtral checkpoints saved as a Trainer would name them."""

from __future__ import annotations

import json
import shutil

import pytest

from routeviz.cli import main
from routeviz.store import open_store

TEXTS = ["the model of the expert token route layer gate", "def x ( y ) : return y + 1"]
N_TOKENS = sum(len(t.split()) for t in TEXTS)


@pytest.fixture(scope="module")
def checkpoints(mixtral_dir, tmp_path_factory):
    """out/checkpoint-10 (the shared tiny Mixtral) and out/checkpoint-20 (other weights)."""
    from routeviz.testing import save_tiny_checkpoint, tiny_mixtral_config

    out = tmp_path_factory.mktemp("out")
    shutil.copytree(mixtral_dir, out / "checkpoint-10")
    save_tiny_checkpoint(tiny_mixtral_config(), out / "checkpoint-20", seed=1)
    return out


@pytest.fixture(scope="module")
def series_store(checkpoints, tmp_path_factory):
    path = tmp_path_factory.mktemp("series") / "store"
    # given newest first: the steps, not the argument order, order the series
    assert main(["trace", "--model", str(checkpoints / "checkpoint-20"),
                 str(checkpoints / "checkpoint-10"), "--series", "ck", "--store", str(path),
                 "--text", *TEXTS]) == 0
    return path


def test_trace_series_writes_one_run_per_checkpoint(series_store, checkpoints):
    store = open_store(series_store)
    assert store.run_names() == ["ck-step000010", "ck-step000020"]
    for step in (10, 20):
        run = f"ck-step{step:06d}"
        config = store.config(run)
        assert (config["series"], config["step"]) == ("ck", step)
        assert config["checkpoint"] == str(checkpoints / f"checkpoint-{step}")
        assert len(store.routes(run=run)) == 2 * N_TOKENS * 2  # 2 sites x tokens x top-2
    a, b = (store.routes(run=f"ck-step{s:06d}").sort_values(["site", "example", "token", "rank"])
            for s in (10, 20))
    assert (a.choice.to_numpy() != b.choice.to_numpy()).any()  # two different checkpoints


def test_metrics_series_json_per_step_with_saturation(series_store, capsys):
    assert main(["metrics", "--store", str(series_store), "--series", "ck", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["series"] == "ck" and out["final_step"] == 20
    assert [s["step"] for s in out["steps"]] == [10, 20]
    first, last = out["steps"]
    assert first["run"] == "ck-step000010" and first["n_routes"] == 2 * N_TOKENS * 2
    assert {s["site"] for s in first["load"]} == {"model.layers.0.mlp.gate",
                                                 "model.layers.1.mlp.gate"}
    assert [s["site"] for s in last["saturation"]][0] == "*"
    assert all(s["top1"] == 1.0 and s["overlap"] == 1.0 for s in last["saturation"])
    pooled = first["saturation"][0]
    assert pooled["n_units"] == 2 * N_TOKENS and pooled["overlap"] < 1.0
    assert {b["site"] for b in first["balance"]} == {"*", "model.layers.0.mlp.gate",
                                                    "model.layers.1.mlp.gate"}
    assert len(out["identity"]) == 2 * 4  # 2 sites x 4 experts, one transition


@pytest.mark.slow  # a report over every step
def test_report_series_writes_html_json_and_csv(series_store, tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", "--store", str(series_store), "--series", "ck", "--out", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["identity.csv", "metrics.json", "report.html", "saturation.csv",
                       "timeline.csv"]
    html = (out / "report.html").read_text()
    assert html.count('data-key="saturation-overlap"') == 1 and "ck-step000020" in html
    assert html.count('data-key="identity-') == 2  # one heatmap per site
    assert json.loads((out / "metrics.json").read_text())["runs"] == ["ck-step000010",
                                                                      "ck-step000020"]
    lines = (out / "timeline.csv").read_text().splitlines()
    assert lines[0] == "step,run,site,metric,value"
    assert "20,ck-step000020,*,saturation_top1,1" in lines


def test_single_model_trace_is_unchanged(checkpoints, tmp_path):
    store = tmp_path / "one"
    assert main(["trace", "--model", str(checkpoints / "checkpoint-10"), "--store", str(store),
                 "--run", "plain", "--text", TEXTS[0]]) == 0
    assert "series" not in open_store(store).config("plain")


def test_trainer_state_gives_the_step(checkpoints, tmp_path):
    odd = tmp_path / "final"
    shutil.copytree(checkpoints / "checkpoint-20", odd)
    (odd / "trainer_state.json").write_text(json.dumps({"global_step": 35}))
    assert main(["trace", "--model", str(odd), "--series", "t", "--store", str(tmp_path / "s"),
                 "--text", TEXTS[0]]) == 0
    assert open_store(tmp_path / "s").config("t-step000035")["step"] == 35


def test_report_escapes_a_hostile_checkpoint_path(checkpoints, tmp_path):
    hostile = tmp_path / "<img src=x onerror=alert(1)>" / "checkpoint-5"
    shutil.copytree(checkpoints / "checkpoint-10", hostile)
    store, out = tmp_path / "s", tmp_path / "rep"
    assert main(["trace", "--model", str(hostile), "--series", "h", "--store", str(store),
                 "--text", TEXTS[0]]) == 0
    assert main(["report", "--store", str(store), "--series", "h", "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


@pytest.mark.parametrize("argv, message", [
    (["trace", "--model", "{a}", "{b}", "--run", "r", "--text", "x"], "add --series NAME"),
    (["trace", "--model", "{a}", "--series", "s", "--run", "r", "--text", "x"],
     "--run or --series, not both"),
    (["trace", "--model", "{a}", "{a}", "--series", "s", "--text", "x"], "are both step 10"),
    (["trace", "--model", "{plain}", "--series", "s", "--text", "x"],
     "cannot tell the training step"),
    (["trace", "--model", "{a}", "--text", "x"], "needs --run NAME"),
    (["metrics", "--series", "nope"], "unknown series 'nope'; available: ck"),
    (["metrics"], "needs --run NAME (or --series NAME)"),
    (["report", "--series", "ck", "--against", "x", "--out", "{plain}"], "leave out --against"),
    (["trace", "--model", "{a}", "--series", "ck", "--text", "x"], "already exists"),
])
def test_bad_series_arguments_are_one_line_errors(argv, message, checkpoints, series_store,
                                                  tmp_path, capsys):
    plain = tmp_path / "no-step"
    plain.mkdir()
    names = {"a": str(checkpoints / "checkpoint-10"), "b": str(checkpoints / "checkpoint-20"),
             "plain": str(plain)}
    argv = [arg.format(**names) for arg in argv] + ["--store", str(series_store)]
    before = sorted(p.name for p in series_store.rglob("*.parquet"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in series_store.rglob("*.parquet")) == before
