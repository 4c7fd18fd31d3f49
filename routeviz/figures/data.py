"""The frames the figures draw, read from a store and shaped (no plotting, no Streamlit).

A "column" of a token × layer grid is one routing site, ordered by (layer, site name); for
exits it is one layer. Cells are NaN where the token has no decision at that site (it was
dropped earlier, or the site did not see it).
"""

from __future__ import annotations

import html
import io

import numpy as np
import pandas as pd

from routeviz.figures.labels import CONTAINERS, exit_label, short_site  # noqa: F401


def plot_text(value) -> str:
    """User text for a plotly label or hover: `<`, `>` and `&` escaped (plotly reads its text
    as a small HTML dialect), quotes left alone (plotly would show `&quot;` literally)."""
    return html.escape(str(value), quote=False)

GRID_VALUES = {
    "expert": "top-1 expert",
    "gate": "top-1 gate weight",
    "exit": "computed (until its exit layer)",
    "kept": "kept / dropped / merged",
}


def example_routes(store, run: str, example: int) -> pd.DataFrame:
    """Every route row of one example, ordered by layer, site, token, rank."""
    return store.example_routes(run, example)


def example_tokens(store, run: str, example: int) -> list[str]:
    return store.example_tokens(run, example)


def example_info(store, run: str, example: int) -> dict:
    """The examples row of one example as a dict (image bytes included)."""
    return store.example_info(run, example)


def sites_of(routes: pd.DataFrame, kind) -> list[str]:
    """Sites of `kind` (a kind or a tuple of kinds) in model order (layer, then name)."""
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    sub = routes[routes["kind"].isin(kinds)]
    if sub.empty:
        return []
    order = sub.groupby("site", observed=True)["layer"].min().reset_index()
    order = order.sort_values(["layer", "site"])
    return order["site"].astype(str).tolist()


def token_grid(routes: pd.DataFrame, n_tokens: int, value: str, n_layers: int | None = None):
    """A [n_tokens, columns] float array of `value` per token and site, plus column labels.

    value: expert (top-1 expert id), gate (top-1 weight), kept (`token_fate`: 1 in, 0
    dropped, 0.5 merged), exit (1 while the token is still computed, 0 after its exit
    layer; columns are layers).
    """
    if value not in GRID_VALUES:
        raise ValueError(f"value must be one of {sorted(GRID_VALUES)}")
    if value == "exit":
        return _exit_grid(routes, n_tokens, n_layers)
    if value == "kept":
        return token_fate(routes, n_tokens)
    kind = "expert"
    sites = sites_of(routes, kind)
    grid = np.full((n_tokens, len(sites)), np.nan)  # [tokens, sites]
    sub = routes[(routes["kind"] == kind) & (routes["rank"] == 0) & (routes["token"] >= 0)]
    sub = sub[sub["token"] < n_tokens]
    if sub.empty:
        return grid, [short_site(s) for s in sites]
    column = {site: j for j, site in enumerate(sites)}
    cols = sub["site"].astype(str).map(column).to_numpy(dtype=int)
    field = "weight" if value == "gate" else "choice"
    grid[sub["token"].to_numpy(), cols] = sub[field].to_numpy(dtype=float)
    return grid, [short_site(s) for s in sites]


def token_fate(routes: pd.DataFrame, n_tokens: int):
    """Per keep or merge site in model order, what happened to each token there:
    1 still in (kept, or not merged), 0 dropped here, 0.5 merged away here, NaN gone before.
    Returns ([n_tokens, sites] array, short site labels)."""
    sub = routes[routes["kind"].isin(["keep", "merge"]) & (routes["token"] >= 0)
                 & (routes["token"] < n_tokens)]
    order = (sub.groupby("site", observed=True)["layer"].min().reset_index()
             .sort_values(["layer", "site"])) if len(sub) else pd.DataFrame(columns=["site"])
    sites = order["site"].astype(str).tolist()
    grid = np.full((n_tokens, len(sites)), np.nan)  # [tokens, sites]
    alive = np.ones(n_tokens, dtype=bool)
    for j, site in enumerate(sites):
        rows = sub[sub["site"].astype(str) == site]
        tokens = rows["token"].to_numpy()
        if (rows["kind"] == "keep").all():
            grid[tokens, j] = rows["choice"].to_numpy(dtype=float)
            seen = np.zeros(n_tokens, dtype=bool)
            seen[tokens] = True
            alive &= seen
            alive[tokens[rows["choice"].to_numpy() == 0]] = False
        else:  # merge: rows are the tokens merged away here
            grid[alive, j] = 1.0
            grid[tokens, j] = 0.5
            alive[tokens] = False
    return grid, [short_site(s) for s in sites]


def exit_frame(exits) -> pd.DataFrame:
    """A `routeviz.metrics.exits` result as the exit histogram's frame: layer (0-based exit
    layer), count, fraction, unit ("tokens" / "examples") — the one frame the app, the
    exported figure and the report draw."""
    parts = [hist.assign(unit=unit) for unit, hist in (("tokens", exits.per_token),
                                                       ("examples", exits.per_example))
             if len(hist)]
    if not parts:
        return pd.DataFrame(columns=["layer", "count", "fraction", "unit"])
    frame = pd.concat(parts, ignore_index=True)
    return frame.astype({"layer": "int64", "count": "int64"})


def exit_layers(routes: pd.DataFrame, n_tokens: int) -> np.ndarray:
    """[n_tokens] exit layer of each token (an example-level exit applies to all); NaN if none."""
    exits = np.full(n_tokens, np.nan)
    sub = routes[routes["kind"] == "exit"]
    whole = sub[sub["token"] < 0]
    if not whole.empty:
        exits[:] = float(whole["choice"].iloc[0])
    per_token = sub[(sub["token"] >= 0) & (sub["token"] < n_tokens)]
    exits[per_token["token"].to_numpy()] = per_token["choice"].to_numpy(dtype=float)
    return exits


def _exit_grid(routes, n_tokens, n_layers):
    exits = exit_layers(routes, n_tokens)
    if n_layers is None:
        known = [routes["layer"].max() if not routes.empty else -1, np.nanmax(exits, initial=-1)]
        n_layers = int(max(known)) + 1
    layers = np.arange(max(n_layers, 1))
    grid = (layers[None, :] <= exits[:, None]).astype(float)  # [tokens, layers]
    grid[np.isnan(exits)] = np.nan
    return grid, [f"L{i}" for i in layers]


def aggregate_tokens(grid: np.ndarray, max_rows: int, categorical: bool):
    """Bin rows so at most `max_rows` remain: the most frequent value per bin (categorical)
    or the mean. Returns (binned grid, start token of each bin)."""
    n = grid.shape[0]
    if n <= max_rows:
        return grid, np.arange(n)
    size = int(np.ceil(n / max_rows))
    starts = np.arange(0, n, size)
    out = np.full((len(starts), grid.shape[1]), np.nan)
    for i, start in enumerate(starts):
        block = grid[start:start + size]  # [size, columns]
        for j in range(grid.shape[1]):
            col = block[:, j]
            col = col[~np.isnan(col)]
            if col.size == 0:
                continue
            if categorical:
                values, counts = np.unique(col, return_counts=True)
                out[i, j] = values[np.argmax(counts)]
            else:
                out[i, j] = col.mean()
    return out, starts


def route_cards(routes: pd.DataFrame, tokens: list[str]) -> list[str]:
    """Per token, its route through every layer as HTML-escaped text lines joined by <br>."""
    n = len(tokens)
    lines = [[f"<b>#{i} {plot_text(show_token(t))}</b>"] for i, t in enumerate(tokens)]
    whole_exit = routes[(routes["kind"] == "exit") & (routes["token"] < 0)]
    for row in routes[(routes["token"] >= 0) & (routes["token"] < n)].itertuples(index=False):
        lines[row.token].append(_describe(row))
    if not whole_exit.empty:
        note = _describe(whole_exit.iloc[0]) + " (whole example)"
        for card in lines:
            card.append(note)
    return ["<br>".join(_merge_ranks(card)) for card in lines]


# what a route's weight is, per kind (the routes table's `weight` column), as a card says it
WEIGHT_NAMES = {"expert": "gate", "keep": "keep score", "exit": "exit score",
                "merge": "similarity"}


def _describe(row) -> str:
    """One card line; the weight named (gate, keep score, exit score, similarity) and left
    out where it is no score: NULL, or a keep score of exactly 0 (a token kept by rule, such
    as CLS, which no scorer saw)."""
    site, kind = plot_text(short_site(row.site)), row.kind
    meaningless = pd.isna(row.weight) or (kind == "keep" and row.weight == 0)
    weight = "" if meaningless else f" ({WEIGHT_NAMES.get(kind, 'weight')} {row.weight:.2f})"
    if kind == "expert":
        return f"{site}: e{int(row.choice)}{weight}"
    if kind == "keep":
        return f"{site}: {'kept' if int(row.choice) == 1 else 'dropped'}{weight}"
    if kind == "exit":
        return f"exit at {exit_label(int(row.choice))}{weight}"
    return f"{site}: merged into #{int(row.choice)}{weight}"


def _merge_ranks(card: list[str]) -> list[str]:
    """Join consecutive expert lines of one site: `3.mlp.gate: e1 (0.6), e4 (0.3)`."""
    merged = []
    for line in card:
        head, _, rest = line.partition(": e")
        if merged and rest and merged[-1].startswith(head + ": e"):
            merged[-1] += f", e{rest}"
        else:
            merged.append(line)
    return merged


def show_token(text: str) -> str:
    """Make whitespace visible: a token that is only spaces or newlines still shows."""
    text = str(text)
    return text.replace("\n", "↵").replace("\t", "⇥") if text.strip() else (
        text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅")


def patch_values(values: np.ndarray, grid_h: int, grid_w: int) -> np.ndarray:
    """[tokens] per-patch values -> [grid_h, grid_w], NaN where a patch has no value."""
    out = np.full(grid_h * grid_w, np.nan)
    m = min(len(values), grid_h * grid_w)
    out[:m] = values[:m]
    return out.reshape(grid_h, grid_w)


def display_image(png_bytes: bytes, max_side: int = 512):
    """Decode stored image bytes and scale for display: at its original aspect ratio (a
    model's square input of a 640×480 photo drawn 4:3, `inputs.original_size`), at most
    `max_side` pixels a side, small images enlarged (nearest) to at least 256 so patches
    are visible."""
    from PIL import Image

    from routeviz.runs.inputs import at_aspect, original_size

    stored = Image.open(io.BytesIO(png_bytes))
    image = at_aspect(stored.convert("RGB"), original_size(stored))
    w, h = image.size
    scale = min(max_side / max(w, h), 1.0)
    if max(w, h) < 256:
        scale = 256 / max(w, h)
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = image.resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS)
    return image


def patch_crop(png_bytes: bytes, grid_h: int, grid_w: int, token: int, size: int = 56):
    """The image patch of token `token` (row-major over the grid), scaled to `size` pixels."""
    from PIL import Image

    image = Image.open(io.BytesIO(png_bytes)).convert("RGB")
    w, h = image.size
    row, col = divmod(int(token), int(grid_w))
    box = (round(col * w / grid_w), round(row * h / grid_h),
           round((col + 1) * w / grid_w), round((row + 1) * h / grid_h))
    return image.crop(box).resize((size, size), Image.NEAREST)


def context_line(left: str, text: str, right: str) -> str:
    """`left [token] right` with whitespace made visible in the token, as plain text."""
    return f"{str(left or '')[-40:]}⟦{show_token(text)}⟧{str(right or '')[:40]}".replace("\n", "↵")
