"""Latent spaces of the pose prior: how to sample, project onto, and interpolate in them.

Three kinds, as in the paper (GAN-S, GAN-U, GAN-N):

- ``"sphere"``: the unit sphere S^{D-1}; samples are normalised Gaussians, interpolation is slerp.
- ``"uniform"``: the cube [-1, 1]^D; uniform samples, projection clamps, linear interpolation.
- ``"normal"``: R^D with a N(0, I) prior; projection is the identity, interpolation is linear.

Every latent tensor is ``(..., D)`` and floating point; see :func:`check_latent`.
"""

from __future__ import annotations

import torch

LATENT_KINDS: tuple[str, ...] = ("sphere", "uniform", "normal")

# Below this norm a sphere latent has no direction; it is sent to a fixed pole instead of NaN.
_SPHERE_EPS = 1e-12


def check_latent(z: object, dim: int, name: str = "z") -> torch.Tensor:
    """Validate a latent batch and return it unchanged.

    Raises ``TypeError`` unless ``z`` is a floating-point ``torch.Tensor`` and ``ValueError``
    unless its shape is ``(..., dim)`` and every entry is finite. Empty batches are allowed.
    """
    if not isinstance(z, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape (..., {dim}), got {type(z).__name__}"
        )
    if not z.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (float32 or float64) of shape (..., {dim}), "
            f"got dtype {z.dtype}"
        )
    if z.ndim == 0 or z.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (..., {dim}), got {tuple(z.shape)}")
    if z.numel() and not bool(torch.isfinite(z).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return z


def check_generator(generator: object, name: str = "generator") -> torch.Generator | None:
    """``generator`` itself if it is None or a ``torch.Generator``; else a ``TypeError`` naming
    the argument (a seed int or a numpy Generator would otherwise fail deep inside torch)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__} "
            f"(for a seed use torch.Generator().manual_seed(seed))"
        )
    return generator


def check_decoded(out: torch.Tensor, z: torch.Tensor, name: str = "z") -> torch.Tensor:
    """``out`` if finite; else a ``ValueError`` for finite latents too large for the network
    (e.g. 1e38 overflows float32 in the first layer) naming the argument and its largest entry."""
    if out.numel() and not bool(torch.isfinite(out).all()):
        raise ValueError(
            f"{name} is too large to decode: the network's output overflowed {out.dtype} "
            f"(max |{name}| = {float(z.abs().max()):.3g}); latents are meant to be O(1): project "
            "them onto the latent space first (prior.project)"
        )
    return out


class LatentSpace:
    """A latent space of kind ``"sphere"``, ``"uniform"`` or ``"normal"`` and dimension ``dim``."""

    def __init__(self, kind: str = "sphere", dim: int = 32) -> None:
        if kind not in LATENT_KINDS:
            raise ValueError(f"latent kind must be one of {LATENT_KINDS}, got {kind!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
            raise ValueError(f"latent dim must be an int >= 2, got {dim!r}")
        self.kind = kind
        self.dim = dim

    def __repr__(self) -> str:
        return f"LatentSpace(kind={self.kind!r}, dim={self.dim})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LatentSpace) and (self.kind, self.dim) == (other.kind, other.dim)

    def __hash__(self) -> int:
        return hash((self.kind, self.dim))

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` latents ``(n, dim)`` from the prior distribution of this space.

        The draw happens on ``generator``'s device (so a seeded CPU generator gives the same
        numbers whatever ``device`` is) and never touches the global RNG when a generator is given.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        check_generator(generator)
        dtype = dtype or torch.get_default_dtype()
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype}")
        draw_device = generator.device if generator is not None else device
        shape = (n, self.dim)
        if self.kind == "uniform":
            z = torch.rand(shape, generator=generator, device=draw_device, dtype=dtype) * 2 - 1
        else:
            z = torch.randn(shape, generator=generator, device=draw_device, dtype=dtype)
            if self.kind == "sphere":
                z = self.project(z)
        return z.to(device) if device is not None else z

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest point of the space to ``z`` ``(..., dim)``; differentiable.

        Sphere: ``z / |z|`` (a latent of norm below 1e-12 maps to the pole ``e_0``, so the result
        is always finite); uniform: clamp to [-1, 1]; normal: ``z`` itself.
        """
        check_latent(z, self.dim)
        if self.kind == "uniform":
            return z.clamp(-1.0, 1.0)
        if self.kind == "normal":
            return z
        norm = z.norm(dim=-1, keepdim=True)
        pole = torch.zeros_like(z)
        pole[..., 0] = 1.0
        return torch.where(norm > _SPHERE_EPS, z / norm.clamp_min(_SPHERE_EPS), pole)

    def contains(self, z: torch.Tensor, atol: float = 1e-5) -> torch.Tensor:
        """Boolean ``(...)``: whether each latent lies in the space up to ``atol``."""
        check_latent(z, self.dim)
        if self.kind == "sphere":
            return (z.norm(dim=-1) - 1).abs() <= atol
        if self.kind == "uniform":
            return (z.abs() <= 1 + atol).all(dim=-1)
        return torch.ones(z.shape[:-1], dtype=torch.bool, device=z.device)

    def interpolate(self, z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
        """Path of ``steps`` latents from ``z0`` to ``z1``, both endpoints included.

        ``z0``, ``z1``: ``(dim,)`` gives ``(steps, dim)``; ``(B, dim)`` gives ``(B, steps, dim)``.
        The endpoints are first projected onto the space. Sphere: slerp along the great circle,
        constant angular step; identical endpoints give a constant path; antipodal endpoints
        follow the deterministic great circle through the coordinate axis least aligned with
        ``z0``. Uniform and normal: straight line, constant step.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(
                f"steps must be an int >= 2 (both endpoints are included), got {steps!r}"
            )
        z0 = self.project(check_latent(z0, self.dim, "z0"))
        z1 = self.project(check_latent(z1, self.dim, "z1"))
        if z0.shape != z1.shape or z0.ndim > 2:
            raise ValueError(
                f"z0 and z1 must both be ({self.dim},) or both (B, {self.dim}), "
                f"got {tuple(z0.shape)} and {tuple(z1.shape)}"
            )
        t = torch.linspace(0.0, 1.0, steps, device=z0.device, dtype=z0.dtype)[:, None]
        a, b = z0.unsqueeze(-2), z1.unsqueeze(-2)  # (..., 1, D)
        if self.kind != "sphere":
            return a + t * (b - a)
        return _slerp(a, b, t)


def _slerp(u: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great-circle path between unit vectors ``u``, ``v`` ``(..., 1, D)`` at fractions ``t``."""
    dot = (u * v).sum(-1, keepdim=True)
    perp = v - dot * u
    perp_norm = perp.norm(dim=-1, keepdim=True)
    # atan2 of (sin, cos) is accurate at both ends, unlike acos(dot) near 0 and pi.
    omega = torch.atan2(perp_norm, dot)
    # When v is (anti)parallel to u the direction perp vanishes; any unit vector orthogonal to u
    # then spans a valid great circle, so take the least-aligned coordinate axis (deterministic).
    axis = torch.zeros_like(u).scatter_(-1, u.abs().argmin(dim=-1, keepdim=True), 1.0)
    fallback = axis - (axis * u).sum(-1, keepdim=True) * u
    # Below a few ulps perp is pure rounding noise; elsewhere it is the true direction (at any
    # dtype), so a fixed threshold such as 1e-6 would bend short float64 paths off their arc.
    direction = torch.where(perp_norm > 8 * torch.finfo(u.dtype).eps, perp, fallback)
    # Re-orthogonalise: perp loses orthogonality to cancellation when v is nearly antipodal.
    direction = direction - (direction * u).sum(-1, keepdim=True) * u
    direction = direction / direction.norm(dim=-1, keepdim=True)
    angle = t * omega
    path = torch.cos(angle) * u + torch.sin(angle) * direction
    # Return the exact endpoints rather than their trigonometric reconstruction.
    return torch.cat([u, path[..., 1:-1, :], v], dim=-2)
