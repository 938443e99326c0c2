from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_MOCAP = REPO.parent / "shared" / "data" / "mocap"


@pytest.fixture(scope="session")
def shared_mocap() -> Path:
    """The real mocap folder beside the checkout (CI lays it there)."""
    if not SHARED_MOCAP.is_dir():
        pytest.fail(f"../shared/data/mocap is missing (looked at {SHARED_MOCAP})")
    return SHARED_MOCAP


def _write_dataset(path: Path, body_pose: np.ndarray, split: np.ndarray, **arrays) -> Path:
    """A dataset file in the layout of docs/design.md: ``body_pose (N, 63)``, ``split (N,)``
    codes, zeros and single names for whatever ``arrays`` does not give."""
    n = body_pose.shape[0]
    full = {"global_orient": np.zeros((n, 3), np.float32), "transl": np.zeros((n, 3), np.float32),
            "sequence": np.zeros(n, np.int32), "subject": split.astype(np.int32),
            "sequence_names": np.array(["s"]), "subject_names": np.array(["a", "b", "c"]),
            "split_names": np.array(["train", "val", "test"]), "fps": np.float32(30.0),
            "meta": np.array("{}"), **arrays}
    np.savez(path, body_pose=body_pose.astype(np.float32), split=split.astype(np.int8), **full)
    return path


@pytest.fixture(scope="session")
def write_dataset():
    """``write_dataset(path, body_pose, split, **arrays) -> path`` (see :func:`_write_dataset`)."""
    return _write_dataset
