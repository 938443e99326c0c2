"""Importers and retargeting on tiny files written here: every BVH naming variant, rotation
orders, units, 6-channel joints, z-up worlds, ASF/AMC (radians, odd axes), AMASS npz, DeepMimic
JSON; round trips from SMPL poses we choose back to those poses; errors naming file and line."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from advprior.data import load_motion
from advprior.data.dataset import classify
from advprior.data.rotmath import euler_matrix, rotvec_to_matrix
from advprior.errors import MotionFormatError
from advprior.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS

RNG = np.random.default_rng(0)

# Mixamo's joint names without a rig prefix (HumanIK's; MotionBuilder's up to the hands).
_MIXAMO_JOINTS = (
    "Hips",
    "LeftUpLeg",
    "RightUpLeg",
    "Spine",
    "LeftLeg",
    "RightLeg",
    "Spine1",
    "LeftFoot",
    "RightFoot",
    "Spine2",
    "LeftToeBase",
    "RightToeBase",
    "Neck",
    "LeftShoulder",
    "RightShoulder",
    "Head",
    "LeftArm",
    "RightArm",
    "LeftForeArm",
    "RightForeArm",
    "LeftHand",
    "RightHand",
    "LeftHandMiddle1",
    "RightHandMiddle1",
)

VARIANTS = {
    # SMPL joint -> joint name; extras: (name, parent SMPL joint, child SMPL joint, fraction[,
    # "twist"]): a joint inserted on the bone; a "twist" extra carries the twist of its parent
    # joint's rotation about the bone, the parent joint keeps the swing (Daz Genesis' Bend/Twist).
    "motionbuilder": {
        "names": [*_MIXAMO_JOINTS[:22], "LeftFingerBase", "RightFingerBase"],
        "extras": [("LHipJoint", 0, 1, 0.0), ("RHipJoint", 0, 2, 0.0)],
        "order": "ZYX",
    },
    "3dsmax": {
        "names": [
            "Hips",
            "LeftHip",
            "RightHip",
            "lowerback",
            "LeftKnee",
            "RightKnee",
            "Chest",
            "LeftAnkle",
            "RightAnkle",
            "Chest2",
            "LeftToe",
            "RightToe",
            "Neck",
            "LeftCollar",
            "RightCollar",
            "Head",
            "LeftShoulder",
            "RightShoulder",
            "LeftElbow",
            "RightElbow",
            "LeftWrist",
            "RightWrist",
            "lhand",
            "rhand",
        ],
        "extras": [("LHipJoint", 0, 1, 0.5), ("RHipJoint", 0, 2, 0.5), ("lowerneck", 9, 12, 0.5)],
        "order": "YZX",
    },
    "daz": {
        "names": [
            "hip",
            "lThigh",
            "rThigh",
            "abdomen",
            "lShin",
            "rShin",
            "abdomen2",
            "lFoot",
            "rFoot",
            "chest",
            "",
            "",
            "neck",
            "lCollar",
            "rCollar",
            "head",
            "lShldr",
            "rShldr",
            "lForeArm",
            "rForeArm",
            "lHand",
            "rHand",
            "lMid1",
            "rMid1",
        ],
        "extras": [("lButtock", 0, 1, 0.5), ("rButtock", 0, 2, 0.5)],
        "order": "ZXY",
    },
    "genesis": {  # Daz Genesis 3/8: Bend joints, with Twist bones inside the limb chains
        "names": [
            "hip",
            "lThighBend",
            "rThighBend",
            "abdomenLower",
            "lShin",
            "rShin",
            "abdomenUpper",
            "lFoot",
            "rFoot",
            "chestLower",
            "lToe",
            "rToe",
            "neckLower",
            "lCollar",
            "rCollar",
            "head",
            "lShldrBend",
            "rShldrBend",
            "lForearmBend",
            "rForearmBend",
            "lHand",
            "rHand",
            "lMid1",
            "rMid1",
        ],
        "extras": [
            ("lThighTwist", 1, 4, 0.5, "twist"),
            ("rThighTwist", 2, 5, 0.5, "twist"),
            ("chestUpper", 9, 12, 0.5),
            ("lShldrTwist", 16, 18, 0.5, "twist"),
            ("rShldrTwist", 17, 19, 0.5, "twist"),
            ("lForearmTwist", 18, 20, 0.5, "twist"),
            ("rForearmTwist", 19, 21, 0.5, "twist"),
        ],
        "order": "ZYX",
    },
    "biped": {  # 3ds Max Biped: names with spaces
        "names": [
            "Bip01 " + n
            for n in [
                "Pelvis",
                "L Thigh",
                "R Thigh",
                "Spine",
                "L Calf",
                "R Calf",
                "Spine1",
                "L Foot",
                "R Foot",
                "Spine2",
                "L Toe0",
                "R Toe0",
                "Neck",
                "L Clavicle",
                "R Clavicle",
                "Head",
                "L UpperArm",
                "R UpperArm",
                "L Forearm",
                "R Forearm",
                "L Hand",
                "R Hand",
                "L Finger2",
                "R Finger2",
            ]
        ],
        "extras": [],
        "order": "XZY",
    },
    "humanik": {  # MotionBuilder HumanIK: in-line Roll bones carry the limb twists
        "names": list(_MIXAMO_JOINTS),
        "extras": [
            ("LeftUpLegRoll", 1, 4, 0.5, "twist"),
            ("RightUpLegRoll", 2, 5, 0.5, "twist"),
            ("LeftLegRoll", 4, 7, 0.5, "twist"),
            ("RightLegRoll", 5, 8, 0.5, "twist"),
            ("LeftArmRoll", 16, 18, 0.5, "twist"),
            ("RightArmRoll", 17, 19, 0.5, "twist"),
            ("LeftForeArmRoll", 18, 20, 0.5, "twist"),
            ("RightForeArmRoll", 19, 21, 0.5, "twist"),
        ],
        "order": "ZXY",
    },
    "mixamo": {
        "names": ["mixamorig:" + n for n in _MIXAMO_JOINTS],
        "extras": [],
        "order": "XYZ",
    },
    "advanced_skeleton": {  # Maya Advanced Skeleton: "_M" marks the centre line
        "names": [
            *("Root_M", "Hip_L", "Hip_R", "Spine1_M", "Knee_L", "Knee_R", "Spine2_M"),
            *("Ankle_L", "Ankle_R", "Chest_M", "Toes_L", "Toes_R", "Neck_M", "Scapula_L"),
            *("Scapula_R", "Head_M", "Shoulder_L", "Shoulder_R", "Elbow_L", "Elbow_R"),
            *("Wrist_L", "Wrist_R", "MiddleFinger1_L", "MiddleFinger1_R"),
        ],
        "extras": [],
        "order": "XYZ",
    },
    "vrm": {  # VRoid / VRM humanoids: "J_Bip_" prefix, "C" for the centre line
        "names": [
            "J_Bip_" + n
            for n in (
                *("C_Hips", "L_UpperLeg", "R_UpperLeg", "C_Spine", "L_LowerLeg", "R_LowerLeg"),
                *("C_Chest", "L_Foot", "R_Foot", "C_UpperChest", "L_ToeBase", "R_ToeBase"),
                *("C_Neck", "L_Shoulder", "R_Shoulder", "C_Head", "L_UpperArm", "R_UpperArm"),
                *("L_LowerArm", "R_LowerArm", "L_Hand", "R_Hand", "L_Middle1", "R_Middle1"),
            )
        ],
        "extras": [],
        "order": "ZXY",
    },
    # two neck joints, the first at SMPL's neck and the second mid-neck (Unreal 5's neck_01 >
    # neck_02 > head, Perception Neuron's Neck > Neck1 > Head); 3dsmax's "lowerneck" is the
    # other kind, below SMPL's neck like CMU's. SMPL's neck goes on the one where it is.
    "two_necks": {
        "names": [*_MIXAMO_JOINTS[:12], "neck_01", *_MIXAMO_JOINTS[13:15], "head"]
        + list(_MIXAMO_JOINTS[16:]),
        "extras": [("neck_02", 12, 15, 0.5)],
        "order": "ZXY",
    },
}


def _tree(variant: str) -> list[dict]:
    """Joints of a BVH built on SMPL's rest skeleton: name, parent, smpl index, rest position."""
    spec = VARIANTS[variant]
    names = spec["names"]
    extra_for = {e[2]: (e[0], e[1], e[3], e[4:] == ("twist",)) for e in spec["extras"]}
    joints: list[dict] = []
    index_of: dict[int, int] = {}

    def add(j: int, parent: int) -> None:
        if j in extra_for:
            name, pj, frac, twist = extra_for[j]
            pos = REST_JOINTS[pj] + frac * (REST_JOINTS[j] - REST_JOINTS[pj])
            axis = REST_JOINTS[j] - REST_JOINTS[pj] if twist else None
            joints.append({"name": name, "parent": parent, "smpl": None, "pos": pos})
            if twist:
                joints[-1].update(smpl=pj, part="twist", axis=axis)
                joints[parent].update(part="swing", axis=axis)
            parent = len(joints) - 1
        if names[j]:
            joints.append({"name": names[j], "parent": parent, "smpl": j, "pos": REST_JOINTS[j]})
            index_of[j] = len(joints) - 1
            me = len(joints) - 1
        else:
            return
        kids = [c for c in range(24) if PARENTS[c] == j and names[c]]
        for c in kids:
            add(c, me)
        if not kids:
            # Daz-like feet end at SMPL's toe joints, so the rest skeletons agree.
            tip = {
                15: [0, 0.12, 0],
                10: [0, -0.02, 0.06],
                11: [0, -0.02, 0.06],
                7: REST_JOINTS[10] - REST_JOINTS[7],
                8: REST_JOINTS[11] - REST_JOINTS[8],
            }.get(j)
            if tip is None:
                d = REST_JOINTS[j] - REST_JOINTS[PARENTS[j]]
                tip = 0.3 * d
            joints.append(
                {"name": None, "parent": me, "smpl": None, "pos": REST_JOINTS[j] + np.asarray(tip)}
            )

    add(0, -1)
    return joints


def write_bvh(
    path: Path,
    variant: str,
    local: np.ndarray,
    root: np.ndarray,
    *,
    scale: float = 1.0,
    world: np.ndarray | None = None,
    six: bool = False,
    frame_time: float = 1 / 60,
    newline: str = "\n",
    indent: str = "  ",
) -> None:
    """Write SMPL local rotations ``(T, 24, 3, 3)`` and pelvis positions ``(T, 3)`` as a BVH.

    ``world`` rotates the whole capture (rest skeleton and motion) into another world frame.
    """
    joints = _tree(variant)
    order = VARIANTS[variant]["order"]
    world = np.eye(3) if world is None else world
    lines = ["HIERARCHY"]
    cols = []

    def emit(k: int, depth: int) -> None:
        j = joints[k]
        pad = indent * depth
        off = j["pos"] - (joints[j["parent"]]["pos"] if j["parent"] >= 0 else 0)
        off = world @ off * scale
        if j["name"] is None:
            lines.extend(
                [
                    f"{pad}End Site",
                    f"{pad}{{",
                    f"{pad}{indent}OFFSET {off[0]:.9f} {off[1]:.9f} {off[2]:.9f}",
                    f"{pad}}}",
                ]
            )
            return
        head = "ROOT" if j["parent"] < 0 else "JOINT"
        lines.extend(
            [
                f"{pad}{head} {j['name']}",
                f"{pad}{{",
                f"{pad}{indent}OFFSET {off[0]:.9f} {off[1]:.9f} {off[2]:.9f}",
            ]
        )
        rot = " ".join(f"{a}rotation" for a in order)
        if j["parent"] < 0 or six:
            lines.append(f"{pad}{indent}CHANNELS 6 Xposition Yposition Zposition {rot}")
            cols.append((k, True, off))
        else:
            lines.append(f"{pad}{indent}CHANNELS 3 {rot}")
            cols.append((k, False, off))
        for c in [c for c, x in enumerate(joints) if x["parent"] == k]:
            emit(c, depth + 1)
        lines.append(f"{pad}}}")

    emit(0, 0)
    t = local.shape[0]
    data = []
    for k, has_pos, off in cols:
        j = joints[k]
        r = local[:, j["smpl"]] if j["smpl"] is not None else np.broadcast_to(np.eye(3), (t, 3, 3))
        if "part" in j:
            swing, twist = _swing_twist(r, j["axis"])
            r = swing if j["part"] == "swing" else twist
        r = world @ r @ world.T
        if has_pos:
            pos = (root @ world.T) * scale if j["parent"] < 0 else np.tile(off, (t, 1))
            data.append(pos)
        data.append(Rotation.from_matrix(r).as_euler(order, degrees=True))
    data = np.concatenate(data, axis=1)
    lines += ["MOTION", f"Frames: {t}", f"Frame Time: {frame_time:.8f}"]
    lines += [" ".join(f"{v:.9f}" for v in row) for row in data]
    path.write_text(newline.join(lines) + newline)


def _swing_twist(r: np.ndarray, axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``r (T, 3, 3) = swing @ twist`` with ``twist`` a rotation about ``axis``."""
    q = Rotation.from_matrix(r).as_quat()  # (x, y, z, w)
    d = axis / np.linalg.norm(axis)
    tw = np.concatenate([(q[:, :3] @ d)[:, None] * d, q[:, 3:]], axis=1)
    twist = Rotation.from_quat(tw / np.linalg.norm(tw, axis=1, keepdims=True))
    return (Rotation.from_matrix(r) * twist.inv()).as_matrix(), twist.as_matrix()


def random_pose(t: int, scale: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random SMPL local rotations ``(T, 24, 3, 3)`` and pelvis positions ``(T, 3)``."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, scale, (2, 24, 3))
    s = np.linspace(0, 1, t)[:, None, None]
    aa = (1 - s) * a + s * b
    aa[:, 22:] = 0.0
    local = rotvec_to_matrix(aa)
    root = REST_JOINTS[0] + np.stack([s[:, 0, 0], 0.1 * s[:, 0, 0], -s[:, 0, 0]], -1)
    return local, root


def _joint_errors(smpl, local: np.ndarray) -> np.ndarray:
    """Angle (rad) per frame and SMPL joint 1..21 between retargeted and true local rotations."""
    t = local.shape[0]
    truth = Rotation.from_matrix(local[:, 1:22].reshape(-1, 3, 3))
    got = Rotation.from_rotvec(smpl.body_pose.reshape(-1, 3))
    return (truth.inv() * got).magnitude().reshape(t, 21)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_bvh_round_trip_every_naming_variant(tmp_path: Path, variant: str) -> None:
    local, root = random_pose(12, seed=sorted(VARIANTS).index(variant))
    if variant == "daz":
        local[:, 10:12] = np.eye(3)  # Daz has no toe joints: the foot rotation is not recorded.
    path = tmp_path / f"{variant}.bvh"
    write_bvh(path, variant, local, root, scale=100.0 if variant == "daz" else 1.0)
    motion = load_motion(path)
    assert motion.num_frames == 12 and motion.fps == pytest.approx(60.0)
    smpl = motion.to_smpl(fps=None)
    err = _joint_errors(smpl, local)
    assert err.max() < 1e-4, (variant, np.degrees(err.max(axis=0)))
    go = Rotation.from_rotvec(smpl.global_orient)
    assert (Rotation.from_matrix(local[:, 0]).inv() * go).magnitude().max() < 1e-4
    np.testing.assert_allclose(smpl.transl, root - REST_JOINTS[0], atol=1e-5)


def test_bvh_leftshoulder_is_collar_or_upper_arm_by_hierarchy(tmp_path: Path) -> None:
    from advprior.data.naming import map_to_smpl

    local, root = random_pose(2)
    roles = {}
    for variant in ("motionbuilder", "3dsmax"):
        write_bvh(tmp_path / f"{variant}.bvh", variant, local, root)
        roles[variant] = map_to_smpl(load_motion(tmp_path / f"{variant}.bvh").skeleton).roles
    assert roles["motionbuilder"]["left_collar"] == "LeftShoulder"
    assert roles["motionbuilder"]["left_shoulder"] == "LeftArm"
    assert roles["3dsmax"]["left_collar"] == "LeftCollar"
    assert roles["3dsmax"]["left_shoulder"] == "LeftShoulder"
    assert roles["3dsmax"]["neck"] == "Neck"


def _end_sites_below(text: str, joints: tuple[str, ...], offset: str | None) -> str:
    """``text`` with the End Site that is the only child of each of ``joints`` given the
    OFFSET ``offset``, or removed if ``offset`` is None."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        out.append(lines[i])
        words = lines[i].split()
        if words[:1] == ["JOINT"] and words[1] in joints:
            assert lines[i + 4].strip() == "End Site"  # JOINT, {, OFFSET, CHANNELS, End Site
            out.extend(lines[i + 1 : i + 4])
            if offset is not None:
                out.extend([lines[i + 4], lines[i + 5], f"OFFSET {offset}", lines[i + 7]])
            i += 8  # past the End Site's four lines
            continue
        i += 1
    return "\n".join(out) + "\n"


def test_bvh_feet_without_end_sites_import_with_a_note(tmp_path: Path) -> None:
    from advprior.data.dataset import build_dataset
    from advprior.errors import RetargetWarning

    local, root = random_pose(40, seed=5)
    local[:, 10:12] = np.eye(3)
    write_bvh(tmp_path / "daz.bvh", "daz", local, root, scale=100.0)
    text = (tmp_path / "daz.bvh").read_text()
    # a rest foot flatter than SMPL's (toe tip 2 cm above the ankle, 14 cm forward): with its
    # End Site the ankle is aligned to it, without one the source's rest foot angle stays
    full = tmp_path / "with" / "daz.bvh"
    full.parent.mkdir()
    full.write_text(_end_sites_below(text, ("lFoot", "rFoot"), "0 2 14"))
    bare = tmp_path / "without" / "daz.bvh"
    bare.parent.mkdir()
    bare.write_text(_end_sites_below(text, ("lFoot", "rFoot"), None))
    assert load_motion(bare).num_frames == 40

    with warnings.catch_warnings():
        warnings.simplefilter("error", RetargetWarning)
        exact = load_motion(full).to_smpl(fps=None)  # no warning with the End Sites
    expected = r"daz\.bvh: no joint or End Site below left_ankle, right_ankle"
    with pytest.warns(RetargetWarning, match=expected):
        approx = load_motion(bare).to_smpl(fps=None)
    # what the note warns of: the ankles lose the rest-foot alignment, every other joint is exact
    diff = np.abs(approx.body_pose - exact.body_pose).reshape(40, 21, 3).max(axis=(0, 2))
    ankles = [JOINT_NAMES.index("left_ankle") - 1, JOINT_NAMES.index("right_ankle") - 1]
    assert diff[ankles].min() > 1e-3
    assert np.delete(diff, ankles).max() < 1e-6

    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RetargetWarning)  # a build reports notes, never warns
        report = build_dataset([bare.parent], tmp_path / "d.npz", fps=30, log=lines.append)
    assert [f for f, _ in report.notes] == [str(bare)]
    assert any(line.startswith("note: ") and "left_ankle" in line for line in lines)
    meta = json.loads(str(np.load(tmp_path / "d.npz", allow_pickle=False)["meta"]))
    assert meta["notes"] == [list(n) for n in report.notes]
    clean = build_dataset([full.parent], tmp_path / "c.npz", fps=30)
    assert clean.notes == []


def test_bvh_z_up_world_six_channels_tabs_crlf_and_units(tmp_path: Path) -> None:
    local, root = random_pose(8, seed=3)
    z_up = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # y -> z
    path = tmp_path / "zup.bvh"
    write_bvh(
        path,
        "mixamo",
        local,
        root,
        scale=1 / 0.0254,
        world=z_up,
        six=True,
        newline="\r\n",
        indent="\t",
    )
    motion = load_motion(path)
    assert motion.local_translations is not None
    smpl = motion.to_smpl(fps=None)
    assert _joint_errors(smpl, local).max() < 1e-4
    # The capture world is z-up; the output is SMPL's y-up frame with the pelvis where it was.
    np.testing.assert_allclose(smpl.transl, root - REST_JOINTS[0], atol=1e-4)
    mm = tmp_path / "mm.bvh"
    write_bvh(mm, "motionbuilder", local, root, scale=1000.0)
    assert load_motion(mm).skeleton.offsets[1:].max() < 1.0
    np.testing.assert_allclose(load_motion(mm, units="mm").root_position, root, atol=1e-6)


@pytest.mark.parametrize("size", [1.0, 0.6, 0.55])
def test_bvh_units_of_a_small_body_in_cm(tmp_path: Path, size: float) -> None:
    # a child in cm (hip to ankle 0.43-0.47 m at 0.55-0.6 of SMPL's size) is nearer a typical
    # adult read as inches (1.1-1.2 m), a leg no person has: cm is the unit that fits a person
    local, root = random_pose(4, seed=2)
    path = tmp_path / "child.bvh"
    write_bvh(path, "mixamo", local, root, scale=100.0 * size)  # a body `size` of SMPL, in cm
    motion = load_motion(path)
    np.testing.assert_allclose(motion.root_position, root * size, atol=1e-6)


def test_bvh_fps_override_and_resampling(tmp_path: Path) -> None:
    local, root = random_pose(61, seed=5)
    path = tmp_path / "a.bvh"
    write_bvh(path, "motionbuilder", local, root, frame_time=1 / 120)
    assert load_motion(path).fps == pytest.approx(120.0)
    m = load_motion(path, fps=60)
    assert m.fps == 60 and m.duration == pytest.approx(1.0)
    assert m.to_smpl(30).num_frames == 31
    # 60 -> 25 fps is not an integer ratio: frame k lies at source time k * 60 / 25.
    smpl = m.to_smpl(25)
    assert smpl.num_frames == 26
    src = m.to_smpl(None)
    u = 7 * 60 / 25
    i0, a = int(u), u - int(u)
    expected = Rotation.from_rotvec(src.global_orient[[i0, i0 + 1]])
    from scipy.spatial.transform import Slerp

    mid = Slerp([0, 1], expected)([a])
    assert (mid.inv() * Rotation.from_rotvec(smpl.global_orient[7:8])).magnitude()[0] < 1e-3
    np.testing.assert_allclose(
        smpl.transl[7], (1 - a) * src.transl[i0] + a * src.transl[i0 + 1], atol=1e-6
    )


def test_bvh_with_a_rate_written_as_frame_time_fails_saying_so(tmp_path: Path) -> None:
    """ "Frame Time: 30" read as seconds would resample 61 frames into 54,000 at 30 fps."""
    local, root = random_pose(61, seed=5)
    path = tmp_path / "a.bvh"
    write_bvh(path, "motionbuilder", local, root, frame_time=30)
    with pytest.raises(MotionFormatError, match=r"a\.bvh: Frame Time 30.* pass fps=30"):
        load_motion(path)
    assert load_motion(path, fps=30).fps == 30  # the way out it names


def _asf_bones(axis_humerus: str = "180 -30 -90 XYZ") -> list[tuple]:
    """CMU-like bones on SMPL's rest skeleton: (name, start joint, end point, axis, dof)."""
    r = REST_JOINTS
    up = np.array([0.0, 0.1, 0.0])
    bones = [
        ("lowerback", 0, r[3], "0 0 0 XYZ", "rx ry rz"),
        ("upperback", 3, r[6], "0 0 0 XYZ", "rx ry rz"),
        ("thorax", 6, r[9], "0 0 0 XYZ", "rx ry rz"),
        ("lowerneck", 9, r[12], "0 0 0 XYZ", "rx ry rz"),
        ("upperneck", 12, r[15], "0 0 0 XYZ", "rx ry rz"),
        ("head", 15, r[15] + up, "0 0 0 XYZ", "rx ry rz"),
    ]
    for s, side in (("l", 0), ("r", 1)):
        hip, knee, ankle, foot = (1 + side, 4 + side, 7 + side, 10 + side)
        collar, sho, elb, wri, hand = (13 + side, 16 + side, 18 + side, 20 + side, 22 + side)
        sign = 1 if s == "l" else -1
        bones += [
            (f"{s}hipjoint", 0, r[hip], "0 0 0 XYZ", ""),
            (f"{s}femur", hip, r[knee], f"0 0 {20 * sign} XYZ", "rx ry rz"),
            (f"{s}tibia", knee, r[ankle], f"0 0 {20 * sign} XYZ", "rz rx ry"),
            (f"{s}foot", ankle, r[foot], f"-90 0 {20 * sign} XYZ", "rx ry rz"),
            (f"{s}toes", foot, r[foot] + [0, -0.01, 0.05], "-90 0 0 XYZ", "rx ry rz"),
            (f"{s}clavjoint", 9, r[collar], "0 0 0 XYZ", ""),
            (f"{s}clavicle", collar, r[sho], "0 0 0 XYZ", "rx ry rz"),
            (f"{s}humerus", sho, r[elb], axis_humerus, "rx ry rz"),
            (f"{s}radius", elb, r[wri], axis_humerus, "rx ry rz"),
            (f"{s}wrist", wri, r[hand], "0 90 90 XYZ", "rx ry rz"),
            (f"{s}hand", hand, r[hand] + 0.3 * (r[hand] - r[wri]), "0 90 90 XYZ", "rx ry rz"),
        ]
    return bones


_ASF_TREE = [
    ("root", ["lhipjoint", "rhipjoint", "lowerback"]),
    ("lhipjoint", ["lfemur"]),
    ("lfemur", ["ltibia"]),
    ("ltibia", ["lfoot"]),
    ("lfoot", ["ltoes"]),
    ("rhipjoint", ["rfemur"]),
    ("rfemur", ["rtibia"]),
    ("rtibia", ["rfoot"]),
    ("rfoot", ["rtoes"]),
    ("lowerback", ["upperback"]),
    ("upperback", ["thorax"]),
    ("thorax", ["lowerneck", "lclavjoint", "rclavjoint"]),
    ("lowerneck", ["upperneck"]),
    ("upperneck", ["head"]),
    ("lclavjoint", ["lclavicle"]),
    ("lclavicle", ["lhumerus"]),
    ("lhumerus", ["lradius"]),
    ("lradius", ["lwrist"]),
    ("lwrist", ["lhand"]),
    ("rclavjoint", ["rclavicle"]),
    ("rclavicle", ["rhumerus"]),
    ("rhumerus", ["rradius"]),
    ("rradius", ["rwrist"]),
    ("rwrist", ["rhand"]),
]


def write_asf_amc(
    folder: Path,
    local: np.ndarray,
    root: np.ndarray,
    *,
    length: float = 0.45,
    angle: str = "deg",
    root_order: str = "TX TY TZ RX RY RZ",
    stem: str = "07_01",
) -> Path:
    """Write ``<subject>.asf`` and ``<stem>.amc`` for SMPL local rotations ``(T, 24, 3, 3)``."""
    unit = length / 0.0254  # file units per metre
    to_file = (lambda a: np.degrees(a)) if angle == "deg" else (lambda a: a)
    bones = _asf_bones()
    lines = [
        ":version 1.10",
        ":name VICON",
        ":units",
        "  mass 1.0",
        f"  length {length}",
        f"  angle {angle}",
        ":root",
        f"   order {root_order}",
        "   axis XYZ",
        "   position 0 0 0",
        "   orientation 0 0 0",
        ":bonedata",
    ]
    start_of = {}
    for i, (name, start, end, axis, dof) in enumerate(bones, 1):
        vec = np.asarray(end) - REST_JOINTS[start]
        n = np.linalg.norm(vec)
        ax = np.asarray(axis.split()[:3], dtype=float)
        ax_text = " ".join(f"{to_file(np.radians(a)):.9f}" for a in ax) + " " + axis.split()[3]
        lines += [
            "  begin",
            f"     id {i}",
            f"     name {name}",
            "     direction " + " ".join(f"{v / n:.9f}" for v in vec),
            f"     length {n * unit:.9f}",
            f"     axis {ax_text}",
        ]
        if dof:
            lines.append(f"    dof {dof}")
        lines.append("  end")
        start_of[name] = start
    lines += [":hierarchy", "  begin"] + [f"    {p} {' '.join(c)}" for p, c in _ASF_TREE]
    lines += ["  end"]
    subject = stem.split("_")[0]
    (folder / f"{subject}.asf").write_text("\n".join(lines) + "\n")

    amc = [":FULLY-SPECIFIED", ":DEGREES" if angle == "deg" else ":RADIANS"]
    rot_axes = [t[1].lower() for t in root_order.split() if t.startswith("R")]
    for f in range(local.shape[0]):
        amc.append(str(f + 1))
        # Root: values in listed order; the first listed axis is applied first.
        ang = Rotation.from_matrix(local[f, 0]).as_euler("".join(rot_axes))
        vals = {"tx": root[f, 0] * unit, "ty": root[f, 1] * unit, "tz": root[f, 2] * unit}
        vals.update({f"r{a}": v for a, v in zip(rot_axes, ang, strict=True)})
        out = [
            vals[t.lower()] if t.startswith("T") else to_file(vals[t.lower()])
            for t in root_order.split()
        ]
        amc.append("root " + " ".join(f"{v:.9f}" for v in out))
        for name, start, _end, axis, dof in bones:
            if not dof:
                continue
            ax = np.radians(np.asarray(axis.split()[:3], dtype=float))
            c = euler_matrix(ax[::-1], axis.split()[3].lower()[::-1])
            # Bones leaving the pelvis move with the root only (SMPL has no joint there).
            m = c.T @ (np.eye(3) if start == 0 else local[f, start]) @ c
            # dof values in listed order, the first listed applied first (extrinsic).
            e = Rotation.from_matrix(m).as_euler("".join(d[1] for d in dof.split()))
            amc.append(f"{name} " + " ".join(f"{to_file(v):.9f}" for v in e))
    path = folder / f"{stem}.amc"
    path.write_text("\n".join(amc) + "\n")
    return path


@pytest.mark.parametrize(
    ("length", "angle", "order"),
    [(0.45, "deg", "TX TY TZ RX RY RZ"), (1.0, "rad", "TX TY TZ RZ RY RX")],
)
def test_asf_amc_round_trip_units_and_orders(tmp_path: Path, length, angle, order) -> None:
    local, root = random_pose(6, seed=11)
    # CMU clavicles hang off the thorax (SMPL spine2's end), SMPL's collars off spine3: with
    # spine3 still the two trees pose alike and the round trip is exact.
    local[:, 9] = np.eye(3)
    path = write_asf_amc(tmp_path, local, root, length=length, angle=angle, root_order=order)
    motion = load_motion(path)
    assert motion.fps == 120.0
    np.testing.assert_allclose(motion.root_position, root, atol=1e-6)
    smpl = motion.to_smpl(fps=None)
    err = _joint_errors(smpl, local)
    assert err.max() < 1e-4, np.degrees(err.max(axis=0))


def test_asf_found_in_sibling_asf_folder_and_by_argument(tmp_path: Path) -> None:
    local, root = random_pose(3)
    (tmp_path / "asf").mkdir()
    (tmp_path / "amc").mkdir()
    write_asf_amc(tmp_path / "asf", local, root, stem="HDM_xx_walk_001_120")
    amc = tmp_path / "asf" / "HDM_xx_walk_001_120.amc"
    moved = tmp_path / "amc" / amc.name
    amc.rename(moved)
    (tmp_path / "asf" / "HDM.asf").rename(tmp_path / "asf" / "HDM_xx.asf")
    assert load_motion(moved).num_frames == 3
    (tmp_path / "other" / "deep").mkdir(parents=True)
    elsewhere = tmp_path / "other" / "deep" / "x.amc"
    elsewhere.write_text(moved.read_text())
    with pytest.raises(MotionFormatError, match="no ASF skeleton"):
        load_motion(elsewhere)
    assert load_motion(elsewhere, skeleton=tmp_path / "asf" / "HDM_xx.asf").num_frames == 3


def test_amass_npz_is_rotated_into_y_up(tmp_path: Path) -> None:
    import torch

    from advprior.body import forward_kinematics

    rng = np.random.default_rng(2)
    for width, rate_key in ((156, "mocap_framerate"), (165, "mocap_frame_rate")):
        poses = rng.normal(0, 0.3, (10, width))
        trans = rng.normal(0, 1, (10, 3))
        path = tmp_path / f"a{width}.npz"
        np.savez(path, poses=poses, trans=trans, betas=np.zeros(16), **{rate_key: 60.0})
        smpl = load_motion(path).to_smpl(fps=None)
        np.testing.assert_allclose(smpl.body_pose, poses[:, 3:66], atol=1e-9)
        zup = forward_kinematics(
            torch.from_numpy(poses[:, :3]),
            torch.from_numpy(poses[:, 3:66]),
            transl=torch.from_numpy(trans),
        ).numpy()
        yup = forward_kinematics(
            torch.from_numpy(smpl.global_orient),
            torch.from_numpy(smpl.body_pose),
            transl=torch.from_numpy(smpl.transl),
        ).numpy()
        z_to_y = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
        np.testing.assert_allclose(yup, zup @ z_to_y.T, atol=1e-9)
        np.testing.assert_allclose(smpl.source_joints, yup, atol=1e-9)


def test_amass_layouts_of_other_tools_give_the_same_motion(tmp_path: Path) -> None:
    """SMPL's (T, 72), per-joint (T, J, 3) and the split pose_body/root_orient arrays (AMASS's
    SMPL-X release, VPoser's prepared data) are the same body pose as SMPL-H's (T, 156)."""
    rng = np.random.default_rng(4)
    poses = rng.normal(0, 0.3, (6, 156))
    trans = rng.normal(0, 1, (6, 3))
    common = dict(trans=trans, mocap_frame_rate=30.0)
    np.savez(tmp_path / "smplh.npz", poses=poses, **common)
    np.savez(tmp_path / "smpl.npz", poses=np.concatenate([poses[:, :66], poses[:, 66:72]], 1),
             **common)  # fmt: skip
    np.savez(tmp_path / "per_joint.npz", poses=poses.reshape(6, 52, 3), **common)
    np.savez(tmp_path / "split.npz", pose_body=poses[:, 3:66], root_orient=poses[:, :3], **common)
    # AMASS's SMPL-X files hold both; 'poses' is read
    np.savez(tmp_path / "both.npz", poses=poses, pose_body=np.zeros((6, 63)), **common)
    ref = load_motion(tmp_path / "smplh.npz").to_smpl(fps=None)
    for name in ("smpl", "per_joint", "split", "both"):
        got = load_motion(tmp_path / f"{name}.npz").to_smpl(fps=None)
        np.testing.assert_allclose(got.body_pose, ref.body_pose, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(got.global_orient, ref.global_orient, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(got.transl, ref.transl, atol=1e-12, err_msg=name)
    # without root_orient the root is the identity (rotated into y-up), the body unchanged
    np.savez(tmp_path / "body_only.npz", pose_body=poses[:, 3:66], **common)
    body_only = load_motion(tmp_path / "body_only.npz").to_smpl(fps=None)
    np.testing.assert_allclose(body_only.body_pose, ref.body_pose, atol=1e-12)
    assert classify(tmp_path / "body_only.npz") is None


def test_humor_processed_amass_npz_gives_its_rate_and_the_same_motion(tmp_path: Path) -> None:
    # HuMoR's process_amass_data.py (also used by EgoAllo and others) keeps AMASS's z-up world
    # and split arrays, states its rate as `fps` (it resamples to 30) and stores unused
    # members as None (pickled object arrays, never loaded). It was refused: "no
    # mocap_framerate / mocap_frame_rate; pass fps=".
    rng = np.random.default_rng(5)
    poses = rng.normal(0, 0.3, (8, 156))
    trans = rng.normal(0, 1, (8, 3))
    np.savez(tmp_path / "smplh.npz", poses=poses, trans=trans, mocap_framerate=30.0)
    humor = tmp_path / "C1_-_stand_to_walk_poses_8_frames_30_fps.npz"
    np.savez(
        humor,
        fps=30.0,
        gender="female",
        floor_height=0.02,
        contacts=np.zeros((8, 22)),
        trans=trans,
        root_orient=poses[:, :3],
        pose_body=poses[:, 3:66],
        pose_hand=None,
        betas=np.zeros(16),
        joints=np.zeros((8, 22, 3)),
        mojo_verts=None,
        world2aligned_rot=None,
    )
    ref = load_motion(tmp_path / "smplh.npz").to_smpl(fps=None)
    motion = load_motion(humor)
    assert motion.fps == 30.0
    got = motion.to_smpl(fps=None)
    np.testing.assert_allclose(got.body_pose, ref.body_pose, atol=1e-12)
    np.testing.assert_allclose(got.global_orient, ref.global_orient, atol=1e-12)
    np.testing.assert_allclose(got.transl, ref.transl, atol=1e-12)
    # AMASS's own keys come first
    np.savez(tmp_path / "both.npz", poses=poses, mocap_framerate=120.0, fps=30.0)
    assert load_motion(tmp_path / "both.npz").fps == 120.0


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        # (T, 66), the body without hands, is read (test_data_variants.py); 60 is no layout
        ({"poses": np.zeros((4, 60))}, r"'poses' must be \(T, 72\) SMPL.*got \(4, 60\)"),
        ({"poses": np.zeros((4, 23, 3))}, r"got \(4, 69\)"),
        ({"pose_body": np.zeros((4, 60))}, r"'pose_body' must be \(T, 63\)"),
        ({"pose_body": np.zeros((4, 63)), "root_orient": np.zeros((3, 3))}, "'root_orient' must"),
        ({"betas": np.zeros(16)}, "no 'poses' or 'pose_body' array"),
    ],
)
def test_amass_layout_errors_name_the_array(tmp_path: Path, arrays: dict, message: str) -> None:
    np.savez(tmp_path / "m.npz", mocap_framerate=30.0, **arrays)
    with pytest.raises(MotionFormatError, match=message):
        load_motion(tmp_path / "m.npz")


def _deepmimic_frames(t: int, knee: float, elbow: float) -> list[list[float]]:
    ident = [1.0, 0.0, 0.0, 0.0]
    frame = [1 / 30, 0.0, 0.9, 0.0] + ident + ident + ident
    frame += ident + [knee] + ident + ident + [elbow]  # right hip, knee, ankle, shoulder, elbow
    frame += ident + [knee] + ident + ident + [elbow]  # left
    return [frame] * t


def test_deepmimic_hinges_and_builtin_character(tmp_path: Path) -> None:
    path = tmp_path / "01_01.txt"
    path.write_text(json.dumps({"Loop": "none", "Frames": _deepmimic_frames(5, -1.0, 0.5)}))
    motion = load_motion(path)
    assert motion.fps == pytest.approx(30.0) and motion.meta["character"] == "built-in humanoid3d"
    smpl = motion.to_smpl(fps=None)
    from advprior.data.quality import posed_joints

    j = posed_joints(smpl)[0]
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    # Knee angle -1 rad (DeepMimic's sign): thigh and shin 1 rad apart, the shin going back (-z).
    for hip, knee, ankle in ((1, 4, 7), (2, 5, 8)):
        thigh, shin = unit(j[knee] - j[hip]), unit(j[ankle] - j[knee])
        assert np.arccos(thigh @ shin) == pytest.approx(1.0, abs=1e-6)
        assert shin[2] < -0.5
    # Arms hang down at rest; the elbow hinge (0.5 rad) bends the forearm forward (+z).
    for sho, elb, wri in ((16, 18, 20), (17, 19, 21)):
        np.testing.assert_allclose(unit(j[elb] - j[sho]), [0, -1, 0], atol=1e-6)
        fore = unit(j[wri] - j[elb])
        assert np.arccos(fore @ [0, -1, 0]) == pytest.approx(0.5, abs=1e-6) and fore[2] > 0
    # The character faces +x; in SMPL's frame the body faces +z, so the pelvis is near identity.
    assert np.linalg.norm(smpl.global_orient[0]) < 0.03


def test_deepmimic_with_a_byte_order_mark_or_a_long_header(tmp_path: Path) -> None:
    from advprior.data.deepmimic import is_deepmimic

    frames = _deepmimic_frames(5, -1.0, 0.5)
    bom = tmp_path / "01_01.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"Loop": "none", "Frames": frames}).encode())
    long = tmp_path / "01_02.txt"  # "Frames" after 100 KB of other keys
    long.write_text(json.dumps({"Notes": "x" * 100_000, "Loop": "none", "Frames": frames}))
    plain = tmp_path / "01_03.txt"
    plain.write_text(json.dumps({"Loop": "none", "Frames": frames}))
    want = load_motion(plain).to_smpl(fps=None).body_pose
    for path in (bom, long):
        assert is_deepmimic(path)
        np.testing.assert_array_equal(load_motion(path).to_smpl(fps=None).body_pose, want)
    other = tmp_path / "settings.json"
    other.write_text(json.dumps({"Notes": "x" * 100_000}))
    assert not is_deepmimic(other)


def test_deepmimic_character_file_beside_is_used(tmp_path: Path) -> None:
    from advprior.data.deepmimic import HUMANOID3D

    joints = [
        {
            "ID": i,
            "Name": n,
            "Type": t,
            "Parent": p,
            "AttachX": a[0],
            "AttachY": a[1],
            "AttachZ": a[2],
        }
        for i, (n, t, p, a) in enumerate(HUMANOID3D)
    ]
    (tmp_path / "my_character.txt").write_text(json.dumps({"Skeleton": {"Joints": joints}}))
    path = tmp_path / "clip.txt"
    path.write_text(json.dumps({"Frames": _deepmimic_frames(3, -0.5, 0.2)}))
    assert load_motion(path).meta["character"].endswith("my_character.txt")


# ---------------------------------------------------------------- errors name file and line


def test_bvh_truncated_names_file_and_line(tmp_path: Path) -> None:
    local, root = random_pose(5)
    path = tmp_path / "t.bvh"
    write_bvh(path, "motionbuilder", local, root)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1] + [lines[-1][: len(lines[-1]) // 2]]) + "\n")
    with pytest.raises(MotionFormatError, match=rf"t\.bvh:{len(lines)}: frame line has"):
        load_motion(path)
    path.write_text("\n".join(lines[:20]))
    with pytest.raises(MotionFormatError, match=r"t\.bvh:\d+: .*(MOTION|end of file)"):
        load_motion(path)
    bad = "\n".join(lines).replace("CHANNELS 3", "CHANNELS 3 Wrotation", 1)
    path.write_text(bad)
    with pytest.raises(MotionFormatError, match=r"t\.bvh:\d+: "):
        load_motion(path)


def test_bvh_unmapped_joints_error_lists_them(tmp_path: Path) -> None:
    path = tmp_path / "robot.bvh"
    path.write_text(
        "HIERARCHY\nROOT base\n{\n OFFSET 0 0 0\n CHANNELS 6 Xposition Yposition "
        "Zposition Zrotation Xrotation Yrotation\n JOINT arm\n {\n  OFFSET 0 1 0\n"
        "  CHANNELS 3 Zrotation Xrotation Yrotation\n  End Site\n  {\n   OFFSET 0 1 0\n"
        "  }\n }\n}\nMOTION\nFrames: 1\nFrame Time: 0.1\n0 0 0 0 0 0 0 0 0\n"
    )
    motion = load_motion(path)
    with pytest.raises(MotionFormatError, match=r"robot\.bvh: .*left knee.*right elbow.*base, arm"):
        motion.to_smpl()


def test_amc_bad_number_and_unknown_bone_name_line(tmp_path: Path) -> None:
    local, root = random_pose(2)
    path = write_asf_amc(tmp_path, local, root)
    lines = path.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith("ltibia"))
    lines[k] = "ltibia 1.0 oops 2.0"
    path.write_text("\n".join(lines))
    with pytest.raises(MotionFormatError, match=rf"07_01\.amc:{k + 1}: "):
        load_motion(path)
    lines[k] = "lknee 1.0"
    path.write_text("\n".join(lines))
    with pytest.raises(MotionFormatError, match=rf"07_01\.amc:{k + 1}: bone 'lknee'"):
        load_motion(path)


def test_asf_bad_line_and_deepmimic_bad_frame(tmp_path: Path) -> None:
    local, root = random_pose(2)
    path = write_asf_amc(tmp_path, local, root)
    asf = tmp_path / "07.asf"
    lines = asf.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.strip().startswith("direction"))
    lines[k] = "     direction 1 x 0"
    asf.write_text("\n".join(lines))
    with pytest.raises(MotionFormatError, match=rf"07\.asf:{k + 1}: "):
        load_motion(path)
    dm = tmp_path / "d.txt"
    frames = _deepmimic_frames(3, -0.2, 0.1)
    frames[2] = frames[2][:-3]
    dm.write_text('{"Frames": [\n' + ",\n".join(json.dumps(f) for f in frames) + "\n]}")
    with pytest.raises(MotionFormatError, match=r"d\.txt:4: frame 2 has 41 numbers"):
        load_motion(dm)
    dm.write_text('{"Frames": [[0.1, 2,\n')
    with pytest.raises(MotionFormatError, match=r"d\.txt:\d+: invalid JSON"):
        load_motion(dm)


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "01.asf").write_text(":version 1.10\n")
    with pytest.raises(MotionFormatError, match="only a skeleton"):
        load_motion(tmp_path / "01.asf")
    (tmp_path / "a.c3d").write_bytes(b"\x00")
    with pytest.raises(MotionFormatError, match=r"a\.c3d: unsupported motion format '.c3d'"):
        load_motion(tmp_path / "a.c3d")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MotionFormatError, match="not a DeepMimic"):
        load_motion(tmp_path / "notes.txt")
    np.savez(tmp_path / "shape.npz", betas=np.zeros(10))
    with pytest.raises(MotionFormatError, match="no 'poses'"):
        load_motion(tmp_path / "shape.npz")
    with pytest.raises(FileNotFoundError):
        load_motion(tmp_path / "missing.bvh")


def test_joint_names_table_is_case_and_prefix_insensitive() -> None:
    from advprior.data.naming import side_and_core

    cases = {
        "LeftLeg": ("L", "leg"),
        "lShin": ("L", "shin"),
        "RIGHTKNEE": ("R", "knee"),
        "mixamorig:RightForeArm": ("R", "forearm"),
        "Knee_L": ("L", "knee"),
        "ltibia": ("L", "tibia"),
        "rradius": ("R", "radius"),
        "lowerback": (None, "lowerback"),
        "right_elbow": ("R", "elbow"),
    }
    for name, want in cases.items():
        assert side_and_core(name) == want, name
    assert JOINT_NAMES[0] == "pelvis"


def test_rest_pose_that_is_not_standing_is_refused(tmp_path: Path) -> None:
    # A "star" rest like LAFAN1's: the legs point up along the spine.
    local, root = random_pose(3)
    path = tmp_path / "star.bvh"
    write_bvh(path, "mixamo", local, root)
    text = path.read_text().splitlines()
    for i, line in enumerate(text):
        if line.strip().startswith("JOINT mixamorig:Left") and "Leg" in line:
            off = text[i + 2].split()
            text[i + 2] = text[i + 2].replace(off[2], str(abs(float(off[2]))))
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(MotionFormatError, match=r"star\.bvh: the rest pose is not a standing"):
        load_motion(path).to_smpl()


def test_amc_rate_from_hdm05_name_not_from_cmu_trial_number(tmp_path: Path) -> None:
    local, root = random_pose(3)
    hdm = write_asf_amc(tmp_path, local, root, stem="HDM_xx_jump_001_60")
    (tmp_path / "HDM.asf").rename(tmp_path / "HDM_xx.asf")
    assert load_motion(hdm).fps == 60.0
    cmu = write_asf_amc(tmp_path, local, root, stem="13_30")
    assert load_motion(cmu).fps == 120.0
