"""Known poses through the BVH variants users' files come in: each file is written here (never a
third-party file) with one tool's names, units, up axis, channel layout, rest pose and rate, and
must give back the SMPL joint rotations of the pose it was written from.

The pose: frame 0 is the rest skeleton; in frame 1 the left elbow bends 90 degrees forward (about
the upper arm's own "up" axis: SMPL's elbow rotation is ``Ry(-90 deg)``) and the right knee
bends 90 degrees backwards (``Rx(90 deg)``). An A-pose rest (arms 45 degrees down) must come out
as SMPL's shoulders turned down by 45 degrees (``Rz(-+45 deg)``) with the same elbow rotation: the
retarget accounts for the rest pose's bone directions. Tolerance: the channels are printed to 9
decimals (~1e-9 rad); a wrong mapping, axis or rest alignment gives tenths of a radian.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from advprior.data import bone_direction_errors, load_motion
from advprior.data.naming import map_to_smpl
from advprior.errors import MotionFormatError, RetargetWarning
from advprior.skeleton import JOINT_NAMES, REST_JOINTS

P = {n: REST_JOINTS[i] for i, n in enumerate(JOINT_NAMES)}
J = {n: i for i, n in enumerate(JOINT_NAMES)}
ATOL_RAD = 1e-6
# writing a 90-degree bend as Euler angles meets gimbal lock in some orders: any angles are valid
pytestmark = pytest.mark.filterwarnings("ignore:Gimbal lock detected")

# SMPL's frame (x: the body's left, y up, z forward) -> the file's world frame
Y_UP = np.eye(3)
# Blender: z up, the character facing -y (its left is +x)
Z_UP = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])

ARM = ("shoulder", "elbow", "wrist", "hand")
HAND_OF = {J["left_wrist"]: J["left_hand"], J["right_wrist"]: J["right_hand"]}


def _rows(names: dict[str, str], extra: list | None = None) -> list:
    """(name, parent name, SMPL joint or None, rest point) from SMPL joint -> file name.

    ``names`` maps SMPL joint names (``left_*`` written for both sides with ``{S}``/``{Side}``/
    ``{s}``) to the file's names; ``extra``: rows (name, parent, None, point) added as given."""
    rows = []
    for smpl, name in names.items():
        for side, word, s in (("left", "Left", "L"), ("right", "Right", "R")):
            key = smpl.replace("left", side)
            if key not in J:
                continue
            file = name.replace("{Side}", word).replace("{S}", s).replace("{s}", s.lower())
            rows.append((file, key))
            if "left" not in smpl:
                break
    out = []
    by_smpl = {k: n for n, k in rows}
    from advprior.skeleton import PARENTS

    for name, key in rows:
        j = J[key]
        p = PARENTS[j]
        while p >= 0 and JOINT_NAMES[p] not in by_smpl:
            p = PARENTS[p]
        out.append((name, by_smpl[JOINT_NAMES[p]] if p >= 0 else None, j, P[key]))
    return out + list(extra or [])


def _a_pose(rows: list) -> list:
    """``rows`` with both arms turned 45 degrees down about the shoulders (SMPL's frame)."""
    out = []
    for name, parent, j, point in rows:
        side, _, part = JOINT_NAMES[j].partition("_") if j is not None else ("", "", "")
        if part in ARM and side in ("left", "right"):
            pivot = P[f"{side}_shoulder"]
            turn = Rotation.from_euler("z", -45 if side == "left" else 45, degrees=True)
            point = pivot + turn.apply(point - pivot)
        out.append((name, parent, j, np.asarray(point, dtype=float)))
    return out


def _pose(t: int, a_pose: bool) -> np.ndarray:
    """Global rotations (SMPL's frame) ``(T, 24, 3, 3)`` of the source's joints relative to
    their rest: identity in frame 0; frame 1 bends the left elbow and the right knee."""
    g = np.broadcast_to(np.eye(3), (t, 24, 3, 3)).copy()
    down = Rotation.from_euler("z", -45 if a_pose else 0, degrees=True).as_matrix()
    bend = down @ Rotation.from_euler("y", -90, degrees=True).as_matrix() @ down.T
    for j in ("left_elbow", "left_wrist", "left_hand"):
        g[1:, J[j]] = bend
    knee = Rotation.from_euler("x", 90, degrees=True).as_matrix()
    for j in ("right_knee", "right_ankle", "right_foot"):
        g[1:, J[j]] = knee
    return g


def write_variant(
    path: Path,
    rows: list,
    *,
    t: int = 3,
    a_pose: bool = False,
    world: np.ndarray = Y_UP,
    scale: float = 100.0,
    orders: tuple[str, ...] = ("ZXY",),
    six: bool = False,
    frame_time: str = "0.0333333",
    newline: str = "\n",
    indent: str = "\t",
    end_sites: bool = True,
) -> None:
    """Write the pose of :func:`_pose` as BVH on ``rows``: joint ``k`` (depth first) gets the
    rotation order ``orders[k % len(orders)]``; offsets and positions in ``1 / scale`` m, in the
    ``world`` frame; a joint without an SMPL joint turns with its parent."""
    if a_pose:
        rows = _a_pose(rows)
    g_smpl = _pose(t, a_pose)
    names = [r[0] for r in rows]
    kids = {n: [r for r in rows if r[1] == n] for n in names}
    order_rows = []

    def walk(r) -> None:
        order_rows.append(r)
        for c in kids[r[0]]:
            walk(c)

    walk(rows[0])
    glob = {}
    for name, parent, j, _ in order_rows:
        if j is not None:
            glob[name] = world @ g_smpl[:, j] @ world.T
        else:
            glob[name] = glob[parent] if parent else np.broadcast_to(np.eye(3), (t, 3, 3))
    point = {r[0]: world @ r[3] * scale for r in rows}
    lines, cols = ["HIERARCHY"], []
    root_path = point[order_rows[0][0]] + np.outer(np.linspace(0, 0.3, t), [1, 0, 0]) * scale

    def emit(r, depth: int, k: list) -> None:
        name, parent, _, _ = r
        pad = indent * depth
        order = orders[k[0] % len(orders)]
        k[0] += 1
        rot = [f"{a}rotation" for a in order]
        pos = ["Xposition", "Yposition", "Zposition"]
        chans = pos + rot if parent is None or six else rot
        off = point[name] - (point[parent] if parent else 0.0)
        lines.append(f"{pad}{'ROOT' if parent is None else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(f"{pad}{indent}OFFSET " + " ".join(f"{x:.9f}" for x in off))
        lines.append(f"{pad}{indent}CHANNELS {len(chans)} " + " ".join(chans))
        if parent is None:
            cols.append(root_path)
        elif six:
            cols.append(np.tile(off, (t, 1)))
        local = glob[name] if parent is None else np.swapaxes(glob[parent], -1, -2) @ glob[name]
        # a copy: SciPy < 1.11 refuses read-only buffers (a broadcast root rotation)
        cols.append(Rotation.from_matrix(np.array(local)).as_euler(order, degrees=True))
        for c in kids[name]:
            emit(c, depth + 1, k)
        if not kids[name] and end_sites:
            tip = off / max(np.linalg.norm(off), 1e-9) * 0.05 * scale
            if r[2] in HAND_OF:  # a wrist without a hand joint: its End Site where SMPL's hand is
                hand = _a_pose([(None, None, HAND_OF[r[2]], P[JOINT_NAMES[HAND_OF[r[2]]]])])
                tip = world @ (hand[0][3] if a_pose else P[JOINT_NAMES[HAND_OF[r[2]]]]) * scale
                tip = tip - point[name]
            lines.append(f"{pad}{indent}End Site")
            lines.append(f"{pad}{indent}{{")
            lines.append(f"{pad}{indent}{indent}OFFSET " + " ".join(f"{x:.6f}" for x in tip))
            lines.append(f"{pad}{indent}}}")
        lines.append(pad + "}")

    emit(order_rows[0], 0, [0])
    values = np.concatenate(cols, axis=1)
    lines += ["MOTION", f"Frames: {t}", f"Frame Time: {frame_time}"]
    lines += [" ".join(f"{x:.9f}" for x in row) for row in values]
    path.write_bytes((newline.join(lines) + newline).encode())


MIXAMO = {
    "pelvis": "mixamorig:Hips",
    "left_hip": "mixamorig:{Side}UpLeg",
    "left_knee": "mixamorig:{Side}Leg",
    "left_ankle": "mixamorig:{Side}Foot",
    "left_foot": "mixamorig:{Side}ToeBase",
    "spine1": "mixamorig:Spine",
    "spine2": "mixamorig:Spine1",
    "spine3": "mixamorig:Spine2",
    "neck": "mixamorig:Neck",
    "head": "mixamorig:Head",
    "left_collar": "mixamorig:{Side}Shoulder",
    "left_shoulder": "mixamorig:{Side}Arm",
    "left_elbow": "mixamorig:{Side}ForeArm",
    "left_wrist": "mixamorig:{Side}Hand",
    "left_hand": "mixamorig:{Side}HandMiddle1",
}
BLENDER = {k: v.replace("mixamorig:", "") for k, v in MIXAMO.items()}
BIPED = {
    "pelvis": "Bip01 Pelvis",
    "left_hip": "Bip01 {S} Thigh",
    "left_knee": "Bip01 {S} Calf",
    "left_ankle": "Bip01 {S} Foot",
    "left_foot": "Bip01 {S} Toe0",
    "spine1": "Bip01 Spine",
    "spine2": "Bip01 Spine1",
    "spine3": "Bip01 Spine2",
    "neck": "Bip01 Neck",
    "head": "Bip01 Head",
    "left_collar": "Bip01 {S} Clavicle",
    "left_shoulder": "Bip01 {S} UpperArm",
    "left_elbow": "Bip01 {S} Forearm",
    "left_wrist": "Bip01 {S} Hand",
    "left_hand": "Bip01 {S} Finger2",
}
XSENS = {
    "pelvis": "pelvis",
    "left_hip": "{Side}UpperLeg",
    "left_knee": "{Side}LowerLeg",
    "left_ankle": "{Side}Foot",
    "left_foot": "{Side}Toe",
    "spine1": "L5",
    "spine2": "L3",
    "spine3": "T8",
    "neck": "Neck",
    "head": "Head",
    "left_collar": "{Side}Shoulder",
    "left_shoulder": "{Side}UpperArm",
    "left_elbow": "{Side}ForeArm",
    "left_wrist": "{Side}Hand",
}


def _under_root(rows: list, root: str) -> list:
    """``rows`` below a floor-level ``root`` joint (MotionBuilder's Reference, a Root)."""
    first = rows[0]
    return [(root, None, None, np.zeros(3)), (first[0], root, first[2], first[3]), *rows[1:]]


VARIANTS = {
    # Mixamo: namespaced names, cm, 6 channels on every joint, y up, A-pose
    "mixamo_a_pose_cm_six": dict(rows=_rows(MIXAMO), a_pose=True, six=True, orders=("ZXY",)),
    # Blender: z up, m, a different rotation order on each joint, CRLF, tabs
    "blender_z_up_mixed_orders": dict(
        rows=_rows(BLENDER),
        world=Z_UP,
        scale=1.0,
        orders=("XYZ", "ZXY", "YXZ", "ZYX", "XZY", "YZX"),
        newline="\r\n",
    ),
    # 3ds Max Biped: names with spaces, inches, a Reference root above the pelvis, 25 fps
    "biped_reference_inches_25fps": dict(
        rows=_under_root(_rows(BIPED), "Bip01"),
        scale=1 / 0.0254,
        orders=("YXZ",),
        frame_time="0.04",
    ),
    # MotionBuilder: a Reference root, A-pose, 120 fps, no End Sites
    "motionbuilder_reference_a_pose_120fps": dict(
        rows=_under_root(_rows(BLENDER), "Reference"),
        a_pose=True,
        frame_time="0.008333",
        end_sites=False,
    ),
    # Xsens MVN: lower-case pelvis, UpperLeg / LowerLeg, 60 fps, mm, A-pose
    "xsens_mm_60fps_a_pose": dict(
        rows=_rows(XSENS), scale=1000.0, a_pose=True, frame_time="0.0166667", orders=("YXZ",)
    ),
    # a 24 fps animation export with a Root joint and T-pose, 6 channels
    "root_24fps_six": dict(
        rows=_under_root(_rows(MIXAMO), "Root"), six=True, frame_time="0.041667"
    ),
}
RATES = {
    "biped_reference_inches_25fps": 25.0,
    "motionbuilder_reference_a_pose_120fps": 120.0,
    "xsens_mm_60fps_a_pose": 60.0,
    "root_24fps_six": 24.0,
}


def _known_bends(a_pose: bool) -> np.ndarray:
    """``(3, 21, 3)``: the body pose :func:`_pose`'s three frames give SMPL (the arms' A-pose
    offset at the shoulders, then the left elbow and right knee bent by 90 degrees)."""
    want = np.zeros((3, 21, 3))
    if a_pose:
        want[:, J["left_shoulder"] - 1] = [0, 0, -np.pi / 4]
        want[:, J["right_shoulder"] - 1] = [0, 0, np.pi / 4]
    want[1:, J["left_elbow"] - 1] = [0, -np.pi / 2, 0]
    want[1:, J["right_knee"] - 1] = [np.pi / 2, 0, 0]
    return want


def _assert_limbs_bend_as_known(smpl, bones: tuple[str, ...] | None = None) -> None:
    """The limb joints of an A-pose clip come out as :func:`_known_bends`, and the bones
    (``bones``, default all) point where the source's do."""
    pose = smpl.body_pose.reshape(-1, 21, 3)
    want = _known_bends(a_pose=True)
    limbs = [J[f"{s}_{k}"] - 1 for s in ("left", "right") for k in LIMBS]
    np.testing.assert_allclose(pose[:, limbs], want[:, limbs], atol=ATOL_RAD)
    errors = bone_direction_errors(smpl)
    names = errors if bones is None else bones
    assert max(float(errors[b].max()) for b in names) < 1e-3


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_known_elbow_and_knee_bend_comes_out_as_smpls_joint_rotations(
    tmp_path: Path, variant: str
) -> None:
    spec = dict(VARIANTS[variant])
    path = tmp_path / f"{variant}.bvh"
    write_variant(path, **spec)
    motion = load_motion(path)
    assert motion.fps == RATES.get(variant, 30.0)
    assert motion.num_frames == 3
    scale = 1.0 / spec.get("scale", 100.0)
    assert motion.meta["units_scale"] == pytest.approx(scale)
    roles = map_to_smpl(motion.skeleton).roles
    for name, _, j, _ in spec["rows"]:
        if j is not None and not JOINT_NAMES[j].startswith("spine"):  # spine: points between
            assert roles[JOINT_NAMES[j]] == name
    smpl = motion.to_smpl(fps=None)
    pose = smpl.body_pose.reshape(-1, 21, 3)
    np.testing.assert_allclose(pose, _known_bends(bool(spec.get("a_pose"))), atol=ATOL_RAD)
    np.testing.assert_allclose(smpl.global_orient, 0, atol=ATOL_RAD)
    # the root moves 0.3 m along SMPL's x (the body's left) over the clip
    np.testing.assert_allclose(smpl.transl[-1] - smpl.transl[0], [0.3, 0, 0], atol=1e-6)
    errors = bone_direction_errors(smpl)
    assert max(float(e.max()) for e in errors.values()) < 1e-3


def _renamed(rows: list, rename) -> list:
    """``rows`` with every name (and parent name) passed through ``rename``."""
    return [(rename(n), rename(p) if p else p, j, pt) for n, p, j, pt in rows]


SMPL_BVH = {  # SMPL's own joint names (smpl2bvh-style exports, SMPL's FBX rigs)
    "pelvis": "Pelvis",
    "left_hip": "{S}_Hip",
    "left_knee": "{S}_Knee",
    "left_ankle": "{S}_Ankle",
    "left_foot": "{S}_Foot",
    "spine1": "Spine1",
    "spine2": "Spine2",
    "spine3": "Spine3",
    "neck": "Neck",
    "head": "Head",
    "left_collar": "{S}_Collar",
    "left_shoulder": "{S}_Shoulder",
    "left_elbow": "{S}_Elbow",
    "left_wrist": "{S}_Wrist",
    "left_hand": "{S}_Hand",
}
UNREAL = {
    "pelvis": "pelvis",
    "left_hip": "thigh_{s}",
    "left_knee": "calf_{s}",
    "left_ankle": "foot_{s}",
    "left_foot": "ball_{s}",
    "spine1": "spine_01",
    "spine2": "spine_02",
    "spine3": "spine_03",
    "neck": "neck_01",
    "head": "head",
    "left_collar": "clavicle_{s}",
    "left_shoulder": "upperarm_{s}",
    "left_elbow": "lowerarm_{s}",
    "left_wrist": "hand_{s}",
}
UNITY = {  # Unity's humanoid avatar bones (and VRM's without the J_Bip_ prefix)
    "pelvis": "Hips",
    "left_hip": "{Side}UpperLeg",
    "left_knee": "{Side}LowerLeg",
    "left_ankle": "{Side}Foot",
    "left_foot": "{Side}Toes",
    "spine1": "Spine",
    "spine2": "Chest",
    "spine3": "UpperChest",
    "neck": "Neck",
    "head": "Head",
    "left_collar": "{Side}Shoulder",
    "left_shoulder": "{Side}UpperArm",
    "left_elbow": "{Side}LowerArm",
    "left_wrist": "{Side}Hand",
}


def _prefixed(names: dict[str, str], prefix: str) -> dict[str, str]:
    return {k: prefix + v for k, v in names.items()}


# Joint-naming schemes of widely used tools beside those of VARIANTS and test_data_foreign.py's
# rigs: each must map its names onto the SMPL joints they mean (roles) and give the known bends
NAMING = {
    "mixamo_second_character": _rows(_prefixed(BLENDER, "mixamorig2:")),
    "mixamo_prefix_glued": _rows(_prefixed(BLENDER, "mixamorig")),
    "humanik_character_namespace": _rows(_prefixed(BLENDER, "Character1_")),
    "lafan1": _rows({**BLENDER, "left_foot": "{Side}Toe"}),
    "rokoko": _rows(
        {
            **BLENDER,
            **{"left_hip": "{Side}Thigh", "left_knee": "{Side}Shin", "left_foot": "{Side}Toe"},
            **{"spine1": "Spine1", "spine2": "Spine2", "spine3": "Spine3"},
        },
        [("Spine4", "Spine3", None, 0.5 * (P["spine3"] + P["neck"]))],
    ),
    "unreal_mannequin": _rows(UNREAL),
    "unreal_upper_case_sides": _rows({k: v.replace("{s}", "{S}") for k, v in UNREAL.items()}),
    "xsens_mvn_t12_t8": _rows(
        {**XSENS, "pelvis": "Pelvis", "spine3": "T12"},
        [("T8", "T12", None, 0.5 * (P["spine3"] + P["neck"]))],
    ),
    "biped_001_underscores": _rows({k: v.replace("Bip01 ", "Bip001_") for k, v in BIPED.items()}),
    "unity_humanoid": _rows(UNITY),
    "smpl_names": _rows(SMPL_BVH),
    "smplx_lower_case": _renamed(
        _rows(SMPL_BVH), lambda n: n.lower().replace("l_", "left_").replace("r_", "right_")
    ),
    "smpl_fbx_m_avg": _under_root(_rows(_prefixed(SMPL_BVH, "m_avg_")), "m_avg_root"),
    "smpl_fbx_f_avg": _rows(_prefixed(SMPL_BVH, "f_avg_")),
    "maya_jnt_suffix": _renamed(_rows(SMPL_BVH), lambda n: f"{n}_JNT"),
    "maya_jnt_camel": _rows({k: v + "Jnt" for k, v in BLENDER.items()}),
}


@pytest.mark.parametrize("scheme", sorted(NAMING))
def test_tools_joint_names_put_the_known_bends_on_smpls_joints(tmp_path: Path, scheme: str) -> None:
    rows = NAMING[scheme]
    path = tmp_path / f"{scheme}.bvh"
    write_variant(path, rows, a_pose=True)
    motion = load_motion(path)
    roles = map_to_smpl(motion.skeleton).roles
    for name, _, j, _ in rows:
        if j is not None and not JOINT_NAMES[j].startswith("spine"):  # spine: points between
            assert roles[JOINT_NAMES[j]] == name
    smpl = motion.to_smpl(fps=None)
    np.testing.assert_allclose(
        smpl.body_pose.reshape(-1, 21, 3), _known_bends(a_pose=True), atol=ATOL_RAD
    )


def _root_channels(text: str, channels: list[str]) -> str:
    """``text`` with the root's channels replaced by ``channels`` (a subset of, or a new order
    for, the ones written), its columns moved along."""
    head, motion = text.split("MOTION")
    lines = head.splitlines()
    k = next(i for i, line in enumerate(lines) if "CHANNELS" in line)
    old = lines[k].split()[2:]
    lines[k] = lines[k].split("CHANNELS")[0] + f"CHANNELS {len(channels)} " + " ".join(channels)
    cols = [old.index(c) for c in channels]
    frames = motion.strip().splitlines()
    rows = [line.split() for line in frames[2:]]
    rows = [[r[c] for c in cols] + r[len(old) :] for r in rows]
    body = "\n".join(frames[:2] + [" ".join(r) for r in rows])
    return "\n".join(lines) + "\nMOTION\n" + body + "\n"


def _rotation_first(text: str) -> str:
    """A file of 6 XYZ channels on every joint with each joint's rotations before its
    positions (as some exporters order them)."""
    pos, rot = "Xposition Yposition Zposition", "Xrotation Yrotation Zrotation"
    head, motion = text.split("MOTION")
    frames = motion.strip().splitlines()
    rows = [line.split() for line in frames[2:]]
    rows = [sum((r[i + 3 : i + 6] + r[i : i + 3] for i in range(0, len(r), 6)), []) for r in rows]
    body = "\n".join(frames[:2] + [" ".join(r) for r in rows])
    return head.replace(f"{pos} {rot}", f"{rot} {pos}") + "MOTION\n" + body + "\n"


_POS = ["Xposition", "Yposition", "Zposition"]
_ZXY = ["Zrotation", "Xrotation", "Yrotation"]
CHANNEL_LAYOUTS = {
    # (edit of the file write_variant writes, whether the root moves)
    "root_rotation_only": (lambda t: _root_channels(t, _ZXY), False),
    "root_rotation_then_position": (lambda t: _root_channels(t, _ZXY + _POS), True),
    "root_position_only": (lambda t: _root_channels(t, _POS), True),
    "root_position_zyx": (lambda t: _root_channels(t, _POS[::-1] + _ZXY), True),
    "upper_case_channel_names": (lambda t: t.replace("rotation", "ROTATION"), True),
    "rotation_first_on_every_joint": (_rotation_first, True),
}


@pytest.mark.parametrize("layout", sorted(CHANNEL_LAYOUTS))
def test_channel_layouts_of_exporters_read_the_known_bends(tmp_path: Path, layout: str) -> None:
    # the root with 3 channels (rotations or positions only), positions after rotations, on
    # every joint with the rotations first: read by channel name, not by position in the list
    edit, moves = CHANNEL_LAYOUTS[layout]
    path = tmp_path / f"{layout}.bvh"
    six = layout == "rotation_first_on_every_joint"
    write_variant(path, _rows(MIXAMO), six=six, orders=("XYZ",) if six else ("ZXY",))
    path.write_text(edit(path.read_text()))
    smpl = load_motion(path).to_smpl(fps=None)
    np.testing.assert_allclose(
        smpl.body_pose.reshape(-1, 21, 3), _known_bends(a_pose=False), atol=ATOL_RAD
    )
    np.testing.assert_allclose(smpl.global_orient, 0, atol=ATOL_RAD)
    moved = smpl.transl[-1] - smpl.transl[0]
    np.testing.assert_allclose(moved, [0.3, 0, 0] if moves else [0, 0, 0], atol=1e-6)


def _messy(text: str) -> str:
    """``text`` as hand-edited or odd exporters write it: CRLF, several spaces and tabs between
    numbers, trailing whitespace, frame values in scientific notation, ``Frame Time`` with
    odd spacing and case."""
    head, motion = text.split("MOTION")
    lines = motion.strip().splitlines()
    rows = ["   ".join(f"{float(x):.12e}" for x in line.split()) + " \t" for line in lines[2:]]
    head = head.replace(" ", "  ").replace("\n", "  \r\n")
    frame_time = lines[1].split(":")[1].strip()
    out = ["MOTION", lines[0].replace(":", " :"), f"frame   time :\t{frame_time}"] + rows
    return head + "\r\n".join(out) + "\r\n"


def test_messy_text_reads_as_the_clean_file(tmp_path: Path) -> None:
    clean = tmp_path / "clean.bvh"
    write_variant(clean, _rows(MIXAMO), a_pose=True, six=True, indent="  ")
    messy = tmp_path / "messy.bvh"
    messy.write_bytes(_messy(clean.read_text()).encode())
    a, b = load_motion(clean), load_motion(messy)
    assert b.fps == a.fps == 30.0
    np.testing.assert_allclose(b.rotations, a.rotations, atol=1e-12)
    np.testing.assert_allclose(b.root_position, a.root_position, atol=1e-12)


@pytest.mark.parametrize(
    "header",
    [
        "Frame Time 0.0416667",
        "Frame Time= 0.0416667",
        "frame time =0.0416667",
        "FrameTime\t0.0416667",
    ],
)
def test_frame_time_without_a_colon_reads_as_the_clean_file(tmp_path: Path, header: str) -> None:
    # hand-edited files and some exporters write "Frame Time= 0.033" or "Frame Time 0.033":
    # one number after the key is unambiguous
    clean = tmp_path / "clean.bvh"
    write_variant(clean, _rows(MIXAMO), frame_time="0.0416667")
    odd = tmp_path / "odd.bvh"
    text = clean.read_text()
    odd.write_text(text.replace("Frame Time: 0.0416667", header).replace("Frames: 3", "Frames 3"))
    a, b = load_motion(clean), load_motion(odd)
    assert b.fps == a.fps == 24.0 and b.num_frames == 3
    np.testing.assert_array_equal(b.rotations, a.rotations)


@pytest.mark.parametrize("header", ["Frame Time 0.04 0.05", "Frame Time: 24 fps", "Frame Time="])
def test_frame_time_with_anything_but_one_number_is_an_error_naming_the_line(
    tmp_path: Path, header: str
) -> None:
    path = tmp_path / "bad.bvh"
    write_variant(path, _rows(MIXAMO))
    text = path.read_text().replace("Frame Time: 0.0333333", header)
    path.write_text(text)
    line = text.splitlines().index(header) + 1
    with pytest.raises(MotionFormatError, match=rf"bad\.bvh:{line}: bad MOTION header line"):
        load_motion(path)


def _explicit(rows: list) -> list:
    """Rows (name, parent, SMPL joint name or None, point) with ``{S}`` names and ``left``
    SMPL names written for both sides; a point is an SMPL joint name or ``(a, b, f)``, the point
    a fraction ``f`` of the way from joint ``a`` to ``b``."""

    def at(spec, side: str) -> np.ndarray:
        if isinstance(spec, str):
            return P[spec.replace("left", side)]
        a, b, f = spec
        return (1 - f) * P[a.replace("left", side)] + f * P[b.replace("left", side)]

    out = []
    for name, parent, smpl, point in rows:
        sides = ("left", "right") if "{S}" in name else ("left",)
        for side in sides:
            s = "L" if side == "left" else "R"
            j = J[smpl.replace("left", side)] if smpl else None
            par = parent.replace("{S}", s) if parent else None
            out.append((name.replace("{S}", s), par, j, at(point, side)))
    return out


# MakeHuman's default skeleton: every limb bone split in two numbered segments (upperleg01.L >
# upperleg02.L > lowerleg01.L > lowerleg02.L > foot.L), a shoulder01 bone between the clavicle
# and the upper arm, five spine and three neck bones
MAKEHUMAN = _explicit(
    [
        ("root", None, "pelvis", "pelvis"),
        ("spine05", "root", "spine1", "spine1"),
        ("spine04", "spine05", None, ("spine1", "spine2", 0.5)),
        ("spine03", "spine04", "spine2", "spine2"),
        ("spine02", "spine03", None, ("spine2", "spine3", 0.5)),
        ("spine01", "spine02", "spine3", "spine3"),
        ("neck01", "spine01", "neck", "neck"),
        ("neck02", "neck01", None, ("neck", "head", 0.4)),
        ("head", "neck02", "head", "head"),
        ("clavicle.{S}", "spine01", None, ("spine3", "left_collar", 0.6)),
        ("shoulder01.{S}", "clavicle.{S}", "left_collar", "left_collar"),
        ("upperarm01.{S}", "shoulder01.{S}", "left_shoulder", "left_shoulder"),
        ("upperarm02.{S}", "upperarm01.{S}", None, ("left_shoulder", "left_elbow", 0.5)),
        ("lowerarm01.{S}", "upperarm02.{S}", "left_elbow", "left_elbow"),
        ("lowerarm02.{S}", "lowerarm01.{S}", None, ("left_elbow", "left_wrist", 0.5)),
        ("wrist.{S}", "lowerarm02.{S}", "left_wrist", "left_wrist"),
        ("finger3-1.{S}", "wrist.{S}", "left_hand", "left_hand"),
        ("pelvis.{S}", "root", None, ("pelvis", "left_hip", 0.3)),
        ("upperleg01.{S}", "pelvis.{S}", "left_hip", "left_hip"),
        ("upperleg02.{S}", "upperleg01.{S}", None, ("left_hip", "left_knee", 0.5)),
        ("lowerleg01.{S}", "upperleg02.{S}", "left_knee", "left_knee"),
        ("lowerleg02.{S}", "lowerleg01.{S}", None, ("left_knee", "left_ankle", 0.5)),
        ("foot.{S}", "lowerleg02.{S}", "left_ankle", "left_ankle"),
        ("toe1-1.{S}", "foot.{S}", "left_foot", "left_foot"),
    ]
)
# Blender Rigify's deform bones: the same split with Blender's ".001" copies (DEF-thigh.L >
# DEF-thigh.L.001 > DEF-shin.L > DEF-shin.L.001 > DEF-foot.L); its numbered spine: spine.004 is
# the neck, spine.006 the head (no name says so)
RIGIFY = _explicit(
    [
        ("DEF-spine", None, "pelvis", "pelvis"),
        ("DEF-spine.001", "DEF-spine", "spine1", "spine1"),
        ("DEF-spine.002", "DEF-spine.001", "spine2", "spine2"),
        ("DEF-spine.003", "DEF-spine.002", "spine3", "spine3"),
        ("DEF-spine.004", "DEF-spine.003", "neck", "neck"),
        ("DEF-spine.005", "DEF-spine.004", None, ("neck", "head", 0.5)),
        ("DEF-spine.006", "DEF-spine.005", "head", "head"),
        ("DEF-shoulder.{S}", "DEF-spine.003", "left_collar", "left_collar"),
        ("DEF-upper_arm.{S}", "DEF-shoulder.{S}", "left_shoulder", "left_shoulder"),
        ("DEF-upper_arm.{S}.001", "DEF-upper_arm.{S}", None, ("left_shoulder", "left_elbow", 0.5)),
        ("DEF-forearm.{S}", "DEF-upper_arm.{S}.001", "left_elbow", "left_elbow"),
        ("DEF-forearm.{S}.001", "DEF-forearm.{S}", None, ("left_elbow", "left_wrist", 0.5)),
        ("DEF-hand.{S}", "DEF-forearm.{S}.001", "left_wrist", "left_wrist"),
        ("DEF-f_middle.01.{S}", "DEF-hand.{S}", "left_hand", "left_hand"),
        ("DEF-thigh.{S}", "DEF-spine", "left_hip", "left_hip"),
        ("DEF-thigh.{S}.001", "DEF-thigh.{S}", None, ("left_hip", "left_knee", 0.5)),
        ("DEF-shin.{S}", "DEF-thigh.{S}.001", "left_knee", "left_knee"),
        ("DEF-shin.{S}.001", "DEF-shin.{S}", None, ("left_knee", "left_ankle", 0.5)),
        ("DEF-foot.{S}", "DEF-shin.{S}.001", "left_ankle", "left_ankle"),
        ("DEF-toe.{S}", "DEF-foot.{S}", "left_foot", "left_foot"),
    ]
)
LIMBS = ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")


@pytest.mark.parametrize(("rig", "rows"), [("makehuman", MAKEHUMAN), ("rigify", RIGIFY)])
def test_limbs_split_in_numbered_segments_map_the_first_segment(
    tmp_path: Path, rig: str, rows: list
) -> None:
    # the knee is the first shin segment, the ankle the foot below the second (not the second
    # segment, which would put SMPL's ankle mid-shin); the second segments are twist helpers
    path = tmp_path / f"{rig}.bvh"
    write_variant(path, rows, a_pose=True, world=Z_UP, scale=10.0, orders=("XYZ",))
    motion = load_motion(path)
    roles = map_to_smpl(motion.skeleton).roles
    for name, _, j, _ in rows:
        if j is not None and JOINT_NAMES[j].split("_")[-1] in LIMBS + ("head",):
            assert roles[JOINT_NAMES[j]] == name
    # Rigify's neck is spine.004; of MakeHuman's two neck bones, the one where SMPL's neck is
    # (neck01 here, neck02 mid-neck)
    assert roles["neck"] == {"rigify": "DEF-spine.004", "makehuman": "neck01"}[rig]
    _assert_limbs_bend_as_known(
        motion.to_smpl(fps=None), bones=("thigh", "shin", "upper_arm", "forearm")
    )


# A generated Rigify rig exports its original bones (ORG-, the metarig's limbs unsplit) with
# mechanism bones (MCH-) between them: a parent switch between the shoulder and the upper arm at
# the shoulder joint (taken for it, it would be SMPL's collar), one above the thighs and one
# above the spine; an IK chain hanging off the shin carries a larger subtree than the foot
RIGIFY_ORG = _explicit(
    [
        ("MCH-torso.parent", "root", None, ("pelvis", "spine1", 0.0)),
        ("ORG-spine", "MCH-torso.parent", "pelvis", "pelvis"),
        ("ORG-spine.001", "ORG-spine", "spine1", "spine1"),
        ("ORG-spine.002", "ORG-spine.001", "spine2", "spine2"),
        ("ORG-spine.003", "ORG-spine.002", "spine3", "spine3"),
        ("MCH-ROT-neck", "ORG-spine.003", None, ("spine3", "neck", 0.5)),
        ("ORG-spine.004", "MCH-ROT-neck", "neck", "neck"),
        ("ORG-spine.005", "ORG-spine.004", None, ("neck", "head", 0.5)),
        ("ORG-spine.006", "ORG-spine.005", "head", "head"),
        ("ORG-shoulder.{S}", "ORG-spine.003", "left_collar", "left_collar"),
        ("MCH-upper_arm_parent.{S}", "ORG-shoulder.{S}", None, "left_shoulder"),
        ("ORG-upper_arm.{S}", "MCH-upper_arm_parent.{S}", "left_shoulder", "left_shoulder"),
        ("ORG-forearm.{S}", "ORG-upper_arm.{S}", "left_elbow", "left_elbow"),
        ("ORG-hand.{S}", "ORG-forearm.{S}", "left_wrist", "left_wrist"),
        ("ORG-f_middle.01.{S}", "ORG-hand.{S}", "left_hand", "left_hand"),
        ("MCH-thigh_parent.{S}", "ORG-spine", None, "left_hip"),
        ("ORG-thigh.{S}", "MCH-thigh_parent.{S}", "left_hip", "left_hip"),
        ("ORG-shin.{S}", "ORG-thigh.{S}", "left_knee", "left_knee"),
        ("MCH-shin_ik.{S}", "ORG-shin.{S}", None, ("left_knee", "left_ankle", 0.9)),
        ("MCH-foot_ik.{S}", "MCH-shin_ik.{S}", None, "left_ankle"),
        ("MCH-toe_ik.{S}", "MCH-foot_ik.{S}", None, "left_foot"),
        ("ORG-foot.{S}", "ORG-shin.{S}", "left_ankle", "left_ankle"),
        ("ORG-toe.{S}", "ORG-foot.{S}", "left_foot", "left_foot"),
    ]
)
# the same rig exported whole: its deform chain (DEF-, limbs in segments) hangs off ORG-spine,
# so that each DEF- bone is deeper than its ORG- twin
RIGIFY_FULL = RIGIFY_ORG + [(n, "ORG-spine" if p is None else p, j, x) for n, p, j, x in RIGIFY]


@pytest.mark.parametrize(("rig", "rows"), [("org", RIGIFY_ORG), ("full", RIGIFY_FULL)])
def test_rigify_org_bones_map_and_mechanism_bones_never_do(
    tmp_path: Path, rig: str, rows: list
) -> None:
    path = tmp_path / f"rigify_{rig}.bvh"
    write_variant(path, _under_root(rows, "root"), a_pose=True, world=Z_UP, scale=10.0)
    motion = load_motion(path)
    roles = map_to_smpl(motion.skeleton).roles
    assert not any(name.startswith("MCH-") for name in roles.values()), roles
    # the deform bones where a file holds both (the mesh follows them), else the originals
    prefix = "DEF-" if rig == "full" else "ORG-"
    want_roles = {
        "pelvis": "spine",
        "neck": "spine.004",
        "head": "spine.006",
        "left_collar": "shoulder.L",
        "left_shoulder": "upper_arm.L",
        "left_elbow": "forearm.L",
        "left_wrist": "hand.L",
        "left_hip": "thigh.L",
        "left_knee": "shin.L",
        "left_ankle": "foot.L",
        "left_foot": "toe.L",
        "right_collar": "shoulder.R",
        "right_ankle": "foot.R",
    }
    assert {k: roles[k] for k in want_roles} == {k: prefix + v for k, v in want_roles.items()}
    _assert_limbs_bend_as_known(motion.to_smpl(fps=None))


def test_decimal_commas_of_a_locale_formatted_export_read_as_points(tmp_path: Path) -> None:
    clean = tmp_path / "clean.bvh"
    write_variant(clean, _rows(BLENDER), a_pose=True, frame_time="0.0416667")
    text = clean.read_text()
    comma = tmp_path / "comma.bvh"
    comma.write_text(text.replace(".", ","))  # no names with dots here
    a, b = load_motion(clean), load_motion(comma)
    assert b.fps == a.fps == 24.0
    np.testing.assert_array_equal(b.rotations, a.rotations)
    np.testing.assert_array_equal(b.root_position, a.root_position)
    # commas as separators are not decimal commas: an error naming the line, not misread
    head, motion = text.split("MOTION")
    lines = motion.splitlines()
    lines[3] = ",".join(lines[3].split())
    bad = tmp_path / "separators.bvh"
    bad.write_text(head + "MOTION" + "\n".join(lines) + "\n")
    with pytest.raises(MotionFormatError, match=r"separators\.bvh:\d+: frame line has 1 numbers"):
        load_motion(bad)


# ---------------------------------------------------------------------------------------------
# AMASS / SMPL-family npz variants
# ---------------------------------------------------------------------------------------------


def _npz_pose(t: int) -> np.ndarray:
    """``(T, 66)``: the left elbow bent 90 degrees (``Ry(-90 deg)``) from frame 1 on."""
    poses = np.zeros((t, 66))
    poses[1:, 3 * J["left_elbow"] : 3 * J["left_elbow"] + 3] = [0, -np.pi / 2, 0]
    return poses


NPZ_VARIANTS = {
    # AMASS SMPL-X: poses (T, 165), mocap_frame_rate, 16 betas, gender a 0-d str array
    "smplx_165": lambda p: {
        "poses": np.concatenate([p, np.zeros((len(p), 99))], axis=1),
        "mocap_frame_rate": np.array(120.0),
        "betas": np.zeros(16),
        "gender": np.array("neutral"),
        "surface_model_type": np.array("smplx"),
    },
    # AMASS SMPL-X's split arrays only, float32, gender as bytes, betas (1, 16)
    "smplx_split_float32": lambda p: {
        "root_orient": p[:, :3].astype(np.float32),
        "pose_body": p[:, 3:66].astype(np.float32),
        "pose_hand": np.zeros((len(p), 90), np.float32),
        "pose_jaw": np.zeros((len(p), 3), np.float32),
        "pose_eye": np.zeros((len(p), 6), np.float32),
        "mocap_frame_rate": np.float32(120),
        "betas": np.zeros((1, 16), np.float32),
        "gender": np.array(b"female"),
    },
    # the body alone, no hands (SMPL-X tools, HumanML3D-style pipelines): poses (T, 66)
    "body_66": lambda p: {"poses": p, "mocap_frame_rate": np.array(120.0), "betas": np.zeros(10)},
    # the same per joint: (T, 22, 3)
    "body_22_joints": lambda p: {"poses": p.reshape(len(p), 22, 3), "mocap_framerate": 120},
    # AMASS SMPL-X G's split arrays without hands: root_orient + pose_body (T, 63)
    "root_orient_pose_body": lambda p: {
        "root_orient": p[:, :3],
        "pose_body": p[:, 3:],
        "mocap_frame_rate": np.array(120.0),
    },
    # AMASS SMPL-H: poses (T, 156), mocap_framerate a 0-d float64, 10 betas, gender str
    "smplh_156": lambda p: {
        "poses": np.concatenate([p, np.zeros((len(p), 90))], axis=1),
        "mocap_framerate": np.array(120.0),
        "betas": np.zeros(10),
        "gender": "male",
        "dmpls": np.zeros((len(p), 8)),
    },
}


@pytest.mark.parametrize("variant", sorted(NPZ_VARIANTS))
def test_amass_variants_give_the_elbow_bend_back(tmp_path: Path, variant: str) -> None:
    t = 4
    arrays = NPZ_VARIANTS[variant](_npz_pose(t))
    arrays["trans"] = np.zeros((t, 3), dtype=arrays.get("root_orient", np.zeros(1)).dtype)
    path = tmp_path / f"{variant}.npz"
    np.savez(path, **arrays)
    smpl = load_motion(path).to_smpl(fps=None)
    assert smpl.fps == 120.0 and smpl.num_frames == t
    want = np.zeros((t, 21, 3))
    want[1:, J["left_elbow"] - 1] = [0, -np.pi / 2, 0]
    atol = 1e-6 if "float32" in variant else 1e-12
    np.testing.assert_allclose(smpl.body_pose.reshape(t, 21, 3), want, atol=atol)
    # AMASS's z-up world turned into SMPL's y-up: the root turned by -90 degrees about x
    np.testing.assert_allclose(smpl.global_orient, [[-np.pi / 2, 0, 0]] * t, atol=atol)


def _stand_in_joints(t: int) -> np.ndarray:
    """Joint positions ``(T, 22, 3)`` (metres) of the stand-in body by forward kinematics: the
    left knee bending while the body walks 1.5 m, as HumanML3D's ``new_joints`` hold them."""
    import torch

    from advprior.body.kinematics import forward_kinematics

    s = np.linspace(0, 1, t)[:, None]
    body = np.zeros((t, 63))
    body[:, 9] = 1.2 * np.sin(6 * s[:, 0]) ** 2  # left knee
    body[:, 47] = -0.3  # left shoulder
    pos = forward_kinematics(
        torch.zeros(t, 3, dtype=torch.float64),
        torch.tensor(body),
        transl=torch.tensor(np.c_[0.5 * s, 0 * s, 1.5 * s]),
    )
    return pos.numpy()[:, :22]


@pytest.mark.parametrize("layout", ["flat_66", "per_joint_22"])
def test_joint_positions_under_poses_are_refused_not_read_as_rotations(
    tmp_path: Path, layout: str
) -> None:
    # (T, 66) and (T, 22, 3) are the body's rotations, but also 22 joints' positions: read as
    # rotations, positions import silently as another motion
    joints = _stand_in_joints(40).astype(np.float32)
    poses = joints.reshape(40, 66) if layout == "flat_66" else joints
    path = tmp_path / f"{layout}.npz"
    np.savez(path, poses=poses, trans=np.zeros((40, 3)), mocap_framerate=20.0)
    shape = re.escape(str(poses.shape))
    with pytest.raises(
        MotionFormatError,
        match=rf"{layout}\.npz: 'poses' of shape {shape} holds "
        r"joint positions, not rotations.*new_joints",
    ):
        load_motion(path)


def test_a_real_clips_body_rotations_read_back_from_poses_66(
    tmp_path: Path, fixture_mocap: Path
) -> None:
    # a captured clip (CMU 02_03, retargeted to SMPL) saved as body-only poses: not taken for
    # joint positions, and read back as the same rotations
    smpl = load_motion(fixture_mocap / "cmu_asfamc/02/02_03.amc").to_smpl(fps=30)
    poses = np.concatenate([smpl.global_orient, smpl.body_pose], axis=1)
    assert poses.shape[1] == 66
    for name, arr in (("flat", poses), ("joints", poses.reshape(-1, 22, 3))):
        path = tmp_path / f"{name}.npz"
        np.savez(path, poses=arr, trans=smpl.transl, mocap_frame_rate=30.0)
        back = load_motion(path, up="y").to_smpl(fps=None)
        np.testing.assert_allclose(back.body_pose, smpl.body_pose, atol=1e-9)
        np.testing.assert_allclose(back.global_orient, smpl.global_orient, atol=1e-9)
    # other widths are still refused, naming what is read
    np.savez(tmp_path / "odd.npz", poses=poses[:, :60], mocap_frame_rate=30.0)
    with pytest.raises(MotionFormatError, match=r"odd\.npz: 'poses' must be .*\(T, 66\) root"):
        load_motion(tmp_path / "odd.npz")


@pytest.mark.parametrize("layout", ["flat_66", "per_joint_22"])
def test_npy_body_poses_read_by_the_npz_readers_rule(tmp_path: Path, layout: str) -> None:
    # an .npy of the body alone, (T, 66) or per joint (T, 22, 3), reads as an npz's 'poses' of
    # that shape does (one rule): the elbow bend back, in the .npy's y-up world
    from advprior.data.dataset import classify

    t = 4
    poses = _npz_pose(t)
    arr = poses if layout == "flat_66" else poses.reshape(t, 22, 3)
    np.save(tmp_path / "body.npy", arr)
    assert classify(tmp_path / "body.npy") is None  # a build reads it
    smpl = load_motion(tmp_path / "body.npy", fps=20).to_smpl(fps=None)
    assert smpl.fps == 20.0 and smpl.num_frames == t
    np.testing.assert_allclose(smpl.body_pose, poses[:, 3:], atol=1e-12)
    np.testing.assert_allclose(smpl.global_orient, 0, atol=1e-12)
    # the same numbers under an npz's 'poses' read the same
    np.savez(tmp_path / "body.npz", poses=arr, mocap_framerate=20.0)
    same = load_motion(tmp_path / "body.npz", up="y").to_smpl(fps=None)
    np.testing.assert_array_equal(same.body_pose, smpl.body_pose)
    # joint positions of that shape are refused, by the reader and by a build's check
    joints = _stand_in_joints(40).astype(np.float32)
    np.save(tmp_path / "joints.npy", joints.reshape(40, 66) if layout == "flat_66" else joints)
    with pytest.raises(
        MotionFormatError, match=r"joints\.npy: the array of shape .* holds joint positions"
    ):
        load_motion(tmp_path / "joints.npy", fps=20)
    assert "holds joint positions" in classify(tmp_path / "joints.npy")
    # degrees are refused as in an npz
    np.save(tmp_path / "degrees.npy", np.rad2deg(arr) + 10.0 * (arr == 0))
    with pytest.raises(MotionFormatError, match=r"degrees\.npy: .*degrees"):
        load_motion(tmp_path / "degrees.npy", fps=20)
    # other shapes are still refused, naming what is read
    np.save(tmp_path / "odd.npy", np.zeros((t, 60)))
    with pytest.raises(MotionFormatError, match=r"odd\.npy: the array must be .*\(T, 66\)"):
        load_motion(tmp_path / "odd.npy", fps=20)
    assert "not SMPL-family poses" in classify(tmp_path / "odd.npy")


def test_pickles_are_refused_without_running_them_saying_what_the_file_is(
    tmp_path: Path,
) -> None:
    import pickle

    ran = tmp_path / "ran"

    class Payload:  # unpickling it would create the file "ran"
        def __reduce__(self):
            return (Path.touch, (ran,))

    t = 3
    # a pickle saved under .npz (an SMPL .pkl renamed, np.save of a dict with allow_pickle)
    renamed = tmp_path / "renamed.npz"
    renamed.write_bytes(pickle.dumps({"poses": np.zeros((t, 156)), "x": Payload()}, protocol=4))
    with pytest.raises(MotionFormatError, match=r"renamed\.npz: not an npz archive.*pickle"):
        load_motion(renamed)
    # an .npz whose only members are pickled objects
    obj = np.empty(1, dtype=object)
    obj[0] = {"poses": np.zeros((t, 156)), "x": Payload()}
    np.savez(tmp_path / "objects.npz", data=obj)
    with pytest.raises(MotionFormatError, match=r"objects\.npz: .*'data' hold pickled"):
        load_motion(tmp_path / "objects.npz")
    # poses itself an object array
    rows = np.empty(t, dtype=object)
    for i in range(t):
        rows[i] = np.zeros(156)
    np.savez(tmp_path / "object_poses.npz", poses=rows, mocap_framerate=30.0)
    with pytest.raises(MotionFormatError, match=r"object_poses\.npz: 'poses' holds Python obj"):
        load_motion(tmp_path / "object_poses.npz")
    # a single .npy saved under .npz
    np.save(tmp_path / "single.npy", np.zeros((t, 156)))
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(MotionFormatError, match=r"single\.npz: .*a single \.npy array"):
        load_motion(tmp_path / "single.npz")
    assert not ran.exists()


def _write_turned(path: Path, rows: list, t: int, rest_frames: int = 1) -> None:
    """Blender-style z-up rest offsets with every frame's root turned by ``Rx(-90 deg)`` in its
    channels, so that each frame stands along +y; the first ``rest_frames`` frames are the
    rest pose, the others bend the elbow and the knee (:func:`_pose`)."""
    write_variant(path, rows, world=Z_UP, t=t)
    head, motion = path.read_text().split("MOTION")
    lines = motion.strip().splitlines()
    lines[3 : 2 + rest_frames] = [lines[2]] * (rest_frames - 1)
    for i in range(2, len(lines)):
        values = lines[i].split()
        values[3:6] = ["0", "-90", "0"]  # the root's Zrotation Xrotation Yrotation
        lines[i] = " ".join(values)
    path.write_text(head + "MOTION\n" + "\n".join(lines) + "\n")


def test_a_world_turned_in_the_roots_channels_but_not_the_rest_is_warned_about(
    tmp_path: Path,
) -> None:
    # Blender-style: the rest offsets z up, the root's channels turning every frame by -90
    # degrees about x, so that each frame stands along +y. The world's up comes from the rest
    # (a frame cannot tell this from a body lying through the whole clip): the body pose is
    # right, the global orientation turned, and the user is told.
    path = tmp_path / "turned.bvh"
    rows = _under_root(_rows(BLENDER), "Armature")
    _write_turned(path, rows, t=4, rest_frames=3)  # frames 0-2 stand at rest (most frames)
    turned = r"turned\.bvh: the rest skeleton stands along \+z .*load it with up=\"y\""
    with pytest.warns(RetargetWarning, match=turned):
        smpl = load_motion(path).to_smpl(fps=None)
    want = np.zeros((4, 21, 3))
    want[3, J["left_elbow"] - 1] = [0, -np.pi / 2, 0]
    want[3, J["right_knee"] - 1] = [np.pi / 2, 0, 0]
    np.testing.assert_allclose(smpl.body_pose.reshape(4, 21, 3), want, atol=ATOL_RAD)
    np.testing.assert_allclose(smpl.global_orient, [[-np.pi / 2, 0, 0]] * 4, atol=ATOL_RAD)
    # up="y" says where the frames stand: calibrated on a standing frame (frame 0), upright
    with pytest.warns(RetargetWarning, match=r"calibrated on frame 0"):
        upright = load_motion(path, up="y").to_smpl(fps=None)
    np.testing.assert_allclose(upright.body_pose.reshape(4, 21, 3), want, atol=ATOL_RAD)
    np.testing.assert_allclose(upright.global_orient, 0, atol=ATOL_RAD)
    with pytest.raises(MotionFormatError, match=r"up=\+x was given.*no frame"):
        load_motion(path, up="x").to_smpl(fps=None)
    with pytest.raises(ValueError, match=r"up must be one of"):
        load_motion(path, up="up")
    # the same file without the turn: no warning
    write_variant(path, rows, world=Z_UP, t=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RetargetWarning)
        load_motion(path).to_smpl(fps=None)


def _sequence(data, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(body_pose, global_orient)`` of the dataset sequence called ``name``."""
    k = list(data.sequence_names).index(name)
    rows = (data.sequence == k).numpy()
    return data.body_pose.numpy()[rows], data.global_orient.numpy()[rows]


def test_data_build_up_stands_the_turned_files_of_a_collection_up(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # a collection with one turned Blender export among files that are not: --up names the
    # turned ones (a glob on the path below the folder given), the others are read as before,
    # and the build records it
    from advprior.cli import main
    from advprior.data import load_dataset

    lab = tmp_path / "lab"
    (lab / "blender").mkdir(parents=True)
    (lab / "mocap").mkdir()
    rows = _under_root(_rows(BLENDER), "Armature")
    _write_turned(lab / "blender" / "turned.bvh", rows, t=12, rest_frames=8)  # most stand
    write_variant(lab / "mocap" / "plain.bvh", _rows(MIXAMO), t=12)
    plain = "mocap/plain.bvh"
    turned = "blender/turned.bvh"

    assert main(["data", "build", str(lab), "--out", str(tmp_path / "default.npz")]) == 0
    default = load_dataset(tmp_path / "default.npz")
    assert "up" not in default.meta["build"]  # with no --up, the metadata is as it was
    assert any("turned.bvh: the rest skeleton stands" in m for _, m in default.meta["notes"])
    _, orient = _sequence(default, turned)
    np.testing.assert_allclose(orient, [[-np.pi / 2, 0, 0]] * len(orient), atol=1e-5)
    capsys.readouterr()

    argv = ["data", "build", str(lab), "--out", str(tmp_path / "up.npz")]
    argv += ["--up", "blender/*.bvh=y", "--up", "nothing/*=z"]
    assert main(argv) == 0
    assert "up pattern 'nothing/*' matched no motion file" in capsys.readouterr().err
    built = load_dataset(tmp_path / "up.npz")
    assert built.meta["build"]["up"] == {"blender/*.bvh": "y", "nothing/*": "z"}
    pose, orient = _sequence(built, turned)
    np.testing.assert_allclose(orient, 0, atol=1e-5)  # float32 in the dataset
    want = np.zeros((len(pose), 21, 3))
    want[-4:, J["left_elbow"] - 1] = [0, -np.pi / 2, 0]  # the last 4 frames bend
    want[-4:, J["right_knee"] - 1] = [np.pi / 2, 0, 0]
    np.testing.assert_allclose(pose.reshape(-1, 21, 3), want, atol=1e-5)
    assert not any("turned.bvh: the rest skeleton stands" in m for _, m in built.meta["notes"])
    for a, b in zip(_sequence(built, plain), _sequence(default, plain), strict=True):
        np.testing.assert_array_equal(a, b)  # the files --up does not match: unchanged


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("blender/*.bvh=up", r"--up blender/\*\.bvh=: the axis must be one of x, y, z"),
        ("y", r"--up takes GLOB=AXIS"),
    ],
)
def test_data_build_up_refuses_what_is_not_glob_and_axis(
    tmp_path: Path, capsys: pytest.CaptureFixture, item: str, message: str
) -> None:
    from advprior.cli import main

    write_variant(tmp_path / "a.bvh", _rows(MIXAMO), t=12)
    out = tmp_path / "d.npz"
    assert main(["data", "build", str(tmp_path), "--out", str(out), "--up", item]) != 0
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def _turned_amc(fixture_mocap: Path, folder: Path) -> Path:
    """CMU 02_03 (y-up) with the world turned by ``Rx(-90 deg)`` in the root's channels only:
    its ASF rest stands along +y, its frames along -z."""
    src = fixture_mocap / "cmu_asfamc" / "02"
    folder.mkdir(parents=True)
    (folder / "02.asf").write_bytes((src / "02.asf").read_bytes())
    turn = Rotation.from_euler("x", -90, degrees=True)
    lines = []
    for line in (src / "02_03.amc").read_text().splitlines():
        if line.startswith("root "):
            v = np.array(line.split()[1:], dtype=float)  # TX TY TZ RX RY RZ, axis XYZ
            rot = turn * Rotation.from_euler("xyz", v[3:], degrees=True)
            v = np.r_[turn.apply(v[:3]), rot.as_euler("xyz", degrees=True)]
            line = "root " + " ".join(f"{x:.9f}" for x in v)
        lines.append(line)
    (folder / "02_03.amc").write_text("\n".join(lines) + "\n")
    return folder / "02_03.amc"


def _mean_up(orient: np.ndarray) -> np.ndarray:
    """The pelvis's up (+y) in SMPL's world, averaged over the frames."""
    return Rotation.from_rotvec(orient).apply([0.0, 1.0, 0.0]).mean(axis=0)


def test_up_is_honoured_by_asf_amc_and_deepmimic_files(tmp_path: Path, fixture_mocap: Path) -> None:
    # up= (and a build's --up) means for ASF/AMC and DeepMimic what it means for BVH: the
    # world's up in the file. Their own up (CMU's, DeepMimic's y) read as before; an AMC whose
    # frames stand along another axis than its rest stands up with up= naming that axis.
    amc = fixture_mocap / "cmu_asfamc" / "02" / "02_03.amc"
    mimic = fixture_mocap / "cmu_deepmimic_retarget_jump" / "02" / "02_03.txt"
    for path in (amc, mimic):
        plain = load_motion(path).to_smpl(fps=None)
        same = load_motion(path, up="y").to_smpl(fps=None)
        np.testing.assert_array_equal(same.body_pose, plain.body_pose)
        np.testing.assert_array_equal(same.global_orient, plain.global_orient)
        name = re.escape(path.name)
        with pytest.raises(MotionFormatError, match=rf"{name}: up=\+x was given"):
            load_motion(path, up="x").to_smpl(fps=None)  # not ignored: nothing stands along x
        with pytest.raises(ValueError, match=r"up must be one of"):
            load_motion(path, up="up")
    turned = _turned_amc(fixture_mocap, tmp_path / "turned")
    lying = load_motion(turned).to_smpl(fps=None)
    assert _mean_up(lying.global_orient) @ [0, 0, -1] > 0.99  # read lying along -z
    with pytest.warns(RetargetWarning, match=r"calibrated on frame"):
        stood = load_motion(turned, up="-z").to_smpl(fps=None)
    assert _mean_up(stood.global_orient)[1] > 0.9


def test_data_build_up_applies_to_asf_amc_and_deepmimic_files(
    tmp_path: Path, fixture_mocap: Path
) -> None:
    # a build's --up reaches ASF/AMC and DeepMimic files (not skipped, not ignored)
    from advprior.cli import main
    from advprior.data import load_dataset

    lab = tmp_path / "lab"
    _turned_amc(fixture_mocap, lab / "turned")
    mimic = fixture_mocap / "cmu_deepmimic_retarget_jump"
    (lab / "mimic" / "02").mkdir(parents=True)
    for rel in ("humanoid3d_jumper60kg_character.txt", "02/02_03.txt"):
        (lab / "mimic" / rel).write_bytes((mimic / rel).read_bytes())
    argv = ["data", "build", str(lab), "--out", str(tmp_path / "d.npz")]
    argv += ["--up", "turned/*.amc=-z", "--up", "mimic/*/*.txt=y"]
    assert main(argv) == 0
    built = load_dataset(tmp_path / "d.npz")
    assert built.meta["build"]["up"] == {"turned/*.amc": "-z", "mimic/*/*.txt": "y"}
    assert not [s for s in built.meta["skipped"] if s[0].endswith((".amc", "02_03.txt"))]
    _, orient = _sequence(built, "turned/02_03.amc")
    assert _mean_up(orient.astype(np.float64))[1] > 0.9  # stood up
    want = load_motion(mimic / "02" / "02_03.txt").without_rest_frames().to_smpl(30.0)
    pose, orient = _sequence(built, "mimic/02/02_03.txt")
    np.testing.assert_allclose(pose, want.body_pose, atol=1e-5)  # y: as without --up
