"""`routeviz import` on bad input: one line on stderr, exit 2, no run created, an existing run
kept as it was; and a third-party format added by a package's entry point."""

import base64
import json

import numpy as np
import pytest

from routeviz.cli import main
from routeviz.importers.registry import BUILTINS, importers
from routeviz.store import open_store, run_exists
from routeviz.testing import save_tiny_checkpoint, tiny_mixtral_config
from tests.import_fixtures import model_routing, sglang_body, token_ids, vllm_body, write_tokens
from tests.plugin_dist import write_distribution


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory):
    ckpt = save_tiny_checkpoint(tiny_mixtral_config(), tmp_path_factory.mktemp("mix"))
    ids = token_ids(ckpt)
    return {"ckpt": ckpt, "ids": ids, "routing": model_routing(ckpt, ids)}


def refused(capsys, store, run, argv, message):
    capsys.readouterr()
    code = main(["import", *argv, "--store", str(store), "--run", run])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("routeviz: error: ") and err.count("\n") == 1, err
    assert message in err, err
    assert not run_exists(store, run)


def test_a_truncated_body(mixtral, tmp_path, capsys):
    body = json.dumps(vllm_body(mixtral["routing"][0]))
    (tmp_path / "cut.json").write_text(body[: len(body) // 2])
    refused(capsys, tmp_path / "st", "r", ["vllm", str(tmp_path / "cut.json"), "--model",
                                           str(mixtral["ckpt"])], "a truncated body?")


def test_truncated_raw_bytes(mixtral, tmp_path, capsys):
    body = sglang_body(mixtral["routing"][0])
    raw = base64.b64decode(body["meta_info"]["routed_experts"])
    body["meta_info"]["routed_experts"] = base64.b64encode(raw[:-8]).decode()
    (tmp_path / "b.json").write_text(json.dumps(body))
    refused(capsys, tmp_path / "st", "r", ["sglang", str(tmp_path / "b.json"), "--model",
                                           str(mixtral["ckpt"])], "a truncated body, or another")


def test_an_unknown_dtype(mixtral, tmp_path, capsys):
    body = sglang_body(mixtral["routing"][0])
    body["meta_info"]["routed_experts_dtype"] = "float8_e4m3"
    (tmp_path / "b.json").write_text(json.dumps(body))
    refused(capsys, tmp_path / "st", "r", ["sglang", str(tmp_path / "b.json"), "--model",
                                           str(mixtral["ckpt"])],
            "unknown routed_experts_dtype 'float8_e4m3'")
    np.save(tmp_path / "f.npy", np.zeros((3, 2, 2), np.float32))
    refused(capsys, tmp_path / "st", "r", ["npy", str(tmp_path / "f.npy")],
            "expert ids must be integers, got float32")


def test_a_layer_count_that_fits_no_layout(mixtral, tmp_path, capsys):
    np.save(tmp_path / "a.npy", np.zeros((4, 5, 2), np.int32))  # Mixtral: 2 layers
    refused(capsys, tmp_path / "st", "r", ["npy", str(tmp_path / "a.npy"), "--model",
                                           str(mixtral["ckpt"])],
            "the layer axis has 5 entries, which fits no layout of the model (2 layers")


def test_ids_not_below_the_number_of_experts(mixtral, tmp_path, capsys):
    routes = np.zeros((4, 2, 2), np.int32)
    routes[2, 1] = [1, 9]
    np.save(tmp_path / "a.npy", routes)
    refused(capsys, tmp_path / "st", "r", ["npy", str(tmp_path / "a.npy"), "--model",
                                           str(mixtral["ckpt"])],
            "expert id 9 at row 2 is not below the model's 4 experts")


def test_a_token_file_with_other_examples_or_lengths(mixtral, tmp_path, capsys):
    bodies = tmp_path / "b.jsonl"
    bodies.write_text("".join(json.dumps(vllm_body(r, with_ids=False)) + "\n"
                              for r in mixtral["routing"]))
    short = write_tokens(tmp_path / "short.jsonl", mixtral["ids"][:2])
    refused(capsys, tmp_path / "st", "r", ["vllm", str(bodies), "--model",
                                           str(mixtral["ckpt"]), "--tokens", str(short)],
            "--tokens has 2 example(s), the vllm input has 3")
    shorter = write_tokens(tmp_path / "shorter.jsonl", [ids[:-3] if i == 1 else ids
                                                        for i, ids in enumerate(mixtral["ids"])])
    n = len(mixtral["ids"][1])
    refused(capsys, tmp_path / "st", "r", ["vllm", str(bodies), "--model",
                                           str(mixtral["ckpt"]), "--tokens", str(shorter)],
            f"example 1 (b.jsonl:2 choice 0): {n - 3} token ids, but the routing covers {n} "
            "tokens")


def test_bad_input_with_overwrite_keeps_the_old_run(mixtral, tmp_path, capsys):
    np.save(tmp_path / "ok.npy", np.array(mixtral["routing"][0]["experts"]))
    store = tmp_path / "st"
    assert main(["import", "npy", str(tmp_path / "ok.npy"), "--store", str(store), "--run", "r",
                 "--model", str(mixtral["ckpt"])]) == 0
    before = len(open_store(store).routes("r"))
    np.save(tmp_path / "bad.npy", np.full((3, 2, 2), 11, np.int32))
    capsys.readouterr()
    assert main(["import", "npy", str(tmp_path / "bad.npy"), "--store", str(store), "--run", "r",
                 "--model", str(mixtral["ckpt"]), "--overwrite"]) == 2
    assert len(open_store(store).routes("r")) == before
    assert main(["import", "npy", str(tmp_path / "ok.npy"), "--store", str(store),
                 "--run", "r"]) == 2  # exists: refused before reading
    assert "already exists" in capsys.readouterr().err


def test_a_file_of_another_format_is_named(mixtral, tmp_path, capsys):
    (tmp_path / "gen.json").write_text(json.dumps(sglang_body(mixtral["routing"][0])))
    refused(capsys, tmp_path / "st", "r", ["vllm", str(tmp_path / "gen.json"), "--model",
                                           str(mixtral["ckpt"])],
            "gen.json looks like sglang output, not vllm: try `routeviz import sglang ...`")


def test_an_unknown_format_lists_the_installed_ones(tmp_path, capsys):
    (tmp_path / "x.npy").write_bytes(b"")
    refused(capsys, tmp_path / "st", "r", ["vllm2", str(tmp_path / "x.npy")],
            "unknown import format 'vllm2'; available: megatron, npy, sglang, sglang-recorder, "
            "vllm")


PLUGIN = '''
import csv

import numpy as np

from routeviz.importers.base import Capture, Importer, Sequence


def read(paths, options):
    """CSV rows: sequence, token, layer, expert (one row per choice)."""
    rows = [tuple(int(v) for v in r) for p in paths for r in csv.reader(p.open()) if r]
    sequences = []
    for s in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == s]
        n_tok = max(r[1] for r in mine) + 1
        n_layer = max(r[2] for r in mine) + 1
        experts = np.full((n_tok, n_layer, 2), -1)
        for _, t, layer, e in mine:
            slot = int((experts[t, layer] >= 0).sum())
            experts[t, layer, slot] = e
        sequences.append(Sequence(experts, f"csv sequence {s}"))
    return Capture(sequences, version="csv v1", rank_order="unknown",
                   files=[str(p) for p in paths])


IMPORTER = Importer("csv-routes", "routing as CSV rows", read)
'''


def test_a_third_party_format_from_a_package(tmp_path, monkeypatch, capsys):
    site = tmp_path / "site"
    site.mkdir()
    write_distribution(site, "routeviz-csv", {"routeviz.importers": {
        "csv-routes": "routeviz_csv:IMPORTER"}}, {"routeviz_csv.py": PLUGIN})
    monkeypatch.syspath_prepend(str(site))
    assert "csv-routes" in importers()
    (tmp_path / "r.csv").write_text("0,0,0,3\n0,0,0,1\n0,1,0,2\n1,0,0,0\n")
    assert main(["import", "csv-routes", str(tmp_path / "r.csv"), "--store",
                 str(tmp_path / "st"), "--run", "c", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "csv-routes" and out["version"] == "csv v1"
    routes = open_store(tmp_path / "st").routes("c")
    got = sorted(zip(routes.example, routes.token, routes.site.astype(str), routes.choice))
    assert got == [(0, 0, "layers.0", 1), (0, 0, "layers.0", 3), (0, 1, "layers.0", 2),
                   (1, 0, "layers.0", 0)]


def test_the_builtins_are_the_entry_points_pyproject_lists():
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["routeviz.importers"] == BUILTINS
    assert {name: imp.name for name, imp in importers().items() if name in BUILTINS} == \
        {name: name for name in BUILTINS}
