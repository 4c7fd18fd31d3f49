"""The Experts page for a Soft MoE run (kinds `soft` and `dispatch`): no expert is chosen,
so each expert is shown by its slots, each slot by the patches (or tokens) it takes most
of, with its dispatch weight; and each expert's share of the combine mass."""

from __future__ import annotations

import streamlit as st

from app_pages.common import cached
from routeviz.figures import data
from routeviz.metrics import soft

TOP = 8  # patches shown per slot


# cached by qualified name: each wrapper's name is unique to this module
def _experts_slot_top(store, run, site, k):
    return soft.slot_top_tokens(store, run, site, k)


def _experts_soft_load(store, run):
    return soft.soft_load(store, run)


def _experts_slot_entropy(store, run):
    return soft.dispatch_entropy(store, run)


def _experts_slot_images(store, run, examples):
    return store.example_images(run, examples)


slot_top = cached(_experts_slot_top)
soft_load = cached(_experts_soft_load)
slot_entropy = cached(_experts_slot_entropy)
slot_images = cached(_experts_slot_images)


def show_slots(handle, run: str, sites: list[str]) -> None:
    """Per Soft MoE site: one bordered card per expert, one row of top patches per slot."""
    st.caption("Soft MoE: every slot takes a dispatch-weighted mix of all the tokens of an "
               "example, so an expert is shown by what its slots take most of. Load is the "
               "expert's share of the combine mass.")
    site = st.selectbox("Soft MoE site", sites, key="experts_soft_site",
                        format_func=data.short_site) if len(sites) > 1 else sites[0]
    top = slot_top(handle, run, site, TOP)
    load = soft_load(handle, run)
    load = load[load.site.astype(str) == site].set_index("expert")
    stats = slot_entropy(handle, run)
    stats = stats[stats.site.astype(str) == site].set_index("slot")
    images = slot_images(handle, run, tuple(sorted({int(e) for e in top.example})))
    images = images.set_index("example") if len(images) else None
    for expert, slots in stats.groupby("expert", sort=True):
        with st.container(border=True):
            share = float(load.share.get(expert, 0.0))
            st.markdown(f"**Expert {expert}** · combine mass {share:.1%} · dominant for "
                        f"{int(load.dominant.get(expert, 0)):,} tokens")
            for slot, row in slots.iterrows():
                picks = top[top.slot == slot]
                st.caption(f"slot {slot}: ~{row.effective_tokens:.1f} effective tokens per "
                           f"example; top weights " + ", ".join(f"{w:.2f}" for w in picks.weight))
                crops = _crops(images, picks)
                if crops:
                    st.image(crops, width=56)


def _crops(images, picks) -> list:
    if images is None:
        return []
    out = []
    for example, token in zip(picks.example, picks.token):
        if example not in images.index:
            continue
        row = images.loc[example]
        if row["image"] is not None and row["grid_w"]:
            out.append(data.patch_crop(bytes(row["image"]), int(row["grid_h"]),
                                       int(row["grid_w"]), int(token)))
    return out
