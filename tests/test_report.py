"""routeviz.report: every file for a text, an image and a DAE-Syn-like run; the numbers
in metrics.json and the CSVs are the ones `routeviz metrics --json` prints; user strings
cannot inject markup or write outside --out."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from routeviz.cli import main
from routeviz.errors import RoutevizError
from routeviz.figures.export import chromium_path
from routeviz.report import build_report_zip, collect, write_report
from routeviz.report.collect import CONTEXTS_PER_EXPERT, GALLERY_ITEMS
from routeviz.store import open_store
from tests.report_store import HOSTILE_SOURCE, HOSTILE_TAG, HOSTILE_TOKEN, all_runs, large_run

# overview (Focus/Cover per kind, pooled A_ij, load, kept fraction, exit depth) + per site
# (A_ij per kind there, load at expert sites) + the comparison; merge sites have no figure
N_PLOTS = {"text": 7 + (2 + 1 + 1 + 2) + 1, "image": 7 + (1 + 0 + 2 + 1), "dae": 3 + 4 * 2}
FILES = {"report.html", "report.md", "metrics.json", "focus_cover.csv", "alignment.csv",
         "load.csv", "experts.csv", "exits.csv", "keep.csv"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return all_runs(tmp_path_factory.mktemp("report") / "store")


@pytest.fixture(scope="module")
def reports(store, tmp_path_factory):
    """run -> output folder of its report (no static images; one test below makes them)."""
    out = {}
    for run, against in (("text", "text-b"), ("image", None), ("dae", None)):
        out[run] = tmp_path_factory.mktemp(f"out-{run}")
        write_report(store, run, out[run], against=against, images=False)
    return out


@pytest.mark.parametrize("run", ["text", "image", "dae"])
def test_every_file_is_written_and_plotly_js_is_embedded_once(store, reports, run):
    folder = reports[run]
    assert {p.name for p in folder.iterdir()} == FILES
    page = (folder / "report.html").read_text()
    assert page.count("plotly.js v") == 1  # the library's banner: embedded once, not per figure
    assert "<script src=" not in page and "<link" not in page  # nothing to fetch
    n_plots = N_PLOTS[run]
    assert page.count('<figure class="plot"') == n_plots
    assert page.count('class="plotly-graph-div" style="height:') == n_plots  # every div has a height
    assert "Summary" in page and "Focus (pooled, expert)" in page
    assert "# Routing report" in (folder / "report.md").read_text()


def test_text_report_has_token_contexts_and_comparison(reports):
    page = (reports["text"] / "report.html").read_text()
    assert 'id="comparison"' in page and "text-b" in page
    comparison = page.split('id="comparison"')[1]
    assert "units in both runs" in comparison and "<th>flip_rate</th>" in comparison
    assert "<mark>def</mark>" in page  # a code token in context in expert 0's gallery
    assert "compute saved by early exit" in page and "25.0%" in page  # exits at 1 and 3 of 4


@pytest.mark.parametrize("run", ["image", "dae"])
def test_image_galleries_show_crops(reports, run):
    page = (reports[run] / "report.html").read_text()
    n_crops = page.count('src="data:image/png;base64,')
    assert n_crops >= 4
    assert n_crops <= GALLERY_ITEMS


def _cli_metrics(store, run, capsys) -> dict:
    capsys.readouterr()
    assert main(["metrics", "--store", str(store.path), "--run", run, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("run", ["text", "image", "dae"])
def test_metrics_json_and_csvs_match_the_cli(store, reports, run, capsys):
    folder = reports[run]
    cli = _cli_metrics(store, run, capsys)
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved.pop("routeviz_version")
    saved.pop("comparison", None)
    assert saved["config"]["model"] == store.config(run)["model"]
    assert json.dumps(saved, sort_keys=True) == json.dumps(cli, sort_keys=True)

    focus = pd.read_csv(folder / "focus_cover.csv", keep_default_na=False)
    expected = pd.DataFrame(cli["focus_cover"])
    assert len(focus) == len(expected) > 0
    merged = focus.merge(expected, on=["site", "tag", "kind"], suffixes=("", "_cli"))
    assert len(merged) == len(expected)
    assert (merged.focus - merged.focus_cli).abs().max() < 1e-5
    assert (merged.cover - merged.cover_cli).abs().max() < 1e-5

    # Focus recomputed from the A_ij cells of alignment.csv equals the pooled Focus printed
    cells = pd.read_csv(folder / "alignment.csv", keep_default_na=False)
    expert = cells[cells.kind == "expert"]
    recomputed = expert.groupby("subnetwork").f1.max().mean()
    pooled = expected[(expected.site == "*") & (expected.kind == "expert")].iloc[0]
    assert recomputed == pytest.approx(pooled.focus, abs=1e-5)

    load = pd.read_csv(folder / "load.csv")
    for site in cli["load"]:
        shares = load[load.site == site["site"]].sort_values("expert").share.tolist()
        assert shares == pytest.approx(site["shares"], abs=1e-5)

    exits = pd.read_csv(folder / "exits.csv")
    if cli["exits"] is None:
        assert exits.empty
    else:
        key = "per_token" if cli["exits"]["per_token"] else "per_example"
        rows = exits[exits.unit == key.split("_")[1]].sort_values("layer")
        assert rows["count"].tolist() == [r["count"] for r in cli["exits"][key]]
    experts = pd.read_csv(folder / "experts.csv")
    assert set(experts.profile) <= {"tag", "token"} and len(experts) > 0


def test_hostile_strings_are_escaped_everywhere(reports):
    for run in ("text", "image", "dae"):
        page = (reports[run] / "report.html").read_text()
        assert HOSTILE_TOKEN not in page and HOSTILE_TAG not in page
        assert "<b>name</b>" not in page  # the hostile file name
        assert page.count("<script") == page.count("</script>")
        markdown = (reports[run] / "report.md").read_text()
        assert "<script" not in markdown and "<img" not in markdown
    text = (reports["text"] / "report.html").read_text()
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    assert "&#39;quote&#34;" in text  # markupsafe's entities for ' and "
    dae = (reports["dae"] / "report.html").read_text()
    assert "&lt;img src=x onerror=&#34;window.__pwned=2&#34;&gt;" in dae
    assert "../../evil&#39;&#34;&lt;b&gt;name&lt;/b&gt;.txt (example 0)" in dae  # a crop's title
    # every <script> block is plotly's: its JSON writes "<" as \u003c, so no tag hides there
    for block in text.split("<script")[1:]:
        body = block.split("</script>")[0]
        assert "<img" not in body and "<script" not in body


def test_run_names_and_out_cannot_escape(store, tmp_path):
    for bad in ("../text", "text/../../x", "a/b", "..", "<script>"):
        with pytest.raises(RoutevizError):
            write_report(store, bad, tmp_path / "out", images=False)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "report.html").write_text("keep me")
    out = tmp_path / "links"
    out.mkdir()
    (out / "report.html").symlink_to(outside / "report.html")  # a planted link is replaced
    written = write_report(store, "dae", out, images=False)
    assert (outside / "report.html").read_text() == "keep me"
    assert not (out / "report.html").is_symlink()
    assert all(p.resolve().parent == out.resolve() for p in written)
    assert sorted(os.listdir(outside)) == ["report.html"]

    (out / "figures").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RoutevizError, match="not a plain folder"):
        write_report(store, "image", out)
    assert sorted(os.listdir(outside)) == ["report.html"]

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(RoutevizError, match="is a file"):
        write_report(store, "dae", a_file, images=False)


@pytest.mark.slow  # a report per call, with figures
def test_cli_report_creates_out_and_lists_files(store, tmp_path, capsys):
    out = tmp_path / "new" / "nested"
    code = main(["report", "--store", str(store.path), "--run", "dae", "--out", str(out),
                 "--against", "image", "--tag", "shape"])
    printed = capsys.readouterr().out.split()
    assert code == 0
    assert {Path(p).name for p in printed} >= FILES
    focus = pd.read_csv(out / "focus_cover.csv", keep_default_na=False)
    assert set(focus.tag) == {"shape"}  # --tag restricts the families
    page = (out / "report.html").read_text()
    assert 'id="comparison"' in page and "share no routed tokens" in page  # diff's reason
    assert main(["report", "--store", str(store.path), "--run", "nope", "--out", str(out)]) == 2
    assert "available: dae, image, text, text-b" in capsys.readouterr().err


def test_zip_holds_the_same_files(store):
    data = build_report_zip(store, "dae", images=False)
    names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert names == FILES


@pytest.mark.slow  # a report per call, with figures
def test_large_run_keeps_galleries_bounded(tmp_path):
    n_routes = large_run(tmp_path / "store", n_examples=240, seq=32, n_sites=4, n_experts=64)
    store = open_store(tmp_path / "store")
    report = collect(store, "large")
    assert n_routes == 240 * 32 * 4
    assert report.gallery.n_items <= GALLERY_ITEMS
    per_expert = [len(v) for v in report.gallery.items.values()]
    assert max(per_expert) <= CONTEXTS_PER_EXPERT[1]
    assert len(report.gallery.items) == 4 * 64  # every expert of every site has a card
    page_bytes = write_report(store, "large", tmp_path / "out", images=False)[0].stat().st_size
    assert page_bytes < 8_000_000


@pytest.mark.skipif(chromium_path() is None, reason="static figures need Chromium")
@pytest.mark.slow  # Chromium renders every static figure
def test_static_figures_beside_the_markdown(store, tmp_path):
    written = write_report(store, "image", tmp_path, images=True)
    pngs = [p for p in written if p.suffix == ".png"]
    assert len(pngs) >= 3
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    markdown = (tmp_path / "report.md").read_text()
    for p in pngs:
        assert f"](figures/{p.name})" in markdown
    assert HOSTILE_SOURCE not in markdown


SAMPLES = [("glyph-vit", "glyphs"), ("dae-syn-top-k", "dae-syn"), ("text-moe", "stdlib")]


@pytest.mark.parametrize("model,dataset", SAMPLES)
@pytest.mark.slow  # loads and traces each sample model
def test_report_of_a_real_sample_model(model, dataset, tmp_path):
    """A few examples through the shipped sample model, then every report file."""
    weights = Path(__file__).resolve().parents[1] / "sample_models" / "weights" / model
    if not any(weights.glob("*.safetensors")):
        pytest.skip(f"{model} weights are not in sample_models/weights yet")
    import torch

    from routeviz.plugins import load_dataset
    from routeviz.runs.models import load_model
    from routeviz.runs.record import record

    torch.set_num_threads(1)
    runner = load_model(model)
    record(runner, load_dataset(dataset, limit=6), tmp_path / "store", "sample", batch_size=6)
    store = open_store(tmp_path / "store")
    written = write_report(store, "sample", tmp_path / "out", images=False)
    assert {p.name for p in written} == FILES
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.count("plotly.js v") == 1 and page.count('<figure class="plot"') >= 3
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["model"] == model
    if runner.modality == "image":
        assert 'src="data:image/png;base64,' in page  # gallery crops from the stored images


def test_report_of_a_traced_run_without_tags(tmp_path):
    """routeviz.trace on the hand-built toy MoE, no tags: Focus/Cover is skipped with a note,
    load and galleries are still there (token id i goes to expert i % 4 first)."""
    import torch

    import routeviz
    from tests.toy import ToyMoE, register_toy

    register_toy()
    ids = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7]])
    model = ToyMoE()
    with routeviz.trace(model, store=tmp_path / "store", run="toy") as tracer, \
            tracer.batch(tokens=[[f"t{i}" for i in range(8)]]):
        model(ids)
    store = open_store(tmp_path / "store")
    write_report(store, "toy", tmp_path / "out", images=False)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "no tags" in page
    assert pd.read_csv(tmp_path / "out" / "focus_cover.csv").empty
    load = pd.read_csv(tmp_path / "out" / "load.csv")
    assert set(load.expert) == {0, 1, 2, 3} and (load["count"] > 0).all()
    assert "<mark>t0</mark>" in page or "<mark>t4</mark>" in page  # expert 0's top tokens


def test_a_failing_static_export_does_not_fail_the_report(store, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-browser"))  # kaleido's browser
    written = write_report(store, "dae", tmp_path / "out", images=True)
    assert {p.name for p in written if "/" not in p.relative_to(tmp_path / "out").as_posix()} \
        == FILES
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "static figures skipped" in markdown
    assert "(in report.html)" in markdown  # each figure points to the HTML instead


@pytest.mark.slow  # a report per call, with figures
def test_the_same_run_gives_the_same_files(store):
    """Fixed figure ids and tie-broken profiles: a report can be committed and diffed."""
    from routeviz.report import build_report_files

    first = build_report_files(store, "text", images=False)
    second = build_report_files(store, "text", images=False)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []


def test_the_gallery_cut_equals_asking_for_fewer_contexts(tmp_path):
    """collect asks for the cards' 5 contexts per expert (shared through store.memo) and
    keeps each expert's first n: the frame that asking for n gives, row for row."""
    from routeviz import metrics
    from routeviz.report.collect import _first_per_expert

    large_run(tmp_path / "store", n_examples=12)
    big = open_store(tmp_path / "store")
    five = metrics.expert_profiles(big, "large", contexts=5).examples
    for n in (1, 2, 4):
        fresh = open_store(tmp_path / "store")  # nothing kept from the call above
        asked = metrics.expert_profiles(fresh, "large", contexts=n).examples
        assert len(asked) < len(five)
        pd.testing.assert_frame_equal(_first_per_expert(five, n), asked)
    again = metrics.expert_profiles(big, "large", contexts=5).examples
    again.loc[0, "text"] = "changed"  # a caller's change does not reach the kept frame
    assert metrics.expert_profiles(big, "large", contexts=5).examples.equals(five)


def test_progress_is_told_each_step_in_order(store):
    from routeviz.report import build_report_files

    told = []
    build_report_files(store, "text", images=False, progress=lambda f, what: told.append((f, what)))
    fractions = [f for f, _ in told]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and told[-1] == (1.0, "Done")
    assert len(told) >= 6 and not any("Chromium" in what for _, what in told)  # no images


def test_templates_escape_every_field_unless_marked_safe():
    from markupsafe import Markup

    from routeviz.report.html import Cell, Table, environment

    env = environment()
    assert env.autoescape is True  # a field added later is escaped without anyone asking
    macros = env.get_template("macros.html").module
    hostile = "<script>window.__pwned=3</script>"
    table = str(macros.table(Table([hostile], [[Cell("x" + hostile, False)]])))
    assert "<script>" not in table and table.count("&lt;script&gt;") == 2
    figure = {"key": "k", "caption": hostile, "div": Markup("<div id='plot-k'></div>")}
    html = str(macros.figures([figure]))
    assert "<div id='plot-k'></div>" in html and "<script>" not in html


def test_focus_cover_tables_show_the_permutation_band(reports):
    """Each site's Focus/Cover row carries the chance band from metrics.json's baseline."""
    folder = reports["dae"]
    page = (folder / "report.html").read_text()
    assert "<th>focus by chance</th>" in page and "<th>cover by chance</th>" in page
    entries = json.loads((folder / "metrics.json").read_text())["focus_cover"]
    site_entry = next(e for e in entries if e["site"] != "*" and "baseline" in e)
    band = site_entry["baseline"]["cover"]
    assert f"{band['mean']:.2f} [{band['lo']:.2f}, {band['hi']:.2f}]" in page
    assert "cover by chance" in (folder / "report.md").read_text()
