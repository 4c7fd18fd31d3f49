"""Route rows on disk: compact encoding, site-major order, lossless float32, float16 opt-in."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import routeviz
from routeviz.errors import RoutevizError
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


def test_rows_are_site_major_and_encoded_compactly(store_dir):
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
    written = []  # every path pyarrow is asked to write: the temporary names
    real_write = pq.write_table

    def spy(table, where, **kwargs):
        written.append(Path(where))
        return real_write(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", spy)
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
