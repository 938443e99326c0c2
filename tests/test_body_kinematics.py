"""Forward kinematics on SMPL's tree against smplx's own rigid transform chain."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from smplx.lbs import batch_rigid_transform

from advprior.body import forward_kinematics, forward_kinematics_rotmat, rest_joints
from advprior.rotations import axis_angle_to_rotmat
from advprior.skeleton import PARENTS, REST_JOINTS


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    # betas without a body model build the stand-in; keep its file out of the user's cache
    monkeypatch.setenv("ADVPRIOR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _random_pose(n: int, dim: int = 63, seed: int = 0, scale: float = 0.6):
    g = torch.Generator().manual_seed(seed)
    go = torch.randn(n, 3, generator=g, dtype=torch.float64) * scale
    bp = torch.randn(n, dim, generator=g, dtype=torch.float64) * scale
    return go, bp


def _smplx_reference(go: torch.Tensor, bp69: torch.Tensor) -> torch.Tensor:
    rot = axis_angle_to_rotmat(torch.cat([go, bp69], -1).reshape(len(go), 24, 3))
    rest = torch.as_tensor(REST_JOINTS, dtype=go.dtype).expand(len(go), 24, 3)
    posed, _ = batch_rigid_transform(rot, rest, torch.tensor(PARENTS))
    return posed


def test_zero_pose_gives_rest_joints() -> None:
    joints = forward_kinematics(torch.zeros(3), torch.zeros(63))
    assert joints.shape == (24, 3)
    np.testing.assert_allclose(joints.numpy(), REST_JOINTS, atol=1e-6)
    np.testing.assert_allclose(rest_joints().numpy(), REST_JOINTS, atol=1e-7)


@pytest.mark.parametrize("dim", [63, 69])
def test_matches_smplx_rigid_transform(dim: int) -> None:
    go, bp = _random_pose(16, dim)
    bp69 = bp if dim == 69 else torch.cat([bp, torch.zeros(16, 6, dtype=bp.dtype)], -1)
    joints = forward_kinematics(go, bp)
    assert joints.dtype == torch.float64
    torch.testing.assert_close(joints, _smplx_reference(go, bp69), atol=1e-10, rtol=0)


def test_rotations_and_translation() -> None:
    go, bp = _random_pose(5, 69, seed=1)
    transl = torch.randn(5, 3, dtype=torch.float64)
    joints, rots = forward_kinematics(go, bp, transl=transl, return_rotations=True)
    assert rots.shape == (5, 24, 3, 3)
    # root rotation is the global orient; each child's global rotation = parent's @ local
    local = axis_angle_to_rotmat(torch.cat([go, bp], -1).reshape(5, 24, 3))
    torch.testing.assert_close(rots[:, 0], local[:, 0])
    for j in range(1, 24):
        torch.testing.assert_close(rots[:, j], rots[:, PARENTS[j]] @ local[:, j])
    torch.testing.assert_close(joints[:, 0], torch.as_tensor(REST_JOINTS[0]) + transl)
    # bone lengths are preserved by any pose
    par = list(PARENTS[1:])
    bone = (joints[:, 1:] - joints[:, par]).norm(dim=-1)
    rest_bone = np.linalg.norm(REST_JOINTS[1:] - REST_JOINTS[par], axis=-1)
    np.testing.assert_allclose(bone.numpy(), np.broadcast_to(rest_bone, (5, 23)), atol=1e-10)


def test_broadcast_leading_dims_and_gradient() -> None:
    go = torch.zeros(2, 1, 3, requires_grad=True)
    bp = (torch.randn(1, 4, 63) * 0.3).requires_grad_()
    joints = forward_kinematics(go, bp)
    assert joints.shape == (2, 4, 24, 3)
    joints.square().sum().backward()
    assert go.grad is not None and bp.grad is not None
    assert torch.isfinite(bp.grad).all() and bp.grad.abs().sum() > 0


def test_hands_default_to_identity() -> None:
    go, bp = _random_pose(3, 63, seed=2)
    padded = torch.cat([bp, torch.zeros(3, 6, dtype=bp.dtype)], -1)
    torch.testing.assert_close(forward_kinematics(go, bp), forward_kinematics(go, padded))


@pytest.mark.parametrize(
    ("go", "bp", "err"),
    [
        (torch.zeros(1, 3), torch.zeros(1, 60), ValueError),
        (torch.zeros(1, 4), torch.zeros(1, 63), ValueError),
        (torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 63, dtype=torch.long), TypeError),
        ([0.0, 0.0, 0.0], torch.zeros(63), TypeError),
        (torch.zeros(2, 3), torch.zeros(3, 63), ValueError),
    ],
)
def test_bad_input(go, bp, err) -> None:
    with pytest.raises(err):
        forward_kinematics(go, bp)


def test_bad_transl() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        forward_kinematics(torch.zeros(3), torch.zeros(63), transl=torch.zeros(2))


def test_bad_betas_and_transl_shapes() -> None:
    go, bp = torch.zeros(4, 3), torch.zeros(4, 63)
    with pytest.raises(ValueError, match="betas"):
        forward_kinematics(go, bp, betas=torch.zeros(3, 10))
    with pytest.raises(ValueError, match="transl"):
        forward_kinematics(go, bp, transl=torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="transl"):
        forward_kinematics(go, bp, transl=torch.zeros(3, 3))


def test_rotmat_chain_matches_axis_angle_fk_and_a_per_joint_loop() -> None:
    g = torch.Generator().manual_seed(4)
    go, bp = 0.3 * torch.randn(5, 3, generator=g), 0.4 * torch.randn(5, 63, generator=g)
    local = axis_angle_to_rotmat(torch.cat([go, bp], -1).unflatten(-1, (22, 3)))
    chain = forward_kinematics_rotmat(local)
    torch.testing.assert_close(chain, forward_kinematics(go, bp))
    # The 0.1.0 VAE loss's own kinematics (one joint at a time) gives the same joints.
    rest = torch.as_tensor(REST_JOINTS, dtype=torch.float32)
    eye = torch.eye(3).expand(5, 3, 3)
    rots, pos = [local[:, 0]], [rest[0].expand(5, 3)]
    joints = [*local.unbind(1), eye, eye]
    for j in range(1, 24):
        p = PARENTS[j]
        pos.append(pos[p] + rots[p] @ (rest[j] - rest[p]))
        rots.append(rots[p] @ joints[j])
    torch.testing.assert_close(chain, torch.stack(pos, 1))
    with pytest.raises(ValueError, match="22, 3, 3"):
        forward_kinematics_rotmat(local[:, :21])
