"""Retarget a source :class:`~advprior.data.motion.Motion` onto SMPL's skeleton.

Method (all steps vectorised over frames; the only Python loop is over SMPL's 24 joints):

0. A rest skeleton that is not a standing pose (LAFAN1's, every bone along its parent's +x) is
   replaced by the pose of the motion's straightest standing frame (:func:`standing_rest`);
   its twist references in step 3 are then the parent's rest alignment (the pelvis's: its own
   spine), since that rest is a pose, not a stance facing the world's axes.
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
   With ``torso="rest"`` the torso chain (spine1, spine2, spine3, neck) is the exception: its
   offset is one rotation for the whole chain, mapping SMPL's pelvis-to-neck line onto the
   source's, so that the source's rest torso is SMPL's rest torso (zero spine, neck and head
   rotations) and ``S(t)`` takes SMPL's bone by the source bone's own change since its rest.
   Rigs place their spine and neck joints elsewhere than SMPL (mostly on a straight line
   at rest, where SMPL's rest spine curves 26 degrees forward, 11 back, 38 forward):
   aligning each torso bone (``torso="bones"``, build v5) straightens SMPL's spine at every
   frame, with about -0.45 / +0.55 / -0.9 rad on spine2 / spine3 / neck for an upright source
   and the head tilted back by ~40 degrees relative to the pelvis (docs/data.md).
   The collars and ankles have the same kind of rest-pose disagreement, and ``torso="rest"``
   takes them at the source's rest too (their offset is their parent's): rigs' collar joints
   sit elsewhere than SMPL's (the CMU BVH's Daz rig's high beside the neck, its collar bone 30
   degrees below SMPL's, so every frame got SMPL's collars dropped by ~34 degrees and the
   shoulders raised back) and their toe and ankle joints at other heights (the foot bone's
   rest slope 7-36 degrees down, SMPL's 21-25), and the ASF rigs' rest legs are splayed 20
   degrees with flat feet, which bone alignment turned into SMPL's feet rolled ~20 degrees in
   every standing frame. Their rigs' rests are neutral for these joints (T-poses standing on
   flat feet, collars that never move from their rest in these captures). Limbs keep bone
   alignment: a rest can be an A-pose or splayed legs, which is not SMPL's rest.
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
#: How SMPL's torso chain meets the source's at rest (module docstring, step 3).
TORSO_MODES = ("bones", "rest")
#: SMPL's torso chain: spine1, spine2, spine3, neck (the joints with a bone to a torso child).
_TORSO_CHAIN = (3, 6, 9, 12)
#: Joints that ``torso="rest"`` also takes at the source's rest: the ankles (rigs put the ankle
#: and toe joints at other heights than SMPL, so the foot bone's rest slope ranges from 7 to 36
#: degrees down where SMPL's is 21-25) and the collars (rigs' collar bones point 12 degrees
#: down to 27 up where SMPL's points 18 up). Their rest offset is their parent's, so that the
#: source's rest foot and collar are SMPL's rest foot and collar (docs/data.md).
_REST_CHILDREN = (7, 8, 13, 14)


def _snap(v: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    v = v / np.linalg.norm(v)
    axes = np.concatenate([np.eye(3), -np.eye(3)])
    if exclude is not None:
        axes = axes[np.abs(axes @ exclude) < 0.5]
    best = axes[np.argmax(axes @ v)]
    if best @ v > np.cos(np.radians(_AXIS_SNAP_DEG)):
        return best
    return v


def source_frame(rest_points: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """Rotation ``(3, 3)`` from the source world frame to SMPL's, from rest ``(24, 3)`` points.

    ``up``: the world's up axis (unit), when known from the motion (a rest skeleton calibrated on
    a frame, see :func:`standing_rest`); else hips centre to neck, snapped to an axis."""
    hips = 0.5 * (rest_points[1] + rest_points[2])
    up = _snap(rest_points[12] - hips) if up is None else up / np.linalg.norm(up)
    left = (rest_points[1] - rest_points[2]) + (rest_points[16] - rest_points[17])
    left = left - (left @ up) * up
    if np.linalg.norm(left) < 1e-9:
        raise ValueError("left and right joints coincide at rest; cannot find the facing")
    left = _snap(left, exclude=up)
    left = left - (left @ up) * up
    left /= np.linalg.norm(left)
    forward = np.cross(left, up)
    return np.stack([left, up, forward])


def mapped_points(pos: np.ndarray, m: SMPLMapping) -> np.ndarray:
    """SMPL joint points ``(..., 24, 3)`` from source positions ``(..., J, 3)``; NaN if unmapped."""
    a = np.where(m.a >= 0, m.a, 0)
    b = np.where(m.b >= 0, m.b, 0)
    w = m.alpha[:, None]
    out = (1.0 - w) * pos[..., a, :] + w * pos[..., b, :]
    out[..., m.a < 0, :] = np.nan
    return out


#: (name, a, b, sign): the source's bone ``a -> b`` must point within 60 degrees of ``sign`` *
#: up for a pose to be standing (legs down, spine up).
_STANDING = (
    ("left thigh", 1, 4, -1),
    ("right thigh", 2, 5, -1),
    ("left shin", 4, 7, -1),
    ("right shin", 5, 8, -1),
    ("spine", 0, 12, 1),
)
_STANDING_COS = 0.5
#: candidate world up axes for a calibration frame, in the order ties are broken (BVH's y first)
_UP_AXES = np.array(
    [[0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0], [-1.0, 0, 0]]
)


def _not_standing(rest_points: np.ndarray, up: np.ndarray | None = None) -> str | None:
    """Why the rest points ``(24, 3)`` (source world) are not a standing pose, or ``None``;
    ``up`` as for :func:`source_frame`.

    The rest-pose offsets A_j and their twist references assume a T-, A- or arms-down pose;
    a rest that is not one (LAFAN1's flattened "star", every bone along its parent's +x) would
    get limb twists off by up to 180 degrees, so :func:`standing_rest` calibrates on a frame.
    """
    try:
        frame = source_frame(rest_points, up)
    except ValueError as err:
        return str(err)
    rest = rest_points @ frame.T
    for name, a, b, sign in _STANDING:
        d = rest[b] - rest[a]
        cos = sign * d[1] / max(float(np.linalg.norm(d)), 1e-12)
        if cos < _STANDING_COS:
            return (
                f"the {name} is {np.degrees(np.arccos(np.clip(cos, -1, 1))):.0f} degrees from "
                f"{'down' if sign < 0 else 'up'}"
            )
    return None


def _standing_axes(motion: Motion, m: SMPLMapping) -> list[tuple[int, int, np.ndarray]]:
    """``(standing frames, straightest frame, up axis)`` for each axis of :data:`_UP_AXES` under
    which a frame stands (see :func:`_standing_frame`), most standing frames first (of equal
    counts, the first axis in :data:`_UP_AXES`' order)."""
    _, pos = motion.global_transforms()
    pts = mapped_points(pos, m)
    d = np.stack([s * (pts[:, b] - pts[:, a]) for _, a, b, s in _STANDING], axis=1)
    d /= np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)
    hips, shoulders = pts[:, 1] - pts[:, 2], pts[:, 16] - pts[:, 17]
    spine = np.linalg.norm(pts[:, 12] - pts[:, 0], axis=-1)
    found = []  # (standing frames, straightest frame, axis) per axis with any
    for axis in _UP_AXES:
        cos = d @ axis  # (T, 5)
        flat_h = hips - (hips @ axis)[:, None] * axis
        flat_s = shoulders - (shoulders @ axis)[:, None] * axis
        # the facing is measurable: hips and shoulders each at least a tenth of the spine apart
        # across the up axis, and on the same side (a torso turned by under 90 degrees)
        apart = (np.linalg.norm(flat_h, axis=-1) > 0.1 * spine) & (
            np.linalg.norm(flat_s, axis=-1) > 0.1 * spine
        )
        ok = np.all(cos >= _STANDING_COS, axis=1) & apart & (np.sum(flat_h * flat_s, -1) > 0)
        if ok.any():
            score = np.where(ok, cos.mean(axis=1), -np.inf)
            found.append((int(ok.sum()), int(np.argmax(score)), axis))
    # stable: of equal counts the first axis in _UP_AXES' order wins
    found.sort(key=lambda f: -f[0])
    return found


def _standing_frame(
    motion: Motion, m: SMPLMapping
) -> tuple[int, np.ndarray, tuple[np.ndarray, int, int] | None] | None:
    """The frame to calibrate on, the world's up axis and the runner-up ``(axis, its standing
    frames, the chosen axis's)`` (``None`` when no other axis has a standing frame), or
    ``None`` if no frame stands.

    A frame stands when, with one coordinate axis as up, both thighs and shins point within 60
    degrees of down and the pelvis-to-neck line within 60 degrees of up, and its hips and
    shoulders are apart across the up axis and on the same side. The up axis is the one under
    which most frames stand (a fall seen from the floor does not turn the world over); of its
    standing frames, the one whose five bones are closest to vertical on average (the straightest
    stance; the first of equals).
    """
    found = _standing_axes(motion, m)
    if not found:
        return None
    n, t0, axis = found[0]
    return t0, axis, ((found[1][2], found[1][0], n) if len(found) > 1 else None)


def standing_rest(motion: Motion) -> Motion:
    """``motion`` itself when its rest skeleton is a standing pose; else the same motion with
    the pose of a standing frame as its rest (:meth:`Motion.with_rest_from_frame`, the frame in
    ``meta["rest_frame"]`` and the world's up axis in ``meta["world_up"]``), with a
    :class:`~advprior.errors.RetargetWarning` naming the frame.

    The twists held in that frame count as no twist: each SMPL joint's rest alignment there is
    the smallest rotation of SMPL's bone onto the frame's bone relative to the parent's, so a
    forearm pronated by 20 degrees in that frame is 20 degrees less pronated in every frame.

    Raises:
        MotionFormatError: no frame stands (see :func:`_standing_frame`), naming the file.
    """
    from advprior.errors import MotionFormatError, RetargetWarning

    if motion.is_smpl:
        return motion
    m = map_to_smpl(motion.skeleton, motion.path)
    # a rest calibrated here is judged against the up axis it was chosen under, as retarget
    # uses it: the spine snapped to an axis is another up for a frame leaning over 45 degrees
    up = motion.meta.get("world_up")
    rest = mapped_points(motion.skeleton.rest_positions(), m)
    why = _not_standing(rest, None if up is None else np.asarray(up, dtype=float))
    if why is None:
        return motion
    if "rest_frame" in motion.meta:  # a rest already taken from a frame, by the caller
        raise MotionFormatError(
            f"the rest pose (frame {motion.meta['rest_frame']}) is not a standing pose ({why})",
            motion.path,
        )
    if motion.meta.get("up_given"):
        # the caller's up axis (read_bvh's up=): calibrate on a frame standing along it only
        axis = np.asarray(motion.meta["world_up"], dtype=float)
        along = [f for f in _standing_axes(motion, m) if np.allclose(f[2], axis)]
        if not along:
            raise MotionFormatError(
                f"up={_axis_name(axis)} was given, but the rest pose does not stand along it "
                f"({why}) and no frame of the motion does either",
                motion.path,
            )
        found = (along[0][1], along[0][2], None)
    else:
        found = _standing_frame(motion, m)
    if found is None:
        raise MotionFormatError(
            f"the rest pose is not a standing pose ({why}) and no frame of the motion is one "
            "either (thighs and shins within 60 degrees of down, spine within 60 degrees of "
            "up); retargeting needs a T-, A- or arms-down rest skeleton or a standing frame",
            motion.path,
        )
    t0, up, runner_up = found
    out = motion.with_rest_from_frame(t0)
    out.meta["world_up"] = [float(x) for x in up]

    def named(axis: np.ndarray) -> str:
        k = int(np.argmax(np.abs(axis)))
        return ("-" if axis[k] < 0 else "+") + "xyz"[k]

    # A body lying with straight legs "stands" with its head's direction as up: when frames
    # stand under two axes, the one with more frames is taken, and the user is told, since a
    # clip that lies along one axis for most of its length is then read turned by 90 degrees.
    other = (
        f"; frames stand with up {named(runner_up[0])} too ({runner_up[1]} frames, against "
        f"{runner_up[2]} with up {named(up)}, the axis taken): if the body lies more than it "
        "stands, check the result"
        if runner_up is not None
        else ""
    )
    warnings.warn(
        RetargetWarning(
            f"{motion.path}: the rest pose is not a standing pose ({why}); calibrated on "
            f"frame {t0} (counted from 0, {t0 / motion.fps:.3f} s), whose pose is taken as the "
            f"rest: twists held in that frame count as none{other}"
        ),
        stacklevel=3,
    )
    return out


#: Frames sampled (evenly) by :func:`_warn_turned_world`: enough to see where the body stands.
_TURNED_SAMPLE = 64


def _axis_name(axis: np.ndarray) -> str:
    k = int(np.argmax(np.abs(axis)))
    return ("-" if axis[k] < 0 else "+") + "xyz"[k]


def _warn_turned_world(motion: Motion, m: SMPLMapping) -> None:
    """Warn when the rest skeleton stands along one axis and the frames along another, none of
    them along the rest's.

    Some exporters bake a turn of the world (Blender's z-up armature into y-up, an FBX unit or
    axis conversion) into the root's channels but not into the rest offsets: the rest stands
    along +z, every frame along +y. The retarget takes the world's up from the rest (a frame
    cannot tell a person lying through a whole clip from a turned world), so such a motion comes
    out lying: its body pose is right, its global orientation and path turned by the world's
    turn. Checked on up to :data:`_TURNED_SAMPLE` frames."""
    from dataclasses import replace

    from advprior.errors import RetargetWarning

    up_row = _frame_of(motion, m)[1]  # the rest's up, snapped to an axis unless it leans
    rest_up = _UP_AXES[int(np.argmax(_UP_AXES @ up_row))]
    t = motion.num_frames
    idx = np.unique(np.linspace(0, t - 1, min(t, _TURNED_SAMPLE)).round().astype(int))
    lt = motion.local_translations
    sample = replace(
        motion,
        rotations=motion.rotations[idx],
        root_position=motion.root_position[idx],
        local_translations=None if lt is None else lt[idx],
    )
    found = _standing_axes(sample, m)
    # any frame standing along the rest's up: a clip that lies more than it stands, not a turn
    if not found or any(np.allclose(axis, rest_up) for _, _, axis in found):
        return
    n, _, up = found[0]
    if 2 * n < len(idx):  # a few frames that happen to "stand" lying down are no turned world
        return
    angle = np.degrees(np.arccos(np.clip(float(up @ rest_up), -1.0, 1.0)))
    warnings.warn(
        RetargetWarning(
            f"{motion.path}: the rest skeleton stands along {_axis_name(rest_up)} but the "
            f"motion along {_axis_name(up)} ({n} of {len(idx)} frames sampled; none along "
            f"{_axis_name(rest_up)}): either the exporter turned the world in the root's "
            "channels but not in the rest offsets, or the body lies (or stands on its hands) "
            "through the whole clip. The world's up is taken from the rest, so in the first "
            f"case the SMPL motion lies turned by {angle:.0f} degrees (its body pose is not "
            f'affected): load it with up="{_axis_name(up).lstrip("+")}" (advprior data build: '
            f"--up GLOB={_axis_name(up).lstrip('+')}) to stand it up"
        ),
        stacklevel=3,
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


def check_torso(torso: str) -> str:
    """``torso`` if it is one of :data:`TORSO_MODES`, else a ValueError naming them."""
    if torso not in TORSO_MODES:
        raise ValueError(f"torso must be one of {', '.join(TORSO_MODES)}, got {torso!r}")
    return torso


def retarget(motion: Motion, torso: str = "bones") -> SMPLMotion:
    """SMPL parameters for ``motion`` at its own frame rate (see the module docstring).

    Args:
        torso: ``"bones"`` (each SMPL torso bone laid on the source's: build v5, the data of
            the 0.2.0 weights) or ``"rest"`` (the source's rest torso, collars and feet are
            SMPL's rest torso, collars and feet; module docstring, step 3). SMPL-family input
            is copied either way.
    """
    check_torso(torso)
    if motion.is_smpl:
        return _copy_smpl(motion)
    motion = standing_rest(motion)
    sk = motion.skeleton
    m = map_to_smpl(sk, motion.path)
    rest_src = sk.rest_positions()
    frame = _frame_of(motion, m)
    w_src, p_src = motion.global_transforms()
    w = frame @ w_src @ frame.T
    pts = mapped_points(p_src @ frame.T, m)
    rest = mapped_points(rest_src @ frame.T, m)
    _warn_unaligned_ends(m, motion.path)
    if "world_up" not in motion.meta:  # a rest that stands: does the motion stand the same way?
        _warn_turned_world(motion, m)
    # A rest taken from a frame of the motion is a pose, not a neutral stance: its twist
    # references are measured from the parent's rest alignment (and the pelvis's from its own
    # spine), so that a bone's twist at rest is its parent's, not the world's (an arm raised
    # forward and a torso turned by 40 degrees would otherwise gain that turn as twist).
    posed_rest = "rest_frame" in motion.meta

    chain = None  # SMPL's and the source's rest pelvis-to-neck lines (torso="rest")
    chain_offset = None
    if torso == "rest" and m.a[0] >= 0 and m.a[12] >= 0:
        if np.linalg.norm(rest[12] - rest[0]) > 1e-6:
            chain = (REST_JOINTS[12] - REST_JOINTS[0], rest[12] - rest[0])
    t = motion.num_frames
    g = np.empty((t, 24, 3, 3))
    g_rest = np.empty((24, 3, 3))  # each SMPL joint's global rotation at the source's rest
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
            whole_chain = chain is not None and j in _TORSO_CHAIN
            at_rest = torso == "rest" and j in _REST_CHILDREN
            if whole_chain and chain_offset is not None:
                offset = chain_offset  # one offset for the chain: no rest angle between its joints
            elif at_rest:
                offset = g_rest[p]  # no rest angle to the parent: the source's rest is SMPL's
            else:
                # the chain's offset maps SMPL's pelvis-neck line, not a bone, onto the source's
                a_smpl, a_rest = chain if whole_chain else (d_smpl, d_rest)
                ref_smpl = ref_rest = _reference(a_smpl)
                if posed_rest and j == 0:
                    ref_smpl, ref_rest = REST_JOINTS[3] - REST_JOINTS[0], rest[3] - rest[0]
                elif posed_rest:
                    ref_rest = g_rest[p] @ ref_smpl
                offset = (
                    rotmath.frame_from(a_rest, ref_rest) @ rotmath.frame_from(a_smpl, ref_smpl).T
                )
                if whole_chain:
                    chain_offset = offset
            g_rest[j] = offset
            cand = w[:, m.driver[j]] @ offset
            # where the source bone would point moved rigidly with its driver (for an aligned
            # bone this is cand @ d_smpl; the chain's, collars' and ankles' SMPL bones under
            # torso="rest" keep their own rest angles)
            now = w[:, m.driver[j]] @ d_rest if whole_chain or at_rest else cand @ d_smpl
            target = pts[:, bone[0]] - pts[:, bone[1]]
            degenerate = np.linalg.norm(target, axis=-1) < 1e-9
            target = np.where(degenerate[:, None], now, target)
            g[:, j] = rotmath.align_vectors(now, target) @ cand
        elif p >= 0 and m.driver[j] >= 0 and m.driver[p] >= 0:
            rel = w[:, m.driver[j]] @ np.swapaxes(w[:, m.driver[p]], -1, -2)
            g[:, j] = rel @ g[:, p]
            g_rest[j] = g_rest[p]
        elif p >= 0:
            g[:, j] = g[:, p]
            g_rest[j] = g_rest[p]
        else:
            g[:, j] = w[:, m.driver[0]]
            g_rest[j] = np.eye(3)

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
    motion = standing_rest(motion)
    m = map_to_smpl(motion.skeleton, motion.path)
    return motion.global_transforms()[1] @ _frame_of(motion, m).T


def _frame_of(motion: Motion, m: SMPLMapping) -> np.ndarray:
    """:func:`source_frame` of a motion whose rest stands (after :func:`standing_rest`)."""
    up = motion.meta.get("world_up")
    rest = mapped_points(motion.skeleton.rest_positions(), m)
    return source_frame(rest, up=None if up is None else np.asarray(up, dtype=float))
