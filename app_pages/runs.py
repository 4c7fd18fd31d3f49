"""Runs: the runs in the store (traced or imported), tracing a bundled dataset, importing
another engine's routing (app_pages/runs_import.py), deleting a run."""

import json

import streamlit as st

from app_pages.common import (
    get_handle,
    load_runner,
    run_source,
    runs_frame,
    sample_model_names,
    select_run,
    show_error,
)
from app_pages.runs_import import import_section
from routeviz.errors import RoutevizError
from routeviz.interventions.whatif import describe_intervention
from routeviz.plugins import dataset_specs, model_specs
from routeviz.runs.record import record
from routeviz.runs.sampling import sample_dataset


def fresh_name(prefix: str, taken: set) -> str:
    """`prefix`, or `prefix-2`, `prefix-3`… : the first name no run has."""
    if prefix not in taken:
        return prefix
    return next(f"{prefix}-{i}" for i in range(2, len(taken) + 3) if f"{prefix}-{i}" not in taken)


st.title("Runs")
handle = get_handle()
if handle is None:
    st.stop()
st.caption(f"Store: `{handle.store.path}`")

runs = runs_frame(handle)
if runs.empty:
    st.info("No runs yet: trace a bundled dataset below, or record a text on **Inspect**.")
else:
    table = runs.copy()
    table["model"] = table["model"].astype(str)
    configs = [json.loads(c) if isinstance(c, str) and c else {} for c in table["config"]]
    table["routing"] = [", ".join(c.get("routing", [])) for c in configs]
    table["intervention"] = [describe_intervention(c) for c in configs]  # '' when plain
    table["source"] = [run_source(c) for c in configs]  # 'traced' or the engine it came from
    shown = [c for c in ("run", "model", "source", "routing", "intervention", "n_examples",
                         "n_routes", "created") if c in table]
    st.dataframe(table[shown], hide_index=True, key="runs_table")

st.subheader("Trace a bundled dataset")
for warning in st.session_state.pop("runs_sample_warnings", None) or []:
    st.warning(f"Last trace: {warning}.")
samples = sample_model_names()
if not samples:
    st.info("No sample model is installed yet.")
else:
    cols = st.columns(4)
    model = cols[0].selectbox("Model", samples, key="runs_model")
    datasets = dataset_specs()
    suits = list(model_specs()[model].datasets) or list(datasets)
    dataset = cols[1].selectbox("Dataset", suits, key="runs_dataset", help="; ".join(
        f"{k}: {datasets[k].description}" for k in suits if k in datasets))
    limit = cols[2].number_input("Examples", min_value=1, max_value=5000, value=64, step=16,
                                 key="runs_limit", help="A seeded sample spread over the "
                                 "dataset's tags (as `routeviz trace --limit`), not its head")
    taken = set(runs["run"].astype(str)) if not runs.empty else set()
    default = fresh_name(f"{model}-{dataset}", taken)
    if st.session_state.pop("runs_name_used", False):  # set by the last trace: start afresh
        st.session_state["runs_name"] = ""
    name = cols[3].text_input("Run name", key="runs_name", placeholder=default,
                              help=f"Empty: {default}")
    overwrite = st.checkbox("Replace a run of the same name", key="runs_overwrite")
    if st.button("Trace", type="primary", key="runs_trace"):
        run = name.strip() or default
        slot = st.empty()  # the progress bar, cleared when the trace fails
        try:
            if run in taken and not overwrite:
                raise RoutevizError(f"run {run!r} already exists: tick \"Replace a run of the "
                                    "same name\" or choose another name")
            subset = sample_dataset(dataset, int(limit))
            items = subset.items
            runner = load_runner(model)
            bar = slot.progress(0.0, text=f"Tracing {len(items)} examples…")
            result = record(runner, items, handle.store.path, run, batch_size=16,
                            overwrite=overwrite and run in taken,
                            progress=lambda d, t: bar.progress(d / t, text=f"{d}/{t} examples"),
                            config={"inputs": f"dataset:{dataset}", "sampling": subset.config})
            st.success(f"Run {run!r}: {result.n_examples} examples, {result.rows:,} route rows")
            st.session_state["runs_name_used"] = True
            st.session_state["runs_sample_warnings"] = subset.warnings  # shown after the rerun
            select_run(run)
            st.rerun()
        except Exception as exc:  # noqa: BLE001 — shown in the page, the app keeps running
            slot.empty()
            show_error(exc)

import_section(handle, set(runs["run"].astype(str)) if not runs.empty else set())

st.subheader("Delete a run")
if not runs.empty:
    cols = st.columns([3, 2, 1])
    victim = cols[0].selectbox("Run to delete", runs["run"].astype(str).tolist(), key="runs_delete")
    sure = cols[1].checkbox("Yes, delete its files", key="runs_delete_sure")
    if cols[2].button("Delete", key="runs_delete_go", disabled=not sure):
        try:
            with handle.lock:
                handle.store.delete_run(victim)
            st.session_state["pending_run"] = None
            st.rerun()
        except RoutevizError as exc:
            show_error(exc)
