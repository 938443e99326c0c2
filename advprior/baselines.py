"""Same-data baselines, usable as priors wherever a :class:`advprior.PosePrior` is:

- :class:`VPoserVAE`: VPoser v2's architecture (Pavlakos et al. 2019; human_body_prior V02_05),
  written from its description: a 32-d Gaussian encoder and a 6D-rotation decoder.
- :class:`GMMPrior`: SMPLify's prior (Bogo et al. 2016): an 8-component full-covariance Gaussian
  mixture on the 63-d axis-angle pose, scored with the "max-mixture" negative log-likelihood.

Both save and load through :class:`advprior.hub.PretrainedMixin` (``model_type`` ``"vae"`` and
``"gmm"``), and both have ``sample(n, *, generator=None) -> (n, 63)``, so the evaluation treats
them like the GANs. Poses are SMPL joints 1..21 in axis-angle radians, ``(..., 63)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from advprior.hub import PretrainedMixin
from advprior.prior import OUTPUTS, decode_6d, run_mlp

__all__ = ["VPoserVAE", "GMMPrior"]


def _check_pose(body_pose: object, dim: int, name: str = "body_pose") -> torch.Tensor:
    if not isinstance(body_pose, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (..., {dim})")
    if not body_pose.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {body_pose.dtype}")
    if body_pose.ndim == 0 or body_pose.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (..., {dim}), got {tuple(body_pose.shape)}")
    if body_pose.numel() and not bool(torch.isfinite(body_pose).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return body_pose


def _check_n(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    return n


class VPoserVAE(PretrainedMixin, nn.Module):
    """A VAE pose prior with VPoser v2's architecture, trained on our data.

    Encoder: BatchNorm, Linear 63->512, LeakyReLU, BatchNorm, Dropout, Linear 512->512, Linear
    512->512, then Linear heads to the mean and (through softplus) the scale of a 32-d Normal.
    Decoder: Linear 32->512, LeakyReLU, Dropout, Linear 512->512, LeakyReLU, Linear 512->21*6,
    then 6D -> rotation matrix by Gram-Schmidt (the same shape as the GAN generator).
    The latent prior is N(0, I).
    """

    model_type = "vae"
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

    @property
    def pose_dim(self) -> int:
        return self.num_joints * 3

    def encode(self, body_pose: torch.Tensor) -> torch.distributions.Normal:
        """``(..., 63)`` axis-angle poses -> the posterior ``Normal`` over ``(..., latent_dim)``.

        In training mode BatchNorm needs more than one pose per batch.
        """
        _check_pose(body_pose, self.pose_dim)
        lead = body_pose.shape[:-1]
        h = self.encoder(body_pose.reshape(-1, self.pose_dim))
        loc = self.enc_mean(h).reshape(*lead, self.latent_dim)
        scale = nn.functional.softplus(self.enc_scale(h)).reshape(*lead, self.latent_dim)
        return torch.distributions.Normal(loc, scale)

    def decode(self, z: torch.Tensor, output: str = "axis_angle") -> torch.Tensor:
        """``(..., latent_dim)`` latents -> poses: ``"axis_angle"`` ``(..., 63)``, ``"rotmat"``
        ``(..., 21, 3, 3)``, ``"rot6d"`` ``(..., 21, 6)`` or ``"quat"`` ``(..., 21, 4)``
        (``(x, y, z, w)``), on ``z``'s device and dtype (the model's must match)."""
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        _check_pose(z, self.latent_dim, "z")
        lead = z.shape[:-1]
        rot6d = run_mlp(self.decoder, z.reshape(-1, self.latent_dim))
        out = decode_6d(rot6d, output, self.num_joints)
        return out.reshape(*lead, *out.shape[1:])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`decode`: latents ``(..., latent_dim)`` -> poses ``(..., 63)``."""
        return self.decode(z)

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, latent_dim)`` draws from the N(0, I) latent prior."""
        p = next(self.parameters())
        z = torch.randn(_check_n(n), self.latent_dim, generator=generator, dtype=p.dtype)
        return z.to(p.device)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, 63)`` axis-angle poses decoded from N(0, I) latents (in the current mode:
        call ``.eval()`` first for deterministic decoding; loaded models already are)."""
        return self.decode(self.sample_latent(n, generator=generator))


class GMMPrior(PretrainedMixin, nn.Module):
    """SMPLify's Gaussian-mixture pose prior on ``(..., dim)`` axis-angle poses.

    Stored as tensors (``means (K, D)``, ``covariances (K, D, D)``, ``weights (K,)``); fit it with
    :func:`advprior.train.fit_gmm` (scikit-learn) or :meth:`from_sklearn`. A freshly built prior
    is K standard normals with equal weights.
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

    def _component_log_density(self, body_pose: torch.Tensor) -> torch.Tensor:
        """``(..., K)``: ``log w_k + log N(x | mu_k, Sigma_k)``."""
        _check_pose(body_pose, self.dim)
        dtype = body_pose.dtype
        # Cholesky in float64: the mixture's covariances can be nearly singular.
        chol = torch.linalg.cholesky(self.covariances.double()).to(dtype)  # (K, D, D)
        diff = body_pose.unsqueeze(-2) - self.means.to(dtype)  # (..., K, D)
        flat = diff.reshape(-1, self.num_components, self.dim).transpose(0, 1)  # (K, B, D)
        sol = torch.linalg.solve_triangular(chol, flat.transpose(1, 2), upper=False)  # (K, D, B)
        maha = sol.pow(2).sum(1).transpose(0, 1).reshape(diff.shape[:-1])  # (..., K)
        half_logdet = torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # (K,)
        const = 0.5 * self.dim * math.log(2.0 * math.pi)
        return torch.log(self.weights.to(dtype)) - const - half_logdet - 0.5 * maha

    def nll(self, body_pose: torch.Tensor) -> torch.Tensor:
        """SMPLify's max-mixture negative log-likelihood ``(...)``, differentiable.

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

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, dim)`` poses drawn from the mixture (component by weight, then its Gaussian)."""
        n = _check_n(n)
        device = self.means.device
        comp = torch.multinomial(self.weights.cpu(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, 1, generator=generator, dtype=self.means.dtype)
        chol = torch.linalg.cholesky(self.covariances.double()).to(self.means.dtype).cpu()
        x = self.means.cpu()[comp] + (chol[comp] @ eps).squeeze(-1)
        return x.to(device)
