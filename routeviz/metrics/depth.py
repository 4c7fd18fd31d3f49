"""Depth sparsity: exit-layer histograms per token and per example, and compute saved.

An `exit` route is one row per unit (token, or example with token = -1) whose choice is
the index of the last layer computed; compute saved = 1 - mean((exit + 1) / n_layers).
A run whose config says `halted_tokens: "masked"` (halted tokens still go through every
block, only their state is frozen, as in A-ViT's code) saves nothing: compute saved is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from routeviz.metrics import _common as common


@dataclass
class ExitResult:
    per_token: pd.DataFrame  # layer, count, fraction (empty when exits are per example only)
    per_example: pd.DataFrame  # layer, count, fraction
    n_layers: int
    mean_exit_layer: float  # over tokens when recorded per token, else over examples
    compute_saved: float  # 1 - mean((exit + 1) / n_layers), same units as mean_exit_layer
    unit: str  # "token" or "example": what the means above average over
    halted_tokens: str | None = None  # the run config's "removed" / "masked", if it says


def _histogram(counts: pd.DataFrame, n_layers: int) -> pd.DataFrame:
    layers = pd.DataFrame({"layer": range(max(n_layers, int(counts.layer.max()) + 1
                                              if len(counts) else n_layers))})
    hist = layers.merge(counts, on="layer", how="left").fillna(0)
    hist["count"] = hist["count"].astype("int64")
    total = hist["count"].sum()
    hist["fraction"] = hist["count"] / total if total else 0.0
    return hist


def exits(store, run: str) -> ExitResult:
    run = common.require_run(store, run)
    common.require_kind(store, run, "exit", allowed=("exit",))
    n_layers = common.n_layers_of(store, run)
    p = {"run": run}
    per_token = common.df(store, 
        "SELECT choice AS layer, count(*) AS count FROM routes WHERE run = $run AND "
        "kind = 'exit' AND token >= 0 GROUP BY choice", p)
    has_example_rows = bool(common.scalar(
        store, "SELECT EXISTS (SELECT 1 FROM routes WHERE run = $run AND kind = 'exit' "
               "AND token = -1)", p))
    if has_example_rows:
        per_example = common.df(store, 
            "SELECT choice AS layer, count(*) AS count FROM routes WHERE run = $run AND "
            "kind = 'exit' AND token = -1 GROUP BY choice", p)
    else:  # an example runs as deep as its deepest token
        per_example = common.df(store, 
            "SELECT layer, count(*) AS count FROM (SELECT example, max(choice) AS layer "
            "FROM routes WHERE run = $run AND kind = 'exit' GROUP BY example) GROUP BY layer", p)
    unit = "token" if len(per_token) else "example"
    basis = per_token if unit == "token" else per_example
    total = basis["count"].sum()
    mean_exit = float((basis.layer * basis["count"]).sum() / total) if total else float("nan")
    saved = 1.0 - (mean_exit + 1.0) / n_layers if total and n_layers else float("nan")
    halted = common.config_of(store, run).get("halted_tokens")
    if halted == "masked":  # every block still ran on them
        saved = 0.0
    return ExitResult(per_token=_histogram(per_token, n_layers) if len(per_token)
                      else pd.DataFrame(columns=["layer", "count", "fraction"]),
                      per_example=_histogram(per_example, n_layers), n_layers=n_layers,
                      mean_exit_layer=mean_exit, compute_saved=saved, unit=unit,
                      halted_tokens=halted)
