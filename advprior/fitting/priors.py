"""How each kind of prior enters a fit: its free variables, the pose they give, its energy.

- ``PosePrior`` (``model_type "gan"``): free latent ``z``; pose ``prior(prior.project(z))`` --
  exactly :class:`advprior.LatentPose`'s forward, so the pose is on the prior's manifold at every
  evaluation. Energy: none on the sphere and the cube (the manifold is the prior); ``||z||^2``
  for the normal latent (as VPoser).
- VAE (``"vae"``, e.g. :class:`advprior.baselines.VPoserVAE`): free latent ``z``; pose
  ``decode(z)``; energy ``||z||^2`` (VPoser's SMPLify-X term).
- GMM (``"gmm"``, e.g. :class:`advprior.baselines.GMMPrior`): free pose; energy ``nll(pose)``
  (SMPLify's max-mixture negative log-likelihood).
- ``None``: free pose; energy ``||pose||^2`` with a small fixed weight, only so that a joint
  without a keypoint has a defined optimum.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from advprior.skeleton import NUM_BODY_JOINTS

POSE_DIM = 3 * NUM_BODY_JOINTS
# Latents drawn to pick a sphere prior's starting point (the medoid of their decoded poses).
_INIT_SAMPLES = 512


def latent_gauge(z: Tensor, kind: str | None) -> Tensor:
    """Penalty ``(n,)`` on a free latent ``z (n, D)`` that is decoded after projection.

    Sphere: ``(|z|^2 - 1)^2``: the pose depends on the direction of ``z`` only, so this fixes
    the free radial direction (and keeps the angular step per unit of ``z`` constant).
    Uniform: ``sum relu(|z_i| - 1)^2``: clamping has zero gradient outside the cube, so a
    coordinate that left it would stay stuck on the face; this pulls it back inside. Zero on the
    manifold in both cases; zero for the normal latent.
    """
    if kind == "sphere":
        return ((z * z).sum(-1) - 1) ** 2
    if kind == "uniform":
        return (torch.relu(z.abs() - 1) ** 2).sum(-1)
    return z.new_zeros(z.shape[0])


def _kind(prior: object) -> str:
    if prior is None:
        return "none"
    kind = getattr(prior, "model_type", None)
    if kind in ("gan", "vae", "gmm"):
        return kind
    raise TypeError(
        "prior must be an alias or path (str), a PosePrior, a VPoserVAE, a GMMPrior or None, got "
        f"{type(prior).__name__}"
    )


def resolve_prior(prior: object) -> tuple[object, str]:
    """Load ``prior`` when it is an alias/path (via :func:`advprior.hub.load_pretrained`; the
    string ``"none"`` means no prior) and return ``(model, kind)`` with ``kind`` in
    ``{"gan", "vae", "gmm", "none"}``."""
    if isinstance(prior, str) and prior.lower() == "none":
        prior = None
    elif isinstance(prior, str):
        from advprior.hub import load_pretrained

        prior = load_pretrained(prior)
    return prior, _kind(prior)


@contextmanager
def frozen(module: object):
    """Eval mode and no parameter gradients for the duration; the previous state is restored."""
    if not isinstance(module, nn.Module):
        yield
        return
    was_training = module.training
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        module.train(was_training)


class PriorTerm:
    """The pose part of a fit for one prior: ``dim`` free numbers per frame, :meth:`pose`,
    :meth:`energy` and :meth:`latent`."""

    def __init__(self, prior: object, kind: str, density: object | None = None,
                 density_weight: float = 0.0) -> None:
        self.prior = prior
        self.kind = kind
        if density is not None and (kind != "gan" or getattr(prior, "latent", None) != "sphere"):
            raise ValueError("latent_density is a density on the latent sphere: it needs a "
                             f"sphere-latent prior (GAN-S), got a {kind!r} prior")
        if density is not None and int(density.dim) != int(prior.latent_dim):
            raise ValueError(f"latent_density has dimension {density.dim}, the prior's latent "
                             f"{prior.latent_dim}")
        self.density = density
        self.density_weight = float(density_weight)
        self.latent_kind = getattr(prior, "latent", None) if kind == "gan" else None
        if kind in ("gan", "vae"):
            self.dim = int(prior.latent_dim)
        else:
            self.dim = int(getattr(prior, "dim", POSE_DIM)) if kind == "gmm" else POSE_DIM
        if self.dim <= 0 or (kind in ("gmm", "none") and self.dim != POSE_DIM):
            raise ValueError(f"a GMM prior must model {POSE_DIM}-d body poses, got dim {self.dim}")

    @property
    def has_latent(self) -> bool:
        return self.kind in ("gan", "vae")

    @property
    def staged(self) -> bool:
        """Whether the energy is weighted by the stage schedule (else a fixed weight)."""
        return self.kind in ("vae", "gmm") or (self.kind == "gan" and self.latent_kind == "normal")

    def _param(self) -> Tensor | None:
        if not isinstance(self.prior, nn.Module):
            return None
        return next(iter(self.prior.parameters()), None)

    def init(self, n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The starting point ``(n, dim)``, the same for every frame (so frames stay independent):
        the latent origin (VAE, normal and uniform GANs), the medoid of decoded samples (sphere),
        the mixture's weighted mean pose as SMPLify (GMM), the zero pose (no prior)."""
        if self.kind == "gan" and self.latent_kind == "sphere":
            gen = torch.Generator().manual_seed(0)
            z = self.prior.latent_space.sample(_INIT_SAMPLES, generator=gen, dtype=dtype)
            p = self._param()
            with torch.no_grad():
                rot = self.prior.decode(z.to(p.device, p.dtype), output="rotmat").to(dtype).cpu()
            flat = rot.reshape(len(z), -1)
            # Squared Frobenius distances between all pairs via one matmul.
            sq = (flat * flat).sum(-1)
            dist = sq[:, None] + sq[None, :] - 2 * flat @ flat.T
            z0 = z[dist.sum(1).argmin()]
        elif self.kind in ("gan", "vae"):
            z0 = torch.zeros(self.dim, dtype=dtype)
        elif self.kind == "gmm":
            z0 = (self.prior.weights[:, None] * self.prior.means).sum(0).to(dtype).cpu()
        else:
            z0 = torch.zeros(POSE_DIM, dtype=dtype)
        return z0.to(device).expand(n, -1).clone()

    def starts(self, s: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """``s`` starting points ``(s, dim)`` for multi-start fits, the same for every frame:
        :meth:`init`'s point first. Then, for latent priors, the latents of representative
        decoded samples: greedy k-medoids (PAM's BUILD step, chordal distance of the joint
        rotations) over :data:`_INIT_SAMPLES` seeded samples, each next one the sample that most
        lowers the total distance of all samples to their nearest chosen pose, so the starts are
        common poses that differ; for the GMM the means of its heaviest components."""
        first = self.init(1, dtype, device)
        if s == 1 or self.kind == "none":
            return first.expand(s, -1).clone()
        if self.kind == "gmm":
            # Heaviest component means first; a mixture with fewer components than starts
            # repeats them (a repeated start costs time, never accuracy).
            order = torch.argsort(self.prior.weights, descending=True)
            order = order.repeat(-(-(s - 1) // len(order)))[: s - 1]
            return torch.cat([first, self.prior.means[order].to(device=device, dtype=dtype)])
        gen = torch.Generator().manual_seed(0)
        p = self._param()
        z = self.prior.sample_latent(_INIT_SAMPLES, generator=gen).to(p.device, p.dtype)
        if self.kind == "gan":
            z = self.prior.project(z)
        with torch.no_grad():
            rot = self.prior.decode(z, output="rotmat").to(dtype).cpu()
            first_rot = self.prior.decode(self.pose_input(first), output="rotmat").to(dtype).cpu()
        flat = rot.reshape(len(z), -1)
        sq = (flat * flat).sum(-1)
        dist = (sq[:, None] + sq[None, :] - 2 * flat @ flat.T).clamp(min=0)
        f = first_rot.reshape(1, -1)
        nearest = ((flat - f) ** 2).sum(-1)                     # distance to the chosen set
        chosen = []
        for _ in range(s - 1):
            gain = (nearest[None, :] - dist).clamp(min=0).sum(1)   # total decrease per candidate
            best = int(gain.argmax())
            chosen.append(best)
            nearest = torch.minimum(nearest, dist[best])
        return torch.cat([first, z[chosen].to(device=device, dtype=dtype)])

    def pose_input(self, params: Tensor) -> Tensor:
        """``params`` as the latent the model decodes (projected onto a GAN's manifold)."""
        z = self._model_input(params)
        return self.prior.project(z) if self.kind == "gan" else z

    def _model_input(self, params: Tensor) -> Tensor:
        p = self._param()
        return params if p is None else params.to(p.dtype)

    def pose(self, params: Tensor) -> Tensor:
        """Body pose ``(n, 63)`` (axis-angle, radians) from the free numbers ``(n, dim)``."""
        if self.kind == "gan":
            out = self.prior(self.prior.project(self._model_input(params)))
        elif self.kind == "vae":
            out = self.prior.decode(self._model_input(params))
        else:
            out = params
        return out.to(params.dtype)

    def energy(self, params: Tensor, pose: Tensor) -> Tensor:
        """Unweighted prior energy per frame ``(n,)``."""
        if self.kind == "gmm":
            return self.prior.nll(self._model_input(pose)).to(pose.dtype)
        if self.kind == "none":
            return (pose * pose).sum(-1)
        if self.staged:
            return (params * params).sum(-1)
        return params.new_zeros(params.shape[0])

    def density_energy(self, params: Tensor) -> Tensor:
        """``density_weight * nll(z)`` of the latent density at the projected latent ``(n,)``
        (0 without a density): a preference for common poses, per frame."""
        if self.density is None or self.density_weight == 0.0:
            return params.new_zeros(params.shape[0])
        z = self.prior.project(self._model_input(params))
        return self.density_weight * self.density.nll(z).to(params.dtype)

    def gauge(self, params: Tensor) -> Tensor:
        """A term that changes no pose but keeps the free latent well-behaved, ``(n,)``:
        :func:`latent_gauge` for a GAN, 0 otherwise."""
        if self.kind == "gan":
            return latent_gauge(params, self.latent_kind)
        return params.new_zeros(params.shape[0])

    def latent(self, params: Tensor) -> Tensor | None:
        """The latent actually decoded ``(n, D)`` (projected for a GAN), or ``None``."""
        if self.kind == "gan":
            return self.prior.project(self._model_input(params)).to(params.dtype)
        if self.kind == "vae":
            return params
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "latent": self.latent_kind, "dim": self.dim}
