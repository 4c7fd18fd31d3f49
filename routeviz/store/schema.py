"""The record model: one schema for expert, keep, exit and merge decisions.

Adapters turn a routing module's output into `RouteEvent`s; the tracer turns events into
rows of the `routes` table. Every table below is stored as Parquet, hive-partitioned by run
(the `run` column lives in the directory name, not in the files).

Dimension legend used in comments: b - batch, s - sequence positions, t - b*s flattened,
k - choices per token (top-k), e - experts.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Optional

import pyarrow as pa

# soft routing (Soft MoE): `soft` one row per (token, site, expert), weight = the token's
# combine mass on that expert (sums to 1 per token and site), rank by that mass; `dispatch`
# one row per (token, site, slot), weight = the slot's dispatch weight on the token (sums to
# 1 per slot over an example's tokens), rank by that weight among the token's slots.
KINDS = ("expert", "keep", "exit", "merge", "soft", "dispatch")

# The sentinel an adapter (or the tracer) writes into `choice` for an entry that must not
# be recorded: a dropped slot, a padding position. Chosen so it survives an int32 cast.
SKIP = -(2**31)


class RouteEvent(NamedTuple):
    """What one routing module decided during one forward pass.

    choice:  int tensor [t, k] or [b, s, k] (per_example: [b, k]) — expert id, 1/0 kept,
             exit layer, or merged-into position, as `kind` says.
    weight:  float tensor of the same shape (gate weight, keep score, confidence,
             similarity), or None (recorded as NaN).
    valid:   bool tensor of the same shape, False where nothing was decided (e.g. a Switch
             token dropped for capacity), or None for all valid.
    per_example: one decision per example (token = -1), e.g. an image-level exit.
    token_index: int tensor [b, s] mapping each row to its original token position when the
             module sees a subset of the tokens (after pruning); None means row i is token i.
    layer:   depth index of the deciding block; None lets the tracer read it from the name.
    site:    suffix added to the module name when a module records several sites.
    logits:  float tensor [t, e] of router logits, recorded only when the trace asks for it.
    """

    kind: str
    choice: object
    weight: Optional[object] = None
    valid: Optional[object] = None
    per_example: bool = False
    token_index: Optional[object] = None
    layer: Optional[int] = None
    site: Optional[str] = None
    logits: Optional[object] = None


ROUTES = pa.schema(
    [
        ("example", pa.int64()),
        ("token", pa.int32()),
        ("layer", pa.int16()),
        ("site", pa.dictionary(pa.int32(), pa.string())),
        ("kind", pa.dictionary(pa.int8(), pa.string())),
        ("choice", pa.int32()),
        ("rank", pa.int8()),
        ("weight", pa.float32()),
    ]
)

RUNS = pa.schema(
    [
        ("model", pa.string()),
        ("created", pa.timestamp("us", tz="UTC")),
        ("finished", pa.timestamp("us", tz="UTC")),
        ("routeviz_version", pa.string()),
        ("n_examples", pa.int64()),
        ("config", pa.string()),
    ]
)

EXAMPLES = pa.schema(
    [
        ("example", pa.int64()),
        ("modality", pa.string()),
        ("source", pa.string()),
        ("label", pa.string()),
        ("prediction", pa.string()),
        ("n_tokens", pa.int32()),
        ("image", pa.binary()),
        ("grid_h", pa.int32()),
        ("grid_w", pa.int32()),
        ("patch", pa.int32()),
        ("text", pa.string()),  # a text input's full text (NULL for images, older stores)
    ]
)

TOKENS = pa.schema([
    ("example", pa.int64()),
    ("token", pa.int32()),
    ("text", pa.string()),
    # the token's character span in examples.text (routeviz.contexts); NULL where it is not
    # in the text (a special token), for images, and in older stores
    ("char_start", pa.int32()),
    ("char_end", pa.int32()),
])

TAGS = pa.schema(
    [
        ("example", pa.int64()),
        ("token", pa.int32()),
        ("name", pa.string()),
        ("value", pa.string()),
    ]
)

LOGITS = pa.schema(
    [
        ("example", pa.int64()),
        ("token", pa.int32()),
        ("layer", pa.int16()),
        ("site", pa.string()),
        ("values", pa.list_(pa.float16())),
    ]
)

EMBEDDINGS = pa.schema(
    [
        ("example", pa.int64()),
        ("token", pa.int32()),
        ("layer", pa.int16()),
        ("site", pa.string()),  # the routing site whose input this is (NULL in older stores)
        ("vector", pa.list_(pa.float16())),
    ]
)

# The model's output where routeviz recorded it (routeviz.outputs): per token the next-token
# log-probabilities, or per example (token -1) the class log-probabilities; float16.
OUTPUTS = pa.schema(
    [
        ("example", pa.int64()),
        ("token", pa.int32()),
        ("logprobs", pa.list_(pa.float16())),
    ]
)

TABLES = {
    "runs": RUNS,
    "examples": EXAMPLES,
    "tokens": TOKENS,
    "tags": TAGS,
    "routes": ROUTES,
    "logits": LOGITS,
    "embeddings": EMBEDDINGS,
    "outputs": OUTPUTS,
}

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_run_name(run: str) -> str:
    """Return `run` if it is a safe run name, else raise: run names become directory names."""
    from routeviz.errors import RoutevizError

    if not isinstance(run, str) or not _RUN_NAME.fullmatch(run) or ".." in run:
        raise RoutevizError(
            f"invalid run name {run!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return run
