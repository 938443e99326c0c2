"""Dialects of the files people have, each written here small: AMC frame numbering, ASF dofs,
AMASS dicts pickled, DeepMimic frame durations. What each must give: the motion the file means,
or an error that names the problem, never a silently different motion."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from test_data_importers import _deepmimic_frames, _joint_errors, random_pose, write_asf_amc

from advprior.data import load_motion
from advprior.errors import MotionFormatError, RetargetWarning


def _renumbered(path: Path, number) -> Path:
    """The AMC at ``path`` with its k-th frame (from 0) numbered ``number(k)``."""
    lines = path.read_text().split("\n")
    frames = [i for i, line in enumerate(lines) if line.strip().isdigit()]
    for k, i in enumerate(frames):
        lines[i] = str(number(k))
    out = path.with_name("07_02.amc")
    out.write_text("\n".join(lines))
    return out


@pytest.fixture
def amc(tmp_path: Path) -> tuple[Path, np.ndarray]:
    local, root = random_pose(6, seed=11)
    local[:, 9] = np.eye(3)  # CMU's clavicles hang off the thorax: spine3 still (see importers)
    return write_asf_amc(tmp_path, local, root), local


def test_amc_numbered_in_steps_is_every_kth_frame_of_the_capture(amc) -> None:
    # 0, 2, 4, ...: one captured frame in two kept; read at 120 fps it played twice as fast
    path, local = amc
    stepped = _renumbered(path, lambda k: 2 * k)
    with pytest.warns(RetargetWarning, match="steps of 2.*60 fps"):
        motion = load_motion(stepped)
    assert motion.fps == 60.0 and motion.num_frames == 6
    assert _joint_errors(motion.to_smpl(fps=None), local).max() < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_motion(stepped, fps=50.0).fps == 50.0  # fps= is the file's rate


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (lambda k: k + 1 if k < 3 else k + 5, "frame number 8 follows 3"),  # frames lost
        (lambda k: min(k + 1, 3), "frame number 3 follows 3"),  # repeated
        (lambda k: 6 - k, "frame number 5 follows 6: frame numbers must count up"),
    ],
)
def test_amc_numbers_that_jump_repeat_or_go_back_are_an_error(amc, number, message) -> None:
    path, _ = amc
    with pytest.raises(MotionFormatError, match=message) as err:
        load_motion(_renumbered(path, number))
    assert ".amc:" in str(err.value)  # the line of the number at fault


def _edit_bone(asf: Path, bone: str, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in ``bone``'s block of the ASF."""
    text = asf.read_text()
    start = text.index(f"name {bone}\n")
    end = text.index("end", start)
    block = text[start:end]
    assert old in block
    asf.write_text(text[:start] + block.replace(old, new) + text[end:])


@pytest.mark.parametrize(
    ("bone", "old", "new", "message"),
    [
        ("lhumerus", "dof rx ry rz", "dof rx ry rq", r"07\.asf:\d+: unknown dof entry 'rq'"),
        ("lhumerus", " XYZ\n", " XYQ\n", r"07\.asf:\d+: axis order 'XYQ' is not x, y and z"),
        ("lhumerus", " XYZ\n", " XY\n", r"07\.asf:\d+: axis order 'XY' is not x, y and z"),
    ],
)
def test_asf_unknown_dof_or_axis_order_names_the_line(amc, bone, old, new, message) -> None:
    # they ended in a bare ValueError of the Euler conversion, naming neither file nor line
    path, _ = amc
    _edit_bone(path.with_name("07.asf"), bone, old, new)
    with pytest.raises(MotionFormatError, match=message):
        load_motion(path)


def test_asf_unknown_root_order_entry_names_the_line(amc) -> None:
    path, _ = amc
    asf = path.with_name("07.asf")
    asf.write_text(asf.read_text().replace("order TX TY TZ RX RY RZ", "order TX TY TZ RX RY RW"))
    with pytest.raises(MotionFormatError, match=r"07\.asf:\d+: unknown root order entry 'rw'"):
        load_motion(path)


def test_amc_length_dof_that_moves_is_noted_not_dropped_silently(amc) -> None:
    # Acclaim's "l" (a bone's stretch) and tx/ty/tz on a bone are not applied: a file that
    # uses them reads its rotations and says that its joints' positions are the rest's
    path, local = amc
    _edit_bone(path.with_name("07.asf"), "lhumerus", "dof rx ry rz", "dof rx ry rz l")
    lines = path.read_text().split("\n")
    zero = "\n".join(f"{x} 0" if x.startswith("lhumerus ") else x for x in lines)
    path.write_text(zero)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        unmoved = load_motion(path)  # a length dof that stays 0 changes nothing: no note
    assert _joint_errors(unmoved.to_smpl(fps=None), local).max() < 1e-4
    path.write_text("\n".join(f"{x} 2.5" if x.startswith("lhumerus ") else x for x in lines))
    with pytest.warns(RetargetWarning, match=r"length dofs are not applied.*lhumerus \(l, "):
        load_motion(path)


def test_amass_dict_pickled_is_refused_saying_to_save_it_as_npz(tmp_path: Path) -> None:
    # read as 3DPW's layout it was refused for 'poses' not being a list per person, which
    # says nothing of what the file is or how to read it
    import pickle

    poses = np.random.default_rng(0).normal(0, 0.2, (5, 156))
    data = {"poses": poses, "trans": np.zeros((5, 3)), "mocap_framerate": 120.0, "gender": "male"}
    path = tmp_path / "amass.pkl"
    path.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(MotionFormatError, match=r"amass\.pkl: an AMASS-style dict.*numpy\.savez"):
        load_motion(path)
    np.savez(tmp_path / "amass.npz", **data)  # as the message says: that reads
    assert load_motion(tmp_path / "amass.npz").num_frames == 5


def _deepmimic(tmp_path: Path, dts: list[float]) -> Path:
    rows = _deepmimic_frames(len(dts), -1.0, 0.5)
    frames = [[dt, *frame[1:]] for dt, frame in zip(dts, rows, strict=True)]
    path = tmp_path / "01_01.txt"
    path.write_text(json.dumps({"Loop": "none", "Frames": frames}))
    return path


def test_deepmimic_two_frames_with_the_last_dt_zero_read_at_their_rate(tmp_path: Path) -> None:
    # the last frame's dt (0, as DeepMimic writes it) leads to no frame: in the median of two
    # it made 30 fps read as 60
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_motion(_deepmimic(tmp_path, [1 / 30, 0.0])).fps == pytest.approx(30.0)


def test_deepmimic_uneven_frame_durations_are_noted(tmp_path: Path) -> None:
    # frames 1/30 and 1/60 s apart in turn cannot be read evenly spaced without saying so
    path = _deepmimic(tmp_path, [1 / 30, 1 / 60, 1 / 30, 1 / 60, 1 / 30, 0.0])
    with pytest.warns(RetargetWarning, match=r"frame durations vary from 0\.01667 to 0\.03333"):
        assert load_motion(path).fps == pytest.approx(30.0)
