"""Pose -> latent inversion and PosePrior.project_pose."""

from __future__ import annotations

import pytest
import torch

from advprior.baselines import VPoserVAE
from advprior.body import forward_kinematics
from advprior.inversion import invert
from advprior.prior import PosePrior


def tame(model: torch.nn.Module, last: torch.nn.Linear) -> torch.nn.Module:
    """Centre an untrained generator's 6D output on the identity (moderate poses)."""
    with torch.no_grad():
        last.weight.mul_(4.0)
        last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(21))
    return model.eval()


def prior_of(latent: str) -> PosePrior:
    torch.manual_seed(0)
    prior = PosePrior(latent=latent)
    return tame(prior, prior.generator[-1])


@torch.no_grad()
def joint_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros(*a.shape[:-1], 3)
    return (forward_kinematics(zero, a) - forward_kinematics(zero, b)).norm(dim=-1).mean(-1)


@pytest.mark.parametrize("latent", ["sphere", "uniform", "normal"])
def test_poses_from_the_prior_are_recovered(latent: str) -> None:
    prior = prior_of(latent)
    poses = prior.sample(6, generator=torch.Generator().manual_seed(1))
    z, err = invert(prior, poses, steps=100, restarts=2, return_error=True)
    assert z.shape == (6, 32)
    back = prior(z)
    assert float(joint_error(back, poses).mean()) < 0.005  # metres
    assert float(joint_error(back, poses).max()) < 0.015
    assert torch.allclose(err, joint_error(back, poses), atol=1e-5)
    assert torch.allclose(prior.project(z), z, atol=1e-6)


def test_project_pose_moves_an_off_manifold_pose_closer() -> None:
    prior = prior_of("sphere")
    poses = prior.sample(4, generator=torch.Generator().manual_seed(2))
    noisy = poses + 0.3 * torch.randn(4, 63, generator=torch.Generator().manual_seed(3))
    projected = prior.project_pose(noisy)
    assert projected.shape == (4, 63)
    assert float(joint_error(projected, poses).mean()) < float(joint_error(noisy, poses).mean())
    z = prior.invert(noisy, steps=10, restarts=1)
    assert z.shape == (4, 32)


def test_shapes_leading_dims_smpl_layout_and_empty() -> None:
    prior = prior_of("uniform")
    poses = prior.sample(6, generator=torch.Generator().manual_seed(4)).reshape(2, 3, 63)
    z = invert(prior, poses, steps=5)
    assert z.shape == (2, 3, 32)
    smpl = torch.cat([poses, torch.zeros(2, 3, 6)], -1)
    assert prior.project_pose(smpl, steps=5).shape == (2, 3, 69)
    assert invert(prior, torch.zeros(0, 63)).shape == (0, 32)
    # float64 poses: z in the prior's dtype, the error in the pose's, for any batch size
    for n in (2, 0):
        z, err = invert(prior, poses[0, :n].double(), steps=2, return_error=True)
        assert (z.dtype, err.dtype, z.shape, err.shape) == (
            torch.float32,
            torch.float64,
            (n, 32),
            (n,),
        )


def test_each_pose_is_inverted_independently() -> None:
    prior = prior_of("sphere")
    poses = prior.sample(3, generator=torch.Generator().manual_seed(5))
    other = poses.clone()
    other[1:] = 1.5 * torch.randn(2, 63, generator=torch.Generator().manual_seed(6))
    assert torch.equal(invert(prior, poses)[0], invert(prior, other)[0])


def test_large_batches_are_inverted_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """One optimisation over a whole AMASS held ~36 KB per pose (10^6 poses: ~36 GB) in its
    graph and its (poses x bank) similarities; ``chunk_size`` poses at a time it holds one
    chunk's. A last chunk of a few poses joins the one before (same kernels as the rest)."""
    import advprior.inversion as inversion

    prior = prior_of("sphere")
    g = torch.Generator().manual_seed(8)
    poses = prior.sample(150, generator=g) + 0.05 * torch.randn(150, 63, generator=g)
    opts = {"steps": 3, "restarts": 2, "bank_size": 256, "return_error": True}
    whole = invert(prior, poses, **opts)
    rows: list[int] = []
    run = inversion.minimize_lbfgs

    def counted(fn, x0, **kwargs):
        rows.append(x0.shape[0])
        return run(fn, x0, **kwargs)

    monkeypatch.setattr(inversion, "minimize_lbfgs", counted)
    chunked = invert(prior, poses, chunk_size=64, **opts)
    assert rows == [2 * 64, 2 * 86]  # 150 = 64 + 64 + 22: the last 22 join the second chunk
    # each pose is its own problem (advprior.lbfgs), and chunks of a multiple of 64 poses
    # run the same kernels as the whole batch: the same bits
    assert torch.equal(chunked[0], whole[0]) and torch.equal(chunked[1], whole[1])
    with pytest.raises(ValueError, match="chunk_size"):
        invert(prior, poses, chunk_size=0)
    # the option is one of every latent prior's (the VAE's encoder accepts and ignores it)
    vae = VPoserVAE().eval()
    assert torch.equal(vae.invert(poses, chunk_size=64), vae.invert(poses))


def test_vae_latents_can_be_inverted_too() -> None:
    torch.manual_seed(0)
    vae = VPoserVAE()
    vae = tame(vae, vae.decoder[-1])
    poses = vae.decode(0.5 * torch.randn(3, 32, generator=torch.Generator().manual_seed(7)))
    z = invert(vae, poses, steps=100, restarts=2)
    assert float(joint_error(vae.decode(z), poses).max()) < 0.01


def test_bad_input() -> None:
    prior = prior_of("sphere")
    with pytest.raises(ValueError, match=r"\(\.\.\., 63\)"):
        invert(prior, torch.zeros(2, 60))
    with pytest.raises(TypeError, match="floating"):
        invert(prior, torch.zeros(2, 63, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        invert(prior, [[0.0] * 63])
    with pytest.raises(ValueError, match="NaN"):
        invert(prior, torch.full((1, 63), float("nan")))
    with pytest.raises(ValueError, match="restarts"):
        invert(prior, torch.zeros(1, 63), restarts=0)


def test_amortised_encoder_gives_a_better_start() -> None:
    from advprior.inversion import PoseEncoder

    prior = prior_of("sphere")
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    encoder = PoseEncoder(prior)
    losses = encoder.fit(steps=150, batch_size=128)
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(v, before[k]) for k, v in prior.state_dict().items())
    poses = prior.sample(8, generator=torch.Generator().manual_seed(8))
    _, bank_err = invert(prior, poses, steps=0, return_error=True)
    z, enc_err = invert(prior, poses, steps=0, encoder=encoder, return_error=True)
    assert float(enc_err.mean()) < float(bank_err.mean())
    assert torch.allclose(z.norm(dim=-1), torch.ones(8), atol=1e-5)
    z2, err2 = invert(prior, poses, steps=20, restarts=2, encoder=encoder, return_error=True)
    assert float(err2.mean()) <= float(enc_err.mean())


def test_a_seeded_encoder_is_the_same_encoder_every_time() -> None:
    """``PoseEncoder.fit(seed=0)`` said "deterministic for a seed", but the net's initial
    weights came from the global RNG: two encoders fitted with the same seed in one process
    differed. With ``seed=`` the initial weights are seeded too, the caller's global RNG is
    not read or advanced, and the fitted encoders are equal bit for bit."""
    from advprior.inversion import PoseEncoder

    prior = prior_of("sphere")

    def fitted() -> dict[str, torch.Tensor]:
        encoder = PoseEncoder(prior, hidden=32, seed=3)
        encoder.fit(steps=3, batch_size=16, seed=0)
        return {k: v.clone() for k, v in encoder.net.state_dict().items()}

    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = fitted()
    assert torch.equal(torch.get_rng_state(), state)
    torch.randn(5)  # a caller's own draws in between change nothing
    b = fitted()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = PoseEncoder(prior, hidden=32, seed=4).net.state_dict()
    assert not torch.equal(other["0.weight"], PoseEncoder(prior, hidden=32, seed=3).net[0].weight)
    with pytest.raises(TypeError, match="seed"):
        PoseEncoder(prior, seed=1.5)


@pytest.mark.parametrize("layout", ["flat", "joints", "rotmat"])
def test_project_pose_keeps_the_callers_dtype(layout: str) -> None:
    # a float64 pose (SMPLify-style float64 fitting code) came back float32, the prior's dtype
    prior = prior_of("uniform")
    pose = prior.sample(2, generator=torch.Generator().manual_seed(5)).double()
    if layout == "joints":
        pose = pose.unflatten(-1, (21, 3))
    elif layout == "rotmat":
        from advprior.rotations import axis_angle_to_rotmat

        pose = axis_angle_to_rotmat(pose.unflatten(-1, (21, 3)))
    out = prior.project_pose(pose, steps=2)
    assert (out.dtype, out.shape) == (torch.float64, pose.shape)
