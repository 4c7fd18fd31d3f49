"""The dashboard under hostile input: every bad upload is one st.error and the app keeps
running with the store's files untouched; odd-but-valid uploads are traced; a damaged part
file is named in a warning; hostile run names, tags and file names are shown escaped."""

from __future__ import annotations

import re

import pytest

import routeviz
from routeviz.runs.record import record
from tests import app_support
from tests.app_support import htmls, open_page
from tests.app_toys import load, toy_dataset
from tests.test_security import bad_files, listing, odd_files

toy_models = app_support.toy_models  # shared fixture

MIME = {"txt": "text/plain", "png": "image/png", "jpg": "image/jpeg", "gif": "image/gif"}


def upload(at, name, data, model):
    at.selectbox(key="inspect_model").set_value(model)
    at.text_input(key="inspect_run_name").set_value("")
    at.file_uploader(key="inspect_upload").set_value((name, data, MIME[name.rsplit(".", 1)[1]]))
    return at.button(key="inspect_go").click().run()


def seeded_store(path):
    record(load("toy-text"), toy_dataset()[:4], path, "kept", batch_size=2)
    return path


def test_every_bad_upload_is_one_error_and_the_store_is_unchanged(tmp_path, toy_models):
    store = seeded_store(tmp_path / "store")
    at = open_page(store, "inspect")
    before = listing(store)
    for case, (name, data, words) in bad_files().items():
        model = "toy-image" if name.endswith((".png", ".jpg")) else "toy-text"
        upload(at, name, data, model)
        assert not at.exception, (case, [e.value for e in at.exception])
        errors = [e.value for e in at.error]
        assert len(errors) == 1, (case, errors)
        assert name in errors[0] and words.lower() in errors[0].lower(), (case, errors)
        assert "\n" not in errors[0] and "Traceback" not in errors[0]
        assert listing(store) == before, case
    assert routeviz.open_store(store).run_names() == ["kept"]


def test_odd_but_valid_uploads_are_traced(tmp_path, toy_models):
    store = seeded_store(tmp_path / "store")
    at = open_page(store, "inspect")
    before = listing(store)
    for case, (name, data, model) in odd_files().items():
        upload(at, name, data, model)
        assert not at.exception and not at.error, (case, [e.value for e in at.error])
        # one example, or a long text's windows (at most 64)
        assert re.search(r"· (1|64) example", " ".join(m.value for m in at.markdown)), case
    after = {p: (s, m) for p, s, m in listing(store)}
    assert all(after.get(p) == (s, m) for p, s, m in before)  # the old run untouched
    opened = routeviz.open_store(store)
    sources = opened.query_df("SELECT source FROM examples ORDER BY source").source.tolist()
    sources = sorted({re.sub(r" \[window \d+/\d+\]$", "", s) for s in sources})  # one a file
    assert sources == sorted([n for n, _, _ in odd_files().values()]
                             + opened.examples("kept").source.tolist())
    assert len(opened.run_names()) == 1 + len(odd_files())


@pytest.mark.filterwarnings("ignore:.*skipped damaged part:UserWarning")
def test_damaged_part_file_is_named_in_a_warning(tmp_path):
    store = seeded_store(tmp_path / "store")
    record(load("toy-text"), toy_dataset()[4:8], store, "other", batch_size=2)
    bad = min((store / "routes" / "run=kept").glob("part-*.parquet"))
    bad.write_bytes(b"PAR1 garbage PAR1")
    before = listing(store)
    at = open_page(store, "runs")
    warnings = [w.value for w in at.warning]
    assert any(bad.name in w and "damaged" in w for w in warnings), warnings
    assert not at.exception and not at.error
    page = " ".join(str(getattr(el, "value", "")) for el in at.main)
    assert "other" in page  # the healthy run is still listed
    assert listing(store) == before


SCRIPT = "<script>window.__pwned=1</script>"
IMG = "<img src=x onerror=window.__pwned=1>"


def test_hostile_tags_and_sources_are_escaped_on_inspect(tmp_path, toy_models):
    from routeviz.runs.inputs import Item

    store = tmp_path / "store"
    items = [Item(text=f"alpha {SCRIPT} beta {IMG}", source=f"../../{IMG}.txt",
                  tags={"topic": SCRIPT, IMG: "value"})]
    record(load("toy-text"), items, store, "hostile")
    at = open_page(store, "inspect", run="hostile")
    assert not at.exception
    for body in htmls(at):
        assert "<script>" not in body and "<img src=x" not in body, body[:400]
    joined = " ".join(htmls(at))
    assert "&lt;script&gt;" in joined or "&lt;img" in joined
    assert not re.search(r"<img[^>]*onerror", joined)


def test_hostile_run_names_in_the_app_are_refused(tmp_path, toy_models):
    store = seeded_store(tmp_path / "store")
    before = listing(store)
    at = open_page(store, "inspect")
    for bad in ("../evil", "a/b", "x;rm -rf ~", "$(id)"):
        at.selectbox(key="inspect_model").set_value("toy-text")
        at.text_area(key="inspect_text").set_value("some words")
        at.text_input(key="inspect_run_name").set_value(bad)
        at.button(key="inspect_go").click().run()
        assert not at.exception
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and "invalid run name" in errors[0], (bad, errors)
        assert listing(store) == before
    at = open_page(store, "runs")
    at.selectbox(key="runs_model").set_value("toy-text")
    at.text_input(key="runs_name").set_value("../escape")
    at.button(key="runs_trace").click().run()
    assert not at.exception
    assert any("invalid run name" in e.value for e in at.error), [e.value for e in at.error]
    assert listing(store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_checkpoint_with_custom_code_is_refused_in_the_app(tmp_path, mixtral_dir):
    import json
    import shutil

    ckpt = tmp_path / "custom"
    shutil.copytree(mixtral_dir, ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (ckpt / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "executed"
    (ckpt / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    store = seeded_store(tmp_path / "store")
    before = listing(store)
    at = open_page(store, "inspect")
    at.selectbox(key="inspect_model").set_value("Local checkpoint directory…")
    at.run()
    at.text_input(key="inspect_checkpoint").set_value(str(ckpt))
    at.text_area(key="inspect_text").set_value("the model")
    at.button(key="inspect_go").click().run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "trust-remote-code" in errors[0], errors
    assert not marker.exists()  # its Python never ran
    assert listing(store) == before
