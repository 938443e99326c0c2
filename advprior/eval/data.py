"""The poses the protocol needs from a dataset file, read by :func:`advprior.data.load_dataset`
(the one reader of the format in ``docs/design.md``)."""

from __future__ import annotations

from pathlib import Path

import torch

from advprior.data.dataset import PoseData, load_dataset

SPLIT_CODES = {"train": 0, "validation": 1, "val": 1, "test": 2}

#: 0.1.0's name of the frames of one split (``body_pose``, ``global_orient``, ``sequence``, ...).
EvalPoses = PoseData


def load_split(path: str | Path, split: str) -> PoseData:
    """Frames of ``split`` ("train", "validation" or "test") from a dataset ``.npz``.

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` for a file that is not a
    dataset (see :func:`advprior.data.load_dataset`), or a split with no frames.
    """
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of train, validation, test; got {split!r}")
    poses = load_dataset(path, SPLIT_CODES[split])
    if len(poses) == 0:
        # counted, not read from meta's frames_per_split: a file filtered after its build (or
        # written without advprior's meta) carries none or stale ones
        full = load_dataset(path)
        counts = torch.bincount(full.split.long(), minlength=len(full.split_names)).tolist()
        have = ", ".join(f"{name} {n}" for name, n in zip(full.split_names, counts, strict=False))
        raise ValueError(
            f"{path}: split {split!r} has no frames"
            + (f" (the file has {have})" if have else "")
            + "; choose another split, or rebuild the file with a larger share for it "
            "(advprior data build --split TRAIN,VAL,TEST)"
        )
    return poses


def subsample(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``min(n, k)`` distinct indices of ``range(n)``, sorted; all of them when ``k >= n``."""
    if k >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=generator)[:k].sort().values
