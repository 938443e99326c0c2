"""The prior interface: a new prior is one class, and every consumer takes it as it is.

Two tiny priors are written here and nowhere else: a latent prior (a linear map from the unit
sphere in 4-d to body poses) and a pose-space prior (an isotropic Gaussian on poses). Each goes
through sampling (API and the ``sample`` command's drawing), inversion, the regression head,
keypoint fitting (a few iterations) and the evaluation protocol's quick path. None of those
modules knows these classes, so passing here means they use only :class:`Prior`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advprior import LatentPose
from advprior.commands.sample import _draw
from advprior.eval import run_eval
from advprior.eval.benchmark import make_views, run_fitting
from advprior.fitting import fit_keypoints
from advprior.head import LatentHead
from advprior.interface import Prior, SampleOnly, as_prior, body_joints, convert_rotmat
from advprior.latent import LatentSpace, check_latent
from advprior.rotations import axis_angle_to_rotmat
from advprior.skeleton import pad_hand_joints


class LinearSpherePrior(nn.Module, Prior):
    """Poses ``0.4 * W z`` for ``z`` on the unit sphere of R^4 (W fixed, seeded)."""

    model_type = "test-linear-sphere"

    def __init__(self) -> None:
        super().__init__()
        weight = torch.randn(63, 4, generator=torch.Generator().manual_seed(7))
        self.register_buffer("weight", 0.4 * weight / math.sqrt(4))
        self._space = LatentSpace("sphere", 4)

    @property
    def latent_space(self) -> LatentSpace:
        return self._space

    def decode(self, z: torch.Tensor, output: str = "axis_angle", body: str = "smplx"):
        # the interface's contract: decode(z) is the pose of project(z), NaN/Inf pass through
        z = self.project(check_latent(z, 4, finite=False))
        rot = axis_angle_to_rotmat((z @ self.weight.T).unflatten(-1, (21, 3)))
        return convert_rotmat(pad_hand_joints(rot, body_joints(body), rotmat=True), output)


class GaussianPosePrior(Prior):
    """N(mean, sigma^2 I) on the 63-d pose: a density on poses, no latent, not a module."""

    model_type = "test-gaussian"

    def __init__(self, sigma: float = 0.2) -> None:
        self.mean = torch.full((63,), 0.05)
        self.sigma = sigma

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean + self.sigma * torch.randn(n, 63, generator=generator)

    def energy(self, body_pose: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return ((body_pose - self.mean) ** 2).sum(-1) / self.sigma**2

    def fit_start(self) -> torch.Tensor:
        return self.mean.clone()


@pytest.fixture(scope="module")
def latent_prior() -> LinearSpherePrior:
    return LinearSpherePrior().eval()


def test_sampling_through_the_api_and_the_sample_command(latent_prior) -> None:
    gen = torch.Generator().manual_seed(0)
    assert latent_prior.sample(5, generator=gen).shape == (5, 63)
    pose, z = _draw(latent_prior, 4, 0, "smpl", False)
    assert pose.shape == (4, 69) and z.shape == (4, 4)
    assert torch.allclose(z.norm(dim=-1), torch.ones(4))
    assert bool((pose[:, 63:] == 0).all())  # SMPL's hand joints at rest
    pose, z = _draw(GaussianPosePrior(), 4, 0, "smpl", False)
    assert pose.shape == (4, 69) and z is None
    with pytest.raises(ValueError, match="no latent space"):
        _draw(GaussianPosePrior(), 4, 0, "smplx", True)


def test_inversion_latent_pose_and_head(latent_prior) -> None:
    truth = latent_prior.sample(3, generator=torch.Generator().manual_seed(1))
    z = latent_prior.invert(truth, steps=20, bank_size=256)
    assert z.shape == (3, 4)
    # The decoder is linear in z up to the rotation maps: the inversion finds the pose again.
    assert float((latent_prior.decode(z) - truth).abs().max()) < 1e-3
    assert latent_prior.project_pose(truth, steps=5, bank_size=64).shape == (3, 63)
    assert LatentPose(latent_prior, 2)().shape == (2, 63)
    head = LatentHead(8, latent_prior)
    assert head(torch.randn(6, 8)).shape == (6, 63)
    with pytest.raises(TypeError, match="latent space"):
        LatentHead(8, GaussianPosePrior())


@pytest.mark.parametrize("make", [LinearSpherePrior, GaussianPosePrior])
def test_fitting_a_few_iterations(make) -> None:
    prior = make()
    truth = prior.sample(2, generator=torch.Generator().manual_seed(2))
    views = make_views(truth, torch.zeros(2, 3), seed=0)
    result = fit_keypoints(
        views.keypoints, views.confidence, views.camera, prior=prior, iterations=4
    )
    assert result.body_pose.shape == (2, 63) and bool(torch.isfinite(result.loss).all())
    if prior.latent_space is None:
        assert result.latent is None
    else:
        assert result.latent.shape == (2, 4)
        torch.testing.assert_close(result.body_pose, prior.decode(result.latent))
    assert result.info["prior_kind"]["kind"] == prior.model_type
    scores = run_fitting(views, prior, iterations=4)
    assert math.isfinite(scores["p_mpjpe_mm"])


def test_eval_protocol_quick_path(latent_prior, tmp_path: Path, write_dataset) -> None:
    rng = np.random.default_rng(0)
    n = 90
    data = write_dataset(
        tmp_path / "tiny.npz",
        0.2 * rng.standard_normal((n, 63)),
        np.repeat([0, 1, 2], n // 3),
        sequence=np.repeat(np.arange(9), 10).astype(np.int32),
    )
    models = {"sphere4": latent_prior, "gauss": GaussianPosePrior()}
    out = tmp_path / "results"
    res = run_eval(
        models, data, out=out, quick=True, n_samples=200, n_pairs=2, fit_frames=2, progress=False
    )
    saved = json.loads((out / "results.json").read_text())
    for label, prior in models.items():
        entry = saved["models"][label]
        assert entry["model_type"] == prior.model_type
        assert entry["recall_precision_mm"]["joints"]["recall_mean"] > 0
        assert math.isfinite(res["fitting"][label]["p_mpjpe_mm"])
    assert "slerp in latent space" in res["smoothness"]["sphere4"]["method"]
    assert "excluded" in res["smoothness"]["gauss"]


def test_as_prior_wraps_objects_that_can_only_be_sampled() -> None:
    class Sampler:
        def sample(self, n, *, generator=None):
            return torch.zeros(n, 63)

    wrapped = as_prior(Sampler())
    assert isinstance(wrapped, SampleOnly) and wrapped.latent_space is None
    assert not wrapped.fittable and wrapped.sample(2).shape == (2, 63)
    assert wrapped.model_type == "sampler"
    prior = GaussianPosePrior()
    assert as_prior(prior) is prior
    with pytest.raises(TypeError, match="sample"):
        as_prior(object())
    with pytest.raises(TypeError, match="no latent space"):
        prior.decode(torch.zeros(1, 4))
    with pytest.raises(NotImplementedError, match="energy"):
        Prior().energy(torch.zeros(1, 63))


# --- the shipped priors take the same inputs ---------------------------------------------------


@pytest.mark.parametrize("alias", ["gan-s", "vae", "gmm"])
def test_shipped_priors_take_smpl_poses_and_float64_data(alias: str) -> None:
    """Swapping one shipped prior for another never breaks code that worked: SMPL's 69-d
    ``body_pose`` and float64 poses are taken by every prior's pose-taking methods."""
    from advprior.hub import load_pretrained

    prior = load_pretrained(alias)
    gen = torch.Generator().manual_seed(0)
    pose = 0.3 * torch.randn(3, 63, generator=gen)
    smpl = torch.cat([pose, torch.zeros(3, 6)], -1)
    score = prior.score(smpl)
    assert score.shape == (3,) and bool(torch.isfinite(score).all())
    # float64 data is converted to the prior's dtype (the score is returned in the data's);
    # GAN-S inverts by optimisation, whose path rounding changes, so only one-pass priors are
    # compared to the float32 score (to float32 resolution of the O(1) residuals)
    score64 = prior.score(pose.double())
    assert score64.dtype == torch.float64 and bool(torch.isfinite(score64).all())
    if alias != "gan-s":
        assert torch.allclose(score64.float(), prior.score(pose), rtol=1e-5, atol=1e-5)
    if prior.latent_space is None:
        # a density on the 21 body joints: SMPL's hand joints are ignored, at rest or not
        smpl[:, 63:] = torch.randn(3, 6, generator=gen)
        assert torch.equal(prior.energy(smpl), prior.energy(pose))
        return
    z = prior.invert(smpl)
    assert z.shape == (3, prior.latent_dim) and z.dtype == prior.dtype
    if alias == "vae":  # the encoder sees the 21 body joints (float32 rounding of the layout)
        torch.testing.assert_close(z, prior.invert(pose))
    # the SMPL layout comes back from project_pose and sample(body="smpl"), hands at rest
    assert prior.project_pose(smpl).shape == (3, 69)
    drawn = prior.sample(2, generator=torch.Generator().manual_seed(1), body="smpl")
    assert drawn.shape == (2, 69) and torch.equal(drawn[:, 63:], torch.zeros(2, 6))
    assert prior.sample(2, output="rotmat").shape == (2, 21, 3, 3)
    with pytest.raises(TypeError, match=r"z\.to\(torch\.float32\)"):
        prior.decode(z.double())
