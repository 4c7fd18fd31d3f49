"""Slow query results kept on disk between app processes, so a page's first paint after a
restart (Timeline's series metrics: ~9 CPU seconds for 21 steps) reads them back instead.

`common.cached` asks here first on a cache miss. A result is written when it is a
DataFrame that took at least SLOW_S to compute and reads back from Parquet exactly equal
(dtypes included; anything else is not kept). The key hashes the store's path, the
generation of the runs the call looks at (their directories' mtimes), the function and its
arguments, and the code (code_fingerprint), so a write to those runs or a new version of
routeviz makes a new key and the old file is never read again;
files beyond MAX_FILES are removed oldest first. ROUTEVIZ_APP_CACHE names the folder
(default ~/.cache/routeviz/app); "off" turns this off.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pandas as pd

SLOW_S = 0.3  # a few hundred ms in a page's first paint is worth a Parquet read of a few ms
MAX_FILES = 256


def folder() -> Path | None:
    where = os.environ.get("ROUTEVIZ_APP_CACHE", "")
    if where == "off":
        return None
    return Path(where) if where else Path.home() / ".cache" / "routeviz" / "app"


_CODE: list = []


def code_fingerprint() -> str:
    """The code that computed a result: every source file of routeviz and of the app's
    pages (name, size, mtime), read once per process. An upgrade or an edit makes new keys,
    so a frame computed by other code is never read back."""
    if not _CODE:
        root = Path(__file__).resolve().parents[1]
        files = sorted(p for folder in ("routeviz", "app_pages")
                       for p in (root / folder).rglob("*.py"))
        stamp = [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                 for p in files]
        _CODE.append(hashlib.sha256(repr(stamp).encode()).hexdigest()[:16])
    return _CODE[0]


def key_of(*parts) -> str:
    return hashlib.sha256(repr((code_fingerprint(),) + parts).encode()).hexdigest()[:32]


def load(key: str) -> pd.DataFrame | None:
    base = folder()
    path = base / f"{key}.parquet" if base else None
    if path is None or not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception:  # noqa: BLE001 — a damaged or foreign file: compute again
        return None


def save(key: str, result, seconds: float) -> None:
    base = folder()
    if base is None or seconds < SLOW_S or not isinstance(result, pd.DataFrame):
        return
    tmp = base / f".{key}-{uuid.uuid4().hex}.tmp"
    try:
        base.mkdir(parents=True, exist_ok=True)
        result.to_parquet(tmp)
        pd.testing.assert_frame_equal(pd.read_parquet(tmp), result, check_exact=True)
        tmp.replace(base / f"{key}.parquet")
    except Exception:  # noqa: BLE001 — not storable exactly (lists, mixed objects): skip
        tmp.unlink(missing_ok=True)
        return
    _prune(base)


def _prune(base: Path) -> None:
    files = sorted(base.glob("*.parquet"), key=lambda p: p.stat().st_mtime)
    for old in files[:-MAX_FILES] if len(files) > MAX_FILES else []:
        old.unlink(missing_ok=True)
