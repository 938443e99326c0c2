"""Dialects of the files people have, each written here small: AMC frame numbering, BVH and
AMASS-style npz variants. What each must give: the motion the file means, or an error that
names the problem, never a silently different motion."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from test_data_importers import _joint_errors, random_pose, write_asf_amc

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
