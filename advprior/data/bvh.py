"""BVH reader: any hierarchy, any channel order, 6-channel non-root joints, End Sites, tabs/CRLF,
keywords in any case; of several ROOT trees (a prop beside the character) the largest is read.

Conventions: a joint's rotation channels multiply in listed order (``Zrotation Xrotation
Yrotation`` is ``Rz Rx Ry`` on column vectors); position channels replace the joint's OFFSET
(for the root they are its world position). Units are declared with ``units=`` ("m", "cm",
"mm", "inch", or "asf" for CMU's 1/0.45-inch unit) or detected from the rest skeleton as the
unit that makes hip-to-ankle length closest to 0.85 m. ``Frame Time`` can be overridden with
``fps=`` (some conversions write a wrong one). A ``Frames:`` count that disagrees with the frame
lines (an off-by-one or stale header) is read as the lines, with a ``RetargetWarning``.
Numbers written with decimal commas (locale-formatted exports) are read as such, and so is a
header key without its colon or with ``=`` (``Frame Time= 0.033``, ``Frame Time 0.033``).
"""

from __future__ import annotations

import math
import re
import warnings
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from advprior.data import rotmath
from advprior.data.motion import Motion, Skeleton, check_expansion, read_motion_text
from advprior.errors import MotionFormatError, RetargetWarning

UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "asf": 0.0254 / 0.45}
_TYPICAL_LEG_M = 0.85
_LEG_RANGE_M = (0.3, 1.05)


class _Tokens:
    def __init__(self, text: str, path: Path) -> None:
        self.items: list[tuple[str, int]] = []
        self.path = path
        for num, line in enumerate(text.splitlines(), 1):
            self.items.extend((tok, num) for tok in line.split())
        self.i = 0

    def next(self, what: str) -> tuple[str, int]:
        if self.i >= len(self.items):
            last = self.items[-1][1] if self.items else 1
            raise MotionFormatError(f"unexpected end of file, expected {what}", self.path, last)
        tok = self.items[self.i]
        self.i += 1
        return tok

    def expect(self, word: str) -> int:
        tok, num = self.next(word)
        if tok.upper() != word.upper():
            raise MotionFormatError(f"expected {word!r}, found {tok!r}", self.path, num)
        return num

    def number(self, what: str) -> float:
        tok, num = self.next(what)
        try:
            value = float(tok)
        except ValueError:
            raise MotionFormatError(
                f"expected a number ({what}), found {tok!r}", self.path, num
            ) from None
        if not np.isfinite(value):
            raise MotionFormatError(f"non-finite {what} {tok!r}", self.path, num)
        return value


#: Longest ``Frame Time`` (seconds) read as one: motion capture and animation run at 10-1000 fps.
MAX_FRAME_TIME = 1.0


#: ``up=`` values of :func:`read_bvh`: the file's world up axis.
UP_AXES = {
    "x": [1.0, 0.0, 0.0],
    "y": [0.0, 1.0, 0.0],
    "z": [0.0, 0.0, 1.0],
    "-x": [-1.0, 0.0, 0.0],
    "-y": [0.0, -1.0, 0.0],
    "-z": [0.0, 0.0, -1.0],
}


def read_bvh(
    path: str | Path, *, fps: float | None = None, units: str | None = None, up: str | None = None
) -> Motion:
    """Parse a BVH file into a normal-form :class:`Motion`.

    ``up``: the world's up axis in the file (a key of :data:`UP_AXES`), for a file whose rest
    skeleton stands along another axis than its frames (an exporter that turned the world in the
    root's channels only); None: the rest skeleton's own up, as retargeting finds it. With
    ``up`` given and a rest that does not stand along it, retargeting calibrates on a frame that
    does (see :func:`advprior.data.retarget.standing_rest`)."""
    path = Path(path)
    if up is not None and up not in UP_AXES:
        raise ValueError(f"up must be one of {', '.join(map(repr, UP_AXES))}, got {up!r}")
    world_up = up  # (the parser below reuses the name ``up`` for keywords)
    try:
        text = read_motion_text(path)
    except OSError as err:
        raise MotionFormatError(f"cannot read BVH: {err}", path) from None
    text = _decimal_points(text)
    # keywords in any case: some exporters write ``motion`` / ``Motion``
    found = re.search(r"^[ \t]*MOTION[ \t]*\r?$", text, re.M | re.I)
    head = text[: found.start()] if found else text
    if not found:
        raise MotionFormatError(
            "no MOTION section (truncated or not a BVH file)", path, text.count("\n") + 1
        )
    tokens = _Tokens(head, path)
    tokens.expect("HIERARCHY")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    is_end: list[bool] = []
    channels: list[list[str]] = []
    stack: list[int] = []
    kind, num = tokens.next("ROOT")
    if kind.upper() != "ROOT":
        raise MotionFormatError(f"expected ROOT, found {kind!r}", path, num)
    pending = ("ROOT", num)
    roots: list[int] = []  # first joint of each ROOT tree (a prop or camera can be its own root)
    while True:
        if pending is None:
            if tokens.i >= len(tokens.items):
                break
            kind, num = tokens.next("JOINT, End Site or }")
        else:
            kind, num = pending
            pending = None
        up = kind.upper()
        if (up == "ROOT") != (not stack) and up in ("ROOT", "JOINT", "END", "}"):
            where = "inside a joint block" if stack else "outside a ROOT block"
            raise MotionFormatError(f"unexpected {kind!r} {where}", path, num)
        if up in ("ROOT", "JOINT"):
            if up == "ROOT":
                roots.append(len(names))
            name, line = tokens.next("joint name")
            # Names may contain spaces (3ds Max Biped: "Bip01 L Thigh"): the rest of the line.
            while (
                tokens.i < len(tokens.items)
                and tokens.items[tokens.i][1] == line
                and tokens.items[tokens.i][0] != "{"
            ):
                name += " " + tokens.next("joint name")[0]
            _open(tokens, stack, names, parents, offsets, is_end, channels, name, False)
        elif up == "END":
            tokens.expect("Site")
            _open(
                tokens,
                stack,
                names,
                parents,
                offsets,
                is_end,
                channels,
                f"{names[stack[-1]]}_end" if stack else "end",
                True,
            )
        elif up == "}":
            stack.pop()
        else:
            raise MotionFormatError(f"unexpected {kind!r} in HIERARCHY", path, num)
    if stack:
        raise MotionFormatError(
            "HIERARCHY ends inside a joint block (missing '}')", path, tokens.items[-1][1]
        )

    body_start = head.count("\n") + 1
    motion_lines = text[found.end() :].splitlines()
    frames, frame_time, frame_time_text, data_line = _motion_header(motion_lines, path, body_start)
    n_ch = sum(len(c) for c in channels)
    data_text = motion_lines[data_line:]
    first_data = body_start + data_line
    # every frame line must hold n_ch numbers (a short last line is a file cut mid-write: an
    # error naming it); a count of whole lines that disagrees with the header is read as the
    # lines, with a warning (see below)
    numbered = [(first_data + i, line) for i, line in enumerate(data_text) if line.strip()]
    parsed = None
    if all(len(line.split()) == n_ch for _, line in numbered):
        try:
            parsed = np.array(" ".join(line for _, line in numbered).split(), dtype=np.float64)
        except ValueError:
            pass
    if parsed is None:  # only then the slow line-by-line pass, to name the line at fault
        _locate_bad_line([line for _, line in numbered], n_ch, path, [num for num, _ in numbered])
        # every line passed Python's float(), which numpy's parser refused: take float()'s
        parsed = np.array([float(x) for _, line in numbered for x in line.split()])
    if not numbered:
        raise MotionFormatError(
            "no frames (the header says Frames: 0)"
            if frames == 0
            else f"the header says Frames: {frames} but the file has no frame lines (truncated?)",
            path,
            first_data - 1,
        )
    if len(numbered) != frames:
        # Off-by-one headers are common (an exporter counting frames 0..N as N, or rewriting
        # the count before the last line), and every whole line read is a frame of numbers: the
        # lines are taken, as Blender's and most readers do, and the mismatch is reported
        # (a note of the build, not a silent cut or padding).
        warnings.warn(
            RetargetWarning(
                f"{path}:{numbered[-1][0]}: the header says Frames: {frames} but the file has "
                f"{len(numbered)} frame lines (of {n_ch} channels); read the {len(numbered)} "
                "lines" + (" (truncated?)" if len(numbered) < frames else "")
            ),
            stacklevel=2,
        )
        frames = len(numbered)
    data = parsed.reshape(frames, n_ch)
    dropped: list[str] = []
    file_cols = np.arange(n_ch)  # the file's column of each kept data column
    if len(roots) > 1:
        names, parents, offsets, is_end, channels, file_cols, dropped = _largest_tree(
            roots, names, parents, offsets, is_end, channels, path
        )
        data = data[:, file_cols]
    bad = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if len(bad):
        row = data[bad[0]]
        col = int(np.flatnonzero(~np.isfinite(row))[0])
        raise MotionFormatError(
            f"non-finite value {row[col]} in frame {bad[0]} "
            f"(channel {file_cols[col] + 1} of {n_ch})",
            path,
            numbered[bad[0]][0],
        )

    j = len(names)
    scale = UNITS[units] if units is not None else _detect_scale(names, parents, offsets, is_end)
    check_expansion(frames, j, path)
    rot = np.broadcast_to(np.eye(3), (frames, j, 3, 3)).copy()
    local_t = None
    root_pos = np.broadcast_to(np.asarray(offsets[0]) * scale, (frames, 3)).copy()
    col = 0
    for k, ch in enumerate(channels):
        if not ch:
            continue
        block = data[:, col : col + len(ch)]
        col += len(ch)
        rot_cols = [i for i, c in enumerate(ch) if c.endswith("rotation")]
        pos_cols = [i for i, c in enumerate(ch) if c.endswith("position")]
        if len(rot_cols) > 3:
            raise MotionFormatError(
                f"joint {names[k]!r} has {len(rot_cols)} rotation channels", path
            )
        if rot_cols:
            axes = "".join(ch[i][0] for i in rot_cols)
            rot[:, k] = rotmath.euler_matrix(np.radians(block[:, rot_cols]), axes)
        if pos_cols:
            p = np.tile(np.asarray(offsets[k]) * scale, (frames, 1))
            for i in pos_cols:
                p[:, "xyz".index(ch[i][0])] = block[:, i] * scale
            if k == 0:
                root_pos = p
            else:
                if local_t is None:
                    local_t = np.tile(np.asarray(offsets) * scale, (frames, 1, 1))
                local_t[:, k] = p
    sk = Skeleton(
        names=tuple(names),
        parents=np.asarray(parents),
        offsets=np.asarray(offsets) * scale,
        is_end=np.asarray(is_end),
    )
    if fps is None:
        if frame_time <= 0:
            raise MotionFormatError("Frame Time must be positive (or pass fps=)", path)
        if not math.isfinite(1.0 / frame_time):  # a subnormal such as 3e-320
            raise MotionFormatError(
                f"Frame Time {frame_time_text} s is too short for a frame (or pass fps=)", path
            )
        if frame_time > MAX_FRAME_TIME:
            # a rate written where seconds belong ("Frame Time: 30"): read as seconds it would
            # resample a few hundred frames into hundreds of thousands, silently
            raise MotionFormatError(
                f"Frame Time {frame_time_text} s is more than {MAX_FRAME_TIME:g} s per frame: "
                f"if it is a rate, pass fps={frame_time_text}",
                path,
            )
        fps = snap_rate(1.0 / frame_time, frame_time_text)
    return Motion(
        skeleton=sk,
        rotations=rot,
        root_position=root_pos,
        fps=float(fps),
        path=str(path),
        format="bvh",
        local_translations=local_t,
        meta={
            "units_scale": scale,
            "header_fps": 1.0 / frame_time if frame_time > 0 else None,
            **({"dropped_roots": dropped} if dropped else {}),
            **({"world_up": UP_AXES[world_up], "up_given": True} if world_up else {}),
        },
    )


def _largest_tree(roots, names, parents, offsets, is_end, channels, path):
    """Keep the ROOT tree with the most joints (the character; the others are props, cameras or
    markers that some exporters write as extra ROOTs). Returns the kept lists, the file's data
    columns of the kept tree and the names of the dropped roots. A file with two or more trees
    that are people (two performers in one take) is refused: keeping one would silently lose
    the others' motion, and which one is meant cannot be told from the file."""
    from advprior.data.naming import map_to_smpl

    bounds = list(zip(roots, roots[1:] + [len(names)], strict=True))
    start, end = max(bounds, key=lambda b: b[1] - b[0])  # ties: the first (a person is refused)
    widths = np.array([len(c) for c in channels])
    first_col = np.concatenate([[0], np.cumsum(widths)])
    cols = np.arange(first_col[start], first_col[end])
    dropped = [names[a] for a, _ in bounds if a != start]

    def tree(a: int, b: int) -> tuple[list, list, list, list, list]:
        keep = slice(a, b)
        ps = [p - a if p >= 0 else -1 for p in parents[keep]]
        return names[keep], ps, offsets[keep], is_end[keep], channels[keep]

    people = []
    for a, b in bounds:
        if a == start:
            continue
        n, p, o, e, _ = tree(a, b)
        try:
            map_to_smpl(Skeleton(tuple(n), np.asarray(p), np.asarray(o), np.asarray(e)))
        except MotionFormatError:
            continue  # a prop, camera or marker set: not a person
        people.append(names[a])
    if people:
        raise MotionFormatError(
            f"holds {len(people) + 1} characters (ROOTs {[names[start], *people]}); reading one "
            "would drop the others' motion: export one character per file",
            path,
        )
    return (*tree(start, end), cols, dropped)


# a number written with a decimal comma, as a standalone token ("-0,5", "12,25e-3")
_COMMA_NUMBER = re.compile(r"(?<![\w.,])([-+]?\d+),(\d+(?:[eE][-+]?\d+)?)(?![\w.,])")
_POINT_NUMBER = re.compile(r"(?<![\w.])[-+]?\d*\.\d+")


def _decimal_points(text: str) -> str:
    """``text`` with decimal commas made points when its numbers are written with them.

    Exporters that format numbers by the system's locale (German, French, ...) write
    ``OFFSET 0,000000 -9,140623 0,681534`` and ``Frame Time: 0,033333``. BVH separates numbers
    by whitespace, so a comma between digits can only be a decimal separator; it is read so
    when no number after ``MOTION`` uses a decimal point (a file that mixes both, or uses
    commas as separators, is left alone and fails naming the first bad number)."""
    if "," not in text:  # the common case, without a regex pass over a large file
        return text
    motion = re.split(r"^[ \t]*MOTION[ \t]*\r?$", text, maxsplit=1, flags=re.M | re.I)[-1]
    if _POINT_NUMBER.search(motion) is not None or _COMMA_NUMBER.search(motion) is None:
        return text
    return _COMMA_NUMBER.sub(r"\1.\2", text)


#: Capture and video rates a rounded frame time most likely means.
COMMON_RATES = (24, 25, 30, 48, 50, 60, 90, 100, 120, 144, 150, 180, 200, 240, 250, 300, 360, 480)


def snap_rate(fps: float, frame_time_text: str | None = None) -> float:
    """The rate a rate read from a rounded frame time means, else ``fps`` as read.

    With the frame time as printed in the file, its precision decides: the printed ``0.0083``
    is any time in ``[0.00825, 0.00835]``, i.e. any rate in ``[119.8, 121.2]``. A common
    capture rate (:data:`COMMON_RATES`) in that range is taken, the nearest to ``1 / 0.0083``
    if several (``0.017`` -> 60, not 59; ``0.008`` -> 120, not 125; ``0.004`` -> 250); else the
    integer in the range nearest to it; a precisely printed non-integer rate (``0.0333667``,
    NTSC's 29.97) has no integer in its range and is kept. Otherwise (no ``frame_time_text``, or
    a truncated one such as ``0.016666``): the nearest integer when within 1e-4 relative
    (``0.00833333`` s -> 120)."""
    exponent = None
    if frame_time_text is not None:
        try:
            exponent = Decimal(frame_time_text.strip()).as_tuple().exponent
        except InvalidOperation:
            exponent = None
    if isinstance(exponent, int):  # not for NaN / Infinity spelled out
        half = 0.5 * 10.0**exponent
        frame_time = 1.0 / fps
        if frame_time > half and math.isfinite(1.0 / (frame_time - half)):
            low, high = 1.0 / (frame_time + half), 1.0 / (frame_time - half)
            common = [r for r in COMMON_RATES if low <= r <= high]
            if common:
                return float(min(common, key=lambda r: abs(r - fps)))
            # the integer in [low, high] nearest to fps (the lower on a tie), computed: a range
            # walked to find it was ~1e300 integers for "Frame Time: 1e-300" (a hang)
            first, last = max(1, math.ceil(low)), math.floor(high)
            if first <= last:
                return float(min(max(math.ceil(fps - 0.5), first), last))
    # truncated rather than rounded (0.016666) or no text: an integer within 1e-4 relative
    near = round(fps)
    if near > 0 and abs(fps - near) < 1e-4 * fps:
        return float(near)
    return float(fps)


_CHANNELS = {f"{a}{k}" for a in "xyz" for k in ("position", "rotation")}


def _open(tokens, stack, names, parents, offsets, is_end, channels, name, end) -> None:
    tokens.expect("{")
    tokens.expect("OFFSET")
    off = np.array(
        [tokens.number("OFFSET x"), tokens.number("OFFSET y"), tokens.number("OFFSET z")]
    )
    ch: list[str] = []
    if not end:
        tok, num = tokens.next("CHANNELS")
        if tok.upper() != "CHANNELS":
            raise MotionFormatError(
                f"expected CHANNELS after OFFSET of {name!r}, found {tok!r}", tokens.path, num
            )
        cnt_tok, num = tokens.next("channel count")
        if not cnt_tok.isdigit():
            raise MotionFormatError(f"bad channel count {cnt_tok!r}", tokens.path, num)
        for _ in range(int(cnt_tok)):
            c, num = tokens.next("channel name")
            if c.lower() not in _CHANNELS:
                raise MotionFormatError(f"unknown channel {c!r}", tokens.path, num)
            ch.append(c.lower())
    names.append(name)
    parents.append(stack[-1] if stack else -1)
    offsets.append(off)
    is_end.append(end)
    channels.append(ch)
    stack.append(len(names) - 1)


# "Frames:", "frames :", "Frame Time:", "FrameTime:"; hand-edited files and odd exporters also
# write "Frame Time= 0.033" or "Frame Time 0.033": what follows the key is its value, which must
# then be one number (else the line is an error naming it, never guessed at)
_HEADER_LINE = re.compile(r"^(frames|frame\s*time)\b\s*[:=]?\s*(.*)$", re.IGNORECASE)


def _header_key(line: str) -> tuple[str, str]:
    """``(key, value)`` of a MOTION header line, the key without case or spaces (``frames``,
    ``frametime``); ``("", "")`` for any other line."""
    m = _HEADER_LINE.match(line)
    if m is None:
        return "", ""
    return "".join(m.group(1).lower().split()), m.group(2).strip()


def _motion_header(lines: list[str], path: Path, first: int) -> tuple[int, float, str, int]:
    frames = frame_time = None
    frame_time_text = ""
    i = 0
    while i < len(lines) and (frames is None or frame_time is None):
        line = lines[i].strip()
        num = first + i
        i += 1
        if not line:
            continue
        key, value = _header_key(line)
        try:
            if key == "frames":
                frames = int(value)
            elif key == "frametime":
                frame_time_text = value
                frame_time = float(frame_time_text)
                if not np.isfinite(frame_time):
                    raise MotionFormatError(f"non-finite Frame Time in {line!r}", path, num)
            else:
                raise MotionFormatError(
                    f"expected 'Frames:' / 'Frame Time:', found {line[:40]!r}", path, num
                )
        except MotionFormatError:
            raise
        except ValueError:
            raise MotionFormatError(f"bad MOTION header line {line!r}", path, num) from None
    if frames is None or frame_time is None:
        raise MotionFormatError("MOTION header lacks Frames: or Frame Time:", path, first + i)
    if frames < 0:
        raise MotionFormatError("negative frame count", path, first)
    return frames, frame_time, frame_time_text, i


def _locate_bad_line(lines: list[str], n_ch: int, path: Path, numbers: list[int]) -> None:
    """Raise for the first line (``numbers``: their line numbers) that is not ``n_ch`` floats."""
    for num, line in zip(numbers, lines, strict=True):
        tok = line.split()
        if len(tok) != n_ch:
            raise MotionFormatError(
                f"frame line has {len(tok)} numbers, expected {n_ch}", path, num
            )
        try:
            [float(x) for x in tok]
        except ValueError as err:
            raise MotionFormatError(f"not a number: {err}", path, num) from None


def _detect_scale(names, parents, offsets, is_end) -> float:
    """Unit scale making the hip-to-ankle length ~0.85 m (see :data:`UNITS`)."""
    from advprior.data.naming import KNEE_NAMES, _by_core, _joint_child, _joint_parent

    off = np.asarray(offsets)
    sk = Skeleton(tuple(names), np.asarray(parents), off, np.asarray(is_end))
    rest = sk.rest_positions()
    knee = _by_core(sk, KNEE_NAMES, "L")
    if knee is None:
        knee = _by_core(sk, KNEE_NAMES, "R")
    hip = _joint_parent(sk, knee) if knee is not None else -1
    ankle = _joint_child(sk, knee) if knee is not None else None
    if hip >= 0 and ankle is not None:
        # along the rest chain, not the knee's own offset: twist/roll helpers split the thigh
        # and shin (lThighBend > lThighTwist > lShin, LeftUpLeg > LeftUpLegRoll > LeftLeg)
        leg = float(
            np.linalg.norm(rest[knee] - rest[hip]) + np.linalg.norm(rest[ankle] - rest[knee])
        )
    else:
        leg = 0.5 * float(np.ptp(rest[:, 1])) if len(rest) > 1 else 1.0
    if leg <= 0:
        return 1.0
    scales = np.array(list(UNITS.values()))
    # Units that give a human hip-to-ankle length (a small child's to a 2 m adult's) first: a
    # child captured in cm (leg 0.47 m) is nearer 0.85 m read as inches (1.19 m), which no
    # person has. Then the nearest to a typical adult, by ratio.
    plausible = scales[(leg * scales >= _LEG_RANGE_M[0]) & (leg * scales <= _LEG_RANGE_M[1])]
    pool = plausible if len(plausible) else scales
    return float(pool[np.argmin(np.abs(np.log(leg * pool / _TYPICAL_LEG_M)))])
