"""Motion files in the layouts other tools write, checked against the files' own definitions.

Every file is written here, from the format's specification, in the dialect of one tool (Mixamo,
cgspeed's CMU conversion, Blender, 3ds Max Biped, Unreal, MotionBuilder/HumanIK, Truebones-style
text, LAFAN1's rest pose; Acclaim ASF/AMC dialects; AMASS SMPL-H/SMPL-X npz). Nothing is
committed: each test writes its few-frame files into ``tmp_path``. A file must import *correctly*:
the posed joints equal an independent forward kinematics of the numbers printed in the file
(elementary rotation matrices here, not the package's), or the same motion written in two layouts
gives the same SMPL poses; or it fails with a ``MotionFormatError`` naming the file.

Tolerances: both routes evaluate the same printed numbers in float64 through at most ~10 levels
of a kinematic chain of metre-sized offsets, so they agree to ~10 * 4 eps(float64) m ~ 1e-14 m;
1e-9 m / 1e-7 rad leave room for the angle conversions and are still a million times below what
a convention error (a wrong Euler order, unit or axis) gives (centimetres, degrees).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from advprior.data import bone_direction_errors, load_motion
from advprior.data.dataset import build_dataset
from advprior.data.naming import map_to_smpl
from advprior.errors import MotionFormatError, RetargetWarning
from advprior.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS

ATOL_M = 1e-9
ATOL_RAD = 1e-7
P = {n: REST_JOINTS[i] for i, n in enumerate(JOINT_NAMES)}
R6 = ["Xposition", "Yposition", "Zposition"]
ZXY = ["Zrotation", "Xrotation", "Yrotation"]
ZYX = ["Zrotation", "Yrotation", "Xrotation"]
XYZ = ["Xrotation", "Yrotation", "Zrotation"]
Z_UP = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # a y-up body in a z-up world


def v(*a: float) -> np.ndarray:
    return np.array(a, dtype=float)


def elem(axis: str, deg: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` about ``axis`` by ``deg`` degrees (column vectors)."""
    a = np.radians(deg)
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    m = {
        "x": [[o, z, z], [z, c, -s], [z, s, c]],
        "y": [[c, z, s], [z, o, z], [-s, z, c]],
        "z": [[c, -s, z], [s, c, z], [z, z, o]],
    }[axis]
    return np.moveaxis(np.array(m), (0, 1), (-2, -1))


# ---------------------------------------------------------------------------------------------
# BVH: a writer for any layout, and its forward kinematics by the BVH definition
# ---------------------------------------------------------------------------------------------

# (name, parent, rest point in metres: y up, facing +z, T-pose). "{Side}"/"{S}"/"{s}" names are
# written for both sides (Left/L/l with the point as given, Right/R/r mirrored in x).
MIXAMO = [
    ("mixamorig:Hips", None, P["pelvis"]),
    ("mixamorig:{Side}UpLeg", "mixamorig:Hips", P["left_hip"]),
    ("mixamorig:{Side}Leg", "mixamorig:{Side}UpLeg", P["left_knee"]),
    ("mixamorig:{Side}Foot", "mixamorig:{Side}Leg", P["left_ankle"]),
    ("mixamorig:{Side}ToeBase", "mixamorig:{Side}Foot", P["left_foot"]),
    ("mixamorig:{Side}Toe_End", "mixamorig:{Side}ToeBase", P["left_foot"] + v(0, 0, 0.05)),
    ("mixamorig:Spine", "mixamorig:Hips", P["spine1"]),
    ("mixamorig:Spine1", "mixamorig:Spine", P["spine2"]),
    ("mixamorig:Spine2", "mixamorig:Spine1", P["spine3"]),
    ("mixamorig:Neck", "mixamorig:Spine2", P["neck"]),
    ("mixamorig:Head", "mixamorig:Neck", P["head"]),
    ("mixamorig:HeadTop_End", "mixamorig:Head", P["head"] + v(0, 0.18, 0)),
    ("mixamorig:{Side}Shoulder", "mixamorig:Spine2", P["left_collar"]),
    ("mixamorig:{Side}Arm", "mixamorig:{Side}Shoulder", P["left_shoulder"]),
    ("mixamorig:{Side}ForeArm", "mixamorig:{Side}Arm", P["left_elbow"]),
    ("mixamorig:{Side}Hand", "mixamorig:{Side}ForeArm", P["left_wrist"]),
    ("mixamorig:{Side}HandThumb1", "mixamorig:{Side}Hand", P["left_wrist"] + v(0.02, -0.01, 0.03)),
    ("mixamorig:{Side}HandMiddle1", "mixamorig:{Side}Hand", P["left_wrist"] + v(0.09, 0, 0)),
    ("mixamorig:{Side}HandMiddle2", "mixamorig:{Side}HandMiddle1", P["left_wrist"] + v(0.13, 0, 0)),
]
CGSPEED = [  # cgspeed's MotionBuilder-friendly CMU conversion (CMU's ASF unit, hip-offset joints)
    ("Hips", None, P["pelvis"]),
    ("{S}HipJoint", "Hips", P["pelvis"]),
    ("{Side}UpLeg", "{S}HipJoint", P["left_hip"]),
    ("{Side}Leg", "{Side}UpLeg", P["left_knee"]),
    ("{Side}Foot", "{Side}Leg", P["left_ankle"]),
    ("{Side}ToeBase", "{Side}Foot", P["left_foot"]),
    ("LowerBack", "Hips", P["pelvis"] + v(0, 0.02, 0)),
    ("Spine", "LowerBack", P["spine2"]),
    ("Spine1", "Spine", P["spine3"]),
    # CMU's lowerneck > upperneck: the first starts low, with the clavicles, the second where
    # SMPL's neck is (its joint positions along the spine: 0.61-0.73 and 0.81-0.87 of the way)
    ("Neck", "Spine1", 0.6 * P["spine3"] + 0.4 * P["neck"]),
    ("Neck1", "Neck", P["neck"]),
    ("Head", "Neck1", P["head"]),
    ("{Side}Shoulder", "Spine1", P["left_collar"]),
    ("{Side}Arm", "{Side}Shoulder", P["left_shoulder"]),
    ("{Side}ForeArm", "{Side}Arm", P["left_elbow"]),
    ("{Side}Hand", "{Side}ForeArm", P["left_wrist"]),
    ("{Side}FingerBase", "{Side}Hand", P["left_wrist"] + v(0.03, 0, 0)),
    ("{Side}HandIndex1", "{Side}FingerBase", P["left_wrist"] + v(0.07, 0, 0)),
    ("{S}Thumb", "{Side}Hand", P["left_wrist"] + v(0.02, 0, 0.03)),
]
BIPED = [  # 3ds Max Biped: names with spaces, the thighs hang from "Bip01 Spine"
    ("Bip01", None, P["pelvis"]),
    ("Bip01 Pelvis", "Bip01", P["pelvis"]),
    ("Bip01 Spine", "Bip01 Pelvis", P["pelvis"] + v(0, 0.08, -0.01)),
    ("Bip01 {S} Thigh", "Bip01 Spine", P["left_hip"]),
    ("Bip01 {S} Calf", "Bip01 {S} Thigh", P["left_knee"]),
    ("Bip01 {S} Foot", "Bip01 {S} Calf", P["left_ankle"]),
    ("Bip01 {S} Toe0", "Bip01 {S} Foot", P["left_foot"]),
    ("Bip01 Spine1", "Bip01 Spine", P["spine2"]),
    ("Bip01 Spine2", "Bip01 Spine1", P["spine3"]),
    ("Bip01 Neck", "Bip01 Spine2", P["neck"]),
    ("Bip01 Head", "Bip01 Neck", P["head"]),
    ("Bip01 {S} Clavicle", "Bip01 Neck", P["left_collar"]),
    ("Bip01 {S} UpperArm", "Bip01 {S} Clavicle", P["left_shoulder"]),
    ("Bip01 {S} Forearm", "Bip01 {S} UpperArm", P["left_elbow"]),
    ("Bip01 {S} Hand", "Bip01 {S} Forearm", P["left_wrist"]),
    ("Bip01 {S} Finger0", "Bip01 {S} Hand", P["left_wrist"] + v(0.02, 0, 0.03)),
    ("Bip01 {S} Finger2", "Bip01 {S} Hand", P["left_wrist"] + v(0.09, 0, 0)),
]
UNREAL = [  # UE mannequin: a floor root, twist bones as leaf siblings, IK bones, a weapon
    ("root", None, v(0, 0, 0)),
    ("pelvis", "root", P["pelvis"]),
    ("thigh_{s}", "pelvis", P["left_hip"]),
    ("thigh_twist_01_{s}", "thigh_{s}", 0.5 * (P["left_hip"] + P["left_knee"])),
    ("calf_{s}", "thigh_{s}", P["left_knee"]),
    ("calf_twist_01_{s}", "calf_{s}", 0.5 * (P["left_knee"] + P["left_ankle"])),
    ("foot_{s}", "calf_{s}", P["left_ankle"]),
    ("ball_{s}", "foot_{s}", P["left_foot"]),
    ("spine_01", "pelvis", P["spine1"]),
    ("spine_02", "spine_01", P["spine2"]),
    ("spine_03", "spine_02", P["spine3"]),
    ("neck_01", "spine_03", P["neck"]),
    ("head", "neck_01", P["head"]),
    ("clavicle_{s}", "spine_03", P["left_collar"]),
    ("upperarm_{s}", "clavicle_{s}", P["left_shoulder"]),
    ("upperarm_twist_01_{s}", "upperarm_{s}", 0.5 * (P["left_shoulder"] + P["left_elbow"])),
    ("lowerarm_{s}", "upperarm_{s}", P["left_elbow"]),
    ("lowerarm_twist_01_{s}", "lowerarm_{s}", 0.5 * (P["left_elbow"] + P["left_wrist"])),
    ("hand_{s}", "lowerarm_{s}", P["left_wrist"]),
    ("middle_01_{s}", "hand_{s}", P["left_wrist"] + v(0.09, 0, 0)),
    ("weapon_{s}", "hand_{s}", P["left_wrist"] + v(0.05, -0.03, 0.04)),
    ("ik_foot_root", "root", v(0, 0, 0)),
    ("ik_foot_{s}", "ik_foot_root", P["left_ankle"]),
]


def _mid(a: str, b: str) -> np.ndarray:
    return 0.5 * (P[a] + P[b])


HUMANIK = [  # MotionBuilder HumanIK with in-line Roll bones splitting every limb segment
    ("Hips", None, P["pelvis"]),
    ("{Side}UpLeg", "Hips", P["left_hip"]),
    ("{Side}UpLegRoll", "{Side}UpLeg", _mid("left_hip", "left_knee")),
    ("{Side}Leg", "{Side}UpLegRoll", P["left_knee"]),
    ("{Side}LegRoll", "{Side}Leg", _mid("left_knee", "left_ankle")),
    ("{Side}Foot", "{Side}LegRoll", P["left_ankle"]),
    ("{Side}ToeBase", "{Side}Foot", P["left_foot"]),
    ("Spine", "Hips", P["spine1"]),
    ("Spine1", "Spine", P["spine2"]),
    ("Spine2", "Spine1", P["spine3"]),
    ("Neck", "Spine2", P["neck"]),
    ("Head", "Neck", P["head"]),
    ("{Side}Shoulder", "Spine2", P["left_collar"]),
    ("{Side}Arm", "{Side}Shoulder", P["left_shoulder"]),
    ("{Side}ArmRoll", "{Side}Arm", _mid("left_shoulder", "left_elbow")),
    ("{Side}ForeArm", "{Side}ArmRoll", P["left_elbow"]),
    ("{Side}ForeArmRoll", "{Side}ForeArm", _mid("left_elbow", "left_wrist")),
    ("{Side}Hand", "{Side}ForeArmRoll", P["left_wrist"]),
    ("{Side}HandMiddle1", "{Side}Hand", P["left_wrist"] + v(0.09, 0, 0)),
]
_SMPL_BVH = ["Pelvis", "L_Hip", "R_Hip", "Spine1", "L_Knee", "R_Knee", "Spine2", "L_Ankle"]
_SMPL_BVH += ["R_Ankle", "Spine3", "L_Foot", "R_Foot", "Neck", "L_Collar", "R_Collar", "Head"]
_SMPL_BVH += ["L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hand"]
_SMPL_BVH += ["R_Hand"]
SMPL_NAMES = [  # smpl2bvh-style exports of SMPL motion
    (n, _SMPL_BVH[PARENTS[i]] if PARENTS[i] >= 0 else None, P[JOINT_NAMES[i]])
    for i, n in enumerate(_SMPL_BVH)
]


def _side(name: str, s: str) -> str:
    word = {"L": "Left", "R": "Right"}[s]
    return name.replace("{Side}", word).replace("{S}", s).replace("{s}", s.lower())


def skeleton(
    spec: list, *, scale: float = 1.0, world: np.ndarray | None = None, root_ch=(), joint_ch=()
) -> list[dict]:
    """Joints (dicts: name, parent index, offset in file units, channels, end) of ``spec``,
    depth first; an End Site below every leaf. Offsets are rounded as they are printed."""
    world = np.eye(3) if world is None else world
    rows = []
    for name, parent, point in spec:
        point = np.asarray(point, dtype=float)
        if "{" in name:
            for s, pt in (("L", point), ("R", point * v(-1, 1, 1))):
                rows.append((_side(name, s), _side(parent, s) if parent else None, pt))
        else:
            rows.append((name, parent, point))
    where = {r[0]: r[2] for r in rows}
    joints: list[dict] = []

    def add(name: str, parent: str | None, parent_index: int) -> None:
        base = where[parent] if parent else np.zeros(3)
        me = len(joints)
        joints.append(
            {
                "name": name,
                "parent": parent_index,
                "offset": np.round(world @ (where[name] - base) * scale, 6),
                "channels": list(root_ch if parent is None else joint_ch),
            }
        )
        kids = [r[0] for r in rows if r[1] == name]
        for c in kids:
            add(c, name, me)
        if not kids:
            d = where[name] - base
            tip = world @ (0.08 * d / max(np.linalg.norm(d), 1e-9)) * scale
            joints.append({"name": None, "parent": me, "offset": np.round(tip, 6), "channels": []})

    add(rows[0][0], None, -1)
    return joints


def channel_values(joints: list[dict], t: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """``(T, channels)`` smooth motion, rounded to the 6 decimals the writer prints."""
    rng = np.random.default_rng(seed)
    s = np.linspace(0.0, 1.0, t)
    cols = []
    for j in joints:
        for ch in j["channels"]:
            if ch.endswith("rotation"):
                a, b = rng.uniform(-35, 35, 2)
                cols.append(a + (b - a) * s)
            elif j["parent"] < 0:
                i = "xyz".index(ch[0].lower())
                cols.append(j["offset"][i] + scale * 0.3 * np.sin(3 * s + i))
            else:
                cols.append(np.full(t, j["offset"]["xyz".index(ch[0].lower())]))
    return np.round(np.stack(cols, axis=1), 6)


def bvh_fk(joints: list[dict], values: np.ndarray) -> np.ndarray:
    """Joint positions ``(T, J, 3)`` in file units by the BVH definition: a joint's rotation
    channels multiply left to right, position channels replace its OFFSET, and a joint sits at
    its parent's position plus the parent's global rotation times its offset."""
    t = values.shape[0]
    pos = np.zeros((t, len(joints), 3))
    rot = np.zeros((t, len(joints), 3, 3))
    col = 0
    for k, j in enumerate(joints):
        r = np.broadcast_to(np.eye(3), (t, 3, 3)).copy()
        off = np.tile(j["offset"], (t, 1))
        for ch in j["channels"]:
            if ch.lower().endswith("rotation"):
                r = r @ elem(ch[0].lower(), values[:, col])
            else:
                off[:, "xyz".index(ch[0].lower())] = values[:, col]
            col += 1
        if j["parent"] < 0:
            pos[:, k], rot[:, k] = off, r
        else:
            p = j["parent"]
            pos[:, k] = pos[:, p] + np.einsum("tab,tb->ta", rot[:, p], off)
            rot[:, k] = rot[:, p] @ r
    return pos


def write_bvh(
    path: Path,
    joints: list[dict],
    values: np.ndarray,
    *,
    frame_time: str = "0.0333333",
    newline: str = "\n",
    indent: str = "  ",
    lower: bool = False,
    trailing: str = "",
    blank_lines: bool = False,
    end_site: str = "End Site",
    digits: int = 6,
    keys: tuple[str, str] = ("Frames:", "Frame Time:"),
) -> None:
    """Write ``joints`` and ``values`` as BVH text in the given dialect."""

    def kw(word: str) -> str:
        return word.lower() if lower else word

    def nums(x) -> str:
        return " ".join(f"{a:.{digits}f}" for a in x)

    lines = [kw("HIERARCHY")]

    def emit(k: int, depth: int) -> None:
        j, pad = joints[k], indent * depth
        if j["name"] is None:
            lines.extend(
                [
                    pad + end_site,
                    pad + "{",
                    f"{pad}{indent}{kw('OFFSET')} " + nums(j["offset"]),
                    pad + "}",
                ]
            )
            return
        head = kw("ROOT") if j["parent"] < 0 else kw("JOINT")
        lines.extend([f"{pad}{head} {j['name']}", pad + "{"])
        lines.append(f"{pad}{indent}{kw('OFFSET')} {nums(j['offset'])}")
        chans = " ".join(j["channels"])
        lines.append(f"{pad}{indent}{kw('CHANNELS')} {len(j['channels'])} {chans}")
        for c in [c for c, x in enumerate(joints) if x["parent"] == k]:
            emit(c, depth + 1)
        lines.append(pad + "}")

    emit(0, 0)
    lines += [kw("MOTION"), f"{kw(keys[0])} {len(values)}", f"{kw(keys[1])} {frame_time}"]
    for row in values:
        lines.append(nums(row))
        if blank_lines:
            lines.append("")
    path.write_text(newline.join(line + trailing for line in lines) + newline)


LAYOUTS = {
    "mixamo_cm": {
        "spec": MIXAMO,
        "unit": 0.01,
        "channels": (R6 + ZXY, ZXY),
        "roles": {
            "pelvis": "mixamorig:Hips",
            "left_collar": "mixamorig:LeftShoulder",
            "left_shoulder": "mixamorig:LeftArm",
            "right_foot": "mixamorig:RightToeBase",
            "head": "mixamorig:Head",
        },
    },
    "mixamo_numbered_namespace": {  # a second character: "mixamorig1_", Blender's rename of ":"
        "spec": MIXAMO,
        "rename": ("mixamorig:", "mixamorig1_"),
        "unit": 0.01,
        "channels": (R6 + ZXY, ZXY),
        "roles": {"left_knee": "mixamorig1_LeftLeg", "head": "mixamorig1_Head"},
    },
    "cgspeed_cmu": {
        "spec": CGSPEED,
        "unit": 0.0254 / 0.45,
        "channels": (R6 + ZYX, ZYX),
        "text": {"frame_time": ".008333"},
        "fps": 120.0,
        "roles": {"left_hip": "LeftUpLeg", "left_collar": "LeftShoulder", "neck": "Neck1"},
    },
    "cgspeed_six_channels_everywhere": {
        "spec": CGSPEED,
        "unit": 0.0254 / 0.45,
        "channels": (R6 + ZYX, R6 + ZYX),
        "text": {"frame_time": "0.008333"},
        "fps": 120.0,
        "roles": {"left_knee": "LeftLeg", "left_wrist": "LeftHand"},
    },
    "blender_z_up": {  # Blender's exporter: its z-up world, 6 channels on every joint, metres
        "spec": MIXAMO,
        "unit": 1.0,
        "world": Z_UP,
        "channels": (R6 + XYZ, R6 + XYZ),
        "text": {"frame_time": "0.0416666666666667"},
        "fps": 24.0,
        "roles": {"left_knee": "mixamorig:LeftLeg"},
    },
    "biped_inches": {
        "spec": BIPED,
        "unit": 0.0254,
        "channels": (R6 + ZXY, ZXY),
        "roles": {
            "pelvis": "Bip01 Spine",
            "left_hip": "Bip01 L Thigh",
            "left_collar": "Bip01 L Clavicle",
            "right_elbow": "Bip01 R Forearm",
        },
    },
    "unreal_extra_bones": {
        "spec": UNREAL,
        "unit": 0.01,
        "channels": (R6 + XYZ, XYZ),
        "roles": {
            "pelvis": "pelvis",
            "left_hip": "thigh_l",
            "left_ankle": "foot_l",
            "left_shoulder": "upperarm_l",
            "left_wrist": "hand_l",
            "left_hand": "middle_01_l",
        },
    },
    "humanik_roll_bones": {
        "spec": HUMANIK,
        "unit": 0.01,
        "channels": (R6 + ZXY, ZXY),
        "roles": {
            "left_hip": "LeftUpLeg",
            "left_ankle": "LeftFoot",
            "left_collar": "LeftShoulder",
            "left_shoulder": "LeftArm",
            "left_wrist": "LeftHand",
        },
    },
    "lowercase_tabs_crlf_blank_lines": {
        "spec": MIXAMO,
        "unit": 0.01,
        "channels": (R6 + XYZ, XYZ),
        "text": {
            "newline": "\r\n",
            "indent": "\t",
            "lower": True,
            "trailing": " \t",
            "blank_lines": True,
            "end_site": "end site",
            "keys": ("Frames :", "Frame Time :"),
        },
        "roles": {"left_knee": "mixamorig:LeftLeg"},
    },
    "smpl_names_metres": {
        "spec": SMPL_NAMES,
        "unit": 1.0,
        "channels": (R6 + ZYX, ZYX),
        "roles": {"left_collar": "L_Collar", "left_shoulder": "L_Shoulder", "left_foot": "L_Foot"},
    },
}


def _layout_file(tmp_path: Path, layout: str, t: int = 9) -> tuple[Path, list[dict], np.ndarray]:
    spec = LAYOUTS[layout]
    root_ch, joint_ch = spec["channels"]
    joints = skeleton(
        spec["spec"],
        scale=1.0 / spec["unit"],
        world=spec.get("world"),
        root_ch=root_ch,
        joint_ch=joint_ch,
    )
    if "rename" in spec:
        for j in joints:
            if j["name"]:
                j["name"] = j["name"].replace(*spec["rename"])
    values = channel_values(joints, t, seed=sorted(LAYOUTS).index(layout), scale=1 / spec["unit"])
    path = tmp_path / f"{layout}.bvh"
    write_bvh(path, joints, values, **spec.get("text", {}))
    return path, joints, values


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_bvh_layouts_pose_as_their_own_forward_kinematics(tmp_path: Path, layout: str) -> None:
    spec = LAYOUTS[layout]
    path, joints, values = _layout_file(tmp_path, layout)
    motion = load_motion(path)
    assert motion.num_frames == len(values)
    assert motion.fps == pytest.approx(spec.get("fps", 30.0))
    assert motion.meta["units_scale"] == pytest.approx(spec["unit"])  # detected, not declared
    positions = motion.global_transforms()[1]
    np.testing.assert_allclose(positions, bvh_fk(joints, values) * spec["unit"], atol=ATOL_M)
    roles = map_to_smpl(motion.skeleton).roles
    assert {k: roles.get(k) for k in spec["roles"]} == spec["roles"]
    # the retargeted body's limbs lie on the source's (the bones the metric measures)
    errors = bone_direction_errors(motion.to_smpl(fps=None))
    worst = max(float(errors[b].max()) for b in ("thigh", "shin", "upper_arm", "forearm", "neck"))
    assert worst < 1e-4, (layout, worst)


def _posed_bvh(
    path: Path,
    rest_rot: dict[str, np.ndarray],
    local: dict[str, np.ndarray],
    root: np.ndarray,
    *,
    world: np.ndarray | None = None,
    scale: float = 100.0,
    order: str = "ZXY",
    six: bool = False,
) -> None:
    """Write the motion of T-pose local rotations ``local`` (by joint name, ``(T, 3, 3)``) and
    pelvis path ``root`` on MIXAMO's skeleton whose *rest* pose is posed by ``rest_rot``: the
    same world motion, another rest pose (offsets ``G_rest(parent) o``, rotations relative to
    the rest: ``W = G G_rest^T``)."""
    world = np.eye(3) if world is None else world
    joints = skeleton(MIXAMO)
    t, eye = len(root), np.eye(3)

    def globals_of(rot_of) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for j in joints:
            r = rot_of(j["name"])
            out.append(r if j["parent"] < 0 else out[j["parent"]] @ r)
        return out

    g_rest = globals_of(lambda n: rest_rot.get(n, eye))
    g = globals_of(lambda n: local.get(n, np.broadcast_to(eye, (t, 3, 3))))
    w = [gk @ rk.T for gk, rk in zip(g, g_rest, strict=True)]
    rot_ch = [f"{a}rotation" for a in order]
    cols = []
    for k, j in enumerate(joints):
        offset = j["offset"] if j["parent"] < 0 else g_rest[j["parent"]] @ j["offset"]
        j["offset"] = world @ offset * scale
        if j["name"] is None:
            continue
        r = w[k] if j["parent"] < 0 else np.swapaxes(w[j["parent"]], -1, -2) @ w[k]
        if j["parent"] < 0 or six:
            j["channels"] = R6 + rot_ch
            cols.append(root @ world.T * scale if j["parent"] < 0 else np.tile(j["offset"], (t, 1)))
        else:
            j["channels"] = rot_ch
        cols.append(Rotation.from_matrix(world @ r @ world.T).as_euler(order, degrees=True))
    write_bvh(path, joints, np.concatenate(cols, axis=1), digits=9)


def test_a_pose_rest_and_z_up_world_give_the_t_pose_motion(tmp_path: Path) -> None:
    # Mixamo's A-pose characters: the arms lowered in the frontal plane (about the forward axis),
    # legs a little apart with the feet flat. The same world motion on a T-pose rest, on that
    # A-pose rest, and on the A-pose rest in a z-up world with 6 channels everywhere (Blender)
    # must give the same SMPL poses: the retargeting measures poses from the rest skeleton.
    rng = np.random.default_rng(3)
    t = 12
    s = np.linspace(0, 1, t)[:, None]
    names = [j["name"] for j in skeleton(MIXAMO) if j["name"]]
    local = {}
    for name in names:
        a, b = rng.normal(0, 0.5, (2, 3))
        local[name] = Rotation.from_rotvec((1 - s) * a + s * b).as_matrix()
    root = P["pelvis"] + np.concatenate([s, 0.1 * np.sin(3 * s), -s], axis=1)

    def rz(deg: float) -> np.ndarray:
        return elem("z", np.array(deg))

    a_pose = {}
    for side, sign in (("Left", 1), ("Right", -1)):
        a_pose.update(
            {
                f"mixamorig:{side}Shoulder": rz(-8 * sign),
                f"mixamorig:{side}Arm": rz(-40 * sign),
                f"mixamorig:{side}ForeArm": rz(-10 * sign),
                f"mixamorig:{side}UpLeg": rz(4 * sign),
                f"mixamorig:{side}Foot": rz(-4 * sign),  # the sole flat again
            }
        )
    _posed_bvh(tmp_path / "t.bvh", {}, local, root)
    _posed_bvh(tmp_path / "a.bvh", a_pose, local, root)
    _posed_bvh(
        tmp_path / "z.bvh", a_pose, local, root, world=Z_UP, scale=1.0, order="XYZ", six=True
    )
    ref = load_motion(tmp_path / "t.bvh").to_smpl(fps=None)
    for name in ("a.bvh", "z.bvh"):
        got = load_motion(tmp_path / name).to_smpl(fps=None)
        np.testing.assert_allclose(got.body_pose, ref.body_pose, atol=ATOL_RAD)
        np.testing.assert_allclose(got.global_orient, ref.global_orient, atol=ATOL_RAD)
        np.testing.assert_allclose(got.transl, ref.transl, atol=ATOL_M * 100)


LAFAN_LIKE = [  # LAFAN1 / Ubisoft: every bone along its parent's +x at rest, sides along z
    ("Hips", None, v(0, 0, 0)),
    ("LeftUpLeg", "Hips", v(0.001, 0.019, 0.105)),
    ("LeftLeg", "LeftUpLeg", v(0.436, 0.019, 0.105)),
    ("LeftFoot", "LeftLeg", v(0.860, 0.019, 0.105)),
    ("LeftToe", "LeftFoot", v(1.033, 0.019, 0.105)),
    ("RightUpLeg", "Hips", v(0.001, 0.019, -0.105)),
    ("RightLeg", "RightUpLeg", v(0.436, 0.019, -0.105)),
    ("RightFoot", "RightLeg", v(0.860, 0.019, -0.105)),
    ("RightToe", "RightFoot", v(1.033, 0.019, -0.105)),
    ("Spine", "Hips", v(0.069, -0.026, 0)),
    ("Spine1", "Spine", v(0.195, -0.026, 0)),
    ("Spine2", "Spine1", v(0.318, -0.026, 0)),
    ("Neck", "Spine2", v(0.576, -0.026, 0)),
    ("Head", "Neck", v(0.694, -0.026, 0)),
    ("{Side}Shoulder", "Spine2", v(0.515, -0.041, 0.06)),
    ("{Side}Arm", "{Side}Shoulder", v(0.628, -0.041, 0.06)),
    ("{Side}ForeArm", "{Side}Arm", v(0.958, -0.041, 0.06)),
    ("{Side}Hand", "{Side}ForeArm", v(1.210, -0.041, 0.06)),
]


def _both_sides(spec: list) -> list:
    """``spec`` with "{Side}" joints written for both sides, the right one mirrored in z (the
    LAFAN1 rest's left-right axis)."""
    out = [(_side(n, "L"), p and _side(p, "L"), pt) for n, p, pt in spec]
    right = [(_side(n, "R"), _side(p, "R"), pt * v(1, 1, -1)) for n, p, pt in spec if "{" in n]
    return out + right


def test_rest_poses_that_are_not_standing_fail_naming_the_file(tmp_path: Path) -> None:
    # LAFAN1's flattened rest (ZYX channels, cm): read exactly; no frame of this random motion
    # stands (see the star-rest tests for one that does), so it is refused at retargeting
    lafan = _both_sides(LAFAN_LIKE)
    joints = skeleton(lafan, scale=100, root_ch=R6 + ZYX, joint_ch=ZYX)
    values = channel_values(joints, 6, scale=100)
    write_bvh(tmp_path / "lafan.bvh", joints, values)
    motion = load_motion(tmp_path / "lafan.bvh")
    np.testing.assert_allclose(
        motion.global_transforms()[1], bvh_fk(joints, values) / 100, atol=ATOL_M
    )
    with pytest.raises(
        MotionFormatError, match=r"lafan\.bvh: the rest pose is not a standing pose .* no frame"
    ):
        motion.to_smpl()
    # a rest skeleton whose left and right sides coincide has no facing: the same error type
    # with the file's name (it was a bare ValueError)
    flat = [(n, p, pt * v(0, 1, 1) if "{" in n else pt) for n, p, pt in MIXAMO]
    joints = skeleton(flat, scale=100, root_ch=R6 + ZXY, joint_ch=ZXY)
    write_bvh(tmp_path / "flat.bvh", joints, channel_values(joints, 6, scale=100))
    with pytest.raises(MotionFormatError, match=r"flat\.bvh: the rest pose is not a standing"):
        load_motion(tmp_path / "flat.bvh").to_smpl()


# ---------------------------------------------------------------------------------------------
# A known SMPL motion on other rigs: star rests (LAFAN1) and other capture tools' joint names
# ---------------------------------------------------------------------------------------------

# SMPL joint -> the child its bone points to (the retargeting's bones; pelvis: the hip line)
_BONE = {1: 4, 2: 5, 3: 6, 4: 7, 5: 8, 6: 9, 7: 10, 8: 11, 9: 12, 12: 15, 13: 16, 14: 17}
_BONE |= {16: 18, 17: 19, 18: 20, 19: 21, 20: 22, 21: 23}


def _basis(d: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Columns: ``d``, ``ref`` without its ``d`` part, their cross product (unit)."""
    e1 = d / np.linalg.norm(d)
    e2 = ref - (ref @ e1) * e1
    e2 /= np.linalg.norm(e2)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1)


def _untwisted(j: int, turn: np.ndarray) -> np.ndarray:
    """The local rotation of SMPL joint ``j`` that turns its bone by ``turn`` with no twist: the
    documented meaning of "no twist" (the bone and the body's forward axis, or its left axis
    for a bone that points forward, keep their relation)."""
    d = REST_JOINTS[_BONE[j]] - REST_JOINTS[j]
    ref = v(1, 0, 0) if abs(d[2]) > 0.7 * np.linalg.norm(d) else v(0, 0, 1)
    return _basis(turn @ d, ref) @ _basis(d, ref).T


def _stance() -> np.ndarray:
    """``(24, 3, 3)`` local rotations of a standing pose with no twist in any bone: pelvis turned
    20 degrees, tilted and rolled; knees and hips bent; arms lowered 65-70 degrees in the
    frontal plane; elbows bent; feet, hands and head straight (they have no bone to measure)."""
    local = np.broadcast_to(np.eye(3), (24, 3, 3)).copy()
    local[0] = elem("y", 20) @ elem("x", 8) @ elem("z", 3)
    turns = {1: ("z", 8), 2: ("x", -15), 4: ("x", 20), 5: ("x", 10), 7: ("x", -10)}
    turns |= {8: ("x", 5), 3: ("x", 5), 6: ("z", 4), 9: ("x", -3), 12: ("x", 10)}
    turns |= {13: ("z", -5), 14: ("y", 5), 16: ("z", -70), 17: ("z", 65), 18: ("y", -30)}
    turns |= {19: ("y", 25), 20: ("z", 10), 21: ("x", 10)}
    for j, (axis, deg) in turns.items():
        local[j] = _untwisted(j, elem(axis, deg))
    return local


def _smpl_clip(t: int, stand: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Local rotations ``(T, 24, 3, 3)`` and pelvis path ``(T, 3)`` of a clip in which only frame
    ``stand`` stands (:func:`_stance`); in the others both thighs are raised 85 degrees (a
    sitting or crouching person: no stance) and every joint is turned at random."""
    rng = np.random.default_rng(seed)
    local = Rotation.from_rotvec(rng.normal(0, 0.35, (t * 24, 3))).as_matrix().reshape(t, 24, 3, 3)
    local[:, [1, 2]] = elem("x", -85) @ local[:, [1, 2]]
    if stand is not None:
        local[stand] = _stance()
    s = np.linspace(0, 1, t)[:, None]
    root = P["pelvis"] + np.concatenate([0.4 * s, 0.05 * np.sin(4 * s), -0.3 * s], axis=1)
    return local, root


def _smpl_fk(local: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global rotations and joint positions of SMPL's rest skeleton posed by ``local``."""
    g = np.empty_like(local)
    pos = np.empty(local.shape[:2] + (3,))
    for j, p in enumerate(PARENTS):
        if p < 0:
            g[:, j], pos[:, j] = local[:, j], root
        else:
            g[:, j] = g[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + g[:, p] @ (REST_JOINTS[j] - REST_JOINTS[p])
    return g, pos


def _write_rig(
    path: Path,
    rig: list,
    g: np.ndarray,
    root: np.ndarray,
    *,
    star: int | None = None,
    order: str = "ZYX",
    scale: float = 100.0,
    six: bool = False,
) -> tuple[list[dict], np.ndarray]:
    """Write SMPL global rotations ``g (T, 24, 3, 3)`` and pelvis path on ``rig``: rows (name,
    parent, rest point, SMPL joint or None); name None is an End Site. A joint with an SMPL
    joint turns as that joint; one without turns with its parent (a root without one stays
    still, and the pelvis below it gets position channels). ``star``: a seed for LAFAN1's kind
    of rest, each joint's frame Q (its own twist) turned so that its first child's offset lies
    along its +x, offsets written in the parent's frame and rotations relative to it
    (``W = G Q``): the same posed joints. Returns the joints and values written (as
    :func:`bvh_fk` takes them; the values rounded as printed)."""
    rng = np.random.default_rng(star)
    t = len(root)

    def depth_first(k: int) -> list:  # BVH's order of joints and of their channels
        kids = [r for r in rig if r[1] is not None and r[1] == rig[k][0]]
        return [rig[k]] + [x for c in kids for x in depth_first(rig.index(c))]

    rig = depth_first(0)
    names = [r[0] for r in rig]
    index = {n: i for i, n in enumerate(names) if n}
    parent = [index[r[1]] if r[1] else -1 for r in rig]
    point = [np.asarray(r[2], dtype=float) for r in rig]
    glob: list[np.ndarray] = []
    for k, (_, _, _, smpl) in enumerate(rig):
        p = parent[k]
        if smpl is not None:
            glob.append(g[:, smpl])
        else:
            glob.append(glob[p] if p >= 0 else np.broadcast_to(np.eye(3), (t, 3, 3)))
    q = []
    for k in range(len(rig)):
        kids = [c for c in range(len(rig)) if parent[c] == k]
        off = [point[c] - point[k] for c in kids if np.linalg.norm(point[c] - point[k]) > 1e-9]
        if star is None or names[k] is None or not off:
            q.append(np.eye(3))
        else:
            q.append(_basis(off[0], rng.normal(size=3)))
    rot_ch = [f"{a}rotation" for a in order]
    joints, cols = [], []
    for k, (name, _, _, smpl) in enumerate(rig):
        p = parent[k]
        if p < 0:
            joints.append({"name": name, "parent": -1, "offset": point[k] * scale})
            joints[-1]["channels"] = R6 + rot_ch
            cols.append(np.tile(point[k] * scale, (t, 1)) if smpl is None else root * scale)
            w = glob[k] @ q[k]
        else:
            offset = q[p].T @ (point[k] - point[p])
            joints.append({"name": name, "parent": p, "offset": offset * scale, "channels": []})
            if name is None:
                continue
            moving = smpl == 0 and rig[p][3] is None  # the pelvis below a still root
            joints[-1]["channels"] = (R6 if six or moving else []) + rot_ch
            if six or moving:
                at = root - point[p] if moving else np.tile(point[k] - point[p], (t, 1))
                cols.append(at * scale)
            w = np.swapaxes(glob[p] @ q[p], -1, -2) @ glob[k] @ q[k]
        cols.append(Rotation.from_matrix(w).as_euler(order, degrees=True))
    values = np.concatenate(cols, axis=1)
    write_bvh(path, joints, values, digits=9)
    return joints, values


def _smpl_rig(names: list, ends: list[tuple[int, np.ndarray]]) -> list:
    """SMPL's skeleton with joint ``j`` named ``names[j]`` (None: not in the rig), and an End
    Site below SMPL joint ``j`` at the point ``p`` for each ``(j, p)`` of ``ends``."""
    rows = [
        (n, names[PARENTS[i]] if PARENTS[i] >= 0 else None, REST_JOINTS[i], i)
        for i, n in enumerate(names)
        if n is not None
    ]
    return rows + [(None, names[j], p, None) for j, p in ends]


_ENDS = [(10, P["left_foot"] + v(0, 0, 0.05)), (11, P["right_foot"] + v(0, 0, 0.05))]
_ENDS += [(15, P["head"] + v(0, 0.15, 0))]
_LAFAN = ["Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1"]
_LAFAN += ["LeftFoot", "RightFoot", "Spine2", "LeftToe", "RightToe", "Neck", "LeftShoulder"]
_LAFAN += ["RightShoulder", "Head", "LeftArm", "RightArm", "LeftForeArm", "RightForeArm"]
_LAFAN += ["LeftHand", "RightHand", None, None]  # LAFAN1 has no joint below the wrists
STAR_RIGS = {
    "smpl_names": _smpl_rig(
        _SMPL_BVH,
        _ENDS + [(22, P["left_hand"] + v(0.08, 0, 0)), (23, P["right_hand"] + v(-0.08, 0, 0))],
    ),
    "lafan1_names": _smpl_rig(_LAFAN, _ENDS + [(20, P["left_hand"]), (21, P["right_hand"])]),
}


def smpl_local(smpl) -> np.ndarray:
    """SMPL's 24 local rotations ``(T, 24, 3, 3)`` of a retargeted motion (hands straight)."""
    return np.concatenate(
        [
            Rotation.from_rotvec(smpl.global_orient).as_matrix()[:, None],
            Rotation.from_rotvec(smpl.body_pose.reshape(-1, 3)).as_matrix().reshape(-1, 21, 3, 3),
            np.broadcast_to(np.eye(3), (smpl.num_frames, 2, 3, 3)),
        ],
        axis=1,
    )


def _body_positions(smpl) -> np.ndarray:
    """SMPL joints 0..21 ``(T, 22, 3)`` of a retargeted motion, by SMPL's own kinematics."""
    return _smpl_fk(smpl_local(smpl), smpl.transl + REST_JOINTS[0])[1][:, :22]


@pytest.mark.parametrize("rig", sorted(STAR_RIGS))
def test_star_rest_calibrates_on_the_standing_frame_and_gives_the_smpl_motion_back(
    tmp_path: Path, rig: str
) -> None:
    # A known SMPL motion, written twice on SMPL's skeleton: with SMPL's T-pose rest, and with
    # LAFAN1's kind of rest (every joint's frame turned, with a random twist, so that its first
    # child lies along its +x; the rest rotations folded into the channels). Only frame 6
    # stands. The T-pose file retargets exactly; the star file, calibrated on frame 6, too,
    # because that frame holds no twist in any bone (the method's one assumption: a twist held
    # in the calibration frame is taken for none, see the next test).
    # Tolerance: 9-digit degrees and offsets (1e-11 rad, 1e-13 m) through 24 Euler conversions
    # and ~8 levels of rotation products stay below 1e-9 rad; 1e-7 rad / 1e-8 m leave room and
    # are 5 orders of magnitude below a twist or calibration error (0.1 rad, cm).
    local, root = _smpl_clip(10, stand=6)
    g, pos = _smpl_fk(local, root)
    rows = STAR_RIGS[rig]
    t_joints, t_values = _write_rig(tmp_path / "tpose.bvh", rows, g, root)
    s_joints, s_values = _write_rig(tmp_path / "star.bvh", rows, g, root, star=1)
    # the same posed joints (the writer's own check), the star rest nothing like a stance
    np.testing.assert_allclose(bvh_fk(s_joints, s_values), bvh_fk(t_joints, t_values), atol=1e-7)
    star = load_motion(tmp_path / "star.bvh")
    assert star.meta["units_scale"] == pytest.approx(0.01)
    rest = star.skeleton.rest_positions()
    knee = star.skeleton.index(rows[4][0])
    assert (rest[knee] - rest[0])[0] > 0.3  # the left knee out along +x, not below the hips

    want = Rotation.from_matrix(local[:, 1:22].reshape(-1, 3, 3)).as_rotvec().reshape(10, 63)
    tpose = load_motion(tmp_path / "tpose.bvh").to_smpl(fps=None)
    with pytest.warns(
        RetargetWarning,
        match=r"star\.bvh: the rest pose is not a standing pose "
        r"\(the left thigh is \d+ degrees from down\); calibrated on frame 6 ",
    ):
        got = star.to_smpl(fps=None)  # fmt: skip
    for smpl in (tpose, got):
        np.testing.assert_allclose(smpl.body_pose, want, atol=ATOL_RAD)
        np.testing.assert_allclose(
            smpl.global_orient, Rotation.from_matrix(local[:, 0]).as_rotvec(), atol=ATOL_RAD
        )
        np.testing.assert_allclose(smpl.transl, root - REST_JOINTS[0], atol=1e-8)
        np.testing.assert_allclose(_body_positions(smpl), pos[:, :22], atol=1e-8)
    # resampled: calibrated on the file's frame 6 (named so), the output at 15 fps being the
    # motion at the file's even frames
    with pytest.warns(RetargetWarning, match=r"calibrated on frame 6 \(counted from 0, 0\.200 s"):
        half = star.to_smpl(fps=15)
    np.testing.assert_allclose(half.body_pose, want[::2], atol=ATOL_RAD)


def test_twist_held_in_the_calibration_frame_is_the_one_error_it_admits(tmp_path: Path) -> None:
    # The same, with the left forearm pronated 25 degrees (about its own bone) in the standing
    # frame. Nothing in a star rest says how much twist that frame holds (the rig's joint
    # frames cancel out of W(t) W(t0)^T), so it counts as none: the elbow's rotation is off by
    # exactly that twist in every frame, R_elbow(t) Tw(-25 deg); every other body joint but the
    # wrist below it stays exact, and the joints' positions too (a twist about a bone moves
    # nothing on it).
    tau = np.radians(25.0)
    local, root = _smpl_clip(10, stand=6, seed=2)
    d = REST_JOINTS[20] - REST_JOINTS[18]
    twist = Rotation.from_rotvec(tau * d / np.linalg.norm(d)).as_matrix()
    local[6, 18] = local[6, 18] @ twist
    g, pos = _smpl_fk(local, root)
    _write_rig(tmp_path / "star.bvh", STAR_RIGS["lafan1_names"], g, root, star=3)
    with pytest.warns(RetargetWarning, match="calibrated on frame 6"):
        got = load_motion(tmp_path / "star.bvh").to_smpl(fps=None)
    out = Rotation.from_rotvec(got.body_pose.reshape(-1, 3)).as_matrix().reshape(10, 21, 3, 3)
    np.testing.assert_allclose(out[:, 17], local[:, 18] @ twist.T, atol=ATOL_RAD)
    exact = [j for j in range(1, 22) if j not in (18, 20)]
    np.testing.assert_allclose(out[:, [j - 1 for j in exact]], local[:, exact], atol=ATOL_RAD)
    np.testing.assert_allclose(_body_positions(got), pos[:, :22], atol=1e-8)
    wrist = Rotation.from_matrix(np.swapaxes(out[:, 19], -1, -2) @ local[:, 20]).magnitude()
    assert 1e-3 < wrist.max() <= tau + 1e-9  # the wrist's own share, at most the twist


def test_no_standing_frame_and_a_chosen_rest_that_is_not_one_are_refused(tmp_path: Path) -> None:
    local, root = _smpl_clip(8, stand=None)
    g, _ = _smpl_fk(local, root)
    _write_rig(tmp_path / "sitting.bvh", STAR_RIGS["lafan1_names"], g, root, star=4)
    motion = load_motion(tmp_path / "sitting.bvh")
    with pytest.raises(
        MotionFormatError,
        match=r"sitting\.bvh: the rest pose is not a standing pose \(the .*\) and no frame of "
        r"the motion is one either",
    ):
        motion.to_smpl()
    with pytest.raises(MotionFormatError, match=r"the rest pose \(frame 3\) is not a standing"):
        motion.with_rest_from_frame(3).to_smpl()


def test_a_standing_frame_leaning_over_45_degrees_is_calibrated_on_not_refused(
    tmp_path: Path,
) -> None:
    # The only standing frame bends forward 50 degrees at the pelvis with the thighs 15 degrees
    # behind vertical: thighs, shins and spine within 60 degrees of the world's y, so it stands.
    # Retargeting re-checked the calibrated rest with the spine snapped to an axis instead: the
    # spine is nearer z than y, no axis is within 30 degrees, so the spine itself was "up" and
    # the thighs 65 degrees from it failed ("the rest pose (frame 6) is not a standing pose", a
    # frame the caller never chose). Tolerance as for the other star rests.
    local, root = _smpl_clip(10, stand=6)
    local[6, 0] = elem("x", 50)
    for j in (1, 2):
        local[6, j] = _untwisted(j, elem("x", -65))
    for j in (3, 4, 5, 6, 9, 12):
        local[6, j] = np.eye(3)
    g, _ = _smpl_fk(local, root)
    _write_rig(tmp_path / "bow.bvh", STAR_RIGS["lafan1_names"], g, root, star=1)
    with pytest.warns(RetargetWarning, match="calibrated on frame 6"):
        got = load_motion(tmp_path / "bow.bvh").to_smpl(fps=None)
    want = Rotation.from_matrix(local[:, 1:22].reshape(-1, 3, 3)).as_rotvec().reshape(10, 63)
    np.testing.assert_allclose(got.body_pose, want, atol=ATOL_RAD)


def test_frames_standing_under_two_axes_are_named_in_the_warning(tmp_path: Path) -> None:
    # Frames 0-2 lie along +x with straight legs (the pelvis turned -90 degrees about z, every
    # other joint at rest): under "up = +x" they stand, as frame 6 does under +y. The axis with
    # more standing frames is taken, as before; the warning now names the other axis and both
    # counts, since a clip that lies more than it stands is then read turned by 90 degrees.
    local, root = _smpl_clip(10, stand=6)
    for k in (0, 1, 2):
        local[k] = np.eye(3)
        local[k, 0] = elem("z", -90)
    g, _ = _smpl_fk(local, root)
    _write_rig(tmp_path / "lying.bvh", STAR_RIGS["lafan1_names"], g, root, star=1)
    with pytest.warns(
        RetargetWarning,
        match=r"frames stand with up \+y too \(1 frames, against 3 with up \+x, the axis taken\)",
    ):
        load_motion(tmp_path / "lying.bvh").to_smpl(fps=None)
    # one axis only: no such clause
    local, root = _smpl_clip(10, stand=6)
    g, _ = _smpl_fk(local, root)
    _write_rig(tmp_path / "one.bvh", STAR_RIGS["lafan1_names"], g, root, star=1)
    with pytest.warns(RetargetWarning) as caught:
        load_motion(tmp_path / "one.bvh").to_smpl(fps=None)
    assert not any("too (" in str(w.message) for w in caught)


def test_rest_from_a_frame_keeps_every_frame_posed_as_it_was(tmp_path: Path) -> None:
    # with_rest_from_frame re-expresses the motion, it does not change it: every frame's joints
    # (6-channel joints' moving offsets included) stay where the file puts them, and the chosen
    # frame is the new rest (identity rotations)
    path, joints, values = _layout_file(tmp_path, "cgspeed_six_channels_everywhere")
    motion = load_motion(path)
    moved = motion.with_rest_from_frame(4)
    assert moved.meta["rest_frame"] == 4
    np.testing.assert_allclose(
        moved.global_transforms()[1], motion.global_transforms()[1], atol=ATOL_M
    )
    eye = np.broadcast_to(np.eye(3), moved.rotations.shape[1:])
    np.testing.assert_allclose(moved.rotations[4], eye, atol=1e-12)
    np.testing.assert_allclose(
        moved.skeleton.rest_positions(), motion.global_transforms()[1][4], atol=ATOL_M
    )


def _rig(rows: list) -> list:
    """Rows (name, parent, rest point, SMPL joint or None; for an End Site, the SMPL joint it
    stands at) with ``{S}``/``{Side}``/``{s}`` rows written for both sides. The right side is
    SMPL's right (not quite the left's mirror image): each right row sits where the left one
    sits relative to its SMPL joint (or its parent's), mirrored, relative to that joint's right
    counterpart."""
    right = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21, 22: 23}
    smpl_of = {r[0]: r[3] for r in rows if r[0] is not None}
    out = []
    for name, parent, point, smpl in rows:
        point = np.asarray(point, dtype=float)
        if not ((name and "{" in name) or (parent and "{" in parent)):
            out.append((name, parent, point, smpl))
            continue
        near = smpl if smpl is not None else smpl_of[parent]
        mirrored = REST_JOINTS[right[near]] + (point - REST_JOINTS[near]) * v(-1, 1, 1)
        for s, pt in (("L", point), ("R", mirrored)):
            j = smpl if s == "L" or smpl is None else right[smpl]
            out.append((_side(name, s) if name else None, _side(parent, s), pt, j))
    return out


def _on(a: str, b: str, f: float) -> np.ndarray:
    return (1 - f) * P[a] + f * P[b]


# Each tool's names on SMPL's joints (extra spine and neck joints on the straight line to the
# next one, turning with their parent): the file must give back the SMPL motion it was written
# from. "limbs": the rig has fewer spine joints than SMPL, so only the limbs and the pelvis
# have an exact answer (its spine is checked by the bone metric).
RIGS = {
    "optitrack_motive": {  # Motive's skeleton: Hip > Ab > Chest, LUArm / LFArm, LThigh / LShin
        "rows": [
            ("Hip", None, P["pelvis"], 0),
            ("Ab", "Hip", P["spine1"], 3),
            ("Chest", "Ab", P["spine3"], 9),
            ("Neck", "Chest", P["neck"], 12),
            ("Head", "Neck", P["head"], 15),
            (None, "Head", P["head"] + v(0, 0.15, 0), None),
            ("{S}Shoulder", "Chest", P["left_collar"], 13),
            ("{S}UArm", "{S}Shoulder", P["left_shoulder"], 16),
            ("{S}FArm", "{S}UArm", P["left_elbow"], 18),
            ("{S}Hand", "{S}FArm", P["left_wrist"], 20),
            (None, "{S}Hand", P["left_hand"], 22),
            ("{S}Thigh", "Hip", P["left_hip"], 1),
            ("{S}Shin", "{S}Thigh", P["left_knee"], 4),
            ("{S}Foot", "{S}Shin", P["left_ankle"], 7),
            ("{S}Toe", "{S}Foot", P["left_foot"], 10),
            (None, "{S}Toe", P["left_foot"] + v(0, 0, 0.05), None),
        ],
        "order": "ZXY",
        "limbs": True,
        "roles": {"left_elbow": "LFArm", "left_shoulder": "LUArm", "left_collar": "LShoulder"},
    },
    "character_creator": {  # Reallusion CC3/CC4, iClone: CC_Base_ names, twist and share bones
        "rows": [
            ("CC_Base_BoneRoot", None, v(0, 0, 0), None),
            ("CC_Base_Hip", "CC_Base_BoneRoot", P["pelvis"], 0),
            ("CC_Base_Pelvis", "CC_Base_Hip", P["pelvis"], None),
            ("CC_Base_{S}_Thigh", "CC_Base_Pelvis", P["left_hip"], 1),
            # a leaf helper named like the joint, first among the thigh's children (the knee is
            # the calf, the joint with the ankle below it)
            ("CC_Base_{S}_Knee", "CC_Base_{S}_Thigh", _on("left_hip", "left_knee", 0.9), None),
            ("CC_Base_{S}_Calf", "CC_Base_{S}_Thigh", P["left_knee"], 4),
            ("CC_Base_{S}_Foot", "CC_Base_{S}_Calf", P["left_ankle"], 7),
            ("CC_Base_{S}_ToeBase", "CC_Base_{S}_Foot", P["left_foot"], 10),
            (
                "CC_Base_{S}_CalfTwist01",
                "CC_Base_{S}_Calf",
                _on("left_knee", "left_ankle", 0.3),
                None,
            ),
            ("CC_Base_{S}_KneeShareBone", "CC_Base_{S}_Calf", P["left_knee"] + v(0, 0, 0.05), None),
            (
                "CC_Base_{S}_ThighTwist01",
                "CC_Base_{S}_Thigh",
                _on("left_hip", "left_knee", 0.3),
                None,
            ),
            ("CC_Base_Waist", "CC_Base_Hip", P["spine1"], 3),
            ("CC_Base_Spine01", "CC_Base_Waist", P["spine2"], 6),
            ("CC_Base_Spine02", "CC_Base_Spine01", P["spine3"], 9),
            ("CC_Base_NeckTwist01", "CC_Base_Spine02", P["neck"], 12),
            ("CC_Base_NeckTwist02", "CC_Base_NeckTwist01", _on("neck", "head", 0.5), None),
            ("CC_Base_Head", "CC_Base_NeckTwist02", P["head"], 15),
            (None, "CC_Base_Head", P["head"] + v(0, 0.15, 0), None),
            ("CC_Base_{S}_Clavicle", "CC_Base_Spine02", P["left_collar"], 13),
            ("CC_Base_{S}_Upperarm", "CC_Base_{S}_Clavicle", P["left_shoulder"], 16),
            (
                "CC_Base_{S}_UpperarmTwist01",
                "CC_Base_{S}_Upperarm",
                _on("left_shoulder", "left_elbow", 0.3),
                None,
            ),
            ("CC_Base_{S}_Forearm", "CC_Base_{S}_Upperarm", P["left_elbow"], 18),
            (
                "CC_Base_{S}_ForearmTwist01",
                "CC_Base_{S}_Forearm",
                _on("left_elbow", "left_wrist", 0.7),
                None,
            ),
            ("CC_Base_{S}_Hand", "CC_Base_{S}_Forearm", P["left_wrist"], 20),
            ("CC_Base_{S}_Mid1", "CC_Base_{S}_Hand", P["left_hand"], 22),
        ],
        "order": "ZXY",
        "roles": {
            "pelvis": "CC_Base_Hip",
            "left_knee": "CC_Base_L_Calf",
            "neck": "CC_Base_NeckTwist01",
        },
    },
    "xsens_mvn_segments": {  # MVN's segment names (FBX, MVNX): L5 L3 T12 T8, UpperArm / ForeArm
        "rows": [
            ("Pelvis", None, P["pelvis"], 0),
            ("L5", "Pelvis", P["spine1"], 3),
            ("L3", "L5", P["spine2"], 6),
            ("T12", "L3", P["spine3"], 9),
            ("T8", "T12", _on("spine3", "neck", 0.4), None),
            ("Neck", "T8", P["neck"], 12),
            ("Head", "Neck", P["head"], 15),
            (None, "Head", P["head"] + v(0, 0.15, 0), None),
            ("{Side}Shoulder", "T8", P["left_collar"], 13),
            ("{Side}UpperArm", "{Side}Shoulder", P["left_shoulder"], 16),
            ("{Side}ForeArm", "{Side}UpperArm", P["left_elbow"], 18),
            ("{Side}Hand", "{Side}ForeArm", P["left_wrist"], 20),
            (None, "{Side}Hand", P["left_hand"], 22),
            ("{Side}UpperLeg", "Pelvis", P["left_hip"], 1),
            ("{Side}LowerLeg", "{Side}UpperLeg", P["left_knee"], 4),
            ("{Side}Foot", "{Side}LowerLeg", P["left_ankle"], 7),
            ("{Side}Toe", "{Side}Foot", P["left_foot"], 10),
            (None, "{Side}Toe", P["left_foot"] + v(0, 0, 0.05), None),
        ],
        "order": "YXZ",
        "roles": {"left_hip": "LeftUpperLeg", "left_knee": "LeftLowerLeg", "neck": "Neck"},
    },
    "xsens_mvn_bvh": {  # MVN Analyze's BVH export: Chest..Chest4, Collar > Shoulder > Elbow
        "rows": [
            ("Hips", None, P["pelvis"], 0),
            ("Chest", "Hips", P["spine1"], 3),
            ("Chest2", "Chest", P["spine2"], 6),
            ("Chest3", "Chest2", P["spine3"], 9),
            ("Chest4", "Chest3", _on("spine3", "neck", 0.4), None),
            ("Neck", "Chest4", P["neck"], 12),
            ("Head", "Neck", P["head"], 15),
            (None, "Head", P["head"] + v(0, 0.15, 0), None),
            ("{Side}Collar", "Chest4", P["left_collar"], 13),
            ("{Side}Shoulder", "{Side}Collar", P["left_shoulder"], 16),
            ("{Side}Elbow", "{Side}Shoulder", P["left_elbow"], 18),
            ("{Side}Wrist", "{Side}Elbow", P["left_wrist"], 20),
            (None, "{Side}Wrist", P["left_hand"], 22),
            ("{Side}Hip", "Hips", P["left_hip"], 1),
            ("{Side}Knee", "{Side}Hip", P["left_knee"], 4),
            ("{Side}Ankle", "{Side}Knee", P["left_ankle"], 7),
            ("{Side}Toe", "{Side}Ankle", P["left_foot"], 10),
            (None, "{Side}Toe", P["left_foot"] + v(0, 0, 0.05), None),
        ],
        "order": "YXZ",
        "roles": {"left_collar": "LeftCollar", "left_shoulder": "LeftShoulder"},
    },
    "perception_neuron": {  # Axis Neuron: 6 channels everywhere, no toes, InHand bones
        "rows": [
            ("Hips", None, P["pelvis"], 0),
            ("{Side}UpLeg", "Hips", P["left_hip"], 1),
            ("{Side}Leg", "{Side}UpLeg", P["left_knee"], 4),
            ("{Side}Foot", "{Side}Leg", P["left_ankle"], 7),
            (None, "{Side}Foot", P["left_foot"], 10),
            ("Spine", "Hips", P["spine1"], 3),
            ("Spine1", "Spine", P["spine2"], 6),
            ("Spine2", "Spine1", P["spine3"], 9),
            ("Spine3", "Spine2", _on("spine3", "neck", 0.4), None),
            ("Neck", "Spine3", P["neck"], 12),
            ("Head", "Neck", P["head"], 15),
            (None, "Head", P["head"] + v(0, 0.15, 0), None),
            ("{Side}Shoulder", "Spine3", P["left_collar"], 13),
            ("{Side}Arm", "{Side}Shoulder", P["left_shoulder"], 16),
            ("{Side}ForeArm", "{Side}Arm", P["left_elbow"], 18),
            ("{Side}Hand", "{Side}ForeArm", P["left_wrist"], 20),
            ("{Side}HandThumb1", "{Side}Hand", P["left_wrist"] + v(0.025, -0.002, 0.032), None),
            ("{Side}InHandMiddle", "{Side}Hand", P["left_hand"], 22),
            ("{Side}HandMiddle1", "{Side}InHandMiddle", P["left_hand"] + v(0.05, 0, 0), None),
        ],
        "order": "YXZ",
        "six": True,
        "still": (10, 11),  # no toe joint: the feet are rigid with the ankles
        "roles": {"left_hand": "LeftInHandMiddle", "left_ankle": "LeftFoot"},
    },
    "rokoko": {  # Rokoko Studio: Thigh / Shin, Spine1..Spine4
        "rows": [
            ("Hips", None, P["pelvis"], 0),
            ("{Side}Thigh", "Hips", P["left_hip"], 1),
            ("{Side}Shin", "{Side}Thigh", P["left_knee"], 4),
            ("{Side}Foot", "{Side}Shin", P["left_ankle"], 7),
            ("{Side}Toe", "{Side}Foot", P["left_foot"], 10),
            (None, "{Side}Toe", P["left_foot"] + v(0, 0, 0.05), None),
            ("Spine1", "Hips", P["spine1"], 3),
            ("Spine2", "Spine1", P["spine2"], 6),
            ("Spine3", "Spine2", P["spine3"], 9),
            ("Spine4", "Spine3", _on("spine3", "neck", 0.4), None),
            ("Neck", "Spine4", P["neck"], 12),
            ("Head", "Neck", P["head"], 15),
            (None, "Head", P["head"] + v(0, 0.15, 0), None),
            ("{Side}Shoulder", "Spine4", P["left_collar"], 13),
            ("{Side}Arm", "{Side}Shoulder", P["left_shoulder"], 16),
            ("{Side}ForeArm", "{Side}Arm", P["left_elbow"], 18),
            ("{Side}Hand", "{Side}ForeArm", P["left_wrist"], 20),
            (None, "{Side}Hand", P["left_hand"], 22),
        ],
        "order": "ZXY",
        "roles": {"left_hip": "LeftThigh", "left_knee": "LeftShin", "neck": "Neck"},
    },
    "humanik_reference": {  # MotionBuilder HumanIK with its floor-level Reference root
        "rows": [
            ("Reference", None, v(0, 0, 0), None),
            ("Hips", "Reference", P["pelvis"], 0),
            ("{Side}UpLeg", "Hips", P["left_hip"], 1),
            ("{Side}Leg", "{Side}UpLeg", P["left_knee"], 4),
            ("{Side}Foot", "{Side}Leg", P["left_ankle"], 7),
            ("{Side}ToeBase", "{Side}Foot", P["left_foot"], 10),
            (None, "{Side}ToeBase", P["left_foot"] + v(0, 0, 0.05), None),
            ("Spine", "Hips", P["spine1"], 3),
            ("Spine1", "Spine", P["spine2"], 6),
            ("Spine2", "Spine1", P["spine3"], 9),
            ("Neck", "Spine2", P["neck"], 12),
            ("Head", "Neck", P["head"], 15),
            (None, "Head", P["head"] + v(0, 0.15, 0), None),
            ("{Side}Shoulder", "Spine2", P["left_collar"], 13),
            ("{Side}Arm", "{Side}Shoulder", P["left_shoulder"], 16),
            ("{Side}ForeArm", "{Side}Arm", P["left_elbow"], 18),
            ("{Side}Hand", "{Side}ForeArm", P["left_wrist"], 20),
            ("{Side}HandMiddle1", "{Side}Hand", P["left_hand"], 22),
        ],
        "order": "ZXY",
        "roles": {"pelvis": "Hips", "left_hip": "LeftUpLeg"},
    },
}


@pytest.mark.parametrize("rig", sorted(RIGS))
def test_capture_tools_joint_names_give_the_smpl_motion_back(tmp_path: Path, rig: str) -> None:
    # A known SMPL motion written on each tool's skeleton (its names, nesting, helper bones,
    # channel order, cm) must retarget back to that motion. Tolerance as for the star rests:
    # 9-digit channels give ~1e-9 rad; a wrong mapping (an upper arm taken for the elbow, the
    # neck's helper for the neck) gives tenths of a radian.
    spec = RIGS[rig]
    local, root = _smpl_clip(8, stand=None, seed=5)
    local[:, list(spec.get("still", ()))] = np.eye(3)
    g, _ = _smpl_fk(local, root)
    rows = _rig(spec["rows"])
    _write_rig(
        tmp_path / f"{rig}.bvh", rows, g, root, order=spec["order"], six=spec.get("six", False)
    )
    motion = load_motion(tmp_path / f"{rig}.bvh")
    assert motion.meta["units_scale"] == pytest.approx(0.01)
    roles = map_to_smpl(motion.skeleton).roles
    assert {k: roles.get(k) for k in spec["roles"]} == spec["roles"]
    got = motion.to_smpl(fps=None)
    want = Rotation.from_matrix(local[:, 1:22].reshape(-1, 3, 3)).as_rotvec().reshape(8, 21, 3)
    check = [j - 1 for j in range(1, 22)]
    if spec.get("limbs"):
        check = [j - 1 for j in (1, 2, 4, 5, 7, 8, 10, 11, 15, 16, 17, 18, 19, 20, 21)]
        errors = bone_direction_errors(got)
        assert max(float(errors[b].max()) for b in ("neck", "thigh", "upper_arm")) < 1e-4
    np.testing.assert_allclose(
        got.body_pose.reshape(8, 21, 3)[:, check], want[:, check], atol=ATOL_RAD
    )
    np.testing.assert_allclose(
        got.global_orient, Rotation.from_matrix(local[:, 0]).as_rotvec(), atol=ATOL_RAD
    )
    np.testing.assert_allclose(got.transl, root - REST_JOINTS[0], atol=1e-8)


def test_bvh_with_a_prop_as_a_second_root_keeps_the_character(tmp_path: Path) -> None:
    path, joints, values = _layout_file(tmp_path, "mixamo_cm")
    head, body = path.read_text().split("MOTION\n")
    prop = (
        "ROOT Sword\n{\n  OFFSET 10 100 0\n  CHANNELS 6 Xposition Yposition Zposition "
        "Zrotation Xrotation Yrotation\n  End Site\n  {\n    OFFSET 0 80 0\n  }\n}\n"
    )
    rows = body.splitlines()
    two = tmp_path / "two_roots.bvh"
    frames = rows[:2] + [r + " 1 2 3 4 5 6" for r in rows[2:]]
    two.write_text(head + prop + "MOTION\n" + "\n".join(frames) + "\n")
    motion = load_motion(two)
    assert motion.meta["dropped_roots"] == ["Sword"]
    assert motion.skeleton.names == load_motion(path).skeleton.names
    np.testing.assert_allclose(
        motion.global_transforms()[1], bvh_fk(joints, values) * 0.01, atol=ATOL_M
    )
    # the prop first: still the character's columns
    first = tmp_path / "prop_first.bvh"
    first.write_text(
        "HIERARCHY\n"
        + prop
        + head.removeprefix("HIERARCHY\n")
        + "MOTION\n"
        + "\n".join(rows[:2] + ["1 2 3 4 5 6 " + r for r in rows[2:]])
        + "\n"
    )
    np.testing.assert_allclose(
        load_motion(first).global_transforms()[1], motion.global_transforms()[1], atol=0
    )
    bad = tmp_path / "stray.bvh"
    bad.write_text(head + "JOINT Stray\n{\n OFFSET 0 0 0\n}\nMOTION\n" + "\n".join(rows) + "\n")
    with pytest.raises(MotionFormatError, match=r"stray\.bvh:\d+: unexpected 'JOINT' outside"):
        load_motion(bad)


def test_twist_helpers_by_name_in_common_rigs() -> None:
    """The Roll rule and the rig prefixes on the joint names of common capture and game rigs:
    no joint of theirs is taken for a helper, the helpers are."""
    from advprior.data.motion import Skeleton
    from advprior.data.naming import _is_twist

    joints = (
        "Hips LeftUpLeg LeftLeg LeftFoot LeftToeBase Spine Spine1 Spine2 Neck Head LeftShoulder "
        "LeftArm LeftForeArm LeftHand mixamorig1:LeftLeg mixamorig2_LeftForeArm "  # Mixamo, Vicon
        "root lhipjoint lfemur ltibia lowerback thorax lclavicle lhumerus lradius lwrist "  # CMU
        "LHipJoint LowerBack LeftFingerBase LThumb "  # cgspeed's CMU BVH
        "LeftThigh LeftShin LeftToe Spine4 "  # Rokoko
        "Pelvis L5 L3 T12 T8 RightUpperArm RightUpperLeg RightLowerLeg "  # Xsens MVN
        "Hip Ab Chest LShoulder LUArm LFArm LThigh LShin "  # OptiTrack Motive
        "Neck1 RightHandThumb1 RightInHandIndex "  # Perception Neuron
        "Bip01_L_Calf Character1_LeftLeg DEF-thigh.L Controller Rig|LeftArmRoll|LeftForeArm"
    ).split()
    helpers = (
        "LeftUpLegRoll LeftLegRoll LeftArmRoll LeftForeArmRoll mixamorig1:LeftArmRoll "
        "left_arm_roll LEFT_ARM_ROLL lThighTwist upperarm_twist_01_l"
    ).split()
    names = joints + helpers
    n = len(names)
    sk = Skeleton(tuple(names), np.array([-1] + [0] * (n - 1)), np.zeros((n, 3)), np.zeros(n, bool))
    assert [names[j] for j in range(n) if _is_twist(sk, j)] == helpers


def test_bvh_with_two_performers_is_refused_not_cut_to_one(tmp_path: Path) -> None:
    # Two people in one take (same rig, two namespaces): keeping the largest (or the first of
    # equal) trees would silently drop the second person's motion.
    path, _, _ = _layout_file(tmp_path, "mixamo_cm")
    head, body = path.read_text().split("MOTION\n")
    tree = head.removeprefix("HIERARCHY\n")
    rows = body.splitlines()
    two = tmp_path / "duet.bvh"
    second = tree.replace("mixamorig:", "mixamorig2:")
    two.write_text(
        "HIERARCHY\n" + tree + second + "MOTION\n"
        + "\n".join(rows[:2] + [r + " " + r for r in rows[2:]]) + "\n"
    )  # fmt: skip
    with pytest.raises(MotionFormatError, match=r"duet\.bvh: holds 2 characters .*one character"):
        load_motion(two)


def test_bvh_non_finite_value_beside_a_prop_names_the_files_column(tmp_path: Path) -> None:
    path, _, _ = _layout_file(tmp_path, "mixamo_cm")
    head, body = path.read_text().split("MOTION\n")
    prop = "ROOT Sword\n{\n  OFFSET 10 100 0\n  CHANNELS 3 Xposition Yposition Zposition\n}\n"
    rows = body.splitlines()
    data = [r.split() for r in rows[2:]]
    data[1][4] = "nan"  # the character's 5th channel: the file's 8th, after the prop's 3
    bad = tmp_path / "prop_nan.bvh"
    bad.write_text(
        "HIERARCHY\n" + prop + head.removeprefix("HIERARCHY\n") + "MOTION\n"
        + "\n".join(rows[:2] + ["1 2 3 " + " ".join(r) for r in data]) + "\n"
    )  # fmt: skip
    n_ch = 3 + len(data[0])
    with pytest.raises(MotionFormatError, match=rf"frame 1 \(channel 8 of {n_ch}\)"):
        load_motion(bad)


@pytest.mark.parametrize(
    ("frame_time", "fps"), [("0.016683", 1 / 0.016683), ("0.004", 250.0), ("0.01", 100.0)]
)
def test_bvh_unusual_rates_resample_to_the_dataset_rate(
    tmp_path: Path, frame_time: str, fps: float
) -> None:
    # one hip swinging at a constant rate about a fixed axis, which slerp reproduces exactly: the
    # clip resampled to 30 fps must equal the same swing written at 30 fps
    joints = skeleton(MIXAMO, scale=100, root_ch=R6 + ZXY, joint_ch=ZXY)
    first = {}  # joint name -> its first column
    for k, j in enumerate(joints):
        first[j["name"]] = sum(len(x["channels"]) for x in joints[:k])
    hip = first["mixamorig:LeftUpLeg"] + 1  # Z X Y: the X rotation
    rate = 40.0  # degrees per second

    def clip(times: np.ndarray) -> np.ndarray:
        values = np.zeros((len(times), sum(len(j["channels"]) for j in joints)))
        values[:, :3] = joints[0]["offset"]
        values[:, hip] = rate * times
        return values

    n = int(1.5 * fps)
    write_bvh(
        tmp_path / "a.bvh",
        joints,
        clip(np.arange(n) * float(frame_time)),
        frame_time=frame_time,
        digits=9,
    )
    motion = load_motion(tmp_path / "a.bvh")
    assert motion.fps == pytest.approx(fps, rel=1e-9)
    smpl = motion.to_smpl(fps=30)
    assert smpl.num_frames == int(np.floor((n - 1) / motion.fps * 30 + 1e-6)) + 1
    k = np.arange(smpl.num_frames)
    write_bvh(tmp_path / "b.bvh", joints, clip(k / 30), frame_time="0.033333333", digits=9)
    direct = load_motion(tmp_path / "b.bvh").to_smpl(fps=None)
    np.testing.assert_allclose(smpl.body_pose, direct.body_pose, atol=ATOL_RAD)
    np.testing.assert_allclose(smpl.global_orient, direct.global_orient, atol=ATOL_RAD)


# ---------------------------------------------------------------------------------------------
# Acclaim ASF/AMC dialects, against the forward kinematics of CMU's own reader
# ---------------------------------------------------------------------------------------------

ASF_BONES = [  # name, parent, start, end (metres, y up, facing +z)
    ("lhipjoint", "root", P["pelvis"], P["left_hip"]),
    ("lfemur", "lhipjoint", P["left_hip"], P["left_knee"]),
    ("ltibia", "lfemur", P["left_knee"], P["left_ankle"]),
    ("lfoot", "ltibia", P["left_ankle"], P["left_foot"]),
    ("ltoes", "lfoot", P["left_foot"], P["left_foot"] + v(0, 0, 0.04)),
    ("rhipjoint", "root", P["pelvis"], P["right_hip"]),
    ("rfemur", "rhipjoint", P["right_hip"], P["right_knee"]),
    ("rtibia", "rfemur", P["right_knee"], P["right_ankle"]),
    ("rfoot", "rtibia", P["right_ankle"], P["right_foot"]),
    ("rtoes", "rfoot", P["right_foot"], P["right_foot"] + v(0, 0, 0.04)),
    ("lowerback", "root", P["pelvis"], P["spine2"]),
    ("upperback", "lowerback", P["spine2"], P["spine3"]),
    ("thorax", "upperback", P["spine3"], P["neck"] - v(0, 0.05, 0)),
    ("lowerneck", "thorax", P["neck"] - v(0, 0.05, 0), P["neck"]),
    ("upperneck", "lowerneck", P["neck"], P["head"]),
    ("head", "upperneck", P["head"], P["head"] + v(0, 0.1, 0)),
    ("lclavicle", "thorax", P["neck"] - v(0, 0.05, 0), P["left_shoulder"]),
    ("lhumerus", "lclavicle", P["left_shoulder"], P["left_elbow"]),
    ("lradius", "lhumerus", P["left_elbow"], P["left_wrist"]),
    ("lhand", "lradius", P["left_wrist"], P["left_wrist"] + v(0.09, 0, 0)),
    ("rclavicle", "thorax", P["neck"] - v(0, 0.05, 0), P["right_shoulder"]),
    ("rhumerus", "rclavicle", P["right_shoulder"], P["right_elbow"]),
    ("rradius", "rhumerus", P["right_elbow"], P["right_wrist"]),
    ("rhand", "rradius", P["right_wrist"], P["right_wrist"] - v(0.09, 0, 0)),
]


def applied_in_order(axes: str, deg: np.ndarray) -> np.ndarray:
    """The first listed axis applied first: ``R = R_last ... R_first`` (Acclaim's orders)."""
    r = np.broadcast_to(np.eye(3), deg.shape[:-1] + (3, 3)).copy()
    for i, a in enumerate(axes.lower()):
        r = elem(a, deg[..., i]) @ r
    return r


def write_asf_amc(
    folder: Path,
    *,
    seed: int,
    t: int = 6,
    length: float = 0.45,
    angle: str = "deg",
    amc_angle: str | None = None,
    header: str = ":FULLY-SPECIFIED",
    mass: str = "1.0",
    root_order: str = "TX TY TZ RX RY RZ",
    root_axis: str = "XYZ",
    units_one_line: bool = False,
    omit: tuple[str, ...] = (),
    newline: str = "\n",
) -> dict[str, np.ndarray]:
    """Write ``folder/s.asf`` and ``folder/s_01.amc`` with random bone axes, axis orders, dof
    subsets in random order, dof limits and a documentation block; return the bone end points
    ``(T, 3)`` by CMU's reader (``amc_parser``): ``M_bone = M_parent C R C^-1`` with ``C`` the
    ``axis`` rotation and ``R`` the dofs, each applied in listed order; ``end = end_parent +
    length M_bone direction``."""
    rng = np.random.default_rng(seed)
    unit = 0.0254 / length  # metres per file unit
    to_file = np.radians if angle == "rad" else (lambda d: d)
    amc_to_file = np.radians if (amc_angle or angle) == "rad" else (lambda d: d)
    orders = ["XYZ", "ZYX", "YZX", "XZY", "ZXY", "YXZ"]
    asf = ["# an ASF written by advprior's tests", ":version 1.10", ":name VICON"]
    if units_one_line:
        asf.append(f":units mass {mass} length {length} angle {angle}")
    else:
        asf += [":units", f"  mass {mass}", f"  length {length}", f"  angle {angle}"]
    root_orientation = rng.uniform(-10, 10, 3)
    asf += [":documentation", "  dof limits in degrees", ":root", f"   order {root_order}"]
    asf += [f"   axis {root_axis}", "   position 0 0 0"]
    asf += ["   orientation " + " ".join(f"{to_file(x):.12f}" for x in root_orientation)]
    asf.append(":bonedata")
    bones = {}
    for i, (name, parent, a, b) in enumerate(ASF_BONES):
        d = (b - a) / np.linalg.norm(b - a)
        axis, order = rng.uniform(-60, 60, 3), orders[rng.integers(6)]
        dof = (
            [] if name in omit else list(rng.permutation(["rx", "ry", "rz"])[: rng.integers(1, 4)])
        )
        bones[name] = {
            "parent": parent,
            "dir": d,
            "len": np.linalg.norm(b - a),
            "axis": axis,
            "order": order,
            "dof": dof,
        }
        asf += ["  begin", f"     id {i + 1}", f"     name {name}"]
        asf += ["     direction " + " ".join(f"{x:.12f}" for x in d)]
        asf += [f"     length {np.linalg.norm(b - a) / unit:.12f}"]
        asf += ["     axis " + " ".join(f"{to_file(x):.12f}" for x in axis) + f" {order}"]
        if dof:
            asf += ["    dof " + " ".join(dof), "    limits (-160.0 20.0)"]
            asf += ["           (-70.0 70.0)"] * (len(dof) - 1)
        asf.append("  end")
    asf += [":hierarchy", "  begin"]
    children: dict[str, list[str]] = {}
    for name, parent, *_ in ASF_BONES:
        children.setdefault(parent, []).append(name)
    asf += [f"    {p} " + " ".join(c) for p, c in children.items()] + ["  end"]
    (folder / "s.asf").write_text(newline.join(asf) + newline)

    s = np.linspace(0, 1, t)[:, None]
    a, b = rng.uniform(-1, 1, (2, 3))
    root_pos = P["pelvis"] + 0.3 * ((1 - s) * a + s * b)
    a, b = rng.uniform(-40, 40, (2, 3))
    root_deg = (1 - s) * a + s * b
    motion = {}
    for name, bone in bones.items():
        a, b = rng.uniform(-45, 45, (2, len(bone["dof"])))
        motion[name] = (1 - s) * a + s * b
    amc = [header, ":DEGREES" if (amc_angle or angle) == "deg" else ":RADIANS"]
    tokens = root_order.lower().split()
    for f in range(t):
        amc.append(str(f + 1))
        root = [
            root_pos[f, "xyz".index(k[1])] / unit
            if k[0] == "t"
            else amc_to_file(root_deg[f, "xyz".index(k[1])])
            for k in tokens
        ]
        amc.append("root " + " ".join(f"{x:.12f}" for x in root))
        for name, bone in bones.items():
            if bone["dof"]:
                amc.append(name + " " + " ".join(f"{amc_to_file(x):.12f}" for x in motion[name][f]))
    (folder / "s_01.amc").write_text(newline.join(amc) + newline)

    rot = [k[1] for k in tokens if k[0] == "r"]
    c = applied_in_order(root_axis, root_orientation)
    m = applied_in_order("".join(rot), np.stack([root_deg[:, "xyz".index(k)] for k in rot], -1))
    mats, ends = {"root": c @ m @ c.T}, {"root": root_pos}
    for name, bone in bones.items():
        c = applied_in_order(bone["order"], bone["axis"])
        dof = "".join(d[1] for d in bone["dof"])
        m = applied_in_order(dof, motion[name]) if dof else np.eye(3)
        mats[name] = mats[bone["parent"]] @ c @ m @ c.T
        ends[name] = ends[bone["parent"]] + bone["len"] * mats[name] @ bone["dir"]
    return ends


ASF_DIALECTS = {
    "cmu": {},
    "radians": {"angle": "rad"},
    "asf_radians_amc_degrees": {"angle": "rad", "amc_angle": "deg"},
    "length_1_mass_2_one_units_line": {"length": 1.0, "mass": "2.0", "units_one_line": True},
    # CMU's length and radians on one line: read as the defaults before, bones 2.2x too short
    "one_units_line_length_045_radians": {"units_one_line": True, "angle": "rad"},
    "lowercase_header_root_rotations_first_zyx_axis": {
        "header": ":fully-specified",
        "root_order": "RZ RY RX TX TY TZ",
        "root_axis": "ZYX",
    },
    "crlf_bones_without_dof": {"newline": "\r\n", "omit": ("lhand", "rhand", "ltoes", "head")},
}


@pytest.mark.parametrize("dialect", sorted(ASF_DIALECTS))
def test_asf_amc_dialects_pose_as_cmus_reader(tmp_path: Path, dialect: str) -> None:
    ends = write_asf_amc(
        tmp_path, seed=sorted(ASF_DIALECTS).index(dialect), **ASF_DIALECTS[dialect]
    )
    motion = load_motion(tmp_path / "s_01.amc")
    assert motion.num_frames == 6
    sk = motion.skeleton
    positions = motion.global_transforms()[1]
    # each bone's end is where its children (or its End Site) start
    for name, _, _, _ in ASF_BONES:
        below = sk.children(sk.index(name))
        assert below
        for child in below:
            np.testing.assert_allclose(positions[:, child], ends[name], atol=ATOL_M)
    errors = bone_direction_errors(motion.to_smpl(fps=None))
    assert max(float(errors[b].max()) for b in ("thigh", "shin", "upper_arm", "forearm")) < 1e-4


def test_asf_units_that_are_not_pairs_fail_naming_the_line(tmp_path: Path) -> None:
    write_asf_amc(tmp_path, seed=0, units_one_line=True)
    asf = tmp_path / "s.asf"
    asf.write_text(asf.read_text().replace(" angle deg", " angle"))
    with pytest.raises(MotionFormatError, match=r"s\.asf:4: units must be name/value pairs"):
        load_motion(tmp_path / "s_01.amc")


# ---------------------------------------------------------------------------------------------
# AMASS as users bring it, and builds over folders mixing good and bad files
# ---------------------------------------------------------------------------------------------


def _amass_tree(root: Path, t: int = 40) -> np.ndarray:
    """An AMASS-like tree: one capture as SMPL-H ``*_poses.npz`` and SMPL-X "G" ``*_stageii.npz``
    (split arrays, hands/jaw/eyes, ``mocap_frame_rate``, gender as bytes, a pickled member that
    must not be read), shape-only files beside them. Returns the (T, 165) poses."""
    rng = np.random.default_rng(7)
    poses = rng.normal(0, 0.4, (t, 165))
    trans = rng.normal(0, 0.5, (t, 3))
    take = root / "BMLrub" / "rub001"
    take.mkdir(parents=True)
    np.savez(
        take / "walk_poses.npz",
        poses=poses[:, :156],
        trans=trans,
        mocap_framerate=np.array(120.0),
        gender=np.array("male"),
        betas=rng.normal(size=16),
        dmpls=np.zeros((t, 8)),
    )
    np.savez(
        take / "walk_stageii.npz",
        poses=poses,
        trans=trans,
        mocap_frame_rate=np.array(120.0),
        gender=np.array(b"female"),
        betas=rng.normal(size=16),
        num_betas=np.array(16),
        root_orient=poses[:, :3],
        pose_body=poses[:, 3:66],
        pose_jaw=poses[:, 66:69],
        pose_eye=poses[:, 69:75],
        pose_hand=poses[:, 75:],
        surface_model_type=np.array("smplx"),
        markers_latent_vids=np.array({"C7": 3832}, dtype=object),
    )
    np.savez(take / "shape.npz", betas=rng.normal(size=300), gender=np.array("neutral"))
    np.savez(
        take.parent / "neutral_stagei.npz", betas=rng.normal(size=16), gender=np.array(b"neutral")
    )
    return poses


def test_amass_smplh_and_smplx_g_files_and_shape_files(tmp_path: Path) -> None:
    _amass_tree(tmp_path)
    take = tmp_path / "BMLrub" / "rub001"
    h = load_motion(take / "walk_poses.npz").to_smpl(fps=None)
    x = load_motion(take / "walk_stageii.npz").to_smpl(fps=None)
    for key in ("body_pose", "global_orient", "transl"):
        np.testing.assert_array_equal(getattr(h, key), getattr(x, key))
    lines: list[str] = []
    report = build_dataset([tmp_path], tmp_path / "d.npz", fps=30, log=lines.append)
    assert report.sequences == 2 and list(report.subjects) == ["BMLrub:rub001"]
    skipped = {Path(f).name: why for f, why in report.skipped}
    assert skipped == {
        "shape.npz": "npz without a 'poses' or 'pose_body' array (not a motion)",
        "neutral_stagei.npz": "npz without a 'poses' or 'pose_body' array (not a motion)",
    }


@pytest.mark.parametrize("rate", [59.94, 100.0, 250.0, 29.97])
def test_amass_unusual_rates_resample_exactly(tmp_path: Path, rate: float) -> None:
    # a hip turning at a constant rate about a fixed axis: frame k at 30 fps holds its angle at
    # time k / 30 (slerp is exact there), and the clip ends at its last sample
    n = int(2 * rate)
    poses = np.zeros((n, 156))
    poses[:, 3] = 1.3 * np.arange(n) / rate
    np.savez(
        tmp_path / "a.npz", poses=poses, trans=np.zeros((n, 3)), mocap_framerate=np.array(rate)
    )
    smpl = load_motion(tmp_path / "a.npz").to_smpl(fps=30)
    k = np.arange(smpl.num_frames)
    assert smpl.num_frames == int(np.floor((n - 1) / rate * 30 + 1e-6)) + 1
    np.testing.assert_allclose(smpl.body_pose[:, 0], 1.3 * k / 30, atol=ATOL_RAD)


def test_damaged_npz_is_an_error_naming_it_not_a_shape_file(tmp_path: Path) -> None:
    _amass_tree(tmp_path)
    good = tmp_path / "BMLrub" / "rub001" / "walk_poses.npz"
    cut = good.with_name("cut_poses.npz")
    cut.write_bytes(good.read_bytes()[:2000])  # an interrupted download
    text = good.with_name("notes_poses.npz")
    text.write_text("not an archive\n")  # np.load would call this a pickle
    for bad in (cut, text):
        with pytest.raises(MotionFormatError, match=rf"{bad.name}: not an npz archive"):
            load_motion(bad)
    report = build_dataset([tmp_path], tmp_path / "d.npz", fps=30)
    skipped = {Path(f).name: why for f, why in report.skipped}
    assert skipped["cut_poses.npz"].startswith("MotionFormatError: ")
    assert "not an npz archive" in skipped["notes_poses.npz"]


def test_build_over_good_and_bad_files_reports_each_and_never_writes_a_partial_file(
    tmp_path: Path,
) -> None:
    data = tmp_path / "in"
    (data / "lab" / "alice").mkdir(parents=True)
    (data / "lab" / "bob").mkdir(parents=True)
    _amass_tree(data / "amass")
    path, *_ = _layout_file(data / "lab" / "alice", "mixamo_cm", t=20)
    _layout_file(data / "lab" / "alice", "lowercase_tabs_crlf_blank_lines", t=20)
    whole = path.read_text()
    cut = whole[: len(whole) // 3]  # ends inside a frame line
    (data / "lab" / "bob" / "cut.bvh").write_text(cut)
    last = cut.splitlines()[-1]
    width = len(whole.splitlines()[-1].split())
    (data / "lab" / "bob" / "cut_poses.npz").write_bytes(b"PK\x03\x04 cut short")
    lafan = _both_sides(LAFAN_LIKE)
    joints = skeleton(lafan, scale=100, root_ch=R6 + ZYX, joint_ch=ZYX)
    write_bvh(data / "lab" / "bob" / "lafan.bvh", joints, channel_values(joints, 20, scale=100))

    lines: list[str] = []
    report = build_dataset([data], tmp_path / "d.npz", fps=30, log=lines.append)
    assert report.sequences == 4  # 2 BVH + AMASS SMPL-H and SMPL-X
    errors = {Path(f).name: why for f, why in report.skipped if "Error" in why}
    assert set(errors) == {"cut.bvh", "cut_poses.npz", "lafan.bvh"}
    expected = f"cut.bvh:{len(cut.splitlines())}: frame line has {len(last.split())} numbers"
    assert f"{expected}, expected {width}" in errors["cut.bvh"]
    assert "not a standing pose" in errors["lafan.bvh"]
    assert all(any(name in line for line in lines) for name in errors)

    out = tmp_path / "abort.npz"
    with pytest.raises(MotionFormatError):
        build_dataset([data], out, fps=30, on_error="abort")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "in"]  # no temporary file
