"""Run by tests/test_distributed.py under `torchrun --nproc_per_node 2`: each rank traces
its own batches (different sizes per rank) into shared runs of stores under ROOT.

usage: distributed_trace.py ROOT
  ROOT/plain       run "dist" (default ids) and run "ids" (caller-chosen ids)
  ROOT/appended    run "dist" traced twice, the second time with append=True
  ROOT/overwritten run "dist" traced twice, the second time with overwrite=True
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

import routeviz
from tests.toy import ToyMoE, register_toy

# batch sizes per rank: ranks see different amounts of data
SIZES = {0: [2, 3], 1: [4, 2]}
SEQ = 5


def trace_rank(model, rank, store, run, ids=False, **options):
    with routeviz.trace(model, store, run, **options) as tracer:
        for i, b in enumerate(SIZES[rank]):
            ids_ = torch.randint(0, 16, (b, SEQ))
            tokens = [[f"r{rank}b{i}t{t}" for t in range(SEQ)] for _ in range(b)]
            # caller-chosen ids, e.g. dataset indices from a DistributedSampler
            examples = [1000 * rank + 10 * i + j for j in range(b)] if ids else None
            with tracer.batch(examples=examples, tokens=tokens):
                model(ids_)


def main(root):
    root = Path(root)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    register_toy()
    torch.manual_seed(rank)
    model = ToyMoE(layers=2, k=2)
    trace_rank(model, rank, root / "plain", "dist")
    trace_rank(model, rank, root / "plain", "ids", ids=True)
    trace_rank(model, rank, root / "appended", "dist")
    trace_rank(model, rank, root / "appended", "dist", append=True)
    trace_rank(model, rank, root / "overwritten", "dist")
    trace_rank(model, rank, root / "overwritten", "dist", overwrite=True)
    dist.barrier()  # both ranks tear gloo down together: a rank destroying its group while
    dist.destroy_process_group()  # the other exits can abort ("terminate called ...")


if __name__ == "__main__":
    main(*sys.argv[1:])
