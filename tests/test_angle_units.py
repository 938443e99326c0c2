"""Axis-angle in degrees (a BVH / mocap tool's unit) is recognised, not decoded into garbage.

The rule (:func:`advprior.rotations.degree_poses`): a pose whose longest body-joint rotation
vector exceeds 4 pi. Boundaries that take a user's poses once refuse it (file importers,
``invert`` / ``project_pose`` / ``score``, AMASS export); the body model's forward, which an
optimiser calls, only warns (CPU, outside autograd) and never raises; a prior's energy is silent.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from advprior.baselines import GMMPrior
from advprior.body import forward_kinematics, load_body_model
from advprior.data import load_motion
from advprior.data.retarget import retarget
from advprior.errors import AngleUnitWarning, MotionFormatError
from advprior.rotations import DEGREES_NORM, degree_poses, degrees_reason
from advprior.skeleton import check_body_pose


def _radians(n: int, seed: int = 0, *, joints: int = 21) -> torch.Tensor:
    """``(n, 3 joints)`` random poses in radians, every joint bent 15-90 degrees (so that their
    degree versions are flagged whatever the rule's margin)."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.nn.functional.normalize(
        torch.randn(n, joints, 3, generator=g, dtype=torch.float64), dim=-1
    )
    angle = torch.deg2rad(15.0 + 75.0 * torch.rand(n, joints, 1, generator=g, dtype=torch.float64))
    return (axis * angle).flatten(-2)


def _non_canonical(pose: torch.Tensor, turns: float) -> torch.Tensor:
    """The same rotations as ``pose`` with each vector's norm ``theta`` made ``theta + 2 pi
    turns``: ``turns = -1`` the long way round (norm ``2 pi - theta`` in ``[pi, 2 pi]``), ``1``
    a whole turn more (``2 pi + theta``; up to 2.5 pi for :func:`_radians`' joints)."""
    v = pose.unflatten(-1, (-1, 3))
    theta = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    return (v * (theta + 2.0 * math.pi * turns) / theta).flatten(-2)


@pytest.fixture(scope="module")
def real_poses(fixture_mocap: Path) -> torch.Tensor:
    """``(T, 63)`` radians: the committed CMU / HDM05 clips retargeted to SMPL (as the
    dataset build does)."""
    clips = [
        fixture_mocap / "cmu_asfamc" / "02" / "02_03.amc",
        fixture_mocap / "cmu_bvh_daz_aclstm" / "martial" / "04_first60.bvh",
        fixture_mocap / "hdm05_asfamc" / "amc" / "HDM_bk_hopBothLegs1hops_020_120.amc",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the importers' approximations are not judged here
        poses = [retarget(load_motion(p)).body_pose for p in clips]
    return torch.from_numpy(np.concatenate(poses)).double()


# -- the rule ---------------------------------------------------------------------------------


def test_the_rule_on_synthetic_poses() -> None:
    rad = _radians(64)
    assert not degree_poses(rad.unflatten(-1, (-1, 3))).any()
    # non-canonical radians: the long way round (norms up to 2 pi), and a whole turn more
    # (up to 2.5 pi), as optimisers and unwrapped sequences hold them
    for turns in (-1.0, 1.0):
        other = _non_canonical(rad, turns).unflatten(-1, (-1, 3))
        assert torch.linalg.vector_norm(other, dim=-1).max() > math.pi
        assert not degree_poses(other).any()
    assert degree_poses(torch.rad2deg(rad).unflatten(-1, (-1, 3))).all()
    # the bound itself: a pose with one joint just beyond it is flagged, one at it is not
    one = torch.zeros(2, 21, 3, dtype=torch.float64)
    one[0, 5, 1] = DEGREES_NORM
    one[1, 5, 1] = DEGREES_NORM * (1 + 1e-9)
    assert degree_poses(one).tolist() == [False, True]
    # a NaN pose is for the finiteness checks
    assert not degree_poses(torch.full((1, 21, 3), float("nan"))).any()
    # nearly straight poses in degrees are not told apart: harmless only at exactly zero, and
    # why the rule's bound is low enough for real poses' most bent joint (the test below)
    assert not degree_poses(torch.full((1, 21, 3), 5.0)).any()


def test_real_poses_pass_and_their_degrees_are_flagged(real_poses: torch.Tensor) -> None:
    per_joint = real_poses.unflatten(-1, (-1, 3))
    assert not degree_poses(per_joint).any()
    assert degree_poses(torch.rad2deg(per_joint)).all()


def test_messages_name_the_fix_or_the_corruption() -> None:
    deg = torch.rad2deg(_radians(3)).unflatten(-1, (-1, 3))
    text = degrees_reason(deg, "poses")
    assert "3 of 3 poses" in text and "degrees" in text and "deg2rad" in text
    assert degrees_reason(_radians(3).unflatten(-1, (-1, 3)), "poses") is None
    corrupt = degrees_reason(torch.full((1, 21, 3), 1e4), "poses")
    assert "deg2rad" not in corrupt and "corrupt" in corrupt


# -- boundaries that refuse ------------------------------------------------------------------


def test_check_body_pose_refuses_degrees_only_when_asked() -> None:
    deg = torch.rad2deg(_radians(2))
    assert check_body_pose(deg) is deg  # the default: code an optimiser calls
    for layout in (deg, deg.unflatten(-1, (-1, 3))):
        with pytest.raises(ValueError, match="look like degrees.*deg2rad"):
            check_body_pose(layout, refuse_degrees=True)
    check_body_pose(_non_canonical(_radians(2), 1.0), refuse_degrees=True)


def test_prior_boundaries_refuse_degrees(sphere_prior) -> None:
    rad = _radians(2).float()
    deg = torch.rad2deg(rad)
    options = {"steps": 1, "restarts": 1, "bank_size": 8}
    for call in (sphere_prior.invert, sphere_prior.project_pose, sphere_prior.score):
        with pytest.raises(ValueError, match="look like degrees"):
            call(deg, **options)
        call(_non_canonical(rad, 1.0), **options)  # radians the long way round pass


def test_gmm_energy_takes_any_value_and_score_refuses() -> None:
    gmm = GMMPrior(num_components=2)
    deg = torch.rad2deg(_radians(2)).float().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        energy = gmm.energy(deg)  # inside an optimiser's loop: no exception, no warning
    energy.sum().backward()
    assert torch.isfinite(deg.grad).all()
    with pytest.raises(ValueError, match="look like degrees"):
        gmm.score(deg.detach())
    assert torch.isfinite(gmm.score(_radians(2).float())).all()


# -- the body model: a warning, never an exception ----------------------------------------------


def test_body_model_warns_on_user_poses_in_degrees() -> None:
    body = load_body_model()
    rad = _radians(2).float()
    go = torch.zeros(2, 3)
    with pytest.warns(AngleUnitWarning, match="look like degrees") as record:
        body(go, torch.rad2deg(rad))
    assert record[0].filename == __file__  # points at the caller's line
    with pytest.warns(AngleUnitWarning):
        forward_kinematics(go, torch.rad2deg(rad).unflatten(-1, (-1, 3)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        body(go, _non_canonical(rad, 1.0))
        body(go, _non_canonical(rad, -1.0))
        # a root spun several turns (an unwrapped sequence) is not judged
        body(torch.tensor([[0.0, 20.0, 0.0], [0.0, -40.0, 0.0]]), rad)
        # an optimiser's variable, wherever its line search goes: silent
        body(go, torch.rad2deg(rad).requires_grad_())


# -- files and exports --------------------------------------------------------------------------


def _amass(path: Path, poses: np.ndarray) -> Path:
    t = poses.shape[0]
    np.savez(path, poses=poses, trans=np.zeros((t, 3)), mocap_framerate=np.array(30.0))
    return path


def test_importers_refuse_degrees_and_take_radians(tmp_path: Path) -> None:
    rad = np.zeros((4, 156))
    rad[:, 3:66] = _non_canonical(_radians(4), 1.0).numpy()  # norms up to 2.5 pi
    rad[:, :3] = [0.0, 0.0, 25.0]  # the root unwrapped around z for four turns
    assert load_motion(_amass(tmp_path / "rad.npz", rad)).rotations.shape[0] == 4
    deg = np.zeros((4, 156))
    deg[:, 3:66] = np.rad2deg(_radians(4).numpy())
    for path in (_amass(tmp_path / "deg.npz", deg), tmp_path / "deg.npy"):
        if path.suffix == ".npy":
            np.save(path, deg[:, :72])
        with pytest.raises(MotionFormatError, match=r"4 of 4 frames.*degrees.*np\.deg2rad") as err:
            load_motion(path, fps=30.0)
        assert str(path) in str(err.value)
    deg[:, 3:66] = 1e4  # too long for degrees too: no deg2rad advice
    with pytest.raises(MotionFormatError, match="corrupt") as err:
        load_motion(_amass(tmp_path / "corrupt.npz", deg))
    assert "deg2rad" not in str(err.value)


def test_amass_export_refuses_degrees(tmp_path: Path) -> None:
    from test_fit_amass import _fit

    body = load_body_model(dtype=torch.float64)
    result = _fit(body)
    result.to_amass(tmp_path / "ok.npz")
    result.body_pose = torch.rad2deg(_radians(len(result)))
    with pytest.raises(ValueError, match="look like degrees.*not exported"):
        result.to_amass(tmp_path / "deg.npz")
    assert not (tmp_path / "deg.npz").exists()
