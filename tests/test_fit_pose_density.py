"""The pose density a fit adds to a prior's energy: which prior gets one, what it adds, what it
does to a fit that the keypoints do not decide."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_fit_keypoints import CAMERA, make_gmm, scene, seeded

from advprior.baselines import GMMPrior, VPoserVAE
from advprior.cli import main
from advprior.fitting import fit_keypoints, fit_sequence
from advprior.fitting.priors import POSE_DENSITY_WEIGHT, resolve_pose_density
from advprior.fitting.smplify import final_objective
from advprior.prior import PosePrior

ITERS = 10


def test_auto_gives_the_bundled_gmm_to_sphere_priors_only(sphere_prior) -> None:
    auto = resolve_pose_density("auto", sphere_prior)
    assert isinstance(auto, GMMPrior) and auto.dim == 63
    # The others fit worse with it on validation (docs/fitting.md), or are the GMM itself.
    for other in (
        PosePrior(latent="uniform"),
        PosePrior(latent="normal"),
        VPoserVAE(),
        make_gmm(torch.zeros(63)),
        None,
    ):
        assert resolve_pose_density("auto", other) is None
    assert resolve_pose_density("none", sphere_prior) is None
    assert resolve_pose_density(None, sphere_prior) is None
    own = make_gmm(torch.zeros(63))
    assert resolve_pose_density(own, sphere_prior) is own
    # On another device the density is copied there; the caller's object stays where it was.
    elsewhere = PosePrior(latent="sphere").to("meta")
    moved = resolve_pose_density(own, elsewhere)
    assert moved is not own and moved.device.type == "meta" and own.device.type == "cpu"
    with pytest.raises(TypeError, match="pose-space"):
        resolve_pose_density(sphere_prior, sphere_prior)  # a latent prior is not a pose density
    with pytest.raises(TypeError, match="pose_density must be"):
        resolve_pose_density(3, sphere_prior)
    # a name of a latent prior is a wrong value (the CLI's --pose-density vae: one-line error)
    with pytest.raises(ValueError, match="'vae' is a latent prior"):
        resolve_pose_density("vae", sphere_prior)


def test_the_objective_adds_the_weighted_energy_of_the_decoded_pose(body, sphere_prior) -> None:
    truth = sphere_prior.sample(2, generator=seeded(1))
    kp, conf, _ = scene(body, truth, seed=2, drop=0.2)
    gmm = make_gmm(0.3 * torch.randn(63, generator=seeded(3)))
    fn, term, nb = final_objective(
        kp, conf, CAMERA, prior=sphere_prior, body_model=body, pose_density=gmm, pose_weight=2.5
    )
    plain, _, _ = final_objective(
        kp, conf, CAMERA, prior=sphere_prior, body_model=body, pose_density=None
    )
    x = torch.cat(
        [torch.zeros(2, 6 + nb), torch.randn(2, 32, generator=seeded(4))], -1
    )  # off the sphere on purpose: the energy is of the projected latent's pose
    pose = sphere_prior.decode(x[:, 6 + nb :])
    expected = 2.5 * gmm.energy(pose)
    # A difference of two float32 sums of size |plain| + |expected|: a few eps of each.
    tol = 16 * torch.finfo(torch.float32).eps * (plain(x).abs() + expected.abs())
    assert bool(((fn(x) - plain(x) - expected).abs() <= tol + 1e-4).all())
    assert term.pose_density is gmm and term.pose_weight == 2.5


def test_fit_reports_and_checks_its_pose_density(body, sphere_prior) -> None:
    truth = sphere_prior.sample(2, generator=seeded(5))
    kp, conf, _ = scene(body, truth, seed=6)
    res = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=sphere_prior, iterations=2)
    assert res.info["pose_density"] == {"kind": "gmm", "weight": POSE_DENSITY_WEIGHT}
    assert res.info["prior_kind"]["pose_density"] == res.info["pose_density"]
    gmm = make_gmm(torch.zeros(63))
    res = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=gmm, iterations=2)
    assert res.info["pose_density"] is None
    for bad in (-1.0, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="pose_weight"):
            fit_keypoints(kp, conf, CAMERA, body_model=body, prior=sphere_prior, pose_weight=bad)


class _ScaledGMM(GMMPrior):
    """A pose density with a trainable parameter, as a user's own learned density might have;
    it records its mode and whether its parameter wants gradients at every evaluation."""

    def __init__(self) -> None:
        super().__init__(num_components=2)
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen: set[tuple[bool, bool]] = set()

    def energy(self, body_pose: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        self.seen.add((self.training, self.scale.requires_grad))
        return self.scale * self.nll(body_pose)


def test_a_learned_density_is_frozen_during_the_fit(body, sphere_prior) -> None:
    """The fit optimises the pose, never the density: it is evaluated in eval mode (a learned
    density's dropout would make the objective random) without parameter gradients, and both
    are restored afterwards."""
    kp, conf, _ = scene(body, sphere_prior.sample(2, generator=seeded(13)), seed=14)
    for fit in (fit_keypoints, fit_sequence):
        dens = _ScaledGMM()  # training mode, as freshly built
        kw = (
            {"iterations": 2}
            if fit is fit_keypoints
            else {"iterations": 2, "window": 2, "overlap": 1}
        )
        fit(kp, conf, CAMERA, body_model=body, prior=sphere_prior, pose_density=dens, **kw)
        assert dens.seen == {(False, False)}, fit.__name__
        assert dens.training and dens.scale.requires_grad and dens.scale.grad is None


def test_the_density_decides_what_the_keypoints_leave_open(body, sphere_prior) -> None:
    """Only the torso is seen: the limbs are the prior's choice. With a pose density the fit
    ends at a pose the density finds far more likely than without one."""
    truth = sphere_prior.sample(3, generator=seeded(7))
    kp, conf, _ = scene(body, truth, seed=8)
    conf = torch.zeros_like(conf)
    conf[:, [0, 1, 2, 16, 17]] = 1.0  # pelvis, hips, shoulders (SMPL-24 order)
    common = torch.zeros(63)
    gmm = make_gmm(common)
    kw = {"body_model": body, "prior": sphere_prior, "iterations": ITERS}
    free = fit_keypoints(kp, conf, CAMERA, pose_density=None, **kw)
    pulled = fit_keypoints(kp, conf, CAMERA, pose_density=gmm, pose_weight=50.0, **kw)
    e_free, e_pulled = gmm.energy(free.body_pose), gmm.energy(pulled.body_pose)
    assert bool((e_pulled < e_free).all()), (e_free, e_pulled)
    # ...without giving up the keypoints it does see (same robust data term order).
    seen = conf > 0
    err = (pulled.projected - kp).norm(dim=-1)[seen].mean()
    assert float(err) < 5.0


def test_sequence_fits_carry_the_pose_density(body, sphere_prior) -> None:
    truth = sphere_prior.sample(4, generator=seeded(9))
    kp, conf, _ = scene(body, truth, seed=10)
    kw = {"body_model": body, "prior": sphere_prior, "iterations": 2, "init_iterations": 2}
    res = fit_sequence(kp, conf, CAMERA, window=4, overlap=1, **kw)
    assert res.info["prior_kind"]["pose_density"] == {"kind": "gmm", "weight": POSE_DENSITY_WEIGHT}
    res = fit_sequence(kp, conf, CAMERA, window=4, overlap=1, pose_density="none", **kw)
    assert res.info["prior_kind"]["pose_density"] is None


def test_cli_pose_density_options(tmp_path, body, capsys) -> None:
    ckpt = tmp_path / "prior"
    torch.manual_seed(0)
    PosePrior(latent="sphere").save_pretrained(ckpt)
    kp, _, _ = scene(body, 0.2 * torch.randn(1, 63, generator=seeded(11)), seed=12)
    src = tmp_path / "kp.json"
    src.write_text(
        json.dumps({"format": "smpl24", "keypoints": kp.tolist(), "camera": CAMERA.to_dict()})
    )
    infos = []
    for extra in ([], ["--pose-density", "none"], ["--pose-weight", "0.5"]):
        out = tmp_path / f"fit{len(infos)}.npz"
        args = ["fit", str(src), "--prior", str(ckpt), "--iterations", "2", "--out", str(out)]
        assert main(args + extra) == 0
        infos.append(json.loads(str(np.load(out)["info"]))["pose_density"])
        said = capsys.readouterr().out
        assert ("pose energy" in said) == (extra != ["--pose-density", "none"]), said
    assert infos == [
        {"kind": "gmm", "weight": POSE_DENSITY_WEIGHT},
        None,
        {"kind": "gmm", "weight": 0.5},
    ]


def _reference_nll(gmm: GMMPrior, pose: torch.Tensor) -> torch.Tensor:
    """SMPLify's max-mixture nll in float64 by the textbook formula (solve with each
    covariance), independent of the whitening the prior keeps between calls."""
    x, mu, cov = pose.double(), gmm.means.double(), gmm.covariances.double()
    d = x[:, None, :] - mu[None]  # (B, K, D)
    maha = torch.einsum("bkd,kde,bke->bk", d, torch.linalg.inv(cov), d)
    logdet = torch.linalg.slogdet(cov).logabsdet
    log_norm = 0.5 * gmm.dim * np.log(2 * np.pi) + 0.5 * logdet
    return -(torch.log(gmm.weights.double()) - log_norm - 0.5 * maha).amax(-1)


def test_gmm_nll_follows_every_change_of_its_covariances() -> None:
    # The whitening factor is kept between calls (fits evaluate the energy thousands of
    # times): an in-place update, a new tensor, a load_state_dict and another dtype must each
    # give the nll of the covariances as they are now, never of the old ones.
    gmm = GMMPrior(num_components=3, dim=6)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 6, 6, generator=gen)
    gmm.covariances.copy_(a @ a.transpose(1, 2) + 0.5 * torch.eye(6))
    gmm.means.copy_(torch.randn(3, 6, generator=gen))
    pose = torch.randn(16, 6, generator=gen)
    # float32 whitening of covariances with condition numbers ~1e2: nll values of ~10 agree
    # with float64 to ~1e-5 relative; 1e-4 leaves a margin and still sees any stale factor
    # (the changes below move the nll by more than 1%)
    tol = {"rtol": 1e-4, "atol": 1e-4}
    torch.testing.assert_close(gmm.nll(pose).double(), _reference_nll(gmm, pose), **tol)
    before = gmm.nll(pose)
    gmm.covariances.mul_(2.0)  # in place
    torch.testing.assert_close(gmm.nll(pose).double(), _reference_nll(gmm, pose), **tol)
    assert not torch.allclose(gmm.nll(pose), before, rtol=1e-2)
    gmm.covariances = gmm.covariances * 0.25  # a new tensor
    torch.testing.assert_close(gmm.nll(pose).double(), _reference_nll(gmm, pose), **tol)
    state = {k: v.clone() for k, v in gmm.state_dict().items()}
    state["covariances"] = state["covariances"] * 3.0
    gmm.load_state_dict(state)
    torch.testing.assert_close(gmm.nll(pose).double(), _reference_nll(gmm, pose), **tol)
    torch.testing.assert_close(
        gmm.nll(pose.double()), _reference_nll(gmm, pose), rtol=1e-10, atol=1e-10
    )
    with torch.inference_mode():
        inside = gmm.nll(pose)
    out = gmm.nll(pose.requires_grad_())
    out.sum().backward()  # nothing kept from inside inference_mode
    torch.testing.assert_close(inside, out.detach())
