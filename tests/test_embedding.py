"""advprior inside a user's own PyTorch code: priors as submodules, queries on a prior that is
being trained, state dicts, copies and the training loops of docs/api/head.md."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advprior.baselines import VPoserVAE
from advprior.inversion import frozen
from advprior.prior import PosePrior


def _modes(module: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in module.named_modules()}


def test_frozen_restores_each_submodules_own_mode() -> None:
    # a user fine-tunes a VAE with its BatchNorm statistics and dropout frozen (eval mode)
    vae = VPoserVAE().train()
    for m in vae.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.Dropout)):
            m.eval()
    before = _modes(vae)
    assert not all(before.values()) and any(before.values())
    with frozen(vae):
        assert not any(_modes(vae).values())
    assert _modes(vae) == before


@pytest.mark.parametrize("query", ["fit_starts", "invert", "score", "geodesic"])
def test_queries_keep_the_modes_of_a_prior_being_trained(query: str) -> None:
    torch.manual_seed(0)
    prior = PosePrior().train()
    prior.generator[2].eval()  # dropout off while fine-tuning
    before = _modes(prior)
    pose = torch.zeros(2, 63)
    z0, z1 = prior.sample_latent(2, generator=torch.Generator().manual_seed(0))
    calls = {
        "fit_starts": lambda: prior.fit_starts(2),
        "invert": lambda: prior.invert(pose, steps=2, bank_size=8),
        "score": lambda: prior.score(pose, steps=2, bank_size=8),
        "geodesic": lambda: prior.interpolate(z0, z1, 4, geodesic=True, iterations=2),
    }
    calls[query]()
    assert _modes(prior) == before


def test_vae_invert_of_a_model_in_training_neither_mixes_the_batch_nor_moves_its_statistics() -> (
    None
):
    torch.manual_seed(0)
    vae = VPoserVAE().train()
    stats = {k: v.clone() for k, v in vae.state_dict().items() if "running" in k or "batches" in k}
    poses = 0.3 * torch.randn(5, 63)
    z = vae.invert(poses)
    # each pose's latent is its own (eval-mode BatchNorm), whatever else is in the batch; a
    # smaller batch only changes the matmuls' summation order (512 terms of size <= 1: at most
    # 512 eps apart), where train-mode BatchNorm moves the latents by O(1)
    atol = 512 * torch.finfo(torch.float32).eps
    assert torch.allclose(vae.invert(poses[:2]), z[:2], rtol=0, atol=atol)
    for key, value in stats.items():
        assert torch.equal(vae.state_dict()[key], value), key
    assert vae.training and all(_modes(vae).values())
    vae.score(poses)
    for key, value in stats.items():
        assert torch.equal(vae.state_dict()[key], value), key
