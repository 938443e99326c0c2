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
from advprior.errors import MotionFormatError, RetargetWarning
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


@pytest.mark.parametrize("header", [0, 3, 4, 6, 50])
def test_bvh_frame_count_mismatch_reads_the_lines_and_warns_with_both_counts(
    tmp_path: Path, header
) -> None:
    # an off-by-one (or stale) Frames: count is common; every whole line is a frame: the lines
    # are read, and the mismatch is a warning naming the file, the line and both counts
    path, lines, first = _bvh(tmp_path, 5)
    want = load_motion(path)
    text = "\n".join(lines).replace("Frames: 5", f"Frames: {header}")
    path.write_text(text + "\n")
    with pytest.warns(RetargetWarning, match=rf"t\.bvh:\d+: .*Frames: {header} .* 5 frame"):
        motion = load_motion(path)
    assert motion.num_frames == 5
    np.testing.assert_array_equal(motion.rotations, want.rotations)


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
    for rate in (np.nan, 0.0, -120.0):
        np.savez(tmp_path / "b.npz", **{**arrays, "mocap_framerate": rate})
        with pytest.raises(MotionFormatError, match=rf"'mocap_framerate' is {rate}, not a posi"):
            load_motion(tmp_path / "b.npz")
        assert load_motion(tmp_path / "b.npz", fps=60.0).fps == 60.0  # the way out it names


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


# ------------------------------------------------------------------ hostile files (round 10)


def _hierarchy_hostile_asf(folder: Path, kind: str) -> tuple[Path, Path]:
    """The test skeleton with its hierarchy made a cycle, a repeated child or a second parent."""
    local, root = random_pose(3)
    folder.mkdir(exist_ok=True)
    amc = write_asf_amc(folder, local, root)
    asf = folder / "07.asf"
    text = asf.read_text()
    edit = {
        "cycle": ("    upperneck head\n", "    upperneck head\n    head lowerback\n"),
        "repeated": ("    lowerback upperback\n", "    lowerback" + " upperback" * 40 + "\n"),
        "two_parents": ("    upperneck head\n", "    upperneck head\n    lhumerus lfemur\n"),
    }[kind]
    assert edit[0] in text
    asf.write_text(text.replace(edit[0], edit[1]))
    return amc, asf


def test_asf_hierarchy_cycle_or_repeated_child_is_an_error_not_a_hang(tmp_path: Path) -> None:
    # before the checks the skeleton walk never ended (memory growing): run it where it can be
    # stopped, memory-capped
    cases = [_hierarchy_hostile_asf(tmp_path / k, k) for k in ("cycle", "repeated")]
    local, root = random_pose(2)
    (tmp_path / "clean").mkdir()
    write_asf_amc(tmp_path / "clean", local, root)
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
        "from advprior.data import load_motion\n"
        "from advprior.data.asf_amc import read_asf\n"
        "from advprior.errors import MotionFormatError\n"
        "def attempt(fn, *args, **kwargs):\n"
        "    try:\n"
        "        fn(*args, **kwargs)\n"
        "        print('LOADED', flush=True)\n"
        "    except MotionFormatError as err:\n"
        "        print('REFUSED', err, flush=True)\n"
        "for amc, asf in zip(sys.argv[1:-1:2], sys.argv[2:-1:2]):\n"
        "    attempt(load_motion, amc, skeleton=asf)\n"
        "# an ASFSkeleton changed by hand after read_asf: build() itself must not loop\n"
        "skeleton = read_asf(sys.argv[-1])\n"
        "skeleton.children['head'] = ['lowerback']\n"
        "attempt(skeleton.build)\n"
    )
    args = [str(p) for pair in cases for p in pair] + [str(tmp_path / "clean" / "07.asf")]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    res = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=60
    )
    lines = res.stdout.splitlines()
    assert res.returncode == 0 and len(lines) == 3, res.stderr[-2000:]
    cycle, repeated, by_hand = lines
    assert re.match(
        r"REFUSED .*cycle/07\.asf:\d+: bone 'lowerback' is listed as a child of 'head' but "
        r"already of 'root' \(line \d+\)",
        cycle,
    )
    assert re.match(
        r"REFUSED .*repeated/07\.asf:\d+: bone 'upperback' is listed as a child of "
        r"'lowerback' again",
        repeated,
    )
    assert re.match(r"REFUSED .*clean/07\.asf: hierarchy reaches bone 'lowerback' twice", by_hand)


def test_asf_bone_with_two_parents_names_file_and_line(tmp_path: Path) -> None:
    amc, asf = _hierarchy_hostile_asf(tmp_path, "two_parents")
    line = asf.read_text().splitlines().index("    lhumerus lfemur") + 1
    with pytest.raises(MotionFormatError, match=rf"07\.asf:{line}: bone 'lfemur' .*'lhipjoint'"):
        load_motion(amc, skeleton=asf)


def _character(parent_of_3: int | None = None, ids: list[int] | None = None) -> dict:
    from advprior.data.deepmimic import HUMANOID3D

    joints = [
        {"ID": i, "Name": n, "Type": t, "Parent": p, "AttachX": a[0], "AttachY": a[1]}
        | {"AttachZ": a[2]}
        for i, (n, t, p, a) in enumerate(HUMANOID3D)
    ]
    if parent_of_3 is not None:
        joints[3]["Parent"] = parent_of_3
    for joint, i in zip(joints, ids or [], strict=False):
        joint["ID"] = i
    return {"Skeleton": {"Joints": joints}}


@pytest.mark.parametrize(
    ("parent", "ids"),
    [(3, None), (99, None), (14, None), (-7, None), (-1, None), (None, [0, 1, 1])],
    ids=["self", "out_of_range", "later_joint", "negative", "second_root", "duplicate_id"],
)
def test_deepmimic_character_parents_are_checked(tmp_path: Path, parent, ids) -> None:
    char = tmp_path / "char.txt"
    char.write_text(json.dumps(_character(parent, ids)))
    path = tmp_path / "clip.txt"
    path.write_text(json.dumps({"Frames": _deepmimic_frames(3, -0.5, 0.2)}))
    what = "joint IDs must be" if ids else rf"joint 3 \('right_hip'\) has Parent {parent}"
    with pytest.raises(MotionFormatError, match=rf"char\.txt: {what}"):
        load_motion(path, skeleton=char)


def test_deepmimic_character_root_must_come_first(tmp_path: Path) -> None:
    doc = _character()
    doc["Skeleton"]["Joints"][0]["Parent"] = 1
    (tmp_path / "char.txt").write_text(json.dumps(doc))
    path = tmp_path / "clip.txt"
    path.write_text(json.dumps({"Frames": _deepmimic_frames(3, -0.5, 0.2)}))
    with pytest.raises(MotionFormatError, match=r"char\.txt: joint 0 \('root'\) must be the root"):
        load_motion(path, skeleton=tmp_path / "char.txt")


def _npy(arr=None, header: dict | None = None) -> bytes:
    """An ``.npy`` file's bytes: ``arr`` saved, or a crafted ``header`` with no data."""
    import io

    if header is None:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
        return buf.getvalue()
    text = repr(header).encode("latin1")
    text += b" " * ((64 - (11 + len(text)) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text


def _write_zip(path: Path, members: dict, deflate: tuple[str, ...] = ()) -> Path:
    """An npz of ``{key: array | bytes}`` (bytes are written as the member as they are); the
    ``deflate`` keys are compressed (zeros compress ~1000x: a small zip bomb)."""
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for key, value in members.items():
            data = value if isinstance(value, bytes) else _npy(value)
            kind = zipfile.ZIP_DEFLATED if key in deflate else zipfile.ZIP_STORED
            z.writestr(f"{key}.npy", data, compress_type=kind)
    return path


def _dataset_arrays(n: int = 12, **over) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "body_pose": rng.normal(0, 0.2, (n, 63)).astype(np.float32),
        "global_orient": np.zeros((n, 3), np.float32),
        "transl": np.zeros((n, 3), np.float32),
        "sequence": np.zeros(n, np.int32),
        "subject": (np.arange(n) % 2).astype(np.int32),
        "split": (np.arange(n) % 3).astype(np.int8),
        "sequence_names": np.array(["s0"]),
        "subject_names": np.array(["a:1", "b:2"]),
        "split_names": np.array(["train", "val", "test"]),
        "fps": np.float32(30),
        "meta": np.array(json.dumps({"sources": ["x"]})),
    }
    arrays.update(over)
    return arrays


@pytest.fixture
def small_zip_check(monkeypatch):
    """Members above 64 KiB get the zip-bomb ratio check (the library's bound is 64 MiB)."""
    import advprior.fileio

    monkeypatch.setattr(advprior.fileio, "ZIP_CHECK_ABOVE", 1 << 16)


def test_dataset_zip_bomb_is_refused_before_reading(tmp_path: Path, small_zip_check) -> None:
    from advprior.data import build_dataset, load_dataset

    bomb = _dataset_arrays(body_pose=np.zeros((8000, 63), np.float32))
    path = _write_zip(tmp_path / "bomb.npz", bomb, deflate=("body_pose",))
    with pytest.raises(ValueError, match=r"bomb\.npz: .*'body_pose\.npy'.*zip bomb"):
        load_dataset(path)
    # the previous file of split_from is read through the same checks
    subject_bomb = _dataset_arrays(subject=np.zeros(500_000, np.int32))
    prev = _write_zip(tmp_path / "prev.npz", subject_bomb, deflate=("subject",))
    with pytest.raises(ValueError, match=r"prev\.npz: .*'subject\.npy'.*zip bomb"):
        build_dataset(_clip(tmp_path), tmp_path / "out.npz", split_from=prev)


def _f64_1e300() -> dict:
    return {"body_pose": np.full((12, 63), 1e300)}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (_f64_1e300(), "body_pose contains NaN or inf"),
        ({"split": np.arange(12) % 3 + 256}, r"split values must be in 0\.\.2, got 256\.\.258"),
        ({"split": np.full(12, np.nan)}, "split must hold integers, got float64"),
        ({"body_pose": np.float32(1)}, r"body_pose must have shape \(N, 63\), got \(\)"),
        ({"body_pose": np.array([["x"] * 63] * 12)}, "body_pose must hold real numbers"),
        ({"body_pose": b"garbage"}, "'body_pose' is not a .npy array"),
        ({"fps": np.array([30.0, 60.0])}, r"fps must be one number, got shape \(2,\)"),
        ({"fps": np.array("fast")}, "fps must be one number"),
        ({"split_names": np.array("train")}, "split_names must be a list of strings"),
        ({"sequence_names": np.array("s")}, "sequence_names must be a list of strings"),
        ({"sequence": np.full(12, 2**32)}, r"sequence values must be in 0\.\.2147483647"),
        ({"subject": np.full(12, -1, np.int32)}, r"subject values must be in 0\.\.2147483647"),
        (
            {
                "body_pose": _npy(
                    header={"descr": "<f4", "fortran_order": False, "shape": (10**12, 63)}
                )
            },
            r"'body_pose' declares shape \(1000000000000, 63\).* holds 0 bytes",
        ),
        # json kept the last of two dataset_format values: the first (a newer format) unread
        (
            {"meta": np.array('{"dataset_format": 99, "dataset_format": 1}')},
            "meta: the key 'dataset_format' appears twice",
        ),
        # the version quoted from the file: 100 KB of it made a message of 100 KB
        (
            {"meta": np.array(json.dumps({"dataset_format": 99, "advprior_version": "9" * 10**5}))},
            r"dataset format 99 \(written by advprior a newer version\); this advprior",
        ),
    ],
    ids=[
        "f64_1e300",
        "split_256",
        "split_nan",
        "body_pose_0d",
        "body_pose_strings",
        "member_not_npy",
        "fps_array",
        "fps_string",
        "split_names_0d",
        "names_0d",
        "sequence_wraps_int32",
        "subject_negative",
        "huge_header_shape",
        "meta_key_twice",
        "meta_version_huge",
    ],
)
def test_load_dataset_hostile_member_is_a_value_error_naming_file_and_key(
    tmp_path: Path, over: dict, message: str
) -> None:
    from advprior.data import load_dataset
    from advprior.train.poses import load_training_poses

    path = _write_zip(tmp_path / "hostile.npz", _dataset_arrays(**over))
    with pytest.raises(ValueError, match=rf"hostile\.npz: {message}") as err:
        load_dataset(path)
    assert len(str(err.value)) < 1000  # values quoted from the file are bounded
    with pytest.raises(ValueError, match=rf"hostile\.npz: {message}"):
        load_training_poses(path)


def _amass(t: int = 10, **over) -> dict:
    arrays = {
        "poses": np.zeros((t, 156)),
        "trans": np.zeros((t, 3)),
        "mocap_framerate": np.array(120.0),
    }
    arrays.update(over)
    return arrays


def test_amass_zip_bomb_and_non_npy_member_are_refused(tmp_path: Path, small_zip_check) -> None:
    from advprior.data.amass import is_amass

    bomb = _write_zip(tmp_path / "bomb.npz", _amass(2000), deflate=("poses",))
    assert is_amass(bomb)  # only the member names are read to tell
    with pytest.raises(MotionFormatError, match=r"bomb\.npz: .*'poses\.npy'.*zip bomb"):
        load_motion(bomb)
    raw = _amass(trans=bytes(1 << 21))  # a member without the .npy magic: 2 MB of zeros
    nonnpy = _write_zip(tmp_path / "raw.npz", raw, deflate=("trans",))
    with pytest.raises(MotionFormatError, match=r"raw\.npz: .*'trans\.npy'.*zip bomb"):
        load_motion(nonnpy)
    small = _write_zip(tmp_path / "small.npz", _amass(trans=b"not an npy"))
    with pytest.raises(MotionFormatError, match=r"small\.npz: 'trans' is not a \.npy array"):
        load_motion(small)
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**12, 156)}
    huge = _write_zip(tmp_path / "huge.npz", _amass(poses=_npy(header=header)))
    with pytest.raises(MotionFormatError, match=r"huge\.npz: 'poses' declares shape"):
        load_motion(huge)


@pytest.mark.parametrize("key", ["poses", "pose_body"])
def test_amass_angles_too_large_to_convert_name_file_and_key(tmp_path: Path, key: str) -> None:
    arrays = _amass()
    if key == "pose_body":
        del arrays["poses"]
        arrays["pose_body"] = np.zeros((10, 63))
    arrays[key][4, 7] = 1e200  # finite, but its square overflows in the conversion
    path = _write_zip(tmp_path / "big.npz", arrays)
    with pytest.raises(MotionFormatError, match=rf"big\.npz: '{key}' at frame 4 .*too large"):
        load_motion(path)


def test_a_tiny_frame_time_is_read_at_once_or_refused(tmp_path: Path) -> None:
    """Snapping "Frame Time: 1e-300" to an integer rate walked every integer between its
    bounds (about 1e300 of them: the reader hung); a subnormal time's rate is infinite."""
    import signal

    path, lines, first = _bvh(tmp_path)
    old = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("the reader hung"))
    signal.alarm(30)
    try:
        lines[first - 1] = "Frame Time: 1e-300"
        path.write_text("\n".join(lines) + "\n")
        assert load_motion(path).fps == pytest.approx(1e300, rel=1e-12)
        lines[first - 1] = "Frame Time: 3e-320"
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(MotionFormatError, match="Frame Time 3e-320 s is too short"):
            load_motion(path)
        frames = _deepmimic_frames(3, -0.2, 0.1)
        for f in frames:
            f[0] = 3e-320
        dm = tmp_path / "d.txt"
        dm.write_text(json.dumps({"Frames": frames}))
        with pytest.raises(MotionFormatError, match="durations of 2.99997e-320 s are too short"):
            load_motion(dm)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_timedelta_arrays_are_not_numbers(tmp_path: Path) -> None:
    """numpy counts timedelta64 as a number (np.issubdtype(m8, np.number)): such poses and a
    mocap_framerate of 120 seconds were read as numbers."""
    npy = tmp_path / "poses.npy"
    np.save(npy, np.zeros((10, 66), "m8[s]"))
    with pytest.raises(MotionFormatError, match=r"poses\.npy: 'array' must be a numeric array"):
        load_motion(npy, fps=30)
    for key, value in (("poses", np.zeros((10, 156), "m8[s]")), ("mocap_framerate", None)):
        arrays = _amass()
        arrays[key] = np.timedelta64(120, "s") if value is None else value
        path = tmp_path / f"{key}.npz"
        np.savez(path, **arrays)
        with pytest.raises(MotionFormatError, match=rf"'{key}' must .*timedelta64"):
            load_motion(path)
