"""``LatentHead``: the last layer of a pose regressor, outputting poses through a frozen prior."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

#: How a raw linear output is mapped onto each latent manifold.
MANIFOLD_MAPS = {"sphere": "normalise", "uniform": "tanh", "normal": "identity"}


class LatentHead(nn.Module):
    """Map a feature vector to a latent on the prior's manifold and decode it to a body pose.

    ``Linear(in_features, D)`` then: sphere -> divide by the norm; uniform -> ``tanh`` (inside
    the cube, smooth); normal (GAN-N, and a VAE's N(0, I) latent) -> unchanged. The prior is
    frozen (``requires_grad=False``, kept in eval mode even under ``head.train()``), so an
    optimiser over ``head.parameters()`` trains only the linear layer (and whatever backbone
    feeds it); gradients flow through the prior's decoder to the features.

    Args:
        in_features: F, the size of the features.
        prior: a :class:`advprior.PosePrior` (or a VAE with ``decode`` and ``latent_dim``).
        hidden: optional width of one hidden layer (LeakyReLU) before the latent layer.

    ``forward(features (..., F)) -> body_pose (..., 63)`` axis-angle, radians;
    ``forward(features, output="rotmat")`` -> ``(..., 21, 3, 3)``. :meth:`latent` gives the
    latent ``(..., D)``.
    """

    def __init__(self, in_features: int, prior: nn.Module, hidden: int | None = None) -> None:
        super().__init__()
        if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features must be a positive int, got {in_features!r}")
        if not isinstance(prior, nn.Module) or not hasattr(prior, "decode"):
            raise TypeError(f"prior must be a PosePrior (an nn.Module with decode), got "
                            f"{type(prior).__name__}")
        kind = getattr(prior, "latent", "normal")
        if kind not in MANIFOLD_MAPS:
            raise ValueError(f"unknown latent kind {kind!r} of the prior; known: "
                             f"{sorted(MANIFOLD_MAPS)}")
        self.in_features = in_features
        self.kind = kind
        dim = int(prior.latent_dim)
        if hidden is None:
            self.net = nn.Linear(in_features, dim)
        else:
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(hidden, dim))
        self.prior = prior
        for p in self.prior.parameters():
            p.requires_grad_(False)
        self.prior.eval()

    def train(self, mode: bool = True) -> LatentHead:
        super().train(mode)
        self.prior.eval()  # dropout in the decoder would make poses random
        return self

    def latent(self, features: Tensor) -> Tensor:
        """Latents ``(..., D)`` on the prior's manifold for features ``(..., F)``."""
        if not isinstance(features, Tensor) or not features.is_floating_point():
            raise TypeError("features must be a floating-point torch.Tensor of shape (..., F)")
        if features.ndim == 0 or features.shape[-1] != self.in_features:
            raise ValueError(f"features must have shape (..., {self.in_features}), got "
                             f"{tuple(features.shape)}")
        raw = self.net(features)
        if self.kind == "sphere":
            return raw / raw.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        if self.kind == "uniform":
            return torch.tanh(raw)
        return raw

    def forward(self, features: Tensor, **decode_kwargs: Any) -> Tensor:
        """Body pose ``(..., 63)`` (or as ``decode_kwargs`` ask, e.g. ``output="rotmat"``)."""
        return self.prior.decode(self.latent(features), **decode_kwargs)
