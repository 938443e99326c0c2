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


#: How far a matrix given as a joint rotation may be from orthonormal (``max |R^T R - I|``)
#: and still be read as the rotation it approximates: regressors' Gram-Schmidt outputs are
#: orthonormal to float eps (bfloat16: ~1e-2), matrices averaged over frames for smoothing are a
#: few 1e-2 off; a matrix that is no rotation at all (6D columns unnormalised, other data) is
#: off by far more, and reading it would give a pose that nothing warns about.
ROTATION_TOLERANCE = 0.1

# Sizes of last dimensions that are whole poses of another layout -> what to pass instead.
_FULL_POSE_HINTS = {
    72: "SMPL's full pose (global orientation first)? pass body_pose[..., 3:] (and "
    "global_orient=body_pose[..., :3])",
    66: "the global orientation and SMPL-X's 21 body joints? pass body_pose[..., 3:] (and "
    "global_orient=body_pose[..., :3])",
    156: "SMPL-H's full pose (global, body, hands)? pass body_pose[..., 3:66]",
    165: "SMPL-X's full pose (global, body, jaw, eyes, hands)? pass body_pose[..., 3:66]",
}
# Joint counts of whole poses -> (what they are, the body joints' index).
_FULL_JOINTS = {
    22: ("the global orientation and SMPL-X's 21 body joints", "1:"),
    24: ("SMPL's full pose (global orientation first)", "1:"),
    52: ("SMPL-H's full pose (global, body, hands)", "1:22"),
    55: ("SMPL-X's full pose (global, body, jaw, eyes, hands)", "1:22"),
}
# Sizes of one joint's rotation other than axis-angle -> how to make rotation matrices of it.
_ROTATION_HINTS = {
    4: "quaternions? advprior takes them as rotation matrices: "
    "advprior.rotations.quat_to_rotmat(q) reads (x, y, z, w) as roma and SciPy write them "
    "(PyTorch3D's are (w, x, y, z): q.roll(-1, -1) first)",
    6: "6D rotations? advprior takes them as rotation matrices: "
    "advprior.rotations.rot6d_to_rotmat(x) reads SPIN's and VPoser's layout, R[:, :2] row by "
    "row; PyTorch3D's matrix_to_rotation_6d layout, R[:2, :], is "
    "rot6d_to_rotmat(x.unflatten(-1, (2, 3)).mT.flatten(-2)).mT (docs/api/rotations.md)",
}


def _layout_hint(shape: tuple[int, ...]) -> str | None:
    """What a ``body_pose`` of ``shape`` (refused) probably holds and how to convert it: a whole
    pose (global orientation first), per-joint quaternions, 6D or flattened matrices, flat or
    per joint; None when nothing fits."""
    ok = (NUM_BODY_JOINTS, NUM_SMPL_BODY_JOINTS)
    if not shape:
        return None
    if shape[-1] in _FULL_POSE_HINTS:
        return _FULL_POSE_HINTS[shape[-1]]
    if len(shape) >= 3 and shape[-2:] == (3, 3):
        size, joints, unflatten = 9, shape[-3], ""
    elif len(shape) >= 2 and shape[-1] in (3, 4, 6, 9) and shape[-2] in (*ok, *_FULL_JOINTS):
        size, joints, unflatten = shape[-1], shape[-2], ""
    else:  # flat: one pose's rotations side by side
        found = [(k, shape[-1] // k) for k in (4, 6, 9) if shape[-1] % k == 0]
        found = [(k, j) for k, j in found if j in (*ok, *_FULL_JOINTS)]
        if not found:
            if shape[-1] == 3:
                # a (B, 3) is more often the global orientation passed as the body than B joints
                return (
                    "3 numbers are one rotation: the global_orient? body_pose holds 21 or 23 "
                    "joints per pose; axis-angle per joint must be (..., 21, 3) or (..., 23, 3), "
                    "and a full (..., 24, 3) pose's body is [..., 1:, :]"
                )
            return None
        size, joints = found[0]
        unflatten = (
            f"{joints} rotations of {size} numbers flattened? "
            f"body_pose.unflatten(-1, ({joints}, {size}))"
        )
    parts = [unflatten] if unflatten else []
    if joints in _FULL_JOINTS:
        what, index = _FULL_JOINTS[joints]
        trail = ", :, :" if shape[-2:] == (3, 3) else ", :"
        parts.append(f"{joints} joints: {what}? its body is [..., {index}{trail}]")
    elif joints not in ok:
        if size == 9 and shape[-2:] == (3, 3):
            return (
                "rotation matrices must be (..., 21, 3, 3) or (..., 23, 3, 3); a full "
                "(..., 24, 3, 3) pose's body is [..., 1:, :, :]"
            )
        return None
    if size in _ROTATION_HINTS:
        parts.append(_ROTATION_HINTS[size])
    return "; ".join(parts) or None


def body_pose_layout(body_pose: torch.Tensor) -> str:
    """How ``body_pose`` holds its joints: ``"rotmat"`` for ``(..., 21 | 23, 3, 3)`` matrices,
    ``"matrot"`` for the same flattened row-major, ``(..., 21 | 23, 9)`` (VPoser's ``matrot``
    / ``pose_body_matrot``), ``"joints"`` for axis-angle per joint ``(..., 21 | 23, 3)``, else
    ``"flat"`` (the ``(..., 63 | 69)`` layout every advprior function returns; other sizes are
    refused by :func:`check_body_pose`)."""
    joints = (NUM_BODY_JOINTS, NUM_SMPL_BODY_JOINTS)
    shape = tuple(body_pose.shape)
    if len(shape) >= 3 and shape[-2:] == (3, 3) and shape[-3] in joints:
        return "rotmat"
    if len(shape) >= 2 and shape[-1] in (3, 9) and shape[-2] in joints:
        return "joints" if shape[-1] == 3 else "matrot"
    return "flat"


def check_body_pose(
    body_pose: object, name: str = "body_pose", *, finite: bool = True, refuse_degrees: bool = False
) -> torch.Tensor:
    """``body_pose`` in any layout smplx-based code holds it, as axis-angle ``(..., 63 | 69)``.

    Taken: ``(..., 63 | 69)`` axis-angle (SMPL joints 1..21 or 1..23); the same per joint,
    ``(..., 21 | 23, 3)`` (smplx's ``body_pose.reshape(-1, 21, 3)``, a ``(B, 24, 3)`` pose's
    ``[:, 1:]``); rotation matrices ``(..., 21 | 23, 3, 3)``, as smplx's layers take them
    (``pose2rot=False``) and regressors return them (SPIN's ``pred_rotmat[:, 1:]``, 4D-Humans'
    ``pred_smpl_params["body_pose"]``), also flattened row-major ``(..., 21 | 23, 9)`` (VPoser
    v2's ``pose_body_matrot``). Matrices must be rotations to
    :data:`ROTATION_TOLERANCE` (``max |R^T R - I|``, determinant > 0), and are read as their
    nearest rotation (:func:`advprior.rotations.nearest_rotation`); anything else is refused,
    never read as some other pose. Rows holding NaN are not judged (``finite`` says whether
    they are refused).

    ``refuse_degrees``: also refuse axis-angle poses that can only be in degrees
    (:func:`advprior.rotations.degree_poses`: a joint's rotation vector longer than 4 pi), for
    API boundaries that take a user's poses (``invert``, ``project_pose``, ``score``); it reads
    one flag from the device (a GPU synchronisation, as ``finite`` does). Off by default: code
    an optimiser calls (a prior's energy, the body model's forward) must take any value a line
    search tries.

    Raises:
        TypeError: not a floating ``torch.Tensor``.
        ValueError: another shape (with a hint for a full pose such as SMPL's 72 values), a
            matrix that is no rotation, (``finite``) NaN/Inf entries, or (``refuse_degrees``)
            poses in degrees.
    """
    from advprior.tensors import _all_finite, check_tensor

    sizes = BODY_POSE_SIZES
    if (
        not isinstance(body_pose, torch.Tensor)
        or not body_pose.is_floating_point()
        or body_pose.ndim == 0
    ):
        check_tensor(body_pose, name, sizes, finite=False)  # raises, naming the shapes
    layout = body_pose_layout(body_pose)
    if layout == "joints":
        body_pose = body_pose.flatten(-2)
    elif layout in ("rotmat", "matrot"):
        from advprior.rotations import rotmat_to_axis_angle

        if layout == "matrot":
            body_pose = body_pose.unflatten(-1, (3, 3))
        body_pose = _check_rotations(body_pose, name)
        body_pose = rotmat_to_axis_angle(body_pose).flatten(-2)
    elif body_pose.shape[-1] not in sizes:
        want = f"(..., {sizes[0]}) or (..., {sizes[1]}) axis-angle"
        hint = _layout_hint(tuple(body_pose.shape))
        hint = f"; {hint}" if hint else ""
        raise ValueError(
            f"{name} must have shape {want}, (..., 21 | 23, 3) per joint or (..., 21 | 23, "
            f"3, 3) rotation matrices, got {tuple(body_pose.shape)}{hint}"
        )
    if finite and body_pose.numel() and not _all_finite(body_pose):
        raise ValueError(f"{name} contains NaN or Inf values")
    # matrices' logarithms are canonical (<= pi): only axis-angle can be in degrees
    if refuse_degrees and layout in ("flat", "joints"):
        from advprior.rotations import degrees_reason

        reason = degrees_reason(body_pose.unflatten(-1, (-1, 3)), name)
        if reason is not None:
            raise ValueError(reason)
    return body_pose


def _check_rotations(rotmat: torch.Tensor, name: str) -> torch.Tensor:
    """``rotmat (..., 3, 3)`` with every matrix off by more than rounding replaced by its nearest
    rotation (:func:`advprior.rotations.nearest_rotation`); ValueError unless every finite matrix
    is a rotation to :data:`ROTATION_TOLERANCE`. Not judged where values cannot be read (the
    meta device, inside ``torch.func.vmap``), as the finiteness check is; projected there too.

    Why project: the closed-form logarithm of a matrix off by ``e`` moves the rotation by about
    ``e`` (measured: 0.04 rad off the nearest rotation at ``max |R^T R - I| = 0.08``), in a
    direction that depends on the error, not on the rotation the matrix stands for."""
    if rotmat.numel() == 0 or rotmat.device.type == "meta":
        return rotmat
    from advprior.rotations import nearest_rotation

    with torch.no_grad():
        r = rotmat.detach().to(torch.float64 if rotmat.dtype == torch.float64 else torch.float32)
        eye = torch.eye(3, dtype=r.dtype, device=r.device)
        off = (r.transpose(-1, -2) @ r - eye).abs().amax((-1, -2))
        det = torch.linalg.det(r)
        bad = (off > ROTATION_TOLERANCE) | (det <= 0)  # NaN compares False: not judged here
        try:
            any_bad = bool(bad.any())
        except RuntimeError:  # vmap's "data-dependent control flow"
            any_bad = False
        if any_bad:
            raise ValueError(_not_rotations(rotmat, name, off, det, bad))
        # matrices orthonormal to rounding are kept bit for bit (a regressor's Gram-Schmidt
        # output, advprior's own decode)
        near = (off > 32 * torch.finfo(r.dtype).eps)[..., None, None]
        try:
            # the common case, every matrix a rotation to rounding, costs no projection
            # (~1 s for 2M matrices on one CPU thread)
            if not bool(near.any()):
                return rotmat
        except RuntimeError:  # vmap: project, the select keeps rotations as they are
            pass
    return torch.where(near, nearest_rotation(rotmat), rotmat)


def _not_rotations(
    rotmat: torch.Tensor, name: str, off: torch.Tensor, det: torch.Tensor, bad: torch.Tensor
) -> str:
    """The message for matrices of ``rotmat`` that are no rotations: how many, how far, which
    kind (reflections, scaled rotations, other) and what to do."""
    worst = float(torch.nan_to_num(off, nan=0.0).max())
    count = int(bad.sum())
    kinds = []
    mirrored = int(((det < 0) & bad).sum())
    if mirrored:
        kinds.append(
            f"{mirrored} are reflections (determinant < 0: mirrored data or a left-handed "
            "frame; no rotation is near them)"
        )
    sv = torch.linalg.svdvals(rotmat.detach().double()[bad & (det > 0)])
    scaled = int(((sv[:, 0] - sv[:, 2]) < 1e-3 * sv[:, 0]).sum()) if len(sv) else 0
    if scaled:
        kinds.append(
            f"{scaled} are rotations scaled by ~{float(sv[:, 0].mean()):.3g} (a scale or a "
            "unit applied to the matrix?)"
        )
    kinds = f" ({'; '.join(kinds)})" if kinds else ""
    return (
        f"{name} {tuple(rotmat.shape)} is read as rotation matrices, but {count} of "
        f"{off.numel()} are not rotations{kinds}: max |R^T R - I| = {worst:.3g}; up to "
        f"{ROTATION_TOLERANCE} a matrix is projected to its nearest rotation, beyond it (or with "
        "a determinant <= 0) it is refused. Orthonormalise them first if they are rotations, "
        "e.g. advprior.rotations.rot6d_to_rotmat(R[..., :2].flatten(-2))"
    )
