"""Plotly figure builders for the dashboard and reports (no Streamlit in here).

- `data`: frames read from a store and shaped for drawing (token grids, route cards).
- `tokens`: token chips (escaped HTML) and the token × layer heatmap.
- `images`: patch-grid overlay, kept/dropped small multiples, exit depth per patch.
- `routing`: load per site, path Sankey, exit histogram, kept fraction.
- `analysis`: Focus/Cover bars, A_ij heatmap, run comparison, embedding scatter.
- `export`: a figure as HTML, PNG or SVG.
"""

from routeviz.figures.analysis import (
                                       alignment_heatmap,
                                       compare_bars,
                                       embedding_scatter,
                                       focus_cover_bars,
)
from routeviz.figures.export import available_formats, figure_bytes
from routeviz.figures.images import exit_depth_grid, kept_small_multiples, patch_overlay
from routeviz.figures.routing import (
                                       exit_histogram,
                                       kept_fraction,
                                       load_bars,
                                       load_matrix,
                                       path_sankey,
)
from routeviz.figures.tokens import legend_html, token_chips_html, token_heatmap

__all__ = ["alignment_heatmap", "available_formats", "compare_bars", "embedding_scatter",
           "exit_depth_grid", "exit_histogram", "figure_bytes", "focus_cover_bars",
           "kept_fraction", "kept_small_multiples", "legend_html", "load_bars", "load_matrix",
           "patch_overlay", "path_sankey", "token_chips_html", "token_heatmap"]
