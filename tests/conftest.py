from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]

#: Tolerance (metres) between two float32 routes to the same joint positions (smplx's LBS and
#: advprior's forward kinematics). Each level of the kinematic chain multiplies a rotation into
#: the accumulated transform (~4 roundings of eps |x| per coordinate); SMPL's deepest chain has 9
#: levels and bodies lie within a few metres of the origin, so one route is within 4*9 eps m per
#: metre and two routes within twice that: 72 eps = 8.6e-6 m, still a thousand times below the
#: smallest real error (a joint off by a millimetre).
FK32_ATOL = 72 * torch.finfo(torch.float32).eps
SHARED_MOCAP = REPO.parent / "shared" / "data" / "mocap"
FIXTURE_MOCAP = REPO / "tests" / "data" / "mocap"


@pytest.fixture(scope="session")
def shared_mocap() -> Path:
    """The real mocap folder beside the checkout (CI lays it there). Absent on a fresh clone:
    the tests that need it are skipped (the committed clips in ``tests/data/mocap`` cover every
    importer); ``ADVPRIOR_REQUIRE_SHARED=1`` (CI's first stage) makes its absence a failure."""
    if not SHARED_MOCAP.is_dir():
        message = (
            f"the shared mocap collection is not beside this checkout (looked at {SHARED_MOCAP}); "
            "larger real-data checks need it"
        )
        if os.environ.get("ADVPRIOR_REQUIRE_SHARED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_MOCAP


def _write_dataset(path: Path, body_pose: np.ndarray, split: np.ndarray, **arrays) -> Path:
    """A dataset file in the layout of docs/design.md: ``body_pose (N, 63)``, ``split (N,)``
    codes, zeros and single names for whatever ``arrays`` does not give."""
    n = body_pose.shape[0]
    full = {
        "global_orient": np.zeros((n, 3), np.float32),
        "transl": np.zeros((n, 3), np.float32),
        "sequence": np.zeros(n, np.int32),
        "subject": split.astype(np.int32),
        "sequence_names": np.array(["s"]),
        "subject_names": np.array(["a", "b", "c"]),
        "split_names": np.array(["train", "val", "test"]),
        "fps": np.float32(30.0),
        "meta": np.array("{}"),
        **arrays,
    }
    np.savez(path, body_pose=body_pose.astype(np.float32), split=split.astype(np.int8), **full)
    return path


@pytest.fixture(scope="session")
def write_dataset():
    """``write_dataset(path, body_pose, split, **arrays) -> path`` (see :func:`_write_dataset`)."""
    return _write_dataset


@pytest.fixture(scope="session")
def fixture_mocap() -> Path:
    """A few real clips committed in ``tests/data/mocap`` (see ``tests/data/SOURCES.md``)."""
    return FIXTURE_MOCAP


@pytest.fixture(scope="module")
def body():
    """The open stand-in body (modules that need another body define their own ``body``)."""
    from advprior.body import load_body_model

    return load_body_model()


@pytest.fixture(scope="module")
def sphere_prior():
    """A randomly initialised GAN-S whose decoded poses stay moderate (seeded)."""
    from test_fit_keypoints import tame

    from advprior.prior import PosePrior

    torch.manual_seed(0)
    prior = PosePrior(latent="sphere")
    return tame(prior, prior.generator[-1])
