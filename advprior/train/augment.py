"""Augmentations of SMPL body poses: left/right mirroring (SMPL's rest skeleton is left-right
symmetric), leg swapping between poses and blends of two poses.

Mirroring through the body's sagittal plane (x -> -x in SMPL's frame: x points to the body's left)
maps a rotation R to M R M with M = diag(-1, 1, 1). For an axis-angle vector w that is
``(w_x, -w_y, -w_z)``; left and right joints then swap places.
"""

from __future__ import annotations

import roma
import torch

# SMPL joints 1..21 (body_pose order, index = joint - 1): each joint's mirror partner.
_MIRROR_JOINT = (
    1,
    0,
    2,
    4,
    3,
    5,
    7,
    6,
    8,
    10,
    9,
    11,
    13,
    12,
    14,
    16,
    15,
    18,
    17,
    20,
    19,
)
_MIRROR_SIGN = (1.0, -1.0, -1.0)


def mirror_body_pose(body_pose: torch.Tensor) -> torch.Tensor:
    """Mirror ``(..., 63)`` axis-angle body poses (radians) left <-> right."""
    if body_pose.shape[-1] != 63:
        raise ValueError(f"body_pose must have shape (..., 63), got {tuple(body_pose.shape)}")
    aa = body_pose.reshape(*body_pose.shape[:-1], 21, 3)[..., list(_MIRROR_JOINT), :]
    sign = torch.tensor(_MIRROR_SIGN, dtype=body_pose.dtype, device=body_pose.device)
    return (aa * sign).reshape(body_pose.shape)


#: ``body_pose`` indices (joint - 1) of SMPL's leg chains: hips, knees, ankles, feet.
LEG_JOINTS = (0, 1, 3, 4, 6, 7, 9, 10)


def _pairs(
    rotmat: torch.Tensor, fraction: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check ``rotmat (B, 21, 3, 3)`` and ``fraction``, then draw (on the CPU ``generator``) which
    poses change (each with probability ``fraction``) and one donor per pose: ``(rows, donors)``,
    the changed poses' indices and their donors' indices, on ``rotmat``'s device."""
    if rotmat.ndim != 4 or rotmat.shape[1:] != (21, 3, 3):
        raise ValueError(f"rotmat must have shape (B, 21, 3, 3), got {tuple(rotmat.shape)}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    n = rotmat.shape[0]
    changed = torch.rand(n, generator=generator) < fraction
    donor = torch.randperm(n, generator=generator)
    rows = torch.nonzero(changed).flatten()
    return rows.to(rotmat.device), donor[rows].to(rotmat.device)


def mix_legs(
    rotmat: torch.Tensor, fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A copy of the poses ``rotmat (B, 21, 3, 3)`` in which about ``fraction`` of them have
    their leg joints (:data:`LEG_JOINTS`, rotations relative to the pelvis) taken from another
    pose of the batch.

    Legs and upper body combine freely in everyday motion (waving while walking, reaching while
    sitting), but a capture set holds only the combinations its actors happened to perform;
    swapping legs shows the model the others. The poses to change and their donors are drawn
    from ``generator`` (CPU), so a run stays reproducible and resumable."""
    rows, donors = _pairs(rotmat, fraction, generator)
    legs = torch.tensor(LEG_JOINTS, device=rotmat.device)
    out = rotmat.clone()
    out[rows[:, None], legs] = rotmat[donors[:, None], legs]
    return out


def blend_poses(
    rotmat: torch.Tensor, fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A copy of the poses ``rotmat (B, 21, 3, 3)`` in which about ``fraction`` of them are
    replaced by a blend with another pose of the batch: every joint rotation moved along its
    geodesic toward the donor's, ``R (R^T R_donor)^t``, the same ``t ~ U(0, 1)`` for all joints
    of a pose (per-joint slerp, each joint at most 180 degrees).

    The training poses themselves cover held-out people's poses no better than GAN-S does, and
    the VAE's new poses cover them better (``docs/training.md``, round 13); blends show the
    model poses between the captured ones. The poses to
    change, their donors and ``t`` are drawn from ``generator`` (CPU), so a run stays
    reproducible and resumable."""
    rows, donors = _pairs(rotmat, fraction, generator)
    t = torch.rand(rotmat.shape[0], generator=generator)  # after the pairs: resumable streams
    out = rotmat.clone()
    if rows.numel() == 0:
        return out
    a = rotmat[rows]
    b = rotmat[donors]
    step = roma.rotmat_to_rotvec(a.transpose(-1, -2) @ b)  # (R, 21, 3), angle in [0, pi]
    step = step * t.to(device=rotmat.device, dtype=rotmat.dtype)[rows][:, None, None]
    out[rows] = a @ roma.rotvec_to_rotmat(step)
    return out
