"""Acclaim ASF (skeleton) / AMC (motion) reader: CMU, HDM05 and other Vicon exports.

Units come from the ASF header: ``:units length L`` means lengths and root translations are in
units of ``1/L`` inches (CMU and HDM05 use ``L = 0.45``), so metres = value / L * 0.0254;
``angle deg|rad`` sets the unit of ASF angles, and AMC ``:DEGREES``/``:RADIANS`` that of the
motion (the ASF's when absent).

Rotations: a bone's ``axis a b c ORDER`` gives its frame ``C`` (the first letter of ORDER is
applied first); the AMC values of its ``dof`` list, applied in listed order, give ``M``; its local
rotation in the world-aligned rest frame is ``C M C^-1``. The root uses ``orientation`` /
``axis`` and the rotation tokens of ``order``. ASF ``direction`` vectors are in the world frame,
so the rest pose has identity rotations and each bone becomes one joint at its start point
(a bone's children start at its end; leaf bones get an end site).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from advprior.data import rotmath
from advprior.data.motion import Motion, Skeleton, check_expansion, read_motion_text
from advprior.errors import MotionFormatError, RetargetWarning

INCH = 0.0254


@dataclass
class _Bone:
    name: str
    direction: np.ndarray
    length: float
    axis: np.ndarray
    axis_order: str
    dof: tuple[str, ...]
    line: int


@dataclass
class ASFSkeleton:
    """A parsed ASF file: bones, hierarchy and units (lengths already in metres)."""

    path: Path
    bones: dict[str, _Bone]
    children: dict[str, list[str]]
    root_order: tuple[str, ...]
    root_axis: str
    root_position: np.ndarray
    root_orientation: np.ndarray
    angle_scale: float
    length_unit: float

    def build(self) -> tuple[Skeleton, list[str], list[np.ndarray]]:
        """The normal-form :class:`Skeleton`, its channel bone names (``root`` first) and the
        axis frames ``C`` of those bones."""
        names, parents, offsets, is_end, frames = ["root"], [-1], [self.root_position], [False], []
        frames.append(
            rotmath.euler_matrix(
                self.root_orientation[::-1] * self.angle_scale, self.root_axis[::-1]
            )
        )
        order = ["root"]
        stack = [(c, 0) for c in reversed(self.children.get("root", []))]
        seen = {"root"}
        while stack:
            name, parent = stack.pop()
            if name not in self.bones:
                raise MotionFormatError(f"hierarchy names unknown bone {name!r}", self.path)
            if name in seen:  # read_asf refuses these; an ASFSkeleton built by hand may not
                raise MotionFormatError(
                    f"hierarchy reaches bone {name!r} twice (a cycle or a repeated child)",
                    self.path,
                )
            seen.add(name)
            pname = names[parent]
            off = np.zeros(3) if pname == "root" else _vector(self.bones[pname])
            names.append(name)
            parents.append(parent)
            offsets.append(off)
            is_end.append(False)
            b = self.bones[name]
            frames.append(rotmath.euler_matrix(b.axis[::-1] * self.angle_scale, b.axis_order[::-1]))
            order.append(name)
            me = len(names) - 1
            kids = self.children.get(name, [])
            if not kids:
                names.append(f"{name}_end")
                parents.append(me)
                offsets.append(_vector(b))
                is_end.append(True)
                frames.append(np.eye(3))
                order.append("")
            stack.extend((c, me) for c in reversed(kids))
        sk = Skeleton(
            names=tuple(names),
            parents=np.asarray(parents),
            offsets=np.asarray(offsets),
            is_end=np.asarray(is_end),
        )
        return sk, order, frames


def _vector(b: _Bone) -> np.ndarray:
    n = np.linalg.norm(b.direction)
    return b.direction / (n if n > 0 else 1.0) * b.length


def _float_list(tokens: list[str], path: Path, line: int) -> list[float]:
    """The tokens as finite floats (plain Python: an AMC has one such line per bone and frame,
    100k+ per file, where numpy's per-call overhead would be most of the read)."""
    try:
        values = [float(x) for x in tokens]
    except ValueError as err:
        raise MotionFormatError(f"not a number: {err}", path, line) from None
    if not all(map(math.isfinite, values)):
        raise MotionFormatError(f"non-finite number in {' '.join(tokens)!r}", path, line)
    return values


def _floats(tokens: list[str], path: Path, line: int, count: int | None = None) -> np.ndarray:
    if count is not None and len(tokens) != count:
        raise MotionFormatError(f"expected {count} numbers, found {len(tokens)}", path, line)
    return np.array(_float_list(tokens, path, line))


#: The Acclaim dof names: rotations about and translations along the bone's axes, and ``l``,
#: the bone's length (a stretch); the root has no length.
_ROOT_DOFS = ("tx", "ty", "tz", "rx", "ry", "rz")
_BONE_DOFS = (*_ROOT_DOFS, "l")


def _dofs(tokens: list[str], known: tuple[str, ...], what: str, path: Path, line: int) -> tuple:
    """Lower-cased dof names, each one of ``known`` (else the file's line is named: an
    unknown one used to end in a bare ValueError of the Euler conversion)."""
    out = tuple(t.lower() for t in tokens)
    for t in out:
        if t not in known:
            raise MotionFormatError(
                f"unknown {what} entry {t!r} (expected {' '.join(known)})", path, line
            )
    return out


def _axis_order(token: str, path: Path, line: int) -> str:
    """An ``axis`` order: the three letters x, y, z in any order, any case."""
    order = token.lower()
    if sorted(order) != ["x", "y", "z"]:
        raise MotionFormatError(
            f"axis order {token!r} is not x, y and z in some order (e.g. XYZ, ZYX)", path, line
        )
    return order


def read_asf(path: str | Path) -> ASFSkeleton:
    """Parse an ASF file; raise :class:`MotionFormatError` naming file and line on bad input."""
    path = Path(path)
    try:
        text = read_motion_text(path)
    except OSError as err:
        raise MotionFormatError(f"cannot read ASF: {err}", path) from None
    length_unit, angle_unit = 1.0, "deg"
    section = None
    bones: dict[str, _Bone] = {}
    children: dict[str, list[str]] = {}
    parent_of: dict[str, tuple[str, int]] = {}  # hierarchy: bone -> (parent, line)
    root = {
        "order": ("tx", "ty", "tz", "rx", "ry", "rz"),
        "axis": "xyz",
        "position": np.zeros(3),
        "orientation": np.zeros(3),
    }
    cur: dict | None = None
    for num, raw in enumerate(text.splitlines(), 1):
        # commas separate numbers as whitespace does in the Acclaim format ("0.65, -0.71, 0.25")
        line = raw.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        tok = line.split()
        if tok[0].startswith(":"):
            section = tok[0][1:].lower()
            if section == "units" and len(tok) > 1:
                tok = tok[1:]
            else:
                continue
        key = tok[0].lower()
        if section == "units":
            # one pair per line or several on one (":units mass 1.0 length 0.45 angle rad");
            # a pair left unread would silently scale every bone or turn radians into degrees
            if len(tok) % 2:
                raise MotionFormatError(
                    f"units must be name/value pairs, got {' '.join(tok)!r}", path, num
                )
            for name, value in zip(tok[::2], tok[1::2], strict=True):
                name = name.lower()
                if name == "length":
                    length_unit = float(_floats([value], path, num)[0])
                    if not length_unit > 0:
                        raise MotionFormatError("length unit must be positive", path, num)
                elif name == "angle":
                    angle_unit = value.lower()
                    if angle_unit not in ("deg", "rad"):
                        raise MotionFormatError(f"unknown angle unit {value!r}", path, num)
        elif section == "root":
            if key == "order":
                root["order"] = _dofs(tok[1:], _ROOT_DOFS, "root order", path, num)
            elif key == "axis":
                root["axis"] = _axis_order(tok[1] if len(tok) > 1 else "xyz", path, num)
            elif key in ("position", "orientation"):
                root[key] = _floats(tok[1:4], path, num, 3)
        elif section == "bonedata":
            if key == "begin":
                cur = {
                    "line": num,
                    "dof": (),
                    "axis": np.zeros(3),
                    "order": "xyz",
                    "direction": None,
                    "length": None,
                    "name": None,
                }
            elif key == "end":
                if cur is None or cur["name"] is None:
                    raise MotionFormatError("bone without a name", path, num)
                if cur["direction"] is None or cur["length"] is None:
                    raise MotionFormatError(
                        f"bone {cur['name']!r} lacks direction or length", path, cur["line"]
                    )
                bones[cur["name"]] = _Bone(
                    cur["name"],
                    cur["direction"],
                    cur["length"],
                    cur["axis"],
                    cur["order"],
                    cur["dof"],
                    cur["line"],
                )
                cur = None
            elif cur is None:
                raise MotionFormatError(f"{tok[0]!r} outside a begin/end bone block", path, num)
            elif key == "name":
                cur["name"] = tok[1]
            elif key == "direction":
                cur["direction"] = _floats(tok[1:4], path, num, 3)
            elif key == "length":
                cur["length"] = float(_floats(tok[1:2], path, num, 1)[0])
            elif key == "axis":
                cur["axis"] = _floats(tok[1:4], path, num, 3)
                cur["order"] = _axis_order(tok[4] if len(tok) > 4 else "xyz", path, num)
            elif key == "dof":
                cur["dof"] = _dofs(tok[1:], _BONE_DOFS, "dof", path, num)
        elif section == "hierarchy":
            if key in ("begin", "end"):
                continue
            for child in tok[1:]:
                # one parent per bone: a bone listed twice (a cycle like "head lowerback", or
                # one child repeated) would make the skeleton an endless or exploding tree
                if child == "root" or child == tok[0]:
                    raise MotionFormatError(
                        f"bone {child!r} cannot be a child of {tok[0]!r}", path, num
                    )
                if child in parent_of:
                    first, first_line = parent_of[child]
                    again = "again" if first == tok[0] else f"but already of {first!r}"
                    raise MotionFormatError(
                        f"bone {child!r} is listed as a child of {tok[0]!r} {again} "
                        f"(line {first_line}): each bone has one parent, listed once",
                        path,
                        num,
                    )
                parent_of[child] = (tok[0], num)
            children.setdefault(tok[0], []).extend(tok[1:])
    if not bones:
        raise MotionFormatError("no :bonedata bones found (not an ASF file?)", path)
    if "root" not in children:
        raise MotionFormatError("no :hierarchy with a root line", path)
    scale = INCH / length_unit
    for b in bones.values():
        b.length *= scale
    return ASFSkeleton(
        path=path,
        bones=bones,
        children=children,
        root_order=root["order"],
        root_axis=root["axis"],
        root_position=root["position"] * scale,
        root_orientation=root["orientation"],
        angle_scale=np.pi / 180.0 if angle_unit == "deg" else 1.0,
        length_unit=length_unit,
    )


def find_asf(amc: Path) -> Path:
    """The ASF for ``amc``: beside it or in ``../asf/``, by CMU subject (``01_02.amc -> 01.asf``),
    HDM05 actor (``HDM_bd_... -> HDM_bd.asf``), or the only ASF there."""
    stem = amc.stem
    names = []
    if "_" in stem:
        names.append(stem.split("_")[0] + ".asf")
        if stem.upper().startswith("HDM_"):
            names.append("_".join(stem.split("_")[:2]) + ".asf")
    folders = [amc.parent, amc.parent.parent / "asf", amc.parent / "asf"]
    for folder in folders:
        if not folder.is_dir():
            continue
        listing = {
            p.name.lower(): p
            for p in folder.iterdir()
            if p.suffix.lower() == ".asf" and p.is_file()
        }
        for n in names:
            if n.lower() in listing:
                return listing[n.lower()]
    for folder in folders:
        if folder.is_dir():
            asfs = [p for p in folder.iterdir() if p.suffix.lower() == ".asf" and p.is_file()]
            if len(asfs) == 1:
                return asfs[0]
    raise MotionFormatError(
        "no ASF skeleton found beside the AMC (looked for "
        + ", ".join(names or ["*.asf"])
        + " in . and ../asf); pass skeleton=PATH",
        amc,
    )


def _check_complete_frames(frame_of: dict[str, list], t: int, path: Path) -> None:
    """Every frame holds each bone that any frame holds, once: a frame cut short (a truncated
    file, an interrupted export) would otherwise put the missing bones at rest in that frame, a
    wrong pose that nothing downstream can tell from a real one. Bones that no frame holds are
    the file's choice and stay at rest."""
    for name, seen in frame_of.items():
        if not seen or len(seen) == t and len(set(seen)) == t:
            continue
        counts = np.bincount(np.asarray(seen), minlength=t)
        bad = int(np.flatnonzero(counts != 1)[0])
        what = "no" if counts[bad] == 0 else f"{counts[bad]} lines of"
        raise MotionFormatError(
            f"frame {bad + 1} of {t} has {what} values for bone {name!r}, which other frames "
            "have (truncated or damaged file?)",
            path,
        )


def _frame_step(numbers: list[tuple[int, int]], path: Path) -> int:
    """The step between the AMC's frame numbers ``(number, line)``: 1 when they count up by one
    from any start (CMU's and HDM05's from 1), ``k`` when every one is ``k`` more than the last
    (a file that keeps every k-th captured frame: its frames are k capture frames apart).

    Raises:
        MotionFormatError: numbers that repeat, go back or jump unevenly (frames lost or
            spliced): read in order they would put frames that are not equally far apart
            in time at equal steps, naming the first such number's line.
    """
    if len(numbers) < 2:
        return 1
    step = numbers[1][0] - numbers[0][0]
    for (prev, _), (number, line) in zip(numbers, numbers[1:], strict=False):
        if number - prev != step or step < 1:
            raise MotionFormatError(
                f"frame number {number} follows {prev}, but the frames before count in steps "
                f"of {step}: frames repeated, out of order or lost (a damaged or spliced file?)"
                if number - prev != step
                else f"frame number {number} follows {prev}: frame numbers must count up",
                path,
                line,
            )
    return step


def read_amc(path: str | Path, asf: ASFSkeleton, fps: float = 120.0) -> Motion:
    """Read AMC frames against a parsed ASF into a normal-form :class:`Motion`.

    Frame numbers must count up evenly (:func:`_frame_step`); a step over one is kept in
    ``meta["frame_step"]`` (``fps`` is taken as the rate of the file's frames either way)."""
    path = Path(path)
    try:
        lines = read_motion_text(path).splitlines()
    except OSError as err:
        raise MotionFormatError(f"cannot read AMC: {err}", path) from None
    sk, order, frames = asf.build()
    angle = asf.angle_scale
    dofs = {"root": asf.root_order}
    dofs.update({n: b.dof for n, b in asf.bones.items()})
    values: dict[str, list] = {n: [] for n in dofs}
    frame_of: dict[str, list] = {n: [] for n in dofs}
    frame = -1
    numbers: list[tuple[int, int]] = []  # (frame number, line) of each frame
    for num, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].replace(",", " ").strip()  # comments anywhere, as the ASF
        if not line:
            continue
        if line.startswith(":"):
            key = line[1:].split()[0].upper()
            if key == "DEGREES":
                angle = np.pi / 180.0
            elif key == "RADIANS":
                angle = 1.0
            continue
        tok = line.split()
        if len(tok) == 1 and tok[0].isdigit():
            frame += 1
            numbers.append((int(tok[0]), num))
            continue
        if frame < 0:
            raise MotionFormatError("data before the first frame number", path, num)
        name = tok[0]
        if name not in dofs:
            raise MotionFormatError(
                f"bone {name!r} is not in the skeleton {asf.path.name}", path, num
            )
        n = len(dofs[name])
        if len(tok) - 1 != n:
            raise MotionFormatError(
                f"bone {name!r} has {n} dof in {asf.path.name} but {len(tok) - 1} values "
                "(truncated or mismatched file?)",
                path,
                num,
            )
        values[name].append(_float_list(tok[1:], path, num))
        frame_of[name].append(frame)
    t = frame + 1
    if t <= 0:
        raise MotionFormatError("no frames", path)
    if not values["root"]:
        raise MotionFormatError("no root values in any frame", path)
    _check_complete_frames(frame_of, t, path)
    step = _frame_step(numbers, path)

    def table(name: str) -> np.ndarray:
        out = np.zeros((t, len(dofs[name])))
        if values[name]:
            out[np.asarray(frame_of[name])] = np.asarray(values[name])
        return out

    check_expansion(t, sk.num_joints, path)
    rot = np.broadcast_to(np.eye(3), (t, sk.num_joints, 3, 3)).copy()
    root_pos = np.broadcast_to(asf.root_position, (t, 3)).copy()
    scale = INCH / asf.length_unit
    moved: list[str] = []  # bones whose translation or length dofs move them
    for j, name in enumerate(order):
        if not name:
            continue
        vals = table(name)
        if name != "root":
            tcols = [k for k, d in enumerate(dofs[name]) if not d.startswith("r")]
            if tcols and np.abs(vals[:, tcols]).max() > 0:
                largest = float(np.abs(vals[:, tcols]).max()) * scale
                moved.append(f"{name} ({' '.join(dofs[name][k] for k in tcols)}, {largest:.3g} m)")
        rcols = [k for k, d in enumerate(dofs[name]) if d.startswith("r")]
        axes = "".join(dofs[name][k][1] for k in rcols)
        # The first listed dof is applied first: M = R_last ... R_first.
        m = rotmath.euler_matrix(vals[:, rcols[::-1]] * angle, axes[::-1])
        c = frames[j]
        rot[:, j] = c @ m @ c.T
        if name == "root":
            for k, d in enumerate(dofs[name]):
                if d in ("tx", "ty", "tz"):
                    root_pos[:, "xyz".index(d[1])] = vals[:, k] * scale
    if moved:
        # rotations are read exactly; a stretched or sliding bone moves the joints below it,
        # which the rest offsets here keep: their positions (and the bone directions the
        # retargeting aligns SMPL's bones to) are off by up to the amount named
        warnings.warn(
            RetargetWarning(
                f"{path}: translation and length dofs are not applied (only rotations are): "
                f"{', '.join(moved)} (largest value); the joints below them keep their rest "
                "offsets"
            ),
            stacklevel=3,
        )
    return Motion(
        skeleton=sk,
        rotations=rot,
        root_position=root_pos,
        fps=fps,
        path=str(path),
        format="asf/amc",
        meta={"asf": str(asf.path), **({"frame_step": step} if step > 1 else {})},
    )
