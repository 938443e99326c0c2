"""Retarget a source :class:`~advprior.data.motion.Motion` onto SMPL's skeleton.

Method (all steps vectorised over frames; the only Python loop is over SMPL's 24 joints):

1. Forward kinematics of the source: global rotations ``W_s(t)`` (relative to its rest pose) and
   joint positions ``P_s(t)``.
2. The source's world frame is turned into SMPL's (y up, x to the body's left, facing +z) by a
   fixed rotation found on its rest skeleton: up = hips centre to neck, left = right to left
   hip plus right to left shoulder; each snapped to the nearest coordinate axis when within 30
   degrees (capture worlds are axis-aligned, rest skeletons lean a little).
3. Every SMPL joint ``j`` gets a point on the source (:mod:`~advprior.data.naming`). For a
   joint with a child ``c``, a constant offset ``A_j`` maps SMPL's rest bone ``j -> c`` plus a
   reference direction (the body's forward axis, or its left axis for bones that point
   forward, e.g. the feet) onto the source's rest bone and the same reference, which carries the
   rest-pose difference (T-pose vs arms down, foot angle) and the twist. Then
   ``G_j(t) = S(t) W_d(t) A_j``, where ``W_d`` is the global rotation of the source joint that
   drives ``j`` and ``S(t)`` is the smallest rotation that puts SMPL's bone exactly on the
   source's current bone direction (it is the identity when the source bone is one rigid
   segment; it absorbs the differences of multi-segment and interpolated bones).
4. The pelvis uses the hip line as its bone; joints without a child (feet, head) take the
   source's rotation relative to their parent's driver; joints without a counterpart keep
   their parent's global rotation (identity local rotation).
5. Local rotations ``R_j = G_parent^T G_j``; the pelvis is placed so that the SMPL hip centre
   lands on the source hip centre.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from advprior.data import rotmath
from advprior.data.naming import SMPLMapping, map_to_smpl
from advprior.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS

if TYPE_CHECKING:
    # Motion.to_smpl calls retarget, which takes a Motion: the types refer to each other, the
    # modules do not (motion imports this module).
    from advprior.data.motion import Motion


@dataclass
class SMPLMotion:
    """A motion on SMPL's skeleton, SMPL's frame (y up, x to the body's left, facing +z), metres.

    Attributes:
        body_pose: ``(T, 63)`` axis-angle of SMPL joints 1..21, radians.
        global_orient: ``(T, 3)`` pelvis axis-angle, radians.
        transl: ``(T, 3)`` SMPL ``transl`` for zero shape (the pelvis lands at
            ``REST_JOINTS[0] + transl``), metres.
        source_joints: ``(T, 24, 3)`` source positions matching SMPL's joints, NaN where the
            source has no counterpart; spine1-3 are points along the source's spine chain.
        fps: frames per second.
        name: where the motion came from.
    """

    body_pose: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    source_joints: np.ndarray
    fps: float
    name: str = ""

    @property
    def num_frames(self) -> int:
        return int(self.body_pose.shape[0])


#: SMPL joint -> the child that defines its bone direction (pelvis uses the hip line).
BONE_CHILD = {
    1: 4,
    2: 5,
    3: 6,
    4: 7,
    5: 8,
    6: 9,
    7: 10,
    8: 11,
    9: 12,
    12: 15,
    13: 16,
    14: 17,
    16: 18,
    17: 19,
    18: 20,
    19: 21,
    20: 22,
    21: 23,
}
_AXIS_SNAP_DEG = 30.0


def _snap(v: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    v = v / np.linalg.norm(v)
    axes = np.concatenate([np.eye(3), -np.eye(3)])
    if exclude is not None:
        axes = axes[np.abs(axes @ exclude) < 0.5]
    best = axes[np.argmax(axes @ v)]
    if best @ v > np.cos(np.radians(_AXIS_SNAP_DEG)):
        return best
    return v


def source_frame(rest_points: np.ndarray) -> np.ndarray:
    """Rotation ``(3, 3)`` from the source world frame to SMPL's, from rest ``(24, 3)`` points."""
    hips = 0.5 * (rest_points[1] + rest_points[2])
    up = _snap(rest_points[12] - hips)
    left = (rest_points[1] - rest_points[2]) + (rest_points[16] - rest_points[17])
    left = left - (left @ up) * up
    if np.linalg.norm(left) < 1e-9:
        raise ValueError("left and right joints coincide at rest; cannot find the facing")
    left = _snap(left, exclude=up)
    left = left - (left @ up) * up
    left /= np.linalg.norm(left)
    forward = np.cross(left, up)
    return np.stack([left, up, forward])


def _source_frame(rest_points: np.ndarray, path: object) -> np.ndarray:
    """:func:`source_frame`, whose failure on a degenerate rest skeleton is the file's fault."""
    from advprior.errors import MotionFormatError

    try:
        return source_frame(rest_points)
    except ValueError as err:
        raise MotionFormatError(
            f"the rest pose is not a standing pose ({err}); retargeting needs a T-, A- or "
            "arms-down rest skeleton",
            path,
        ) from None


def mapped_points(pos: np.ndarray, m: SMPLMapping) -> np.ndarray:
    """SMPL joint points ``(..., 24, 3)`` from source positions ``(..., J, 3)``; NaN if unmapped."""
    a = np.where(m.a >= 0, m.a, 0)
    b = np.where(m.b >= 0, m.b, 0)
    w = m.alpha[:, None]
    out = (1.0 - w) * pos[..., a, :] + w * pos[..., b, :]
    out[..., m.a < 0, :] = np.nan
    return out


def _check_standing(rest: np.ndarray, path: object) -> None:
    """Refuse rest skeletons that are not a standing pose (legs down, neck up).

    The rest-pose offsets A_j and their twist references assume a T-, A- or arms-down pose;
    rigs whose rest is a flattened "star" (all bones along one local axis) would get limb
    twists off by up to 180 degrees, so they are rejected instead of silently mangled.
    """
    from advprior.errors import MotionFormatError

    for name, (a, b, sign) in {
        "left thigh": (1, 4, -1),
        "right thigh": (2, 5, -1),
        "left shin": (4, 7, -1),
        "right shin": (5, 8, -1),
        "spine": (0, 12, 1),
    }.items():
        d = rest[b] - rest[a]
        cos = sign * d[1] / max(float(np.linalg.norm(d)), 1e-12)
        if cos < 0.5:
            raise MotionFormatError(
                f"the rest pose is not a standing pose (the {name} is "
                f"{np.degrees(np.arccos(np.clip(cos, -1, 1))):.0f} degrees from "
                f"{'down' if sign < 0 else 'up'}); retargeting needs a T-, A- or arms-down "
                "rest skeleton",
                path,
            )


def _warn_unaligned_ends(m: SMPLMapping, path: object) -> None:
    """Warn for ankles whose bone has no end point on the source.

    Without a toe (or End Site) below the ankle there is no foot bone to align, so the ankle
    falls back to the source rotation relative to its parent (step 4 of the module docstring)
    and the source's rest foot angle stays in every frame (a CMU BVH with its foot End Sites
    removed: ankles off by up to 0.16 rad). Wrists are not warned about: a wrist without a hand
    below it (DeepMimic's fixed wrists) is rigid with the forearm, as SMPL's rest hand is.
    """
    from advprior.errors import RetargetWarning

    missing = [JOINT_NAMES[j] for j in (7, 8) if m.a[j] >= 0 and m.a[BONE_CHILD[j]] < 0]
    if missing:
        warnings.warn(
            RetargetWarning(
                f"{path}: no joint or End Site below {', '.join(missing)}; "
                "their rotations are copied relative to the knee without the rest-pose "
                "alignment, so they keep the source's rest foot angle"
            ),
            stacklevel=3,
        )


def _reference(d: np.ndarray) -> np.ndarray:
    d = d / np.linalg.norm(d)
    return np.array([1.0, 0, 0]) if abs(d[2]) > 0.7 else np.array([0, 0, 1.0])


def retarget(motion: Motion) -> SMPLMotion:
    """SMPL parameters for ``motion`` at its own frame rate (see the module docstring)."""
    if motion.is_smpl:
        return _copy_smpl(motion)
    sk = motion.skeleton
    m = map_to_smpl(sk, motion.path)
    rest_src = sk.rest_positions()
    frame = _source_frame(mapped_points(rest_src, m), motion.path)
    w_src, p_src = motion.global_transforms()
    w = frame @ w_src @ frame.T
    pts = mapped_points(p_src @ frame.T, m)
    rest = mapped_points(rest_src @ frame.T, m)
    _check_standing(rest, motion.path)
    _warn_unaligned_ends(m, motion.path)

    t = motion.num_frames
    g = np.empty((t, 24, 3, 3))
    for j in range(24):
        p = PARENTS[j]
        c = BONE_CHILD.get(j)
        if j == 0:
            bone = (1, 2)
        elif c is not None and m.a[j] >= 0 and m.a[c] >= 0:
            bone = (c, j)
        else:
            bone = None
        if bone is not None and np.linalg.norm(rest[bone[0]] - rest[bone[1]]) > 1e-6:
            d_smpl = REST_JOINTS[bone[0]] - REST_JOINTS[bone[1]]
            d_rest = rest[bone[0]] - rest[bone[1]]
            ref = _reference(d_smpl)
            offset = rotmath.frame_from(d_rest, ref) @ rotmath.frame_from(d_smpl, ref).T
            cand = w[:, m.driver[j]] @ offset
            now = cand @ d_smpl
            target = pts[:, bone[0]] - pts[:, bone[1]]
            degenerate = np.linalg.norm(target, axis=-1) < 1e-9
            target = np.where(degenerate[:, None], now, target)
            g[:, j] = rotmath.align_vectors(now, target) @ cand
        elif p >= 0 and m.driver[j] >= 0 and m.driver[p] >= 0:
            rel = w[:, m.driver[j]] @ np.swapaxes(w[:, m.driver[p]], -1, -2)
            g[:, j] = rel @ g[:, p]
        elif p >= 0:
            g[:, j] = g[:, p]
        else:
            g[:, j] = w[:, m.driver[0]]

    par = np.asarray(PARENTS[1:])
    local = np.swapaxes(g[:, par], -1, -2) @ g[:, 1:]
    body_pose = rotmath.matrix_to_rotvec(local[:, :21]).reshape(t, 63)
    hip_mid = 0.5 * (REST_JOINTS[1] + REST_JOINTS[2])
    pelvis = 0.5 * (pts[:, 1] + pts[:, 2]) + g[:, 0] @ (REST_JOINTS[0] - hip_mid)
    return SMPLMotion(
        body_pose=body_pose,
        global_orient=rotmath.matrix_to_rotvec(g[:, 0]),
        transl=pelvis - REST_JOINTS[0],
        source_joints=pts,
        fps=motion.fps,
        name=str(motion.path),
    )


def _copy_smpl(motion: Motion) -> SMPLMotion:
    t = motion.num_frames
    _, pos = motion.global_transforms()
    return SMPLMotion(
        body_pose=rotmath.matrix_to_rotvec(motion.rotations[:, 1:22]).reshape(t, 63),
        global_orient=rotmath.matrix_to_rotvec(motion.rotations[:, 0]),
        transl=motion.root_position - REST_JOINTS[0],
        source_joints=pos[:, :24],
        fps=motion.fps,
        name=str(motion.path),
    )


def source_positions(motion: Motion) -> np.ndarray:
    """All source joint positions ``(T, J, 3)`` in SMPL's frame (the frame :func:`retarget`
    uses), metres; parents are ``motion.skeleton.parents``. For pictures and checks."""
    if motion.is_smpl:
        return motion.global_transforms()[1]
    m = map_to_smpl(motion.skeleton, motion.path)
    frame = _source_frame(mapped_points(motion.skeleton.rest_positions(), m), motion.path)
    return motion.global_transforms()[1] @ frame.T
