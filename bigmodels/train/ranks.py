"""Who this process is among those training one run.

The training loop (``bigmodels.train.engine``) is written once for 1..N
processes, as nanoGPT's ``train.py`` is: everything that differs between one
process and DistributedDataParallel goes through a ``Ranks``:

* ``shard``: this process's index batches of an epoch's order;
* ``sum`` / ``any``: an all-reduce of a few numbers, and the vote on stopping;
* ``is_main``: only the main process emits events and writes checkpoints.

With one process every collective is the identity, so a single-process run
does exactly the arithmetic it did before DDP existed (bit for bit on the CPU).
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist

STOP_CHECK_EVERY = 5  # steps between the ranks' vote on stopping (a collective, so not every step)


def backend_for(device_type: str) -> str:
    return "nccl" if device_type == "cuda" else "gloo"


class Ranks:
    def __init__(self, device: torch.device, rank: int = 0, world: int = 1):
        self.device, self.rank, self.world = torch.device(device), rank, world

    @classmethod
    def from_process_group(cls, device: torch.device) -> "Ranks":
        """This process in the initialised default process group."""
        return cls(device, dist.get_rank(), dist.get_world_size())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def stop_check_every(self) -> int:
        return STOP_CHECK_EVERY if self.distributed else 1

    def describe(self) -> str:
        if not self.distributed:
            return str(self.device)
        return f"{self.device.type} x{self.world} ({dist.get_backend()})"

    # ---------------------------------------------------------- sharding
    def steps_per_epoch(self, train_size: int, batch_size: int) -> int:
        return math.ceil(train_size / (batch_size * self.world))

    def shard(self, order: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
        """This rank's index batches for one epoch of ``order``.

        Every rank computes the same ``order`` (same generator state), cuts it into
        global batches of ``batch_size * world`` and takes its part of each, so
        one epoch covers every image exactly once across the ranks and every rank
        takes the same number of steps (the last global batch is split as evenly as
        it goes). With one rank the batches are plain slices of ``order``.
        """
        return [chunk.tensor_split(self.world)[self.rank] for chunk in order.split(batch_size * self.world)]

    def test_indices(self, n: int) -> torch.Tensor:
        """The test images this rank scores (every ``world``-th)."""
        return torch.arange(self.rank, n, self.world)

    # ---------------------------------------------------------- collectives
    def sum(self, values: list[float]) -> list[float]:
        """``values`` summed over the ranks."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank if any rank says True (a MAX all-reduce)."""
        if not self.distributed:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())
