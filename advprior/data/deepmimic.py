"""DeepMimic motion JSON (``{"Loop": ..., "Frames": [[dt, root pos, root quat, joints...]]}``).

Each frame is ``dt``, root position (3, metres), root quaternion, then per joint in character
order: a quaternion for spherical joints, one angle (radians) for revolute joints (about the
joint's z axis: knees and elbows), nothing for fixed joints. Quaternions are ``(w, x, y, z)``.
The character (``humanoid3d``: y up, facing +x, right side +z) comes from a
``*character*.txt`` file beside the motion or its parent folder, else the built-in
``humanoid3d`` defaults. The head and toes are not joints of that character; end sites are added
at the head and foot body centres' tips so SMPL's neck and ankles get directions.
"""

from __future__ import annotations

import codecs
import json
import warnings
from pathlib import Path

import numpy as np

from advprior.data import rotmath
from advprior.data.bvh import snap_rate
from advprior.data.motion import UTF8_BOM, Motion, Skeleton, check_expansion
from advprior.errors import MotionFormatError, RetargetWarning
from advprior.fileio import decode_text, read_regular_bytes

# (name, type, parent, attach xyz) of DeepMimic's humanoid3d character.
HUMANOID3D = (
    ("root", "none", -1, (0.0, 0.0, 0.0)),
    ("chest", "spherical", 0, (0.0, 0.236151, 0.0)),
    ("neck", "spherical", 1, (0.0, 0.223894, 0.0)),
    ("right_hip", "spherical", 0, (0.0, 0.0, 0.084887)),
    ("right_knee", "revolute", 3, (0.0, -0.421546, 0.0)),
    ("right_ankle", "spherical", 4, (0.0, -0.40987, 0.0)),
    ("right_shoulder", "spherical", 1, (-0.02405, 0.2435, 0.18311)),
    ("right_elbow", "revolute", 6, (0.0, -0.274788, 0.0)),
    ("right_wrist", "fixed", 7, (0.0, -0.258947, 0.0)),
    ("left_hip", "spherical", 0, (0.0, 0.0, -0.084887)),
    ("left_knee", "revolute", 9, (0.0, -0.421546, 0.0)),
    ("left_ankle", "spherical", 10, (0.0, -0.40987, 0.0)),
    ("left_shoulder", "spherical", 1, (-0.02405, 0.2435, -0.18311)),
    ("left_elbow", "revolute", 12, (0.0, -0.274788, 0.0)),
    ("left_wrist", "fixed", 13, (0.0, -0.258947, 0.0)),
)
# End sites: head top above the neck joint, toe tip in front of / below each ankle.
_END_SITES = {
    "neck": ("head", (0.0, 0.175, 0.0)),
    "right_ankle": ("right_toe", (0.13, -0.05, 0.0)),
    "left_ankle": ("left_toe", (0.13, -0.05, 0.0)),
}
_WIDTH = {"none": 7, "spherical": 4, "revolute": 1, "fixed": 0}


def is_deepmimic(path: Path) -> bool:
    """True when ``path`` is a JSON object with a ``"Frames"`` key (a UTF-8 byte-order mark and
    any keys before it allowed), read in chunks: the file is not parsed here."""
    key, tail = b'"Frames"', b""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
            if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                # PowerShell 5's UTF-16: the key's bytes differ, decode (such files are small)
                text = decode_text(head + f.read())
                return text.lstrip().startswith("{") and '"Frames"' in text
            if not head.removeprefix(UTF8_BOM).lstrip().startswith(b"{"):
                return False
            chunk = head
            while chunk:
                if key in tail + chunk:
                    return True
                tail = chunk[-(len(key) - 1) :]
                chunk = f.read(1 << 16)
    except (OSError, UnicodeDecodeError):
        return False
    return False


def _read_text(path: Path) -> str:
    """A JSON file's UTF-8 (or UTF-16 with its mark) text, a byte-order mark and a DOS
    end-of-file Ctrl-Z dropped; raises ``OSError`` or ``UnicodeDecodeError``."""
    return decode_text(read_regular_bytes(path)).rstrip("\x1a")


def find_character(path: Path) -> Path | None:
    for folder in (path.parent, path.parent.parent):
        for p in sorted(folder.glob("*character*.txt")):
            if p.is_file():  # a regular file (or a link to one), never a FIFO that blocks
                return p
    return None


def read_character(path: Path) -> tuple:
    """Joint table ``((name, type, parent, attach), ...)`` and end sites from a character file."""
    try:
        d = json.loads(_read_text(path))
        joints = d["Skeleton"]["Joints"]
        table = tuple(
            (
                j["Name"],
                j["Type"],
                int(j["Parent"]),
                (float(j["AttachX"]), float(j["AttachY"]), float(j["AttachZ"])),
                (
                    float(j.get("AttachThetaX", 0)),
                    float(j.get("AttachThetaY", 0)),
                    float(j.get("AttachThetaZ", 0)),
                ),
            )
            for j in sorted(joints, key=lambda j: j["ID"])
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError, OverflowError) as err:
        raise MotionFormatError(f"not a DeepMimic character file: {err}", path) from None
    _check_parents(table, joints, path)
    for name, _, _, attach, theta in table:
        if not np.isfinite(attach + theta).all():
            raise MotionFormatError(f"non-finite attach values of joint {name!r}", path)
    ends = dict(_END_SITES)
    bodies = d.get("BodyDefs", [])
    if not isinstance(bodies, list) or not all(isinstance(b, dict) for b in bodies):
        raise MotionFormatError(
            f"'BodyDefs' must be a list of objects, got {type(bodies).__name__}", path
        )
    for b in bodies:
        name = b.get("Name")
        try:
            if name == "neck":
                ends["neck"] = ("head", (0.0, 2 * float(b["AttachY"]), 0.0))
            elif name in ("right_ankle", "left_ankle") and b.get("Shape") == "box":
                tip = (
                    float(b["AttachX"]) + 0.5 * float(b["Param0"]),
                    float(b["AttachY"]) - 0.5 * float(b["Param1"]),
                    0.0,
                )
                ends[name] = (name.replace("ankle", "toe"), tip)
        except (KeyError, TypeError, ValueError):
            continue
    return table, ends


def _check_parents(table: tuple, joints: list, path: Path) -> None:
    """Joint ``ID`` s are ``0..J-1`` and every ``Parent`` is an earlier joint, ``-1`` for the one
    root: the parents index the table, and a joint that is its own (or a later joint's) child
    would send the retargeting's walk up the tree round in a loop."""
    ids = sorted(j["ID"] for j in joints)
    if ids != list(range(len(joints))) or not all(type(i) is int for i in ids):
        raise MotionFormatError(
            f"joint IDs must be 0..{len(joints) - 1}, each once, got {ids[:20]}", path
        )
    for k, (name, _, parent, _, _) in enumerate(table):
        if k == 0 and parent != -1:
            raise MotionFormatError(f"joint 0 ({name!r}) must be the root (Parent -1)", path)
        if k > 0 and not 0 <= parent < k:
            raise MotionFormatError(
                f"joint {k} ({name!r}) has Parent {parent}: must be an earlier joint's ID "
                f"(0..{k - 1}); only joint 0 is the root",
                path,
            )


def read_deepmimic(
    path: str | Path, *, skeleton: str | Path | None = None, fps: float | None = None
) -> Motion:
    """Parse a DeepMimic motion file into a normal-form :class:`Motion`."""
    path = Path(path)
    char = Path(skeleton) if skeleton is not None else find_character(path)
    if char is not None:
        table, ends = read_character(char)
    else:
        table = tuple(row + ((0.0, 0.0, 0.0),) for row in HUMANOID3D)
        ends = dict(_END_SITES)
    try:
        text = _read_text(path)
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise MotionFormatError(f"invalid JSON: {err.msg}", path, err.lineno) from None
    except UnicodeDecodeError as err:
        raise MotionFormatError(f"not UTF-8 text ({err.reason})", path) from None
    except RecursionError:
        raise MotionFormatError("invalid JSON: nested too deeply", path) from None
    except OSError as err:
        raise MotionFormatError(f"cannot read: {err}", path) from None
    frames = doc.get("Frames") if isinstance(doc, dict) else None
    if not isinstance(frames, list) or not frames:
        raise MotionFormatError("no 'Frames' list (not a DeepMimic motion file)", path, 1)
    width = 1 + sum(_WIDTH.get(t, -1000) for _, t, *_ in table)
    try:
        data = np.asarray(frames, dtype=np.float64)
    except (ValueError, TypeError):
        data = None
    if data is None or data.ndim != 2 or data.shape[1] != width:
        lines = _frame_lines(text)
        for i, f in enumerate(frames):
            if not isinstance(f, list) or len(f) != width:
                n = len(f) if isinstance(f, list) else 0
                raise MotionFormatError(
                    f"frame {i} has {n} numbers, expected {width} for the character",
                    path,
                    lines[i] if i < len(lines) else None,
                )
        raise MotionFormatError("frames are not numeric", path)
    # Python's JSON reader accepts NaN and Infinity; a motion must not hold them
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if len(bad):
        lines = _frame_lines(text)
        i = int(bad[0])
        col = int(np.flatnonzero(~np.isfinite(data[i]))[0])
        raise MotionFormatError(
            f"non-finite value {data[i, col]} in frame {i} (number {col + 1} of {width})",
            path,
            lines[i] if i < len(lines) else None,
        )

    names, parents, offsets, is_end, kinds, thetas = [], [], [], [], [], []
    for name, kind, parent, attach, theta in table:
        if kind not in _WIDTH:
            raise MotionFormatError(f"unsupported joint type {kind!r} of {name!r}", char)
        names.append(name)
        parents.append(parent)
        offsets.append(attach)
        is_end.append(False)
        kinds.append(kind)
        thetas.append(theta)
    for parent_name, (end_name, tip) in ends.items():
        if parent_name in names:
            names.append(end_name)
            parents.append(names.index(parent_name))
            offsets.append(tip)
            is_end.append(True)
            kinds.append("fixed")
            thetas.append((0.0, 0.0, 0.0))

    t, j = data.shape[0], len(names)
    check_expansion(t, j, path)
    rot = np.broadcast_to(np.eye(3), (t, j, 3, 3)).copy()
    col = 1
    root_pos = np.zeros((t, 3))
    for k, kind in enumerate(kinds[: len(table)]):
        if kind == "none":
            root_pos = data[:, col : col + 3]
            rot[:, k] = _quat(data[:, col + 3 : col + 7], path)
        elif kind == "spherical":
            rot[:, k] = _quat(data[:, col : col + 4], path)
        elif kind == "revolute":
            rot[:, k] = rotmath.axis_rotation("z", data[:, col])
        if any(thetas[k]) and kind != "none":
            # Attach angles rotate the joint frame (x first, then y, then z).
            frame = rotmath.euler_matrix(np.asarray(thetas[k])[::-1], "zyx")
            rot[:, k] = frame @ rot[:, k] @ frame.T
        col += _WIDTH[kind]
    # a frame's dt is the time to the next frame: the last one's leads nowhere (DeepMimic
    # writes 0 there), and in a two-frame file it would halve the median
    steps = data[:-1, 0] if t > 1 else data[:, 0]
    dt = float(np.median(steps))
    if fps is None:
        if dt <= 0:
            raise MotionFormatError("frame durations must be positive (or pass fps=)", path)
        if not np.isfinite(1.0 / dt):  # a subnormal such as 3e-320
            raise MotionFormatError(
                f"frame durations of {dt:g} s are too short (or pass fps=)", path
            )
        fps = snap_rate(1.0 / dt)
        if np.ptp(steps) > 0.01 * dt:
            # frames unevenly spaced in time (dropped or merged frames): a Motion is evenly
            # sampled, so they are read at the median step, and said to be
            warnings.warn(
                RetargetWarning(
                    f"{path}: frame durations vary from {steps.min():.4g} to {steps.max():.4g} "
                    f"s; the frames are read evenly spaced at the median, {fps:g} fps"
                ),
                stacklevel=3,
            )
    sk = Skeleton(
        names=tuple(names),
        parents=np.asarray(parents),
        offsets=np.asarray(offsets, dtype=np.float64),
        is_end=np.asarray(is_end),
    )
    return Motion(
        skeleton=sk,
        rotations=rot,
        root_position=root_pos,
        fps=float(fps),
        path=str(path),
        format="deepmimic",
        meta={"character": str(char) if char else "built-in humanoid3d"},
    )


def _quat(wxyz: np.ndarray, path: Path) -> np.ndarray:
    bad = np.flatnonzero(~(np.linalg.norm(wxyz, axis=-1) > 1e-8))
    if len(bad):
        raise MotionFormatError(f"zero or NaN quaternion in frame {bad[0]}", path)
    return rotmath.quat_to_matrix(wxyz[:, [1, 2, 3, 0]])


def _frame_lines(text: str) -> list[int]:
    """Line number of each frame's opening bracket (frames are the nested lists)."""
    out, depth = [], 0
    line = 1
    for ch in text:
        if ch == "\n":
            line += 1
        elif ch == "[":
            depth += 1
            if depth == 2:
                out.append(line)
        elif ch == "]":
            depth -= 1
    return out
