"""routeviz/analysis/find.py: example ids, tag values and token search on a hand-written run."""

import pyarrow as pa
import pytest

from routeviz.analysis.find import example_range, find_tokens, parse_tag, tag_values, token_tags
from routeviz.errors import RoutevizError
from routeviz.store import open_store, schema, write_part
from tests.metrics_store import expert_routes, write_run

TOKENS = {3: ["def", "Add", "(", "x", ")"], 5: ["add", "=", "x", "+", "y"], 8: ["ADD", "x"]}
TAGS = [(3, -1, "lang", "py"), (5, -1, "lang", "py"), (8, -1, "lang", "sql"),
        (3, 1, "pos", "name"), (5, 0, "pos", "name"), (5, 2, "pos", "name"), (5, 1, "pos", "op")]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("find") / "store"
    routes = expert_routes("g", 0, {(e, t): [t % 2] for e, texts in TOKENS.items()
                                    for t in range(len(texts))})
    write_run(path, "r", routes, tags=TAGS, tokens=TOKENS)
    cols = {f.name: [None] * 3 for f in schema.EXAMPLES}
    cols["example"], cols["source"] = [3, 5, 8], ["a.py", None, "q.sql"]
    write_part(path, "examples", "r", pa.table(cols, schema=schema.EXAMPLES))
    write_run(path, "bare", expert_routes("g", 0, {(0, 0): [1]}))  # no examples, tokens, tags
    return open_store(path)


def test_example_range(store):
    assert example_range(store, "r") == {"n": 3, "first": 3, "last": 8}
    assert example_range(store, "bare") == {"n": 0, "first": None, "last": None}
    with pytest.raises(RoutevizError, match="unknown run 'nope'; available: bare, r"):
        example_range(store, "nope")


def test_tag_values_most_common_first_within_a_name(store):
    assert tag_values(store, "r").to_dict("list") == {
        "name": ["lang", "lang", "pos", "pos"], "value": ["py", "sql", "name", "op"],
        "n": [2, 1, 3, 1]}
    assert len(tag_values(store, "r", limit=1)) == 1
    assert tag_values(store, "bare").empty


@pytest.mark.parametrize("tag, expected", [("lang=py", ("lang", "py")), ("a=b=c", ("a", "b=c")),
                                           ("name=", ("name", "")), ("=v", ("", "v")),
                                           ("", None), (None, None), ("lang", None)])
def test_parse_tag(tag, expected):
    assert parse_tag(tag) == expected


def test_find_tokens_by_text_case_insensitive_or_exact(store):
    found, total = find_tokens(store, "r", "add")
    assert list(zip(found.example, found.token, found.text)) == [
        (3, 1, "Add"), (5, 0, "add"), (8, 0, "ADD")]
    assert found.source.tolist() == ["a.py", "", "q.sql"] and total == 3
    found, total = find_tokens(store, "r", "add", exact=True)
    assert list(zip(found.example, found.token)) == [(5, 0)] and total == 1
    found, total = find_tokens(store, "r", "%")  # no LIKE wildcards: nothing contains '%'
    assert found.empty and total == 0


def test_find_tokens_limit_keeps_the_total(store):
    found, total = find_tokens(store, "r", "x", limit=2)
    assert list(zip(found.example, found.token)) == [(3, 3), (5, 2)] and total == 3
    everything, total = find_tokens(store, "r")  # no text, no tag: every token
    assert len(everything) == total == 12


def test_find_tokens_by_token_tag_or_example_tag(store):
    found, total = find_tokens(store, "r", "x", tag="pos=name")  # on the token itself
    assert list(zip(found.example, found.token)) == [(5, 2)] and total == 1
    found, total = find_tokens(store, "r", "x", tag="lang=sql")  # on the token's example
    assert list(zip(found.example, found.token)) == [(8, 1)] and total == 1
    assert find_tokens(store, "r", tag="lang=go")[1] == 0
    # a filter without '=' is no filter
    assert find_tokens(store, "r", "x", tag="lang")[1] == 3


def test_token_tags_of_one_example(store):
    assert token_tags(store, "r", 5).to_dict("list") == {
        "token": [-1, 0, 1, 2], "name": ["lang", "pos", "pos", "pos"],
        "value": ["py", "name", "op", "name"]}
    assert token_tags(store, "r", 99).empty
