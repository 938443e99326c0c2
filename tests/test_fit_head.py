"""LatentHead: features -> latent on the prior's manifold -> pose, prior frozen."""

from __future__ import annotations

import pytest
import torch

from advprior.baselines import GMMPrior, VPoserVAE
from advprior.head import LatentHead
from advprior.prior import PosePrior


@pytest.mark.parametrize("latent", ["sphere", "uniform", "normal"])
def test_latent_on_manifold_and_pose_shapes(latent: str) -> None:
    torch.manual_seed(0)
    head = LatentHead(16, PosePrior(latent=latent), hidden=32)
    feats = 3 * torch.randn(2, 5, 16)
    z = head.latent(feats).detach()
    assert z.shape == (2, 5, 32)
    if latent == "sphere":
        assert torch.allclose(z.norm(dim=-1), torch.ones(2, 5), atol=1e-5)
    if latent == "uniform":
        assert float(z.abs().max()) < 1.0
    pose = head(feats)
    assert pose.shape == (2, 5, 63)
    assert torch.allclose(pose, head.prior(z), atol=1e-6)
    assert head(feats, output="rotmat").shape == (2, 5, 21, 3, 3)


def test_only_the_head_trains_and_the_prior_stays_in_eval_mode() -> None:
    torch.manual_seed(0)
    prior = PosePrior(latent="sphere")
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    head = LatentHead(8, prior).train()
    assert head.training and not head.prior.training
    assert all(not p.requires_grad for p in head.prior.parameters())
    feats = torch.randn(64, 8)
    with torch.no_grad():
        target = PosePrior(latent="sphere").eval().sample(64, generator=torch.Generator())
    opt = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((head(feats) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for k, v in prior.state_dict().items():
        assert torch.equal(v, before[k]), k
    # Deterministic decoding (no dropout) even in training mode.
    assert torch.equal(head(feats), head(feats))


@pytest.mark.parametrize("prior", [PosePrior(latent="sphere"), VPoserVAE()], ids=["gan", "vae"])
def test_mixed_precision_training_step(prior) -> None:
    # torch.autocast makes the head's Linear hand bfloat16 latents to the float32 prior
    torch.manual_seed(0)
    head = LatentHead(8, prior).train()
    opt = torch.optim.SGD(head.net.parameters(), lr=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pose = head(torch.randn(5, 8))
        loss = pose.float().square().mean()
    assert pose.dtype == torch.bfloat16 and pose.shape == (5, 63)
    loss.backward()
    assert head.net.weight.grad is not None and torch.isfinite(head.net.weight.grad).all()
    opt.step()
    # outside autocast a bfloat16 latent is still the one-line dtype error
    with pytest.raises(TypeError, match="dtype torch.bfloat16 but the prior's weights"):
        prior.decode(torch.randn(2, 32, dtype=torch.bfloat16))


def test_works_with_the_vae_and_rejects_a_gmm() -> None:
    head = LatentHead(4, VPoserVAE())
    assert head(torch.randn(3, 4)).shape == (3, 63)
    with pytest.raises(TypeError, match="PosePrior"):
        LatentHead(4, GMMPrior())


def test_bad_input() -> None:
    head = LatentHead(4, PosePrior())
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        head(torch.randn(3, 5))
    with pytest.raises(TypeError, match="floating"):
        head(torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="in_features"):
        LatentHead(0, PosePrior())
