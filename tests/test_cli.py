import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pytest
import torch

from routeviz.cli import main


def console_script(*args):
    """The installed console script, as a user runs it (the few smoke tests below)."""
    script = Path(sys.executable).with_name("routeviz")
    assert script.exists(), f"no console script at {script}: pip install -e ."
    proc = subprocess.run([str(script), *map(str, args)], capture_output=True, text=True,
                          timeout=300, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.slow  # a fresh Python process
def test_console_script_help_lists_the_commands():
    code, out, err = console_script("--help")
    assert code == 0, err
    assert out.startswith("usage: routeviz")
    for command in ("models", "trace", "runs", "metrics", "diff", "report"):
        assert command in out


@pytest.mark.slow  # a fresh Python process
def test_console_script_traces_and_fails_in_one_line(mixtral_dir, store_dir):
    code, out, err = console_script("trace", "--model", mixtral_dir, "--text", "the model",
                                    "--store", store_dir, "--run", "smoke", "--json")
    assert code == 0, err
    assert json.loads(out)["examples"] == 1
    assert len(pd.read_parquet(store_dir / "routes")) > 0
    code, out, err = console_script("trace", "--model", mixtral_dir, "--text", "the",
                                    "--store", store_dir, "--run", "smoke")
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    assert code == 2 and len(lines) == 1 and "already exists" in lines[0], err
    assert "Traceback" not in err


def test_trace_mixtral_checkpoint_records_router_topk(mixtral_dir, store_dir, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    texts = ["the model is a token", "def x ( ) : return y"]
    code = main(["trace", "--model", str(mixtral_dir), "--text", *texts, "--store",
                 str(store_dir), "--run", "mx", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["examples"] == 2

    tok = AutoTokenizer.from_pretrained(mixtral_dir)
    model = AutoModelForCausalLM.from_pretrained(mixtral_dir).eval()
    enc = tok(texts, padding=True, return_tensors="pt")
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, a, out, n=n: seen.__setitem__(n, out[2]))
             for n, m in model.named_modules() if n.endswith("mlp.gate")]
    with torch.no_grad():
        model(**enc)
    for h in hooks:
        h.remove()

    con = duckdb.connect()
    routes = con.sql(f"SELECT * FROM read_parquet('{store_dir}/routes/*/*.parquet', "
                     "hive_partitioning=true)").df()
    n_tokens = int(enc["attention_mask"].sum())
    cfg = model.config
    assert len(routes) == n_tokens * cfg.num_hidden_layers * cfg.num_experts_per_tok
    assert set(routes.kind) == {"expert"}
    seq = enc["input_ids"].shape[1]
    for site, index in seen.items():
        index = index.reshape(2, seq, -1)
        rows = routes[routes.site == site]
        for r in rows.itertuples():
            assert r.choice == int(index[r.example, r.token, r.rank])


def test_runs_json_and_three_readers(mixtral_dir, store_dir, capsys):
    assert main(["trace", "--model", str(mixtral_dir), "--text", "the a", "to and in",
                 "is it", "--store", str(store_dir), "--run", "r1"]) == 0
    capsys.readouterr()
    assert main(["runs", "--store", str(store_dir), "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(r["run"], r["n_examples"]) for r in runs] == [("r1", 3)]
    assert runs[0]["n_routes"] > 0
    n = runs[0]["n_routes"]
    assert len(pd.read_parquet(store_dir / "routes")) == n
    assert ds.dataset(store_dir / "routes", partitioning="hive").count_rows() == n
    assert duckdb.sql(f"SELECT count(*) FROM '{store_dir}/routes/*/*.parquet'").fetchall()[0][0] == n


def test_existing_run_needs_overwrite(mixtral_dir, store_dir, capsys):
    args = ["trace", "--model", str(mixtral_dir), "--text", "the", "--store", str(store_dir),
            "--run", "dup"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0


@pytest.mark.parametrize("case", ["missing", "not_checkpoint", "no_router", "empty_text",
                                  "store_is_file", "bad_run"])
def test_bad_input_one_line_error(case, tmp_path, mixtral_dir, capsys):
    store = tmp_path / "store"
    model = str(mixtral_dir)
    text = ["the model"]
    run = "r"
    if case == "missing":
        model = str(tmp_path / "nope")
    elif case == "not_checkpoint":
        (tmp_path / "plain").mkdir()
        model = str(tmp_path / "plain")
    elif case == "no_router":
        from transformers import LlamaConfig

        from routeviz.testing import save_tiny_checkpoint

        model = str(save_tiny_checkpoint(
            LlamaConfig(vocab_size=128, hidden_size=16, intermediate_size=32,
                        num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1),
            tmp_path / "llama"))
    elif case == "empty_text":
        text = ["   "]
    elif case == "store_is_file":
        store.write_text("x")
    elif case == "bad_run":
        run = "../escape"
    capsys.readouterr()  # the checkpoint's save may draw a progress bar: not the command's
    code = main(["trace", "--model", model, "--text", *text, "--store", str(store),
                 "--run", run])
    err = capsys.readouterr().err
    assert code != 0
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("routeviz: error:"), err
    assert "Traceback" not in err
    expected = {"missing": "unknown model", "not_checkpoint": "no config.json",
                "no_router": "no routing module found", "empty_text": "empty text",
                "store_is_file": "is a file", "bad_run": "invalid run name"}[case]
    assert expected in lines[0]
    if case == "no_router":
        assert "TopKRouter" in lines[0] and "LlamaMLP" in lines[0]
    assert not (tmp_path / "escape").exists()
