"""Inspect's view of soft routing (Soft MoE; kinds `soft` and `dispatch`): patches coloured
by their dominant expert, and every slot's dispatch map over the image."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_pages.common import cached, n_experts_for
from routeviz import figures
from routeviz.figures import data
from routeviz.figures.soft import dispatch_maps
from routeviz.metrics import soft


# cached by qualified name: each wrapper's name is unique to this module
def _inspect_soft_sites(store, run):
    return soft.soft_sites(store, run)


def _inspect_dispatch_map(store, run, example, site):
    return soft.dispatch_map(store, run, example, site)


def _inspect_dominant_experts(store, run, example, site):
    return soft.dominant_experts(store, run, example, site)


soft_sites = cached(_inspect_soft_sites)
dispatch_map = cached(_inspect_dispatch_map)
dominant_experts = cached(_inspect_dominant_experts)


def has_soft(routes) -> bool:
    return bool(routes["kind"].isin(["soft", "dispatch"]).any())


def show_soft(handle, run: str, example: int, info: dict, config: dict, cards) -> None:
    """The example's soft routing at one Soft MoE site (picked here)."""
    sites = soft_sites(handle, run)
    if not sites or not info.get("image") or not info.get("grid_h"):
        return
    st.subheader("Soft routing (Soft MoE)")
    site = st.selectbox("Soft MoE site", sites, format_func=data.short_site,
                        key="inspect_soft_site") if len(sites) > 1 else sites[0]
    grid_h, grid_w = int(info["grid_h"]), int(info["grid_w"])
    image = data.display_image(bytes(info["image"]))
    n_exp = n_experts_for(config, site)
    dominant = dominant_experts(handle, run, int(example), site)
    values = np.full(grid_h * grid_w, np.nan)
    values[dominant.token.to_numpy()] = dominant.expert.to_numpy()
    st.caption("Nothing is dropped and no expert is chosen: every token takes a mix of every "
               "slot. Left: each patch coloured by the expert that holds most of its combine "
               "mass. Below: what each slot takes from each patch (dispatch weights).")
    st.plotly_chart(figures.patch_overlay(
        image, data.patch_values(values, grid_h, grid_w), n_exp, cards=cards,
        title=f"Dominant expert per patch at {data.short_site(site)}"),
        key="inspect_soft_dominant", width="content")
    grid = dispatch_map(handle, run, int(example), site)
    panels, labels = [], []
    for slot, rows in grid.groupby("slot", sort=True):
        weights = np.full(grid_h * grid_w, np.nan)
        weights[rows.token.to_numpy()] = rows.weight.to_numpy()
        panels.append(data.patch_values(weights, grid_h, grid_w))
        labels.append(f"slot {slot} · expert {int(rows.expert.iloc[0])}")
    st.plotly_chart(dispatch_maps(image, panels, labels), key="inspect_dispatch_maps",
                    width="content")
