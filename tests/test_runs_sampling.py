"""routeviz/runs/sampling.py: `--limit N` (and the Runs page's Examples count) take a seeded
sample spread over the dataset's example tags, not its head, and say so in the config."""

import collections
import json

import pytest

from routeviz.cli import main
from routeviz.runs.inputs import Item
from routeviz.runs.sampling import sample_items
from routeviz.store import open_store
from tests import app_support
from tests.app_support import open_page

toy_models = app_support.toy_models  # shared fixture


def items(tags_per_item):
    return [Item(text=f"text {i}", source=f"s{i}", tags=tags)
            for i, tags in enumerate(tags_per_item)]


def test_each_value_keeps_its_share_even_where_the_head_has_one_value():
    # the head of 4 is all shape=round; the dataset is 3/4 round, 1/4 square
    dataset = items([{"shape": "round"}] * 9 + [{"shape": "square"}] * 3)
    subset = sample_items(dataset, 4, seed=0)
    counts = collections.Counter(i.tags["shape"] for i in subset.items)
    assert counts == {"round": 3, "square": 1}
    assert subset.config == {"seed": 0, "n": 4, "of": 12, "families": ["shape"],
                             "strategy": "stratified"}
    assert subset.warnings == []
    numbers = [int(i.text.split()[1]) for i in subset.items]
    assert numbers == sorted(numbers)  # the dataset's order is kept


def test_two_families_are_balanced_at_once():
    dataset = items([{"colour": c, "size": s} for c in "rgbk" for s in ("S", "M", "L", "XL")
                     for _ in range(3)])  # 48 items, 4 × 4 values, 3 of each pair
    subset = sample_items(dataset, 16, seed=3)
    for family in ("colour", "size"):
        assert set(collections.Counter(i.tags[family] for i in subset.items).values()) == {4}


def test_the_seed_draws_again_and_untagged_items_are_shuffled():
    dataset = items([{}] * 50)
    first, again, other = (sample_items(dataset, 10, seed=s) for s in (1, 1, 2))
    assert [i.text for i in first.items] == [i.text for i in again.items]
    assert [i.text for i in first.items] != [i.text for i in other.items]
    assert first.config["strategy"] == "shuffled" and first.config["n"] == 10
    assert [i.text for i in first.items] != [f"text {n}" for n in range(10)]  # not the head


def test_a_one_value_subset_is_warned_about_and_recorded():
    dataset = items([{"shape": "round"}] * 3 + [{"shape": "square"}])
    subset = sample_items(dataset, 1)
    assert len(subset.warnings) == 1 and "shape=" in subset.warnings[0]
    assert "2 values" in subset.warnings[0]
    assert subset.config["warnings"] == subset.warnings


def test_no_limit_is_every_item_and_a_limit_below_one_is_refused():
    dataset = items([{"shape": "round"}] * 3)
    assert sample_items(dataset, None).config is None
    assert sample_items(dataset, 5).config["strategy"] == "all"
    with pytest.raises(Exception, match="--limit must be 1 or more"):
        sample_items(dataset, 0)


def test_trace_dae_syn_limit_covers_every_letter(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["trace", "--model", "dae-syn-top-k", "--dataset", "dae-syn", "--limit", "512",
                 "--store", str(store), "--run", "d", "--batch-size", "256"]) == 0
    capsys.readouterr()
    st = open_store(store)
    letters = st.engine.query("SELECT value, count(DISTINCT example) AS n FROM tags "
                              "WHERE run = 'd' AND name = 'letter' GROUP BY value")
    assert len(letters) == 8 and set(letters.n) == {64}  # the head of 512 is all letter=A
    sampling = st.facts("d").config["sampling"]
    assert sampling["seed"] == 0 and sampling["n"] == 512 and sampling["of"] == 4096
    assert sampling["strategy"] == "stratified" and "letter" in sampling["families"]


def test_trace_warns_on_stderr_when_a_family_has_one_value(tmp_path, capsys):
    store = tmp_path / "store"
    assert main(["trace", "--model", "dae-syn-top-k", "--dataset", "dae-syn", "--limit", "1",
                 "--store", str(store), "--run", "one", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["examples"] == 1
    assert "warning: the one example sampled has letter=" in captured.err


def test_runs_page_samples_records_and_warns(tmp_path, toy_models):
    store = tmp_path / "store"
    at = open_page(store, "runs")
    at.selectbox(key="runs_model").set_value("toy-text").run()
    at.selectbox(key="runs_dataset").set_value("toy-words")
    at.number_input(key="runs_limit").set_value(1)
    at.text_input(key="runs_name").set_value("one")
    at.button(key="runs_trace").click().run()
    assert not at.error and not at.exception
    assert any("Last trace" in w.value and "kind=" in w.value for w in at.warning)
    sampling = open_store(store).facts("one").config["sampling"]
    assert sampling["n"] == 1 and sampling["of"] == 8 and sampling["seed"] == 0
