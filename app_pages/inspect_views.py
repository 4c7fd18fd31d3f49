"""What Inspect shows for one example: text chips + tag row + heatmap, or image overlays.

Every figure is sized to its content: heatmap rows of a fixed height, at most PAGE_TOKENS
tokens a page (one label each), images at their own aspect ratio; a legend names every state.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from app_pages.common import MAX_CHIPS, cached, memo, n_experts_for, run_config
from app_pages.experts_views import expert_card_labels, with_card_labels
from app_pages.inspect_click import apply_site, follow_click
from app_pages.inspect_outputs import show_output
from app_pages.inspect_soft import has_soft, show_soft
from routeviz import figures
from routeviz.analysis import find
from routeviz.figures import data
from routeviz.figures.labels import exit_label
from routeviz.figures.tokens import states_legend_html, tag_chips_html

PAGE_TOKENS = 80  # heatmap columns a page, each labelled
ALL_BINNED = "all tokens (binned)"


def _bundle(store, run, example):
    return {"info": data.example_info(store, run, example),
            "tokens": data.example_tokens(store, run, example),
            "routes": data.example_routes(store, run, example),
            "tags": find.token_tags(store, run, example)}


example_bundle = cached(_bundle)


def token_tag_values(tags, n: int) -> dict:
    """tag family -> [value or None per token] (example-level tags apply to every token)."""
    out = {}
    for name, rows in tags.groupby("name", sort=True):
        values = [None] * n
        whole = rows[rows.token < 0]
        if len(whole):
            values = [str(whole.value.iloc[0])] * n
        for token, value in zip(rows.token, rows.value):
            if 0 <= token < n:
                values[int(token)] = str(value)
        out[str(name)] = values
    return out


def with_tags(cards: list[str], tag_values: dict) -> list[str]:
    """Route cards with one `tags: name=value, ...` line each."""
    out = []
    for i, card in enumerate(cards):
        pairs = [f"{name}={values[i]}" for name, values in tag_values.items()
                 if values[i] is not None]
        out.append(card + ("<br>tags: " + data.plot_text(", ".join(pairs)) if pairs else ""))
    return out


def site_picker(sites: list[str], label: str = "Routing site (layer)") -> str | None:
    """One site of `sites`, kept in session state and the URL as `inspect_site`."""
    if not sites:
        return None
    apply_site(sites)  # a click on the heatmap asked for one
    if st.session_state.get("inspect_site") not in sites:
        st.session_state["inspect_site"] = sites[0]
    if len(sites) == 1:
        return sites[0]
    return st.select_slider(label, options=sites, format_func=data.short_site, key="inspect_site")


def show_example(handle, run: str, example: int) -> dict | None:
    """Draw one example; returns its bundle (None when the run lacks it)."""
    bundle = example_bundle(handle, run, int(example))
    info, routes = bundle["info"], bundle["routes"]
    if not info:
        st.warning(f"example {example} is not in run {run!r}")
        return None
    config = run_config(handle, run)

    def remember(key: tuple, build):  # built once per example of this run's generation
        return memo(handle, ("inspect", run, int(example)) + key, build)

    tags = remember(("tags",), lambda: token_tag_values(bundle["tags"], len(bundle["tokens"])))

    if info.get("modality") == "image":
        show_image(info, bundle["tokens"], routes, config, tags,
                   expert_labels=lambda: expert_card_labels(handle, run), remember=remember)
        if has_soft(routes):  # Soft MoE: dominant experts and per-slot dispatch maps
            show_soft(handle, run, example, info, config, None)
    else:
        show_text(bundle["tokens"], routes, config, tags,
                  expert_labels=lambda: expert_card_labels(handle, run), remember=remember)
    show_output(handle, run, int(example), info, config)  # per token for a text
    return bundle


def _built(key: tuple, build):
    return build()


def show_text(tokens: list[str], routes, config: dict, tags: dict, expert_labels=dict,
              remember=_built) -> None:
    """expert_labels(): {(site, expert): expert card label}, named in each token's hover;
    remember(key, build): build() or what it built before for this example (common.memo)."""
    n = len(tokens)
    st.subheader(f"Tokens ({n:,})")
    expert_sites, keep_sites, has_exit = remember(("kinds",), lambda: (
        data.sites_of(routes, "expert"), data.sites_of(routes, ("keep", "merge")),
        bool((routes["kind"] == "exit").any())))
    mode = "expert" if expert_sites else "kept"
    site = site_picker(expert_sites or keep_sites)
    shown = tokens[:MAX_CHIPS]
    if n > MAX_CHIPS:
        st.info(f"Long input: showing the first {MAX_CHIPS:,} of {n:,} tokens as chips; the "
                f"heatmap below pages through all {n:,}.")
    cards = remember(("cards",), lambda: with_card_labels(
        with_tags(data.route_cards(routes[routes["token"] < MAX_CHIPS], shown),
                  {k: v[:MAX_CHIPS] for k, v in tags.items()}), routes, expert_labels()))
    if site is not None:
        values = remember(("chips", site), lambda: _chip_values(routes, site, mode, len(shown)))
        n_exp = n_experts_for(config, site, fallback=int(np.nanmax(values, initial=0)) + 1)
        st.caption(f"Coloured by {'top-1 expert' if mode == 'expert' else 'kept / dropped / merged'}"
                   f" at `{data.short_site(site)}`; hover a chip for its route through every "
                   "layer and its tags.")
        st.html(figures.legend_html(n_exp, mode))
    else:
        values, n_exp = np.full(len(shown), np.nan), 1
        st.caption("This run has no per-token expert or keep decisions to colour by.")
    st.html(figures.token_chips_html(shown, values, cards, mode=mode, limit=MAX_CHIPS))
    if keep_sites or has_exit or mode == "expert":
        st.html(states_legend_html(exited=has_exit))
    token_tags = {k: v for k, v in tags.items() if any(x is not None for x in v)}
    if token_tags:
        family = st.selectbox("Tag row", ["(none)"] + list(token_tags), key="inspect_tag_row",
                              help="A second row of chips: each token's value of one tag.")
        if family != "(none)":
            st.html(tag_chips_html(shown, token_tags[family][:MAX_CHIPS], cards))
    _heatmap(tokens, routes, config, cards, expert_sites, keep_sites, has_exit, remember)


def _chip_values(routes, site: str, mode: str, n: int) -> np.ndarray:
    """Per chip, its colour's value at `site`: top-1 expert, or kept / dropped / merged."""
    if mode == "expert":
        grid, _ = data.token_grid(routes[routes["site"] == site], n, "expert")
        return grid[:, 0] if grid.shape[1] else np.full(n, np.nan)
    fate, labels = data.token_fate(routes, n)  # fate at a site depends on the sites before
    return fate[:, labels.index(data.short_site(site))]


def _heatmap(tokens, routes, config, cards, expert_sites, keep_sites, has_exit,
             remember=_built) -> None:
    n = len(tokens)
    choices = ((["expert", "gate"] if expert_sites else []) + (["kept"] if keep_sites else [])
               + (["exit"] if has_exit else []))
    if not choices:
        return
    left, right = st.columns([1, 1])
    value = left.selectbox("Heatmap shows", choices, format_func=data.GRID_VALUES.get,
                           key="inspect_heatmap_value")
    pages = [(a, min(a + PAGE_TOKENS, n)) for a in range(0, n, PAGE_TOKENS)]
    span = (0, n)
    if len(pages) > 1:
        options = [f"tokens {a}–{b - 1}" for a, b in pages] + [ALL_BINNED]
        chosen = right.selectbox(f"{n:,} tokens: page", options, key="inspect_heatmap_page")
        span = (0, n) if chosen == ALL_BINNED else pages[options.index(chosen)]
    a, b = span
    binned = b - a > PAGE_TOKENS
    if binned:
        st.caption(f"{n:,} tokens binned into at most {PAGE_TOKENS} columns (the most common "
                   "expert per bin, or the mean); pick a page to see each token.")

    def build():
        grid, columns = data.token_grid(routes, n, value, n_layers=config.get("n_layers"))
        return figures.token_heatmap(
            grid[a:b], columns, tokens[a:b], value,
            cards=None if binned else cards[a:b] if b <= len(cards) else None,
            n_experts=n_experts_for(config), max_tokens=PAGE_TOKENS, first=a, clickable=True)

    fig = remember(("heatmap", value, a, b), build)
    sites = {data.short_site(s): s for s in (keep_sites if value == "kept" else expert_sites)}
    st.plotly_chart(fig, key="inspect_heatmap", selection_mode="points",
                    on_select=follow_click("inspect_heatmap", sites))


def show_image(info: dict, tokens: list[str], routes, config: dict, tags: dict,
               expert_labels=dict, remember=_built) -> None:
    """expert_labels(): {(site, expert): expert card label}, named in each patch's hover;
    remember: as show_text's."""
    image_bytes = info.get("image")
    grid_h, grid_w = info.get("grid_h"), info.get("grid_w")
    if image_bytes is None:
        st.warning("This example has no stored image to draw.")
        _whole_example_routes(routes, config)
        return
    image = remember(("image",), lambda: data.display_image(bytes(image_bytes)))
    if not grid_h or not grid_w:  # routed per image, not per patch (e.g. DAE-Syn)
        st.image(image, caption=f"shown at {image.size[0]}×{image.size[1]}", width=image.size[0])
        _whole_example_routes(routes, config)
        return
    grid_h, grid_w = int(grid_h), int(grid_w)
    n_patches = grid_h * grid_w
    st.subheader(f"Patches ({grid_h}×{grid_w})")
    names = (tokens + [f"patch {i}" for i in range(len(tokens), n_patches)])[:n_patches]
    cards = remember(("cards",), lambda: with_card_labels(
        with_tags(data.route_cards(routes, names),
                  {k: (v + [None] * n_patches)[:n_patches] for k, v in tags.items()}),
        routes, expert_labels()))
    expert_sites = data.sites_of(routes, "expert")
    site = site_picker(expert_sites)
    if site is not None:
        grid, _ = data.token_grid(routes[routes["site"] == site], n_patches, "expert")
        patch_grid = data.patch_values(grid[:, 0], grid_h, grid_w)
        fig = remember(("overlay", site), lambda: figures.patch_overlay(
            image, patch_grid, n_experts_for(config, site),
            title=f"Top-1 expert per patch at {data.short_site(site)}", cards=cards,
            clickable=True))
        gone = (" Faded patches made no decision at this site: dropped, merged or exited "
                "before it." if np.isnan(patch_grid).any() else "")
        st.caption("Hover a patch: its number, experts at every site, kept / merged, exit, tags; "
                   f"click it to select it (the Why panel below follows).{gone}")
        st.plotly_chart(fig, key="inspect_overlay", width="content", selection_mode="points",
                        on_select=follow_click("inspect_overlay"))
    else:
        st.image(image, caption="No expert decisions in this run", width=image.size[0])
    fate, labels = data.token_fate(routes, n_patches)
    exits = data.exit_layers(routes, n_patches)
    if labels:
        panels = [data.patch_values(fate[:, j], grid_h, grid_w) for j in range(fate.shape[1])]
        st.plotly_chart(remember(("kept",), lambda: figures.kept_small_multiples(panels, labels)),
                        key="inspect_kept",
                        width="content")
        if len(labels) > 24:
            st.caption(f"Showing 24 of {len(labels)} keep/merge sites.")
    if labels or np.isfinite(exits).any():
        st.html(states_legend_html(exited=bool(np.isfinite(exits).any())))
    whole = routes[(routes["kind"] == "exit") & (routes["token"] < 0)]
    n_layers = config.get("n_layers")
    if not whole.empty:
        _exit_metric(whole.iloc[0], n_layers)
    elif np.isfinite(exits).any():
        st.plotly_chart(figures.exit_depth_grid(data.patch_values(exits, grid_h, grid_w), n_layers),
                        key="inspect_exit", width="content")


def _exit_metric(row, n_layers) -> None:
    score = row["weight"]
    st.metric("Exit depth", exit_label(int(row["choice"]), n_layers),
              help=(f"exit score {score:.2f}: what the exit head compared with its threshold "
                    "(a confidence: the probability of its prediction, or the similarity of "
                    "consecutive layers' states for a patience exit)") if score == score else None)


def _whole_example_routes(routes, config) -> None:
    """Decisions made once for the whole example (token = -1), as a table."""
    whole = routes[routes["token"] < 0]
    if whole.empty:
        st.caption("No per-example decisions in this run.")
        return
    exits = whole[whole["kind"] == "exit"]
    if not exits.empty:
        _exit_metric(exits.iloc[0], config.get("n_layers"))
    st.subheader("Routing of the whole example")
    table = whole.assign(site=whole["site"].astype(str), kind=whole["kind"].astype(str))
    st.dataframe(table[["layer", "site", "kind", "rank", "choice", "weight"]], hide_index=True,
                 key="inspect_whole_routes")
