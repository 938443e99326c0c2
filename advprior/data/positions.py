"""Is a pose-shaped array joint positions rather than rotations? :func:`joint_positions_reason`.

Pose files and joint-position files share shapes (``(T, 66)`` is 21 body joints' rotation
vectors plus the root's, and 22 joints' positions), so every importer of SMPL parameters asks
this before reading an array as rotations. Its own module because both :mod:`.amass` and
:mod:`.smplseq` (which imports :mod:`.amass`) ask.
"""

from __future__ import annotations

import numpy as np

from advprior.skeleton import PARENTS, REST_JOINTS

__all__ = ["joint_positions_reason"]

#: Joint positions are told from rotation vectors by SMPL's 21 body bones (joints 1..21 and their
#: parents, the same in SMPL, SMPL-H and SMPL-X): positions keep every bone's length over all
#: frames (a body model's joints to float32 rounding, ~1e-6 m; ``_RIGID_M`` leaves room for
#: noisier sources), within a factor of ``_BONE_RATIO`` of SMPL's rest length, and the left and
#: right bones within ``_SIDE_RATIO`` of each other. Rotation vectors, whose differences are
#: angles, do not: of the 98,446 captured poses of the released dataset none has more than 10
#: of its 21 "bones" within that ratio, and no random pose of the tests passes.
_RIGID_M = 0.01
_BONE_RATIO = 2.0
_SIDE_RATIO = 1.25
_BODY_PARENTS = np.asarray(PARENTS[1:22])
_REST_BONES = np.linalg.norm(REST_JOINTS[1:22] - REST_JOINTS[_BODY_PARENTS], axis=1)
_SIDE_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21))


def joint_positions_reason(arr: np.ndarray) -> str | None:
    """Why a pose-shaped array ``(T, 66 | 72 | 156 | 165)`` or ``(T, 22 | 24 | 52 | 55, 3)``
    holds joint positions (metres) rather than axis-angle rotations, or None when it does not.

    HumanML3D's ``pose_data/*.npy`` (and the tools that copy its ``raw_pose_processing``) are
    the body model's joints ``Jtr`` of shape ``(T, 52, 3)``, the same shape as SMPL-H poses
    per joint: read as rotations they import silently as another motion."""
    if arr.ndim == 2 and arr.shape[1] % 3 == 0:
        arr = arr.reshape(arr.shape[0], -1, 3)
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] < 22 or arr.shape[2] != 3:
        return None
    body = np.asarray(arr[:, :22], dtype=np.float64)
    if not np.isfinite(body).all():
        return None
    bones = np.linalg.norm(body[:, 1:] - body[:, _BODY_PARENTS], axis=2)  # (T, 21)
    typical = np.median(bones, axis=0)
    if np.abs(bones - typical).max() > _RIGID_M:
        return None
    ratio = typical / _REST_BONES
    if not ((ratio > 1 / _BONE_RATIO) & (ratio < _BONE_RATIO)).all():
        return None
    for a, b in _SIDE_PAIRS:
        if max(typical[a - 1], typical[b - 1]) > _SIDE_RATIO * min(typical[a - 1], typical[b - 1]):
            return None
    return (
        f"holds joint positions, not rotations: over its {arr.shape[0]} frames every body bone "
        f"keeps its length to within {_RIGID_M * 1000:g} mm (thigh {typical[3]:.3f}, shin "
        f"{typical[6]:.3f} units), as a body model's joints do ({_POSITION_SOURCES}); import "
        "the AMASS .npz it was made from"
    )


#: Where joint-position arrays shaped like poses come from, for the message above.
_POSITION_SOURCES = (
    "HumanML3D's pose_data/*.npy are SMPL-H joints Jtr (T, 52, 3) and its new_joints/*.npy "
    "22 body joints (T, 22, 3), shaped like per-joint poses"
)
