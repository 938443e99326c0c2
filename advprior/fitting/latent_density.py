"""A density on the latent sphere that prefers common poses: a von Mises-Fisher mixture.

A GAN-S generator spreads the training poses over the whole sphere, so every latent decodes to
a plausible pose, but not equally common ones. Fitted to the inverted latents of training poses
(:func:`fit_latent_density`), the mixture's negative log-density is an extra fitting energy that
breaks ties between poses that explain the keypoints equally well (depth ambiguities) in favour
of the more frequent one (``fit_keypoints(..., latent_density=d, latent_weight=w)``).

``p(z) = sum_k w_k C_D(kappa_k) exp(kappa_k mu_k . z)`` for unit ``z`` in ``R^D``, with
``C_D(kappa) = kappa^(D/2-1) / ((2 pi)^(D/2) I_(D/2-1)(kappa))``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from advprior.tensors import float64_device


def log_bessel_iv(v: float, x: Tensor) -> Tensor:
    """``log I_v(x)`` for order ``v >= 1`` and ``x > 0`` by Debye's uniform asymptotic expansion
    with its first two correction terms (relative error of ``I_v`` below ``1e-4`` for
    ``v >= 10``, the orders of 20- to 64-d spheres; it is uniform in ``x``)."""
    z = x / v
    s = torch.sqrt(1 + z * z)
    t = 1 / s
    eta = s + torch.log(z / (1 + s))
    u1 = (3 * t - 5 * t**3) / 24
    u2 = (81 * t**2 - 462 * t**4 + 385 * t**6) / 1152
    return (
        v * eta
        - 0.5 * math.log(2 * math.pi * v)
        - 0.5 * torch.log(s)
        + torch.log1p(u1 / v + u2 / (v * v))
    )


class VMFMixture(nn.Module):
    """Mixture of ``K`` von Mises-Fisher densities on the unit sphere of ``R^D``.

    Buffers: ``mu (K, D)`` unit mean directions, ``kappa (K,)`` concentrations, ``weight (K,)``
    mixture weights (sum 1).
    """

    def __init__(self, mu: Tensor, kappa: Tensor, weight: Tensor) -> None:
        super().__init__()
        if mu.ndim != 2 or kappa.shape != mu.shape[:1] or weight.shape != mu.shape[:1]:
            raise ValueError(
                f"mu must be (K, D), kappa and weight (K,); got {tuple(mu.shape)}, "
                f"{tuple(kappa.shape)}, {tuple(weight.shape)}"
            )
        self.register_buffer("mu", mu / mu.norm(dim=-1, keepdim=True))
        self.register_buffer("kappa", kappa.clamp(min=1e-3))
        self.register_buffer("weight", weight / weight.sum())

    @property
    def dim(self) -> int:
        return int(self.mu.shape[1])

    def component_log_density(self, z: Tensor) -> Tensor:
        """``(..., K)`` log densities of unit vectors ``z (..., D)`` under each component."""
        d = self.dim
        k = self.kappa.to(z.dtype)
        log_c = (
            (d / 2 - 1) * torch.log(k)
            - (d / 2) * math.log(2 * math.pi)
            - log_bessel_iv(d / 2 - 1, k)
        )
        return log_c + k * (z @ self.mu.to(z.dtype).T)

    def log_prob(self, z: Tensor) -> Tensor:
        """``(...)`` log density of ``z (..., D)`` after normalising it to unit length."""
        u = z / z.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        return torch.logsumexp(
            self.component_log_density(u) + torch.log(self.weight.to(z.dtype)), -1
        )

    def nll(self, z: Tensor) -> Tensor:
        """Negative log density ``(...)``: the fitting energy."""
        return -self.log_prob(z)

    @classmethod
    def fit(
        cls,
        z: Tensor,
        components: int = 16,
        iterations: int = 100,
        seed: int = 0,
        max_kappa: float = 1e4,
    ) -> VMFMixture:
        """Expectation-maximisation on unit vectors ``z (N, D)`` (normalised first), started
        from k-means++ directions; concentrations by Banerjee et al.'s approximation
        ``kappa = r (D - r^2) / (1 - r^2)`` of the mean resultant length ``r``."""
        if z.ndim != 2 or z.shape[0] < components:
            raise ValueError(
                f"z must be (N, D) with N >= components ({components}), got {tuple(z.shape)}"
            )
        u = (z / z.norm(dim=-1, keepdim=True)).to(float64_device(z.device), torch.float64)
        n, d = u.shape
        # The seeded draws happen on the CPU (a CPU generator cannot draw on a GPU, and
        # torch.multinomial refuses one for GPU weights), so a seed picks the same starts on
        # every device; the EM runs where z is. One weighted draw is the argmax of
        # weight / Exp(1) noise (the draw torch.multinomial makes for one sample, same stream),
        # with the noise drawn on the CPU and moved, which needs no copy of the weights back.
        gen = torch.Generator().manual_seed(seed)
        centres = [u[torch.randint(n, (1,), generator=gen).to(u.device)].squeeze(0)]
        for _ in range(components - 1):
            dist = torch.stack([1 - u @ c for c in centres], 1).min(1).values.clamp(min=0)
            noise = torch.empty(n, dtype=u.dtype).exponential_(1, generator=gen).to(u.device)
            # a 1-element index, not a 0-d one: indexing by a 0-d tensor reads it on the host
            centres.append(u[((dist + 1e-12) / noise).argmax().view(1)].squeeze(0))
        mu = torch.stack(centres)
        kappa = torch.full((components,), 10.0, dtype=torch.float64, device=u.device)
        weight = torch.full((components,), 1.0 / components, dtype=torch.float64, device=u.device)
        for _ in range(iterations):
            model = cls(mu, kappa, weight)
            log_r = model.component_log_density(u) + torch.log(model.weight)
            r = torch.softmax(log_r, -1)  # (N, K)
            mass = r.sum(0).clamp(min=1e-9)
            s = r.T @ u  # (K, D)
            length = s.norm(dim=-1).clamp(min=1e-12)
            mu = s / length[:, None]
            rbar = (length / mass).clamp(max=1 - 1e-9)
            kappa = (rbar * (d - rbar**2) / (1 - rbar**2)).clamp(max=max_kappa)
            weight = mass / n
        return cls(*(x.to(device=z.device, dtype=torch.float32) for x in (mu, kappa, weight)))


def fit_latent_density(
    prior: nn.Module,
    body_pose: Tensor,
    *,
    components: int = 16,
    iterations: int = 100,
    seed: int = 0,
    **invert_kwargs: Any,
) -> VMFMixture:
    """A :class:`VMFMixture` fitted to the inverted latents of ``body_pose (N, 63)`` (training
    poses; :func:`advprior.inversion.invert`) of a sphere-latent ``prior``."""
    from advprior.inversion import invert

    if getattr(prior, "latent", None) != "sphere":
        raise ValueError(
            "a latent density on the sphere needs a sphere-latent prior (GAN-S), "
            f"got latent {getattr(prior, 'latent', None)!r}"
        )
    z = invert(prior, body_pose, **invert_kwargs)
    return VMFMixture.fit(z.float(), components=components, iterations=iterations, seed=seed)
