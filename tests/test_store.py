import pytest
import torch

import routeviz
from routeviz.errors import RoutevizError
from tests.toy import ToyMoE, register_toy


def _trace(store_dir, run, batches=2):
    register_toy()
    model = ToyMoE(layers=1, k=1)
    with routeviz.trace(model, store_dir, run) as t:
        for i in range(batches):
            with t.batch(examples=[i]):
                model(torch.tensor([[1, 2, 3]]))


def test_open_store_errors(tmp_path):
    with pytest.raises(RoutevizError, match="does not exist"):
        routeviz.open_store(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(RoutevizError, match="is a file"):
        routeviz.open_store(tmp_path / "f")
    (tmp_path / "d").mkdir()
    with pytest.raises(RoutevizError, match="not a routeviz store"):
        routeviz.open_store(tmp_path / "d")


def test_part_file_layout_is_hive_and_atomic(store_dir):
    _trace(store_dir, "lay")
    parts = list((store_dir / "routes" / "run=lay").iterdir())
    assert parts and all(p.name.startswith("part-") and p.suffix == ".parquet" for p in parts)
    assert all(p.read_bytes()[:4] == b"PAR1" for p in parts)


def test_unknown_run_lists_runs(store_dir):
    _trace(store_dir, "alpha")
    with pytest.raises(RoutevizError, match="available: alpha"):
        routeviz.open_store(store_dir).routes("beta")


def test_damaged_part_is_named_and_skipped(store_dir):
    _trace(store_dir, "good")
    _trace(store_dir, "bad")
    victim = next((store_dir / "routes" / "run=bad").glob("part-*.parquet"))
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 2])
    with pytest.warns(UserWarning, match=victim.name):
        store = routeviz.open_store(store_dir)
    assert victim in store.damaged
    assert len(store.routes("good")) == 6


def test_temporary_files_are_ignored_and_cleaned(store_dir):
    _trace(store_dir, "t")
    stray = store_dir / "routes" / "run=t" / ".tmp-part-dead.parquet"
    stray.write_bytes(b"half a file")
    store = routeviz.open_store(store_dir)
    assert len(store.routes("t")) == 6
    assert store.clean_temporary(older_than=0) == [stray]
    assert not stray.exists()


def test_delete_run(store_dir):
    _trace(store_dir, "a")
    _trace(store_dir, "b")
    store = routeviz.open_store(store_dir)
    store.delete_run("a")
    assert store.run_names() == ["b"]
    assert set(store.sql("SELECT DISTINCT run FROM routes").df().run) == {"b"}
