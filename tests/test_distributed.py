"""Two CPU ranks (gloo, torchrun) trace into one run of one store."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import routeviz
from tests.distributed_trace import SEQ, SIZES
from tests.toy import ToyMoE, register_toy

pytestmark = pytest.mark.slow  # torchrun with two ranks, in subprocesses

ROOT = Path(__file__).resolve().parent.parent
N_EXAMPLES = sum(sum(s) for s in SIZES.values())
ROWS_PER_EXAMPLE = SEQ * 2 * 2  # tokens x layers x k


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """Stores written by one 2-rank torchrun job (see tests/distributed_trace.py)."""
    root = tmp_path_factory.mktemp("ranks")
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [str(torchrun) if torchrun.exists() else shutil.which("torchrun"), "--standalone",
           "--nproc_per_node", "2", str(ROOT / "tests" / "distributed_trace.py"), str(root)]
    done = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root


def check_run(store_dir, run, times=1):
    store = routeviz.open_store(store_dir)
    routes = store.routes(run)
    examples = store.examples(run)
    assert len(routes) == times * N_EXAMPLES * ROWS_PER_EXAMPLE  # no lost rows
    assert examples.example.is_unique and len(examples) == times * N_EXAMPLES  # no collisions
    assert set(routes.example) == set(examples.example)
    assert (routes.groupby("example").size() == ROWS_PER_EXAMPLE).all()  # none written twice
    tokens = store.tokens(run)
    assert len(tokens) == times * N_EXAMPLES * SEQ
    runs = store.runs()
    row = runs[runs.run == run].iloc[0]
    assert row.n_examples == times * N_EXAMPLES and row.finished is not None
    assert not list(Path(store_dir).rglob(".tmp-*"))
    assert not list(Path(store_dir).rglob(".staging-*"))
    return examples, tokens


def test_two_ranks_write_one_run(traced):
    examples, tokens = check_run(traced / "plain", "dist")
    # each rank's tokens were recorded under that rank's examples, none mixed up
    first = tokens.sort_values("token").groupby("example").text.first().str[:2]
    assert sorted(first.value_counts().items()) == [("r0", 5), ("r1", 6)]
    # default ids interleave by rank: rank r of n numbers its examples r, r + n, r + 2n ...
    assert sorted(examples.example) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
    assert {e % 2 for e in first[first == "r0"].index} == {0}


def test_ranks_append_after_the_largest_id(traced):
    examples, _ = check_run(traced / "appended", "dist", times=2)
    assert sorted(examples.example)[N_EXAMPLES:] == [12 + i for i in range(10)] + [23]


def test_ranks_overwrite_keeps_every_ranks_parts(traced):
    check_run(traced / "overwritten", "dist")


def test_two_ranks_with_caller_ids(traced):
    examples, _ = check_run(traced / "plain", "ids")
    assert set(examples.example) == {0, 1, 10, 11, 12, 1000, 1001, 1002, 1003, 1010, 1011}


def test_launcher_without_process_group_is_refused(store_dir, monkeypatch):
    register_toy()
    model = ToyMoE()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(routeviz.errors.RoutevizError, match="init_process_group"), \
            routeviz.trace(model, store_dir, "alone"):
        pass
    # distributed=False: this process traces alone, into a run of its own
    with routeviz.trace(model, store_dir, "alone", distributed=False) as tracer, tracer.batch():
        model(torch.zeros(1, 3, dtype=torch.long))
    assert len(routeviz.open_store(store_dir).routes("alone")) == 3 * 2 * 2
