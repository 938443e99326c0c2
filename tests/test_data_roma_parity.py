"""roma replaced our own rotation code (0.2.0): old and new agree on real motion-capture data.

The 0.1.0 implementations are kept here, in the test only, as the reference: numpy Euler
matrices and quaternion slerp (``advprior.data.rotmath``) and the SVD Procrustes of
``advprior.eval.metrics``. The data are real: Euler angles and rotations of CMU and HDM05 clips
from the shared collection, and SMPL joints of their retargeted poses.

Tolerances, float64 throughout: each side is a handful of products and trigonometric calls on
numbers of order 1, so both are within ~10 eps = 2e-15 of the exact value for angles of a few
radians (the mocap range); sin/cos of an angle a carry a further eps * |a|. The Procrustes
rotation from an SVD is perturbed by eps * |M| / (gap of singular values): for a body's joints
the gaps are a sizeable fraction of |M|, so 1e-12 leaves three orders of margin.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from advprior.body import forward_kinematics
from advprior.data import load_motion, rotmath
from advprior.eval.metrics import procrustes_align

EPS64 = float(np.finfo(np.float64).eps)


# -- the 0.1.0 implementations (reference) ------------------------------------------------------


def _old_axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i = {"x": 0, "y": 1, "z": 2}[axis.lower()]
    j, k = (i + 1) % 3, (i + 2) % 3
    out[..., i, i] = 1.0
    out[..., j, j] = c
    out[..., k, k] = c
    out[..., k, j] = s
    out[..., j, k] = -s
    return out


def _old_euler_matrix(angles: np.ndarray, axes: str) -> np.ndarray:
    angles = np.asarray(angles, dtype=np.float64)
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for n, ax in enumerate(axes):
        out = out @ _old_axis_rotation(ax, angles[..., n])
    return out


def _old_quat_slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot).clip(max=1.0)
    theta = np.arccos(dot)
    sin = np.sin(theta)
    small = sin < 1e-6
    safe = np.where(small, 1.0, sin)
    w0 = np.where(small, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(small, t, np.sin(t * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def _old_procrustes_align(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mu_p = pred.mean(dim=-2, keepdim=True)
    mu_t = target.mean(dim=-2, keepdim=True)
    p, t = pred - mu_p, target - mu_t
    u, s, vh = torch.linalg.svd(t.transpose(-1, -2) @ p)
    sign = torch.sign(torch.linalg.det(u @ vh))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    d = torch.ones_like(s)
    d[..., -1] = sign
    rot = u @ torch.diag_embed(d) @ vh
    scale = (s * d).sum(-1) / p.square().sum(dim=(-1, -2)).clamp_min(torch.finfo(p.dtype).tiny)
    return scale[..., None, None] * (p @ rot.transpose(-1, -2)) + mu_t


# -- real data ----------------------------------------------------------------------------------


def _amc_angles(path: Path, frames: int = 200) -> np.ndarray:
    """Every 3-value channel line of the first ``frames`` frames of an AMC file, in radians."""
    rows, frame = [], 0
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.strip().isdigit():
            frame += 1
            if frame > frames:
                break
            continue
        parts = line.split()
        if frame and len(parts) == 4 and re.fullmatch(r"[A-Za-z_]+", parts[0]):
            rows.append([float(v) for v in parts[1:]])
    return np.radians(np.asarray(rows))


@pytest.fixture(scope="module")
def amc_files(shared_mocap: Path) -> list[Path]:
    return [
        shared_mocap / "cmu_asfamc" / "01" / "01_01.amc",
        sorted((shared_mocap / "hdm05_asfamc" / "amc").glob("*.amc"))[0],
    ]


@pytest.mark.parametrize("axes", ["xyz", "zyx", "zxy", "yxz"])
def test_euler_matrices_match_the_old_numpy_ones(amc_files: list[Path], axes: str) -> None:
    angles = np.concatenate([_amc_angles(p) for p in amc_files])
    assert angles.shape[0] > 1000 and np.abs(angles).max() > 1.0  # real, varied joint angles
    new, old = rotmath.euler_matrix(angles, axes), _old_euler_matrix(angles, axes)
    bound = 10 * EPS64 * (1 + np.abs(angles).max())
    np.testing.assert_allclose(new, old, rtol=0, atol=bound)
    for k, axis in enumerate(axes):
        got = rotmath.axis_rotation(axis, angles[:, k])
        np.testing.assert_allclose(got, _old_axis_rotation(axis, angles[:, k]), rtol=0, atol=bound)


def test_slerp_matches_the_old_numpy_one_on_real_rotations(amc_files: list[Path]) -> None:
    motion = load_motion(amc_files[0])
    q = rotmath.matrix_to_quat(motion.rotations)  # (T, J, 4)
    # Pairs one frame apart and ten frames apart, at the fractions of 120 -> 30 fps and 7 more.
    rng = np.random.default_rng(0)
    for gap in (1, 10):
        q0, q1 = q[:-gap], q[gap:]
        t = rng.uniform(0.0, 1.0, size=(q0.shape[0], 1))
        new, old = rotmath.quat_slerp(q0, q1, t), _old_quat_slerp(q0, q1, t)
        # q and -q are one rotation: compare as matrices.
        np.testing.assert_allclose(
            rotmath.quat_to_matrix(new), rotmath.quat_to_matrix(old), rtol=0, atol=1e-12
        )
    # The old lerp fallback below sin(theta) = 1e-6 is itself off by O(theta^2 t) ~ 1e-12.


def test_resampling_a_real_clip_is_unchanged(amc_files: list[Path]) -> None:
    motion = load_motion(amc_files[1])
    new = motion.resample(30.0)
    u = np.arange(new.num_frames) * (motion.fps / 30.0)
    i0 = np.clip(np.floor(u + 1e-9).astype(int), 0, motion.num_frames - 1)
    i1 = np.minimum(i0 + 1, motion.num_frames - 1)
    a = np.clip(u - i0, 0.0, 1.0)
    q = rotmath.matrix_to_quat(motion.rotations)
    old = rotmath.quat_to_matrix(_old_quat_slerp(q[i0], q[i1], a[:, None]))
    np.testing.assert_allclose(new.rotations, old, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_procrustes_matches_the_old_svd_on_real_joints(
    amc_files: list[Path], dtype: torch.dtype
) -> None:
    smpl = load_motion(amc_files[0]).to_smpl(fps=30.0)
    pose = torch.from_numpy(smpl.body_pose[::5]).to(dtype)
    orient = torch.from_numpy(smpl.global_orient[::5]).to(dtype)
    target = forward_kinematics(orient, pose)
    # A fit's error: other poses nearby, turned, scaled and moved.
    g = torch.Generator().manual_seed(0)
    noisy = pose + 0.2 * torch.randn(pose.shape, generator=g).to(dtype)
    pred = 1.3 * forward_kinematics(torch.zeros_like(orient), noisy) + 0.5
    new, old = procrustes_align(pred, target), _old_procrustes_align(pred, target)
    # float32: eps 1.2e-7 times |points| ~ 1 m, times the SVD's conditioning (~10 here).
    atol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(new, old, rtol=0, atol=atol)
    assert float((new - target).norm(dim=-1).mean()) > 0.01  # a real residual, not a copy
