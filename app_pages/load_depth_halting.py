"""Load & depth for per-token depth (halting, per-token exits): whether halted tokens saved
compute, mean depth per patch position over the run's images, and per tag value (e.g.
glyph vs background patches)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app_pages.common import cached
from routeviz import figures
from routeviz.figures import data
from routeviz.metrics import halting


# cached by qualified name: each wrapper's name is unique to this module
def _halting_by_position(store, run):
    return halting.depth_by_position(store, run)


def _halting_by_tag(store, run):
    return halting.depth_by_tag(store, run)


def _halting_grid(store, run):
    return store.engine.query("SELECT max(grid_h) AS h, max(grid_w) AS w FROM examples "
                              "WHERE run = $run", {"run": run})


by_position = cached(_halting_by_position)
by_tag = cached(_halting_by_tag)
image_grid = cached(_halting_grid)


def show_token_depth(handle, run: str, exits) -> None:
    """`exits`: the run's metrics.depth.ExitResult."""
    if exits.halted_tokens == "masked":
        st.caption("Halted tokens were **masked, not removed**: every block still computed "
                   "them (their state was frozen and later attention ignored them), so compute "
                   "saved counts 0. Only removed tokens save compute.")
    elif exits.halted_tokens == "removed":
        st.caption("Halted tokens were removed from the later blocks: compute saved counts them.")
    if exits.unit != "token":
        return
    positions = by_position(handle, run)
    grid = image_grid(handle, run)
    h, w = grid.h.iloc[0], grid.w.iloc[0]
    if len(positions) and pd.notna(h) and pd.notna(w) and h and w:
        values = np.full(int(h) * int(w), np.nan)
        inside = positions[positions.token < len(values)]
        values[inside.token.to_numpy()] = inside.mean_layer.to_numpy()
        st.markdown("**Mean depth per patch position** (over the run's images; darker is deeper)")
        st.plotly_chart(figures.exit_depth_grid(data.patch_values(values, int(h), int(w)),
                                                exits.n_layers), key="load_depth_position",
                        width="content")
    tags = by_tag(handle, run)
    if len(tags):
        st.markdown("**Mean depth per tag value**")
        st.dataframe(tags.rename(columns={"mean_layer": "mean exit layer", "n": "tokens"}),
                     hide_index=True, key="load_depth_tags")
