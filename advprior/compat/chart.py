"""A VPoser-style chart of a prior's latent space: ``z in R^D``, ``z = 0`` a typical pose, latents
of real poses about unit variance per dimension.

VPoser code treats its embedding as a Gaussian's: it starts and resets at ``z = 0`` (the most
typical pose), penalises ``w^2 |z|^2`` with weights tuned for latents of real poses having unit
variance, and lets the optimiser move ``z`` anywhere in ``R^D``. A GAN's latent space is a sphere
or a cube, where ``0`` is not a latent (on the sphere it has no direction and zero gradient) and
``|z|^2`` means nothing. :class:`LatentChart` maps ``R^D`` onto the prior's latent space so that
those habits keep their meaning:

- sphere (GAN-S): ``w = exp_c(s P_c z)``, the exponential map at the centre ``c`` of the tangent
  part ``P_c z = z - (z . c) c`` scaled by ``s``: ``exp_c(v) = cos|v| c + sin|v| v / |v|``.
  ``c`` is :meth:`advprior.PosePrior.typical_latent` (a typical pose, the start of
  ``fit_keypoints``); ``s`` makes the model's own latent samples (uniform on the sphere) unit
  variance per tangent dimension: ``s^2 = E|log_c w|^2 / (D - 1)`` over 4096 samples drawn with
  seed 0. The component of ``z`` along ``c`` does not change the pose (the sphere has ``D - 1``
  dimensions); an ``|z|^2`` term pulls it to 0.
- cube (GAN-U): ``w = erf(s z / sqrt 2) = 2 Phi(s z) - 1`` coordinate-wise (centre: the
  origin; ``Phi`` the standard normal CDF, which carries N(0, 1) onto U[-1, 1] exactly),
  ``s^2 = E[2 erfinv(u)^2]`` over the model's own samples ``u`` (1 up to sampling error).
- Gaussian (GAN-N, VAE): ``w = z``, already unit variance and centred.

The map is a pure function of ``z`` and of two buffers computed deterministically from the
weights, smooth everywhere (``sin|v| / |v|`` and ``cos|v|`` by their series near 0), with a
non-zero Jacobian at ``z = 0`` (``s P_c``, ``s sqrt(2 / pi)``, 1). :meth:`LatentChart.inverse`
is the log map (``sqrt 2 erfinv``, identity), so ``inverse(forward(z)) = z`` for ``z``
orthogonal to ``c`` with ``s |z| < pi``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advprior.latent import check_latent

__all__ = ["LatentChart", "chart_for"]

#: Samples of the prior's own latent distribution that set the chart's scale (seed 0).
SCALE_SAMPLES = 4096
# Below this |v|^2 the series of cos and sin(r)/r are exact to float64 rounding (r^6/720 < eps).
_SMALL_SQ = 1e-8
# Keeps erfinv finite for latents that rounded onto the cube's faces.
_CUBE_EDGE = 1.0 - 1e-6


def _cos_sinc(sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos(r)`` and ``sin(r) / r`` of ``r = sqrt(sq)``, with finite values and gradients at 0."""
    small = sq < _SMALL_SQ
    safe = torch.where(small, torch.ones_like(sq), sq)
    r = safe.sqrt()
    cos = torch.where(small, 1 - sq / 2 + sq * sq / 24, torch.cos(r))
    sinc = torch.where(small, 1 - sq / 6 + sq * sq / 120, torch.sin(r) / r)
    return cos, sinc


class LatentChart(nn.Module):
    """``R^D`` -> the latent space of kind ``kind`` (``"sphere"``, ``"uniform"``, ``"normal"``).

    Args:
        kind: the prior's latent kind.
        centre: ``(D,)`` unit vector (sphere only; ignored otherwise).
        scale: ``s`` (see the module docstring); 1 for ``"normal"``.

    Build it for a model with :func:`chart_for`. ``forward(z (..., D)) -> (..., D)``; NaN/Inf
    propagate (no exception), so it is safe inside any optimiser.
    """

    def __init__(self, kind: str, centre: torch.Tensor, scale: float) -> None:
        super().__init__()
        if kind not in ("sphere", "uniform", "normal"):
            raise ValueError(f"kind must be 'sphere', 'uniform' or 'normal', got {kind!r}")
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        check_latent(centre, centre.shape[-1] if centre.ndim else 1, "centre")
        if centre.ndim != 1:
            raise ValueError(f"centre must have shape (D,), got {tuple(centre.shape)}")
        if kind == "sphere":
            centre = centre / centre.norm()
        self.kind = kind
        self.dim = int(centre.shape[0])
        self.scale = float(scale)
        self.register_buffer("centre", centre.detach().clone())

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, dim={self.dim}, scale={self.scale:.6g}"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(..., D)`` on the prior's manifold for chart coordinates ``z (..., D)``."""
        check_latent(z, self.dim, finite=False)
        if self.kind == "normal":
            return z * self.scale if self.scale != 1.0 else z
        if self.kind == "uniform":
            return torch.erf(self.scale * z / math.sqrt(2.0))
        c = self.centre.to(z.dtype)
        v = self.scale * (z - (z * c).sum(-1, keepdim=True) * c)
        cos, sinc = _cos_sinc((v * v).sum(-1, keepdim=True))
        return cos * c + sinc * v

    def inverse(self, w: torch.Tensor) -> torch.Tensor:
        """Chart coordinates ``(..., D)`` of latents ``w (..., D)`` on the manifold (sphere: the
        log map at the centre, orthogonal to it; antipodal points of the centre are ambiguous and
        map to a point at distance pi / s)."""
        check_latent(w, self.dim, "w", finite=False)
        if self.kind == "normal":
            return w / self.scale if self.scale != 1.0 else w
        if self.kind == "uniform":
            return math.sqrt(2.0) * torch.erfinv(w.clamp(-_CUBE_EDGE, _CUBE_EDGE)) / self.scale
        c = self.centre.to(w.dtype)
        w = w / w.norm(dim=-1, keepdim=True)
        cos = (w * c).sum(-1, keepdim=True)
        perp = w - cos * c
        sin = perp.norm(dim=-1, keepdim=True)
        angle = torch.atan2(sin, cos)
        # Antipodes: no direction; take the deterministic least-aligned axis (as slerp does).
        axis = torch.zeros_like(c).scatter_(-1, c.abs().argmin(-1, keepdim=True), 1.0)
        axis = axis - (axis * c).sum() * c
        direction = torch.where(
            sin > 8 * torch.finfo(w.dtype).eps, perp / sin.clamp_min(1e-30), axis / axis.norm()
        )
        return angle * direction / self.scale


def _sphere_log_sq(w: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    cos = (w * c).sum(-1)
    sin = (w - cos[:, None] * c).norm(dim=-1)
    return torch.atan2(sin, cos) ** 2


@torch.no_grad()
def chart_for(model: nn.Module) -> LatentChart:
    """The chart of any prior with a latent space (:class:`advprior.interface.Prior` with
    ``latent_space`` not None: a :class:`advprior.PosePrior`, a VAE), on the model's device and
    dtype; a pure function of its weights."""
    space = getattr(model, "latent_space", None)
    kind = getattr(space, "kind", None)
    dim = getattr(space, "dim", None)
    if kind not in ("sphere", "uniform", "normal") or not isinstance(dim, int):
        raise TypeError(
            f"{type(model).__name__} has no latent space to chart (a GMM has none: export it "
            "with GMMPrior.export_smplify for SMPLify's MaxMixturePrior instead)"
        )
    p = next(model.parameters())
    if kind == "normal":
        return LatentChart("normal", torch.zeros(dim, dtype=p.dtype), 1.0).to(p.device)
    gen = torch.Generator().manual_seed(0)
    samples = space.sample(SCALE_SAMPLES, generator=gen, dtype=torch.float64)
    if kind == "uniform":
        u = samples.clamp(-_CUBE_EDGE, _CUBE_EDGE)
        scale = float((2.0 * torch.erfinv(u).pow(2).mean()).sqrt())
        return LatentChart("uniform", torch.zeros(dim, dtype=p.dtype), scale).to(p.device)
    centre = model.fit_start().double().cpu()
    centre = centre / centre.norm()
    scale = float((_sphere_log_sq(samples, centre).mean() / (dim - 1)).sqrt())
    return LatentChart("sphere", centre.to(p.dtype), scale).to(p.device)
