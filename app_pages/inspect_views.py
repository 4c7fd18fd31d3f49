"""What Inspect shows for one example: text chips + heatmap, or image overlays."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_pages.common import (MAX_CHIPS, MAX_HEATMAP_TOKENS, cached, n_experts_for,
                              run_config)
from routeviz import figures
from routeviz.figures import data


def _bundle(store, run, example):
    return {"info": data.example_info(store, run, example),
            "tokens": data.example_tokens(store, run, example),
            "routes": data.example_routes(store, run, example)}


example_bundle = cached(_bundle)


def _examples(store, run, limit=1000):
    return store.example_list(run, limit)


example_list = cached(_examples)


def show_example(handle, run: str, example: int) -> None:
    bundle = example_bundle(handle, run, int(example))
    info, routes = bundle["info"], bundle["routes"]
    if not info:
        st.warning(f"example {example} is not in run {run!r}")
        return
    config = run_config(handle, run)
    if info.get("modality") == "image":
        show_image(info, routes, config)
    else:
        show_text(bundle["tokens"], routes, config)
    prediction = info.get("prediction")
    st.subheader("Model output")
    if prediction:
        st.code(str(prediction), language=None)
    else:
        st.caption("The model gave no output for this example.")
    if info.get("label"):
        st.caption(f"Label: {info['label']}")


def _layer_picker(sites: list[str], key: str) -> str | None:
    if not sites:
        return None
    if len(sites) == 1:
        return sites[0]
    labels = {data.short_site(s): s for s in sites}
    chosen = st.select_slider("Layer (routing site)", options=list(labels), key=key)
    return labels[chosen]


def show_text(tokens: list[str], routes, config: dict) -> None:
    n = len(tokens)
    st.subheader(f"Tokens ({n:,})")
    expert_sites = data.sites_of(routes, "expert")
    keep_sites = data.sites_of(routes, ("keep", "merge"))
    mode = "expert" if expert_sites else "kept"
    site = _layer_picker(expert_sites or keep_sites, key="inspect_layer")
    shown = tokens[:MAX_CHIPS]
    if n > MAX_CHIPS:
        st.info(f"Long input: showing the first {MAX_CHIPS:,} of {n:,} tokens as chips; the "
                f"heatmap below aggregates all {n:,}.")
    cards = data.route_cards(routes[routes["token"] < MAX_CHIPS], shown)
    if site is not None:
        if mode == "expert":
            grid, _ = data.token_grid(routes[routes["site"] == site], len(shown), "expert")
            values = grid[:, 0] if grid.shape[1] else np.full(len(shown), np.nan)
        else:  # fate at this site depends on the sites before it
            fate, labels = data.token_fate(routes, len(shown))
            values = fate[:, labels.index(data.short_site(site))]
        n_exp = n_experts_for(config, site, fallback=int(np.nanmax(values, initial=0)) + 1)
        st.caption(f"Coloured by {'top-1 expert' if mode == 'expert' else 'kept / dropped / merged'} at "
                   f"`{data.short_site(site)}`; hover a chip for its route through every layer.")
        st.html(figures.legend_html(n_exp, mode))
    else:
        values, n_exp = np.full(len(shown), np.nan), 1
        st.caption("This run has no per-token expert or keep decisions to colour by.")
    st.html(figures.token_chips_html(shown, values, cards, mode=mode, limit=MAX_CHIPS))

    has_exit = bool((routes["kind"] == "exit").any())
    choices = ((["expert", "gate"] if expert_sites else []) + (["kept"] if keep_sites else [])
               + (["exit"] if has_exit else []))
    if not choices:
        return
    value = st.selectbox("Heatmap shows", choices, format_func=data.GRID_VALUES.get,
                         key="inspect_heatmap_value")
    grid, columns = data.token_grid(routes, n, value, n_layers=config.get("n_layers"))
    if n > MAX_HEATMAP_TOKENS:
        st.caption(f"{n:,} tokens: the heatmap bins them into at most {MAX_HEATMAP_TOKENS} "
                   "columns (the most common expert per bin, or the mean).")
    fig = figures.token_heatmap(grid, columns, tokens, value,
                                cards=cards if n <= MAX_HEATMAP_TOKENS else None,
                                n_experts=n_experts_for(config), max_tokens=MAX_HEATMAP_TOKENS)
    st.plotly_chart(fig, key="inspect_heatmap")


def show_image(info: dict, routes, config: dict) -> None:
    image_bytes = info.get("image")
    grid_h, grid_w = info.get("grid_h"), info.get("grid_w")
    if image_bytes is None:
        st.warning("This example has no stored image to draw.")
        _whole_example_routes(routes)
        return
    if not grid_h or not grid_w:  # routed per image, not per patch (e.g. DAE-Syn)
        image = data.display_image(bytes(image_bytes))
        st.image(image, caption=f"shown at {image.size[0]}×{image.size[1]}", width=image.size[0])
        _whole_example_routes(routes)
        return
    grid_h, grid_w = int(grid_h), int(grid_w)
    image = data.display_image(bytes(image_bytes))
    st.subheader(f"Patches ({grid_h}×{grid_w})")
    n_patches = grid_h * grid_w
    expert_sites = data.sites_of(routes, "expert")
    site = _layer_picker(expert_sites, key="inspect_image_layer")
    if site is not None:
        grid, _ = data.token_grid(routes[routes["site"] == site], n_patches, "expert")
        patch_grid = data.patch_values(grid[:, 0], grid_h, grid_w)
        fig = figures.patch_overlay(image, patch_grid, n_experts_for(config, site),
                                    title=f"Top-1 expert per patch at {data.short_site(site)}")
        st.plotly_chart(fig, key="inspect_overlay")
    else:
        st.image(image, caption="No expert decisions in this run")
    fate, labels = data.token_fate(routes, n_patches)
    if labels:
        panels = [data.patch_values(fate[:, j], grid_h, grid_w) for j in range(fate.shape[1])]
        st.plotly_chart(figures.kept_small_multiples(panels, labels), key="inspect_kept",
                        width="content")
        if len(labels) > 24:
            st.caption(f"Showing 24 of {len(labels)} keep/merge sites.")
    exits = data.exit_layers(routes, n_patches)
    whole = routes[(routes["kind"] == "exit") & (routes["token"] < 0)]
    n_layers = config.get("n_layers")
    if not whole.empty:
        row = whole.iloc[0]
        depth = f" of {n_layers}" if n_layers else ""
        st.metric("Exit depth", f"layer {int(row['choice'])}{depth}",
                  help=f"confidence {row['weight']:.2f}" if row["weight"] == row["weight"] else None)
    elif np.isfinite(exits).any():
        st.plotly_chart(figures.exit_depth_grid(data.patch_values(exits, grid_h, grid_w), n_layers),
                        key="inspect_exit")


def _whole_example_routes(routes) -> None:
    """Decisions made once for the whole example (token = -1), as a table."""
    whole = routes[routes["token"] < 0]
    if whole.empty:
        st.caption("No per-example decisions in this run.")
        return
    st.subheader("Routing of the whole example")
    table = whole.assign(site=whole["site"].astype(str), kind=whole["kind"].astype(str))
    st.dataframe(table[["layer", "site", "kind", "rank", "choice", "weight"]], hide_index=True,
                 key="inspect_whole_routes")
