"""Ranks of a `torchrun` job tracing into one run of one store.

Rank 0 opens the run (existence check, overwrite staging, the runs row) and tells the other
ranks what it decided; every rank writes its own part files (uuid names, so no collisions)
into the same partition; at the end the ranks add up their example counts, rank 0 writes
the finished runs row and swaps in a staged overwrite, and nobody leaves the `with` block
before the run is complete on disk.

A single process is a group of one (`SINGLE`): sharing returns the value, totals are the
process's own counts, the barrier returns at once. The tracer runs one code path for both.

Messages travel as JSON bytes in uint8 tensors (no pickle), over the default process group.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import torch

from routeviz.errors import RoutevizError


@dataclass(frozen=True)
class SingleProcess:
    """A world of one: every collective is the identity."""

    rank: int = 0
    size: int = 1
    leader: bool = True

    def share(self, value):
        return value

    def total(self, *values: int) -> list[int]:
        return [int(v) for v in values]

    def barrier(self) -> None:
        return None


SINGLE = SingleProcess()


@dataclass(frozen=True)
class Ranks:
    """The ranks of the default torch.distributed process group."""

    rank: int
    size: int

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def _device(self):
        import torch.distributed as dist

        backend = dist.get_backend()
        if backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def share(self, value):
        """Rank 0's JSON-able `value` on every rank (other ranks pass anything)."""
        import torch.distributed as dist

        device = self._device()
        data = json.dumps(value).encode() if self.leader else b""
        length = torch.tensor([len(data)], dtype=torch.int64, device=device)
        dist.broadcast(length, src=0)
        buf = torch.zeros(int(length.item()), dtype=torch.uint8, device=device)
        if self.leader:
            buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(buf, src=0)
        return json.loads(bytes(buf.cpu().tolist()).decode())

    def total(self, *values: int) -> list[int]:
        """Element-wise sums of `values` over all ranks."""
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.int64, device=self._device())
        dist.all_reduce(t)
        return [int(v) for v in t.cpu().tolist()]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


def detect_ranks(distributed=None) -> Ranks | SingleProcess:
    """The tracing job's ranks, or `SINGLE` for a single process.

    distributed: None (default) uses the default torch.distributed process group when one
    is initialised with more than one rank; False ignores it (each process traces alone,
    into runs of its own); True requires one.
    """
    if distributed is False:
        return SINGLE
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return Ranks(dist.get_rank(), dist.get_world_size())
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if distributed or world > 1:
        raise RoutevizError(
            f"routeviz.trace under a launcher with WORLD_SIZE={world} needs "
            "torch.distributed.init_process_group() first (backend 'gloo' on CPU) so the "
            "ranks share one run; or pass distributed=False and give each process its own run"
        )
    return SINGLE


def rank_example_ids(base: int, ranks, first: int, count: int) -> list[int]:
    """Default example ids: `count` ids from this rank's `first` local index on.

    Rank r of n gets base + r, base + r + n, base + r + 2n, ...: unique across ranks with
    no communication, whatever batch sizes each rank sees (a single process: base + i).
    """
    return [base + ranks.rank + ranks.size * i for i in range(first, first + count)]


def local_index_after(base: int, ranks, example: int) -> int:
    """The first local index whose default id (see rank_example_ids) exceeds `example`."""
    return max(0, (example - base - ranks.rank) // ranks.size + 1)
