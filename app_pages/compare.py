"""Compare: two runs side by side — headline metrics, where their routing agrees, and the
tokens whose routing changed most."""

import pandas as pd
import streamlit as st

from app_pages.common import get_handle, metric, need_run, run_names, show_error
from routeviz import figures
from routeviz.errors import RoutevizError
from routeviz.figures import analysis, data

st.title("Compare")
handle = get_handle()
run = need_run(handle)
if run is None:
    st.stop()
names = run_names(handle)
if len(names) < 2:
    st.info("Compare needs two runs in the store; record another on **Inspect** or **Runs**.")
    st.stop()

left, right = st.columns(2)
run_a = left.selectbox("Run A", names, index=names.index(run), key="compare_a")
others = [n for n in names if n != run_a]
run_b = right.selectbox("Run B", others, key="compare_b")

try:
    heads = [analysis.headline(metric(handle, "summary", r)) for r in (run_a, run_b)]
except RoutevizError as exc:
    show_error(exc)
    st.stop()
common_keys = [k for k in heads[0] if k in heads[1]]
if common_keys:
    table = pd.DataFrame({"metric": common_keys, "a": [heads[0][k] for k in common_keys],
                          "b": [heads[1][k] for k in common_keys]})
    st.plotly_chart(figures.compare_bars(table, run_a, run_b), key="compare_bars")
    st.dataframe(table.rename(columns={"a": run_a, "b": run_b}), hide_index=True)

st.subheader("Routing differences")
try:
    result = metric(handle, "diff", run_a, against=run_b)
except RoutevizError as exc:
    st.info(f"No token-by-token diff: {exc}")
    st.stop()
for note in result.get("notes", []):
    st.warning(note)
a, b, c = st.columns(3)
a.metric("Units in both", f"{result['n_common_units']:,}")
b.metric(f"Only in {run_a}", f"{result['n_only_run']:,}")
c.metric(f"Only in {run_b}", f"{result['n_only_against']:,}")
sites = pd.DataFrame(result["sites"])
if len(sites):
    st.plotly_chart(analysis.agreement_bars(sites), key="compare_agreement")
changed = pd.DataFrame(result["changed_tokens"])
st.markdown("**Most-changed tokens**")
if changed.empty:
    st.caption("No token changed its routing.")
else:
    changed["text"] = [data.show_token(t) if isinstance(t, str) else "" for t in changed["text"]]
    st.dataframe(changed, hide_index=True, key="compare_changed")
