"""One tag-set rule for every surface (issue 24): on a text-moe `stdlib` run the
Specialization page, report.md, report.html and `routeviz metrics --json` show the same
pooled Focus and Cover, over the content families (`source`, provenance, left out), and
each names the families it pooled and those it left out."""

import json

import pytest

from routeviz.cli import main
from routeviz.report import write_report
from routeviz.store import open_store
from tests import app_support
from tests.app_support import open_page

app_store = app_support.app_store  # shared fixture

RULE = ("tag families pooled: case, kind, piece, token_class, token_type; "
        "left out: source (provenance)")
POOLED = ["case", "kind", "piece", "token_class", "token_type"]


@pytest.fixture(scope="module")
def stdlib_run(tmp_path_factory):
    store = tmp_path_factory.mktemp("tagset") / "store"
    assert main(["trace", "--model", "text-moe", "--dataset", "stdlib", "--limit", "24",
                 "--store", str(store), "--run", "std"]) == 0
    return store


def metrics_json(store, capsys, *extra):
    assert main(["metrics", "--store", str(store), "--run", "std", "--permutations", "0",
                 "--kind", "expert", "--json", *extra]) == 0
    out = json.loads(capsys.readouterr().out)
    pooled = next(e for e in out["focus_cover"] if e["site"] == "*" and e["tag"] == "*")
    return out, pooled


def test_the_run_spans_sources_and_kinds(stdlib_run):
    st = open_store(stdlib_run)
    values = st.engine.query("SELECT name, count(DISTINCT value) AS n FROM tags WHERE run = "
                             "'std' AND token = -1 GROUP BY name").set_index("name").n
    assert values["source"] > 10 and values["kind"] == 2  # the head is a few code modules
    sampling = st.facts("std").config["sampling"]
    assert (sampling["n"], sampling["seed"], sampling["strategy"]) == (24, 0, "stratified")
    assert set(st.facts("std").tags) >= {"source", "kind", "token_type"}


def test_cli_page_and_report_agree_and_name_their_families(stdlib_run, tmp_path, capsys):
    out, pooled = metrics_json(stdlib_run, capsys)
    assert out["tag_families"] == {
        "pooled": POOLED, "left_out": ["source"],
        "why_left_out": {"source": "provenance"},
        "rule": "content families (provenance left out)"}
    focus, cover = f"{pooled['focus']:.3f}", f"{pooled['cover']:.3f}"

    at = open_page(stdlib_run, "specialization", run="std")
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    assert (shown["Focus (pooled)"], shown["Cover (pooled)"]) == (focus, cover)
    assert any(RULE in c.value for c in at.caption)

    write_report(open_store(stdlib_run), "std", tmp_path / "rep", images=False)
    md = (tmp_path / "rep" / "report.md").read_text()
    html = (tmp_path / "rep" / "report.html").read_text()
    assert f"| Focus (pooled, expert) | {focus} |" in md
    assert f"| Cover (pooled, expert) | {cover} |" in md
    assert RULE.replace("_", "\\_") in md and RULE in html  # Markdown escapes "_"
    assert focus in html and cover in html
    saved = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert saved["tag_families"]["pooled"] == POOLED


def test_an_explicit_tag_still_overrides(stdlib_run, capsys):
    out, pooled = metrics_json(stdlib_run, capsys, "--tag", "source", "--tag", "kind")
    assert out["tag_families"]["pooled"] == ["kind", "source"]
    assert out["tag_families"]["why_left_out"] == {
        name: "not chosen" for name in POOLED if name != "kind"}
    _, default = metrics_json(stdlib_run, capsys)
    assert pooled["cover"] != default["cover"]


def test_compare_names_the_families_of_its_pooled_scores(app_store):
    at = open_page(app_store, "compare", run="words")
    assert not at.exception
    assert "Focus and Cover pool: tag families pooled: kind, token_type." in [
        c.value for c in at.caption]
