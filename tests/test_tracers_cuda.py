"""On a CUDA device: every family's traced rows equal its CPU trace, and no adapter forces a
device sync (run where the `device` tool lends a GPU; skipped elsewhere)."""

import pytest
import torch

import routeviz
from tests.families import FAMILIES
from tests.test_tracers import MASK, _ids

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _rows_on(device, family, store_dir):
    model = family.build().to(device)
    with (routeviz.trace(model, store_dir, f"{family.name}-{device}") as tracer,
          tracer.batch(examples=[0, 1]), torch.no_grad()):
        model(input_ids=_ids().to(device), attention_mask=MASK.to(device))
    routes = routeviz.open_store(store_dir).routes(f"{family.name}-{device}")
    return routes.sort_values(["site", "kind", "example", "token", "rank"]).reset_index(drop=True)


@CUDA
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_cuda_trace_rows_equal_cpu_trace(family, store_dir):
    cpu, cuda = _rows_on("cpu", family, store_dir), _rows_on("cuda", family, store_dir)
    columns = ["site", "kind", "example", "token", "layer", "rank", "choice"]
    assert cuda[columns].astype(str).values.tolist() == cpu[columns].astype(str).values.tolist()
    assert cuda.weight.to_numpy() == pytest.approx(cpu.weight.to_numpy(), abs=1e-4)


@CUDA
@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_adapters_never_wait_for_the_gpu(family):
    """Each adapter runs on the router's real CUDA output with sync debugging set to error."""
    from routeviz.capture.sites import find_sites

    model = family.build().to("cuda")
    calls, handles = [], []
    for site in find_sites(model):
        def keep(module, first, second, site=site):
            calls.append((site.adapter, module, first, second))
        if site.hook == "pre":
            handles.append(site.module.register_forward_pre_hook(keep, with_kwargs=True))
        else:
            handles.append(site.module.register_forward_hook(keep))
    with torch.no_grad():
        model(input_ids=_ids().cuda(), attention_mask=MASK.cuda())
    for handle in handles:
        handle.remove()
    assert calls
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for adapter, module, inputs, output in calls:
            assert adapter(module, inputs, output) is not None
    finally:
        torch.cuda.set_sync_debug_mode("default")
