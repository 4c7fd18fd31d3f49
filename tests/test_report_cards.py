"""The report's expert-card section: labels of every site in report.html and report.md,
experts.csv with the label columns; user text escaped."""

import html
import io

import pandas as pd
import pytest

from routeviz import open_store
from routeviz.report import build_report_files
from tests import cards_store
from tests.cards_store import SITE_A, SITE_B, VALUES
from tests.report_store import HOSTILE_TAG, dae_syn_run

cards_store = cards_store.cards_store  # fixture


@pytest.fixture(scope="module")
def copy_tag_files(cards_store):
    return build_report_files(open_store(cards_store), "copy-tag", images=False)


def section(page: str) -> str:
    start = page.index('<section id="expert-cards">')
    return page[start:page.index("</section>", start)]


def test_html_and_markdown_name_every_sites_labels(copy_tag_files):
    page = section(copy_tag_files["report.html"].decode())
    markdown = copy_tag_files["report.md"].decode()
    assert "## Expert cards" in markdown
    for site in (SITE_A, SITE_B):
        assert f"<h3>{site}</h3>" in page and f"### {site}" in markdown
    for value in VALUES:
        assert page.count(f"token_type={value} · ") == 2  # one expert per site
        assert markdown.count(f"token\\_type={value} · ") == 2
    assert "Bonferroni" in page and "left out: source" in markdown


def test_experts_csv_carries_the_label_columns(copy_tag_files):
    frame = pd.read_csv(io.BytesIO(copy_tag_files["experts.csv"]), keep_default_na=False)
    assert {"label", "strength", "chance_lo", "chance_hi", "p_value", "beyond_chance"} <= set(
        frame.columns)
    tags = frame[(frame.profile == "tag") & (frame.site == SITE_A)]
    for expert, value in enumerate(VALUES):
        mine = tags[tags.expert == expert]
        assert set(mine.label) == {mine.label.iloc[0]}
        assert mine.label.iloc[0].startswith(f"token_type={value} · ")
        beyond = mine[mine.beyond_chance.astype(str) == "True"]
        assert list(zip(beyond.name, beyond.value)) == [("token_type", value)]
    tokens = frame[frame.profile == "token"]
    assert len(tokens) and tokens.label.str.contains("× chance").all()


def test_random_run_cards_say_no_tag(cards_store):
    files = build_report_files(open_store(cards_store), "random", images=False)
    frame = pd.read_csv(io.BytesIO(files["experts.csv"]))
    assert set(frame.label) == {"no tag beyond chance"}
    page = section(files["report.html"].decode())
    assert page.count('<td class="label">no tag beyond chance</td>') == 8


def test_user_text_is_escaped_in_the_section(tmp_path):
    """A tag value that is markup, labelling experts of a DAE-Syn-like run, stays text."""
    dae_syn_run(tmp_path / "store", n_examples=64)
    files = build_report_files(open_store(tmp_path / "store"), "dae", images=False)
    page = section(files["report.html"].decode())
    assert HOSTILE_TAG not in page
    assert page.count("shape=" + html.escape(HOSTILE_TAG) + " · 4.0× chance") == 2  # 2 experts
    markdown = files["report.md"].decode()
    cards_md = markdown[markdown.index("## Expert cards"):]
    assert "<img" not in cards_md and "shape=&lt;img src=x onerror=" in cards_md
