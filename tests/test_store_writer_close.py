"""routeviz/store/writer.py: a failure of the writer thread's last flush reaches close()."""

import threading

import pyarrow as pa
import pytest

from routeviz.store.writer import Writer


def test_a_last_flush_that_fails_is_raised_by_close_not_waited_on(tmp_path):
    """The thread takes the stop, its last flush fails (the folder it writes into is gone):
    close() raises the failure. Before, the thread went on waiting for a second stop and
    close() joined it for ever (a torchrun job hung on it)."""
    gone = tmp_path / "gone"
    writer = Writer(tmp_path, "r", flush_rows=10**9, flush_seconds=3600,
                    place=lambda table: gone / table)
    tokens = pa.table({"example": pa.array([0], pa.int64()), "token": pa.array([0], pa.int32()),
                       "text": ["a"]})
    for _ in range(2):  # a second batch starts the thread
        writer.put(lambda: (None, {"tokens": tokens}))
    failure = []

    def close():
        try:
            writer.close()
        except RuntimeError as exc:
            failure.append(exc)

    closing = threading.Thread(target=close, daemon=True)
    closing.start()
    closing.join(timeout=30)
    assert not closing.is_alive(), "close() is still waiting on the writer thread"
    assert len(failure) == 1 and "routeviz writer failed" in str(failure[0])
    with pytest.raises(RuntimeError, match="routeviz writer failed"):
        writer.put(lambda: (None, {}))
