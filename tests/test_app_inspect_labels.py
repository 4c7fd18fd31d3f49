"""Inspect says what each number is (issue 24, "Misread"), on real sample-model runs: route
cards name the gate, keep score and exit score (no bare "(0.45)"), a keep score that is no
score is left out, the output says where the model exited with the one exit label, and a
text's output is shown per token, not only for the last one."""

import html
import re

import pytest
import torch

from routeviz.figures.labels import exit_label
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model
from routeviz.runs.record import record
from tests.app_support import htmls, open_page

TEXT = "def add(x, y):\n    return x + y  # <b>sum</b>"


@pytest.fixture(scope="module")
def text_store(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("labels") / "store"
    record(load_model("text-moe"), [Item(text=TEXT, source="typed text")], path, "code")
    return path


def chip_titles(at) -> list[str]:
    body = next(h for h in htmls(at) if 'class="rv-chips"' in h)
    return [html.unescape(t) for t in re.findall(r'<span class="rv-chip" title="([^"]*)"', body)]


def test_route_cards_name_every_number(text_store):
    at = open_page(text_store, "inspect", run="code")
    cards = "\n".join(chip_titles(at))
    assert re.search(r"0\.mlp\.router: e\d+ \(gate 0\.\d\d\)", cards)
    assert re.search(r"1\.mod: (kept|dropped) \(keep score -?\d+\.\d\d\)", cards)
    assert re.search(r"exit at layer \d \(ran \d blocks?\) \(exit score 0\.\d\d\)", cards)
    assert not re.search(r"\((-?\d+\.\d\d)\)", cards), "a number in brackets says what it is"


def test_output_names_the_exit_with_the_one_label(text_store):
    at = open_page(text_store, "inspect", run="code")
    output = at.code[0].value
    exit_layer = int(re.search(r"exit at layer (\d+)", output).group(1))
    assert exit_label(exit_layer, 4) in output and "(ran " in output and "of 4 blocks" in output


def test_a_keep_score_of_zero_is_no_score_and_is_left_out():
    """EViT keeps CLS by rule and records 0 as its score: "kept (0.00)" read as a score."""
    import pandas as pd

    from routeviz.figures.data import route_cards

    routes = pd.DataFrame({"example": 0, "token": [0, 1, 1], "layer": [1, 1, 2],
                           "site": ["prune.1", "prune.1", "blocks.2.moe"],
                           "kind": ["keep", "keep", "merge"], "choice": [1, 1, 0],
                           "rank": 0, "weight": [0.0, 0.31, 0.9]})
    cls, patch = route_cards(routes, ["[CLS]", "p1"])
    assert cls.endswith("prune.1: kept")
    assert "prune.1: kept (keep score 0.31)" in patch
    assert "merged into #0 (similarity 0.90)" in patch


def test_a_text_output_is_shown_per_token(text_store):
    """The output was one line, the prediction after the last token only."""
    import routeviz
    from routeviz.figures.data import show_token

    at = open_page(text_store, "inspect", run="code")
    at.toggle(key="inspect_decode").set_value(True).run()
    tokens = routeviz.open_store(text_store).example_tokens("code", 0)
    table = next(d.value for d in at.dataframe if "next_token" in d.value.columns)
    assert list(table.token) == list(range(len(tokens)))
    assert list(table.text) == [show_token(t) for t in tokens]
    assert not table.next_token.str.startswith("#").any()  # decoded by text-moe's tokenizer
    assert table.probability.between(0, 1).all() and table.probability.gt(0).all()
    last = re.search(r"next token: (.*) \(exit at", at.code[0].value).group(1)
    assert show_token(eval(last)) == table.next_token.iloc[-1]  # the line is the last row
