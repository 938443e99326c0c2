"""Shortest paths between two poses through a prior's latent space (geodesic interpolation).

A slerp (or straight line) in the latent space is a straight path for the latent, not for the
body: where the generator folds its latent space, the decoded path can pass through a third
pose (two standing poses joined through a kick). :func:`geodesic_path` keeps both end latents
and moves the ``steps - 2`` inner latents, starting from the prior's own interpolation, to
minimise the discrete path energy of the decoded poses,

    E = (steps - 1) * sum_k d(pose_k, pose_k+1)^2,
    d^2 = mean_j |R_j - R'_j|_F^2 + joint_weight * mean_j |p_j - p'_j|^2,

the same pose distance as :func:`advprior.inversion.invert` (rotations of the 21 body joints,
positions ``p`` in metres of the 24 joints with zero global orientation). By Cauchy-Schwarz,
``E >= L^2`` for the path length ``L = sum_k d_k``, with equality only at equal steps, so a
minimiser is a shortest path of the decoded poses walked at constant speed (Shao et al. 2018,
"The Riemannian geometry of deep generative models"; Chen et al. 2018, "Metrics for deep
generative models"). Every inner pose is still a decoding of a latent on the prior's manifold,
so the path stays inside what the prior generates; it is as plausible as the prior is. The
paths are found by a local search (batched L-BFGS, :mod:`advprior.lbfgs`), so they are locally
shortest, not guaranteed globally shortest; their energy never exceeds the starting path's.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from advprior.inversion import GAUGE_WEIGHT, frozen, with_autograd
from advprior.latent import check_latent
from advprior.lbfgs import minimize_lbfgs
from advprior.skeleton import NUM_BODY_JOINTS
from advprior.tensors import chunk_bounds

if TYPE_CHECKING:
    from advprior.interface import Prior

__all__ = ["geodesic_path", "path_energy"]

#: L-BFGS iterations of :func:`geodesic_path`. Chosen on 128 validation pairs (16 steps): GAN-S's
#: path ratio mean 1.70 (slerp) -> 1.14 / 1.08 / 1.07 after 100 / 300 / 600 iterations, at
#: 10 / 23 / 43 s per 128 paths on one CPU thread (docs/results.md "Geodesic paths").
DEFAULT_ITERATIONS = 300
#: Latents (paths x steps) one optimisation of :func:`geodesic_path` takes at most (a single
#: longer path is one problem, optimised whole): ~35 KB each in the objective's graph.
CHUNK_LATENTS = 16384
#: Weight of the joint-position term (metres^2) against the rotation term, as in ``invert``.
DEFAULT_JOINT_WEIGHT = 100.0


def path_energy(
    prior: Prior,
    path: Tensor,
    *,
    joint_weight: float = DEFAULT_JOINT_WEIGHT,
    body_model: object | None = None,
) -> Tensor:
    """Discrete energy ``(...)`` of latent paths ``(..., T, D)`` (module docstring): ``(T - 1)``
    times the sum of squared pose distances between consecutive decoded latents (``decode``
    projects them onto the manifold first); differentiable in ``path``. Takes what
    :func:`geodesic_path` and ``Prior.interpolate`` return: ``(T, D)`` for one path gives a
    0-d energy, ``(B, T, D)`` gives ``(B,)``."""
    from advprior.body import forward_kinematics_rotmat, rest_joints

    space = prior.latent_space
    if space is None:
        raise TypeError(f"{type(prior).__name__} has no latent space to measure paths in")
    check_latent(path, space.dim, "path", finite=False)
    if path.ndim < 2:
        raise ValueError(f"path must have shape (..., T, {space.dim}), got {tuple(path.shape)}")
    lead = path.shape[:-2]
    path = path.reshape(-1, *path.shape[-2:])
    b, t, d = path.shape
    rot = prior.decode(path.reshape(b * t, d), output="rotmat", body="smplx")  # (b t, 21, 3, 3)
    pelvis = torch.eye(3, dtype=rot.dtype, device=rot.device).expand(b * t, 1, 3, 3)
    rest = rest_joints(body_model, dtype=rot.dtype, device=rot.device)
    pos = forward_kinematics_rotmat(torch.cat([pelvis, rot], 1), rest)
    pos = pos.reshape(b, t, *pos.shape[1:])  # not -1: ambiguous for an empty batch
    rot = rot.reshape(b, t, NUM_BODY_JOINTS, 3, 3)
    d_rot = (rot[:, 1:] - rot[:, :-1]).pow(2).sum((-1, -2)).mean(-1)
    d_pos = (pos[:, 1:] - pos[:, :-1]).pow(2).sum(-1).mean(-1)
    return ((t - 1) * (d_rot + joint_weight * d_pos).sum(-1)).reshape(lead)


@with_autograd
def geodesic_path(
    prior: Prior,
    z0: Tensor,
    z1: Tensor,
    steps: int,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    joint_weight: float = DEFAULT_JOINT_WEIGHT,
    body_model: object | None = None,
) -> Tensor:
    """Locally shortest latent path of ``steps`` latents from ``z0`` to ``z1``, ends included.

    Args:
        prior: a latent prior (:class:`advprior.interface.Prior` with a ``latent_space``).
        z0, z1: ``(D,)`` or ``(B, D)`` end latents (projected onto the manifold; they are kept).
        steps: latents on the path, ``>= 2``.
        iterations: L-BFGS iterations (0 returns the prior's own interpolation).
        joint_weight: weight of the joint positions in the pose distance.
        body_model: body whose rest joints give the joint positions (stand-in when None).

    Returns:
        ``(..., steps, D)`` latents on the manifold (``...`` the ends' broadcast leading shape:
        ``(steps, D)`` for two ``(D,)`` ends), detached, ``[..., 0, :]``
        and ``[..., -1, :]`` the projected ends. Starts from the prior's ``interpolate``
        (slerp on the sphere, linear otherwise) and lowers the decoded path's energy; each
        pair is optimised independently of the others in its batch (:mod:`advprior.lbfgs`).
    """
    space = prior.latent_space
    if space is None:
        raise TypeError(f"{type(prior).__name__} has no latent space to interpolate in")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
        raise ValueError(f"iterations must be a non-negative int, got {iterations!r}")
    check_latent(z0, space.dim, "z0")
    check_latent(z1, space.dim, "z1")
    start = space.interpolate(z0, z1, steps)  # checks steps and the shapes
    lead = start.shape[:-2]  # the ends' broadcast leading shape: one path per entry
    path = start.reshape(-1, *start.shape[-2:])
    b, t, d = path.shape
    if t > 2 and iterations > 0 and b > 0:
        # optimised in the prior's dtype (ends of another float dtype interpolate as they do
        # without geodesic=True, in their own dtype, and come back in it)
        work = path.to(prior.dtype)
        # Paths are optimised a chunk at a time: the objective's graph holds ~35 KB per latent
        # (1,000 paths of 1,000 steps: ~35 GB). Every path is its own problem (advprior.lbfgs);
        # chunks of paths x steps a multiple of 64 latents, and a last chunk not under 64
        # latents, run the same kernels as one batch.
        q = 64 // math.gcd(t, 64)
        per = max(q, CHUNK_LATENTS // t // q * q)
        with frozen(prior):
            inner = torch.cat(
                [
                    _shorten(prior, work[i:j], iterations, joint_weight, body_model)
                    for i, j in chunk_bounds(b, per, min_last=-(-64 // t))
                ]
            )
        path = torch.cat([path[:, :1], inner.to(path.dtype), path[:, -1:]], 1)
    return path.detach().reshape(*lead, t, d)


def _shorten(
    prior: Prior, work: Tensor, iterations: int, joint_weight: float, body_model: object | None
) -> Tensor:
    """The projected inner latents ``(b, t - 2, D)`` of paths ``work (b, t, D)`` after
    ``iterations`` of L-BFGS on :func:`path_energy` (ends kept)."""
    space = prior.latent_space
    b, t, d = work.shape
    ends0, ends1 = work[:, :1], work[:, -1:]

    def energy(x: Tensor) -> Tensor:
        inner = x.view(b, t - 2, d)
        full = torch.cat([ends0, inner, ends1], 1)
        # The gauge fixes the inner latents' free radius (sphere) and keeps them inside the
        # cube, where projecting has a gradient; it does not change the decoded poses.
        gauge = GAUGE_WEIGHT * space.gauge(inner).sum(-1)
        return path_energy(prior, full, joint_weight=joint_weight, body_model=body_model) + gauge

    res = minimize_lbfgs(energy, work[:, 1:-1].reshape(b, -1), max_iter=iterations)
    return space.project(res.x.view(b, t - 2, d))
