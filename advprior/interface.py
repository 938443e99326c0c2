"""The prior interface: everything fitting, inversion, the head, evaluation and the CLI use.

A *prior* is a distribution over body poses ``(..., 63)`` (axis-angle, radians, SMPL joints
1..21). There are two families, told apart by :attr:`Prior.latent_space` alone:

- **latent priors** (``latent_space`` is a :class:`~advprior.latent.LatentSpace`): poses are
  decoded from latents ``(..., D)``; a fit optimises the latent. They have :meth:`Prior.decode`,
  :meth:`Prior.project`, :meth:`Prior.sample_latent` and :meth:`Prior.invert`.
  :class:`~advprior.prior.PosePrior` (``"gan"``) and :class:`~advprior.baselines.VPoserVAE`
  (``"vae"``).
- **pose-space priors** (``latent_space`` is None): a density on poses; a fit optimises the
  pose and adds :meth:`Prior.energy`. :class:`~advprior.baselines.GMMPrior` (``"gmm"``).

Adding a prior means writing one subclass of :class:`Prior` (usually also an ``nn.Module``):
set ``model_type``, return the latent space, and implement ``decode`` (latent prior) or
``sample`` and ``energy`` (pose-space prior); everything else has a default here. Mix in
:class:`advprior.hub.PretrainedMixin` to save and load it.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from advprior.geodesic import geodesic_path
from advprior.inversion import frozen, invert, with_autograd
from advprior.latent import LatentSpace
from advprior.rotations import (
    axis_angle_to_rotmat,
    rotmat_to_axis_angle,
    rotmat_to_quat,
    rotmat_to_rot6d,
)
from advprior.skeleton import (
    NUM_BODY_JOINTS,
    NUM_SMPL_BODY_JOINTS,
    body_pose_layout,
    check_body_pose,
)
from advprior.tensors import (
    check_tensor,
    flatten_batch_dims,
    isolated_global_rng,
    unflatten_batch_dims,
)

#: ``output=`` values of :meth:`Prior.decode`.
OUTPUTS: tuple[str, ...] = ("axis_angle", "rotmat", "rot6d", "quat")
#: ``body=`` values of :meth:`Prior.decode`: the joint layout of the pose.
BODIES: tuple[str, ...] = ("smplx", "smplh", "smpl")
_BODY_JOINTS = {"smplx": NUM_BODY_JOINTS, "smplh": NUM_BODY_JOINTS, "smpl": NUM_SMPL_BODY_JOINTS}
# Latents drawn to pick a sphere prior's starting point (the medoid of their decoded poses).
_START_SAMPLES = 512


def start_samples(space: LatentSpace, dtype: torch.dtype, n: int = _START_SAMPLES) -> Tensor:
    """The ``n`` seeded latents ``(n, D)`` that fit starts are chosen from, in ``dtype``.

    Drawn in float32 whatever ``dtype`` is: a seeded generator gives other numbers in float64,
    so a ``.double()`` prior (or ``torch.set_default_dtype(torch.float64)``) would otherwise start
    fits, and centre :mod:`advprior.compat`'s chart, at another pose.
    """
    gen = torch.Generator().manual_seed(0)
    return space.sample(n, generator=gen, dtype=torch.float32).to(dtype)


def body_joints(body: str) -> int:
    """Joints in ``body_pose`` for a ``body`` of :data:`BODIES`: 21, or 23 for ``"smpl"``."""
    if body not in _BODY_JOINTS:
        raise ValueError(f"body must be one of {BODIES}, got {body!r}")
    return _BODY_JOINTS[body]


def check_output(output: str) -> str:
    """``output`` itself when it is one of :data:`OUTPUTS`; ValueError otherwise."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    return output


def convert_rotmat(rotmat: Tensor, output: str) -> Tensor:
    """Per-joint rotations ``(..., J, 3, 3)`` to ``output``: ``"axis_angle"`` ``(..., J*3)``,
    ``"rotmat"`` ``(..., J, 3, 3)``, ``"rot6d"`` ``(..., J, 6)`` or ``"quat"`` ``(..., J, 4)``."""
    check_output(output)
    if output == "rotmat":
        return rotmat
    if output == "axis_angle":
        return rotmat_to_axis_angle(rotmat).flatten(-2)
    if output == "rot6d":
        return rotmat_to_rot6d(rotmat)
    return rotmat_to_quat(rotmat)


class Prior:
    """Base class of every pose prior (see the module docstring for the two families).

    Class attributes a subclass sets: ``model_type`` (its name in checkpoints and reports);
    optionally ``invert_method`` (how :meth:`invert` maps a pose to a latent, for reports) and
    ``fittable`` (False for an object that can only be sampled).
    """

    model_type: ClassVar[str] = "prior"
    invert_method: ClassVar[str] = "invert (advprior.inversion.invert)"
    fittable: ClassVar[bool] = True

    # -- what the prior is ------------------------------------------------------------------

    @property
    def latent_space(self) -> LatentSpace | None:
        """The latent space poses are decoded from, or None for a pose-space prior."""
        return None

    def _first_tensor(self) -> Tensor | None:
        if not isinstance(self, nn.Module):
            return None
        for tensor in (*self.parameters(), *self.buffers()):
            return tensor
        return None

    @property
    def device(self) -> torch.device:
        """Where the prior's tensors live (CPU for a prior without tensors)."""
        first = self._first_tensor()
        return first.device if first is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The prior's floating dtype (torch's default for a prior without tensors)."""
        first = self._first_tensor()
        return first.dtype if first is not None else torch.get_default_dtype()

    def _latent(self) -> LatentSpace:
        space = self.latent_space
        if space is None:
            raise TypeError(
                f"{type(self).__name__} ({self.model_type!r}) has no latent space; it is a "
                "density on poses (use sample and energy)"
            )
        return space

    # -- sampling ---------------------------------------------------------------------------

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``(n, D)`` latents from the latent distribution, on the prior's device and dtype.
        With a seeded ``generator`` the draw is reproducible and the global RNG is untouched."""
        return self._latent().sample(n, generator=generator, device=self.device, dtype=self.dtype)

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        output: str = "axis_angle",
        body: str = "smplx",
    ) -> Tensor:
        """``n`` random poses, ``(n, 63)`` axis-angle radians by default. A latent prior decodes
        :meth:`sample_latent` (``output`` and ``body`` as in :meth:`decode`, so every latent
        prior samples in every layout; a VAE decodes in its current mode: loaded models are in
        eval mode); a pose-space prior must override this (``(n, 63)`` axis-angle)."""
        if self.latent_space is None:
            raise NotImplementedError(f"{type(self).__name__} must implement sample")
        check_output(output)
        body_joints(body)
        return self.decode(self.sample_latent(n, generator=generator), output=output, body=body)

    # -- latent priors ----------------------------------------------------------------------

    def decode(self, z: Tensor, output: str = "axis_angle", body: str = "smplx") -> Tensor:
        """Poses of latents ``z (..., D)``: ``output`` as in :func:`convert_rotmat`, ``body``
        one of :data:`BODIES` (``"smpl"``: 23 joints, the hand joints identity).

        Contract: ``decode(z)`` is the pose of ``project(z)`` (a latent on the manifold decodes
        as given), so a free latent from an optimiser decodes to the pose that was fitted; and
        NaN/Inf latents give NaN/Inf poses instead of raising (safe inside a line search), while
        type, dtype and shape errors raise."""
        self._latent()
        raise NotImplementedError(f"{type(self).__name__} must implement decode")

    def project(self, z: Tensor) -> Tensor:
        """``z (..., D)`` moved onto the latent manifold (:meth:`LatentSpace.project`)."""
        return self._latent().project(z)

    def invert(self, body_pose: Tensor, **options: Any) -> Tensor:
        """Latents ``(..., D)`` whose decoded poses best match ``body_pose (..., 63 | 69)``
        (or ``(..., J, 3)`` per joint, ``(..., J, 3, 3)`` rotation matrices; J = 21 or 23).

        Default: optimisation through the decoder, :func:`advprior.inversion.invert`, whose
        keyword arguments ``options`` are.
        """
        self._latent()
        return invert(self, body_pose, **options)

    @with_autograd
    def project_pose(self, body_pose: Tensor, **options: Any) -> Tensor:
        """The closest pose the prior can produce: ``decode(invert(body_pose))``, in the layout
        of ``body_pose`` (``(..., 63)``, or ``(..., 69)`` for SMPL input; per joint
        ``(..., J, 3)`` and rotation matrices ``(..., J, 3, 3)`` come back so) and its dtype
        (the prior works in its own). Returns the pose only, also when ``return_error=True``
        is passed through to :meth:`invert`. Decoded in full precision inside
        ``torch.autocast``, as the inversion is (a bfloat16 decode would add up to ~1e-2 rad of
        rounding to the projection)."""
        layout = body_pose_layout(body_pose) if isinstance(body_pose, Tensor) else "flat"
        pose = check_body_pose(body_pose, refuse_degrees=True)
        body = "smpl" if pose.shape[-1] == 3 * NUM_SMPL_BODY_JOINTS else "smplx"
        z = self.invert(pose, **options)
        if isinstance(z, tuple):  # invert(..., return_error=True) -> (z, error)
            z = z[0]
        # in the caller's dtype, as score's: a float64 pose from SMPLify-style code came back
        # float32 (the prior's), and the next step mixing it with float64 tensors failed
        if layout in ("rotmat", "matrot"):
            mats = self.decode(z, output="rotmat", body=body).to(pose.dtype)
            return mats if layout == "rotmat" else mats.flatten(-2)
        out = self.decode(z, body=body).to(pose.dtype)
        return out.unflatten(-1, (-1, 3)) if layout == "joints" else out

    def interpolate(
        self, z0: Tensor, z1: Tensor, steps: int, *, geodesic: bool = False, **options: Any
    ) -> Tensor:
        """Latent path ``(..., steps, D)`` from ``z0`` to ``z1`` (``(..., D)``, leading shapes
        that broadcast: ``(D,)`` ends give ``(steps, D)``), both projected ends included.

        Default: the latent space's own path (:meth:`LatentSpace.interpolate`: slerp on the
        sphere, linear otherwise). ``geodesic=True``: that path shortened on the decoded poses,
        the inner latents moved by :func:`advprior.geodesic.geodesic_path` (whose keyword
        arguments ``options`` are: ``iterations``, ``joint_weight``, ``body_model``), so that
        it does not detour through unrelated poses; on one CPU thread about 0.2 s per 16-step
        path when many paths are batched (``(B, D)`` ends), 1-1.5 s for a single path.
        """
        space = self._latent()
        if geodesic:
            return geodesic_path(self, z0, z1, steps, **options)
        if options:
            raise TypeError(f"{sorted(options)} apply only with geodesic=True")
        return space.interpolate(z0, z1, steps)

    # -- fitting ----------------------------------------------------------------------------

    def energy(self, body_pose: Tensor, z: Tensor | None = None) -> Tensor:
        """The prior's unweighted energy ``(...)``, the term a fit adds (scaled by its stage
        weight) for poses ``body_pose (..., 63)``.

        Latent priors score the free latent ``z (..., D)`` the poses were decoded from:
        :meth:`LatentSpace.energy` (``|z|^2`` for a normal latent, as VPoser; 0 on the sphere
        and the cube). A pose-space prior must override this (GMM: its negative log-likelihood).
        """
        space = self.latent_space
        if space is None:
            raise NotImplementedError(f"{type(self).__name__} must implement energy")
        if z is None:
            raise ValueError(f"{type(self).__name__}.energy needs the latents z (..., D)")
        return space.energy(z)

    def fit_start(self) -> Tensor:
        """Where a fit starts, the same for every frame: a latent ``(D,)`` for a latent prior,
        else a pose ``(63,)``; on the prior's device and dtype.

        Default: the origin of a cube or normal latent; on the sphere, which has no origin, the
        latent whose decoded pose is the medoid of 512 seeded samples (:func:`start_samples`;
        smallest summed squared rotation-matrix distance to the others, in float32); the zero
        pose for a pose-space prior. A prior on the meta device (deferred initialisation) gives
        a meta tensor of that shape: it has no values to choose from.
        """
        space = self.latent_space
        if space is None:
            return torch.zeros(3 * NUM_BODY_JOINTS, dtype=self.dtype, device=self.device)
        if space.kind != "sphere" or self.device.type == "meta":
            return torch.zeros(space.dim, dtype=self.dtype, device=self.device)
        z = start_samples(space, self.dtype)
        with torch.no_grad(), frozen(self):
            rot = self.decode(z.to(self.device), output="rotmat").cpu().float()
        flat = rot.reshape(len(z), -1)
        # Squared Frobenius distances between all pairs via one matmul.
        sq = (flat * flat).sum(-1)
        dist = sq[:, None] + sq[None, :] - 2 * flat @ flat.T
        return z[dist.sum(1).argmin()].to(self.device)

    # -- plausibility ---------------------------------------------------------------------

    def fit_starts(self, s: int) -> Tensor:
        """``s`` starting points ``(s, D)`` (or ``(s, 63)``) for a multi-start fit, the same for
        every frame: :meth:`fit_start` first. Default, for a latent prior: then the latents of
        representative decoded samples, by greedy k-medoids (PAM's BUILD step, chordal distance
        of the joint rotations) over 512 seeded samples, each next one the sample that most
        lowers the summed distance of all samples to their nearest chosen pose, so the starts are
        common poses that differ. A pose-space prior repeats :meth:`fit_start` (a repeated start
        costs time, never accuracy) unless it overrides this."""
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"s must be a positive int, got {s!r}")
        first = self.fit_start().detach()[None]
        space = self.latent_space
        if s == 1 or space is None or first.device.type == "meta":
            return first.expand(s, -1).clone()
        z = start_samples(space, self.dtype).to(self.device)
        with torch.no_grad(), frozen(self):
            flat = self.decode(z, output="rotmat").reshape(len(z), -1).cpu().float()
            f = self.decode(first, output="rotmat").reshape(1, -1).cpu().float()
        sq = (flat * flat).sum(-1)
        dist = (sq[:, None] + sq[None, :] - 2 * flat @ flat.T).clamp(min=0)
        nearest = ((flat - f) ** 2).sum(-1)  # each sample's distance to the chosen set
        chosen = []
        for _ in range(s - 1):
            gain = (nearest[None, :] - dist).clamp(min=0).sum(1)  # total decrease per candidate
            best = int(gain.argmax())
            chosen.append(best)
            nearest = torch.minimum(nearest, dist[best])
        return torch.cat([first, z[chosen]])

    @with_autograd
    def score(self, body_pose: Tensor, **options: Any) -> Tensor:
        """How plausible poses ``body_pose (..., 63 | 69)`` are under the prior, ``(...)``:
        higher is more plausible; comparable between poses of one prior, not between priors.
        Per-joint ``(..., J, 3)`` and rotation-matrix ``(..., J, 3, 3)`` poses (J = 21 or 23)
        are taken too (:func:`advprior.skeleton.check_body_pose`).

        Default for a latent prior: minus the distance to the prior's manifold,
        ``-(rot + SCORE_JOINT_WEIGHT * pos + SCORE_LATENT_WEIGHT * latent_space.energy(z))``
        with ``z = invert(body_pose, **options)``, ``rot`` the mean squared Frobenius distance
        between the joints' rotation matrices and those of ``decode(z)`` (``4 (1 - cos angle)``
        per joint) and ``pos`` the mean squared joint-position distance (metres^2, forward
        kinematics of the stand-in skeleton at zero global orientation): the energy
        :func:`advprior.inversion.invert` minimises, at its minimum. The latent term is 0 on the
        sphere and the cube and ``|z|^2`` for a normal latent, so the VAE's score is its
        reconstruction residual (through its encoder) plus ``||z||^2``.

        Default for a pose-space prior: ``-energy(body_pose)`` (the GMM: minus its
        negative log-likelihood). Thresholds: docs/results.md lists each shipped prior's score
        percentiles on held-out real poses. Gradients do not flow through the score.
        """
        pose = check_body_pose(body_pose, refuse_degrees=True)
        space = self.latent_space
        with torch.no_grad():
            if space is None:
                return -self.energy(pose.to(self.dtype)).to(pose.dtype)
            z = self.invert(pose, **options)
            if isinstance(z, tuple):  # invert(..., return_error=True) -> (z, error)
                z = z[0]
            return -manifold_distance(self, pose, z) - SCORE_LATENT_WEIGHT * space.energy(z).to(
                pose.dtype
            )


#: Weight of the mean squared joint-position residual (metres^2) against the mean squared
#: Frobenius rotation residual in :meth:`Prior.score` (the inversion's default ``joint_weight``).
SCORE_JOINT_WEIGHT = 100.0
#: Weight of :meth:`LatentSpace.energy` of the inverted latent in :meth:`Prior.score` (``|z|^2``
#: for a normal latent, 0 otherwise); chosen on 1,000 validation poses: the mean ROC AUC over the
#: four corruptions of docs/eval.md was, for weights 0 / 1e-3 / 1e-2 / 0.1, 0.966 / 0.967 /
#: 0.968 / 0.952 for vae and 0.881 / 0.881 / 0.846 / 0.760 for gan-n (best sum: 1e-3).
SCORE_LATENT_WEIGHT = 1e-3


def manifold_distance(prior: Prior, body_pose: Tensor, z: Tensor) -> Tensor:
    """``(...)``: mean squared Frobenius rotation residual plus :data:`SCORE_JOINT_WEIGHT` times
    the mean squared joint-position residual (metres^2) between poses ``body_pose (..., 63|69)``
    and ``prior.decode(z)`` (``z (..., D)``), joint positions by forward kinematics of the
    stand-in skeleton at zero global orientation."""
    from advprior.body import forward_kinematics_rotmat  # the body package loads on first use

    joints = body_pose.shape[-1] // 3
    body = "smpl" if joints == NUM_SMPL_BODY_JOINTS else "smplx"
    pose, lead = flatten_batch_dims(body_pose, -2)
    if pose.shape[0] == 0:
        return body_pose.new_zeros(lead)
    zf, _ = flatten_batch_dims(z.to(prior.dtype), -2)
    with frozen(prior):
        rec = prior.decode(zf, output="rotmat", body=body).to(pose.dtype)
    target = axis_angle_to_rotmat(pose.unflatten(-1, (joints, 3)))
    rot = ((rec - target) ** 2).sum((-1, -2)).mean(-1)
    root = torch.eye(3, dtype=pose.dtype, device=pose.device).expand(pose.shape[0], 1, 3, 3)
    p_rec = forward_kinematics_rotmat(torch.cat([root, rec], 1))
    p_tgt = forward_kinematics_rotmat(torch.cat([root, target], 1))
    pos = ((p_rec - p_tgt) ** 2).sum(-1).mean(-1)
    return unflatten_batch_dims(rot + SCORE_JOINT_WEIGHT * pos, lead)


class SampleOnly(Prior):
    """A prior that can only be sampled: wraps any object with ``sample(n, *, generator=None)
    -> (n, 63)`` (0.1.0's duck-typed evaluation models). No latent space; not fittable."""

    fittable = False

    def __init__(self, model: object) -> None:
        sample = getattr(model, "sample", None)
        if not callable(sample):
            raise TypeError(
                f"a prior must be an advprior.interface.Prior or have sample(n, *, generator=None)"
                f", got {type(model).__name__}"
            )
        self.model = model
        self.label = str(getattr(model, "model_type", type(model).__name__.lower()))
        self._takes_generator = _takes_keyword(sample, "generator")

    @property
    def model_type(self) -> str:  # type: ignore[override]  # per instance: the wrapped name
        return self.label

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        if self._takes_generator:
            drawn = self.model.sample(n, generator=generator)
        else:
            # a plain sample(n) draws from torch's global RNG: seed it from ``generator`` inside
            # a forked RNG, so the draw is reproducible and the caller's global RNG untouched
            seed = None
            if generator is not None:
                seed = int(torch.randint(2**62, (1,), generator=generator))
            with isolated_global_rng(seed):
                drawn = self.model.sample(n)
        return check_tensor(drawn, "sample()", 63)


def _takes_keyword(fn: Any, name: str) -> bool:
    """Whether ``fn`` accepts the keyword ``name`` (or any keyword); True when its signature
    cannot be read (a builtin), the documented protocol."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def as_prior(model: object) -> Prior:
    """``model`` itself when it is a :class:`Prior`, else a :class:`SampleOnly` around it."""
    return model if isinstance(model, Prior) else SampleOnly(model)
