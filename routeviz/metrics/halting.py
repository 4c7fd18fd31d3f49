"""Per-token depth (halting, per-token early exit): where in the input tokens stop.

Reads `exit` rows with token ≥ 0 (choice = the layer a token exited or halted at). Depth
per position averages over the run's examples (an image's patch index, row-major, is the
same place in every image of one size); depth per tag joins the tokens' own tags (token-level
tags such as glyph/background `region`, or example-level ones every token inherits).
"""

from __future__ import annotations

import pandas as pd

from routeviz.metrics import _common as common


def depth_by_position(store, run: str) -> pd.DataFrame:
    """token, mean_layer, min_layer, max_layer, n (examples with that position)."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "exit", allowed=("exit",))
    return common.df(store,
        "SELECT token, avg(choice) AS mean_layer, min(choice) AS min_layer, "
        "max(choice) AS max_layer, count(*) AS n FROM routes WHERE run = $run AND "
        "kind = 'exit' AND token >= 0 GROUP BY token ORDER BY token", {"run": run})


def depth_by_tag(store, run: str) -> pd.DataFrame:
    """name, value, mean_layer, n (tokens): mean exit layer of the tokens of each tag value,
    token-level tags on their token, example-level tags on every token of the example."""
    run = common.require_run(store, run)
    common.require_kind(store, run, "exit", allowed=("exit",))
    return common.df(store,
        "WITH e AS (SELECT example, token, choice FROM routes WHERE run = $run AND "
        "  kind = 'exit' AND token >= 0) "
        "SELECT t.name, t.value, avg(e.choice) AS mean_layer, count(*) AS n FROM e "
        "JOIN tags t ON t.run = $run AND t.example = e.example AND "
        "  (t.token = e.token OR t.token = -1) "
        "GROUP BY t.name, t.value ORDER BY t.name, mean_layer DESC", {"run": run})
