"""Reading the poses the protocol needs from a dataset file (format in ``docs/design.md``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SPLIT_CODES = {"train": 0, "validation": 1, "val": 1, "test": 2}


@dataclass
class EvalPoses:
    """Frames of one split: ``body_pose (N, 63)`` and ``global_orient (N, 3)`` axis-angle
    (radians, float32), ``sequence (N,)`` int64 ids."""

    body_pose: torch.Tensor
    global_orient: torch.Tensor
    sequence: torch.Tensor

    def __len__(self) -> int:
        return int(self.body_pose.shape[0])


def load_split(path: str | Path, split: str) -> EvalPoses:
    """Frames of ``split`` ("train", "validation" or "test") from a dataset ``.npz``.

    Raises ``FileNotFoundError`` for a missing file, ``ValueError`` for a file without the
    documented keys or shapes, or a split with no frames.
    """
    path = Path(path)
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of train, validation, test; got {split!r}")
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ("body_pose", "global_orient", "split", "sequence")
                      if k in npz.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable dataset .npz ({err})") from err
    for key in ("body_pose", "split"):
        if key not in arrays:
            raise ValueError(f"{path}: dataset has no {key!r} array (see docs/design.md)")
    pose = arrays["body_pose"]
    if pose.ndim != 2 or pose.shape[1] != 63:
        raise ValueError(f"{path}: body_pose must be (N, 63), got {pose.shape}")
    n = pose.shape[0]
    orient = arrays.get("global_orient", np.zeros((n, 3), np.float32))
    sequence = arrays.get("sequence", np.zeros(n, np.int64))
    if orient.shape != (n, 3) or arrays["split"].shape != (n,) or sequence.shape != (n,):
        raise ValueError(f"{path}: global_orient (N, 3), split (N,) and sequence (N,) must "
                         f"match body_pose's N={n}")
    keep = arrays["split"] == SPLIT_CODES[split]
    if not keep.any():
        raise ValueError(f"{path}: split {split!r} has no frames")
    return EvalPoses(
        body_pose=torch.from_numpy(np.ascontiguousarray(pose[keep], dtype=np.float32)),
        global_orient=torch.from_numpy(np.ascontiguousarray(orient[keep], dtype=np.float32)),
        sequence=torch.from_numpy(sequence[keep].astype(np.int64)),
    )


def subsample(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``min(n, k)`` distinct indices of ``range(n)``, sorted; all of them when ``k >= n``."""
    if k >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=generator)[:k].sort().values
