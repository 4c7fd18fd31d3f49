"""Specialization: Focus/Cover per site and pooled, and the A_ij matrix behind them."""

import streamlit as st

from app_pages.common import cached, metric, page_run, run_facts, show_error
from routeviz import figures
from routeviz.errors import RoutevizError
from routeviz.figures.labels import site_label
from routeviz.metrics.tag_families import focus_families


def _default_families(store, run):
    return focus_families(store, run)


default_families = cached(_default_families)

DEFINITION = r"""
From *Suboptimal routing in conditional computation* (§4.2). For each **tag value** $i$
(e.g. `token_type=keyword`) and each **subnetwork** $j$ (a site's expert; or kept/dropped;
or an exit layer):

$$A_{ij} = \mathrm{F1}\big(\text{unit has tag } i,\ \text{subnetwork } j \text{ is active for the unit}\big)$$

(F1 of two empty sets is 0). A unit is a token or an example; "active" means chosen at any
rank, or only as the top choice with *top-1 only*.

- **Focus** $= \frac{1}{|J|}\sum_j \max_i A_{ij}$: does each subnetwork stand for one tag?
- **Cover** $= \frac{1}{|I|}\sum_i \max_j A_{ij}$: is each tag handled by some subnetwork?

Pooled over all sites (*all sites (pooled)*; site `*` in `metrics --json`) it is the
paper's definition; per site, only that site's subnetworks count. Experts that are never
chosen still count (with $\max_i A_{ij}=0$).
"""

handle, run = page_run("Specialization")

facts = run_facts(handle, run)
with st.expander("What Focus and Cover mean"):
    st.markdown(DEFINITION)
if not facts["tags"]:
    st.warning(f"Run {run!r} has no tags, so there is nothing to align experts with. Trace a "
               "bundled dataset (it carries tags) on **Runs**.")
    st.stop()
kinds = [k for k in ("expert", "keep", "exit") if k in facts["kinds"]]
if not kinds:
    st.warning(f"Run {run!r} has no expert, keep or exit decisions.")
    st.stop()

default = default_families(handle, run)  # the rule `metrics --json` and the report use
cols = st.columns([3, 2, 2, 1])
families = cols[0].multiselect(
    "Tag families", facts["tags"], default=default.pooled, key="spec_tags",
    help="By default the families that describe content; provenance (a source file, an id: "
         "about one value per example) is left out, as in `routeviz metrics` and the report. "
         "Empty = that default.")
if default.left_out:
    st.caption("Left out by default (provenance, not content): " + ", ".join(
        f"`{name}` ({why})" for name, why in default.left_out.items())
        + ". Add them above to pool them.")
kind = cols[1].selectbox("Subnetworks", kinds, key="spec_kind",
                         format_func={"expert": "experts", "keep": "kept / dropped",
                                      "exit": "exit layers"}.get)
unit = cols[2].radio("Unit", ["auto", "token", "example"], horizontal=True, key="spec_unit")
top1 = cols[3].toggle("top-1 only", key="spec_top1")

try:
    result = metric(handle, "focus_cover", run, tags=tuple(families), kind=kind,
                    unit=None if unit == "auto" else unit, top1=top1)
except RoutevizError as exc:
    show_error(exc)
    st.stop()

BAND = ["focus_mean", "focus_lo", "focus_hi", "cover_mean", "cover_lo", "cover_hi",
        "focus_ci_lo", "focus_ci_hi", "cover_ci_lo", "cover_ci_hi"]
band = metric(handle, "focus_cover_baseline", run, tags=tuple(families), kind=kind,
              unit=None if unit == "auto" else unit, top1=top1, permutations=30, resamples=30)
scores = result.scores.merge(band.scores[["site", "tag", *BAND]], on=["site", "tag"],
                             how="left")
pooled = scores[(scores["site"] == "*") & (scores["tag"] == "*")]
if pooled.empty:
    pooled = scores[scores["site"] == "*"].head(1)
if len(pooled):
    row = pooled.iloc[0]
    a, b, c = st.columns(3)
    a.metric("Focus (pooled)", f"{row.focus:.3f}", f"{row.focus - row.focus_mean:+.3f} vs chance",
             delta_color="off")
    b.metric("Cover (pooled)", f"{row.cover:.3f}", f"{row.cover - row.cover_mean:+.3f} vs chance",
             delta_color="off")
    c.metric("Unit", f"{result.unit}" + (" · top-1" if result.top1 else ""))
    st.caption(f"Focus and Cover pool: {result.families.describe()}.")
    sample = (f", a sample of {band.n_units:,} of {band.n_units_total:,} units"
              if band.sampled else "")
    st.caption(
        f"Chance band: tags shuffled across units ({band.permutations} permutations{sample}), "
        f"95% of shuffles give Focus {row.focus_lo:.3f}–{row.focus_hi:.3f} and Cover "
        f"{row.cover_lo:.3f}–{row.cover_hi:.3f}. Bootstrap 95% interval (units resampled): "
        f"Focus {row.focus_ci_lo:.3f}–{row.focus_ci_hi:.3f}, Cover "
        f"{row.cover_ci_lo:.3f}–{row.cover_ci_hi:.3f}. The grey strip over each bar is its "
        "site's chance band (hover it for the numbers).")

tag_choices = sorted(scores["tag"].astype(str).unique(), key=lambda t: (t != "*", t))
shown_tag = st.selectbox("Scores for tag family", tag_choices, key="spec_score_tag",
                         format_func=lambda t: "all chosen families, pooled" if t == "*" else t)
st.plotly_chart(figures.focus_cover_bars(scores[scores["tag"] == shown_tag]),
                key="spec_focus_cover")

st.subheader("A_ij")
site_options = list(dict.fromkeys(["*", *result.subnetworks["site"].astype(str)]))
left, right = st.columns(2)
site = left.selectbox("Site", site_options, key="spec_site",
                      format_func=lambda s: site_label(s) if s == "*" else s)
family = right.selectbox("Tag family", ["*"] + list(result.tags), key="spec_matrix_tag",
                         format_func=lambda t: "all" if t == "*" else t)
matrix = result.matrix(site, family)
if matrix.empty:
    st.info("No cells to draw for this choice.")
else:
    st.plotly_chart(figures.alignment_heatmap(matrix), key="spec_matrix")
if not result.dense:
    st.caption("Large matrix: only non-zero cells were kept; scores are exact.")
box = st.expander("Scores table", key="spec_scores_table", on_change="rerun")
with box:
    if box.open:  # sent only while open: a closed table is still sent and drawn hidden
        st.dataframe(scores.assign(site=scores["site"].replace("*", site_label("*"))),
                     hide_index=True)
