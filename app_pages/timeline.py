"""Timeline: a series (one run per training step) — its metrics as lines over steps, expert
identity across steps, any run figure at a chosen step, and two steps side by side."""

from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages.common import cached, get_handle, memo, metric, query, show_error
from app_pages.timeline_twin import show_beside
from routeviz.errors import RoutevizError
from routeviz.figures import analysis, catalog
from routeviz.figures import timeline as timeline_figures
from routeviz.figures.labels import site_label
from routeviz.metrics import series as series_metrics
from routeviz.metrics.identity import identity

SHIPPED = Path(__file__).resolve().parents[1] / "sample_models" / "data" / "series"
BAND_PERMUTATIONS = 20  # tag shuffles per step for the Focus/Cover chance band


# cached by qualified name: each wrapper's name is unique to this page
def _timeline_series_names(store):
    return series_metrics.series_names(store)


def _timeline_series_runs(store, series):
    return series_metrics.series_runs(store, series)


def _timeline_part(store, series, part):
    return series_metrics.timeline(store, series, chance=BAND_PERMUTATIONS, parts=(part,))


def _timeline_identity(store, series):
    return identity(store, series)


def _timeline_figure_names(store, run):
    return catalog.available(store, run)


def _timeline_figure(store, run, name):
    return catalog.build(store, run, name)


series_names = cached(_timeline_series_names)
series_runs = cached(_timeline_series_runs)
series_part = cached(_timeline_part)
series_identity = cached(_timeline_identity)
figure_names = cached(_timeline_figure_names)
step_figure = cached(_timeline_figure)


def series_timeline(handle, series: str) -> pd.DataFrame:
    """The series' whole long frame: its two parts (each cached) joined, once per generation."""
    return memo(handle, ("timeline", series), lambda: query(
        handle, series_metrics.timeline_joined, series,
        [series_part(handle, series, part) for part in series_metrics.TIMELINE_PARTS]))


def draw_metric_lines(frame: pd.DataFrame, columns, first: int) -> int:
    """A chart per metric of `frame` (TIMELINE_METRICS order), alternating between the two
    columns from chart number `first`; the number of the next chart."""
    drawn = [m for m in series_metrics.TIMELINE_METRICS if (frame["metric"] == m).any()]
    for number, name in enumerate(drawn, start=first):
        columns[number % 2].plotly_chart(timeline_figures.metric_lines(frame, name),
                                         key=f"timeline_{name}")
    return first + len(drawn)


def shipped_stores() -> list[Path]:
    """Series stores shipped with the sample models (each a store directory)."""
    if not SHIPPED.is_dir():
        return []
    return sorted(p for p in SHIPPED.iterdir() if (p / "routeviz.json").is_file())


def use_store(path: str) -> None:
    st.session_state["store_path"] = path  # a button callback: runs before the sidebar widget


def how_to_make_one() -> None:
    st.info("This store has no series yet. A series is one run per training step, traced "
            "over the same probe inputs. Make one from saved checkpoints:\n\n"
            "`routeviz trace --model out/checkpoint-* --series NAME --store STORE "
            "--text ...`\n\nor during training with `routeviz.probe(model, probe, store, "
            "NAME, every=N)` / `routeviz.probe.RouteProbeCallback` for a transformers "
            "Trainer.")
    for path in shipped_stores():
        st.button(f"Open the shipped series store {path.name!r}", key=f"shipped_{path.name}",
                  on_click=use_store, args=(str(path),))


st.title("Timeline")
handle = get_handle()
if handle is None:
    st.stop()
names = series_names(handle)
if not names:
    how_to_make_one()
    st.stop()

series = st.selectbox("Series", names, key="timeline_series")
try:
    runs = series_runs(handle, series)
    with st.spinner("Computing saturation and load balance of every step…"):
        routing = series_part(handle, series, "routing")
except RoutevizError as exc:
    show_error(exc)
    st.stop()
steps = runs["step"].tolist()
run_at = dict(zip(runs["step"], runs["run"]))
caption = st.empty()  # says whether Focus/Cover has a chance band: known with the scores

st.subheader("Metrics over steps")
columns = st.columns(2)
# the routing metrics drawn first; Focus/Cover with its band and the entropy (~2/3 of the
# computation) then go on under them, so the first charts show while those compute
after = draw_metric_lines(routing, columns, 0)
try:
    with st.spinner("Computing Focus/Cover with its chance band and the entropy of every step…"):
        series_part(handle, series, "scores")
    frame = series_timeline(handle, series)
except RoutevizError as exc:
    show_error(exc)
    st.stop()
caption.caption(f"{len(steps)} step(s), {steps[0]}–{steps[-1]}; saturation compares each step "
                f"with the last one ({steps[-1]}). The thick black line pools every site"
                + (f"; the grey area on Focus and Cover is its chance band (95% of "
                   f"{BAND_PERMUTATIONS} shuffles of the tags across units, per step)."
                   if frame["metric"].isin(["focus_lo", "cover_lo"]).any() else "."))
draw_metric_lines(frame[~frame["metric"].isin(series_metrics.TIMELINE_PARTS["routing"])],
                  columns, after)
show_beside(handle, series, names, series_timeline)
box = st.expander("Every value (long table)", key="timeline_long_table", on_change="rerun")
with box:
    if box.open:  # sent only while open: steps × sites × metrics rows
        st.dataframe(frame.assign(site=frame["site"].replace("*", site_label("*"))),
                     hide_index=True)

st.subheader("Expert identity across steps")
ids = series_identity(handle, series)
if ids.empty:
    st.caption("One step only: no expert to follow.")
else:
    sites = list(dict.fromkeys(ids["site"]))
    site = st.selectbox("Site", sites, key="timeline_identity_site")
    st.plotly_chart(timeline_figures.identity_heatmap(ids, site), key="timeline_identity")
    moved = ids[(ids["site"] == site) & ids["changed"]]
    if moved.empty:
        st.caption("Every expert kept its id from step to step.")
    else:
        st.dataframe(moved.assign(became=[f"expert {e} became expert {m}" for e, m in
                                           zip(moved["expert"], moved["matched"])]),
                     hide_index=True, key="timeline_moved")

st.subheader("One step")
step = st.select_slider("Step", steps, value=steps[-1], key="timeline_step")
available = figure_names(handle, run_at[step])
if available:
    figure = st.selectbox("Figure", available, key="timeline_figure")
    try:
        st.plotly_chart(step_figure(handle, run_at[step], figure), key="timeline_step_figure")
    except RoutevizError as exc:
        show_error(exc)

if len(steps) >= 2:
    st.subheader("Two steps side by side")
    a_col, b_col = st.columns(2)
    step_a = a_col.select_slider("Step A", steps, value=steps[0], key="timeline_step_a")
    step_b = b_col.select_slider("Step B", steps, value=steps[-1], key="timeline_step_b")
    both = [n for n in figure_names(handle, run_at[step_a])
            if n in figure_names(handle, run_at[step_b])]
    if both:
        figure = st.selectbox("Figure for both", both, key="timeline_pair_figure")
        for column, chosen, side in ((a_col, step_a, "a"), (b_col, step_b, "b")):
            try:
                column.plotly_chart(step_figure(handle, run_at[chosen], figure),
                                    key=f"timeline_pair_{side}")
            except RoutevizError as exc:
                with column:
                    show_error(exc)
    if step_a != step_b:
        try:
            result = metric(handle, "diff", run_at[step_a], against=run_at[step_b])
        except RoutevizError as exc:
            st.info(f"No token-by-token diff: {exc}")
        else:
            sites_frame = pd.DataFrame(result["sites"])
            if len(sites_frame):
                st.plotly_chart(analysis.agreement_bars(
                    sites_frame, title=f"Where steps {step_a} and {step_b} route alike"),
                    key="timeline_diff")
            st.caption(f"{result['n_common_units']:,} units compared.")
