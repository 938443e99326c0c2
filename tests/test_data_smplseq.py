"""SMPL-parameter sequences outside AMASS's npz, on small files written here from the datasets'
documented layouts (never real dataset files): 3DPW's Python 2 pickles (several people per
file), AIST++'s pickles (scaled translation), Motion-X's (T, 322) and plain SMPL-family npy
arrays; npz variants (BEDLAM's 0-d string ``gender``, GRAB's pickled nested dicts); pickles that
would run code; and ``advprior data build`` on a folder of them."""

from __future__ import annotations

import json
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from advprior.data import load_motion
from advprior.data.dataset import classify, load_dataset, subject_of
from advprior.data.rotmath import matrix_to_rotvec, rotvec_to_matrix
from advprior.errors import MotionFormatError, RetargetWarning
from advprior.fileio import portable_pickle
from advprior.skeleton import REST_JOINTS

# Round trips through rotation matrices and back: float64, angles well below pi.
EXACT = 1e-9


def _poses(seed: int, t: int, width: int = 72) -> np.ndarray:
    """Random SMPL-family poses with an upright root (a small tilt about a standing body), far
    enough from the rest pose that no leading frame is taken for a T-pose reference."""
    rng = np.random.default_rng(seed)
    poses = rng.normal(0, 0.4, (t, width))
    poses[:, :3] = rng.normal(0, 0.15, (t, 3))
    return poses


# --- a Python 2 cPickle (protocol 2) writer, for 3DPW-like files ------------------------------
# Python 2 wrote ``str`` as SHORT_BINSTRING/BINSTRING (bytes, decoded as latin-1 by Python 3)
# and a numpy array as numpy.core.multiarray._reconstruct + BUILD with its data as a str.


def _py2_str(text: str | bytes) -> bytes:
    raw = text.encode("latin-1") if isinstance(text, str) else text
    if len(raw) < 256:
        return b"U" + bytes([len(raw)]) + raw
    return b"T" + struct.pack("<i", len(raw)) + raw


def _py2_int(n: int) -> bytes:
    return b"K" + bytes([n]) if 0 <= n < 256 else b"J" + struct.pack("<i", n)


def _py2_array(arr: np.ndarray) -> bytes:
    arr = np.ascontiguousarray(arr)
    code = arr.dtype.str[1:]  # 'f8', 'b1', 'i8'
    order = "|" if arr.dtype.itemsize == 1 else "<"
    shape = b"(" + b"".join(_py2_int(n) for n in arr.shape) + b"t"
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + b"K\x00\x85"
        + _py2_str("b")
        + b"\x87R"
        + b"(K\x01"
        + shape
        + b"cnumpy\ndtype\n"
        + _py2_str(code)
        + b"K\x00K\x01\x87R"
        + b"(K\x03"
        + _py2_str(order)
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + b"\x89"
        + _py2_str(arr.tobytes())
        + b"tb"
    )


def _py2(obj: object) -> bytes:
    if isinstance(obj, np.ndarray):
        return _py2_array(obj)
    if isinstance(obj, str):
        return _py2_str(obj)
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return _py2_int(obj)
    if isinstance(obj, float):
        return b"G" + struct.pack(">d", obj)
    if isinstance(obj, list):
        return b"](" + b"".join(_py2(x) for x in obj) + b"e"
    if isinstance(obj, dict):
        return b"}(" + b"".join(_py2(k) + _py2(v) for k, v in obj.items()) + b"u"
    raise TypeError(type(obj))


def py2_pickle(obj: object) -> bytes:
    return b"\x80\x02" + _py2(obj) + b"."


def _threedpw(t: int = 24) -> dict:
    rng = np.random.default_rng(7)
    return {
        "sequence": "courtyard_dancing_00",
        "betas": [rng.normal(0, 1, 10), rng.normal(0, 1, 10)],
        "genders": ["f", "m"],
        "poses": [_poses(1, t), _poses(2, t)],
        "trans": [rng.normal(0, 1, (t, 3)), rng.normal(0, 1, (t, 3))],
        "poses_60Hz": [_poses(3, 2 * t), _poses(4, 2 * t)],
        "trans_60Hz": [np.zeros((2 * t, 3)), np.zeros((2 * t, 3))],
        "jointPositions": [np.zeros((t, 72)), np.zeros((t, 72))],
        "cam_poses": np.tile(np.eye(4), (t, 1, 1)),
        "campose_valid": [np.r_[np.ones(t - 2), np.zeros(2)].astype(bool), np.ones(t, bool)],
        "img_frame_ids": np.arange(0, 2 * t, 2),
        "cam_intrinsics": np.eye(3),
    }


def test_python2_writer_matches_what_python_reads() -> None:
    # the hand-made Python 2 bytes are a pickle the standard unpickler reads as intended
    data = _threedpw(4)
    back = pickle.loads(py2_pickle(data), encoding="latin1")
    np.testing.assert_array_equal(back["poses"][1], data["poses"][1])
    np.testing.assert_array_equal(back["campose_valid"][0], data["campose_valid"][0])
    assert back["genders"] == ["f", "m"] and back["sequence"] == "courtyard_dancing_00"


def _check_same(smpl, poses: np.ndarray, trans: np.ndarray | None) -> None:
    np.testing.assert_allclose(smpl.body_pose, poses[:, 3:66], atol=EXACT)
    np.testing.assert_allclose(smpl.global_orient, poses[:, :3], atol=EXACT)
    expect = np.zeros((len(poses), 3)) if trans is None else trans
    np.testing.assert_allclose(smpl.transl, expect, atol=EXACT)


def test_3dpw_people_rate_and_y_up_world(tmp_path: Path) -> None:
    data = _threedpw()
    path = tmp_path / "courtyard_dancing_00.pkl"
    path.write_bytes(py2_pickle(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RetargetWarning)  # upright in the y-up world read
        first = load_motion(path)
        second = load_motion(path, person=1)
    assert first.fps == 30.0 and first.format == "3dpw" and first.num_frames == 24
    assert first.meta["people"] == 2 and first.meta["gender"] == "f"
    assert first.meta["campose_invalid_frames"] == 2
    # 3DPW's world is y-up like SMPL's: its numbers are SMPL's parameters unchanged
    _check_same(first.to_smpl(fps=None), data["poses"][0], data["trans"][0])
    _check_same(second.to_smpl(fps=None), data["poses"][1], data["trans"][1])
    assert load_motion(path, person=0).meta["person"] == 0
    with pytest.raises(MotionFormatError, match=r"person=2 asked for, but the file holds 2 peo"):
        load_motion(path, person=2)


def test_aist_scaled_translation_and_rate(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    poses, metres = _poses(5, 30), rng.normal(0, 1, (30, 3))
    scale = np.array([93.77886], dtype=np.float32)
    payload = {
        "smpl_loss": 1.59,
        "smpl_poses": poses,
        "smpl_scaling": scale,
        "smpl_trans": metres * scale.astype(np.float64),
    }
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"gBR_sBM_cAll_d04_mBR0_ch0{protocol}.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=protocol))
        motion = load_motion(path)
        assert motion.fps == 60.0 and motion.format == "aist++"
        _check_same(motion.to_smpl(fps=None), poses, metres)
    assert subject_of(Path("motions") / path.name, "aist") == "aist:d04"
    # numpy 1.x's names, as files written before numpy 2 have them
    old = tmp_path / "gBR_sBM_cAll_d05_mBR0_ch01.pkl"
    old.write_bytes(portable_pickle(payload))
    _check_same(load_motion(old).to_smpl(fps=None), poses, metres)
    with pytest.raises(MotionFormatError, match="holds one person"):
        load_motion(old, person=1)
    bad = dict(payload, smpl_scaling=np.array([0.0]))
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(bad))
    with pytest.raises(MotionFormatError, match=r"bad\.pkl: 'smpl_scaling' must be one positive"):
        load_motion(tmp_path / "bad.pkl")


def test_up_axis_choices_and_the_upright_warning(tmp_path: Path) -> None:
    """A standing body written in a z-up world (AMASS's) or a camera's y-down frame comes out
    standing in SMPL's y-up frame with the matching ``up=``; read with the wrong one, it warns
    and names the up that fits."""
    rng = np.random.default_rng(3)
    t = 20
    poses = _poses(6, t)
    trans = rng.normal(0, 1, (t, 3))
    z_from_y = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # y-up -> z-up world
    cam_from_y = np.diag([1.0, -1.0, -1.0])  # y-up -> OpenCV camera (y down)
    j0 = REST_JOINTS[0]
    for up, world in (("z", z_from_y), ("-y", cam_from_y)):
        moved = poses.copy()
        moved[:, :3] = matrix_to_rotvec(world @ rotvec_to_matrix(poses[:, :3]))
        # SMPL turns about the pelvis: the pelvis (j0 + trans) moves with the world
        moved_trans = (j0 + trans) @ world.T - j0
        path = tmp_path / f"world_{up.replace('-', 'neg')}.pkl"
        path.write_bytes(pickle.dumps({"smpl_poses": moved, "smpl_trans": moved_trans}))
        with warnings.catch_warnings():
            warnings.simplefilter("error", RetargetWarning)
            smpl = load_motion(path, up=up).to_smpl(fps=None)
        _check_same(smpl, poses, trans)
        with pytest.warns(RetargetWarning, match=rf"pass up='{up}'"):
            load_motion(path)
    # an AMC takes up= as a BVH does (test_data_variants.py): its axes, checked before reading
    (tmp_path / "x.amc").write_text(":FULLY-SPECIFIED\n")
    with pytest.raises(ValueError, match="up must be one of"):
        load_motion(tmp_path / "x.amc", up="q")


def test_motionx_and_plain_npy_arrays(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    t = 25
    row = np.zeros((t, 322))
    smplx = _poses(8, t, 165)
    row[:, :66] = smplx[:, :66]
    row[:, 66:156] = rng.normal(0, 0.3, (t, 90))  # hands
    row[:, 156:159] = 0.1  # jaw
    row[:, 159:309] = rng.normal(0, 1, (t, 150))  # face expression and shape
    row[:, 309:312] = rng.normal(0, 1, (t, 3))
    row[:, 312:322] = rng.normal(0, 1, (t, 10))
    np.save(tmp_path / "Act_Cute.npy", row)
    with pytest.raises(MotionFormatError, match=r"Act_Cute\.npy: an \.npy holds no frame rate"):
        load_motion(tmp_path / "Act_Cute.npy")
    mx = load_motion(tmp_path / "Act_Cute.npy", fps=30)
    assert mx.format == "motion-x" and mx.fps == 30.0
    _check_same(mx.to_smpl(fps=None), smplx, row[:, 309:312])
    for name, arr in (
        ("smpl", smplx[:, :72]),
        ("smplx", smplx),
        ("per_joint", smplx.reshape(t, 55, 3)),
    ):
        np.save(tmp_path / f"{name}.npy", arr)
        _check_same(load_motion(tmp_path / f"{name}.npy", fps=20).to_smpl(fps=None), smplx, None)
    np.save(tmp_path / "joint_vecs.npy", np.zeros((t, 263)))  # HumanML3D features, not poses
    with pytest.raises(MotionFormatError, match=r"must be \(T, 72\).*got \(25, 263\)"):
        load_motion(tmp_path / "joint_vecs.npy", fps=20)
    assert "not SMPL-family poses" in classify(tmp_path / "joint_vecs.npy")
    assert classify(tmp_path / "Act_Cute.npy") is None


def test_npy_that_would_unpickle_or_overallocate_is_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "objects.npy", np.array([{"poses": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(MotionFormatError, match=r"objects\.npy: the array holds Python objects"):
        load_motion(tmp_path / "objects.npy", fps=30)
    huge = tmp_path / "huge.npy"
    with open(huge, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 72)}
        )
        fh.write(b"\0" * 64)
    with pytest.raises(MotionFormatError, match=r"huge\.npy: the header declares shape"):
        load_motion(huge, fps=30)
    nan = _poses(1, 5)
    nan[3, 10] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    with pytest.raises(MotionFormatError, match=r"non-finite value nan in 'array' at frame 3"):
        load_motion(tmp_path / "nan.npy", fps=30)


class _Boom:
    """Pickles as a call of os.system: what a hostile file does."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        import os

        return (os.system, (self.command,))


def test_a_pickle_that_would_run_code_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = f"touch {marker}"
    t = 4
    files = {
        # the payload as a 3DPW value, at every protocol Python writes
        **{
            f"reduce{p}.pkl": pickle.dumps(
                {"poses": [_poses(0, t)], "trans": [np.zeros((t, 3))], "x": _Boom(command)},
                protocol=p,
            )
            for p in (0, 2, 4, 5)
        },
        # written by hand, protocol 0: GLOBAL os system, then REDUCE
        "hand.pkl": b"(dp0\nS'poses'\np1\ncos\nsystem\np2\n(S'" + command.encode() + b"'\ntRp3\ns.",
        "eval.pkl": b'cbuiltins\neval\n(S\'__import__("os").system("'
        + command.encode()
        + b"\")'\ntR.",
        "tool_class.pkl": b"\x80\x02c__main__\nSmplResult\n)\x81}b.",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MotionFormatError) as err:
            load_motion(tmp_path / name)
        message = str(err.value)
        assert message.startswith(f"{tmp_path / name}: refused to unpickle "), message
        expect = {"eval.pkl": "builtins.eval", "tool_class.pkl": "__main__.SmplResult"}
        assert expect.get(name, ".system") in message, message
        assert not marker.exists(), name
    # classify walks the opcodes only: the hostile 3DPW-looking file is a motion for the
    # reader, which refuses it; nothing ran either way
    assert classify(tmp_path / "reduce2.pkl") is None
    assert not marker.exists()


def test_npz_variants_bedlam_and_grab(tmp_path: Path) -> None:
    poses = _poses(12, 10, 165)
    trans = np.random.default_rng(1).normal(0, 1, (10, 3))
    # BEDLAM / SMPL-X: gender as a 0-d string array (plain) or an object array (pickled, never
    # read), mocap_frame_rate as a 0-d array; the z-up world of AMASS
    np.savez(
        tmp_path / "bedlam.npz",
        poses=poses,
        trans=trans,
        betas=np.zeros(11),
        gender=np.array("neutral"),
        mocap_frame_rate=np.array(30.0),
    )
    np.savez(
        tmp_path / "bedlam_obj.npz",
        poses=poses,
        trans=trans,
        gender=np.array(["neutral", None], dtype=object),
        mocap_frame_rate=30.0,
    )
    ref = load_motion(tmp_path / "bedlam.npz").to_smpl(fps=None)
    np.testing.assert_allclose(ref.body_pose, poses[:, 3:66], atol=EXACT)
    obj = load_motion(tmp_path / "bedlam_obj.npz").to_smpl(fps=None)
    np.testing.assert_allclose(obj.global_orient, ref.global_orient, atol=0)
    # an npz written in a y-up world: read with up="y", its numbers are SMPL's unchanged
    _check_same(load_motion(tmp_path / "bedlam.npz", up="y").to_smpl(fps=None), poses, trans)
    # GRAB: nested dicts of SMPL-X parameters stored as pickled object members
    body = {"params": {"global_orient": poses[:, :3], "body_pose": poses[:, 3:66]}}
    np.savez(
        tmp_path / "grab.npz",
        body=np.array(body, dtype=object),
        framerate=np.array(120.0),
        gender=np.array("male"),
    )
    with pytest.raises(MotionFormatError, match=r"grab\.npz: no 'poses'.*'body' hold pickled"):
        load_motion(tmp_path / "grab.npz")
    assert "without a 'poses'" in classify(tmp_path / "grab.npz")


def test_build_a_folder_of_smpl_sequences(tmp_path: Path) -> None:
    from advprior.cli import main

    src = tmp_path / "seqs"
    pw = src / "3DPW" / "sequenceFiles" / "test"
    pw.mkdir(parents=True)
    data = _threedpw()
    (pw / "courtyard_dancing_00.pkl").write_bytes(py2_pickle(data))
    aist = src / "aist" / "motions"
    aist.mkdir(parents=True)
    poses_aist = {}
    for k, name in enumerate(
        ("gBR_sBM_cAll_d04_mBR0_ch01", "gBR_sBM_cAll_d04_mBR1_ch02", "gHO_sFM_cAll_d20_mHO5_ch13")
    ):
        poses_aist[name] = _poses(20 + k, 40)
        payload = {
            "smpl_poses": poses_aist[name],
            "smpl_trans": np.zeros((40, 3)),
            "smpl_scaling": np.array([90.0]),
        }
        (aist / f"{name}.pkl").write_bytes(pickle.dumps(payload))
    # an SMPL model-like pickle and a body shape file are not motions: skipped with a reason
    (aist / "SMPL_NEUTRAL.pkl").write_bytes(pickle.dumps({"v_template": np.zeros((6, 3))}))
    mx = src / "motionx" / "idea400"
    mx.mkdir(parents=True)
    row = np.zeros((20, 322))
    row[:, :66] = _poses(30, 20)[:, :66]
    np.save(mx / "Act_Cute.npy", row)
    # joint positions (HumanML3D's new_joints), shaped like per-joint body poses: skipped
    walk = np.linspace(0, 1, 20)[:, None, None] * np.array([0.0, 0.0, 1.0])
    np.save(mx / "joints.npy", REST_JOINTS[:22] + walk)
    (mx.parent / "readme.txt").write_text("idea400 framerate 30\n")
    out = tmp_path / "d.npz"
    assert main(["data", "build", str(src), "--out", str(out), "--fps", "30"]) == 0
    ds = load_dataset(out)
    meta = ds.meta
    names = ds.sequence_names
    pw_name = "3DPW/sequenceFiles/test/courtyard_dancing_00.pkl"
    assert f"{pw_name}#0" in names and f"{pw_name}#1" in names
    for k in (0, 1):
        rows = (ds.sequence == names.index(f"{pw_name}#{k}")).numpy()
        np.testing.assert_allclose(ds.body_pose[rows].numpy(), data["poses"][k][:, 3:66], atol=1e-6)
        np.testing.assert_allclose(ds.transl[rows].numpy(), data["trans"][k], atol=1e-6)
    # both people of the file are one subject, so they share a split
    subjects = {
        ds.subject_names[int(ds.subject[(ds.sequence == names.index(f"{pw_name}#{k}")).numpy()][0])]
        for k in (0, 1)
    }
    assert subjects == {"3DPW:test"}
    # AIST++ at 60 fps, built at 30: every other frame; dancers are subjects
    name = "aist/motions/gBR_sBM_cAll_d04_mBR0_ch01.pkl"
    rows = (ds.sequence == names.index(name)).numpy()
    np.testing.assert_allclose(
        ds.body_pose[rows].numpy(), poses_aist["gBR_sBM_cAll_d04_mBR0_ch01"][::2, 3:66], atol=1e-6
    )
    assert {"aist:d04", "aist:d20"} <= set(ds.subject_names)
    assert meta["subject_split"]["aist:d04"] in ("train", "val", "test")
    rows = (ds.sequence == names.index("motionx/idea400/Act_Cute.npy")).numpy()
    np.testing.assert_allclose(ds.body_pose[rows].numpy(), row[:, 3:66], atol=1e-6)
    skipped = dict(meta["skipped"])
    assert "not a motion" in skipped[str(aist / "SMPL_NEUTRAL.pkl")]
    assert "holds joint positions, not rotations" in skipped[str(mx / "joints.npy")]
    assert json.dumps(meta)  # plain JSON


def test_build_keeps_the_other_person_when_one_person_of_a_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # person 0 of x.pkl has a NaN, person 1 of y.pkl a wrong width: each bad person is skipped
    # by its own name, and the good person of the same file is imported (it used to vanish
    # with no trace when person 0 failed: the file was reported as one bad file)
    from advprior.cli import main

    folder = tmp_path / "3DPW" / "sequenceFiles" / "test"
    folder.mkdir(parents=True)
    bad0 = _threedpw(30)
    bad0["poses"][0][5, 7] = np.nan
    (folder / "x.pkl").write_bytes(py2_pickle(bad0))
    bad1 = _threedpw(30)
    bad1["poses"][1] = bad1["poses"][1][:, :70]
    (folder / "y.pkl").write_bytes(py2_pickle(bad1))
    out = tmp_path / "d.npz"
    assert main(["data", "build", str(tmp_path / "3DPW"), "--out", str(out)]) == 0
    # the answer counts people, not files, and says "1 subject" (it said "2 files skipped",
    # "1 subjects" where both files were read)
    answer = capsys.readouterr().out
    assert "2 sequences, 1 subject, 1 source, 2 people skipped" in answer
    ds = load_dataset(out)
    assert ds.sequence_names == ["sequenceFiles/test/x.pkl#1", "sequenceFiles/test/y.pkl#0"]
    skipped = dict(ds.meta["skipped"])
    assert set(skipped) == {f"{folder / 'x.pkl'}#0", f"{folder / 'y.pkl'}#1"}
    assert "non-finite value nan in 'poses[0]'" in skipped[f"{folder / 'x.pkl'}#0"]
    rows = (ds.sequence == 0).numpy()
    np.testing.assert_allclose(ds.body_pose[rows].numpy(), bad0["poses"][1][:, 3:66], atol=1e-6)


def _joint_positions(t: int) -> np.ndarray:
    """HumanML3D's ``pose_data`` layout: SMPL-H's 52 joints ``Jtr`` (T, 52, 3) in metres, y up,
    float32: a knee bending while the body walks 1.5 m; 15 finger joints hang off each wrist."""
    import torch

    from advprior.body.kinematics import forward_kinematics

    s = np.linspace(0, 1, t)[:, None]
    body = np.zeros((t, 63))
    body[:, 9] = 1.2 * np.sin(6 * s[:, 0]) ** 2  # left knee
    body[:, 47] = -0.3  # left shoulder
    pos, rot = forward_kinematics(
        torch.zeros(t, 3, dtype=torch.float64),
        torch.tensor(body),
        transl=torch.tensor(np.c_[0.5 * s, 0 * s, 1.5 * s]),
        return_rotations=True,
    )
    pos, rot = pos.numpy(), rot.numpy()
    tips = np.random.default_rng(0).normal(0, 0.04, (30, 3))
    fingers = [pos[:, 20 + k // 15] + rot[:, 20 + k // 15] @ tips[k] for k in range(30)]
    return np.concatenate([pos[:, :22], np.stack(fingers, 1)], 1).astype(np.float32)


def test_joint_positions_shaped_like_poses_are_refused_not_read_as_rotations(
    tmp_path: Path,
) -> None:
    # HumanML3D's pose_data/*.npy (T, 52, 3) has the shape of SMPL-H poses per joint: it was
    # read as rotations and imported silently as another motion (a 33-degree knee came out 42)
    jtr = _joint_positions(40)
    layouts = {
        "000021.npy": jtr,  # as HumanML3D saves it
        "flat.npy": jtr.reshape(40, 156),  # the same, flattened: SMPL-H's pose width
        "smpl24.npy": jtr[:, :24].copy(),  # 24 joints of a tool's SMPL output
        # a regressor's joints, 1 mm of noise: bone lengths vary by ~5 mm at most (3.3 sigma of
        # 840 differences of two joints), under the check's 1 cm
        "noisy.npy": jtr + np.random.default_rng(1).normal(0, 0.001, jtr.shape),
    }
    for name, arr in layouts.items():
        np.save(tmp_path / name, arr)
        with pytest.raises(MotionFormatError, match=rf"{name}: .*holds joint positions"):
            load_motion(tmp_path / name, fps=20)
        assert "holds joint positions" in classify(tmp_path / name)


def test_rotation_vectors_are_never_taken_for_joint_positions() -> None:
    # the check needs 21 bones rigid to 1 cm over the frames, each within 2x of SMPL's rest
    # length and the sides within 25% of each other: single frames (trivially rigid) of random
    # poses of every spread never meet it
    from advprior.data.smplseq import joint_positions_reason

    rng = np.random.default_rng(1)
    for sigma in (0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0):
        poses = rng.normal(0, sigma, (1500, 1, 72))
        assert not any(joint_positions_reason(p) for p in poses), sigma
    assert joint_positions_reason(_poses(3, 30)) is None
