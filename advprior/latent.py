"""Latent spaces of the pose prior: how to sample, project onto, and interpolate in them.

Three kinds, as in the paper (GAN-S, GAN-U, GAN-N):

- ``"sphere"``: the unit sphere S^{D-1}; samples are normalised Gaussians, interpolation is slerp.
- ``"uniform"``: the cube [-1, 1]^D; uniform samples, projection clamps, linear interpolation.
- ``"normal"``: R^D with a N(0, I) prior; projection is the identity, interpolation is linear.

Every latent tensor is ``(..., D)`` and floating point; see :func:`check_latent`.
"""

from __future__ import annotations

import torch

from advprior.tensors import check_tensor

LATENT_KINDS: tuple[str, ...] = ("sphere", "uniform", "normal")

# Below this norm a sphere latent has no direction; it is sent to a fixed pole instead of NaN.
_SPHERE_EPS = 1e-12
# Smallest norm map_unconstrained divides by. (A trained layer's output is never exactly zero; a
# zero-initialised one's is, and has no direction: LatentHead warns.)
_MAP_EPS = 1e-8


def check_latent(z: object, dim: int, name: str = "z", *, finite: bool = True) -> torch.Tensor:
    """Validate a latent batch ``(..., dim)`` and return it unchanged.

    Raises ``TypeError`` unless ``z`` is a floating-point ``torch.Tensor`` and ``ValueError``
    unless its shape is ``(..., dim)`` and (with ``finite``) every entry is finite. Empty batches
    are allowed (:func:`advprior.tensors.check_tensor` with the latent's size). Functions that run
    inside an optimiser's forward pass (``decode``, ``project``) pass ``finite=False``: a line
    search may try a NaN/Inf step and must see NaN/Inf come back, as from any torch op, not an
    exception; data the user hands in (``init``, endpoints, poses to invert) is checked in full.
    """
    return check_tensor(z, name, dim, finite=finite)


def check_generator(generator: object, name: str = "generator") -> torch.Generator | None:
    """``generator`` itself if it is None or a ``torch.Generator``; else a ``TypeError`` naming
    the argument (a seed int or a numpy Generator would otherwise fail deep inside torch)."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__} "
            f"(for a seed use torch.Generator().manual_seed(seed))"
        )
    return generator


def draw_device(
    generator: torch.Generator | None, device: torch.device | str | None
) -> torch.device | str | None:
    """Where a sampler draws: on ``generator``'s device when one is given (torch's functions
    refuse a generator of another device, and a seeded CPU generator then gives the same
    numbers whatever device the result goes to), else on ``device`` (None: torch's default).
    The sampler moves the draw to ``device`` afterwards."""
    return generator.device if generator is not None else device


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
        where = draw_device(generator, device)
        shape = (n, self.dim)
        if self.kind == "uniform":
            z = torch.rand(shape, generator=generator, device=where, dtype=dtype) * 2 - 1
        else:
            z = torch.randn(shape, generator=generator, device=where, dtype=dtype)
            if self.kind == "sphere":
                z = self.project(z)
        return z.to(device) if device is not None else z

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest point of the space to ``z`` ``(..., dim)``; differentiable.

        Sphere: ``z / |z|``, overflow-safe for any finite ``z`` (a latent whose entries are all
        below 1e-12 in size has no direction and maps to the pole ``e_0`` with zero gradient: a
        zero start cannot move, see :meth:`advprior.LatentPose.reset` and :mod:`advprior.compat`);
        uniform: clamp to [-1, 1]; normal: ``z`` itself. NaN/Inf entries propagate (no
        exception), as in any torch op. A float16 ``z`` is projected in float32 and rounded.
        """
        check_latent(z, self.dim, finite=False)
        if self.kind == "uniform":
            return z.clamp(-1.0, 1.0)
        if self.kind == "normal":
            return z
        if z.dtype == torch.float16:
            # 1e-12 is 0 in float16: a zero latent's unused branch below is 0/0, whose NaN
            # reached the gradient through torch.where. Computed in float32 and rounded.
            return self.project(z.float()).half()
        # Divide by the largest entry first: |z|^2 of a finite latent as large as 1e20 overflows
        # float32 (z / inf would be 0, a wrong direction); the direction is unchanged by it.
        scale = z.abs().amax(dim=-1, keepdim=True)
        unit = z / scale.clamp_min(_SPHERE_EPS)
        unit = unit / unit.norm(dim=-1, keepdim=True).clamp_min(_SPHERE_EPS)
        pole = torch.zeros_like(z)
        pole[..., 0] = 1.0
        # ``scale <= eps`` is False for NaN, so NaN propagates instead of becoming the pole.
        return torch.where(scale <= _SPHERE_EPS, pole, unit)

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        """The latent prior's energy ``(...)`` (twice the negative log-density, up to a constant):
        ``|z|^2`` for the normal latent; 0 on the sphere and the cube, whose prior is uniform
        (the manifold itself is the prior there). A fit in the latent adds it, weighted."""
        if self.kind == "normal":
            return (z * z).sum(-1)
        return z.new_zeros(z.shape[:-1])

    def gauge(self, z: torch.Tensor) -> torch.Tensor:
        """Pose-neutral penalty ``(...)`` on a free latent ``z (..., dim)`` decoded after
        :meth:`project`.

        Sphere: ``(|z|^2 - 1)^2``: the pose depends on the direction of ``z`` only, so this fixes
        the free radial direction (and keeps the angular step per unit of ``z`` constant).
        Uniform: ``sum relu(|z_i| - 1)^2``: clamping has zero gradient outside the cube, so a
        coordinate that left it would stay stuck on the face; this pulls it back inside. Zero on
        the manifold in both cases; zero for the normal latent.
        """
        if self.kind == "sphere":
            return ((z * z).sum(-1) - 1) ** 2
        if self.kind == "uniform":
            return (torch.relu(z.abs() - 1) ** 2).sum(-1)
        return z.new_zeros(z.shape[:-1])

    def map_unconstrained(self, x: torch.Tensor) -> torch.Tensor:
        """A smooth map from any ``x (..., dim)`` (a network's raw output) into the space.

        Sphere: ``x / |x|`` (norm clamped at 1e-8; float16 ``x`` is mapped in float32 and
        rounded); uniform: ``tanh`` (inside the cube, smooth, unlike the clamp of
        :meth:`project`); normal: ``x`` itself.
        """
        if self.kind == "sphere":
            norm = x.norm(dim=-1, keepdim=True)
            if norm.dtype == torch.float16:
                # A .half() model (or CPU autocast, which keeps norm in float16): the clamp's
                # 1e-8 is 0 in float16, so a zero row gave NaN, and the backward divides by
                # |x|^2, which underflows below |x| = 2.4e-4 (infinite gradients for a
                # small-gain output layer). Computed in float32 and rounded.
                wide = x.float()
                return (wide / wide.norm(dim=-1, keepdim=True).clamp(min=_MAP_EPS)).half()
            return x / norm.clamp(min=_MAP_EPS)
        if self.kind == "uniform":
            return torch.tanh(x)
        return x

    def contains(self, z: torch.Tensor, atol: float | None = None) -> torch.Tensor:
        """Boolean ``(...)``: whether each latent lies in the space up to ``atol``.

        ``atol`` None: 1e-5, or the machine epsilon of ``z``'s dtype where that is larger
        (float16, bfloat16), whose rounding alone moves a unit vector's norm by up to ~0.7 eps:
        with 1e-5 a fifth of their own samples and projections were "not on the sphere"."""
        check_latent(z, self.dim)
        if atol is None:
            atol = max(1e-5, torch.finfo(z.dtype).eps)
        if self.kind == "sphere":
            # the norm in at least float32: rounding it to float16 adds up to another eps
            wide = z if z.dtype in (torch.float32, torch.float64) else z.float()
            return (wide.norm(dim=-1) - 1).abs() <= atol
        if self.kind == "uniform":
            return (z.abs() <= 1 + atol).all(dim=-1)
        return torch.ones(z.shape[:-1], dtype=torch.bool, device=z.device)

    def interpolate(self, z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
        """Path of ``steps`` latents from ``z0`` to ``z1``, both endpoints included.

        ``z0``, ``z1``: ``(dim,)`` gives ``(steps, dim)``; ``(B, dim)`` gives ``(B, steps, dim)``;
        any leading shapes that broadcast together, ``(..., dim)``, give ``(..., steps, dim)``
        (one end ``(dim,)`` and the other ``(B, dim)``: B paths from one latent).
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
        try:
            z0, z1 = torch.broadcast_tensors(z0, z1)
        except RuntimeError:
            raise ValueError(
                f"z0 and z1 must have shapes that broadcast, (..., {self.dim}), "
                f"got {tuple(z0.shape)} and {tuple(z1.shape)}"
            ) from None
        t = torch.linspace(0.0, 1.0, steps, device=z0.device, dtype=z0.dtype)[:, None]
        a, b = z0.unsqueeze(-2), z1.unsqueeze(-2)  # (..., 1, D)
        if self.kind != "sphere":
            # a + 1 * (b - a) is not b in floating point: the ends are put back exactly, as on
            # the sphere, so that the path's last pose is the decoded z1
            a, b = torch.broadcast_tensors(a, b)
            return torch.cat([a, (a + t * (b - a))[..., 1:-1, :], b], dim=-2)
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
    # (a comparison with arange, not scatter_, which torch.func.vmap runs by a slow fallback)
    least = u.abs().argmin(dim=-1, keepdim=True)
    axis = (torch.arange(u.shape[-1], device=u.device) == least).to(u.dtype)
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
