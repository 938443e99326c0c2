"""Dataset build/load and the ``advprior data`` CLI on tiny generated motion files."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from test_data_importers import random_pose, write_asf_amc, write_bvh

from advprior.data import build_dataset, load_dataset
from advprior.data.dataset import assign_splits, subject_group, subject_of
from advprior.data.rotmath import rotvec_to_matrix
from advprior.errors import MotionFormatError


def _tree(root: Path, n_folders: int = 5) -> Path:
    """mocap/<source>/<folder>/*.bvh, CMU- and HDM05-named AMC files, and non-motion files."""
    src = root / "mocap"
    for i in range(n_folders):
        local, pelvis = random_pose(31 + 10 * i, seed=i)
        folder = src / "bvhsrc" / f"dance{i}"
        folder.mkdir(parents=True)
        write_bvh(folder / "take.bvh", "motionbuilder", local, pelvis, frame_time=1 / 60)
    amc = src / "asfamc" / "05"
    amc.mkdir(parents=True)
    local, pelvis = random_pose(80, seed=9)
    write_asf_amc(amc, local, pelvis, stem="05_02")
    hdm = src / "hdm"
    hdm.mkdir()
    write_asf_amc(hdm, local[:70], pelvis[:70], stem="HDM_zz_walk_001_120")
    (hdm / "HDM.asf").rename(hdm / "HDM_zz.asf")
    (src / "notes.md").write_text("# notes")
    (src / "index.csv").write_text("a,b\n")
    return src


def test_build_writes_the_design_format_split_by_subject(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    out = tmp_path / "out" / "poses.npz"
    report = build_dataset(src, out, fps=30)
    f = np.load(out, allow_pickle=False)
    dtypes = {
        "body_pose": np.float32,
        "global_orient": np.float32,
        "transl": np.float32,
        "sequence": np.int32,
        "subject": np.int32,
        "split": np.int8,
    }
    n = f["body_pose"].shape[0]
    assert n == report.frames > 0
    for key, dtype in dtypes.items():
        assert f[key].dtype == dtype, key
        assert f[key].shape[0] == n
    assert f["body_pose"].shape == (n, 63) and f["transl"].shape == (n, 3)
    assert list(f["split_names"]) == ["train", "val", "test"]
    assert float(f["fps"]) == 30.0
    meta = json.loads(str(f["meta"]))
    assert meta["frames_per_source"] == report.per_source
    assert set(report.per_source) == {"bvhsrc", "asfamc", "hdm"}
    subjects = list(f["subject_names"])
    assert "cmu:05" in subjects and "hdm05:zz" in subjects and "bvhsrc:dance0" in subjects
    for k in range(len(subjects)):  # one split per subject, never split by frame
        assert len(np.unique(f["split"][f["subject"] == k])) == 1
    skipped = {Path(p).name: why for p, why in report.skipped}
    assert {"notes.md", "index.csv", "05.asf", "HDM_zz.asf"} <= set(skipped)
    assert "ASF skeleton" in skipped["05.asf"]
    # 60 fps BVHs of 31 + 10 i frames -> 16 + 5 i frames at 30 fps.
    seq = list(f["sequence_names"])
    k = seq.index("bvhsrc/dance1/take.bvh")
    assert int((f["sequence"] == k).sum()) == 21
    assert not list(out.parent.glob(".*tmp"))


def test_build_keeps_only_the_float32_arrays_it_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build held every retargeted motion until the end: its source joint positions and
    float64 arrays, 1,128 bytes per frame for the 276 it writes (~5 GB more for all of
    AMASS). It keeps float32 copies of what it writes; the file is the same."""
    import gc
    import weakref

    import advprior.data.dataset as dataset
    from advprior.data.motion import Motion

    src = _tree(tmp_path, n_folders=2)
    before = build_dataset(src, tmp_path / "a.npz", fps=30)
    motions: list[weakref.ref] = []
    to_smpl = Motion.to_smpl

    def recorded(self, *args, **kwargs):
        smpl = to_smpl(self, *args, **kwargs)
        motions.append(weakref.ref(smpl))
        return smpl

    alive: list[int] = []
    assign = dataset.assign_splits

    def at_split(*args, **kwargs):  # every file imported, nothing written yet
        gc.collect()
        alive.append(sum(m() is not None for m in motions))
        return assign(*args, **kwargs)

    monkeypatch.setattr(Motion, "to_smpl", recorded)
    monkeypatch.setattr(dataset, "assign_splits", at_split)
    after = build_dataset(src, tmp_path / "b.npz", fps=30)
    assert len(motions) == 4 and alive == [0]
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
    assert after.frames == before.frames


def test_build_is_deterministic_and_split_from_keeps_subjects(tmp_path: Path) -> None:
    src = _tree(tmp_path, n_folders=6)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    build_dataset(src, a)
    build_dataset(src, b)
    fa, fb = np.load(a), np.load(b)
    for key in ("body_pose", "split", "subject"):
        np.testing.assert_array_equal(fa[key], fb[key])
    before = json.loads(str(fa["meta"]))["subject_split"]
    local, pelvis = random_pose(200, seed=42)
    folder = src / "bvhsrc" / "newcomer"
    folder.mkdir()
    write_bvh(folder / "x.bvh", "daz", local, pelvis, scale=100.0)
    c = tmp_path / "c.npz"
    report = build_dataset(src, c, split_from=a)
    for subject, split in before.items():
        assert report.subjects[subject] == split
    assert "bvhsrc:newcomer" in report.subjects


def test_on_error_skip_reports_and_abort_raises(tmp_path: Path) -> None:
    src = _tree(tmp_path, n_folders=2)
    bad = src / "bvhsrc" / "dance0" / "broken.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n")
    report = build_dataset(src, tmp_path / "o.npz", on_error="skip")
    reasons = dict(report.skipped)
    assert str(bad) in reasons and "MotionFormatError" in reasons[str(bad)]
    assert "broken.bvh" in reasons[str(bad)]
    with pytest.raises(MotionFormatError, match="broken.bvh"):
        build_dataset(src, tmp_path / "p.npz", on_error="abort")
    assert not (tmp_path / "p.npz").exists()
    with pytest.raises(ValueError, match="on_error"):
        build_dataset(src, tmp_path / "q.npz", on_error="ignore")


def test_readme_frame_rate_and_leading_rest_frame(tmp_path: Path) -> None:
    src = tmp_path / "src"
    folder = src / "aclstm" / "salsa"
    folder.mkdir(parents=True)
    (src / "aclstm" / "readme.txt").write_text("salsa framerate 60\nindian framerate 120\n")
    local, pelvis = random_pose(61, seed=1)
    # A T-pose first frame, as in CMU BVH conversions: the capture then starts turned away.
    local[0] = np.eye(3)
    local[1:, 0] = rotvec_to_matrix(np.array([0.0, 1.5, 0.0])) @ local[1:, 0]
    write_bvh(folder / "01.bvh", "daz", local, pelvis, scale=100.0, frame_time=1 / 120)
    report = build_dataset(src, tmp_path / "s.npz")
    # 60 frames after the rest frame, read at 60 fps (not the header's 120): 1 s -> 30 frames.
    assert report.frames == 30
    # the readme is named for what it is, not as a failed DeepMimic file
    (src / "aclstm" / "notes.txt").write_text("salsa framerate 60\n")  # not a readme's name
    report = build_dataset(src, tmp_path / "s2.npz")
    reasons = {Path(f).name: why for f, why in report.skipped}
    assert reasons["readme.txt"].startswith("frame-rate readme")
    assert reasons["notes.txt"] == "not a DeepMimic motion JSON"
    report = build_dataset(src, tmp_path / "t.npz", source_fps={"aclstm/salsa/*": 120})
    assert report.frames == 15


def test_load_dataset_splits_and_rejects_nan(tmp_path: Path) -> None:
    src = _tree(tmp_path, n_folders=8)
    out = tmp_path / "d.npz"
    report = build_dataset(src, out)
    full = load_dataset(out)
    assert len(full) == report.frames and full.body_pose.dtype.is_floating_point
    total = 0
    for name in ("train", "val", "test"):
        part = load_dataset(out, split=name)
        assert len(part) == report.per_split[name]
        assert bool((part.split == ["train", "val", "test"].index(name)).all())
        total += len(part)
    assert total == len(full)
    with pytest.raises(ValueError, match="split must be"):
        load_dataset(out, split="holdout")
    f = dict(np.load(out))
    f["body_pose"][3, 5] = np.nan
    np.savez(tmp_path / "nan.npz", **f)
    with pytest.raises(ValueError, match="NaN"):
        load_dataset(tmp_path / "nan.npz")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "missing.npz")


def test_assign_splits_hits_fractions_and_is_order_free() -> None:
    frames = {f"s{i}": 100 + (i * 37) % 50 for i in range(60)}
    out = assign_splits(frames, (0.8, 0.1, 0.1), seed="x")
    total = sum(frames.values())
    for k, target in enumerate((0.8, 0.1, 0.1)):
        share = sum(n for s, n in frames.items() if out[s] == k) / total
        assert abs(share - target) < 0.03
    shuffled = dict(sorted(frames.items(), reverse=True))
    assert assign_splits(shuffled, (0.8, 0.1, 0.1), seed="x") == out
    with pytest.raises(ValueError, match="fractions"):
        assign_splits(frames, (0.5, 0.1, 0.1))


def test_assign_splits_stratifies_by_subject_group() -> None:
    # One group of many small subjects and two groups of a few large ones: stratified, each
    # group reaches the held-out splits and hits the fractions on its own.
    frames = {f"small:{i}": 100 for i in range(40)}
    frames |= {f"big{g}:{i}": 5000 + 300 * i for g in range(2) for i in range(5)}
    pooled = assign_splits(frames, (0.8, 0.1, 0.1), seed="x", stratify=False)
    strat = assign_splits(frames, (0.8, 0.1, 0.1), seed="x")
    for g in ("small", "big0", "big1"):
        members = [s for s in frames if s.startswith(g + ":")]
        total = sum(frames[s] for s in members)
        held_out = {strat[s] for s in members} - {0}
        assert held_out, g  # every group reaches val or test
        train_share = sum(frames[s] for s in members if strat[s] == 0) / total
        assert 0.6 <= train_share <= 0.9, (g, train_share)
    assert {strat[s] for s in frames if not s.startswith("small")} >= {0, 1, 2}
    shares = [sum(n for s, n in frames.items() if pooled[s] == k) for k in range(3)]
    assert abs(shares[0] / sum(shares) - 0.8) < 0.05  # one pool still hits the fractions
    # Known subjects keep their split; ids without a group form one pool.
    fixed = {"big0:0": 2, "small:3": 1}
    again = assign_splits(frames, (0.8, 0.1, 0.1), seed="x", fixed=fixed)
    assert again["big0:0"] == 2 and again["small:3"] == 1
    assert subject_group("cmu:02") == "cmu" and subject_group("loose") == ""


def test_subject_ids_are_global_across_sources() -> None:
    assert subject_of(Path("02/02_01.amc"), "cmu_asfamc") == "cmu:02"
    assert subject_of(Path("02/02_01.txt"), "cmu_deepmimic") == "cmu:02"
    assert subject_of(Path("127/127_03.txt"), "cmu_deepmimic") == "cmu:127"
    assert subject_of(Path("amc/HDM_bd_squat_001_120.amc"), "hdm05_asfamc") == "hdm05:bd"
    assert subject_of(Path("salsa/01.bvh"), "cmu_daz") == "cmu_daz:salsa"
    # AMASS names one CMU person's trials SS_TT_poses (SMPL-H) and SS_TT_stageii (SMPL-X)
    assert subject_of(Path("CMU/02/02_01_poses.npz"), "amass") == "cmu:02"
    assert subject_of(Path("CMU/02/02_01_stageii.npz"), "amass_x") == "cmu:02"
    # LAFAN1: five actors in one folder, each file naming its actor
    assert subject_of(Path("lafan1/aiming1_subject1.bvh"), "ubisoft") == "lafan1:subject1"
    assert subject_of(Path("lafan1/fallAndGetUp2_subject2.bvh"), "x") == "lafan1:subject2"
    assert subject_of(Path("lafan1/walk1_subject5.bvh"), "x") != subject_of(
        Path("lafan1/walk1_subject1.bvh"), "x"
    )
    assert subject_of(Path("lab/subject1.bvh"), "lab") == "lab:lab"  # no take name: the folder


def test_trial_like_names_outside_cmu_are_not_cmu_subjects() -> None:
    """A lab's own takes named like CMU trials (``alice/01_01.bvh``) were keyed to ``cmu:01``:
    alice's ``walk.bvh`` became ``lab:alice``, one person on both sides of the split, and bob's
    ``01_01.bvh`` merged with alice (and with a real CMU subject 01). The CMU rule needs CMU's
    layout (the folder is the subject number) or a path that names CMU."""
    assert subject_of(Path("alice/01_01.bvh"), "lab") == "lab:alice"
    assert subject_of(Path("bob/01_01.bvh"), "lab") == "lab:bob"
    assert subject_of(Path("alice/walk.bvh"), "lab") == "lab:alice"
    # CMU's own layouts still key to the CMU person, whatever the source folder is called
    assert subject_of(Path("subjects/02/02_01.amc"), "allasfamc") == "cmu:02"
    assert subject_of(Path("02_01.bvh"), "cmu_bvh") == "cmu:02"  # a flat CMU folder
    assert subject_of(Path("misc/02_01_poses.npz"), "CMU") == "cmu:02"


def test_a_group_the_greedy_puts_all_in_train_still_holds_one_subject_out() -> None:
    # the hash order puts the group's largest subject (here almost half the frames) last: the
    # greedy keeps train's deficit the largest throughout and takes it too
    from advprior.data.dataset import assign_splits as assign

    small = {f"g:{i}": 100 for i in range(9)}
    for big in range(2000):
        frames = small | {f"g:big{big}": 900}
        order = sorted(frames, key=lambda s: hashlib.sha256(f"x:{s}".encode()).hexdigest())
        if order[-1] == f"g:big{big}":
            break
    out = assign(frames, (0.8, 0.1, 0.1), seed="x")
    assert sorted(out.values()).count(0) == len(frames) - 1  # one held out, the rest train
    held = next(s for s, k in out.items() if k)
    assert frames[held] == 100  # the subject nearest that split's share (180 frames)
    # fixed subjects stay where they are; a group of one stays in train
    assert assign({"a:1": 10}, (0.8, 0.1, 0.1)) == {"a:1": 0}
    all_fixed = dict.fromkeys(frames, 0)
    assert assign(frames, (0.8, 0.1, 0.1), seed="x", fixed=all_fixed) == all_fixed


def test_content_sha256_ignores_meta_and_storage_and_sees_one_ulp(tmp_path: Path) -> None:
    """The published digest of a build must be reproducible by a later advprior (its version is
    in ``meta``, so the file's own sha256 changes) and must change with any pose."""
    from advprior.fileio import save_npz_atomic

    src = _tree(tmp_path, n_folders=3)
    built = tmp_path / "a.npz"
    build_dataset(src, built)
    with np.load(built) as f:
        arrays = {k: f[k] for k in f.files}
    digest = load_dataset(built).content_sha256()
    meta = json.loads(str(arrays["meta"]))
    meta["advprior_version"] = "9.9.9"
    other = dict(arrays, meta=np.array(json.dumps(meta)))
    # the names stored wider than needed: a storage detail, not content
    other["sequence_names"] = arrays["sequence_names"].astype("<U300")
    save_npz_atomic(tmp_path / "b.npz", other)
    assert (
        hashlib.sha256((tmp_path / "b.npz").read_bytes()).hexdigest()
        != hashlib.sha256(built.read_bytes()).hexdigest()
    )
    assert load_dataset(tmp_path / "b.npz").content_sha256() == digest
    nudged = dict(arrays)
    pose = arrays["body_pose"].copy()
    pose[3, 7] = np.nextafter(pose[3, 7], np.float32(np.inf))
    nudged["body_pose"] = pose
    save_npz_atomic(tmp_path / "c.npz", nudged)
    assert load_dataset(tmp_path / "c.npz").content_sha256() != digest
    split = arrays["split"].copy()
    split[0] = (split[0] + 1) % 3
    save_npz_atomic(tmp_path / "d.npz", dict(arrays, split=split))
    assert load_dataset(tmp_path / "d.npz").content_sha256() != digest


def test_cli_build_and_info_print_counts(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from advprior.cli import main

    src = _tree(tmp_path, n_folders=3)
    out = tmp_path / "cli.npz"
    assert main(["data", "build", str(src), "--out", str(out), "--fps", "20"]) == 0
    text = capsys.readouterr()
    assert text.out.startswith(f"wrote {out}:") and "train " in text.out
    assert text.out.count("\n") == 1  # the answer is one line; the counts are `data info`'s
    digest = load_dataset(out).content_sha256()
    assert text.out.rstrip().endswith(f"content sha256 {digest[:16]}")
    assert "skipped" in text.err and "notes.md" in text.err
    assert float(np.load(out)["fps"]) == 20.0
    assert main(["data", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "frames per split" in info and "asfamc" in info and "bvhsrc" in info
    assert f"content sha256 {digest} (built by advprior " in info


def test_cli_build_says_when_a_requested_split_stays_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """One subject cannot be split by subject: ``--split 0.5,0.5,0`` wrote a file without
    validation rows and said nothing until training warned (or eval refused)."""
    from advprior.cli import main

    src = _tree(tmp_path, n_folders=1) / "asfamc"  # one person, CMU subject 05
    out = tmp_path / "one.npz"
    assert main(["data", "build", str(src), "--out", str(out), "--split", "0.5,0.5,0"]) == 0
    text = capsys.readouterr()
    notes = [line for line in text.err.splitlines() if line.startswith("note: split")]
    assert len(notes) == 1 and "'val'" in notes[0] and "1 subject" in notes[0]
    assert "every 20th" in notes[0]  # what training does instead
    assert text.out.count("\n") == 1
    assert "1 sequence, 1 subject, 1 source, 1 file skipped" in text.out  # not "1 subjects"
    assert main(["data", "info", str(out)]) == 0
    assert ", 1 subject\n" in capsys.readouterr().out
    # no note for a split nobody asked for
    assert main(["data", "build", str(src), "--out", str(out), "--split", "1,0,0"]) == 0
    assert "note: split" not in capsys.readouterr().err


def test_a_copy_under_another_name_is_noted(tmp_path: Path) -> None:
    """The same capture filed twice (``cmu/05/05_02.amc`` and a renamed copy in a lab folder)
    became two subjects that the split could put on both sides, silently: identical poses in
    two subjects are now a note of the build, naming both files and their splits."""
    import shutil

    src = _tree(tmp_path, n_folders=1)
    copy = src / "lab" / "alice"
    shutil.copytree(src / "asfamc" / "05", copy)
    (copy / "05_02.amc").rename(copy / "take.amc")
    lines: list[str] = []
    report = build_dataset(src, tmp_path / "d.npz", log=lines.append)
    assert {"cmu:05", "lab:alice"} <= set(report.subjects)
    same = [(f, m) for f, m in report.notes if "same poses" in m]
    assert len(same) == 1 and "take.amc" in same[0][1] and "05_02.amc" in same[0][1]
    assert "cmu:05" in same[0][1] and "lab:alice" in same[0][1]
    assert any("same poses" in line for line in lines)
    meta = json.loads(str(np.load(tmp_path / "d.npz")["meta"]))
    assert any("same poses" in m for _, m in meta["notes"])
    # without the copy: no such note
    shutil.rmtree(src / "lab")
    assert not [m for _, m in build_dataset(src, tmp_path / "e.npz").notes if "same poses" in m]


def test_cmu_index_csv_sets_amc_rates(tmp_path: Path) -> None:
    src = _tree(tmp_path, n_folders=1)
    before = build_dataset(src, tmp_path / "a.npz").per_source["asfamc"]
    (src / "cmu_index.csv").write_text(
        '"Subject","Trial #","Motion Description","framerate"\n5,2,"walk",60\n5,3,"run",120\n'
    )
    after = build_dataset(src, tmp_path / "b.npz").per_source["asfamc"]
    # 80 frames: 0.66 s at 120 fps (20 frames at 30 fps), 1.32 s at 60 fps (40 frames).
    assert (before, after) == (20, 40)
    # a CMU BVH conversion says 120 fps in its header also for a 60 fps trial: the index wins
    local, pelvis = random_pose(80, seed=9)
    (src / "cmubvh").mkdir()
    write_bvh(src / "cmubvh" / "05_02.bvh", "motionbuilder", local, pelvis, frame_time=1 / 120)
    bvh = build_dataset(src, tmp_path / "c.npz").per_source["cmubvh"]
    assert bvh == 40


def test_split_and_split_from_are_checked_before_importing(tmp_path: Path) -> None:
    """A bad --split or a missing --split-from used to be reported only after every file was
    imported (hours on a full collection)."""
    src = _tree(tmp_path, n_folders=1)
    lines: list[str] = []
    with pytest.raises(ValueError, match="split fractions"):
        build_dataset(src, tmp_path / "o.npz", split=(1.0, 2.0, 0.0), log=lines.append)
    with pytest.raises(FileNotFoundError, match="no such dataset file"):
        build_dataset(src, tmp_path / "o.npz", split_from=tmp_path / "gone.npz", log=lines.append)
    assert lines == []  # nothing was imported (each skipped non-motion file logs a line)
    assert not (tmp_path / "o.npz").exists()


def test_a_file_that_is_not_a_dataset_is_never_replaced(tmp_path: Path) -> None:
    """`--out notes.txt` (a typo) used to replace the user's own file with the dataset; an
    existing .npz (rebuilding into last week's dataset) or an empty file is replaced as before."""
    src = _tree(tmp_path, n_folders=1)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    lines: list[str] = []
    with pytest.raises(FileExistsError, match="refusing to replace .*notes.txt"):
        build_dataset(src, notes, log=lines.append)
    assert notes.read_text() == "my notes" and lines == []  # checked before importing
    old = tmp_path / "old.npz"
    np.savez(old, x=np.zeros(1))
    empty = tmp_path / "empty.npz"
    empty.touch()
    for out in (old, empty):
        build_dataset(src, out, split=(1.0, 0.0, 0.0), log=lines.append)
        assert len(load_dataset(out).body_pose) > 0


def test_a_dataset_of_a_newer_format_is_refused_naming_it(tmp_path: Path, write_dataset) -> None:
    """A build records its layout's format; a file from a newer advprior (another layout) is
    refused instead of trained on (before: read without a word); a file without the key, as
    every file before the key was recorded, is format 1."""
    from advprior.data.dataset import DATASET_FORMAT

    src = _tree(tmp_path, n_folders=1)
    built = tmp_path / "built.npz"
    build_dataset(src, built, split=(1.0, 0.0, 0.0), log=lambda line: None)
    assert load_dataset(built).meta["dataset_format"] == DATASET_FORMAT
    pose, split = np.zeros((3, 63)), np.array([0, 1, 2])
    load_dataset(write_dataset(tmp_path / "old.npz", pose, split))  # no key: format 1
    newer = {"dataset_format": DATASET_FORMAT + 1, "advprior_version": "9.1.0"}
    path = write_dataset(tmp_path / "new.npz", pose, split, meta=np.array(json.dumps(newer)))
    with pytest.raises(
        ValueError, match=rf"new.npz: dataset format {DATASET_FORMAT + 1} \(written by advprior 9.1"
    ):
        load_dataset(path)
    for bad in ("2", 0, True):
        meta = np.array(json.dumps({"dataset_format": bad}))
        with pytest.raises(ValueError, match="dataset_format must be a whole number"):
            load_dataset(write_dataset(tmp_path / "bad.npz", pose, split, meta=meta))


def test_load_dataset_names_a_file_that_is_not_an_npz(tmp_path: Path) -> None:
    """A .npy (np.load returns one array: a TypeError used to escape) or any other file (numpy
    then suggests allow_pickle=True) is one ValueError saying it is not a zip archive."""
    npy = tmp_path / "poses.npy"
    np.save(npy, np.zeros((4, 63), np.float32))
    text = tmp_path / "notes.npz"
    text.write_text("not a dataset")
    for path in (npy, text):
        with pytest.raises(ValueError, match="not a zip archive") as err:
            load_dataset(path)
        assert path.name in str(err.value) and "pickle" not in str(err.value)


def test_content_sha256_keeps_name_boundaries() -> None:
    """Names are content: moving a boundary between two names must change the digest."""
    import dataclasses

    import torch

    from advprior.data.dataset import PoseData

    base = PoseData(
        body_pose=torch.zeros(2, 63),
        global_orient=torch.zeros(2, 3),
        transl=torch.zeros(2, 3),
        sequence=torch.tensor([0, 1], dtype=torch.int32),
        subject=torch.tensor([0, 0], dtype=torch.int32),
        split=torch.tensor([0, 0], dtype=torch.int8),
        sequence_names=["a", "b"],
        subject_names=["s"],
        split_names=["train", "val", "test"],
        fps=30.0,
    )
    joined = dataclasses.replace(base, sequence_names=["a\nb", ""])
    moved = dataclasses.replace(base, sequence_names=["a", "b", ""])
    digests = {p.content_sha256() for p in (base, joined, moved)}
    assert len(digests) == 3
    assert dataclasses.replace(base, meta={"x": 1}).content_sha256() == base.content_sha256()


def test_split_from_an_older_file_keeps_sequences_whose_subject_was_rekeyed(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # AIST++-named files used to be keyed by their folder (`dance:aist`, one subject); they are
    # keyed by dancer (`aist:d01`...) since AIST++ support. Rebuilt with --split-from the older
    # file, each dancer must keep the split its sequences had there, not be split afresh (which
    # put held-out poses into training).
    src = tmp_path / "mocap" / "dance" / "aist"
    src.mkdir(parents=True)
    for d in range(1, 6):
        local, pelvis = random_pose(40, seed=d)
        write_bvh(src / f"gBR_sBM_cAll_d{d:02d}_mBR0_ch01.bvh", "motionbuilder", local, pelvis)
    local, pelvis = random_pose(20, seed=7)  # dancer 01 again, 10 frames at 30 fps
    write_bvh(src / "gBR_sBM_cAll_d01_mBR1_ch02.bvh", "motionbuilder", local, pelvis)
    local, pelvis = random_pose(400, seed=9)
    (tmp_path / "mocap" / "lab" / "bob").mkdir(parents=True)
    write_bvh(tmp_path / "mocap" / "lab" / "bob" / "walk.bvh", "motionbuilder", local, pelvis)
    new = tmp_path / "new.npz"
    build_dataset(tmp_path / "mocap", new)
    # the same file as an older advprior wrote it: the dancers' folder one subject, in test
    with np.load(new) as f:
        arrays = {k: f[k] for k in f.files}
    dancers = [k for k, s in enumerate(arrays["subject_names"]) if s.startswith("aist:")]
    old_rows = np.isin(arrays["subject"], dancers)
    names = ["dance:aist", "lab:bob"]
    arrays["subject"] = np.where(old_rows, 0, 1).astype(np.int32)
    arrays["subject_names"] = np.array(names)
    arrays["split"] = np.where(old_rows, 2, 0).astype(np.int8)
    # ... but dancer 01's second take in train (another folder then, say): her 20 test frames
    # outweigh its 10 and keep her in test, with a note
    second = list(arrays["sequence_names"]).index("dance/aist/gBR_sBM_cAll_d01_mBR1_ch02.bvh")
    arrays["split"][arrays["sequence"] == second] = 0
    old = tmp_path / "old.npz"
    np.savez(old, **arrays)
    from advprior.cli import main

    capsys.readouterr()
    args = [str(tmp_path / "mocap"), "--out", str(tmp_path / "again.npz"), "--split-from", str(old)]
    assert main(["data", "build", *args]) == 0
    printed = capsys.readouterr()
    again = load_dataset(tmp_path / "again.npz")
    subjects = again.meta["subject_split"]
    assert {s: sp for s, sp in subjects.items() if s.startswith("aist:")} == {
        f"aist:d{d:02d}": "test" for d in range(1, 6)
    }
    assert subjects["lab:bob"] == "train"
    assert printed.err.splitlines()[:1] == [
        f"note: {old}: subject aist:d01: its sequences were on several sides of the previous "
        "split (frames: train 10, test 20); all of it goes to test"
    ]
    # the answer counts notes, and no file was imported with one
    assert ", 1 note; content sha256 " in printed.out and "imported with" not in printed.out
    np.testing.assert_array_equal(again.split.numpy(), np.where(old_rows, 2, 0))


def test_folders_of_one_person_each_say_how_to_get_a_split(tmp_path, capsys) -> None:
    """Eight people, one folder each, built from their parent folder: every folder is its own
    source and so its own subject group, a group of one person always trains, and val and
    test came out empty with the advice to "add people". The note names --no-stratify."""
    from advprior import cli

    rng = np.random.default_rng(0)
    for person in range(8):
        folder = tmp_path / "lab" / f"person{person}"
        folder.mkdir(parents=True)
        t = np.arange(90)[:, None] / 60.0
        poses = rng.normal(0, 0.15, (1, 156)) + 0.2 * np.sin(2 * np.pi * t * rng.uniform(0.3, 1.5))
        poses[:, :3] = [np.pi / 2, 0, 0]  # upright in AMASS' z-up world
        trans = np.zeros((90, 3))
        trans[:, 2] = 0.9
        np.savez(folder / "take_poses.npz", poses=poses, trans=trans, mocap_framerate=60.0)
    out = tmp_path / "d.npz"
    assert cli.main(["data", "build", str(tmp_path / "lab"), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "split 'val' is empty" in err and "--no-stratify splits all 8 subjects" in err, err
    argv = ["data", "build", str(tmp_path / "lab"), "--out", str(out), "--no-stratify"]
    assert cli.main(argv) == 0
    assert "is empty" not in capsys.readouterr().err
    split = np.load(out)["split"]
    assert {0, 1, 2} <= set(split.tolist())
