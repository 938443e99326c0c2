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
    assert set(numbers["fitting"]) == {"none", str(checkpoint)}
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
