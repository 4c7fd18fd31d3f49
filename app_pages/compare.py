"""Compare: two runs side by side — headline metrics, where their routing agrees, and the
tokens whose routing changed most. Run B defaults to a related run (routeviz.metrics.pairing:
same model and inputs, else same inputs, else the same model), and experts of two different
models are matched by what they route before their agreement is measured."""

import pandas as pd
import streamlit as st

from app_pages.common import (
    cached,
    metric,
    page_run,
    run_config,
    run_facts,
    run_names,
    run_source,
    runs_frame,
    show_error,
)
from routeviz import figures
from routeviz.errors import RoutevizError
from routeviz.figures import analysis, data
from routeviz.metrics import FOCUS_KINDS
from routeviz.metrics.pairing import expert_matching, related_run
from routeviz.metrics.tag_families import TagFamilies

# headline numbers on a 0–1 scale share one chart; counts and ratios get their own metric
FRACTIONS = ("Focus (pooled)", "Cover (pooled)", "mean kept fraction", "compute saved")

related = cached(related_run)


def headline_kind(kinds) -> str | None:
    """The kind whose pooled Focus/Cover `analysis.headline` shows: the first recorded of
    the kinds `metrics.summary` scores, in its order."""
    return next((k for k in FOCUS_KINDS if k in kinds), None)
matching = cached(expert_matching)

handle, run = page_run("Compare")
names = run_names(handle)
if len(names) < 2:
    st.info("Compare needs two runs in the store; record another on **Inspect** or **Runs**.")
    st.stop()

left, right = st.columns(2)
run_a = left.selectbox("Run A", names, index=names.index(run), key="compare_a")
others = [n for n in names if n != run_a]
suggested, why = related(handle, run_a)
if st.session_state.get("compare_b_for") != run_a:  # a new run A: suggest its related run
    st.session_state["compare_b_for"] = run_a
    st.session_state["compare_b"] = suggested
run_b = right.selectbox("Run B", others, key="compare_b", index=None,
                        placeholder="Pick a run to compare with")
if suggested is None:
    st.info(f"Nothing related to {run_a!r} ({why}): pick run B yourself.")
elif run_b == suggested:
    right.caption(f"Suggested: {why}.")
if run_b is None:
    st.stop()

try:
    # the headline numbers only: no permutation baselines, bootstrap or scans (the
    # Specialization page and the report show those), ~3x less to compute on a first open;
    # and Focus/Cover of the one kind the headline reads (its first pooled row: the first
    # of FOCUS_KINDS recorded), not of every kind (a text-moe run records three)
    summaries = [metric(handle, "summary", r, kind=headline_kind(run_facts(handle, r)["kinds"]),
                        permutations=0, resamples=0, scans=False)
                 for r in (run_a, run_b)]
    heads = [analysis.headline(s) for s in summaries]
except RoutevizError as exc:
    show_error(exc)
    st.stop()
shared = [k for k in heads[0] if k in heads[1]]
fractions = [k for k in shared if k in FRACTIONS]
if fractions:
    table = pd.DataFrame({"metric": fractions, "a": [heads[0][k] for k in fractions],
                          "b": [heads[1][k] for k in fractions]})
    fig = figures.compare_bars(table, run_a, run_b, title="Scores on a 0–1 scale")
    fig.update_yaxes(range=[0, 1.05])
    st.plotly_chart(fig, key="compare_bars")
    pools = [TagFamilies.from_json(s["tag_families"]).describe()
             for s in summaries if s.get("tag_families")]
    if "Focus (pooled)" in fractions and pools:
        st.caption("Focus and Cover pool: " + (pools[0] if len(set(pools)) == 1 else
                                              f"A: {pools[0]} · B: {pools[-1]}") + ".")
counts = [k for k in shared if k not in FRACTIONS]
for col, key in zip(st.columns(max(len(counts), 1)), counts):
    a, b = heads[0][key], heads[1][key]
    shown = (lambda v: f"{v:.0f}") if key == "starved experts" else (lambda v: f"{v:.2f}")
    col.metric(f"{key}: A → B", f"{shown(a)} → {shown(b)}", delta=shown(b - a),
               delta_color="off")

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

kinds = [set(run_facts(handle, r)["kinds"]) for r in (run_a, run_b)]
models = [str(m) for m in runs_frame(handle).set_index("run").loc[[run_a, run_b], "model"]]
if "expert" in kinds[0] & kinds[1]:
    st.markdown("**Experts matched between the runs**")
    matched = matching(handle, run_a, run_b)
    if matched.sites.empty:
        st.caption("No unit routed by both runs: experts cannot be matched.")
    else:
        different = models[0] != models[1]
        st.caption(
            ("Different models number their experts independently: " if different else "")
            + "each expert of B is matched one-to-one to the expert of A it shares most top-1 "
            "units with (cosine of their unit sets, Hungarian matching); agreement after "
            "matching is fitted on the same units, so it is an upper bound.")
        sites = matched.sites.assign(metric=[f"{data.short_site(x)} ↔ {data.short_site(y)}"
                                             for x, y in zip(matched.sites.site_a,
                                                             matched.sites.site_b)])
        fig = figures.compare_bars(
            sites.rename(columns={"agreement_by_id": "a", "agreement_matched": "b"}),
            "by expert id", "after matching", title="Top-1 agreement per site pair")
        fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
        st.plotly_chart(fig, key="compare_matched")
        with st.expander("The matching (expert of A ↔ expert of B)", expanded=different):
            st.dataframe(matched.pairs, hide_index=True, key="compare_pairs")

sites = pd.DataFrame(result["sites"])
if len(sites):
    st.plotly_chart(analysis.agreement_bars(sites, title="Where the two runs route alike "
                                                          "(experts compared by id)"),
                    key="compare_agreement")
expert_sites = sites[sites.kind == "expert"] if len(sites) else sites
if len(expert_sites):  # engines side by side: the numbers the rollout/training mismatch needs
    st.markdown("**Tokens routed differently, per layer** (share of the tokens both runs "
                "routed whose chosen experts differ; top-1 only where both runs rank by score)")
    sources = [run_source(run_config(handle, r)) for r in (run_a, run_b)]
    if sources != ["traced", "traced"]:
        st.caption(f"A: {sources[0]} · B: {sources[1]}")
    columns = [c for c in ("site", "layer", "n_units", "share_differing", "jaccard",
                           "top1_agreement") if c in expert_sites]
    st.dataframe(expert_sites[columns], hide_index=True, key="compare_layers")
    first = result.get("first_divergence")
    if first is None:
        st.caption("The two runs choose the same experts at every token both routed.")
    else:
        st.markdown(f"First divergence: example {first['example']}, token {first['token']}, "
                    f"layer {first['layer']} — A chose {first['run_experts']}, B chose "
                    f"{first['against_experts']}.")
        st.dataframe(pd.DataFrame(result["differing_units"]), hide_index=True,
                     key="compare_differing")
changed = pd.DataFrame(result["changed_tokens"])
st.markdown("**Most-changed tokens** (token −1: the whole example)")
if changed.empty:
    st.caption("No token changed its routing.")
else:
    changed["text"] = [data.show_token(t) if isinstance(t, str) else "" for t in changed["text"]]
    st.dataframe(changed, hide_index=True, key="compare_changed")
