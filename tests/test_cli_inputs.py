"""`routeviz trace` keeps every input it is given: `--text A B` and `--text A --text B` (the
same for --file and --model), and `--limit N` takes a seeded sample spread over the
dataset's tags, recorded in the run's config."""

import json

import pytest

from routeviz.cli import main
from routeviz.store import open_store


def stored_texts(store_dir, run):
    store = open_store(store_dir)
    return store.engine.query("SELECT text FROM examples WHERE run = $run ORDER BY example",
                              {"run": run}).text.tolist()


@pytest.mark.parametrize("spelling", [["--text", "the model", "--text", "to and in"],
                                      ["--text", "the model", "to and in"]])
def test_both_spellings_of_text_keep_every_input(spelling, mixtral_dir, store_dir, capsys):
    code = main(["trace", "--model", str(mixtral_dir), *spelling, "--store", str(store_dir),
                 "--run", "two", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 2
    assert stored_texts(store_dir, "two") == ["the model", "to and in"]


@pytest.mark.parametrize("repeat", [True, False])
def test_both_spellings_of_file_keep_every_input(repeat, tmp_path, mixtral_dir, store_dir,
                                                  capsys):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("the model")
    second.write_text("to and in")
    files = ["--file", str(first), "--file", str(second)] if repeat else \
        ["--file", str(first), str(second)]
    code = main(["trace", "--model", str(mixtral_dir), *files, "--store", str(store_dir),
                 "--run", "files", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["examples"] == 2
    assert stored_texts(store_dir, "files") == ["the model", "to and in"]


def test_a_repeated_model_flag_is_a_series_not_the_last_one(mixtral_dir, store_dir, capsys):
    code = main(["trace", "--model", str(mixtral_dir), "--model", str(mixtral_dir),
                 "--text", "the", "--store", str(store_dir), "--run", "one"])
    assert code == 2  # both kept: two checkpoints ask for --series
    assert "--series" in capsys.readouterr().err


def test_limit_on_own_texts_keeps_the_first_and_zero_is_refused(mixtral_dir, store_dir, capsys):
    base = ["trace", "--model", str(mixtral_dir), "--text", "the", "a", "to", "--store",
            str(store_dir)]
    assert main([*base, "--run", "two", "--limit", "2"]) == 0
    assert stored_texts(store_dir, "two") == ["the", "a"]
    assert main([*base, "--run", "none", "--limit", "0"]) == 2
    assert "--limit must be 1 or more, got 0" in capsys.readouterr().err
