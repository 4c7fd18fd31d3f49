"""Which tag families describe content, for Focus/Cover's default choice.

Provenance families (where an example came from: `source`, `file`, ids) have about one value
per example; pooled with content families they add many tag values no subnetwork can stand
for and pull Cover towards 0. A family is left out of the default when its name is on
PROVENANCE, or when it is given per example and has nearly one value per example (more than
ID_MIN_VALUES values and at least ID_FRACTION of its examples' count)."""

from __future__ import annotations

import pandas as pd

PROVENANCE = frozenset({"source", "file", "filename", "file_name", "path", "url", "uri", "id",
                        "uid", "uuid", "doc_id", "example_id", "index", "idx", "split"})
ID_MIN_VALUES = 8
ID_FRACTION = 0.5


def content_families(stats: pd.DataFrame) -> tuple[list[str], dict[str, str]]:
    """stats: name, n_values, n_examples, per_token (store.tag_family_stats(run)).
    Returns (the content families, {left-out family: why})."""
    kept, left_out = [], {}
    for rec in stats.itertuples(index=False):
        name = str(rec.name)
        if name.lower() in PROVENANCE:
            left_out[name] = "provenance"
        elif (not bool(rec.per_token) and int(rec.n_values) > ID_MIN_VALUES
              and int(rec.n_values) >= ID_FRACTION * int(rec.n_examples)):
            left_out[name] = f"{int(rec.n_values)} values over {int(rec.n_examples)} examples"
        else:
            kept.append(name)
    return kept, left_out
