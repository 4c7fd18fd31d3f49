"""sample_models.text_data: the stdlib corpus split (its token tags: test_text_tags.py)."""

from sample_models import text_data


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
