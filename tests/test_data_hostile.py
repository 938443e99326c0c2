"""Hostile motion files and outputs: no silent data loss. A frame count that disagrees with the
frames, or a nan/inf anywhere, is a MotionFormatError naming file and line (whichever frame is
bad); `advprior data build` checks its output before importing and leaves no temporary files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_data_importers import _deepmimic_frames, random_pose, write_asf_amc, write_bvh

from advprior import cli
from advprior.data import load_motion
from advprior.errors import MotionFormatError
from advprior.fileio import atomic_path

BAD_TOKENS = ["nan", "NaN", "inf", "-inf", "Infinity"]


def _bvh(tmp_path: Path, frames: int = 5) -> tuple[Path, list[str], int]:
    """A BVH file, its lines and the index of its first frame line."""
    local, root = random_pose(frames)
    path = tmp_path / "t.bvh"
    write_bvh(path, "motionbuilder", local, root)
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("Frame Time")) + 1
    return path, lines, first


@pytest.mark.parametrize("header", [3, 4, 6, 50])
def test_bvh_frame_count_mismatch_names_file_and_both_counts(tmp_path: Path, header) -> None:
    path, lines, first = _bvh(tmp_path, 5)
    text = "\n".join(lines).replace("Frames: 5", f"Frames: {header}")
    path.write_text(text + "\n")
    with pytest.raises(MotionFormatError, match=rf"t\.bvh:\d+: .*Frames: {header} .* 5 frame"):
        load_motion(path)


def test_bvh_frames_zero_is_no_frames(tmp_path: Path) -> None:
    path, lines, first = _bvh(tmp_path, 5)
    path.write_text("\n".join(lines[:first]).replace("Frames: 5", "Frames: 0") + "\n")
    with pytest.raises(MotionFormatError, match=r"t\.bvh:\d+: no frames") as err:
        load_motion(path)
    assert "truncated" not in str(err.value)


@pytest.mark.parametrize("token", BAD_TOKENS)
@pytest.mark.parametrize("frame", [0, 2, 4])
def test_bvh_non_finite_value_in_any_frame(tmp_path: Path, token: str, frame: int) -> None:
    path, lines, first = _bvh(tmp_path, 5)
    values = lines[first + frame].split()
    values[len(values) // 2] = token
    lines[first + frame] = " ".join(values)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MotionFormatError, match=rf"t\.bvh:{first + frame + 1}: non-finite"):
        load_motion(path)


def test_bvh_non_finite_offset_and_frame_time(tmp_path: Path) -> None:
    path, lines, first = _bvh(tmp_path, 3)
    k = next(i for i, line in enumerate(lines) if line.strip().startswith("OFFSET"))
    bad = list(lines)
    bad[k] = "OFFSET nan 0 0"
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(MotionFormatError, match=rf"t\.bvh:{k + 1}: non-finite OFFSET"):
        load_motion(path)
    bad = list(lines)
    bad[first - 1] = "Frame Time: inf"
    path.write_text("\n".join(bad) + "\n")
    with pytest.raises(MotionFormatError, match=rf"t\.bvh:{first}: non-finite Frame Time"):
        load_motion(path)


@pytest.mark.parametrize("token", BAD_TOKENS)
def test_amc_and_asf_non_finite(tmp_path: Path, token: str) -> None:
    local, root = random_pose(3)
    path = write_asf_amc(tmp_path, local, root)
    lines = path.read_text().splitlines()
    k = [i for i, line in enumerate(lines) if line.startswith("ltibia")][-1]  # the last frame
    values = lines[k].split()
    values[1] = token
    lines[k] = " ".join(values)
    path.write_text("\n".join(lines))
    with pytest.raises(MotionFormatError, match=rf"07_01\.amc:{k + 1}: non-finite"):
        load_motion(path)
    local, root = random_pose(3)
    (tmp_path / "b").mkdir()
    path = write_asf_amc(tmp_path / "b", local, root)
    asf = next((tmp_path / "b").glob("*.asf"))
    lines = asf.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if line.strip().startswith("length"))
    lines[k] = f"     length {token}"
    asf.write_text("\n".join(lines))
    with pytest.raises(MotionFormatError, match=rf"{asf.name}:{k + 1}: non-finite"):
        load_motion(path)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("frame", [0, 2])
def test_deepmimic_non_finite(tmp_path: Path, token: str, frame: int) -> None:
    frames = [json.dumps(f) for f in _deepmimic_frames(3, -0.2, 0.1)]
    values = json.loads(frames[frame])
    frames[frame] = (
        json.dumps(values[:5]).rstrip("]") + f", {token}, " + json.dumps(values[6:]).lstrip("[")
    )
    path = tmp_path / "d.txt"
    path.write_text('{"Frames": [\n' + ",\n".join(frames) + "\n]}")
    with pytest.raises(MotionFormatError, match=rf"d\.txt:{frame + 2}: non-finite .* frame"):
        load_motion(path)


@pytest.mark.parametrize("key", ["poses", "trans"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_amass_non_finite_names_key_and_frame(tmp_path: Path, key: str, value: float) -> None:
    arrays = {"poses": np.zeros((4, 156)), "trans": np.zeros((4, 3)), "mocap_framerate": 60.0}
    arrays[key][2, 1] = value
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(MotionFormatError, match=rf"a\.npz: non-finite .*'{key}' at frame 2"):
        load_motion(tmp_path / "a.npz")
    arrays[key][2, 1] = 0.0
    np.savez(tmp_path / "b.npz", **{**arrays, "mocap_framerate": np.nan})
    with pytest.raises(MotionFormatError, match="mocap_framerate"):
        load_motion(tmp_path / "b.npz")


# ------------------------------------------------------------------------ data build output


def _clip(tmp_path: Path) -> Path:
    local, root = random_pose(40)
    src = tmp_path / "src" / "clip.bvh"
    src.parent.mkdir()
    write_bvh(src, "motionbuilder", local, root)
    return src


def test_unwritable_out_fails_before_importing(tmp_path: Path, monkeypatch, capsys) -> None:
    import advprior.data.dataset as dataset

    def never(*args, **kwargs):
        raise AssertionError("imported a motion before checking the output")

    monkeypatch.setattr(dataset, "load_motion", never)
    src = _clip(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    outs = [blocker / "d.npz", tmp_path, ro / "d.npz"]
    if os.access(ro, os.W_OK):  # root ignores permissions
        outs.pop()
    for out in outs:
        assert cli.main(["data", "build", str(src), "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("advprior data build: error: cannot write ") and str(out) in err
        assert ".tmp" not in err
    ro.chmod(0o755)


def test_killed_writer_temp_file_is_removed_by_the_next_build(tmp_path: Path) -> None:
    out = tmp_path / "data.npz"
    # a writer killed outright mid-write cannot clean up after itself
    code = (
        "import os, signal, sys\n"
        "from advprior.fileio import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'partial')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run([sys.executable, "-c", code, str(out)], env=env)
    assert res.returncode == -signal.SIGKILL
    stale = list(tmp_path.glob(".data.npz.*.tmp"))
    assert len(stale) == 1
    # a live writer's temp file (this process) is left alone
    with atomic_path(out) as mine:
        assert cli.main(["data", "build", str(_clip(tmp_path)), "--out", str(out)]) == 0
        assert mine.exists()
        mine.write_bytes(b"")
    assert not stale[0].exists() and out.is_file()
    assert list(tmp_path.glob(".data.npz.*.tmp")) == []


def test_deepmimic_json_nested_too_deep(tmp_path: Path) -> None:
    path = tmp_path / "deep.txt"
    path.write_text('{"Frames": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(MotionFormatError, match=r"deep\.txt: invalid JSON: nested too deeply"):
        load_motion(path)


# ------------------------------------------------------------ variants real files have (round 9)


def _same_motion(a, b) -> None:
    assert a.num_frames == b.num_frames and a.fps == b.fps
    np.testing.assert_array_equal(a.rotations, b.rotations)
    np.testing.assert_array_equal(a.root_position, b.root_position)


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_word(tmp_path: Path) -> None:
    """Windows editors start files with a UTF-8 BOM: the BVH, ASF and AMC import as without."""
    path, lines, _ = _bvh(tmp_path)
    bom = tmp_path / "bom.bvh"
    bom.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    _same_motion(load_motion(bom), load_motion(path))
    local, root = random_pose(3)
    (tmp_path / "plain").mkdir()
    amc = write_asf_amc(tmp_path / "plain", local, root)
    ref = load_motion(amc)
    for f in (amc, next(amc.parent.glob("*.asf"))):
        f.write_bytes(b"\xef\xbb\xbf" + f.read_bytes())
    _same_motion(load_motion(amc), ref)


def test_acclaim_comments_and_commas_are_separators(tmp_path: Path) -> None:
    """A ``#`` comment may end any line (AMC too), and commas separate ASF numbers as spaces do."""
    local, root = random_pose(3)
    amc = write_asf_amc(tmp_path, local, root)
    ref = load_motion(amc)
    asf = next(tmp_path.glob("*.asf"))
    text = asf.read_text()
    # "direction 0.1 0.2 0.3" -> "direction 0.1, 0.2, 0.3"
    asf.write_text(re.sub(r"(?m)^(\s*direction\s+\S+)\s+(\S+)\s+", r"\1, \2, ", text))
    amc.write_text(
        "\n".join(
            f"{line}  # note" if line.startswith("ltibia") else line
            for line in amc.read_text().splitlines()
        )
    )
    assert "," in asf.read_text() and "# note" in amc.read_text()
    _same_motion(load_motion(amc), ref)


@pytest.mark.parametrize("cut", ["bone", "line"])
def test_amc_frame_cut_short_is_an_error_not_a_rest_pose(tmp_path: Path, cut: str) -> None:
    """A truncated AMC used to give its last frame's missing bones the rest pose, silently."""
    local, root = random_pose(3)
    amc = write_asf_amc(tmp_path, local, root)
    lines = amc.read_text().splitlines()
    k = [i for i, line in enumerate(lines) if line.startswith("lfemur")][-1]
    kept = lines[:k] if cut == "bone" else [*lines[:k], lines[k].split()[0]]
    amc.write_text("\n".join(kept) + "\n")
    match = r"frame 3 of 3 has no values for bone 'lfemur'" if cut == "bone" else "lfemur"
    with pytest.raises(MotionFormatError, match=match):
        load_motion(amc)
    # a bone listed twice in one frame is as damaged
    amc.write_text("\n".join([*lines, lines[k]]) + "\n")
    with pytest.raises(MotionFormatError, match=r"frame 3 of 3 has 2 lines of values"):
        load_motion(amc)


@pytest.mark.parametrize(
    ("printed", "fps"),
    [
        ("0.0083", 120.0),
        ("0.00833", 120.0),
        ("0.008333", 120.0),
        ("8.333333e-03", 120.0),
        ("0.0333", 30.0),
        ("0.0167", 60.0),
        ("0.0417", 24.0),
        ("0.01", 100.0),
        ("0.0333667", 1 / 0.0333667),  # NTSC 29.97 printed precisely: no integer fits, kept
        # three decimals: a common capture rate within the printed precision wins over the
        # integer nearest 1 / time (59, 125, 238)
        ("0.017", 60.0),
        ("0.008", 120.0),
        ("0.0042", 240.0),
        ("0.004", 250.0),  # exactly 250, itself a common rate
        ("0.0080000", 125.0),  # printed precisely: 125, no common rate fits
        ("0.016666", 60.0),  # truncated, not rounded: within 1e-4 of 60
    ],
)
def test_bvh_frame_time_is_read_to_its_printed_precision(
    tmp_path: Path, printed: str, fps: float
) -> None:
    """A rounded Frame Time means the integer rate within half a unit of its last digit."""
    path, lines, first = _bvh(tmp_path)
    lines[first - 1] = f"Frame Time: {printed}"
    path.write_text("\n".join(lines) + "\n")
    assert load_motion(path).fps == pytest.approx(fps, rel=1e-12)


@pytest.mark.parametrize("rate", [np.array([60.0]), np.array([[60]]), np.float32(60.0)])
def test_amass_rate_as_a_one_element_array(tmp_path: Path, rate) -> None:
    np.savez(tmp_path / "a.npz", poses=np.zeros((4, 156)), mocap_framerate=rate)
    assert load_motion(tmp_path / "a.npz").fps == 60.0
    np.savez(tmp_path / "b.npz", poses=np.zeros((4, 156)), mocap_framerate=np.array([60.0, 30]))
    with pytest.raises(MotionFormatError, match=r"b\.npz: 'mocap_framerate' must be one number"):
        load_motion(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", poses=np.zeros((0, 156)), mocap_framerate=60.0)
    with pytest.raises(MotionFormatError, match=r"c\.npz: 'poses' has no frames") as err:
        load_motion(tmp_path / "c.npz")
    assert str(err.value).count("c.npz") == 1  # the path once, not wrapped twice


def test_an_unanticipated_reader_error_skips_one_file_not_the_build(
    tmp_path: Path, monkeypatch
) -> None:
    """``on_error="skip"`` reports a file whose reading fails in a way no check anticipated (a
    TypeError from an odd array, say) and goes on; ``"abort"`` still raises it."""
    import advprior.data.dataset as dataset

    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.bvh", "b.bvh"):
        local, root = random_pose(40)
        write_bvh(src / name, "motionbuilder", local, root)
    real = dataset.load_motion

    def odd(path, **kwargs):
        if Path(path).name == "b.bvh":
            raise TypeError("only 0-dimensional arrays can be converted")
        return real(path, **kwargs)

    monkeypatch.setattr(dataset, "load_motion", odd)
    for error in (TypeError("only 0-dimensional arrays can be converted"), AttributeError("x")):

        def failing(path, raised=error, **kwargs):
            if Path(path).name == "b.bvh":
                raise raised
            return real(path, **kwargs)

        monkeypatch.setattr(dataset, "load_motion", failing)
        report = dataset.build_dataset(src, tmp_path / "d.npz", log=lambda line: None)
        kind = type(error).__name__
        assert any(f"unexpected {kind}" in why for f, why in report.skipped), kind
    monkeypatch.setattr(dataset, "load_motion", odd)
    report = dataset.build_dataset(src, tmp_path / "d.npz", log=lambda line: None)
    assert report.sequences == 1
    assert any("b.bvh" in f and "unexpected TypeError" in why for f, why in report.skipped)
    with pytest.raises(TypeError):
        dataset.build_dataset(src, tmp_path / "e.npz", on_error="abort")
