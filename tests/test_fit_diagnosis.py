"""Multi-start fits, the latent vMF density, and the fitting diagnosis on tiny cases."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from test_fit_keypoints import CAMERA, make_gmm, scene, seeded

from advprior.eval.benchmark import diagnose_fitting, make_views
from advprior.fitting import fit_keypoints
from advprior.fitting.latent_density import VMFMixture, fit_latent_density, log_bessel_iv
from advprior.fitting.priors import PriorTerm
from advprior.fitting.smplify import final_objective

ITERS = 10


def test_starts_begin_with_the_single_start_and_differ(sphere_prior) -> None:
    term = PriorTerm(sphere_prior)
    starts = term.starts(5, torch.float32, torch.device("cpu"))
    assert starts.shape == (5, 32)
    assert torch.equal(starts[:1], term.init(1, torch.float32, torch.device("cpu")))
    assert torch.allclose(starts.norm(dim=-1), torch.ones(5), atol=1e-5)  # on the sphere
    assert torch.cdist(starts, starts).fill_diagonal_(1.0).min() > 1e-3  # five distinct poses
    gmm = make_gmm(0.3 * torch.randn(63, generator=seeded(0)))
    gmm.weights.copy_(torch.tensor([0.25, 0.75]))
    g = PriorTerm(gmm).starts(3, torch.float32, torch.device("cpu"))
    assert torch.allclose(g[0], (gmm.weights[:, None] * gmm.means).sum(0))
    assert torch.equal(g[1], gmm.means[1]) and torch.equal(g[2], gmm.means[0])


def test_one_start_is_the_default_fit_and_more_starts_do_not_hurt(body, sphere_prior) -> None:
    # In float64: a 10-iteration float32 fit is chaotic in its inputs' last bits (a 1e-4 px
    # change of the keypoints moved these frames' final loss by up to 6%, and a batch four
    # times larger rounds its matmuls differently on another CPU), while in float64 a 1e-10 px
    # change moved it by at most 1.5e-4 of itself: the comparison below tests the starts, not
    # the rounding.
    truth = sphere_prior.sample(3, generator=seeded(3))
    kp, conf, _ = scene(body, truth, seed=4, drop=0.2)
    kp, conf = kp.double(), conf.double()
    body, prior = copy.deepcopy(body).double(), copy.deepcopy(sphere_prior).double()
    base = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=prior, iterations=ITERS)
    one = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=prior, iterations=ITERS, starts=1)
    assert torch.equal(base.body_pose, one.body_pose) and torch.equal(base.loss, one.loss)
    many = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=prior, iterations=ITERS, starts=4)
    assert many.info["starts"] == 4 and many.body_pose.shape == (3, 63)
    assert many.body_pose.dtype == torch.float64
    # The first start of each frame repeats the single-start problem (rows are independent; a
    # larger batch only changes matmul rounding, which a line search can amplify a little).
    assert bool((many.loss <= base.loss * 1.02 + 1e-3).all())
    assert torch.allclose(many.body_pose, prior(many.latent), atol=1e-9)
    with pytest.raises(ValueError, match="starts"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=sphere_prior, starts=0)


def test_log_bessel_matches_the_power_series() -> None:
    def series(v: float, x: float) -> float:
        m = torch.arange(600, dtype=torch.float64)
        terms = (2 * m + v) * math.log(x / 2) - torch.lgamma(m + 1) - torch.lgamma(m + v + 1)
        return float(torch.logsumexp(terms, 0))

    for v in (10.0, 15.0, 31.0):
        for x in (0.01, 1.0, 15.0, 100.0):
            got = float(log_bessel_iv(v, torch.tensor(x, dtype=torch.float64)))
            # Debye's expansion with two correction terms: relative error O(v^-3) <= 1e-4.
            assert abs(got - series(v, x)) < 1e-4, (v, x)


def test_vmf_density_integrates_to_one_and_em_finds_two_clusters() -> None:
    d = 32
    gen = seeded(0)
    mu = torch.nn.functional.normalize(torch.randn(2, d, generator=gen), dim=-1)
    mix = VMFMixture(mu, torch.tensor([5.0, 20.0]), torch.tensor([0.3, 0.7]))
    # Monte Carlo over the uniform sphere: E[p] * area(S^{d-1}) = 1.
    u = torch.nn.functional.normalize(
        torch.randn(400_000, d, generator=gen, dtype=torch.float64), dim=-1
    )
    log_area = math.log(2) + (d / 2) * math.log(math.pi) - math.lgamma(d / 2)
    mass = torch.exp(mix.double().log_prob(u) + log_area).mean()
    assert abs(float(mass) - 1.0) < 0.03  # MC standard error here is about 0.005
    # Two tight clusters, 1:3.
    pts = torch.cat(
        [
            mu[0] + 0.05 * torch.randn(250, d, generator=gen),
            mu[1] + 0.05 * torch.randn(750, d, generator=gen),
        ]
    )
    fit = VMFMixture.fit(pts, components=2, iterations=50, seed=1)
    match = (fit.mu @ mu.T).argmax(1)
    assert sorted(match.tolist()) == [0, 1]
    assert bool(((fit.mu @ mu.T).max(1).values > 0.99).all())
    assert torch.allclose(fit.weight[match.argsort()], torch.tensor([0.25, 0.75]), atol=0.01)
    assert bool(fit.log_prob(mu[1]) > fit.log_prob(-mu[1]))


def test_latent_density_energy_enters_the_fit(body, sphere_prior) -> None:
    truth = sphere_prior.sample(64, generator=seeded(5))
    density = fit_latent_density(sphere_prior, truth, components=4, iterations=20, steps=5)
    assert density.dim == 32
    kp, conf, _ = scene(body, truth[:2], seed=6, drop=0.2)
    fn, term, nb = final_objective(
        kp,
        conf,
        CAMERA,
        prior=sphere_prior,
        body_model=body,
        latent_density=density,
        latent_weight=3.0,
    )
    x = torch.cat(
        [
            torch.zeros(2, 6 + nb),
            torch.nn.functional.normalize(torch.randn(2, 32, generator=seeded(7)), dim=-1),
        ],
        -1,
    )
    plain, _, _ = final_objective(kp, conf, CAMERA, prior=sphere_prior, body_model=body)
    z = x[:, 6 + nb :]
    # A difference of two float32 sums of size |plain|: rounding of a few eps * |plain|.
    tol = 16 * torch.finfo(torch.float32).eps * plain(x).abs()
    assert bool(((fn(x) - plain(x) - 3.0 * density.nll(z)).abs() <= tol + 1e-4).all())
    res = fit_keypoints(
        kp,
        conf,
        CAMERA,
        body_model=body,
        prior=sphere_prior,
        iterations=ITERS,
        latent_density=density,
        latent_weight=3.0,
    )
    assert res.info["latent_density"] == {"components": 4, "weight": 3.0}
    with pytest.raises(ValueError, match="sphere"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, latent_density=density)
    with pytest.raises(ValueError, match="latent_weight"):
        fit_keypoints(
            kp,
            conf,
            CAMERA,
            body_model=body,
            prior=sphere_prior,
            latent_density=density,
            latent_weight=-1.0,
        )


def test_diagnosis_decomposes_the_fit_error(body) -> None:
    """No prior: the truth is representable exactly; the classes partition the frames and the
    excesses add up to the fit's error."""
    truth = 0.3 * torch.randn(4, 63, generator=seeded(8))
    views = make_views(truth, torch.zeros(4, 3), seed=1, noise_px=5.0, drop=0.3, body_model=body)
    r = diagnose_fitting(views, None, body_model=body, refine_iterations=20, iterations=ITERS)
    e = r["p_mpjpe_mm"]
    assert e["representability"]["all"] < 1e-2  # the true pose itself (float32 FK rounding)
    assert r["frames_miss"] + r["frames_prefer"] + r["frames_fine"] == 4
    assert math.isclose(
        e["fit"]["all"],
        e["oracle"]["all"] + sum(r["excess_mm"].values()),
        rel_tol=1e-4,
        abs_tol=1e-3,
    )
    pf = r["per_frame"]
    assert bool((pf["loss_oracle"] <= pf["loss_truth"] + 1e-3).all())  # refined from the truth
    assert bool((pf["miss"] == (pf["loss_fit"] > 1.01 * pf["loss_oracle"].clamp(min=1))).all())
    seen = views.confidence > 0
    assert seen.any() and (~seen).any()
    assert not math.isnan(e["fit"]["dropped"])
