"""torch.compile'd models trace like eager ones: hooks registered before compiling run
outside the compiled graphs (a graph break at each routing site), so the routes equal the
eager model's, the outputs are unchanged, and a new batch does not compile the model again.

The `eager` backend runs dynamo's capture and graph breaks without generating code, so the
test needs no C compiler and stays fast; benchmarks/compiled.py measures inductor.
"""

import pytest
import torch

import routeviz
from routeviz.capture.hooks import SiteHooks
from routeviz.capture.sites import find_sites
from tests.toy import ToyMoE, expected_experts, register_toy

pytestmark = pytest.mark.slow  # torch.compile

dynamo = pytest.importorskip("torch._dynamo")


@pytest.fixture(autouse=True)
def _toy():
    register_toy()
    dynamo.reset()
    yield
    dynamo.reset()


def _routes(store, run):
    cols = ["example", "token", "layer", "rank", "choice"]
    return store.routes(run).sort_values(cols)[cols].values.tolist()


def test_compiled_model_records_the_eager_routes_without_recompiling(store_dir):
    torch.manual_seed(0)
    model = ToyMoE(layers=2, k=2)
    batches = [torch.randint(0, 16, (2, 5)) for _ in range(4)]
    with torch.no_grad():
        eager_outputs = [model(ids) for ids in batches]
        with routeviz.trace(model, store_dir, "eager") as tracer:
            for ids in batches:
                with tracer.batch():
                    model(ids)
        kept = SiteHooks(model, find_sites(model))  # hooks first, then compile
        compiled = torch.compile(model, backend="eager")
        try:
            compiled(batches[0])
        except Exception as exc:  # noqa: BLE001 — no dynamo on this platform: say why
            pytest.skip(f"torch.compile does not run here: {type(exc).__name__}: {exc}")
        graphs_after_warmup = dynamo.utils.counters["stats"]["unique_graphs"]
        outputs = []
        with routeviz.trace(model, store_dir, "compiled", hooks=kept) as tracer:
            for ids in batches:
                with tracer.batch():
                    outputs.append(compiled(ids))
        assert dynamo.utils.counters["stats"]["unique_graphs"] == graphs_after_warmup
        compiled(batches[0])  # after the trace: the kept hooks record nothing
    kept.close()
    for got, want in zip(outputs, eager_outputs):
        assert torch.equal(got, want)
    store = routeviz.open_store(store_dir)
    assert _routes(store, "compiled") == _routes(store, "eager")
    routes = store.routes("compiled")
    assert len(routes) == 4 * 2 * 5 * 2 * 2  # batches x examples x tokens x layers x k
    first = routes[(routes.example == 0) & (routes["rank"] == 0)]
    ids = batches[0][0]
    assert all(row.choice == expected_experts(int(ids[row.token]))[0] for row in first.itertuples())
