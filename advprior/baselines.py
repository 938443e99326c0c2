"""Same-data baselines, usable as priors wherever a :class:`advprior.PosePrior` is:

- :class:`VPoserVAE`: VPoser v2's architecture (Pavlakos et al. 2019; human_body_prior V02_05),
  written from its description: a 32-d Gaussian encoder and a 6D-rotation decoder.
- :class:`GMMPrior`: SMPLify's prior (Bogo et al. 2016): an 8-component full-covariance Gaussian
  mixture on the 63-d axis-angle pose, scored with the "max-mixture" negative log-likelihood.

Both implement :class:`advprior.interface.Prior` (the VAE a latent prior, the GMM a pose-space
prior), so fitting, inversion, the head, the evaluation and the CLI treat them like the GANs, and
both save and load through :class:`advprior.hub.PretrainedMixin` (``model_type`` ``"vae"`` and
``"gmm"``). Poses are SMPL joints 1..21 in axis-angle radians, ``(..., 63)``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advprior.fileio import portable_pickle, write_atomic
from advprior.hub import PretrainedMixin
from advprior.interface import Prior, body_joints, check_output
from advprior.inversion import frozen, full_precision
from advprior.latent import LatentSpace, check_generator, draw_device
from advprior.prior import decode_rows
from advprior.skeleton import BODY_POSE_SIZES, check_body_pose, pad_hand_joints
from advprior.tensors import (
    check_dtype,
    check_tensor,
    flatten_batch_dims,
    float64_device,
    unflatten_batch_dims,
)

__all__ = ["VPoserVAE", "GMMPrior", "SMPLIFY_POSE_DIM"]

#: SMPL's ``body_pose`` size, the dimension of SMPLify's ``gmm_08.pkl`` (joints 1..23).
SMPLIFY_POSE_DIM = 69

#: Keyword options of :func:`advprior.inversion.invert` that :meth:`VPoserVAE.invert` accepts
#: (so that one call inverts any latent prior) but does not need: its encoder is one pass.
_OPTIMISER_OPTIONS = frozenset(
    {"steps", "restarts", "joint_weight", "bank_size", "body_model", "chunk_size"}
)


def _as_pose_dim(body_pose: torch.Tensor, dim: int, *, finite: bool = True) -> torch.Tensor:
    """``body_pose`` checked and given ``dim`` entries: a model of 63 (SMPL-H/SMPL-X body) or 69
    (SMPL body) values takes either layout, SMPL's two hand joints dropped or added at rest, as
    :class:`advprior.PosePrior` does; any other ``dim`` takes exactly ``dim``."""
    if dim not in BODY_POSE_SIZES:
        return check_tensor(body_pose, "body_pose", dim, finite=finite)
    # smplx-based code's per-joint and rotation-matrix layouts too, as every prior takes them
    return pad_hand_joints(check_body_pose(body_pose, finite=finite), dim // 3)


#: Floating dtypes too coarse for a mixture's covariances (3 significant digits or fewer).
_HALF_DTYPES = (torch.float16, torch.bfloat16)


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return n


class VPoserVAE(PretrainedMixin, nn.Module, Prior):
    """A VAE pose prior with VPoser v2's architecture, trained on our data.

    Encoder: BatchNorm, Linear 63->512, LeakyReLU, BatchNorm, Dropout, Linear 512->512, Linear
    512->512, then Linear heads to the mean and (through softplus) the scale of a 32-d Normal.
    Decoder: Linear 32->512, LeakyReLU, Dropout, Linear 512->512, LeakyReLU, Linear 512->21*6,
    then 6D -> rotation matrix by Gram-Schmidt (the same shape as the GAN generator).
    The latent prior is N(0, I). :meth:`invert` is the encoder's posterior mean (VPoser's).
    """

    model_type = "vae"
    invert_method = "encoder mean"
    latent = "normal"

    def __init__(
        self,
        num_joints: int = 21,
        latent_dim: int = 32,
        hidden_dim: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.latent_dim = latent_dim
        self._latent_space = LatentSpace("normal", latent_dim)
        n_in = num_joints * 3
        # VPoser v2 stacks two Linear layers without a nonlinearity in between; kept as is.
        self.encoder = nn.Sequential(
            nn.BatchNorm1d(n_in),
            nn.Linear(n_in, hidden_dim),
            nn.LeakyReLU(),
            nn.BatchNorm1d(hidden_dim),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.Linear(hidden_dim, hidden_dim),
        )
        self.enc_mean = nn.Linear(hidden_dim, latent_dim)
        self.enc_scale = nn.Linear(hidden_dim, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.LeakyReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.LeakyReLU(),
            nn.Linear(hidden_dim, num_joints * 6),
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A VAE pickled whole (torch.save(model)) by advprior 0.1.0 has no latent space
        # attribute; every method that samples or decodes needs it.
        super().__setstate__(state)
        if "_latent_space" not in self.__dict__:
            self._latent_space = LatentSpace("normal", self.latent_dim)

    @property
    def pose_dim(self) -> int:
        return self.num_joints * 3

    @property
    def latent_space(self) -> LatentSpace:
        """N(0, I) in ``latent_dim`` dimensions."""
        return self._latent_space

    def encode(self, body_pose: torch.Tensor) -> torch.distributions.Normal:
        """``(..., 63)`` axis-angle poses (or SMPL's ``(..., 69)``, whose hand joints are
        dropped) -> the posterior ``Normal`` over ``(..., latent_dim)``, in the model's dtype.

        In training mode BatchNorm needs more than one pose per batch. A frozen encoder (no
        parameter requires grad, as ``from_pretrained`` loads it) runs as in eval mode whatever
        the mode: a user's ``model.train()`` reaching it would otherwise make each pose's
        posterior depend on the rest of the batch and move the BatchNorm statistics.
        """
        if self.encoder.training and not any(p.requires_grad for p in self.encoder.parameters()):
            with frozen(self.encoder):
                return self.encode(body_pose)
        # poses are data (often float64 from numpy): cast, as PosePrior.invert does
        pose = _as_pose_dim(body_pose, self.pose_dim).to(self.dtype)
        flat, lead = flatten_batch_dims(pose, -2)
        h = self.encoder(flat)
        loc = unflatten_batch_dims(self.enc_mean(h), lead)
        scale = unflatten_batch_dims(nn.functional.softplus(self.enc_scale(h)), lead)
        return torch.distributions.Normal(loc, scale)

    def decode(
        self,
        z: torch.Tensor,
        output: str = "axis_angle",
        body: str = "smplx",
        *,
        project: bool = True,
    ) -> torch.Tensor:
        """``(..., latent_dim)`` latents -> poses; ``output`` and ``body`` as in
        :meth:`advprior.PosePrior.decode` (default ``(..., 63)`` axis-angle), on ``z``'s device
        and dtype (the model's must match). NaN/Inf latents give NaN/Inf poses (no exception).
        ``project`` is accepted as :meth:`advprior.PosePrior.decode` takes it, so one call
        decodes any latent prior; a Gaussian latent's projection is the identity. A frozen
        decoder decodes as in eval mode whatever the mode (:func:`advprior.prior.run_mlp`)."""
        check_output(output)
        joints = body_joints(body)
        check_tensor(z, "z", self.latent_dim, finite=False)
        flat, lead = flatten_batch_dims(check_dtype(z, self.dtype, "z"), -2)
        return unflatten_batch_dims(decode_rows(self.decoder, flat, output, joints), lead)

    def invert(self, body_pose: torch.Tensor, **options: Any) -> torch.Tensor:
        """The encoder's posterior mean ``(..., latent_dim)`` of poses ``(..., 63 | 69)``.

        The keyword options of :func:`advprior.inversion.invert` (``steps``, ``restarts``,
        ``joint_weight``, ``bank_size``, ``body_model``, ``chunk_size``) are accepted, so that
        one call inverts any latent prior, and unused; others raise ``TypeError``. For the
        optimising inversion of this decoder call :func:`advprior.inversion.invert` itself.
        Runs in eval mode (the model's modes are restored), so a VAE in training gives each
        pose its own latent and keeps its BatchNorm statistics, and in full precision inside
        ``torch.autocast``.
        """
        unknown = sorted(set(options) - _OPTIMISER_OPTIONS)
        if unknown:
            raise TypeError(f"VPoserVAE.invert got unexpected keyword arguments {unknown}")
        # eval mode whatever the caller's: a VAE being trained would otherwise give each pose a
        # latent that depends on the rest of the batch (BatchNorm) and move its running
        # statistics, so a query (invert, score, project_pose) would change the model
        if self.pose_dim in BODY_POSE_SIZES:  # a user's poses: refused in degrees, as invert's
            body_pose = check_body_pose(body_pose, refuse_degrees=True)
        with torch.no_grad(), frozen(self), full_precision():
            return self.encode(body_pose).mean

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`decode`: latents ``(..., latent_dim)`` -> poses ``(..., 63)``."""
        return self.decode(z)


class GMMPrior(PretrainedMixin, nn.Module, Prior):
    """SMPLify's Gaussian-mixture pose prior on ``(..., dim)`` axis-angle poses.

    Stored as tensors (``means (K, D)``, ``covariances (K, D, D)``, ``weights (K,)``); fit it with
    :func:`advprior.train.fit_gmm` (scikit-learn) or :meth:`from_sklearn`. A freshly built prior
    is K standard normals with equal weights. ``.half()`` / ``.bfloat16()`` (of it or of a
    model holding it) leave its tensors in their precision: float16 covariances are not
    positive definite; float16 / bfloat16 poses are scored in float32 and the nll returned in
    their dtype.
    """

    model_type = "gmm"
    latent = None

    def __init__(self, num_components: int = 8, dim: int = 63) -> None:
        super().__init__()
        if num_components < 1 or dim < 1:
            raise ValueError("num_components and dim must be positive")
        self.num_components = num_components
        self.dim = dim
        self.register_buffer("means", torch.zeros(num_components, dim))
        self.register_buffer("covariances", torch.eye(dim).repeat(num_components, 1, 1))
        self.register_buffer("weights", torch.full((num_components,), 1.0 / num_components))

    @classmethod
    def from_sklearn(cls, mixture: object) -> GMMPrior:
        """Copy a fitted ``sklearn.mixture.GaussianMixture`` with ``covariance_type="full"``."""
        if getattr(mixture, "covariance_type", None) != "full":
            raise ValueError("GMMPrior needs a GaussianMixture with covariance_type='full'")
        means = torch.as_tensor(mixture.means_, dtype=torch.float32)
        prior = cls(num_components=means.shape[0], dim=means.shape[1])
        prior.means.copy_(means)
        prior.covariances.copy_(torch.as_tensor(mixture.covariances_, dtype=torch.float32))
        prior.weights.copy_(torch.as_tensor(mixture.weights_, dtype=torch.float32))
        return prior

    def _apply(self, fn: Any, recurse: bool = True) -> GMMPrior:
        # ``.half()`` / ``.to(torch.bfloat16)`` (also of a user's model holding this prior) would
        # round the covariances to 3 significant digits: they stop being positive definite and
        # every nll and sample fails. Keep the stored precision; device moves still apply, and
        # nll returns in the dtype of the poses.
        def keep_precision(t: torch.Tensor) -> torch.Tensor:
            out = fn(t)
            if t.is_floating_point() and out.dtype in _HALF_DTYPES and t.dtype not in _HALF_DTYPES:
                return t.to(device=out.device)
            return out

        return super()._apply(keep_precision, recurse)

    def _component_log_density(self, body_pose: torch.Tensor) -> torch.Tensor:
        """``(..., K)``: ``log w_k + log N(x | mu_k, Sigma_k)``, in the dtype of ``body_pose``
        (computed in float32 for float16 / bfloat16 poses, which CPU solvers do not take and
        whose precision a near-singular covariance would not survive)."""
        body_pose = _as_pose_dim(body_pose, self.dim, finite=False)
        if body_pose.dtype in _HALF_DTYPES:
            return self._component_log_density(body_pose.float()).to(body_pose.dtype)
        dtype = body_pose.dtype
        whiten, half_logdet = self._whitening(dtype)
        diff = body_pose.unsqueeze(-2) - self.means.to(dtype)  # (..., K, D)
        flat = diff.reshape(-1, self.num_components, self.dim).transpose(0, 1)  # (K, B, D)
        # L^-1 d by a matrix product: a fit evaluates this thousands of times on large batches,
        # where a triangular solve (and its backward, another solve) costs several times more
        sol = flat @ whiten.transpose(1, 2)  # (K, B, D)
        maha = sol.pow(2).sum(-1).transpose(0, 1).reshape(diff.shape[:-1])  # (..., K)
        const = 0.5 * self.dim * math.log(2.0 * math.pi)
        return torch.log(self.weights.to(dtype)) - const - half_logdet - 0.5 * maha

    def _whitening(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L^-1 (K, D, D), log |L| (K,))`` in ``dtype``, ``L`` each covariance's Cholesky
        factor, computed in float64 (the covariances can be nearly singular). Kept between
        calls while the covariances are unchanged (same storage and version; not while tracing,
        not inside ``inference_mode``, whose tensors could not join a later autograd graph)."""
        cov = self.covariances
        # an inference tensor has no version counter to tell a change by
        reuse = not (
            cov.requires_grad
            or cov.is_inference()
            or torch.jit.is_tracing()
            or torch.is_inference_mode_enabled()
        )
        # the cache holds the tensor itself: compared by identity, a new covariances tensor
        # can never pass for the old one (as one at a freed tensor's address could)
        key = (cov, cov._version if reuse else -1, dtype)
        cached = self.__dict__.get("_whitening_cache")
        if reuse and cached is not None and cached[0][0] is cov and cached[0][1:] == key[1:]:
            return cached[1], cached[2]
        chol = torch.linalg.cholesky(cov.to(float64_device(cov.device), torch.float64))
        eye = torch.eye(self.dim, dtype=chol.dtype, device=chol.device).expand_as(chol)
        whiten = torch.linalg.solve_triangular(chol, eye, upper=False)
        half_logdet = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        whiten = whiten.to(device=cov.device, dtype=dtype)
        half_logdet = half_logdet.to(device=cov.device, dtype=dtype)
        if reuse:
            self.__dict__["_whitening_cache"] = (key, whiten, half_logdet)
        return whiten, half_logdet

    def nll(self, body_pose: torch.Tensor) -> torch.Tensor:
        """SMPLify's max-mixture negative log-likelihood ``(...)`` of poses ``(..., dim)``,
        differentiable. A 63-d mixture also takes SMPL's ``(..., 69)`` (hand joints ignored), a
        69-d one ``(..., 63)`` (hands at rest).

        ``min_k [0.5 d_k^T Sigma_k^-1 d_k - log(w_k / ((2 pi)^(D/2) |Sigma_k|^(1/2)))]`` with
        ``d_k = x - mu_k``, i.e. ``-max_k log(w_k N(x | mu_k, Sigma_k))``: the best single
        component, as SMPLify uses.
        """
        return -self._component_log_density(body_pose).amax(dim=-1)

    def log_prob(self, body_pose: torch.Tensor) -> torch.Tensor:
        """Exact mixture log-density ``(...)`` (log-sum-exp over components)."""
        return torch.logsumexp(self._component_log_density(body_pose), dim=-1)

    def forward(self, body_pose: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`nll`."""
        return self.nll(body_pose)

    def energy(self, body_pose: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """The fitting energy: :meth:`nll` (SMPLify's term); there is no latent ``z``."""
        return self.nll(body_pose)

    def fit_start(self) -> torch.Tensor:
        """The mixture's weighted mean pose ``(dim,)``: where SMPLify starts a fit."""
        return (self.weights[:, None] * self.means).sum(0)

    def fit_starts(self, s: int) -> torch.Tensor:
        """``s`` starts ``(s, dim)``: :meth:`fit_start`, then the means of the heaviest
        components (repeated when there are fewer components than starts)."""
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ValueError(f"s must be a positive int, got {s!r}")
        first = self.fit_start()[None]
        order = torch.argsort(self.weights, descending=True)
        order = order.repeat(-(-(s - 1) // len(order)))[: s - 1]
        return torch.cat([first, self.means[order]])

    def export_smplify(
        self,
        path: str | os.PathLike | None = None,
        *,
        eig_floor: float = 1e-4,
        min_nll_weight: float = 1e-36,
    ) -> dict[str, np.ndarray]:
        """The mixture in the layout of SMPLify's ``gmm_08.pkl``, optionally written to ``path``.

        Returns (and pickles, protocol 2, atomically) a plain dict of float64 numpy arrays:
        ``means (K, 69)``, ``covars (K, 69, 69)``, ``weights (K,)``, which SMPLify-style code
        reads with ``pickle.load(f, encoding="latin1")`` (e.g. SMPLify-X's ``MaxMixturePrior``);
        the keys are Python 2 strings as in SMPLify's file, so ``encoding="bytes"`` gives
        ``gmm[b"covars"]``, as code written for that file expects.

        SMPL's ``body_pose`` has 69 numbers: the two hand joints (22, 23) get mean 0 and an
        independent variance ``eig_floor`` (the hands are rigid in our data). Two changes keep
        SMPLify's float32 code finite; the first is a mild regulariser, the second a model change
        that the returned arrays carry (see ``docs/compat.md`` for its size on the shipped GMM):

        1. covariance eigenvalues are floored at ``eig_floor`` (rad^2; float32 precisions stay
           within about 1e4 of each other);
        2. SMPLify weighs component ``k`` by ``w_k / ((2 pi)^(69/2) sqrt|S_k| / min_j sqrt|S_j|)``
           and casts that to float32; the constant alone is 3.4e27, so components whose
           ``|S_k|`` is much larger than the smallest underflow to 0 (the fit then goes NaN).
           Every such weight is brought to at least ``min_nll_weight`` (default 1e-36, 100x
           above float32's smallest normal number) by scaling ``S_k`` by a factor ``a_k``: the
           narrowest components are widened, the widest narrowed, the largest ``|log a_k|`` as
           small as possible (the shipped GMM's ``a_k``: ``docs/compat.md``).

        Raises ``ValueError`` when a component's determinant would leave float64's normal
        range (below about ``e^-708``: e.g. 69 eigenvalues near 1e-5), which SMPLify's readers
        take with ``np.linalg.det`` (every weight NaN); a larger ``eig_floor`` avoids it.
        """
        if not 0 < eig_floor < 1:
            raise ValueError(f"eig_floor must be in (0, 1), got {eig_floor!r}")
        if not 0 < min_nll_weight < 1e-30:
            raise ValueError(f"min_nll_weight must be in (0, 1e-30), got {min_nll_weight!r}")
        if self.dim not in (63, SMPLIFY_POSE_DIM):
            raise ValueError(f"only a 63-d (or 69-d) pose GMM has SMPLify's layout, not {self.dim}")
        k, d = self.num_components, SMPLIFY_POSE_DIM
        means = np.zeros((k, d))
        covars = np.zeros((k, d, d))
        means[:, : self.dim] = self.means.detach().cpu().double().numpy()
        cov = self.covariances.detach().cpu().double().numpy()
        covars[:, : self.dim, : self.dim] = 0.5 * (cov + cov.transpose(0, 2, 1))
        pad = np.arange(self.dim, d)
        covars[:, pad, pad] = eig_floor
        eigval, eigvec = np.linalg.eigh(covars)
        eigval = np.maximum(eigval, eig_floor)
        logdet = np.log(eigval).sum(-1)
        weights = self.weights.detach().cpu().double().numpy()
        weights = weights / weights.sum()
        # SMPLify's weight in log: log w_k - (d/2) log 2 pi - (logdet_k - min logdet) / 2.
        # Need it >= log(min_nll_weight) for every k: logdet_k - min logdet <= budget_k.
        log_const = 0.5 * d * math.log(2 * math.pi)
        budget = 2.0 * (np.log(weights) - log_const - math.log(min_nll_weight))
        if (budget < 0).any():
            raise ValueError(
                "a mixture weight is too small to survive SMPLify's float32 "
                f"weighting at min_nll_weight={min_nll_weight}"
            )
        # Pick the new smallest log-determinant m; components below it are widened to m, those
        # above m + budget narrowed to it; m minimises the largest change (a 1-D scan).
        grid = np.linspace(logdet.min(), max(logdet.min(), float((logdet - budget).max())), 4001)
        cost = np.maximum(grid[:, None] - logdet, logdet - grid[:, None] - budget).max(1)
        m = float(grid[np.argmin(cost)])
        target = np.minimum(np.maximum(logdet, m), m + budget)
        # Readers take sqrt(det(S_k)) with np.linalg.det in float64 and divide by the smallest:
        # a determinant outside float64's normal range (0 below e^-708) makes every weight NaN.
        log_tiny, log_huge = math.log(np.finfo(np.float64).tiny), math.log(np.finfo(np.float64).max)
        if target.min() < log_tiny or target.max() > log_huge:
            raise ValueError(
                f"the exported covariances' log-determinants reach {target.min():.0f} to "
                f"{target.max():.0f}; SMPLify's readers compute det(S) in float64, which needs "
                f"[{log_tiny:.0f}, {log_huge:.0f}]: raise eig_floor (now {eig_floor!r})"
            )
        eigval = eigval * np.exp((target - logdet) / d)[:, None]
        covars = np.einsum("kij,kj,klj->kil", eigvec, eigval, eigvec)
        covars = 0.5 * (covars + covars.transpose(0, 2, 1))
        out = {"means": means, "covars": covars, "weights": weights}
        if path is not None:
            blob = portable_pickle(out)
            write_atomic(Path(path), lambda fh: fh.write(blob))
        return out

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, dim)`` poses drawn from the mixture (component by weight, then its Gaussian),
        on the mixture's device.

        As :meth:`advprior.latent.LatentSpace.sample` (torch's convention): the draw happens on
        ``generator``'s device, so a seeded CPU generator gives the same poses whether the
        mixture is on the CPU or a GPU, and the global RNG is untouched; without a generator,
        on the mixture's device from torch's default generator there."""
        n = _check_n(n)
        check_generator(generator)
        device = self.means.device
        dtype = self.means.dtype
        if n == 0:
            # torch.multinomial refuses to draw no sample; the latent priors return (0, 63) too
            return torch.zeros(0, self.dim, dtype=dtype, device=device)
        where = draw_device(generator, device)
        cov = self.covariances
        chol = torch.linalg.cholesky(cov.to(float64_device(cov.device), torch.float64))
        chol = chol.to(device=where, dtype=dtype)
        weights = self.weights.to(where)
        comp = torch.multinomial(weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, 1, generator=generator, dtype=dtype, device=where)
        x = self.means.to(where)[comp] + (chol[comp] @ eps).squeeze(-1)
        return x.to(device)
