"""app_pages.common.memo: what Inspect builds for an example (hover cards, figures) is built
once per generation of the run it names, rebuilt when that run is written, kept when
another run is, and bounded."""

from __future__ import annotations

import routeviz
from app_pages import common
from routeviz.runs.record import record
from routeviz.runs.uploads import item_from_text
from tests.app_toys import load as toy


def _handle(path):
    handle = common.StoreHandle(store=routeviz.open_store(path))
    handle.set_signature(common.store_signature(str(path)))
    return handle


def test_built_once_per_generation_of_the_run_it_names(tmp_path):
    path = tmp_path / "store"
    record(toy("toy-words"), [item_from_text("the cat sat")], path, "a")
    record(toy("toy-words"), [item_from_text("a dog ran")], path, "b")
    handle, builds = _handle(path), []

    def build():
        builds.append(1)
        return object()

    first = common.memo(handle, ("inspect", "a", 0, "cards"), build)
    assert common.memo(handle, ("inspect", "a", 0, "cards"), build) is first  # a rerun
    assert len(builds) == 1
    record(toy("toy-words"), [item_from_text("one more")], path, "c")  # another run written
    handle.set_signature(common.store_signature(str(path)))
    assert common.memo(handle, ("inspect", "a", 0, "cards"), build) is first
    record(toy("toy-words"), [item_from_text("the cat sat down")], path, "a", overwrite=True)
    handle.set_signature(common.store_signature(str(path)))  # run a itself rewritten
    again = common.memo(handle, ("inspect", "a", 0, "cards"), build)
    assert again is not first and len(builds) == 2


def test_keeps_only_the_latest_entries(tmp_path, monkeypatch):
    path = tmp_path / "store"
    record(toy("toy-words"), [item_from_text("the cat sat")], path, "a")
    handle = _handle(path)
    monkeypatch.setattr(common, "MEMO_ENTRIES", 3)
    monkeypatch.setattr(common, "_MEMO", {})
    for i in range(5):
        common.memo(handle, ("k", i), lambda i=i: i)
    assert [key[-1] for key in common._MEMO] == [("k", 2), ("k", 3), ("k", 4)]
    built = []
    assert common.memo(handle, ("k", 0), lambda: built.append(1) or 0) == 0 and built  # gone
