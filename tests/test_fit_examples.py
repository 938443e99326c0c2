"""The fitting benchmark views and the examples, run end to end on tiny inputs."""

from __future__ import annotations

import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from advprior.body import forward_kinematics
from advprior.eval.benchmark import BENCH_CAMERA, joint_errors_mm, make_views
from advprior.prior import PosePrior

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A (tame) PosePrior checkpoint directory standing in for the shipped weights."""
    torch.manual_seed(0)
    prior = PosePrior(latent="sphere")
    with torch.no_grad():
        prior.generator[-1].weight.mul_(4.0)
        prior.generator[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(21))
    path = tmp_path_factory.mktemp("ckpt") / "gan"
    prior.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A tiny dataset file in the layout of docs/design.md (poses with a tilt, three splits)."""
    rng = np.random.default_rng(0)
    n = 60
    split = np.repeat(np.array([0, 1, 2], dtype=np.int8), n // 3)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    np.savez(
        path,
        body_pose=(0.2 * rng.standard_normal((n, 63))).astype(np.float32),
        global_orient=(0.1 * rng.standard_normal((n, 3))).astype(np.float32),
        transl=np.zeros((n, 3), np.float32),
        sequence=np.zeros(n, np.int32),
        subject=split.astype(np.int32),
        split=split,
        sequence_names=np.array(["s"]),
        subject_names=np.array(["a", "b", "c"]),
        split_names=np.array(["train", "val", "test"]),
        fps=np.float32(30.0),
        meta=np.array(json.dumps({"test": True})),
    )
    return path


def test_views_project_the_true_joints() -> None:
    pose = 0.2 * torch.randn(5, 63, generator=torch.Generator().manual_seed(0))
    views = make_views(pose, torch.zeros(5, 3), seed=1, noise_px=0.0, drop=0.0)
    assert torch.allclose(BENCH_CAMERA.project(views.joints), views.keypoints, atol=1e-3)
    fk = forward_kinematics(views.global_orient, pose, transl=views.transl)
    assert torch.allclose(fk, views.joints, atol=1e-5)
    depth = views.joints[:, 0, 2]
    assert bool(((depth > 2.9) & (depth < 6.1)).all())
    # Upright: the head is above the pelvis in the image (y down).
    assert bool((views.keypoints[:, 15, 1] < views.keypoints[:, 0, 1]).all())
    noisy = make_views(pose, torch.zeros(5, 3), seed=1, noise_px=5.0, drop=0.5)
    assert 0.3 < float(1 - noisy.confidence.mean()) < 0.7
    assert float((noisy.keypoints - views.keypoints).std()) == pytest.approx(5.0, rel=0.25)


# Where a detector's keypoint sits, written out independently of advprior.fitting.keypoints:
# an SMPL joint name, or ("surface", the stand-in's landmark vertex name).
_LIMBS = {
    side + part: f"{'left' if side == 'L' else 'right'}_{joint}"
    for side in ("L", "R")
    for part, joint in (
        ("Shoulder", "shoulder"),
        ("Elbow", "elbow"),
        ("Wrist", "wrist"),
        ("Hip", "hip"),
        ("Knee", "knee"),
        ("Ankle", "ankle"),
    )
}
DETECTOR_POINTS = {
    "coco17": {
        **{name: name for name in _LIMBS.values()},
        "nose": ("surface", "nose"),
        "left_eye": ("surface", "leye"),
        "right_eye": ("surface", "reye"),
        "left_ear": ("surface", "lear"),
        "right_ear": ("surface", "rear"),
    },
    "openpose25": {
        **_LIMBS,
        "Nose": ("surface", "nose"),
        "Neck": "neck",
        "MidHip": "pelvis",
        "REye": ("surface", "reye"),
        "LEye": ("surface", "leye"),
        "REar": ("surface", "rear"),
        "LEar": ("surface", "lear"),
        **{
            f"{s}{t}": ("surface", f"{s}{t}")
            for s in ("L", "R")
            for t in ("BigToe", "SmallToe", "Heel")
        },
    },
}


@pytest.mark.parametrize("fmt", ["coco17", "openpose25"])
def test_detector_views_are_the_fitters_keypoints(fmt: str) -> None:
    from advprior.body import load_body_model
    from advprior.fitting.keypoints import get_format
    from advprior.fitting.smplify import final_objective
    from advprior.skeleton import JOINT_NAMES

    body = load_body_model()
    pose = 0.3 * torch.randn(4, 63, generator=torch.Generator().manual_seed(2))
    orient = 0.2 * torch.randn(4, 3, generator=torch.Generator().manual_seed(3))
    views = make_views(pose, orient, seed=4, noise_px=0.0, drop=0.0, keypoints=fmt)
    names = get_format(fmt).names
    assert views.keypoint_format == fmt
    assert views.keypoints.shape == (4, len(names), 2) and views.confidence.shape == (4, len(names))
    assert views.joints.shape == (4, 24, 3)
    # 1. Each keypoint is the projection of its joint (forward kinematics) or landmark vertex
    # (the posed mesh), per the table above. ~500 px coordinates in float32: 1e-3 px is far
    # above rounding (6e-5 px) and far below any misplaced point (centimetres = pixels here).
    out = body(global_orient=views.global_orient, body_pose=pose, transl=views.transl)
    selector = body.layer.vertex_joint_selector.extra_joints_idxs
    expected = []
    for name in names:
        source = DETECTOR_POINTS[fmt][name]
        if isinstance(source, tuple):
            vertex = int(selector[body.extra_joint_names.index(source[1])])
            expected.append(out.vertices[:, vertex])
        else:
            expected.append(views.joints[:, JOINT_NAMES.index(source)])
    expected = BENCH_CAMERA.project(torch.stack(expected, 1))
    assert torch.allclose(views.keypoints, expected, atol=1e-3)
    # 2. The fitter's own objective sees zero reprojection error at the truth (no prior: the
    # objective is the data term plus |pose|^2).
    fn, _, nb = final_objective(
        views.keypoints, views.confidence, BENCH_CAMERA, prior=None, keypoint_format=fmt
    )
    x_true = torch.cat([views.global_orient, views.transl, torch.zeros(4, nb), pose], -1)
    data_term = fn(x_true) - (pose * pose).sum(-1)
    assert float(data_term.abs().max()) < 1e-3  # px^2 over all keypoints; rounding ~1e-6
    # 3. No spine or collar joint is observed (nor head, hands, feet: no keypoint sits there).
    never = [
        i
        for i, n in enumerate(JOINT_NAMES)
        if n.startswith("spine") or n.endswith(("collar", "hand", "foot")) or n == "head"
    ]
    assert len(never) == 10
    assert not views.observed_joints[:, never].any()
    limbs = [JOINT_NAMES.index(n) for n in _LIMBS.values()]
    assert views.observed_joints[:, limbs].all()  # drop 0: every limb joint seen


def test_detector_views_keep_noise_drop_and_two_keypoints() -> None:
    pose = 0.2 * torch.randn(64, 63, generator=torch.Generator().manual_seed(0))
    clean = make_views(pose, torch.zeros(64, 3), seed=1, noise_px=0.0, drop=0.0, keypoints="coco17")
    noisy = make_views(pose, torch.zeros(64, 3), seed=1, noise_px=5.0, drop=0.2, keypoints="coco17")
    assert torch.equal(noisy.joints, clean.joints)
    assert float((noisy.keypoints - clean.keypoints).std()) == pytest.approx(5.0, rel=0.1)
    assert 0.12 < float(1 - noisy.confidence.mean()) < 0.28
    sparse = make_views(pose, torch.zeros(64, 3), seed=1, drop=0.99, keypoints="openpose25")
    assert bool((sparse.confidence.sum(-1) >= 2).all())
    # smpl24 stays today's benchmark: the joints themselves, in SMPL order.
    smpl = make_views(pose, torch.zeros(64, 3), seed=1, noise_px=0.0, drop=0.0)
    assert torch.equal(smpl.keypoints, BENCH_CAMERA.project(smpl.joints))
    assert torch.equal(smpl.observed_joints, smpl.confidence > 0)
    with pytest.raises(ValueError, match="keypoint_format"):
        make_views(pose, torch.zeros(64, 3), keypoints="body17")


def test_tiny_fit_and_diagnosis_on_coco17_keypoints(checkpoint) -> None:
    from advprior.eval.benchmark import diagnose_fitting, run_fitting

    pose = 0.2 * torch.randn(3, 63, generator=torch.Generator().manual_seed(5))
    views = make_views(pose, torch.zeros(3, 3), seed=2, keypoints="coco17")
    r = run_fitting(views, str(checkpoint), iterations=3)
    assert r["frames"] == 3
    for key in ("mpjpe_mm", "p_mpjpe_mm", "reprojection_px"):
        assert math.isfinite(r[key]) and r[key] > 0, (key, r)
    d = diagnose_fitting(views, None, refine_iterations=5, iterations=3)
    fit = d["p_mpjpe_mm"]["fit"]
    # Unobserved joints include the spine, never seen in coco17: both groups exist.
    assert math.isfinite(fit["observed"]) and math.isfinite(fit["dropped"])


def test_keypoints_flag_is_wired(checkpoint, dataset, tmp_path) -> None:
    fit = load_example("smplify_fit")
    args = fit.parse_args(["--keypoints", "openpose25", "--docs", "a.md", "b.md"])
    assert args.keypoints == "openpose25" and args.docs == [Path("a.md"), Path("b.md")]
    assert fit.parse_args([]).keypoints == "smpl24"
    with pytest.raises(SystemExit):
        fit.parse_args(["--keypoints", "body17"])
    spec = importlib.util.spec_from_file_location(
        "diagnose_fitting", EXAMPLES.parent / "benchmarks" / "diagnose_fitting.py"
    )
    diagnose = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diagnose)
    assert diagnose.parse_args(["--keypoints", "coco17"]).keypoints == "coco17"
    assert diagnose.parse_args([]).keypoints == "smpl24"
    # One generated block per keypoint set: a coco17 run adds its own and keeps smpl24's.
    docs = [tmp_path / "fitting.md", tmp_path / "results.md"]
    smpl_block = "<!-- BEGIN GENERATED: examples/smplify_fit.py -->\nsmpl\n<!-- END GENERATED -->"
    for path in docs:
        path.write_text(f"# Page\n\n{smpl_block}\n\nkept\n")
    argv = ["--data", str(dataset), "--frames", "3", "--priors", "none", "--iterations", "2"]
    argv += ["--inversion-poses", "0", "--timing-repeats", "1", "--keypoints", "coco17"]
    assert fit.main([*argv, "--write-docs", "--docs", *map(str, docs)]) == 0
    for path in docs:
        text = path.read_text()
        assert smpl_block in text and "kept" in text
        coco = text.split("<!-- BEGIN GENERATED: examples/smplify_fit.py --keypoints coco17 -->")
        assert len(coco) == 2 and "COCO-17" in coco[1] and "| none |" in coco[1]


def test_joint_errors_ignore_position_and_pose_alignment() -> None:
    joints = torch.randn(3, 24, 3)
    rot = torch.tensor(
        [[math.cos(0.5), 0.0, math.sin(0.5)], [0.0, 1.0, 0.0], [-math.sin(0.5), 0.0, math.cos(0.5)]]
    )
    moved = joints @ rot.T * 1.1 + 2.0
    err = joint_errors_mm(moved, joints)
    assert float(err["p_mpjpe"].max()) < 1e-3
    assert float(joint_errors_mm(joints + 1.0, joints)["mpjpe"].max()) < 1e-3


def test_quickstart_and_replace_vposer_run(checkpoint, capsys) -> None:
    assert load_example("quickstart").main(["--prior", str(checkpoint)]) == 0
    assert "fit: mean 3D joint error" in capsys.readouterr().out
    for api in ("v1", "v2", "native"):
        code = load_example("replace_vposer").main(
            ["--prior", str(checkpoint), "--api", api, "--steps", "20"]
        )
        assert code == 0
        out = capsys.readouterr().out
        start, end = (float(x) for x in re.findall(r"mean joint error ([0-9.]+) mm", out))
        assert end < start, out


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.py")))
def test_example_help_keeps_the_docstring_commands(name, capsys) -> None:
    """``--help`` works and shows each command line of the docstring as written (argparse's
    default formatter used to run quickstart's into the prose)."""
    module = load_example(name)
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    if "python examples/" in out:
        commands = [ln for ln in module.__doc__.splitlines() if ln.startswith("    python ")]
        assert commands and all(line in out.splitlines() for line in commands), out


def test_quickstart_runs_with_the_latent_free_gmm(capsys) -> None:
    """``--prior`` takes any alias: the GMM has ``project_pose`` (every Prior has) but no latent,
    so the latent steps are skipped rather than raising TypeError halfway through."""
    assert load_example("quickstart").main(["--prior", "gmm"]) == 0
    out = capsys.readouterr().out
    assert "fit: mean 3D joint error" in out and "project_pose" not in out


def test_smplify_fit_table(checkpoint, dataset, tmp_path, capsys) -> None:
    out = tmp_path / "numbers.json"
    docs = tmp_path / "fitting.md"
    docs.write_text(
        "# Fitting\n\n<!-- BEGIN GENERATED: examples/smplify_fit.py -->\nold\n"
        "<!-- END GENERATED -->\n\nkept\n"
    )
    code = load_example("smplify_fit").main(
        [
            "--data",
            str(dataset),
            "--frames",
            "4",
            "--priors",
            "none",
            str(checkpoint),
            f"{checkpoint}:no-pose-density",  # the same prior without a pose density
            "vae",  # has project_pose too, but its inversion is its encoder: no inversion row
            "--iterations",
            "3",
            "--inversion-poses",
            "3",
            "--encoder-steps",
            "5",
            "--json",
            str(out),
            "--timing-repeats",
            "2",
            "--write-docs",
            "--docs",
            str(docs),
        ]
    )
    assert code == 0
    written = docs.read_text()
    assert "old" not in written and written.endswith("kept\n")
    assert "| none |" in written and "Inversion" in written and "PoseEncoder, 10 steps" in written
    numbers = json.loads(out.read_text())
    bare = f"{checkpoint}:no-pose-density"
    assert set(numbers["fitting"]) == {"none", str(checkpoint), bare, "vae"}
    assert not any(label.startswith(("vae", bare)) for label in numbers["inversion"])
    assert numbers["fitting"]["none"]["frames"] == 4
    text = capsys.readouterr().out
    assert "| prior | P-MPJPE mm" in text


def test_regressor_runs(checkpoint, dataset, tmp_path, capsys) -> None:
    docs = tmp_path / "fitting.md"
    code = load_example("regressor").main(
        [
            "--data",
            str(dataset),
            "--prior",
            str(checkpoint),
            "--steps",
            "3",
            "--batch",
            "8",
            "--test-frames",
            "6",
            "--write-docs",
            "--docs",
            str(docs),
        ]
    )
    assert code == 0
    assert "| LatentHead |" in docs.read_text()
    out = capsys.readouterr().out
    assert "LatentHead" in out and "direct 63-d" in out


def test_examples_need_the_dataset(tmp_path, capsys) -> None:
    missing = tmp_path / "none.npz"
    assert load_example("smplify_fit").main(["--data", str(missing)]) == 2
    assert "advprior data build" in capsys.readouterr().err


def test_smplify_fit_json_lands_in_a_new_folder_or_fails_before_fitting(
    dataset, tmp_path, capsys
) -> None:
    """--json into a folder that does not exist yet is created (it used to crash at the very
    end of the run, the numbers lost); a --json that cannot be written stops before any fit."""
    smplify_fit = load_example("smplify_fit")
    common = ["--data", str(dataset), "--frames", "2", "--priors", "none", "--iterations", "2"]
    common += ["--inversion-poses", "0", "--timing-repeats", "1"]
    out = tmp_path / "new" / "deeper" / "numbers.json"
    assert smplify_fit.main([*common, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["fitting"]["none"]["frames"] == 2
    assert [p.name for p in out.parent.iterdir()] == ["numbers.json"]  # no temporary left
    capsys.readouterr()
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert smplify_fit.main([*common, "--json", str(folder)]) == 2
    captured = capsys.readouterr()
    assert "--json" in captured.err and str(folder) in captured.err
    assert "P-MPJPE" not in captured.out  # nothing was fitted


@pytest.mark.parametrize("name", ["smplify_fit", "regressor"])
def test_write_docs_into_a_folder_fails_before_the_run(name, dataset, tmp_path, capsys) -> None:
    """``--docs docs`` (the folder, not a page) used to fail only after the whole run."""
    args = ["--data", str(dataset), "--write-docs", "--docs", str(tmp_path)]
    assert load_example(name).main(args) == 2
    captured = capsys.readouterr()
    assert "--docs" in captured.err and "it is a folder" in captured.err
    assert "MPJPE" not in captured.out  # nothing was fitted or trained
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["score_poses", "video_fit"])
def test_examples_name_the_build_command_for_a_missing_dataset(name, tmp_path, capsys) -> None:
    missing = tmp_path / "mocap30.npz"
    with pytest.raises(SystemExit) as exit_info:
        load_example(name).main(["--prior", "gmm", "--data", str(missing)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"no such dataset file: {missing}" in err and "advprior data build" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--frames", "2"], "--frames must be at least 3"),
        # pillow picks the format by the suffix and has no video writer: said before the fit
        (["--out", "clip.mp4"], "name an animation file, e.g. video_fit.gif"),
        (["--out", "clip"], "name an animation file, e.g. video_fit.gif"),
    ],
)
def test_video_fit_usage_errors_come_before_the_fit(args, message, tmp_path, capsys) -> None:
    args = [str(tmp_path / a) if a.startswith("clip") else a for a in args]
    with pytest.raises(SystemExit) as exit_info:
        load_example("video_fit").main(["--prior", "gmm", "--frames", "5", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_video_fit_interrupted_drawing_keeps_the_previous_picture(tmp_path, monkeypatch) -> None:
    """matplotlib's writer saves the frames it has when the drawing stops (Ctrl-C, an error):
    the previous picture at --out must survive that, and no partial file may be left."""
    from matplotlib.figure import Figure

    out = tmp_path / "clip.gif"
    out.write_bytes(b"the previous picture")
    real_savefig = Figure.savefig
    calls = []

    def savefig(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # PillowWriter grabs each frame with savefig: stop at the third
            raise KeyboardInterrupt
        return real_savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    args = ["--prior", "gmm", "--frames", "5", "--iterations", "2", "--out", str(out)]
    with pytest.raises(KeyboardInterrupt):
        load_example("video_fit").main(args)
    assert len(calls) == 3
    assert out.read_bytes() == b"the previous picture"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.gif"]


def test_score_poses_example() -> None:
    out = load_example("score_poses").main(["--prior", "gmm", "--poses", "40"])
    assert 0.0 <= out["auc past limits"] <= 1.0 and 0.0 <= out["flagged real"] <= 1.0


def test_video_fit_example(tmp_path: Path) -> None:
    out = load_example("video_fit").main(
        [
            "--prior",
            "gmm",
            "--frames",
            "5",
            "--iterations",
            "3",
            "--out",
            str(tmp_path / "clip.gif"),
        ]
    )
    assert out.exists() and out.stat().st_size > 0


def test_smplify_fit_goal_lines_carry_a_paired_interval() -> None:
    """The goal lines compare priors on the same frames: a constant per-frame ratio has an
    interval of zero width at that ratio; a difference carried by one frame has a wide one."""
    goal_lines = load_example("smplify_fit").goal_lines

    def row(per_frame: list[float], seconds: float = 0.1) -> dict:
        return {
            "p_mpjpe_mm": sum(per_frame) / len(per_frame),
            "p_mpjpe_per_frame_mm": per_frame,
            "seconds_per_frame": seconds,
        }

    vae = [50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
    lines = goal_lines({"gan-s": row([0.8 * v for v in vae]), "vae": row(vae)})
    assert lines[0].startswith("- GAN-S P-MPJPE vs VAE: 60.0 vs 75.0 mm, 20.0% lower")
    assert "95% interval over frames: -20.0% to -20.0%; goal: at least 10% lower; met)" in lines[0]
    assert lines[-1] == "- GAN-S time per frame vs VAE: 1.00x (goal <= 1.2x: met)"
    # the same means, but all of the gap in one frame: the interval reaches past zero
    one = [*vae[:-1], vae[-1] - 6 * 15.0]
    lines = goal_lines({"gan-s": row(one), "vae": row(vae)})
    low, high = (
        float(x.rstrip("%")) for x in lines[0].split("frames: ")[1].split(";")[0].split(" to ")
    )
    assert low < -20.0 < 0.0 <= high


def test_inversion_poses_are_a_random_part_of_the_held_out_frames() -> None:
    """The inversion rows of examples/smplify_fit.py use held-out poses drawn at random, not the
    split's first frames (the rest of a full sorted permutation is the file's order)."""
    fit = load_example("smplify_fit")
    fitted = fit.select(1000, 50, seed=0)
    rest = fit.select(1000, 100, seed=1, exclude=fitted)
    assert len(rest) == 100 and not bool(torch.isin(rest, fitted).any())
    assert bool((rest.diff() > 0).all())
    # spread over the whole split: ~half above the middle frame (the first 100 have none)
    assert 30 <= int((rest >= 500).sum()) <= 70
    assert torch.equal(rest, fit.select(1000, 100, seed=1, exclude=fitted))
    assert torch.equal(fit.select(10, 20, seed=3), torch.arange(10))
