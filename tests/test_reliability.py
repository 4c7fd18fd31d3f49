"""Crashes, concurrent writers and hostile names lose nothing already stored."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import routeviz
from routeviz.cli import main
from routeviz.errors import RoutevizError

ROOT = Path(__file__).resolve().parents[1]

WRITER = textwrap.dedent("""
    import sys, time, torch, routeviz
    sys.path.insert(0, {root!r})
    from tests.toy import ToyMoE, register_toy
    register_toy()
    store, run, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = ToyMoE(layers=2, k=2)
    with routeviz.trace(model, store, run, flush_rows=1, flush_seconds=0.05) as tracer:
        for step in range(n):
            with tracer.batch(examples=[2 * step, 2 * step + 1]):
                model(torch.randint(0, 16, (2, 6)))
            print(step, flush=True)
            time.sleep(0.01)
""").format(root=str(ROOT))


def _spawn(tmp_path, store, run, n):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen([sys.executable, str(script), str(store), run, str(n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # two fresh Python processes
def test_sigkill_mid_trace_keeps_completed_batches(tmp_path):
    store_dir = tmp_path / "store"
    proc = _spawn(tmp_path, store_dir, "killed", 100000)
    for _ in range(40):  # wait until some batches are done
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # a half-written part file, as a kill during a write leaves it
    (store_dir / "routes" / "run=killed" / ".tmp-part-half.parquet").write_bytes(b"PAR1 half")
    store = routeviz.open_store(store_dir)
    assert store.damaged == []
    routes = store.routes("killed")
    per_example = routes.groupby("example").size()
    assert len(per_example) >= 20  # batches completed before the kill are there ...
    assert (per_example == 6 * 2 * 2).all()  # ... each whole: tokens x layers x k
    runs = store.runs()
    assert runs.run.tolist() == ["killed"] and runs.finished.isna().all()  # marked unfinished
    removed = {p.name for p in store.clean_temporary(older_than=0)}
    assert ".tmp-part-half.parquet" in removed  # (the kill may have left its own half file too)
    assert not list(store_dir.rglob(".tmp-*"))
    assert len(routeviz.open_store(store_dir).routes("killed")) == len(routes)


@pytest.mark.slow  # two fresh Python processes
def test_two_processes_write_one_store(tmp_path):
    store_dir = tmp_path / "store"
    procs = [_spawn(tmp_path, store_dir, run, 30) for run in ("left", "right")]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    store = routeviz.open_store(store_dir)
    assert store.run_names() == ["left", "right"]
    counts = store.query_df("SELECT run, count(*) AS n, count(DISTINCT example) AS ex "
                            "FROM routes GROUP BY run ORDER BY run")
    assert counts.n.tolist() == [30 * 2 * 6 * 2 * 2] * 2
    assert counts.ex.tolist() == [60, 60]


@pytest.mark.parametrize("name", ["../up", "a/b", "x;rm -rf ~", "$(id)", "", ".hidden", "a" * 200,
                                  "run name", "..", "a\nb"])
def test_hostile_run_names_are_refused(tmp_path, name, capsys):
    store = tmp_path / "store"
    code = main(["trace", "--model", "whatever", "--text", "x", "--store", str(store),
                 "--run", name])
    assert code == 2
    assert "invalid run name" in capsys.readouterr().err
    assert not (tmp_path / "up").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["store"])


def test_remote_code_checkpoint_is_refused(mixtral_dir, tmp_path, capsys):
    import shutil

    ckpt = tmp_path / "custom"
    shutil.copytree(mixtral_dir, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (ckpt / "config.json").write_text(json.dumps(config))
    (ckpt / "modeling_evil.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('RAN').write_text('x')\n")
    store_dir = tmp_path / "s"
    assert main(["trace", "--model", str(mixtral_dir), "--text", "the", "--store",
                 str(store_dir), "--run", "r"]) == 0
    before = sorted((p, p.stat().st_size, p.stat().st_mtime_ns) for p in store_dir.rglob("*"))
    capsys.readouterr()
    code = main(["trace", "--model", str(ckpt), "--text", "the", "--store", str(store_dir),
                 "--run", "r", "--overwrite"])
    assert code == 2
    assert "--trust-remote-code" in capsys.readouterr().err
    assert not (ckpt / "RAN").exists()
    assert sorted((p, p.stat().st_size, p.stat().st_mtime_ns) for p in store_dir.rglob("*")) == before


def test_failed_trace_leaves_other_runs_unchanged(tmp_path, mixtral_dir):
    store_dir = tmp_path / "store"
    assert main(["trace", "--model", str(mixtral_dir), "--text", "the model", "--store",
                 str(store_dir), "--run", "keep"]) == 0
    before = sorted((p.name, p.stat().st_size) for p in store_dir.rglob("*.parquet"))
    assert main(["trace", "--model", str(mixtral_dir), "--text", "", "--store",
                 str(store_dir), "--run", "keep", "--overwrite"]) == 2
    after = sorted((p.name, p.stat().st_size) for p in store_dir.rglob("*.parquet"))
    assert before == after


def test_store_path_is_a_file(tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    with pytest.raises(RoutevizError, match="is a file"):
        routeviz.open_store(path)
