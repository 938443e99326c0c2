"""Left/right mirroring of SMPL body poses (SMPL's rest skeleton is left-right symmetric).

Mirroring through the body's sagittal plane (x -> -x in SMPL's frame: x points to the body's left)
maps a rotation R to M R M with M = diag(-1, 1, 1). For an axis-angle vector w that is
``(w_x, -w_y, -w_z)``; left and right joints then swap places.
"""

from __future__ import annotations

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
