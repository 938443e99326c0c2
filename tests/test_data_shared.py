"""One real file of each mocap format: import, retarget, check bone directions, and compare two
independent paths to the same CMU trial. The clips committed in ``tests/data/mocap`` always run;
the full files of ``../shared/data/mocap`` run when it is beside the checkout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advprior.data import bone_direction_errors, load_motion
from advprior.data.quality import posed_joints
from advprior.data.rotmath import rotvec_to_matrix

FILES = {
    "cmu_asfamc/02/02_03.amc": (173, 120.0),
    "hdm05_asfamc/amc/HDM_bk_hopBothLegs1hops_020_120.amc": (56, 120.0),
    "cmu_bvh_daz_aclstm/martial/04.bvh": (1317, 120.0),
    "cmu_deepmimic_retarget_jump/02/02_03.txt": (42, 30.0),
}


# The committed clips (tests/data/SOURCES.md): the same trials, the BVH cut to 60 frames.
FIXTURE_FILES = {
    "cmu_asfamc/02/02_03.amc": (173, 120.0),
    "hdm05_asfamc/amc/HDM_bk_hopBothLegs1hops_020_120.amc": (56, 120.0),
    "cmu_bvh_daz_aclstm/martial/04_first60.bvh": (60, 120.0),
    "cmu_deepmimic_retarget_jump/02/02_03.txt": (42, 30.0),
}


@pytest.mark.parametrize("rel", sorted(FIXTURE_FILES))
def test_fixture_file_imports_and_retargets(fixture_mocap: Path, rel: str) -> None:
    _check_import(fixture_mocap / rel, *FIXTURE_FILES[rel])


def test_fixture_clips_are_small_and_attributed(fixture_mocap: Path) -> None:
    sources = (fixture_mocap.parent / "SOURCES.md").read_text(encoding="utf-8")
    assert "NSF EIA-0196217" in sources and "CC BY-SA 3.0" in sources
    for path in fixture_mocap.rglob("*.*"):
        assert path.stat().st_size < 200_000, path
        assert f"`{path.relative_to(fixture_mocap).as_posix()}`" in sources, path


@pytest.mark.parametrize("rel", sorted(FILES))
def test_shared_file_imports_and_retargets(shared_mocap: Path, rel: str) -> None:
    _check_import(shared_mocap / rel, *FILES[rel])


def _check_import(path: Path, frames: int, fps: float) -> None:
    motion = load_motion(path)
    assert motion.num_frames == frames and motion.fps == pytest.approx(fps, rel=1e-4)
    smpl = motion.to_smpl(30)
    assert smpl.num_frames == int(np.floor((frames - 1) * 30 / fps + 1e-6)) + 1
    for x in (smpl.body_pose, smpl.global_orient, smpl.transl):
        assert np.all(np.isfinite(x))
    errors = bone_direction_errors(smpl)
    assert set(errors) == {"thigh", "shin", "upper_arm", "forearm", "spine", "neck"}
    for name, deg in errors.items():
        assert deg.mean() < 5.0 and np.percentile(deg, 95) < 12.0, name
    # Plausible human poses in SMPL's frame: head above the pelvis, feet below it.
    j = posed_joints(smpl)
    assert np.median(j[:, 15, 1] - j[:, 0, 1]) > 0.3
    assert np.median(j[:, 0, 1] - j[:, [7, 8], 1].mean(1)) > 0.5


def test_salsa_fps_override(shared_mocap: Path) -> None:
    path = shared_mocap / "cmu_bvh_daz_aclstm/salsa/05.bvh"
    assert load_motion(path).fps == pytest.approx(120.0, rel=1e-4)
    motion = load_motion(path, fps=60)
    assert motion.fps == 60 and motion.to_smpl(30).num_frames == 840


def test_asf_import_agrees_with_deepmimic_retarget_of_the_same_trial(fixture_mocap: Path) -> None:
    """CMU 02_03 reached two ways (our ASF/AMC reader; DeepMimic's own retarget to its
    character) gives the same pelvis-relative joints within a few centimetres."""

    def pelvis_frame(rel: str) -> np.ndarray:
        smpl = load_motion(fixture_mocap / rel).to_smpl(30)
        j = posed_joints(smpl)
        r = rotvec_to_matrix(smpl.global_orient)
        return np.einsum("tji,tkj->tki", r, j - j[:, :1])

    a = pelvis_frame("cmu_asfamc/02/02_03.amc")
    b = pelvis_frame("cmu_deepmimic_retarget_jump/02/02_03.txt")
    limbs = [4, 5, 7, 8, 12, 15, 18, 19]
    dist = [
        np.linalg.norm(a[k : k + len(b)] - b, axis=-1)[:, limbs].mean()
        for k in range(len(a) - len(b) + 1)
    ]
    assert min(dist) < 0.06


def test_one_cmu_person_is_one_subject_across_formats(shared_mocap: Path, tmp_path: Path) -> None:
    """Raw AMC and the DeepMimic retarget of CMU subject 06 are one person: one subject id, one
    split. Subject 105's AMC files have CRLF line endings and are read like the others."""
    from advprior.data import build_dataset

    links = [
        "cmu_asfamc/06/06.asf",
        "cmu_asfamc/06/06_14.amc",
        "cmu_asfamc/105/105.asf",
        "cmu_asfamc/105/105_06.amc",
        "cmu_deepmimic_retarget_jump/06/06_09.txt",
        "cmu_deepmimic_retarget_jump/humanoid3d_jumper60kg_character.txt",
    ]
    root = tmp_path / "mocap"
    for rel in links:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(shared_mocap / rel)
    assert b"\r\n" in (shared_mocap / "cmu_asfamc/105/105_06.amc").read_bytes()[:2000]
    report = build_dataset(root, tmp_path / "d.npz", fps=30)
    f = np.load(tmp_path / "d.npz", allow_pickle=False)
    subjects = list(f["subject_names"])
    assert subjects == ["cmu:06", "cmu:105"]
    assert set(report.per_source) == {"cmu_asfamc", "cmu_deepmimic_retarget_jump"}
    names = list(f["sequence_names"])
    for k, s in enumerate(subjects):
        rows = f["subject"] == k
        assert len(np.unique(f["split"][rows])) == 1
        sources = {names[i].split("/")[0] for i in np.unique(f["sequence"][rows])}
        expected = (
            {"cmu_asfamc", "cmu_deepmimic_retarget_jump"} if s == "cmu:06" else {"cmu_asfamc"}
        )
        assert sources == expected, s
    # 105_06: 120 fps in the file; every source frame read (none lost to the CRLF endings).
    motion = load_motion(shared_mocap / "cmu_asfamc/105/105_06.amc")
    text = (shared_mocap / "cmu_asfamc/105/105_06.amc").read_text()
    assert motion.num_frames == sum(1 for line in text.splitlines() if line.strip().isdigit())
    k105 = names.index("cmu_asfamc/105/105_06.amc")
    assert int((f["sequence"] == k105).sum()) == motion.to_smpl(30).num_frames


#: Content digest (``PoseData.content_sha256``) of build "v5", the data of the 0.2.0 weights
#: (docs/data.md): poses, splits and names, not the advprior version recorded in ``meta``.
V5_CONTENT_SHA256 = "8de96339eb1f651b4cf5ad12c5ea2cabb9c0912391ab92fcbbc128d1bfe70e2c"

#: A compact sketch of that build (:func:`pose_sketch`), written from a rebuild whose content
#: sha256 was V5_CONTENT_SHA256 by ``write_v5_sketch`` below.
V5_SKETCH = Path(__file__).parent / "data" / "v5_sketch.npz"

# The importers compute in float64 and store float32. Another CPU's float64 kernels (numpy's
# SIMD dispatch, OpenBLAS's core type) change only float64 rounding: components that are zero
# in exact arithmetic come out as noise below 1e-16 (245,984 of v5's 6.2M values are such noise,
# and these are what moved between two kernel choices on one machine, by at most 1.4e-17), and
# a larger value can round to the neighbouring float32 (one ulp, at most 2.4e-7 below pi) with a
# chance of about 1e-8. So a rebuild elsewhere may miss the content sha256 while being the same
# data. The sketch projects each sequence's frames onto SKETCH_DIRS fixed directions (entries
# of magnitude < 5, 69 per frame); rounding then moves a projection by < 69 * 5 * 1e-16 per
# frame and < 5 * 2.4e-7 per flipped value, far below SKETCH_ATOL, while a change that moves one
# frame's value by 1e-4 rad moves a projection by about 1e-4 (0.03 over a 300-frame clip).
SKETCH_DIRS = 8
SKETCH_ATOL = 1e-5


def pose_sketch(data) -> dict[str, np.ndarray]:
    """Per sequence: frame count, and the sums over its frames of (body_pose, global_orient,
    transl) @ R and of (frame index / frames) * (...) @ R (order-sensitive), R a fixed
    (69, SKETCH_DIRS) standard normal matrix (seed 2022); plus the exact structure (names,
    split and subject per sequence)."""
    rows = np.concatenate(
        [data.body_pose.numpy(), data.global_orient.numpy(), data.transl.numpy()], 1
    ).astype(np.float64)
    r = np.random.default_rng(2022).standard_normal((rows.shape[1], SKETCH_DIRS))
    assert np.abs(r).max() < 5  # the bound SKETCH_ATOL's analysis uses
    seq = data.sequence.numpy().astype(np.int64)
    n_seq = len(data.sequence_names)
    count = np.bincount(seq, minlength=n_seq)
    order = np.argsort(seq, kind="stable")
    index = np.empty_like(seq)  # each frame's place in its sequence
    index[order] = np.arange(len(seq)) - np.searchsorted(seq[order], seq[order])
    proj = rows @ r
    plain = np.zeros((n_seq, SKETCH_DIRS))
    ordered = np.zeros((n_seq, SKETCH_DIRS))
    np.add.at(plain, seq, proj)
    np.add.at(ordered, seq, proj * (index / count[seq])[:, None])
    split = np.full(n_seq, -1, np.int64)
    subject = np.full(n_seq, -1, np.int64)
    split[seq] = data.split.numpy()
    subject[seq] = data.subject.numpy()
    return {
        "count": count,
        "plain": plain,
        "ordered": ordered,
        "split": split,
        "subject": subject,
        "sequence_names": np.array(data.sequence_names),
        "subject_names": np.array(data.subject_names),
    }


def write_v5_sketch(dataset: Path, out: Path = V5_SKETCH) -> None:
    """Write the reference sketch from a build of v5 (refuses any other content)."""
    from advprior.data import load_dataset

    data = load_dataset(dataset)
    assert data.content_sha256() == V5_CONTENT_SHA256, "not v5"
    np.savez_compressed(out, **pose_sketch(data))


def test_the_collection_rebuilds_the_published_v5_poses(shared_mocap: Path, tmp_path: Path) -> None:
    """The shipped weights' training data is reproducible: `advprior data build` with its
    defaults on the whole collection gives v5's sequences, subjects and splits exactly, and its
    poses to the float64 rounding of the CPU it runs on (bit for bit on the CPU that built v5):
    a change of an importer, of the retargeting or of the collection fails here (then the docs
    need a new build)."""
    from advprior.data import build_dataset, load_dataset

    assert V5_CONTENT_SHA256 in (Path(__file__).parents[1] / "docs" / "data.md").read_text()
    out = tmp_path / "v5.npz"
    build_dataset(shared_mocap, out)
    got = pose_sketch(load_dataset(out))
    with np.load(V5_SKETCH, allow_pickle=False) as f:
        want = {k: f[k] for k in f.files}
    assert set(got) == set(want)
    for key in ("count", "split", "subject", "sequence_names", "subject_names"):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    for key in ("plain", "ordered"):
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=SKETCH_ATOL, err_msg=key)
