"""Find things in a run: its example ids, its tag values, a token's occurrences.

Each function takes a store (anything with `engine` and `require_run`, routeviz.query) and
runs one query through its engine.
"""

from __future__ import annotations

import pandas as pd

TAG_SEPARATOR = "="  # a tag filter is written "name=value"


def example_range(store, run: str) -> dict:
    """n (examples rows), first and last example id of `run` (None when it has none)."""
    store.require_run(run)
    row = store.engine.query(
        "SELECT count(*) AS n, min(example) AS first, max(example) AS last FROM examples "
        "WHERE run = $run", {"run": run}).iloc[0]
    n = int(row.n or 0)
    return {"n": n, "first": int(row["first"]) if n else None,
            "last": int(row["last"]) if n else None}


def tag_values(store, run: str, limit: int = 2000) -> pd.DataFrame:
    """name, value, n (tagged tokens or examples) of `run`, most common first per name."""
    store.require_run(run)
    return store.engine.query(
        "SELECT name, value, count(*) AS n FROM tags WHERE run = $run GROUP BY name, value "
        "ORDER BY name, n DESC, value LIMIT $limit", {"run": run, "limit": int(limit)})


def parse_tag(tag: str | None) -> tuple[str, str] | None:
    """"name=value" -> (name, value); None for an empty filter."""
    if not tag or TAG_SEPARATOR not in tag:
        return None
    name, _, value = tag.partition(TAG_SEPARATOR)
    return name, value


def find_tokens(store, run: str, text: str | None = None, exact: bool = False,
                tag: str | None = None, limit: int = 500) -> tuple[pd.DataFrame, int]:
    """Tokens of `run` whose text contains `text` (case-insensitive; `exact`: equals it),
    and that carry tag `tag` ("name=value", on the token or on its example).

    Returns (example, token, text, source: the first `limit` in example and token order;
    the number that match in all).
    """
    store.require_run(run)
    name_value = parse_tag(tag)
    where = ["t.run = $run"]
    params = {"run": run, "limit": int(limit)}
    if text:
        where.append("t.text = $text" if exact else "strpos(lower(t.text), lower($text)) > 0")
        params["text"] = text
    if name_value:
        where.append("EXISTS (SELECT 1 FROM tags g WHERE g.run = $run AND g.example = t.example "
                     "AND (g.token = t.token OR g.token < 0) AND g.name = $tag_name "
                     "AND g.value = $tag_value)")
        params.update(tag_name=name_value[0], tag_value=name_value[1])
    condition = " AND ".join(where)
    found = store.engine.query(
        f"SELECT t.example, t.token, t.text, coalesce(e.source, '') AS source FROM tokens t "
        f"LEFT JOIN examples e ON e.run = t.run AND e.example = t.example WHERE {condition} "
        "ORDER BY t.example, t.token LIMIT $limit", params)
    total = store.engine.query(f"SELECT count(*) AS n FROM tokens t WHERE {condition}", params)
    return found, int(total.n.iloc[0])


def token_tags(store, run: str, example: int) -> pd.DataFrame:
    """token (-1: the whole example), name, value of one example's tags."""
    store.require_run(run)
    return store.engine.query(
        "SELECT token, name, value FROM tags WHERE run = $run AND example = $example "
        "ORDER BY token, name", {"run": run, "example": int(example)})
