"""Hostile files through the CLI, damaged part files, the app's server settings and how
weights load: every failure is one line, and what is already stored stays as it was."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tomllib
from PIL import Image

import routeviz
from routeviz.cli import main
from routeviz.runs.inputs import MAX_IMAGE_BYTES, MAX_TEXT_BYTES
from routeviz.runs.record import record
from tests import app_support
from tests.app_toys import load, toy_dataset

ROOT = Path(__file__).resolve().parents[1]
toy_models = app_support.toy_models  # shared fixture: toy-text / toy-image as sample models


def encode(image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


def _rgb(width=30, height=20):
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8))


def _animated() -> bytes:
    frames = [Image.new("P", (16, 16), i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def bad_files() -> dict:
    """name -> (file name, bytes, words the one-line message must contain)."""
    jpeg = encode(_rgb(64, 64), "JPEG")
    return {
        "empty": ("empty.txt", b"", "empty"),
        "binary": ("blob.txt", bytes(range(256)) * 8, "binary"),
        "invalid-utf8": ("latin1.txt", b"caf\xe9 au lait", "not valid UTF-8"),
        "nul-bytes": ("nul.txt", b"abc\x00def", "NUL"),
        "10mb-text": ("huge.txt", b"word " * (MAX_TEXT_BYTES // 5 + 1), "limit"),
        "corrupt-image": ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"garbage" * 30, "corrupt.png"),
        "truncated-image": ("truncated.jpg", jpeg[: len(jpeg) // 2], "truncated"),
        "decompression-bomb": ("bomb.png", encode(Image.new("1", (12000, 12000))),
                               "decompression bomb"),
        "text-named-png": ("liar.png", b"just some text, not an image", "not an image"),
        "empty-image": ("empty.png", b"", "empty"),
    }


def odd_files() -> dict:
    """Valid but unusual inputs: name -> (file name, bytes, model)."""
    gray16 = Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    return {
        "rtl": ("rtl.txt", "مرحبا بالعالم hello שלום".encode(), "toy-text"),
        "combining": ("zalgo.txt", "e\u0301\u0302\u0303 Z\u0351\u0352 a\u0308".encode(), "toy-text"),
        "emoji": ("emoji.txt", "🧑‍🚀 🏳️‍🌈 launch 👍🏽".encode(), "toy-text"),
        "animated": ("anim.gif", _animated(), "toy-image"),
        "cmyk": ("cmyk.jpg", encode(_rgb().convert("CMYK"), "JPEG"), "toy-image"),
        "16-bit": ("gray16.png", encode(gray16), "toy-image"),
        "10mb-text": ("ten-mb.txt", b"word " * 2_000_000, "toy-text"),  # 10 MB, under 10 MiB
        "huge-aspect": ("wide.png", encode(Image.new("RGB", (20000, 2), (9, 99, 199))),
                        "toy-image"),
    }


def listing(path: Path) -> list[tuple]:
    """(path, size, mtime) of every file under a store: what 'unchanged' means."""
    return sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A store holding one run, and a folder of the hostile and odd files."""
    base = tmp_path_factory.mktemp("security")
    store = base / "store"
    record(load("toy-text"), toy_dataset()[:4], store, "kept", batch_size=2)
    files = base / "files"
    files.mkdir()
    for name, data, *_ in list(bad_files().values()) + list(odd_files().values()):
        (files / name).write_bytes(data)
    return store, files


def trace_file(store, path, model, run, capsys):
    code = main(["trace", "--model", model, "--file", str(path), "--store", str(store),
                 "--run", run])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


@pytest.mark.parametrize("case", list(bad_files()))
def test_cli_bad_file_is_one_line_and_store_unchanged(seeded, case, toy_models, capsys):
    store, files = seeded
    name, _, words = bad_files()[case]
    before = listing(store)
    model = "toy-image" if name.endswith((".png", ".jpg")) else "toy-text"
    code, err = trace_file(store, files / name, model, "new", capsys)
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert name in err[0] and words.lower() in err[0].lower(), err
    assert listing(store) == before
    assert routeviz.open_store(store).run_names() == ["kept"]


@pytest.mark.parametrize("case", list(odd_files()))
def test_cli_odd_but_valid_file_is_traced(seeded, case, toy_models, capsys, tmp_path):
    store, files = seeded
    name, data, model = odd_files()[case]
    before = listing(store)
    run = "odd-" + case
    code, err = trace_file(store, files / name, model, run, capsys)
    assert code == 0, err
    if case == "10mb-text":  # accepted, and the cut to the model's length is said
        assert any("truncated" in line for line in err), err
    after = {p: (s, m) for p, s, m in listing(store)}
    assert all(after.get(p) == (s, m) for p, s, m in before)  # old files untouched
    opened = routeviz.open_store(store)
    assert len(opened.routes(run)) > 0
    assert opened.examples(run).source.tolist() == [name]
    if case in ("rtl", "combining", "emoji"):  # the exotic characters come back as tokens
        stored = "".join(opened.tokens(run).text.tolist())
        text = data.decode()
        assert any(ch in stored for ch in text if not ch.isascii())
    opened.delete_run(run)


@pytest.mark.slow  # a fresh Python process
def test_cli_subprocess_prints_no_traceback(seeded):
    store, files = seeded
    before = listing(store)
    proc = subprocess.run([sys.executable, "-m", "routeviz.cli", "trace", "--model", "none",
                           "--file", str(files / "truncated.jpg"), "--store", str(store),
                           "--run", "new"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "truncated.jpg" in lines[0] and "Traceback" not in proc.stderr
    assert listing(store) == before


# -- a damaged part file -------------------------------------------------------------------

@pytest.fixture
def damaged_store(tmp_path):
    """Two runs; the routes part file of run 'a' overwritten with garbage on disk."""
    store = tmp_path / "store"
    record(load("toy-text"), toy_dataset()[:4], store, "a", batch_size=2)
    record(load("toy-text"), toy_dataset()[4:8], store, "b", batch_size=2)
    opened = routeviz.open_store(store)
    expected_b = len(opened.routes("b"))
    bad = min((store / "routes" / "run=a").glob("part-*.parquet"))
    # the writer flushes on size or time, so on a busy machine a run's routes may span
    # several part files: the rows left are those of the others
    expected_a = len(opened.routes("a")) - pq.ParquetFile(bad).metadata.num_rows
    opened.close()
    bad.write_bytes(b"PAR1 this is not a parquet file any more PAR1")
    return store, bad, expected_b, expected_a


def test_damaged_part_is_named_skipped_and_the_rest_reads(damaged_store, capsys):
    store, bad, expected_b, expected_a = damaged_store
    before = listing(store)
    with pytest.warns(UserWarning, match=re.escape(bad.name)):
        opened = routeviz.open_store(store)
    assert opened.damaged == [bad]
    assert opened.run_names() == ["a", "b"]
    assert len(opened.routes("a")) == expected_a  # the damaged file's rows are left out ...
    assert len(opened.routes("b")) == expected_b > 0  # ... every other file reads
    assert len(opened.tokens("a")) > 0 and len(opened.examples("a")) == 4

    capsys.readouterr()
    with pytest.warns(UserWarning, match=re.escape(bad.name)):
        assert main(["runs", "--store", str(store)]) == 0
    runs = capsys.readouterr()
    assert "Traceback" not in runs.err
    assert [line.split()[0] for line in runs.out.splitlines()] == ["a", "b"]
    with pytest.warns(UserWarning, match=re.escape(bad.name)):
        assert main(["metrics", "--store", str(store), "--run", "b", "--json"]) == 0
    metrics = capsys.readouterr()
    assert "Traceback" not in metrics.err
    assert metrics.out.strip().startswith("{")
    assert listing(store) == before  # reading never rewrites or deletes anything


# -- the app's server settings ---------------------------------------------------------------

def test_streamlit_config_binds_localhost_and_caps_uploads():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["address"] == "127.0.0.1"
    assert isinstance(server["maxUploadSize"], int) and 1 <= server["maxUploadSize"] <= 200
    # what streamlit accepts is no more than what the loaders accept
    assert server["maxUploadSize"] * 1024 * 1024 <= MAX_IMAGE_BYTES
    readme = (ROOT / "README.md").read_text()
    security = readme.split("## Security", 1)[1].split("\n## ", 1)[0]
    assert "127.0.0.1" in security and "--server.address" in security
    assert "maxUploadSize" in security


# -- how weights load ------------------------------------------------------------------------

def sources() -> list[Path]:
    paths = [ROOT / "app.py"]
    for package in ("routeviz", "sample_models", "app_pages", "tracers"):
        paths += sorted((ROOT / package).rglob("*.py"))
    return [p for p in paths if p.exists()]


def test_no_pickle_and_torch_load_only_with_weights_only():
    offenders = []
    for path in sources():
        text = path.read_text()
        if re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib|cloudpickle)\b", text, re.MULTILINE):
            offenders.append(f"{path}: imports pickle")
        for call in re.finditer(r"torch\.load\(", text):
            args = text[call.end(): call.end() + 300].split("\n\n")[0]
            if "weights_only=True" not in args:
                offenders.append(f"{path}: torch.load without weights_only=True")
        if re.search(r"trust_remote_code\s*=\s*True", text):
            offenders.append(f"{path}: trust_remote_code=True hard-coded")
    assert len(sources()) > 20
    assert offenders == []


# -- markup in figures and names in reports --------------------------------------------------

PAYLOADS = ("<script>alert(1)</script>", "<img/src=x/onerror=alert(2)>")


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    from routeviz.runs.inputs import Item

    items = [Item(text=f"alpha {PAYLOADS[0]} beta {PAYLOADS[1]} {i}", source=f"{PAYLOADS[1]}.txt",
                  tags={"kind": PAYLOADS[i % 2], "topic": PAYLOADS[0]}) for i in range(6)]
    store = tmp_path_factory.mktemp("hostile") / "store"
    record(load("toy-text"), items, store, "hostile", batch_size=3)
    return routeviz.open_store(store)


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)


def test_every_catalog_figure_escapes_labels_and_hover(hostile_store):
    from routeviz.figures import catalog

    names = catalog.available(hostile_store, "hostile")
    assert len(names) >= 4
    escaped = 0
    for name in names:
        fig = catalog.build(hostile_store, "hostile", name)
        texts = list(strings(fig.to_plotly_json()))
        raw = [t for t in texts if "<script" in t or "<img" in t]
        assert raw == [], (name, raw[:3])
        escaped += sum("&lt;script&gt;" in t or "&lt;img" in t for t in texts)
    assert escaped > 0  # the payloads are there, as text


@pytest.mark.parametrize("run", ["../hostile", "a/b", "x;rm -rf ~", "$(touch pwned)", "..",
                                 "<script>"])
def test_report_run_names_are_refused(hostile_store, run, tmp_path, capsys):
    before = listing(hostile_store.path)
    out = tmp_path / "out"
    code = main(["report", "--store", str(hostile_store.path), "--run", run, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "run" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["out"])
    assert not out.exists() or not any(out.iterdir())
    assert listing(hostile_store.path) == before


def test_report_out_with_shell_metacharacters_stays_inside(hostile_store, tmp_path):
    from routeviz.report import write_report

    out = tmp_path / "out;$(touch pwned)`id` & x"
    written = write_report(hostile_store, "hostile", out, images=False)
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # nothing else appeared
    assert not (ROOT / "pwned").exists()
