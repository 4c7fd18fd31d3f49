"""`routeviz report --against` (and the Export page's comparison) checks that the two runs
cover the same inputs: refused in one line when they share no example, a one-line note
(on stderr and in the report) when example ids, token counts or token text differ."""

import pytest

from routeviz.cli import main
from routeviz.errors import RoutevizError
from routeviz.metrics.pairing import input_difference
from routeviz.report import build_report_files
from tests.metrics_store import expert_routes, write_run

TEXTS = {0: ["def", "f", "(", ")"], 1: ["the", "cat", "sat"]}


def run_over(path, run, texts):
    routes = expert_routes("g", 0, {(e, t): [t % 2] for e, words in texts.items()
                                    for t in range(len(words))})
    return write_run(path, run, routes, tokens=texts)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "st"
    run_over(path, "a", TEXTS)
    run_over(path, "same", TEXTS)
    run_over(path, "other-text", {0: ["def", "g", "(", ")"], 1: ["the", "cat", "sat"]})
    run_over(path, "longer", {0: TEXTS[0], 1: TEXTS[1] + ["down"], 2: ["x"]})
    return run_over(path, "disjoint", {7: ["a"], 8: ["b"]})


def test_input_difference_says_what_differs(store):
    assert input_difference(store, "a", "same") is None
    assert "1 token(s) have different text" in input_difference(store, "a", "other-text")
    note = input_difference(store, "a", "longer")
    assert "0 example(s) only in 'a', 1 only in 'longer'" in note
    assert "1 of 2 shared example(s) have different token counts" in note
    assert input_difference(store, "a", "disjoint") == "'a' and 'disjoint' share no example ids"
    with pytest.raises(RoutevizError, match="share no example ids"):
        input_difference(store, "a", "disjoint", refuse_disjoint=True)


@pytest.mark.slow  # two reports
def test_report_against_other_inputs_warns_in_one_line(store, tmp_path, capsys):
    assert main(["report", "--store", str(tmp_path / "st"), "--run", "a", "--against",
                 "other-text", "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("note: 'a' and 'other-text' are not over the same inputs: "
                    "1 token(s) have different text")]
    html = (tmp_path / "out" / "report.html").read_text()
    assert "are not over the same inputs" in html


def test_report_against_same_inputs_says_nothing(store, tmp_path):
    files = build_report_files(store, "a", against="same", images=False)
    assert b"not over the same inputs" not in files["report.html"]


def test_report_against_disjoint_runs_is_refused(store, tmp_path, capsys):
    assert main(["report", "--store", str(tmp_path / "st"), "--run", "a", "--against",
                 "disjoint", "--out", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "share no example ids" in err[0] and "Traceback" not in err[0]
    with pytest.raises(RoutevizError, match="share no example ids"):
        build_report_files(store, "a", against="disjoint", images=False)
