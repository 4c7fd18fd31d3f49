"""The What-if panel says one thing one way (issue 24, "Misread"), on a real text-moe run:
the token and site counts are those of the sites it names, the exit site is named, "changed"
means the first choice changed (top-k 1 alone leaves a token whose top-1 stayed unchanged),
the tokens whose next-token prediction changed are listed, the what-if run is named after
its intervention, and the input's own run is reused as the plain run."""

import re

import pytest
import torch

import routeviz
from routeviz.runs.inputs import Item
from routeviz.runs.models import load_model
from routeviz.runs.record import record
from tests.app_support import open_panel

TEXT = "def add(x, y):\n    return x + y  # add two numbers"
SITE = "blocks.0.mlp.router"
KEY = "whatif-code-0"


@pytest.fixture(scope="module")
def text_store(tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("whatif-labels") / "store"
    record(load_model("text-moe"), [Item(text=TEXT, source="typed text")], path, "code")
    return path


def rerun(store, top_k=0, ablate=None):
    at = open_panel(store, "whatif", "render_whatif", "code", 180)
    if ablate is not None:
        at.multiselect(key=f"{KEY}-ablate-sites").set_value([SITE]).run()
        at.multiselect(key=f"{KEY}-ablate-experts").set_value([ablate]).run()
    if top_k:
        at.number_input(key=f"{KEY}-top-k").set_value(top_k).run()
    at.button(key=f"{KEY}-go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def routing_frame(at):
    return next(d.value for d in at.dataframe if "changed" in d.value.columns)


def summary(at) -> str:
    return next(c.value for c in at.caption if "changed a decision" in c.value)


def test_counts_name_their_sites_and_the_exit_site(text_store):
    store = routeviz.open_store(text_store)
    routes = store.example_routes("code", 0)
    used = int(routes[(routes.site == SITE) & (routes["rank"] == 0)].choice.value_counts().idxmax())
    at = rerun(text_store, ablate=used)
    frame = routing_frame(at)
    text = summary(at)
    n_tokens, n_sites, listed, n_down, down = re.search(
        r"(\d+) token\(s\) changed a decision .* at (\d+) site\(s\): (.*?); of these (\d+) "
        r"downstream of the edit \(not edited themselves\): (.*?)\.( `exit|$)", text).groups()[:5]
    sites, downstream = re.findall(r"`([^`]+)`", listed), re.findall(r"`([^`]+)`", down)
    assert int(n_sites) == len(sites) == frame.site.nunique() > 1
    assert int(n_tokens) == frame.token.nunique()
    assert int(n_down) == len(downstream) and set(downstream) == set(sites) - {SITE}
    assert "*" not in sites  # the exit site has a name
    if "exit (any layer)" in sites:
        assert "`exit (any layer)` is the exit decision" in text


def test_top_k_one_changes_only_tokens_whose_first_choice_changed(text_store):
    at = rerun(text_store, top_k=1)
    every = at.toggle(key=next(t.key for t in at.toggle)).set_value(True).run()
    frame = routing_frame(every)
    experts = frame[frame.kind == "expert"]
    first = experts.plain.str.split(", ").str[0] == experts.whatif.str.split(", ").str[0]
    assert first.any()  # most tokens keep their top-1 when the second expert goes
    assert not experts[first & (experts.plain != "") & (experts.whatif != "")].changed.any()
    assert experts[first].others_changed.any()
    assert any("changed only the experts after it" in c.value for c in every.caption)


def test_changed_predictions_are_listed_with_both_next_tokens(text_store):
    at = rerun(text_store, top_k=1)
    delta = next(m for m in at.metric if "KL" in m.label)
    n = int(re.match(r"(\d+) of", delta.delta).group(1))
    if n == 0:
        pytest.skip("top-k 1 changed no prediction on this text")
    table = next(d.value for d in at.dataframe if "plain_next" in d.value.columns)
    assert len(table) == n
    assert (table.plain_next != table.whatif_next).all()
    tokens = routeviz.open_store(text_store).example_tokens("code", 0)
    assert [tokens[t] for t in table.token] == list(table.text)
    assert not table.plain_next.str.startswith("#").any()  # decoded, not ids


def test_whatif_run_named_after_its_intervention_and_plain_run_reused(text_store):
    at = rerun(text_store, top_k=1, ablate=2)
    plain, edited = at.session_state[KEY]
    assert plain == "code"  # the recorded run is the plain run: no duplicate
    assert re.fullmatch(r"whatif-ablate-e2-top1-[0-9a-f]{4}", edited)
    names = routeviz.open_store(text_store).run_names()
    assert not [n for n in names if n.endswith("-plain")]


def test_runs_page_has_an_intervention_column(text_store):
    from tests.app_support import open_page

    at = rerun(text_store, ablate=3)
    _, edited = at.session_state[KEY]
    runs = open_page(text_store, "runs")
    table = next(d.value for d in runs.dataframe if "intervention" in d.value.columns)
    said = dict(zip(table.run, table.intervention))
    assert said["code"] == ""
    assert said[edited] == f"ablate {SITE}:3 · what-if of code #0"
