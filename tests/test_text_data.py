"""sample_models.text_data: the stdlib corpus split and the token_type tags."""

from sample_models import text_data


def test_token_types_follow_python_tokenize():
    text = "def f(x):  # hi\n    return 'a' + 10\n"
    spans = [(0, 3), (3, 5), (5, 6), (6, 7), (9, 11), (11, 15), (15, 20), (20, 26), (26, 30),
             (30, 32), (32, 35), (35, 36)]  # "def", " f", "(", "x", " #", " hi", ...
    types = text_data.token_types(text, spans, is_code=True)
    assert types == ["keyword", "name", "operator", "name", "whitespace", "comment", "whitespace",
                     "keyword", "string", "operator", "number", "whitespace"]
    assert text_data.token_types(text, spans[:2], is_code=False) == ["prose", "prose"]


def test_token_types_survive_a_chunk_cut_inside_a_string():
    text = "x = '''unterminated\nstill string"
    types = text_data.char_types(text)
    assert types[0] == "name" and types[2] == "operator" and types[-1] == "string"


def test_held_out_modules_are_whole_and_disjoint_from_training():
    eval_items = text_data.stdlib_dataset(400)
    assert {i.tags["kind"] for i in eval_items} == {"code", "prose"}
    assert all(text_data.held_out(i.tags["source"]) for i in eval_items)
    assert all(len(i.text) <= text_data.CHUNK_CHARS for i in eval_items)
    assert [i.source for i in text_data.stdlib_dataset(10)] == [i.source for i in eval_items[:10]]


def test_chunks_are_whole_lines_and_cover_the_text():
    text = "".join(f"line {i}\n" for i in range(200))
    chunks = text_data.chunk_text(text, 100)
    assert "".join(chunks) == text and all(len(c) <= 100 and c.endswith("\n") for c in chunks)
