"""The machine-readable part of a report: metrics.json and the CSV files.

Every CSV is written even when the run has nothing for it (then it has only its header),
so a script can read the same file names from every report.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

import routeviz
from routeviz.report.collect import Report

COLUMNS = {
    "focus_cover.csv": ["site", "tag", "unit", "kind", "focus", "cover", "n_subnetworks",
                        "n_tags"],
    "alignment.csv": ["kind", "site", "choice", "subnetwork", "label", "name", "value", "tag",
                      "f1", "n_both", "n_tag", "n_active"],
    "load.csv": ["site", "layer", "expert", "count", "share", "token_fraction", "starved"],
    "experts.csv": ["site", "expert", "profile", "name", "value", "count", "n_expert", "lift",
                    "precision", "p_expert", "score"],
    "exits.csv": ["unit", "layer", "count", "fraction"],
    "keep.csv": ["site", "layer", "n_seen", "n_kept", "kept_fraction"],
}


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _finite(value):
    """NaN and inf -> None, recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def metrics_json(report: Report) -> bytes:
    """The `routeviz metrics --json` object, plus the routeviz version and the run's config."""
    out = dict(report.summary)
    out["routeviz_version"] = routeviz.__version__
    out.setdefault("config", report.config)
    if report.comparison is not None:
        out["comparison"] = report.comparison.diff
    plain = json.loads(json.dumps(out, default=json_default))  # numpy -> Python; NaN stays
    return json.dumps(_finite(plain), indent=2).encode()


def csv_files(report: Report) -> dict[str, bytes]:
    frames = {
        "focus_cover.csv": _concat([r.scores for r in report.focus.values()]),
        "alignment.csv": _concat([r.alignment.assign(kind=k) for k, r in report.focus.items()]),
        "load.csv": report.load.experts if report.load is not None else None,
        "experts.csv": profiles_frame(report.profiles),
        "exits.csv": exits_frame(report.exits),
        "keep.csv": report.keep.sites if report.keep is not None else None,
    }
    return {name: _csv(frames[name], columns) for name, columns in COLUMNS.items()}


def _concat(frames: list) -> pd.DataFrame | None:
    frames = [f for f in frames if f is not None and len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _csv(df: pd.DataFrame | None, columns: list[str]) -> bytes:
    if df is None:
        df = pd.DataFrame(columns=columns)
    df = df.reindex(columns=columns)
    return df.to_csv(index=False, float_format="%.6g").encode()


def profiles_frame(profiles) -> pd.DataFrame | None:
    """Tag and token profiles of every expert as one long frame (profile = tag | token)."""
    if profiles is None:
        return None
    tags = profiles.tags.assign(profile="tag")
    tokens = profiles.tokens.rename(columns={"text": "value"}).assign(profile="token", name="",
                                                                      precision=np.nan)
    return _concat([tags, tokens])


def exits_frame(exits) -> pd.DataFrame | None:
    if exits is None:
        return None
    parts = [h.assign(unit=unit) for unit, h in (("token", exits.per_token),
                                                 ("example", exits.per_example)) if len(h)]
    return _concat(parts)
