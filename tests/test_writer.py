"""Route rows on disk: compact encoding, site-major order, lossless float32, float16 opt-in."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import routeviz
from routeviz.errors import RoutevizError
from routeviz.store import core, schema, write_part
from tests.toy import ToyMoE, register_toy


@pytest.fixture(autouse=True)
def _toy():
    register_toy()


def _trace(store_dir, run, **options):
    torch.manual_seed(0)
    model = ToyMoE(layers=3, k=2)
    ids = torch.randint(0, 16, (2, 4, 6))
    captured = []  # router outputs, to compare with what was stored
    handles = [r.register_forward_hook(lambda m, i, o: captured.append(o[0].detach().clone()))
               for r in model.routers]
    with routeviz.trace(model, store_dir, run, **options) as tracer:
        for batch in ids:
            with tracer.batch():
                model(batch)
    for h in handles:
        h.remove()
    return captured


def test_float32_weights_read_back_bit_equal(store_dir):
    captured = _trace(store_dir, "f32")
    routes = routeviz.open_store(store_dir).routes("f32")
    assert routes.weight.dtype == np.float32
    # captured: per batch, per layer [b, s, k]; examples 0-3 then 4-7
    for n, weights in enumerate(captured):
        batch, layer = divmod(n, 3)
        rows = routes[(routes.layer == layer) & (routes.example >= 4 * batch)
                      & (routes.example < 4 * batch + 4)]
        rows = rows.sort_values(["example", "token", "rank"])
        assert np.array_equal(rows.weight.to_numpy(), weights.numpy().reshape(-1))


def test_rows_are_site_major_and_encoded_compactly(store_dir, monkeypatch):
    monkeypatch.setattr(core, "COMPRESS_FROM_BYTES", 0)  # zstd at any size (see below)
    _trace(store_dir, "order", flush_seconds=600)  # one part file, flushed at the end
    files = list((store_dir / "routes").glob("run=*/part-*.parquet"))
    assert len(files) == 1
    table = pq.read_table(files[0])
    layers = table.column("layer").to_numpy()
    assert (np.diff(layers) >= 0).all()  # grouped by site, in layer order
    examples = table.column("example").to_numpy()
    for layer in range(3):
        assert (np.diff(examples[layers == layer]) >= 0).all()  # ids run in order per site
    meta = pq.read_metadata(files[0]).row_group(0)
    columns = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    assert "BYTE_STREAM_SPLIT" in columns["weight"].encodings
    assert "RLE_DICTIONARY" in columns["site"].encodings
    assert columns["weight"].compression == "ZSTD"


def test_small_tables_are_written_uncompressed_large_ones_zstd(tmp_path):
    """zstd costs a fixed set-up per file; below COMPRESS_FROM_BYTES a file is written
    without it (a trace of one input writes three such files), with the same encodings
    and the same values."""
    n_small = 200
    n_large = core.COMPRESS_FROM_BYTES // 20 + 1  # 28 bytes a row in memory: over it
    for n in (n_small, n_large):
        rng = np.random.default_rng(n)
        table = pa.table({
            "example": pa.array(np.repeat(np.arange(n // 8 + 1), 8)[:n], pa.int64()),
            "token": pa.array(np.arange(n) % 8, pa.int32()),
            "layer": pa.array(np.zeros(n, np.int16)),
            "site": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                                   pa.array(["g"])),
            "kind": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)),
                                                   pa.array(schema.KINDS)),
            "choice": pa.array(rng.integers(0, 8, n), pa.int32()),
            "rank": pa.array(np.zeros(n, np.int8)),
            "weight": pa.array(rng.random(n, dtype=np.float32)),
        })
        path = write_part(tmp_path, "routes", f"r{n}", table)
        meta = pq.read_metadata(path).row_group(0)
        columns = {meta.column(i).path_in_schema: meta.column(i)
                   for i in range(meta.num_columns)}
        want = "ZSTD" if table.nbytes >= core.COMPRESS_FROM_BYTES else "UNCOMPRESSED"
        assert want == ("UNCOMPRESSED" if n == n_small else "ZSTD")
        assert {c.compression for c in columns.values()} == {want}
        assert "BYTE_STREAM_SPLIT" in columns["weight"].encodings
        assert "RLE_DICTIONARY" in columns["site"].encodings
        assert pq.read_table(path).cast(table.schema).equals(table)


def test_float16_weights_are_opt_in_and_duckdb_reads_them(store_dir):
    captured = _trace(store_dir, "f16", weight_dtype="float16")
    files = list((store_dir / "routes").glob("run=*/part-*.parquet"))
    assert str(pq.read_schema(files[0]).field("weight").type) == "halffloat"
    store = routeviz.open_store(store_dir)
    total = store.con.execute("SELECT sum(weight) FROM routes").fetchone()[0]
    want = sum(float(w.numpy().astype(np.float16).astype(np.float64).sum()) for w in captured)
    assert total == pytest.approx(want, rel=1e-6)


def test_unknown_weight_dtype_lists_the_choices(store_dir):
    with pytest.raises(RoutevizError, match="float16, float32"):
        routeviz.trace(ToyMoE(), store_dir, "x", weight_dtype="bfloat16")


def test_part_files_are_written_under_a_name_no_parquet_glob_matches(store_dir, monkeypatch):
    written = []  # every file pyarrow is asked to open for writing: the temporary names
    real_open = pa.OSFile

    def spy(where, mode="r", **kwargs):
        if "w" in mode:
            written.append(Path(where))
        return real_open(where, mode, **kwargs)

    monkeypatch.setattr(pa, "OSFile", spy)
    _trace(store_dir, "live")  # a new run: its files go straight into the visible folders
    assert written and all(p.name.startswith(".tmp-") for p in written)
    assert not [p for p in written if p.suffix == ".parquet"]  # `*/*.parquet` never sees one
    assert not list(store_dir.rglob(".tmp-*"))  # every one renamed to a real name
    store = routeviz.open_store(store_dir)
    stray = store_dir / "routes" / "run=live" / ".tmp-part-dead.writing"
    stray.write_bytes(b"PAR1 half")
    assert stray in store.clean_temporary(older_than=0)


def test_one_batch_writes_one_runs_row_file_and_no_thread(store_dir):
    model = ToyMoE()
    with routeviz.trace(model, store_dir, "one") as tracer:
        with tracer.batch():
            model(torch.tensor([[1, 2, 3]]))
        assert not tracer.writer._thread.is_alive()  # written on close, in this thread
    assert len(list((store_dir / "runs").glob("run=one/*.parquet"))) == 1
    store = routeviz.open_store(store_dir)
    assert len(store.routes("one")) == 3 * 2 * 2  # tokens x layers x k
    assert store.runs().set_index("run").loc["one", "finished"] is not None
