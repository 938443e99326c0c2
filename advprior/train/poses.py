"""Training and validation poses from a dataset file, with an optional mirrored copy.

The dataset file is ``advprior data build``'s npz (see docs/design.md), read through
``advprior.data.load_dataset``. All three models (GAN, VAE, GMM) see the same rows.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from advprior.data.dataset import load_dataset, require_dataset_file
from advprior.fileio import sha256_file
from advprior.train.augment import mirror_body_pose


@dataclass
class TrainingPoses:
    """``train (N, 63)`` (mirrored copies appended when ``mirror``) and ``val (M, 63)`` float32
    axis-angle poses, plus a JSON-able description of where they came from."""

    train: torch.Tensor
    val: torch.Tensor
    description: dict[str, Any] = field(default_factory=dict)


def _sources(meta: Any) -> Any:
    """The provenance part of a dataset's ``meta`` (a dict, or its JSON text)."""
    if meta is None:
        return None
    parsed = meta
    if not isinstance(meta, dict):
        try:
            parsed = json.loads(str(meta))
        except (TypeError, ValueError, RecursionError):
            return str(meta)[:500]
    if isinstance(parsed, dict):
        keep = ("sources", "frames_per_source", "frames_per_split", "fps", "advprior_version")
        picked = {k: parsed[k] for k in keep if k in parsed}
        return picked or {k: parsed[k] for k in list(parsed)[:4]}
    return parsed


def _evenly(x: torch.Tensor, n: int) -> torch.Tensor:
    if n <= 0 or x.shape[0] <= n:
        return x
    idx = torch.linspace(0, x.shape[0] - 1, n).round().long()
    return x[idx]


def load_training_poses(
    data: str | os.PathLike, *, mirror: bool = True, max_val: int = 2000
) -> TrainingPoses:
    """Read the train and validation splits of a dataset file.

    Args:
        data: dataset npz path.
        mirror: append the left/right mirrored copy of every training pose.
        max_val: keep at most this many validation poses, evenly spaced (0 keeps all). If the
            file has no validation rows, every 20th training pose is held out instead (recorded
            in the description).
    """
    path = require_dataset_file(data)
    full = load_dataset(path)
    train = full.select("train").body_pose.float()
    val = full.select("val").body_pose.float()
    val_source = "validation split"
    if train.shape[0] == 0:
        raise ValueError(f"{path} has no training rows (split == 0)")
    if val.shape[0] == 0:
        held = torch.zeros(train.shape[0], dtype=torch.bool)
        held[::20] = True
        val, train = train[held], train[~held]
        val_source = "every 20th training pose (the file has no validation split)"
        # neighbouring frames are near-duplicates: such validation numbers flatter the model
        warnings.warn(
            f"{path.name} has no validation split: every 20th training pose is held out for "
            "validation instead, and its neighbours are near-duplicates, so validation "
            "numbers are optimistic (build the file with a validation split)",
            stacklevel=2,
        )
    n_train = int(train.shape[0])
    if mirror:
        train = torch.cat([train, mirror_body_pose(train)])
    description = {
        "file": path.name,
        "sha256": sha256_file(path),
        # the file's sha256 changes with the advprior that built it; this one only with poses
        "content_sha256": full.content_sha256(),
        "train_frames": n_train,
        "val_frames": int(val.shape[0]),
        "validation": val_source,
        "mirrored": bool(mirror),
        "sources": _sources(full.meta),
    }
    val = _evenly(val, max_val)
    description["val_poses_used"] = int(val.shape[0])
    return TrainingPoses(train=train.contiguous(), val=val.contiguous(), description=description)
