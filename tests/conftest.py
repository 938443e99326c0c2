from __future__ import annotations

from pathlib import Path

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
