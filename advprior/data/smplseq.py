"""SMPL-parameter sequences outside AMASS's npz: 3DPW and AIST++ pickles, Motion-X and plain
SMPL-family ``.npy`` pose arrays.

Layouts (from the datasets' own readers and documentation):

- **3DPW** ``sequenceFiles/{train,validation,test}/*.pkl``: a Python 2 pickle of a dict with
  ``poses`` (a list, one ``(T, 72)`` array per person), ``trans`` (a list of ``(T, 3)``),
  ``betas``, ``genders``, ``sequence``, ``campose_valid`` (per person), ``cam_poses``,
  ``poses_60Hz`` ... ``poses`` and ``trans`` are at 30 fps (the image rate), in 3DPW's y-up
  world; ``poses_60Hz`` (the IMU rate) is not read. One or two people per file.
- **AIST++** ``motions/*.pkl``: a dict with ``smpl_poses (T, 72)``, ``smpl_trans (T, 3)`` and
  ``smpl_scaling (1,)`` at 60 fps, y-up; ``smpl_trans / smpl_scaling`` is in metres.
- **Motion-X** ``motion_data/smplx_322/**/*.npy``: ``(T, 322)`` SMPL-X rows, root_orient 0:3,
  pose_body 3:66, pose_hand 66:156, pose_jaw 156:159, face_expr 159:209, face_shape 209:309,
  trans 309:312, betas 312:322; y-up (Motion-X turns AMASS's z-up into it).
- plain ``.npy`` pose arrays, by the rule an AMASS npz's ``poses`` is read with
  (:func:`advprior.data.amass.pose_columns`): ``(T, 72 | 156 | 165)``, the body alone
  ``(T, 66)``, or per joint ``(T, 22 | 24 | 52 | 55, 3)``; joint positions of those shapes
  (HumanML3D's ``new_joints``) are refused. No translation, taken as y-up unless ``up=`` says
  otherwise.

An ``.npy`` carries no frame rate (Motion-X's subsets differ: its HumanML3D part is at 20 fps),
so ``fps=`` is required, as for an AMASS npz without ``mocap_frame_rate``.

Pickles are read only through :class:`advprior.body.files.SafeUnpickler` (numpy arrays,
numbers, strings, lists, dicts and inert chumpy stand-ins): a pickle that names any other global
(``os.system``, ``builtins.eval``, a class of the tool that wrote it) is refused with
:class:`~advprior.errors.MotionFormatError` naming the file and the global, before anything from
it runs. ``.npy`` files are read with ``allow_pickle=False``.

After reading, the body's up axis (the pelvis's +y, SMPL's rest up) is averaged over the frames;
when it is more than 60 degrees from the up the file's world was read with, a
:class:`~advprior.errors.RetargetWarning` names the axis it points along and the ``up=`` that
would stand it up (a file in another world frame, e.g. a camera's y-down one).
"""

from __future__ import annotations

import functools
import math
import os
import pickletools
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from advprior.data.amass import (
    RATE_KEYS,
    WORLD_TO_Y_UP,
    _check_finite,
    pose_columns,
    pose_shape_reason,
    smpl_motion,
)
from advprior.data.motion import Motion
from advprior.data.npz import read_npy_header
from advprior.data.positions import joint_positions_reason
from advprior.errors import MotionFormatError, RetargetWarning, UnsafeFileError

#: Frame rates the datasets document (3DPW's ``poses``: the image rate; AIST++: 60 Hz).
THREEDPW_FPS = 30.0
AIST_FPS = 60.0
#: Motion-X's SMPL-X rows: the one ``.npy`` width read besides the SMPL-family pose arrays that
#: an AMASS npz's ``poses`` may hold (:func:`advprior.data.amass.pose_shape_reason`).
MOTION_X_WIDTH = 322
_JOINTS = (24, 52, 55)
#: Keys that make a pickle a motion this module reads (3DPW's, AIST++'s).
_PICKLE_KEYS = ({"poses", "trans"}, {"smpl_poses", "smpl_trans"})
_UPRIGHT_DEG = 60.0


@functools.cache
def _unpickler() -> type:
    from advprior.body.files import SafeUnpickler

    class MotionUnpickler(SafeUnpickler):
        holds = (
            "a motion pickle may hold only numpy arrays, numbers, strings, lists and dicts "
            "(and chumpy arrays)"
        )

    return MotionUnpickler


def read_pickle(path: str | Path) -> dict[str, Any]:
    """The dict a 3DPW / AIST++ style pickle holds, unpickled through the allow-list unpickler
    (latin-1 for Python 2's strings).

    Raises:
        MotionFormatError: a refused global (named), a damaged pickle, or not a dict.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = _unpickler()(fh, encoding="latin1").load()
    except UnsafeFileError as err:
        raise MotionFormatError(str(err), path) from None
    except OSError:
        raise
    except Exception as err:  # every way a damaged or crafted pickle can fail to parse
        raise MotionFormatError(
            f"cannot unpickle ({type(err).__name__}: {str(err)[:300]}; truncated or not a pickle?)",
            path,
        ) from None
    if not isinstance(data, dict):
        raise MotionFormatError(
            f"the pickle holds a {type(data).__name__}, not a dict of SMPL parameters", path
        )
    return {str(k): v for k, v in data.items()}


def people_in(path: str | Path) -> int:
    """How many people a 3DPW-style pickle lists (``len(poses)``); 1 for any other file, or one
    that cannot be read. Asked only after reading a person failed, so that the file's other
    people are still imported (and a failure is reported per person)."""
    path = Path(path)
    if path.suffix.lower() != ".pkl":
        return 1
    try:
        data = read_pickle(path)
    except (MotionFormatError, OSError):
        return 1
    poses = data.get("poses") if "smpl_poses" not in data else None
    return len(poses) if isinstance(poses, (list, tuple)) and poses else 1


def pickle_strings(path: str | Path, limit: int = 64) -> set[str] | None:
    """The short strings (up to ``limit`` characters) a pickle holds, found by walking its
    opcodes (``pickletools``: nothing is built or run); None when it is not a readable pickle.
    Used to tell a motion pickle from others (a body model file) without unpickling it."""
    found: set[str] = set()
    try:
        with open(path, "rb") as fh:
            for op, arg, _ in pickletools.genops(fh):
                if isinstance(arg, (str, bytes)) and len(arg) <= limit and "STRING" in op.name:
                    found.add(arg.decode("latin-1") if isinstance(arg, bytes) else arg)
                elif isinstance(arg, str) and len(arg) <= limit and "UNICODE" in op.name:
                    found.add(arg)
    except (ValueError, OSError, EOFError, UnicodeDecodeError, MemoryError, OverflowError):
        # MemoryError: an opcode declaring 2**50 bytes, which genops asks the file for at once
        return None
    return found


def is_motion_pickle(path: str | Path) -> bool | None:
    """True: a 3DPW or AIST++ layout; False: another pickle; None: not a readable pickle."""
    strings = pickle_strings(path)
    if strings is None:
        return None
    return any(keys <= strings for keys in _PICKLE_KEYS)


def _describe(value: Any) -> str:
    name = getattr(value, "chumpy_name", None)
    if name is not None:
        return f"a chumpy object ({name})"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} ({value.dtype})"
    return f"a {type(value).__name__}"


def _real(value: Any, key: str, path: Path) -> np.ndarray:
    """``value`` as a float64 array; only real numeric numpy arrays are taken."""
    # by kind: numpy counts timedelta64 as a number (an integer subtype)
    ok = isinstance(value, np.ndarray) and value.dtype.kind in "biuf"
    if not ok:
        raise MotionFormatError(f"'{key}' must be a numeric array, got {_describe(value)}", path)
    return value.astype(np.float64)


def _pose66(poses: np.ndarray, key: str, path: Path, widths: tuple[int, ...]) -> np.ndarray:
    """``(T, 66)``: root and body columns of a pose array ``(T, W)`` or ``(T, J, 3)``."""
    if poses.ndim == 3 and poses.shape[1] in _JOINTS and poses.shape[2] == 3:
        poses = poses.reshape(poses.shape[0], -1)
    if poses.ndim != 2 or poses.shape[1] not in widths:
        allowed = ", ".join(f"(T, {w})" for w in widths)
        raise MotionFormatError(
            f"'{key}' must be {allowed} or per joint (T, 24 | 52 | 55, 3), got {poses.shape}",
            path,
        )
    if poses.shape[0] == 0:
        raise MotionFormatError(f"'{key}' has no frames (shape {poses.shape})", path)
    _check_finite(key, poses, path)
    return poses[:, :66]


def _check_person(person: int | None, people: int, path: Path) -> int:
    k = 0 if person is None else person
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < people:
        held = "one person" if people == 1 else f"{people} people (person=0..{people - 1})"
        raise MotionFormatError(f"person={person!r} asked for, but the file holds {held}", path)
    return int(k)


def _upright(motion: Motion, up: str) -> Motion:
    """Warn (:class:`RetargetWarning`) when the body does not stand in the frame read."""
    body_up = motion.rotations[:, 0, :, 1].mean(axis=0)  # the pelvis's +y, SMPL's rest up
    norm = float(np.linalg.norm(body_up))
    cos = body_up[1] / norm if norm > 1e-9 else -1.0
    if cos >= math.cos(math.radians(_UPRIGHT_DEG)):
        return motion
    # the same direction in the file's own world, and the up that would stand it up
    own = WORLD_TO_Y_UP[up].T @ body_up if norm > 1e-9 else body_up
    axis = int(np.argmax(np.abs(own)))
    name = ("-" if own[axis] < 0 else "+") + "xyz"[axis]
    fits = {"+y": "y", "+z": "z", "-y": "-y"}.get(name)
    hint = f"pass up={fits!r}" if fits else "turn the file's world into a y-up one"
    angle = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
    warnings.warn(
        RetargetWarning(
            f"{motion.path}: read as a {up}-up world, the body's up axis is {angle:.0f} degrees "
            f"from up on average (along the file's {name} axis): if the file's world is not "
            f"{up}-up, {hint}"
        ),
        stacklevel=3,
    )
    return motion


def _check_up(up: str | None) -> str:
    """``up`` checked; ``None`` is ``"y"`` (3DPW's, AIST++'s and Motion-X's worlds are y-up)."""
    up = "y" if up is None else up
    if up not in WORLD_TO_Y_UP:
        raise ValueError(f"up must be one of {', '.join(map(repr, WORLD_TO_Y_UP))}, got {up!r}")
    return up


def read_smpl_pickle(
    path: str | Path,
    *,
    fps: float | None = None,
    person: int | None = None,
    up: str | None = None,
) -> Motion:
    """Read a 3DPW sequence file or an AIST++ motion pickle (see the module docstring).

    Args:
        path: the ``.pkl``.
        fps: override the dataset's rate (3DPW 30, AIST++ 60).
        person: which person of a 3DPW file (0 = the first, the default); the count is in
            ``Motion.meta["people"]``. Single-person files take only 0.
        up: the file's world up axis (``"y"``, ``"z"``, ``"-y"``); default ``"y"``.

    Raises:
        MotionFormatError: refused, damaged, or another layout (names file and key).
    """
    path = Path(path)
    data = read_pickle(path)
    up = _check_up(up)
    if "smpl_poses" in data:
        return _aist(data, path, fps=fps, person=person, up=up)
    if "poses" in data and not isinstance(data["poses"], (list, tuple)):
        _refuse_amass_layout(data, path)
    if "poses" in data:
        return _threedpw(data, path, fps=fps, person=person, up=up)
    raise MotionFormatError(
        f"no 'poses' (3DPW) or 'smpl_poses' (AIST++) in the pickle (keys: "
        f"{', '.join(sorted(data)) or 'none'}); not a motion this reader knows",
        path,
    )


def _refuse_amass_layout(data: dict[str, Any], path: Path) -> None:
    """Refuse AMASS's layout pickled (one ``poses`` array, its frame rate key), naming it: read
    as 3DPW's (a list per person) it would only say that ``poses`` is not a list. An AMASS
    dict is read from an ``.npz``, whose frame rate and z-up world that reader knows."""
    rate = [k for k in RATE_KEYS if k in data]
    if rate:
        raise MotionFormatError(
            f"an AMASS-style dict ('poses' {_describe(data['poses'])}, {rate[0]!r}) pickled: "
            "AMASS motions are read from .npz files (their z-up world and rate): save it with "
            "numpy.savez('motion.npz', **data) and load that",
            path,
        )


def _aist(
    data: dict[str, Any], path: Path, *, fps: float | None, person: int | None, up: str
) -> Motion:
    _check_person(person, 1, path)
    poses = _pose66(_real(data["smpl_poses"], "smpl_poses", path), "smpl_poses", path, (72,))
    if "smpl_trans" not in data:
        raise MotionFormatError("'smpl_poses' without 'smpl_trans' (AIST++ has both)", path)
    trans = _real(data["smpl_trans"], "smpl_trans", path)
    scaling = 1.0
    if "smpl_scaling" in data:
        value = data["smpl_scaling"]
        if isinstance(value, (int, float, np.generic)) and not isinstance(value, bool):
            value = np.asarray(value)
        arr = _real(value, "smpl_scaling", path)
        if arr.size != 1 or not np.isfinite(arr).all() or float(arr.reshape(-1)[0]) <= 0:
            raise MotionFormatError(
                f"'smpl_scaling' must be one positive number, got {arr.reshape(-1)[:4]} "
                f"(shape {arr.shape})",
                path,
            )
        scaling = float(arr.reshape(-1)[0])
    if trans.shape == (poses.shape[0], 3):
        _check_finite("smpl_trans", trans, path)
        # AIST++ fits SMPL at this scale: the body is scaled about the origin, so metres are
        # the translation divided by it
        trans = trans / scaling
    else:
        raise MotionFormatError(
            f"'smpl_trans' must be ({poses.shape[0]}, 3) like 'smpl_poses', got {trans.shape}",
            path,
        )
    motion = smpl_motion(
        poses,
        trans,
        AIST_FPS if fps is None else fps,
        up=up,
        path=path,
        key="smpl_poses",
        format="aist++",
        meta={"people": 1, "person": 0, "smpl_scaling": scaling},
    )
    return _upright(motion, up)


def _person_list(data: dict[str, Any], key: str, path: Path) -> list:
    value = data[key]
    if not isinstance(value, (list, tuple)) or not value:
        raise MotionFormatError(
            f"'{key}' must be a list with one array per person (3DPW), got {_describe(value)}",
            path,
        )
    return list(value)


def _threedpw(
    data: dict[str, Any], path: Path, *, fps: float | None, person: int | None, up: str
) -> Motion:
    poses_all = _person_list(data, "poses", path)
    people = len(poses_all)
    k = _check_person(person, people, path)
    key = f"poses[{k}]"
    poses = _pose66(_real(poses_all[k], key, path), key, path, (72,))
    trans = None
    if "trans" in data:
        trans_all = _person_list(data, "trans", path)
        if len(trans_all) != people:
            raise MotionFormatError(
                f"'poses' lists {people} people but 'trans' {len(trans_all)}", path
            )
        trans = _real(trans_all[k], f"trans[{k}]", path)
        if trans.shape != (poses.shape[0], 3):
            raise MotionFormatError(
                f"'trans[{k}]' must be ({poses.shape[0]}, 3) like 'poses[{k}]', got {trans.shape}",
                path,
            )
        _check_finite(f"trans[{k}]", trans, path)
    meta: dict[str, Any] = {"people": people, "person": k}
    sequence = data.get("sequence")
    if isinstance(sequence, str):
        meta["sequence"] = sequence
    genders = data.get("genders")
    if isinstance(genders, (list, tuple)) and len(genders) == people:
        if isinstance(genders[k], str):
            meta["gender"] = genders[k]
    valid = data.get("campose_valid")
    if isinstance(valid, (list, tuple)) and len(valid) == people:
        flags = valid[k]
        if isinstance(flags, np.ndarray) and flags.shape == (poses.shape[0],):
            # the camera alignment, not the IMU poses: every frame is read, the count kept
            meta["campose_invalid_frames"] = int((~flags.astype(bool)).sum())
    motion = smpl_motion(
        poses,
        trans,
        THREEDPW_FPS if fps is None else fps,
        up=up,
        path=path,
        key=key,
        format="3dpw",
        meta=meta,
    )
    return _upright(motion, up)


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an ``.npy``, from its header, checked against the file's size (a tiny
    file may declare a huge array) and refused when it holds Python objects."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            shape, dtype, header_end = read_npy_header(fh, size)
    except (ValueError, EOFError, SyntaxError) as err:
        raise MotionFormatError(f"not a readable .npy array ({err})", path) from None
    if dtype.hasobject:
        raise MotionFormatError(
            f"the array holds Python objects ({dtype}); only plain numeric arrays are read "
            "(an object array is a pickle)",
            path,
        )
    need = math.prod(shape) * dtype.itemsize
    have = size - header_end
    if need > have:
        raise MotionFormatError(
            f"the header declares shape {shape} of {dtype} ({need} bytes) but the file holds "
            f"{have} bytes (truncated or crafted)",
            path,
        )
    return shape, dtype


def npy_pose_shape(path: str | Path) -> str | None:
    """Why the ``.npy`` is not a pose array this module reads, from its header; None when it
    is one, or when its header cannot be read (a damaged file, for the reader to report)."""
    try:
        shape, dtype = _npy_header(Path(path))
    except (MotionFormatError, OSError):
        return None
    motion_x = len(shape) == 2 and shape[1] == MOTION_X_WIDTH
    if not motion_x and pose_shape_reason(shape) is not None:
        return (
            f"npy of shape {shape}, not SMPL-family poses (T, 66 | 72 | 156 | 165 | 322 "
            "or per joint)"
        )
    if not motion_x:
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError):
            return None  # the reader reports it
        why = joint_positions_reason(arr) if arr.dtype.kind in "fiu" else None
        if why is not None:
            return f"npy of shape {shape} that {why}"
    return None


def read_smpl_npy(
    path: str | Path,
    *,
    fps: float | None = None,
    person: int | None = None,
    up: str | None = None,
) -> Motion:
    """Read a Motion-X ``(T, 322)`` or plain SMPL-family pose ``.npy`` (module docstring).

    Args:
        fps: the sequence's frame rate: required, an ``.npy`` holds none.
        person: only 0 (one person per array).
        up: the array's world up axis (``"y"``, ``"z"``, ``"-y"``); default ``"y"``.

    Raises:
        MotionFormatError: another shape, object or damaged array, no ``fps`` (names the file).
    """
    path = Path(path)
    up = _check_up(up)
    _check_person(person, 1, path)
    _npy_header(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as err:
        raise MotionFormatError(f"cannot read npy: {err}", path) from None
    arr = _real(arr, "array", path)
    trans = None
    if arr.ndim == 2 and arr.shape[1] == MOTION_X_WIDTH:
        trans = arr[:, 309:312]
        _check_finite("trans (columns 309:312)", trans, path)
        poses = _pose66(arr[:, :66], "array", path, (66,))
        kind = "motion-x"
    else:
        # the npz reader's rule for 'poses' (widths, per joint, joint positions refused)
        poses = pose_columns(arr, "array", path, what="the array")
        kind = "npy"
    if fps is None:
        raise MotionFormatError(
            "an .npy holds no frame rate: pass fps= (advprior data build: --source-fps "
            "GLOB=FPS, or a readme.txt line '<folder> framerate <fps>')",
            path,
        )
    motion = smpl_motion(
        poses, trans, fps, up=up, path=path, key="array", format=kind, meta={"people": 1}
    )
    return _upright(motion, up)
