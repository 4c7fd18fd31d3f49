"""Experts: a gallery per site — each expert's typical tokens in context (or image patches),
its tag profile and its load share."""

import pandas as pd
import streamlit as st

from app_pages.common import cached, get_handle, metric, need_run, run_facts, show_error
from routeviz.errors import RoutevizError
from routeviz.figures import data

PER_ROW = 4
MAX_EXPERTS = 64


def _images(store, run, examples):
    return store.example_images(run, examples)


example_images = cached(_images)

st.title("Experts")
handle = get_handle()
run = need_run(handle)
if run is None:
    st.stop()
facts = run_facts(handle, run)
sites = facts["sites"]
expert_sites = sites[sites["kind"] == "expert"]["site"].tolist()
if not expert_sites:
    st.info(f"Run {run!r} has no expert decisions (kinds: {', '.join(facts['kinds']) or 'none'}).")
    st.stop()

left, mid, right = st.columns([3, 2, 1])
site = left.selectbox("Site", expert_sites, key="experts_site", format_func=data.short_site)
family = mid.selectbox("Tag profile by", ["(all families)"] + facts["tags"], key="experts_tag")
n_contexts = right.number_input("Examples each", 1, 12, 5, key="experts_n")

try:
    profile = metric(handle, "expert_profiles", run, site=site, contexts=int(n_contexts),
                     tag=None if family == "(all families)" else family)
    load = metric(handle, "load", run)
except RoutevizError as exc:
    show_error(exc)
    st.stop()

experts = load.experts[load.experts["site"].astype(str) == site].sort_values("expert")
if len(experts) > MAX_EXPERTS:
    st.caption(f"Showing the {MAX_EXPERTS} busiest of {len(experts)} experts.")
    experts = experts.nlargest(MAX_EXPERTS, "count").sort_values("expert")
is_image = facts["modality"] == "image"
crops_from = None
if is_image and len(profile.examples):
    crops_from = example_images(handle, run, tuple(sorted(set(profile.examples["example"]))))
    crops_from = crops_from.set_index("example")

st.caption(f"{len(experts)} experts at `{site}` · unit: {profile.unit}. Typical tokens are "
           "ranked by lift (how much more often the expert gets them than the run overall).")
rows = [experts.iloc[i:i + PER_ROW] for i in range(0, len(experts), PER_ROW)]
for chunk in rows:
    for col, rec in zip(st.columns(PER_ROW), chunk.itertuples(index=False)):
        e = int(rec.expert)
        with col.container(border=True):
            flag = " · **starved**" if bool(rec.starved) else ""
            st.markdown(f"**Expert {e}** · load {rec.share:.1%}{flag}")
            tokens = profile.tokens[profile.tokens["expert"] == e]
            if len(tokens) and not is_image:
                st.dataframe(pd.DataFrame({"token": [data.show_token(t) for t in tokens["text"]],
                                           "count": tokens["count"],
                                           "lift": tokens["lift"].round(2)}),
                             hide_index=True, height=150)
            contexts = profile.examples[profile.examples["expert"] == e]
            if is_image and crops_from is not None:
                crops = []
                for c in contexts.itertuples(index=False):
                    if c.example in crops_from.index and c.token >= 0:
                        row = crops_from.loc[c.example]
                        if row["image"] is not None and row["grid_w"]:
                            crops.append(data.patch_crop(bytes(row["image"]), int(row["grid_h"]),
                                                         int(row["grid_w"]), int(c.token)))
                if crops:
                    st.image(crops, width=56)
            elif len(contexts):
                st.text("\n".join(data.context_line(c.left, c.text, c.right)
                                  for c in contexts.itertuples(index=False)))
            tags = profile.tags[profile.tags["expert"] == e].head(5)
            if len(tags):
                st.caption("Tags: " + ", ".join(f"{n}={v} ×{lift:.1f}" for n, v, lift in
                                                zip(tags["name"], tags["value"], tags["lift"])))
