"""Export: the specialization report (or the metrics as CSV/JSON), and any figure as
HTML, PNG or SVG."""

import importlib.util
import io
import json
import zipfile

import streamlit as st

from app_pages.common import (
    cached,
    memo,
    metric,
    page_run,
    query,
    run_facts,
    run_names,
    show_error,
)
from routeviz import figures
from routeviz.errors import RoutevizError
from routeviz.figures import catalog
from routeviz.figures.export import MIME, chromium_path, warm_up
from routeviz.metrics.pairing import input_difference

handle, run = page_run("Export")


def _summary(store, run):
    from routeviz import metrics

    return metrics.summary(store, run)


run_summary = cached(_summary)  # metrics.json's button and the report's numbers
inputs_differ = cached(input_difference)
figure_names = cached(catalog.available)
report_ready = importlib.util.find_spec("routeviz.report") is not None
warm_up()  # the process's browser starts now, in the background, so a PNG click finds it up


class _NotKept(Exception):
    """A zip that asked for static figures and got none (Chromium failed): given to the
    user, not kept, so the next click tries the figures again."""

    def __init__(self, payload: bytes):
        super().__init__("static figures missing")
        self.payload = payload


def report_zip(handle, run: str, against: str | None, images: bool) -> bytes:
    """The report zip, built once per generation of the runs it reads (a second download,
    or a return to the page, is at once), with a progress bar while it builds."""

    def build():
        from routeviz.report import build_report_zip

        bar = st.progress(0.0, text="Writing the report…")
        try:
            payload = query(handle, build_report_zip, run, against=against, images=images,
                            progress=lambda fraction, what: bar.progress(fraction,
                                                                         text=f"{what}…"),
                            summary=run_summary(handle, run))  # computed for metrics.json
        finally:
            bar.empty()
        if images and not any(name.startswith("figures/")
                              for name in zipfile.ZipFile(io.BytesIO(payload)).namelist()):
            raise _NotKept(payload)
        return payload

    try:
        return memo(handle, ("report_zip", run, against, images), build)
    except _NotKept as missing:
        return missing.payload


st.subheader("Report")
if report_ready:
    cols = st.columns([3, 2])
    against = cols[0].selectbox("Compare against (optional)",
                                ["(none)"] + [r for r in run_names(handle) if r != run],
                                key="export_against")
    if against != "(none)":
        inputs_note = inputs_differ(handle, run, against)
        if inputs_note:
            st.warning(inputs_note)
    images = cols[1].checkbox("Static PNG figures too", value=chromium_path() is not None,
                              disabled=chromium_path() is None, key="export_images",
                              help="Needs Chromium; the HTML report is interactive either way.")
    if st.button("Build the report", key="export_report"):
        try:
            payload = report_zip(handle, run, None if against == "(none)" else against,
                                 bool(images))
            st.session_state["export_report_zip"] = (run, payload)
        except Exception as exc:  # noqa: BLE001 — shown in the page
            show_error(exc)
    ready = st.session_state.get("export_report_zip")
    if ready and ready[0] == run:
        st.download_button("Download report (zip: HTML, Markdown, CSV, JSON)", ready[1],
                           file_name=f"{run}-report.zip", mime="application/zip",
                           key="export_report_dl")
else:
    st.caption("The full report is not available in this install; the metrics are below.")

st.subheader("Metrics")
try:
    st.download_button("metrics.json", json.dumps(run_summary(handle, run), indent=2, default=str),
                       file_name=f"{run}-metrics.json",
                       mime="application/json", key="export_json")
    load = metric(handle, "load", run) if "expert" in run_facts(handle, run)["kinds"] else None
    cols = st.columns(2)
    try:
        fc = metric(handle, "focus_cover", run)
        cols[0].download_button("focus_cover.csv", fc.scores.to_csv(index=False),
                                file_name=f"{run}-focus_cover.csv", mime="text/csv",
                                key="export_fc_csv")
    except RoutevizError as exc:
        cols[0].caption(f"No Focus/Cover: {exc}")
    if load is not None and len(load.experts):
        cols[1].download_button("expert_load.csv", load.experts.to_csv(index=False),
                                file_name=f"{run}-expert_load.csv", mime="text/csv",
                                key="export_load_csv")
except RoutevizError as exc:
    show_error(exc)

st.subheader("Figures")
names = figure_names(handle, run)
if not names:
    st.info("No figure applies to this run.")
    st.stop()
formats = figures.available_formats()
cols = st.columns([3, 1, 1])
name = cols[0].selectbox("Figure", names, key="export_figure")
fmt = cols[1].selectbox("Format", formats, key="export_format", format_func=str.upper)
if chromium_path() is None:
    st.info("PNG and SVG need Chromium, which is not installed here: HTML only "
            "(open it in a browser and use the camera icon for a PNG).")
if cols[2].button("Prepare", key="export_prepare"):
    try:
        fig = query(handle, catalog.build, run, name)
        with st.spinner(f"Rendering {fmt.upper()}…"):
            payload = figures.figure_bytes(fig, fmt)
        st.session_state["export_figure_bytes"] = (run, name, fmt, payload)
    except Exception as exc:  # noqa: BLE001 — shown in the page
        show_error(exc)
ready = st.session_state.get("export_figure_bytes")
if ready and ready[:3] == (run, name, fmt):
    safe = "".join(ch if ch.isalnum() else "-" for ch in name).strip("-").lower()
    st.download_button(f"Download {name} ({fmt.upper()})", ready[3],
                       file_name=f"{run}-{safe}.{fmt}", mime=MIME[fmt], key="export_figure_dl")
