"""SMPL's kinematic tree, joint names and neutral rest joints.

Provenance: the published SMPL neutral-model joint table (J = J_regressor @ v_template at zero
shape and pose) as hard-coded in public repositories; see
``../shared/data/smpl_facts/SMPL_REST_JOINTS.md`` in the development tree. Units: metres. Frame:
y up, x toward the body's left, z forward (the body faces +z). These are numbers only; no model
file was used.
"""

from __future__ import annotations

import numpy as np
import torch

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hand",
    "right_hand",
)

PARENTS: tuple[int, ...] = (
    -1,
    0,
    0,
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    9,
    9,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    20,
    21,
)

NUM_JOINTS = 24
#: Joints 1..21: the SMPL-H / SMPL-X ``body_pose`` and AMASS ``pose_body``.
NUM_BODY_JOINTS = 21
#: Joints 1..23: SMPL's ``body_pose`` (adds the two hand joints).
NUM_SMPL_BODY_JOINTS = 23
#: ``body_pose`` sizes every prior takes: 63 (SMPL-H/SMPL-X body) or 69 (SMPL, hands included).
BODY_POSE_SIZES = (3 * NUM_BODY_JOINTS, 3 * NUM_SMPL_BODY_JOINTS)

#: Neutral SMPL rest joints, (24, 3), metres.
REST_JOINTS = np.array(
    [
        [-0.00179505953, -0.223333446, 0.0282191255],
        [0.0677246757, -0.314739671, 0.0214037877],
        [-0.0694655406, -0.313855126, 0.0238993038],
        [-0.00432792313, -0.114370215, 0.00152281192],
        [0.102001221, -0.689938274, 0.0169079858],
        [-0.107755594, -0.696424140, 0.0150492738],
        [0.00115910534, 0.0208102144, 0.00261528404],
        [0.0884055199, -1.08789863, -0.0267853442],
        [-0.0919818258, -1.09483879, -0.0272625243],
        [0.00261610388, 0.0737324481, 0.0280398521],
        [0.114763659, -1.14368952, 0.0925030544],
        [-0.117353574, -1.14298274, 0.0960854266],
        [-0.000162284535, 0.287602804, -0.0148171829],
        [0.0814608431, 0.195481750, -0.00604975478],
        [-0.0791430834, 0.192565283, -0.0105754332],
        [0.00498955543, 0.352572414, 0.0365317875],
        [0.172437770, 0.225950646, -0.0149179062],
        [-0.175155461, 0.225116450, -0.0197185045],
        [0.432050017, 0.213178586, -0.0423743412],
        [-0.428897421, 0.211787231, -0.0411194829],
        [0.681283645, 0.222164620, -0.0435452575],
        [-0.684195501, 0.219559526, -0.0466786778],
        [0.765325829, 0.214003084, -0.0584906248],
        [-0.768817426, 0.213442268, -0.0569937621],
    ],
    dtype=np.float64,
)


def rest_offsets() -> np.ndarray:
    """Parent-relative rest offsets ``(24, 3)`` in metres; row 0 is the absolute pelvis."""
    offsets = REST_JOINTS.copy()
    for i, p in enumerate(PARENTS):
        if p >= 0:
            offsets[i] = REST_JOINTS[i] - REST_JOINTS[p]
    return offsets


def pad_hand_joints(pose: torch.Tensor, joints: int, *, rotmat: bool = False) -> torch.Tensor:
    """Give a body pose exactly ``joints`` joints: append identity rotations, or drop the last.

    SMPL's ``body_pose`` has 23 joints, SMPL-H/SMPL-X's 21: SMPL's two hand joints (22, 23) are
    absent from the others and count as identity (at rest). Works on axis-angle ``(..., 3J)``
    (identity = zeros) or, with ``rotmat=True``, on matrices ``(..., J, 3, 3)``; returns
    ``(..., 3 * joints)`` or ``(..., joints, 3, 3)``, the input itself when it already fits.
    """
    have = pose.shape[-3] if rotmat else pose.shape[-1] // 3
    if have == joints:
        return pose
    if have > joints:
        return pose[..., :joints, :, :] if rotmat else pose[..., : 3 * joints]
    if rotmat:
        eye = torch.eye(3, dtype=pose.dtype, device=pose.device)
        return torch.cat([pose, eye.expand(*pose.shape[:-3], joints - have, 3, 3)], -3)
    return torch.cat([pose, pose.new_zeros(*pose.shape[:-1], 3 * (joints - have))], -1)
