"""How SMPL's torso meets a source rig's: ``torso="rest"`` against build v5's ``"bones"``.

Rigs put their spine and neck joints elsewhere than SMPL does, mostly on one straight line at
rest, where SMPL's rest spine curves (26 degrees forward from spine2 to spine3, 11 back to the
neck, 38 forward to the head). Laying each SMPL torso bone on the rig's (v5) straightens SMPL's
spine in every frame; ``"rest"`` takes the rig's rest torso for SMPL's and copies the torso's
rotations. The rigs below are SMPL's own skeleton written as BVH (the writers of
test_data_foreign), once as it is and once with its torso joints moved onto a straight line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from test_data_foreign import (
    _ENDS,
    _SMPL_BVH,
    ATOL_RAD,
    P,
    _smpl_fk,
    _smpl_rig,
    _write_rig,
    smpl_local,
)

from advprior.data import build_dataset, load_dataset, load_motion
from advprior.skeleton import REST_JOINTS

TORSO = {3: "spine1", 6: "spine2", 9: "spine3", 12: "neck", 15: "head"}


def _straight_rig() -> list:
    """SMPL's skeleton with spine1-3 on the rest line from the pelvis to the neck and the head
    on its extension (SMPL's head is 38 degrees forward of its neck): a rig's straight spine.
    The pelvis-to-neck line itself is SMPL's, so the whole torso is upright as SMPL's is."""
    rows = _smpl_rig(_SMPL_BVH, _ENDS[:2])
    line = P["neck"] - P["pelvis"]
    # each at SMPL's own height: the retargeter places SMPL's spine joints by their height
    # along the rig's spine, so these are SMPL's spine joints on a straight spine
    on_line = {
        name: P["pelvis"] + line * ((P[name.lower()] - P["pelvis"]) @ line) / (line @ line)
        for name in ("Spine1", "Spine2", "Spine3")
    }
    on_line["Head"] = P["neck"] + line * 0.15
    rows = [(n, par, on_line.get(n, pt), j) for n, par, pt, j in rows]
    return rows + [(None, "Head", on_line["Head"] + line * 0.3, None)]


def _clip(t: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """SMPL local rotations ``(T, 24, 3, 3)`` of a standing person moving every joint a little
    (frame 0 is the rest pose) and the pelvis path ``(T, 3)``."""
    rng = np.random.default_rng(seed)
    local = Rotation.from_rotvec(rng.normal(0, 0.25, (t * 24, 3))).as_matrix()
    local = local.reshape(t, 24, 3, 3)
    local[0] = np.eye(3)
    root = P["pelvis"] + np.linspace(0, 0.3, t)[:, None] * np.array([1.0, 0, 0])
    return local, root


def _write(tmp_path: Path, rows: list, local: np.ndarray, root: np.ndarray) -> Path:
    g, _ = _smpl_fk(local, root)
    path = tmp_path / "clip.bvh"
    _write_rig(path, rows, g, root)
    return path


def _rotvecs(local: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(local[:, 1:22].reshape(-1, 3, 3)).as_rotvec().reshape(-1, 63)


def _angles(body_pose: np.ndarray) -> np.ndarray:
    return np.linalg.norm(body_pose.reshape(len(body_pose), 21, 3), axis=-1)


def test_a_straight_rig_at_rest_is_smpls_rest_pose_only_with_torso_rest(tmp_path: Path) -> None:
    # The rig's rest pose is an upright person, so SMPL's zero pose is its retarget. v5's
    # "bones" bends SMPL's spine2 / spine3 / neck by the angles that straighten its rest spine
    # (-26 / +37 / -49 degrees about the body's left axis for this rig), which this test keeps
    # on record; "rest" gives zeros. Tolerance: the rig is written with 9-digit degrees and
    # offsets (1e-11 rad, 1e-13 m) and retargeted through ~8 levels of rotation products.
    local, root = _clip(4, seed=0)
    path = _write(tmp_path, _straight_rig(), local, root)
    motion = load_motion(path)
    rest = motion.to_smpl(fps=None, torso="rest")
    np.testing.assert_allclose(rest.body_pose[0], 0.0, atol=ATOL_RAD)
    bones = motion.to_smpl(fps=None, torso="bones")
    bent = _angles(bones.body_pose[:1])[0]
    for j, want in ((6, 26.0), (9, 37.0), (12, 49.0)):
        assert np.degrees(bent[j - 1]) == pytest.approx(want, abs=3.0), TORSO[j]


def _globals(smpl) -> np.ndarray:
    """SMPL's global joint rotations ``(T, 24, 3, 3)`` of a retargeted motion."""
    return _smpl_fk(smpl_local(smpl), np.zeros((smpl.num_frames, 3)))[0]


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in radians of ``a^T b`` for rotation matrices ``(..., 3, 3)``."""
    cos = (np.trace(np.swapaxes(a, -1, -2) @ b, axis1=-2, axis2=-1) - 1) / 2
    return np.arccos(np.clip(cos, -1, 1))


def test_torso_rest_turns_the_head_and_chest_as_the_rig_does_and_bones_tilts_them(
    tmp_path: Path,
) -> None:
    # The rig's chest (spine3), neck and head turn with SMPL's by construction. With "rest"
    # SMPL's spine3, neck and head have the rig's global rotations in every frame (their rig
    # joints move rigidly, so no bone correction applies), and the limbs' local rotations are
    # the clip's. v5's "bones" gives SMPL's head the rig's rotation times the straightening of
    # SMPL's neck-to-head bone: the face tilted back by tens of degrees in every frame.
    local, root = _clip(12, seed=1)
    g, _ = _smpl_fk(local, root)
    motion = load_motion(_write(tmp_path, _straight_rig(), local, root))
    rest, bones = (motion.to_smpl(None, torso=t) for t in ("rest", "bones"))
    got = _globals(rest)
    for j in (9, 12, 15):
        assert _angle(got[:, j], g[:, j]).max() < ATOL_RAD, TORSO[j]
    limbs = [j - 1 for j in (1, 2, 4, 5, 16, 17, 18, 19)]
    want = _rotvecs(local).reshape(-1, 21, 3)
    got_limbs = rest.body_pose.reshape(-1, 21, 3)[:, limbs]
    np.testing.assert_allclose(got_limbs, want[:, limbs], atol=ATOL_RAD)
    tilt = np.degrees(_angle(_globals(bones)[:, 15], g[:, 15]))
    assert tilt.min() > 20.0


def test_smpls_own_skeleton_retargets_exactly_either_way(tmp_path: Path) -> None:
    # A rig whose torso is SMPL's (an SMPL motion exported as BVH): both modes are exact.
    local, root = _clip(12, seed=2)
    want = _rotvecs(local)
    motion = load_motion(_write(tmp_path, _smpl_rig(_SMPL_BVH, _ENDS), local, root))
    for torso in ("bones", "rest"):
        np.testing.assert_allclose(motion.to_smpl(None, torso=torso).body_pose, want, atol=ATOL_RAD)


def test_a_rig_leaning_at_rest_keeps_its_lean_as_spine1(tmp_path: Path) -> None:
    # The chain's one offset maps the rig's rest pelvis-to-neck line onto SMPL's: a rig whose
    # rest torso (and arms) lean back by 8 degrees more than SMPL's is SMPL's torso leaning
    # back by 8 degrees at spine1 when the rig stands at its rest, with no rest angle between
    # the chain's joints. The 0.01 degree tolerance: SMPL's line is 0.2 degrees off the
    # sagittal plane, so the lean, about x, maps onto it about an axis off x by second-order
    # amounts (measured 1e-4 degrees).
    rows = _straight_rig()
    lean = Rotation.from_rotvec([np.radians(-8.0), 0, 0]).as_matrix()
    moved = {"Spine1", "Spine2", "Spine3", "Neck", "Head", None}
    top = {"L_Collar", "R_Collar", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow"}
    top |= {"L_Wrist", "R_Wrist", "L_Hand", "R_Hand"}
    rows = [
        (n, par, P["pelvis"] + lean @ (pt - P["pelvis"]) if n in moved | top else pt, j)
        for n, par, pt, j in rows
    ]
    local, root = _clip(3, seed=3)
    smpl = load_motion(_write(tmp_path, rows, local, root)).to_smpl(None, torso="rest")
    rest = smpl.body_pose[0].reshape(21, 3)
    assert np.degrees(rest[2, 0]) == pytest.approx(-8.0, abs=0.01)  # spine1, about x
    np.testing.assert_allclose(rest[[5, 8, 11, 14]], 0.0, atol=ATOL_RAD)  # spine2-3, neck, head


def test_build_dataset_takes_the_torso_and_records_it(tmp_path: Path) -> None:
    local, root = _clip(30, seed=4)
    folder = tmp_path / "lab"
    folder.mkdir()
    _write(folder, _straight_rig(), local, root)
    v5 = build_dataset(folder, tmp_path / "v5.npz", min_seconds=0.1)
    new = build_dataset(folder, tmp_path / "rest.npz", min_seconds=0.1, torso="rest")
    assert v5.frames == new.frames
    a, b = load_dataset(tmp_path / "v5.npz"), load_dataset(tmp_path / "rest.npz")
    assert "torso" not in a.meta["build"]  # a default build's metadata is as before
    assert b.meta["build"]["torso"] == "rest"
    # the dataset's frames are the file's retargeted at 30 fps with that torso (float32)
    smpl = load_motion(folder / "clip.bvh").to_smpl(30, torso="rest")
    np.testing.assert_allclose(b.body_pose.numpy(), smpl.body_pose, atol=1e-6)
    assert np.abs(a.body_pose.numpy() - b.body_pose.numpy()).max() > 0.2
    with pytest.raises(ValueError, match="torso must be one of bones, rest"):
        build_dataset(folder, tmp_path / "x.npz", torso="straight")
    assert not (tmp_path / "x.npz").exists()
    assert REST_JOINTS.shape == (24, 3)


def test_data_build_cli_takes_the_torso(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from advprior.cli import main

    local, root = _clip(30, seed=5)
    folder = tmp_path / "lab"
    folder.mkdir()
    _write(folder, _straight_rig(), local, root)
    out = tmp_path / "rest.npz"
    assert main(["data", "build", str(folder), "--out", str(out), "--torso", "rest"]) == 0
    assert load_dataset(out).meta["build"]["torso"] == "rest"
    with pytest.raises(SystemExit) as err:  # argparse: a usage error, before any import
        main(["data", "build", str(folder), "--out", str(tmp_path / "x.npz"), "--torso", "up"])
    assert err.value.code == 2 and "invalid choice: 'up'" in capsys.readouterr().err


def _daz_like_rig() -> list:
    """The straight-spined rig with two more of a rig's own joint centres: collar joints high
    beside the neck, so that the collar bone points 12 degrees down to the shoulder where
    SMPL's points 18 up (the CMU BVH's Daz rig), and toe joints 3 cm above SMPL's, so that the
    ankle-to-toe bone slopes 10 degrees less than SMPL's. Every joint still turns with SMPL's."""
    moved = {}
    for side, s in (("L", 1.0), ("R", -1.0)):
        shoulder = P[f"{'left' if s > 0 else 'right'}_shoulder"]
        tilt = np.radians(12.0)
        moved[f"{side}_Collar"] = shoulder + 0.1 * np.array([-s * np.cos(tilt), np.sin(tilt), 0])
        moved[f"{side}_Foot"] = P[f"{'left' if s > 0 else 'right'}_foot"] + np.array([0, 0.03, 0])
    return [(n, par, moved.get(n, pt), j) for n, par, pt, j in _straight_rig()]


def test_torso_rest_takes_the_rigs_rest_collars_and_feet_for_smpls(tmp_path: Path) -> None:
    # Rigs put collar, ankle and toe joints elsewhere than SMPL (measured on ../shared: collar
    # bones 12 degrees down to 27 up, SMPL's 18 up; ankle-to-toe slopes 7 to 36 degrees
    # down, SMPL's 21-25). Laying SMPL's collar and foot bones on the rig's bends SMPL's
    # collars and ankles by those differences in every frame (and the shoulders back), though
    # the rig's never move from its rest; "rest" takes the rig's rest collars and feet for
    # SMPL's. Every joint of this rig turns with SMPL's, so "rest" retargets the clip exactly
    # (the tolerance of the first test) but for spine1-3, whose points the retargeter places
    # along the rig's straight spine by height, not on its joints. The bent angles of "bones"
    # are the rig's geometry (30 / 10 degrees), kept on record to within 4 degrees (SMPL's
    # collar and foot bones are not quite in the planes the joints were moved in).
    local, root = _clip(12, seed=6)
    motion = load_motion(_write(tmp_path, _daz_like_rig(), local, root))
    rest = motion.to_smpl(None, torso="rest").body_pose.reshape(-1, 21, 3)
    exact = [j - 1 for j in range(1, 22) if j not in (3, 6, 9)]
    want = _rotvecs(local).reshape(-1, 21, 3)
    np.testing.assert_allclose(rest[:, exact], want[:, exact], atol=ATOL_RAD)
    bent = np.degrees(_angles(motion.to_smpl(None, torso="bones").body_pose[:1])[0])
    for j, want in ((13, 30.0), (14, 30.0), (7, 10.0), (8, 10.0)):
        assert bent[j - 1] == pytest.approx(want, abs=4.0), j
