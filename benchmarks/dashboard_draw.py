"""What the Inspect page costs to draw for long inputs: `python -m benchmarks.dashboard_draw`.

A synthetic 20,000-token example (4 top-2 expert sites, a keep site, per-token exits) and a
4000×3000 photo, through the same `routeviz.figures` calls the page makes. Prints one JSON
object: seconds per step (median of 3) and the bytes each figure sends to the browser.
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pandas as pd

from routeviz.figures import data, images, tokens

N_TOKENS, SITES, EXPERTS, K = 20_000, 4, 8, 2
MAX_CHIPS, MAX_HEATMAP_TOKENS = 2000, 400  # the page's caps (app_pages/common.py)


def synthetic_routes(rng) -> pd.DataFrame:
    frames = []
    for layer in range(SITES):
        experts = np.argsort(rng.random((N_TOKENS, EXPERTS)), axis=1)[:, :K]  # [t, k]
        frames.append(pd.DataFrame({
            "token": np.repeat(np.arange(N_TOKENS), K), "layer": layer,
            "site": f"model.layers.{layer}.mlp.gate", "kind": "expert",
            "choice": experts.ravel(), "rank": np.tile(np.arange(K), N_TOKENS),
            "weight": rng.random(N_TOKENS * K)}))
    frames.append(pd.DataFrame({"token": np.arange(N_TOKENS), "layer": 1,
                                "site": "model.layers.1.mod", "kind": "keep",
                                "choice": rng.integers(0, 2, N_TOKENS), "rank": 0,
                                "weight": rng.random(N_TOKENS)}))
    exit_layer = rng.integers(0, SITES, N_TOKENS)
    frames.append(pd.DataFrame({"token": np.arange(N_TOKENS), "layer": exit_layer,
                                "site": "model.exit", "kind": "exit", "choice": exit_layer,
                                "rank": 0, "weight": rng.random(N_TOKENS)}))
    return pd.concat(frames, ignore_index=True)


def timed(fn, repeat: int = 3):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, round(float(np.median(times)), 4)


def main() -> dict:
    from PIL import Image

    rng = np.random.default_rng(0)
    routes = synthetic_routes(rng)
    strings = [f"w{i}" for i in range(N_TOKENS)]
    out = {"tokens": N_TOKENS, "route_rows": len(routes)}
    cards, out["route_cards_2000_s"] = timed(
        lambda: data.route_cards(routes[routes["token"] < MAX_CHIPS], strings[:MAX_CHIPS]))
    grid, _ = data.token_grid(routes, MAX_CHIPS, "expert")
    chips, out["chips_2000_s"] = timed(
        lambda: tokens.token_chips_html(strings, grid[:, 0], cards, limit=MAX_CHIPS))
    out["chips_2000_kb"] = round(len(chips) / 1024, 1)
    (grid, columns), out["token_grid_20000_s"] = timed(
        lambda: data.token_grid(routes, N_TOKENS, "expert"))
    fig, out["heatmap_20000_binned_s"] = timed(
        lambda: tokens.token_heatmap(grid, columns, strings, "expert", n_experts=EXPERTS,
                                     max_tokens=MAX_HEATMAP_TOKENS))
    out["heatmap_json_kb"] = round(len(fig.to_json()) / 1024, 1)
    _, out["kept_fate_20000_s"] = timed(lambda: data.token_fate(routes, N_TOKENS))

    photo = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8)).save(photo, "PNG")
    shown, out["display_image_4000x3000_s"] = timed(lambda: data.display_image(photo.getvalue()))
    out["display_size"] = list(shown.size)
    patches = rng.integers(0, EXPERTS, (64, 64)).astype(float)
    overlay, out["overlay_64x64_s"] = timed(lambda: images.patch_overlay(shown, patches, EXPERTS))
    out["overlay_json_kb"] = round(len(overlay.to_json()) / 1024, 1)
    return out


if __name__ == "__main__":
    print(json.dumps(main()))
