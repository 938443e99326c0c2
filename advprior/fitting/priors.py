"""How a prior enters a fit: its free variables, the pose they give, its energy.

Only the prior interface (:class:`advprior.interface.Prior`) is used:

- a latent prior (``latent_space`` not None: ``PosePrior``, ``VPoserVAE``, ...): the free numbers
  are a latent ``z``; pose ``decode(z)`` (which decodes ``project(z)``) -- exactly
  :class:`advprior.LatentPose`'s forward, so the pose is on the prior's manifold at every
  evaluation. Energy
  ``prior.energy(pose, z)`` (``|z|^2`` for a normal latent, as VPoser; none on the sphere and the
  cube, where the manifold is the prior), plus :meth:`LatentSpace.gauge` on the free ``z``.
- a pose-space prior (``GMMPrior``, ...): the free numbers are the pose; energy
  ``prior.energy(pose)`` (the GMM: SMPLify's max-mixture negative log-likelihood).
- ``None``: free pose; energy ``||pose||^2`` with a small fixed weight, only so that a joint
  without a keypoint has a defined optimum.

A sphere-latent prior has no energy of its own: every pose on its manifold is equally likely,
so among the poses that explain the keypoints it has no reason to prefer the common one.
:func:`resolve_pose_density` gives it one by default (``"auto"``): the bundled GMM's negative
log-likelihood of the decoded pose at a fixed weight (:data:`POSE_DENSITY_WEIGHT`), chosen on
the validation split (``docs/fitting.md``); priors with an energy of their own get none.

Fits start from :meth:`Prior.fit_start`.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from advprior.hub import load_files, load_pretrained, resolve_alias
from advprior.interface import Prior, frozen
from advprior.latent import LatentSpace
from advprior.skeleton import NUM_BODY_JOINTS

__all__ = [
    "POSE_DENSITY_WEIGHT",
    "POSE_DIM",
    "PriorTerm",
    "frozen",
    "latent_gauge",
    "resolve_pose_density",
    "resolve_prior",
]

POSE_DIM = 3 * NUM_BODY_JOINTS
#: Weight of the pose density's energy, constant over the pose stages (squared pixels per nat).
#: Chosen for GAN-S with the bundled GMM on the validation split (two draws of 128 frames, SMPL-24,
#: COCO-17 and BODY_25 keypoints; ``docs/fitting.md``): weights 1, 2 and 3 tie (72.7-72.8 mm mean
#: P-MPJPE against 77.6 without), 0.3 and 10 are worse; 2 is the middle of that plateau.
POSE_DENSITY_WEIGHT = 2.0
#: The pose density ``"auto"`` gives a sphere-latent prior.
AUTO_POSE_DENSITY = "gmm"


def latent_gauge(z: Tensor, kind: str | None) -> Tensor:
    """Penalty ``(n,)`` on a free latent ``z (n, D)`` of latent kind ``kind`` (None: zero);
    :meth:`advprior.latent.LatentSpace.gauge`."""
    if kind is None:
        return z.new_zeros(z.shape[:-1])
    return LatentSpace(kind, z.shape[-1]).gauge(z)


def resolve_prior(prior: object) -> tuple[Prior | None, str]:
    """Load ``prior`` when it is an alias/path (via :func:`advprior.hub.load_pretrained`; the
    string ``"none"`` means no prior) and return ``(model, model_type)``, ``model_type``
    ``"none"`` without a prior."""
    if isinstance(prior, str):
        prior = None if prior.lower() == "none" else load_pretrained(prior)
    if prior is None:
        return None, "none"
    if not isinstance(prior, Prior):
        raise TypeError(
            "prior must be an alias or path (str), an advprior.interface.Prior (a PosePrior, a "
            f"VPoserVAE, a GMMPrior, ...) or None, got {type(prior).__name__}"
        )
    return prior, prior.model_type


def resolve_pose_density(pose_density: object, prior: Prior | None) -> Prior | None:
    """The pose-space density a fit adds to ``prior``'s energy, or None.

    ``"auto"``: the bundled GMM (:data:`AUTO_POSE_DENSITY`) for a sphere-latent prior (GAN-S,
    which has no energy of its own), None for every other prior (measured on validation: adding
    the GMM made GAN-U's and the VAE's fits worse; the GMM prior has it already).
    ``None`` or ``"none"``: no density. Another string: an alias or path of a pose-space prior
    (:func:`advprior.hub.load_pretrained`). A pose-space :class:`advprior.interface.Prior`
    (``latent_space`` None, e.g. a :class:`advprior.baselines.GMMPrior`) is used as it is.
    A density on another device than ``prior`` is copied to ``prior``'s device (the caller's
    object is not moved).
    """
    if isinstance(pose_density, str):
        key = pose_density.lower()
        if key == "none":
            return None
        if key == "auto":
            space = None if prior is None else prior.latent_space
            if space is None or space.kind != "sphere":
                return None
            # the library's default, never a folder of that name in the working directory
            pose_density = load_files(resolve_alias(AUTO_POSE_DENSITY))
        else:
            named, pose_density = pose_density, load_pretrained(pose_density)
            if pose_density.latent_space is not None:
                # a wrong value, not a wrong type: the name loaded a model of another kind
                raise ValueError(
                    f"pose_density {named!r} is a latent prior ({pose_density.model_type}); it "
                    "must name a pose-space prior such as 'gmm'"
                )
    if pose_density is None:
        return None
    if not isinstance(pose_density, Prior) or pose_density.latent_space is not None:
        raise TypeError(
            "pose_density must be 'auto', 'none', None, an alias/path of a pose-space prior or a "
            "pose-space advprior.interface.Prior (latent_space None, e.g. a GMMPrior), got "
            + (
                f"a latent prior ({pose_density.model_type})"
                if isinstance(pose_density, Prior)
                else type(pose_density).__name__
            )
        )
    if (
        prior is not None
        and isinstance(pose_density, torch.nn.Module)
        and pose_density.device != prior.device
    ):
        # Module.to moves in place: a copy leaves the caller's density where it was.
        pose_density = copy.deepcopy(pose_density).to(prior.device)
    return pose_density


class PriorTerm:
    """The pose part of a fit for one prior (or None): ``dim`` free numbers per frame,
    :meth:`pose`, :meth:`energy`, :meth:`preference`, :meth:`gauge` and :meth:`latent`.

    ``density`` is a latent density (sphere priors only) weighted by ``density_weight``;
    ``pose_density`` a resolved pose-space prior (:func:`resolve_pose_density`) weighted by
    ``pose_weight``."""

    def __init__(
        self,
        prior: Prior | None,
        density: object | None = None,
        density_weight: float = 0.0,
        pose_density: Prior | None = None,
        pose_weight: float = 0.0,
    ) -> None:
        self.prior = prior
        self.space = None if prior is None else prior.latent_space
        self.dim = POSE_DIM if self.space is None else self.space.dim
        if density is not None and (self.space is None or self.space.kind != "sphere"):
            raise ValueError(
                "latent_density is a density on the latent sphere: it needs a sphere-latent "
                f"prior (GAN-S), got {'no prior' if prior is None else prior.model_type!r}"
            )
        if density is not None and int(density.dim) != self.dim:
            raise ValueError(
                f"latent_density has dimension {density.dim}, the prior's latent {self.dim}"
            )
        self.density = density
        self.density_weight = float(density_weight)
        self.pose_density = pose_density
        self.pose_weight = float(pose_weight)

    @property
    def has_latent(self) -> bool:
        return self.space is not None

    def init(self, n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The starting point ``(n, dim)``, the same for every frame (so frames stay
        independent): :meth:`Prior.fit_start`, or the zero pose without a prior."""
        if self.prior is None:
            start = torch.zeros(POSE_DIM, dtype=dtype)
        else:
            start = self.prior.fit_start().detach()
        return start.to(device=device, dtype=dtype).expand(n, -1).clone()

    def starts(self, s: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """``s`` starting points ``(s, dim)`` for multi-start fits, the same for every frame:
        :meth:`init`'s point first, then :meth:`advprior.interface.Prior.fit_starts`."""
        if s == 1 or self.prior is None:
            return self.init(s, dtype, device)
        return self.prior.fit_starts(s).detach().to(device=device, dtype=dtype)

    def _model_input(self, params: Tensor) -> Tensor:
        return params if self.prior is None else params.to(self.prior.dtype)

    def pose(self, params: Tensor) -> Tensor:
        """Body pose ``(n, 63)`` (axis-angle, radians) from the free numbers ``(n, dim)``."""
        if self.space is None:
            return params
        # decode projects onto the manifold (the interface's contract), as LatentPose does
        return self.prior.decode(self._model_input(params)).to(params.dtype)

    def energy(self, params: Tensor, pose: Tensor) -> Tensor:
        """Unweighted prior energy per frame ``(n,)``."""
        if self.prior is None:
            return (pose * pose).sum(-1)
        z = self._model_input(params) if self.space is not None else None
        return self.prior.energy(self._model_input(pose), z).to(pose.dtype)

    def density_energy(self, params: Tensor) -> Tensor:
        """``density_weight * nll(z)`` of the latent density at the projected latent ``(n,)``
        (0 without a density): a preference for common poses, per frame."""
        if self.density is None or self.density_weight == 0.0:
            return params.new_zeros(params.shape[0])
        z = self.prior.project(self._model_input(params))
        return self.density_weight * self.density.nll(z).to(params.dtype)

    def preference(self, params: Tensor, pose: Tensor, pose_scale: float = 1.0) -> Tensor:
        """Weighted energies that prefer common poses beyond the prior's own, per frame
        ``(n,)``: :meth:`density_energy` plus ``pose_weight * pose_scale`` times the pose
        density's energy of ``pose (n, 63)`` (0 without either; ``pose_scale``: a stage's
        multiplier, :func:`advprior.fitting.objective.pose_schedule_scales`)."""
        out = self.density_energy(params)
        if self.pose_density is not None and self.pose_weight != 0.0:
            dens = self.pose_density
            e = dens.energy(pose.to(device=dens.device, dtype=dens.dtype))
            w = self.pose_weight * float(pose_scale)
            out = out + w * e.to(device=pose.device, dtype=pose.dtype)
        return out

    def gauge(self, params: Tensor) -> Tensor:
        """A term that changes no pose but keeps the free latent well-behaved, ``(n,)``:
        :meth:`LatentSpace.gauge` for a latent prior, 0 otherwise."""
        if self.space is None:
            return params.new_zeros(params.shape[0])
        return self.space.gauge(params)

    def latent(self, params: Tensor) -> Tensor | None:
        """The latent actually decoded ``(n, D)`` (projected), or ``None``."""
        if self.space is None:
            return None
        return self.prior.project(self._model_input(params)).to(params.dtype)

    def describe(self) -> dict[str, Any]:
        kind = "none" if self.prior is None else self.prior.model_type
        return {
            "kind": kind,
            "latent": None if self.space is None else self.space.kind,
            "dim": self.dim,
            "pose_density": None
            if self.pose_density is None
            else {"kind": self.pose_density.model_type, "weight": self.pose_weight},
        }
