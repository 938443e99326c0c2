"""An endless, resumable stream of shuffled mini-batches of row indices, and a seeded
resampling of rows that evens out how often common and rare poses are seen.

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

    def __init__(
        self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
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


def kmeans_labels(
    features: torch.Tensor, clusters: int, *, iterations: int = 20, seed: int = 0
) -> torch.Tensor:
    """Cluster label ``(N,)`` int64 of each row of ``features (N, F)`` by Lloyd's k-means from
    ``clusters`` distinct seeded random rows (deterministic for a seed, device and thread
    count); empty clusters keep their centre."""
    if features.ndim != 2 or features.shape[0] < clusters or clusters < 1:
        raise ValueError(
            f"features must be (N, F) with N >= clusters ({clusters}), got {tuple(features.shape)}"
        )
    gen = torch.Generator().manual_seed(seed)
    x = features.float()
    centres = x[torch.randperm(x.shape[0], generator=gen)[:clusters].to(x.device)]
    labels = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    for _ in range(iterations):
        labels = torch.cat([torch.cdist(chunk, centres).argmin(dim=1) for chunk in x.split(8192)])
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=clusters)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None].to(x.dtype)
    return labels


def rebalanced_rows(labels: torch.Tensor, power: float) -> torch.Tensor:
    """Row indices ``(M,)`` int64 in which every row appears ``round((s_max / s) ** power)``
    times, ``s`` the size of its cluster and ``s_max`` the largest: a row's share of the table is
    then proportional to ``s ** -power`` (up to the rounding). ``power`` 0 is every row once (the
    data's own frequencies), 1 makes every cluster equally frequent, in between is a compromise.
    Every row appears at least once, so nothing is dropped, and the table needs no seed.

    A capture collection repeats its common poses (standing, walking) many times over and its
    rare ones a few times; a model matched to those frequencies spends most of its samples on
    the common poses, and unusual poses of new people find no sample nearby."""
    if labels.ndim != 1 or labels.numel() == 0:
        raise ValueError(f"labels must be a non-empty (N,) tensor, got {tuple(labels.shape)}")
    if not power >= 0:
        raise ValueError(f"power must be >= 0, got {power}")
    size = torch.bincount(labels).double()[labels]
    repeats = torch.round((size.max() / size) ** power).long().clamp_min(1)
    return torch.repeat_interleave(torch.arange(labels.numel(), device=labels.device), repeats)
