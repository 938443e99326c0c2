"""An endless, resumable stream of shuffled mini-batches of row indices.

Each epoch's order comes from ``torch.utils.data.DistributedSampler`` (seeded by ``seed`` and the
epoch number), so a single process and every DDP rank see the same, reproducible permutation
split across ranks. The stream's whole state is ``(epoch, position)``; restoring it continues the
exact batch sequence (resume bit-for-bit).
"""

from __future__ import annotations

import torch
from torch.utils.data import DistributedSampler


class _Sized:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


class BatchStream:
    """Endless shuffled batches of indices into ``n`` rows; the last partial batch is dropped.

    Args:
        n: number of rows in the dataset.
        batch_size: rows per batch (per rank).
        seed: shuffle seed (the same on every rank).
        rank, world_size: this process's share of each epoch (DistributedSampler semantics).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sampler = DistributedSampler(
            _Sized(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
        )
        if self.sampler.num_samples < batch_size:
            raise ValueError(
                f"{n} training rows over {world_size} process(es) give {self.sampler.num_samples} "
                f"per process, fewer than batch_size={batch_size}; lower --batch-size"
            )
        self.batch_size = batch_size
        self.epoch = 0
        self.pos = 0
        self._order: torch.Tensor | None = None

    def _current(self) -> torch.Tensor:
        if self._order is None:
            self.sampler.set_epoch(self.epoch)
            self._order = torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        return self._order

    def next(self) -> torch.Tensor:
        """The next ``(batch_size,)`` int64 index batch."""
        if self.pos + self.batch_size > self.sampler.num_samples:
            self.epoch += 1
            self.pos = 0
            self._order = None
        batch = self._current()[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self.pos = int(state["pos"])
        self._order = None
