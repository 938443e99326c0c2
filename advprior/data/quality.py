"""Retargeting quality: angles between corresponding bone directions of SMPL and the source."""

from __future__ import annotations

import numpy as np

from advprior.data.motion import SMPLMotion

#: Bone name -> SMPL (joint, child) pairs measured.
BONES: dict[str, tuple[tuple[int, int], ...]] = {
    "thigh": ((1, 4), (2, 5)),
    "shin": ((4, 7), (5, 8)),
    "upper_arm": ((16, 18), (17, 19)),
    "forearm": ((18, 20), (19, 21)),
    "spine": ((3, 12),),
    "neck": ((12, 15),),
}


def posed_joints(motion: SMPLMotion) -> np.ndarray:
    """SMPL joints ``(T, 24, 3)`` of the stand-in body posed with ``motion``'s parameters."""
    import torch

    from advprior.body import forward_kinematics

    with torch.no_grad():
        j = forward_kinematics(
            torch.as_tensor(motion.global_orient, dtype=torch.float64),
            torch.as_tensor(motion.body_pose, dtype=torch.float64),
            transl=torch.as_tensor(motion.transl, dtype=torch.float64),
        )
    return j.numpy()


def bone_direction_errors(motion: SMPLMotion, joints: np.ndarray | None = None) -> dict:
    """Per bone, the angles in degrees ``(N,)`` between SMPL's bone direction (the stand-in posed
    with ``motion``, or ``joints (T, 24, 3)``) and the source's (``motion.source_joints``), over
    all frames and both sides; bones the source lacks are left out."""
    if joints is None:
        joints = posed_joints(motion)
    src = motion.source_joints
    out = {}
    for name, pairs in BONES.items():
        angles = []
        for a, b in pairs:
            u = joints[:, b] - joints[:, a]
            v = src[:, b] - src[:, a]
            ok = np.all(np.isfinite(v), axis=-1) & (np.linalg.norm(v, axis=-1) > 1e-9)
            if not ok.any():
                continue
            u, v = u[ok], v[ok]
            cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
            angles.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
        if angles:
            out[name] = np.concatenate(angles)
    return out
