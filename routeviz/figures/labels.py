"""Labels that pages and figures put on screen, written one way everywhere.

Exit depth: an `exit` route's choice is the 0-based index of the last block the unit ran
(ARCHITECTURE.md, routes table), so "exit layer 3" means blocks 0..3 ran: 4 of N.
`exit_label` says both; every page and figure uses it (and `EXIT_AXIS` on an axis).
(User text on a figure goes through `routeviz.figures.data.plot_text`, escaped once.)
"""

from __future__ import annotations

import math

EXIT_AXIS = "exit layer (0-based; layer L = blocks 0..L ran)"


def exit_label(layer, n_layers: int | None = None) -> str:
    """`layer` (0-based, the last block run) as "layer 3 (ran 4 of 12 blocks)";
    a mean reads "layer 2.50 (ran 3.50 of 12 blocks)"; None/NaN reads "no exit"."""
    if layer is None or (isinstance(layer, float) and math.isnan(layer)):
        return "no exit"
    layer = float(layer)
    whole = layer.is_integer()
    shown = f"{int(layer)}" if whole else f"{layer:.2f}"
    ran = f"{int(layer) + 1}" if whole else f"{layer + 1:.2f}"
    of = f" of {int(n_layers)}" if n_layers else ""
    noun = "block" if ran == "1" and not n_layers else "blocks"
    return f"layer {shown} (ran {ran}{of} {noun})"


# -- site names -------------------------------------------------------------------------
CONTAINERS = {"layers", "layer", "blocks", "block", "h", "encoder", "decoder", "model",
              "transformer"}
POOLED_SITES = "all sites (pooled)"
EXIT_SITE = "exit (any layer)"  # `*` in routes and diffs: exits, whichever layer took them


def short_site(site: str) -> str:
    """Enough of a site name to tell sites apart: `model.layers.3.mlp.gate` -> `3.mlp.gate`,
    `blocks.2.moe.router` -> `2.moe.router`, `prune.0` stays `prune.0`."""
    parts = str(site).split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            start = i - 1 if i > 0 and parts[i - 1] not in CONTAINERS else i
            return ".".join(parts[start:])
    return str(site)


def site_label(site, kind: str | None = None) -> str:
    """A site as pages and figures name it. `*` means two things: in routes (and in
    `metrics.diff` and the What-if panel, which compare exits whatever head took them) it is
    the exit decision (kind "exit") -> "exit (any layer)"; in a metric's rows
    (focus_cover, series, load, ...) it pools every site -> "all sites (pooled)". Any
    other site is shortened (`short_site`)."""
    if str(site) == "*":
        return EXIT_SITE if kind == "exit" else POOLED_SITES
    return short_site(site)


def path_label(sites, experts) -> str:
    """A unit's top-1 path through the expert sites, each step named by its site:
    `0.mlp.router:e0 → 2.mlp.router:e2` (a site the unit skipped is absent)."""
    return " → ".join(f"{site_label(site)}:e{int(expert)}"
                      for site, expert in zip(sites, experts))
