"""Prior.score and the prior tasks (advprior.eval.tasks): the corruptions, the ROC AUC, the
score of every shipped prior and of priors defined only here, and ``advprior eval --tasks
--quick`` end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from advprior.cli import main
from advprior.eval import tasks
from advprior.hub import load_pretrained
from advprior.interface import Prior, convert_rotmat
from advprior.latent import LatentSpace
from advprior.rotations import axis_angle_to_rotmat, geodesic_distance


class TinySpherePrior(nn.Module, Prior):
    """Poses ``0.3 W z`` for ``z`` on the unit sphere of R^3 (W fixed, seeded)."""

    model_type = "test-tiny-sphere"

    def __init__(self) -> None:
        super().__init__()
        weight = torch.randn(63, 3, generator=torch.Generator().manual_seed(3))
        self.register_buffer("weight", 0.3 * weight)
        self._space = LatentSpace("sphere", 3)

    @property
    def latent_space(self) -> LatentSpace:
        return self._space

    def decode(self, z, output="axis_angle", body="smplx"):
        rot = axis_angle_to_rotmat((z @ self.weight.T).unflatten(-1, (21, 3)))
        return convert_rotmat(rot, output)


class IsoGaussian(Prior):
    """N(0, 0.3^2 I) on poses; energy = squared Mahalanobis distance."""

    model_type = "test-iso-gaussian"

    def sample(self, n, *, generator=None):
        return 0.3 * torch.randn(n, 63, generator=generator)

    def energy(self, body_pose, z=None):
        return (body_pose**2).sum(-1) / 0.09


def test_roc_auc_counts_pairs_with_half_ties() -> None:
    gen = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 5, (40,), generator=gen).float()
    neg = torch.randint(0, 5, (30,), generator=gen).float() - 1
    pairs = (pos[:, None] > neg[None]).float() + 0.5 * (pos[:, None] == neg[None]).float()
    assert tasks.roc_auc(pos, neg) == pytest.approx(float(pairs.mean()), abs=1e-12)
    assert tasks.roc_auc(torch.ones(3), torch.zeros(2)) == 1.0
    # +-inf rank as the extremes they are; NaN used to sort above everything (AUC 1.0)
    assert tasks.roc_auc(torch.tensor([-math.inf, 1.0]), torch.zeros(2)) == 0.5
    with pytest.raises(ValueError, match="positive contains NaN"):
        tasks.roc_auc(torch.tensor([math.nan, 1.0]), torch.zeros(3))
    with pytest.raises(ValueError, match="negative must have shape"):
        tasks.roc_auc(torch.ones(3), torch.zeros(0))


def test_acceleration_error_matches_numpy_and_checks_shapes() -> None:
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(2, 9, 24, 3)), rng.normal(size=(2, 9, 24, 3))

    def accel(x: np.ndarray) -> np.ndarray:
        return x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]

    want = 1000 * np.linalg.norm(accel(pred) - accel(target), axis=-1).mean()
    got = tasks.acceleration_error(torch.tensor(pred), torch.tensor(target))
    assert got == pytest.approx(want, rel=1e-12)
    # a constant velocity has no acceleration
    line = torch.arange(5.0)[:, None, None] * torch.ones(5, 24, 3)
    assert tasks.acceleration_error(line, torch.zeros(5, 24, 3)) == 0.0
    with pytest.raises(ValueError, match="T >= 3"):  # used to return NaN
        tasks.acceleration_error(torch.zeros(2, 24, 3), torch.zeros(2, 24, 3))
    with pytest.raises(ValueError, match="same shape"):
        tasks.acceleration_error(torch.zeros(4, 24, 3), torch.zeros(5, 24, 3))


def test_corruptions() -> None:
    gen = torch.Generator().manual_seed(0)
    zero = torch.zeros(4000, 63)
    # exp of N(0, s^2 I_3) turns by |eps|: E angle^2 = 3 s^2 (standard error ~ sqrt(2/3)/sqrt(N)
    # relative for the chi-square with 3 degrees of freedom, about 0.3% over 84,000 joints).
    noisy = tasks.rotation_noise(zero, 0.1, gen)
    angle = geodesic_distance(
        axis_angle_to_rotmat(noisy.unflatten(-1, (21, 3))), torch.eye(3).expand(4000, 21, 3, 3)
    )
    assert float((angle**2).mean()) == pytest.approx(0.03, rel=0.02)
    bent = tasks.past_limits(torch.zeros(400, 63), gen)
    joints = tasks.pose_joints(bent)
    changed = (bent != 0).any(-1)
    assert bool(changed.all())
    for name, (joint, _, _) in tasks.HYPEREXTENSION.items():
        child = {4: 7, 5: 8, 18: 20, 19: 21}[joint]
        rows = bent.unflatten(-1, (21, 3))[:, joint - 1].norm(dim=-1) > 0
        assert bool(rows.any()), name
        forward = joints[rows, child, 2] - joints[rows, joint, 2]
        # Knees flex backwards (-z), elbows forwards (+z): a bend past straight goes the other way.
        if "knee" in name:
            assert bool((forward > 0).all()), name
        else:
            assert bool((forward < 0).all()), name
        deg = torch.rad2deg(bent.unflatten(-1, (21, 3))[rows, joint - 1].norm(dim=-1))
        lo, hi = tasks.HYPEREXTENSION_DEGREES
        assert bool(((deg >= lo - 1e-3) & (deg <= hi + 1e-3)).all())


@pytest.mark.parametrize("name", ["gan-s", "vae", "gmm"])
def test_shipped_priors_score_real_poses_above_noisy_ones(name) -> None:
    prior = load_pretrained(name).eval()
    gen = torch.Generator().manual_seed(0)
    real = prior.sample(12, generator=gen)
    noisy = tasks.rotation_noise(real, 0.5, gen)
    opts = {"steps": 20, "bank_size": 512}
    s_real, s_noisy = prior.score(real, **opts), prior.score(noisy, **opts)
    assert s_real.shape == (12,) and bool(torch.isfinite(s_real).all())
    assert tasks.roc_auc(s_real, s_noisy) > 0.9
    assert prior.score(real[:6].view(2, 3, 63), **opts).shape == (2, 3)
    with pytest.raises(ValueError, match="body_pose"):
        prior.score(real[:, :60])


def test_score_of_priors_defined_here() -> None:
    latent = TinySpherePrior().eval()
    on = latent.sample(4, generator=torch.Generator().manual_seed(1))
    off = on + 0.3
    s_on = latent.score(on, steps=30, bank_size=256)
    # On the manifold the distance is the inversion's residual: near 0 (float32 rounding of the
    # optimum, ~1e-6 of a residual scale ~1).
    assert float(s_on.abs().max()) < 1e-3
    assert bool((latent.score(off, steps=30, bank_size=256) < s_on).all())
    gauss = IsoGaussian()
    x = torch.randn(5, 63)
    torch.testing.assert_close(gauss.score(x), -gauss.energy(x))


def test_fit_joints_recovers_a_prior_pose() -> None:
    prior = TinySpherePrior().eval()
    pose = prior.sample(2, generator=torch.Generator().manual_seed(4))
    target = tasks.pose_joints(pose)[:, None]
    fitted = tasks.fit_joints(prior, target, iterations=60)
    err = (tasks.pose_joints(fitted[:, 0]) - target[:, 0]).norm(dim=-1).max()
    assert float(err) < 5e-3  # metres; the 3-d sphere can be fitted exactly


def test_eval_tasks_quick(tmp_path, write_dataset) -> None:
    rng = np.random.default_rng(0)
    n = 90
    data = write_dataset(
        tmp_path / "tiny.npz",
        0.2 * rng.standard_normal((n, 63)),
        np.repeat([0, 1, 2], n // 3),
        sequence=np.repeat(np.arange(3), n // 3).astype(np.int32),
    )
    out = tmp_path / "report"
    rc = main(
        [
            "eval",
            "--tasks",
            "--quick",
            "--models",
            "vae",
            "gmm",
            "--data",
            str(data),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    saved = json.loads((out / "tasks.json").read_text())
    for label in ("vae", "gmm"):
        auc = saved["plausibility"][label]["auc"]
        assert set(auc) == {"noise 0.1 rad", "noise 0.3 rad", "noise 0.5 rad", "past limits"}
        assert all(0.0 <= v <= 1.0 for v in auc.values())
        comp = saved["partial-body completion (mm on masked joints)"][label]
        assert set(comp) == set(tasks.COMPLETION_MASKS)
        # Best of 3 is never worse than its first hypothesis.
        assert all(v["K=3"] <= v["K=1"] + 1e-9 for v in comp.values())
        assert math.isfinite(saved["motion denoising (4 cm)"][label]["mm"])
    report = (tmp_path / "report.md").read_text()
    assert "#### plausibility" in report and "| gmm |" in report
    # what a rerun needs beside the seed: the code's versions and the weights evaluated
    from advprior import __version__
    from advprior.hub import read_manifest

    assert saved["settings"]["seed"] == 0 and saved["software"]["advprior"] == __version__
    shipped = read_manifest()
    assert saved["weights_sha256"] == {k: shipped[k]["sha256"] for k in ("vae", "gmm")}
    assert "software" not in report and "weights_sha256" not in report


def test_tasks_run_a_prior_defined_here() -> None:
    from advprior.data.dataset import PoseData

    gen = torch.Generator().manual_seed(0)
    poses = 0.2 * torch.randn(40, 63, generator=gen)
    zeros = torch.zeros(40, dtype=torch.int32)
    data = PoseData(
        body_pose=poses,
        global_orient=torch.zeros(40, 3),
        transl=torch.zeros(40, 3),
        sequence=zeros,
        subject=zeros,
        split=zeros.to(torch.int8),
        sequence_names=["s"],
        subject_names=["a"],
        split_names=["train", "val", "test"],
        fps=30.0,
    )
    res = tasks.run_tasks(
        {"tiny": TinySpherePrior().eval(), "gauss": IsoGaussian()}, data, data, quick=True
    )
    assert set(res["plausibility"]) == {"tiny", "gauss"}
    assert "motion denoising (4 cm)" in res


def test_the_protocol_report_keeps_other_generated_blocks(tmp_path) -> None:
    from advprior.eval.benchmark import write_generated_block
    from advprior.eval.runner import _other_generated_blocks

    report = tmp_path / "results.md"
    assert _other_generated_blocks(report) == ""
    report.write_text("# protocol tables\n")
    write_generated_block(report, "advprior eval --tasks", "## tasks\n| a |")
    write_generated_block(report, "bench_tasks sequence", "## sequence\n| b |")
    kept = _other_generated_blocks(report)
    assert "protocol tables" not in kept
    assert kept.count("<!-- BEGIN GENERATED:") == 2 and "| a |" in kept and "| b |" in kept


def test_a_marker_quoted_in_prose_is_not_a_block(tmp_path) -> None:
    # A page that explains its markers (in backticks) must keep that prose when a block is
    # written; only whole-line markers count.
    from advprior.eval.benchmark import write_generated_block
    from advprior.eval.runner import _other_generated_blocks

    page = tmp_path / "fitting.md"
    prose = "Each set has its own block (`<!-- BEGIN GENERATED: tool --keypoints coco17 -->`)."
    page.write_text(
        f"# Fitting\n{prose}\n\n<!-- BEGIN GENERATED: tool -->\nold\n<!-- END GENERATED -->\n"
    )
    write_generated_block(page, "tool --keypoints coco17", "| coco |")
    write_generated_block(page, "tool", "| smpl |")
    text = page.read_text()
    assert prose in text and "| smpl |" in text and "old" not in text
    assert text.index("| smpl |") < text.index("| coco |")  # appended, not put in the prose
    kept = _other_generated_blocks(page)
    assert prose not in kept and kept.count("<!-- BEGIN GENERATED:") == 2


def test_contiguous_clips_with_a_stride_takes_later_clips_of_each_sequence() -> None:
    # stride was accepted and ignored: a caller asking for more clips than sequences got one
    # per sequence, from their first frames only.
    sequence = torch.tensor([0] * 10 + [1] * 7 + [2] * 3)  # sequence 2 is shorter than a clip
    clips = tasks.contiguous_clips(sequence, 4, 10, stride=3)
    starts = [int(c[0]) for c in clips]
    # one per sequence first, then round by round: 0, 3, 6 into sequence 0 and 0, 3 into 1
    assert starts == [0, 10, 3, 13, 6]
    assert all(torch.equal(c, torch.arange(int(c[0]), int(c[0]) + 4)) for c in clips)
    assert [int(c[0]) for c in tasks.contiguous_clips(sequence, 4, 3, stride=3)] == [0, 10, 3]
    # without a stride, one clip per sequence at most, as before
    assert [int(c[0]) for c in tasks.contiguous_clips(sequence, 4, 10)] == [0, 10]
    with pytest.raises(ValueError, match="stride"):
        tasks.contiguous_clips(sequence, 4, 10, stride=0)
