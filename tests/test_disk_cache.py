"""app_pages.disk_cache: slow frames kept between app processes, read back exactly; fast or
inexact results not kept; keys that change with the code that computed them."""

from __future__ import annotations

import pandas as pd

from app_pages import disk_cache


def test_a_slow_frame_reads_back_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTEVIZ_APP_CACHE", str(tmp_path))
    frame = pd.DataFrame({"site": ["a", "b"], "focus": [0.25, 0.5], "n": [1, 2]})
    key = disk_cache.key_of("/store", ("gen",), "timeline", ("s",), ())
    disk_cache.save(key, frame, seconds=disk_cache.SLOW_S + 1)
    back = disk_cache.load(key)
    pd.testing.assert_frame_equal(back, frame, check_exact=True)
    assert disk_cache.load(disk_cache.key_of("/store", ("gen2",), "timeline", ("s",), ())) is None


def test_fast_or_inexact_results_are_not_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTEVIZ_APP_CACHE", str(tmp_path))
    disk_cache.save("fast", pd.DataFrame({"x": [1]}), seconds=0.01)
    disk_cache.save("lists", pd.DataFrame({"x": [[1, 2], "a"]}), seconds=5)  # mixed objects
    disk_cache.save("dict", {"x": 1}, seconds=5)
    assert [disk_cache.load(k) for k in ("fast", "lists", "dict")] == [None] * 3
    assert not list(tmp_path.glob("*.tmp"))  # nothing half-written left


def test_off_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTEVIZ_APP_CACHE", "off")
    disk_cache.save("k", pd.DataFrame({"x": [1.0]}), seconds=5)
    assert disk_cache.load("k") is None


def test_keys_change_with_the_code(monkeypatch):
    key = disk_cache.key_of("/store", (), "f", (), ())
    monkeypatch.setattr(disk_cache, "_CODE", ["another version"])
    assert disk_cache.key_of("/store", (), "f", (), ()) != key
