"""Gallery contexts are slices of the example's original text, not pieces joined by spaces."""

import unicodedata

import pyarrow.parquet as pq
import pytest
import torch

import routeviz
from routeviz import metrics
from routeviz.analysis.contexts import context
from routeviz.capture.offsets import token_offsets
from routeviz.report.gallery import build_gallery
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model
from routeviz.runs.record import record

TEXTS = ["def add(x, y):\n    return x + y  # the sum",
         "The model routes each token; experts   specialise.\n\nimport os",
         "Ünïcode naïve café — “quotes” and tabs\there"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def check_contexts(store, run, originals):
    profile = metrics.expert_profiles(store, run, contexts=50, window=3)
    examples = profile.examples[profile.examples.token >= 0]
    assert len(examples) > 10
    for rec in examples.itertuples():
        assert in_text(rec, originals[int(rec.example)]), (rec.left, rec.text, rec.right)
    sites = set(examples.site)
    gallery = build_gallery(store, run, profile.examples, sites, limit=200)
    items = [i for group in gallery.items.values() for i in group if i.token >= 0]
    assert items and all(in_text(i, originals[i.example]) for i in items)
    assert sum(i.text not in SPECIAL for i in items) > 10
    return examples


SPECIAL = {"[CLS]", "[SEP]", "<s>", "</s>"}


def plain(text):
    """Lowercase without accents (MiniLM's tokenizer strips them)."""
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower())
                   if not unicodedata.combining(c))


def in_text(item, original):
    """left + token + right is a slice of the original; a special token (no text) stands
    between two slices."""
    if item.text in SPECIAL:
        return item.left in original and item.right in original
    return bool(item.text) and item.left + item.text + item.right in original


@pytest.mark.parametrize("model", ["text-moe", "mixtral", "minilm-moe"])
def test_contexts_are_substrings_of_the_original_text(model, mixtral_dir, store_dir):
    runner = load_model(str(mixtral_dir) if model == "mixtral" else model)
    texts = TEXTS if model != "mixtral" else [
        "the model of the expert token route", "def x ( y ) : return the token",
        "a gate and the layer of the model"]
    record(runner, [Item(text=t, source="f.txt") for t in texts], store_dir, "g")
    store = routeviz.open_store(store_dir)
    examples = check_contexts(store, "g", dict(enumerate(texts)))
    if model == "text-moe":  # spaces and newlines come from the text, not from joining
        joined = examples.left + examples.text + examples.right
        assert joined.str.contains("\n").any() or joined.str.contains("(x, y)").any()
    tokens = store.query_df("SELECT * FROM tokens WHERE run = 'g' ORDER BY example, token")
    spans = tokens.dropna(subset=["char_start"])
    assert len(spans) >= 0.8 * len(tokens)  # specials ([CLS], [SEP]) have no span
    for rec in spans.itertuples():
        piece = texts[int(rec.example)][int(rec.char_start):int(rec.char_end)]
        assert plain(piece.strip()) in plain(rec.text.replace("##", ""))


def test_a_store_without_spans_gets_them_when_read(store_dir):
    runner = load_model("text-moe")
    record(runner, [Item(text=t, source="f.txt") for t in TEXTS], store_dir, "old")
    paths = routeviz.open_store(store_dir).files("tokens", "old")
    assert paths
    for path in paths:  # as an older writer left them
        table = pq.read_table(path)
        pq.write_table(table.drop_columns(["char_start", "char_end"]), path)
    store = routeviz.open_store(store_dir)
    assert "char_start" in store.missing.get("tokens", [])
    check_contexts(store, "old", dict(enumerate(TEXTS)))


def test_offsets_of_marked_pieces():
    text = "Hello world,\tunbelievable"
    spans = token_offsets(text, ["[CLS]", "hello", "Ġworld", ",", "▁un", "##believ", "##able",
                                 "[SEP]"])
    assert spans == [None, (0, 5), (5, 11), (11, 12), (13, 15), (15, 21), (21, 25), None]
    left, token, right = context(text, spans, 2, window=1)
    assert (left, token, right) == ("Hello ", "world", ",")  # the space goes left
