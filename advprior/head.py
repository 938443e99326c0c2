"""``LatentHead``: the last layer of a pose regressor, outputting poses through a frozen prior."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from advprior.interface import Prior
from advprior.tensors import check_tensor

#: How a raw linear output is mapped onto each latent manifold
#: (:meth:`advprior.latent.LatentSpace.map_unconstrained`).
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
        prior: a prior with a latent space (:class:`advprior.PosePrior`, the VAE baseline, any
            :class:`advprior.interface.Prior` whose ``latent_space`` is not None).
        hidden: optional width of one hidden layer (LeakyReLU) before the latent layer.

    ``forward(features (..., F)) -> body_pose (..., 63)`` axis-angle, radians;
    ``forward(features, output="rotmat")`` -> ``(..., 21, 3, 3)``. :meth:`latent` gives the
    latent ``(..., D)``.
    """

    def __init__(self, in_features: int, prior: Prior, hidden: int | None = None) -> None:
        super().__init__()
        if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features must be a positive int, got {in_features!r}")
        if (
            not isinstance(prior, nn.Module)
            or not isinstance(prior, Prior)
            or (prior.latent_space is None)
        ):
            raise TypeError(
                f"prior must be an nn.Module prior with a latent space (a PosePrior, "
                f"a VPoserVAE), got {type(prior).__name__}"
            )
        self.in_features = in_features
        self.space = prior.latent_space
        self.kind = self.space.kind
        dim = self.space.dim
        if hidden is None:
            self.net = nn.Linear(in_features, dim)
        else:
            self.net = nn.Sequential(
                nn.Linear(in_features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, dim)
            )
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
        check_tensor(features, "features", self.in_features, finite=False)
        return self.space.map_unconstrained(self.net(features))

    def forward(self, features: Tensor, **decode_kwargs: Any) -> Tensor:
        """Body pose ``(..., 63)`` (or as ``decode_kwargs`` ask, e.g. ``output="rotmat"``)."""
        return self.prior.decode(self.latent(features), **decode_kwargs)
