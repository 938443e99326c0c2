"""Rotation conversions on batched tensors, thin wrappers over ``roma``.

Conventions (all functions accept any leading batch shape ``...``):

- axis-angle (rotation vector): ``(..., 3)``, radians, direction = axis.
- rotation matrix: ``(..., 3, 3)``, acting on column vectors.
- 6D: ``(..., 6)``, the first two *columns* of the rotation matrix, flattened row-major from the
  ``(3, 2)`` block (the layout of Zhou et al. 2019 and VPoser's decoder). Decoded by Gram-Schmidt.
- quaternion: ``(..., 4)`` in roma's and SciPy's ``(x, y, z, w)`` order, unit norm.
"""

from __future__ import annotations

import roma
import torch


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt a 6D representation ``(..., 6)`` into a rotation matrix ``(..., 3, 3)``.

    The second column is projected twice ("twice is enough"): when the two 6D columns are
    nearly parallel, as an untrained network emits them, one float32 pass (roma's
    ``special_gramschmidt``) leaves ~3e-5 in ``R R^T - I``; the second brings it to ~3e-7 at the
    same cost.
    """
    cols = x.reshape(*x.shape[:-1], 3, 2)
    a, b = cols[..., 0], cols[..., 1]
    e1 = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    e2 = b - (e1 * b).sum(-1, keepdim=True) * e1
    e2 = e2 - (e1 * e2).sum(-1, keepdim=True) * e1
    e2 = e2 / e2.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.stack((e1, e2, torch.linalg.cross(e1, e2, dim=-1)), dim=-1)


def rotmat_to_rot6d(rotmat: torch.Tensor) -> torch.Tensor:
    """First two columns of ``(..., 3, 3)`` as ``(..., 6)`` (inverse of :func:`rot6d_to_rotmat`)."""
    return rotmat[..., :, :2].reshape(*rotmat.shape[:-2], 6)


def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` rotation vectors in radians to ``(..., 3, 3)`` matrices."""
    return roma.rotvec_to_rotmat(aa)


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` matrices to ``(..., 3)`` rotation vectors, angle in ``[0, pi]``."""
    return roma.rotmat_to_rotvec(rotmat)


def rotmat_to_quat(rotmat: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` matrices to unit quaternions ``(..., 4)``, ``(x, y, z, w)`` order."""
    return roma.rotmat_to_unitquat(rotmat)


def quat_to_rotmat(quat: torch.Tensor) -> torch.Tensor:
    """Unit quaternions ``(..., 4)`` in ``(x, y, z, w)`` order to ``(..., 3, 3)`` matrices."""
    return roma.unitquat_to_rotmat(quat)


def geodesic_distance(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle in radians ``(...,)`` of the relative rotation between ``(..., 3, 3)`` matrices."""
    return roma.rotmat_geodesic_distance(r1, r2)
