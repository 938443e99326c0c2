"""AMASS-style ``.npz``: SMPL-H ``poses (T, 156)`` or SMPL-X ``poses (T, 165)``, ``trans (T, 3)``,
``betas``, ``mocap_framerate`` (or ``mocap_frame_rate``, or HuMoR's ``fps``).

The same layout from other tools is read too: SMPL's ``poses (T, 72)``, the body alone without
hands ``(T, 66)`` (SMPL-X tools, HumanML3D-style pipelines), poses stored per joint
``(T, 22 | 24 | 52 | 55, 3)``, and files with only the split arrays ``pose_body (T, 63)`` (+
``root_orient (T, 3)``, zero when absent) that AMASS's SMPL-X release and VPoser's prepared data
carry. When both are present, ``poses`` is read (AMASS stores the same numbers in both). A
``poses`` array that holds joint positions (22 joints x 3 is also ``(T, 66)``) is refused by
:func:`advprior.data.positions.joint_positions_reason`, not read as rotations.

Already SMPL: columns 0:3 are the root orientation and 3:66 the 21 body joints. AMASS stores
motion in a z-up world; it is rotated into SMPL's y-up frame by ``R = Rx(-90 deg)``
(``(x, y, z) -> (x, z, -y)``): ``global_orient' = R global_orient`` and, because SMPL rotates
about the pelvis, ``transl' = R (J0 + transl) - J0`` with ``J0`` the neutral rest pelvis (shape
is ignored, a few millimetres).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from advprior.data import rotmath
from advprior.data.motion import Motion, Skeleton
from advprior.data.npz import read_npz_array
from advprior.data.positions import joint_positions_reason
from advprior.errors import MotionFormatError
from advprior.fileio import check_zip_members
from advprior.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS, rest_offsets

Z_UP_TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])

#: The world rotation into SMPL's y-up frame for each up axis a file may use: AMASS's z-up
#: (``Rx(-90 deg)``), 3DPW's, AIST++'s and Motion-X's y-up (none), and a camera frame's y-down
#: (OpenCV: x right, y down, z forward; ``Rx(180 deg)``).
WORLD_TO_Y_UP = {
    "z": Z_UP_TO_Y_UP,
    "y": np.eye(3),
    "-y": np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]]),
}


#: The frame rate's keys, first found read: AMASS's SMPL-H and SMPL-X releases, then ``fps`` of
#: the AMASS-derived files of HuMoR's ``process_amass_data.py`` (``pose_body``, ``root_orient``,
#: ``trans`` in AMASS's z-up world).
RATE_KEYS = ("mocap_framerate", "mocap_frame_rate", "fps")

#: ``poses`` widths (joints x 3) of the SMPL family: SMPL, SMPL-H, SMPL-X, and the body alone
#: (root + 21 body joints, no hands: SMPL-X/SMPL-H tools and HumanML3D-style pipelines write it).
POSE_WIDTHS = {72: "SMPL", 156: "SMPL-H", 165: "SMPL-X", 66: "SMPL-X/SMPL-H body"}
#: The same per joint ``(T, J, 3)``: 24, 52, 55 and 22 joints.
POSE_JOINTS = tuple(w // 3 for w in POSE_WIDTHS)


def is_amass(path: Path) -> bool:
    """True when the ``.npz`` holds a ``poses`` or ``pose_body`` array (a motion, not a shape
    file)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (OSError, EOFError, ValueError, zipfile.BadZipFile):
        return False
    return bool(names & {"poses.npy", "pose_body.npy"})


def _not_zip_reason(path: Path) -> str:
    """What a file named ``.npz`` that is not a zip archive looks like, from its first bytes:
    a pickle or an ``.npy`` saved under the wrong suffix say so (and what to do), anything else
    is a truncated or damaged download."""
    try:
        with path.open("rb") as fh:
            head = fh.read(6)
    except OSError:
        head = b""
    if head.startswith(b"\x93NUMPY"):
        return "it is a single .npy array: rename it .npy to read it as one"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        # np.save(..., allow_pickle=True) of a dict, or an SMPL .pkl renamed: never unpickled
        return (
            "it is a Python pickle, which is never unpickled from an .npz: a 3DPW/AIST++-style "
            "SMPL .pkl renamed .npz reads (without running its code) as .pkl; else save the "
            "arrays with numpy.savez"
        )
    return "not a zip file: truncated or damaged?"


def _check_finite(key: str, arr: np.ndarray, path: Path) -> None:
    rows = arr.reshape(arr.shape[0], -1)
    bad = np.argwhere(~np.isfinite(rows))
    if len(bad):
        frame, col = (int(x) for x in bad[0])
        value = rows[frame, col]
        raise MotionFormatError(
            f"non-finite value {value} in '{key}' at frame {frame}, column {col}", path
        )


def _check_radians(poses: np.ndarray, key: str, path: Path) -> None:
    """Refuse SMPL poses ``(T, 66)`` whose body joints (columns 3:66) are in degrees, as BVH and
    other mocap tools write angles (:func:`advprior.rotations.degrees_reason`). The root
    orientation (columns 0:3) is not judged: an unwrapped spin is long in radians too."""
    import torch

    from advprior.rotations import degrees_reason

    body = torch.from_numpy(np.ascontiguousarray(poses[:, 3:66])).reshape(-1, 21, 3)
    reason = degrees_reason(body, f"'{key}'", noun="frames")
    if reason is not None:
        if "deg2rad" in reason:  # not for values too long for degrees too
            reason += (
                " (e.g. np.savez(out, poses=np.deg2rad(poses), ...) for the whole array, the "
                "root orientation included)"
            )
        raise MotionFormatError(reason, path)


def _check_trans(trans: np.ndarray | None, t: int, path: Path) -> None:
    if trans is None:
        return
    if trans.shape != (t, 3):
        raise MotionFormatError(f"'trans' must be ({t}, 3), got {trans.shape}", path)
    _check_finite("trans", trans, path)


def _object_members(f: np.lib.npyio.NpzFile) -> list[str]:
    """Names of the members that hold pickled Python objects (read from their headers only)."""
    found = []
    for key in f.files:
        member = key if key in f.zip.namelist() else f"{key}.npy"
        try:
            with f.zip.open(member) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    dtype = np.lib.format.read_array_header_1_0(fh)[2]
                else:
                    dtype = np.lib.format.read_array_header_2_0(fh)[2]
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, SyntaxError):
            continue
        if dtype.hasobject:
            found.append(key)
    return found


def _array(f: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """``f[key]`` as float64, read by :func:`read_npz_array` (a member that is not an ``.npy``,
    or declares more data than it holds, is refused before it is read)."""
    arr = read_npz_array(f, key, lambda message: MotionFormatError(message, path))
    # by kind: numpy counts timedelta64 as a number (an integer subtype)
    if arr.dtype.kind not in "biuf":
        raise MotionFormatError(f"'{key}' must hold real numbers, got {arr.dtype}", path)
    return arr.astype(np.float64)


def _pose_columns(f: np.lib.npyio.NpzFile, path: Path) -> np.ndarray:
    """``(T, 66)``: root orientation then the 21 body joints, from ``poses`` or the split
    ``root_orient`` / ``pose_body`` arrays."""
    if "poses" in f.files:
        return pose_columns(_array(f, "poses", path), "poses", path)
    if "pose_body" not in f.files:
        pickled = _object_members(f)
        why = (
            f"; {', '.join(map(repr, pickled))} hold pickled Python objects (nested dicts, as "
            "GRAB's and EgoBody's npz files store their SMPL-X parameters), which are never "
            "unpickled from an npz: save the arrays as plain members (poses or root_orient + "
            "pose_body, trans, mocap_frame_rate)"
            if pickled
            else "; not an AMASS motion"
        )
        raise MotionFormatError(
            f"no 'poses' or 'pose_body' array (keys: {', '.join(f.files)}){why}", path
        )
    body = _array(f, "pose_body", path)
    if body.ndim == 3 and body.shape[1:] == (21, 3):
        body = body.reshape(body.shape[0], 63)
    if body.ndim != 2 or body.shape[1] != 63:
        raise MotionFormatError(f"'pose_body' must be (T, 63), got {body.shape}", path)
    if body.shape[0] == 0:
        raise MotionFormatError(f"'pose_body' has no frames (shape {body.shape})", path)
    _check_finite("pose_body", body, path)
    if "root_orient" in f.files:
        root = _array(f, "root_orient", path)
        if root.shape != (body.shape[0], 3):
            raise MotionFormatError(
                f"'root_orient' must be ({body.shape[0]}, 3) like 'pose_body', got {root.shape}",
                path,
            )
        _check_finite("root_orient", root, path)
    else:
        root = np.zeros((body.shape[0], 3))
    return np.concatenate([root, body], axis=1)


def pose_shape_reason(shape: tuple[int, ...]) -> str | None:
    """Why an array of ``shape`` is not an SMPL-family pose array (:data:`POSE_WIDTHS` per row,
    or :data:`POSE_JOINTS` per joint), or None when it is one (frames not counted): the rule
    both the npz ``poses`` reader and the ``.npy`` reader (and its build-time check, from the
    header alone) apply."""
    per_joint = len(shape) == 3 and shape[1] in POSE_JOINTS and shape[2] == 3
    if per_joint or (len(shape) == 2 and shape[1] in POSE_WIDTHS):
        return None
    if len(shape) == 3 and shape[2] == 3:  # per joint: named as the row it would make
        shape = (shape[0], 3 * shape[1])
    return (
        "must be (T, 72) SMPL, (T, 156) SMPL-H, (T, 165) SMPL-X or (T, 66) root + body (or per "
        f"joint (T, {' | '.join(map(str, sorted(POSE_JOINTS)))}, 3)), got {tuple(shape)}"
    )


def pose_columns(poses: np.ndarray, key: str, path: Path, what: str | None = None) -> np.ndarray:
    """``(T, 66)``, the root then the 21 body joints, of an SMPL-family pose array (a real
    float array): one of :func:`pose_shape_reason`'s shapes, with frames, finite, and not joint
    positions (``(T, 66)`` and ``(T, 22, 3)`` are also 22 joints' positions: HumanML3D's
    ``new_joints``, a body model's first 22 ``Jtr``; read as rotations they would import
    silently as another motion). ``key`` names the array in messages, ``what`` (default
    ``'key'``) where they begin with it. Whether the angles are radians is :func:`smpl_motion`'s
    check."""
    what = what or f"'{key}'"
    shape = poses.shape
    if poses.ndim >= 1 and poses.shape[0] > 0:
        _check_finite(key, poses, path)
    why = pose_shape_reason(shape)
    if why is not None:
        raise MotionFormatError(f"{what} {why}", path)
    if shape[0] == 0:
        raise MotionFormatError(f"{what} has no frames (shape {shape})", path)
    why = joint_positions_reason(poses)
    if why is not None:
        raise MotionFormatError(f"{what} of shape {shape} {why}", path)
    return poses.reshape(shape[0], -1)[:, :66]


def _rate(value: np.ndarray, key: str, path: Path) -> float:
    """A frame rate stored as a scalar or as any one-element array (``(1,)`` is common)."""
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "biuf":  # not complex, timedelta64, text
        raise MotionFormatError(
            f"'{key}' must be one number, got an array of shape {arr.shape} ({arr.dtype})", path
        )
    return float(arr.reshape(-1)[0])


def read_amass(
    path: str | Path, *, fps: float | None = None, z_up: bool = True, up: str | None = None
) -> Motion:
    """Read an AMASS ``.npz`` into a :class:`Motion` on SMPL's own skeleton (``is_smpl``).

    ``up``: the file's world up axis (``"z"``, ``"y"`` or ``"-y"``, see
    :data:`WORLD_TO_Y_UP`); None: ``"z"`` (AMASS's, and BEDLAM's that follows it), or ``"y"``
    when ``z_up`` is False."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        # np.load would take any other bytes for a pickle and say so, which misleads
        raise MotionFormatError(f"not an npz archive ({_not_zip_reason(path)})", path)
    try:
        check_zip_members(path, "AMASS npz")
    except ValueError as err:  # a zip bomb: the message names the file and the member
        refused = MotionFormatError(str(err))
        refused.path = path
        raise refused from None
    try:
        with np.load(path, allow_pickle=False) as f:
            pose_key = "poses" if "poses" in f.files else "pose_body"
            poses = _pose_columns(f, path)
            trans = _array(f, "trans", path) if "trans" in f.files else None
            rate = rate_key = None
            for key in RATE_KEYS:
                if key in f.files:
                    value = read_npz_array(f, key, lambda m: MotionFormatError(m, path))
                    rate, rate_key = _rate(value, key, path), key
                    break
    except MotionFormatError:
        raise  # already names the file and the array (it is a ValueError too)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise MotionFormatError(f"cannot read npz: {err}", path) from None
    _check_trans(trans, poses.shape[0], path)
    if fps is None and rate is None:
        raise MotionFormatError(f"no {' / '.join(RATE_KEYS)}; pass fps=", path)
    if fps is None and not (np.isfinite(rate) and rate > 0):
        raise MotionFormatError(
            f"'{rate_key}' is {rate}, not a positive frame rate; pass fps=", path
        )
    fps = fps if fps is not None else rate
    if not (np.isfinite(fps) and fps > 0):
        raise MotionFormatError(f"fps must be a positive number, got {fps}", path)
    if up is None:
        up = "z" if z_up else "y"
    return smpl_motion(poses, trans, fps, up=up, path=path, key=pose_key, format="amass")


def smpl_motion(
    poses: np.ndarray,
    trans: np.ndarray | None,
    fps: float,
    *,
    up: str,
    path: Path,
    key: str,
    format: str,
    meta: dict | None = None,
) -> Motion:
    """A :class:`Motion` on SMPL's own skeleton (``is_smpl``) from SMPL parameters.

    Args:
        poses: ``(T, 66)`` axis-angle, radians: the root orientation then the 21 body joints
            (columns 0:66 of any SMPL-family pose vector), checked finite by the caller.
        trans: ``(T, 3)`` root translation, metres (None: zero).
        fps: the sequence's frame rate.
        up: the file's world up axis, a key of :data:`WORLD_TO_Y_UP`; the world is rotated
            into SMPL's y-up frame by that rotation R: ``global_orient' = R global_orient``,
            ``pelvis' = R (J0 + trans)`` (SMPL rotates about the pelvis J0).
        path, key: the file and the pose array's name, for messages.
        format: ``Motion.format``.
    """
    if up not in WORLD_TO_Y_UP:
        raise ValueError(f"up must be one of {', '.join(map(repr, WORLD_TO_Y_UP))}, got {up!r}")
    t = poses.shape[0]
    if trans is None:
        trans = np.zeros((t, 3))
    _check_trans(trans, t, path)
    rot = np.broadcast_to(np.eye(3), (t, 24, 3, 3)).copy()
    # finite angles beyond ~1e154 overflow the conversion's squared norm into NaN matrices:
    # refused (with the frame) below rather than warned about here
    with np.errstate(over="ignore", invalid="ignore"):
        rot[:, :22] = rotmath.rotvec_to_matrix(poses[:, :66].reshape(t, 22, 3))
    bad = np.flatnonzero(~np.isfinite(rot).all(axis=(1, 2, 3)))
    if len(bad):
        raise MotionFormatError(
            f"'{key}' at frame {bad[0]} holds rotation angles too large to convert "
            f"(largest |value| {np.abs(poses[bad[0]]).max():.3g} rad)",
            path,
        )
    _check_radians(poses, key, path)
    pelvis = REST_JOINTS[0] + trans
    if up != "y":  # y-up needs no rotation (and gets none: its numbers are copied exactly)
        world = WORLD_TO_Y_UP[up]
        rot[:, 0] = world @ rot[:, 0]
        pelvis = pelvis @ world.T
    sk = Skeleton(
        names=JOINT_NAMES,
        parents=np.asarray(PARENTS),
        offsets=rest_offsets(),
        is_end=np.zeros(24, dtype=bool),
    )
    return Motion(
        skeleton=sk,
        rotations=rot,
        root_position=pelvis,
        fps=float(fps),
        path=str(path),
        format=format,
        is_smpl=True,
        meta=dict(meta or {}),
    )
