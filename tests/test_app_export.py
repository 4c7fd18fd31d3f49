"""Export page: metrics as JSON/CSV, the report when present, any figure as HTML (PNG/SVG
when Chromium is there)."""

import json

import pytest

from routeviz import metrics, open_store
from tests import app_support
from tests.app_support import open_page

app_store = app_support.app_store  # shared fixture


def test_metrics_downloads(app_store):
    at = open_page(app_store, "export", run="words")
    assert not at.error
    labels = [b.label for b in at.download_button]
    assert "metrics.json" in labels and "focus_cover.csv" in labels


def test_figure_as_html(app_store):
    at = open_page(app_store, "export", run="words")
    options = at.selectbox(key="export_figure").options
    assert "Focus/Cover" in options and "Exit histogram" in options and "Path Sankey" in options
    at.selectbox(key="export_figure").set_value("Focus/Cover")
    at.selectbox(key="export_format").set_value("html")
    at.button(key="export_prepare").click().run()
    assert not at.error and not at.exception
    name, fmt, payload = at.session_state["export_figure_bytes"][1:]
    assert (name, fmt) == ("Focus/Cover", "html")
    assert b"<html" in payload and b"plotly" in payload
    assert any(b.label.startswith("Download Focus/Cover") for b in at.download_button)


def test_summary_json_is_the_metrics_summary(app_store):
    # (not importing the page: outside an app, st.stop() does not stop a page's script)
    summary = json.loads(json.dumps(metrics.summary(open_store(app_store), "words"), default=str))
    assert summary["run"] == "words" and summary["focus_cover"]


@pytest.mark.slow  # builds the whole report
def test_report_zip(app_store):
    import io
    import zipfile

    at = open_page(app_store, "export", run="words")
    at.checkbox(key="export_images").uncheck()
    at.selectbox(key="export_against").set_value("words-b")
    at.button(key="export_report").click().run()
    assert not at.error and not at.exception
    run, payload = at.session_state["export_report_zip"]
    names = zipfile.ZipFile(io.BytesIO(payload)).namelist()
    assert run == "words" and "report.html" in names and "metrics.json" in names
    assert any(b.label.startswith("Download report") for b in at.download_button)


@pytest.mark.slow  # builds the whole report, twice
def test_a_second_report_click_reuses_the_zip(app_store, monkeypatch):
    """Built once per generation of the runs it reads (the second click builds nothing),
    with a progress bar, from the summary the page computed for metrics.json: the same
    files as a report built on its own."""
    import io
    import zipfile

    import routeviz.report

    built, build = [], routeviz.report.build_report_zip

    def counted(*args, **kwargs):
        built.append(kwargs)
        return build(*args, **kwargs)

    monkeypatch.setattr(routeviz.report, "build_report_zip", counted)
    at = open_page(app_store, "export", run="words")
    at.checkbox(key="export_images").uncheck()
    at.selectbox(key="export_against").set_value("pictures")
    at.button(key="export_report").click().run()
    first = at.session_state["export_report_zip"][1]
    at.button(key="export_report").click().run()
    assert not at.exception and len(built) == 1 and at.session_state["export_report_zip"][1] == first
    assert callable(built[0]["progress"]) and built[0]["summary"]["run"] == "words"
    page = zipfile.ZipFile(io.BytesIO(first))
    alone = routeviz.report.build_report_files(open_store(app_store), "words", against="pictures",
                                               images=False)
    assert sorted(page.namelist()) == sorted(alone)
    differ = [name for name in alone if page.read(name) != alone[name]]
    # metrics.json: the same numbers; a float DuckDB summed in parallel may differ in its
    # last bit from one query to the next (seen once in CI), so it is compared to 1e-12
    if "metrics.json" in differ:
        import json

        from tests.test_app_timeline import _same

        page_json, alone_json = (json.loads(b) for b in (page.read("metrics.json"),
                                                        alone["metrics.json"]))
        assert _same(page_json, alone_json), _first_difference(page_json, alone_json)
        differ.remove("metrics.json")
    assert differ == []


def _first_difference(a, b, path="") -> str:
    """Where two JSON values first differ, for the failure message."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() | b.keys():
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}/{key}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {a!r} != {b!r}"


@pytest.mark.slow  # builds the report twice
def test_a_zip_without_its_static_figures_is_not_kept(app_store, monkeypatch, tmp_path):
    """Chromium there but failing: the zip comes without figures (report.md says why), and
    the next click builds again instead of handing back the figureless zip."""
    import io
    import zipfile

    import routeviz.report
    from routeviz.figures import export

    browser = export._Browser()
    monkeypatch.setattr(export, "_BROWSER", browser)
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("BROWSER_PATH", str(fake))
    built, build = [], routeviz.report.build_report_zip

    def counted(*args, **kwargs):
        built.append(kwargs["images"])
        return build(*args, **kwargs)

    monkeypatch.setattr(routeviz.report, "build_report_zip", counted)
    try:
        at = open_page(app_store, "export", run="words")
        assert at.checkbox(key="export_images").value  # a browser is there, so asked
        at.button(key="export_report").click().run()
        at.button(key="export_report").click().run()
    finally:
        browser.close()
    assert not at.exception and built == [True, True]
    archive = zipfile.ZipFile(io.BytesIO(at.session_state["export_report_zip"][1]))
    assert not any(name.startswith("figures/") for name in archive.namelist())
    assert b"static figures skipped: export failed (Chromium (" in archive.read("report.md")


def test_report_against_a_run_over_other_inputs_is_flagged(app_store):
    at = open_page(app_store, "export", run="words")
    at.selectbox(key="export_against").set_value("words-b").run()
    assert not any("same inputs" in w.value for w in at.warning)  # same texts, another model
    at.selectbox(key="export_against").set_value("pictures").run()
    assert any("'words' and 'pictures' are not over the same inputs" in w.value
               for w in at.warning)
