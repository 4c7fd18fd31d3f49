"""`routeviz diff` on per-example runs (every route at token -1, as dae-syn records them):
each example is named once, with its own id and token -1 (units were keyed example·2^24 +
token, so example e's token -1 read back as example e-1, token 16777215)."""

import json

from routeviz.cli import main
from routeviz.metrics import diff
from tests.metrics_store import expert_routes, write_run

SITE = "routers.0"
# example -> top-1 subnetwork in run a / run b: examples 1, 3 and 4 change
A = {0: 0, 1: 1, 2: 2, 3: 3, 4: 5}
B = {0: 0, 1: 6, 2: 2, 3: 7, 4: 1}


def per_example_store(path):
    """Two per-example runs "a" and "b" over the same five examples, plus an example-level
    exit (site "*") that changes only for example 0."""
    for run, top1, exit_layer in (("a", A, {0: 1}), ("b", B, {0: 3})):
        routes = expert_routes(SITE, 0, {(e, -1): [c] for e, c in top1.items()})
        routes += [(e, -1, 3, "exit_head", "exit", exit_layer.get(e, 2), 0, 0.9) for e in top1]
        store = write_run(path, run, routes)
    return store


def test_changed_units_keep_their_example_ids_and_token_minus_one(tmp_path):
    store = per_example_store(tmp_path / "st")
    out = diff(store, "a", "b")
    changed = [(c["example"], c["token"]) for c in out["changed_tokens"]]
    assert sorted(changed) == [(0, -1), (1, -1), (3, -1), (4, -1)]
    assert len(changed) == len({c[0] for c in changed})  # each example once
    assert out["n_common_units"] == 2 * len(A) and out["n_only_run"] == 0


def test_cli_diff_json_names_each_example_once(tmp_path, capsys):
    per_example_store(tmp_path / "st")
    assert main(["diff", "--store", str(tmp_path / "st"), "--run", "a", "--against", "b",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = out["changed_tokens"]
    assert {r["example"] for r in rows} == {0, 1, 3, 4}
    assert {r["token"] for r in rows} == {-1}
    assert all(r["token"] != 16777215 for r in rows)
    by_example = {r["example"]: r for r in rows}
    assert by_example[1]["n_flipped"] == 1 and by_example[0]["n_flipped"] == 1  # 0: the exit
