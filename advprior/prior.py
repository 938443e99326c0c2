"""The adversarial pose prior: a generator from a latent space to body poses, and ``LatentPose``.

Conventions: ``body_pose`` is axis-angle in radians for SMPL joints 1..21 (the SMPL-H / SMPL-X
body joints, AMASS ``pose_body``), ``(..., 63)``; ``body="smpl"`` adds SMPL's two hand joints
(22, 23) as identity rotations, ``(..., 69)``. Rotation matrices act on column vectors; 6D is the
first two columns (:mod:`advprior.rotations`); quaternions are ``(x, y, z, w)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advprior.hub import PretrainedMixin
from advprior.latent import LatentSpace, check_latent
from advprior.rotations import (
    rot6d_to,
    rotmat_to_axis_angle,
    rotmat_to_quat,
    rotmat_to_rot6d,
)
from advprior.skeleton import NUM_BODY_JOINTS, NUM_SMPL_BODY_JOINTS

OUTPUTS: tuple[str, ...] = ("axis_angle", "rotmat", "rot6d", "quat")
BODIES: tuple[str, ...] = ("smplx", "smplh", "smpl")
_BODY_JOINTS = {"smplx": NUM_BODY_JOINTS, "smplh": NUM_BODY_JOINTS, "smpl": NUM_SMPL_BODY_JOINTS}
# The identity rotation in 6D (first two columns, row-major): Gram-Schmidt maps it exactly to I.
_IDENTITY_6D = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def convert_rotmat(rotmat: torch.Tensor, output: str) -> torch.Tensor:
    """Per-joint rotations ``(..., J, 3, 3)`` to ``output``: ``"axis_angle"`` ``(..., J*3)``,
    ``"rotmat"`` ``(..., J, 3, 3)``, ``"rot6d"`` ``(..., J, 6)`` or ``"quat"`` ``(..., J, 4)``."""
    if output == "rotmat":
        return rotmat
    if output == "axis_angle":
        aa = rotmat_to_axis_angle(rotmat)
        return aa.reshape(*aa.shape[:-2], aa.shape[-2] * 3)
    if output == "rot6d":
        return rotmat_to_rot6d(rotmat)
    if output == "quat":
        return rotmat_to_quat(rotmat)
    raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


def _has_hooks(module: nn.Module) -> bool:
    # torch keeps hooks in these (private but long-stable) dicts; any hook means the layers
    # must run as modules so that it fires.
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def run_mlp(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``mlp(x)``; in eval mode without hooks, its Linear / LeakyReLU / Dropout layers run as
    functions: same numbers, but a module call costs ~3-5 us of Python per layer, as much as
    the layer's own arithmetic at batch 1."""
    if mlp.training or _has_hooks(mlp):
        return mlp(x)
    for layer in mlp:
        if isinstance(layer, nn.Linear):
            x = F.linear(x, layer.weight, layer.bias)
        elif isinstance(layer, nn.LeakyReLU):
            x = F.leaky_relu(x, layer.negative_slope)
        elif not isinstance(layer, nn.Dropout):  # eval-mode dropout is the identity
            x = layer(x)
    return x


def decode_6d(rot6d: torch.Tensor, output: str, joints: int) -> torch.Tensor:
    """Network output ``(B, J0 * 6)`` -> ``output`` for ``joints`` joints (identity rotations
    appended when ``joints > J0``, trailing joints dropped when fewer): ``"axis_angle"``
    ``(B, joints * 3)``, ``"rotmat"`` ``(B, joints, 3, 3)``, ``"rot6d"`` ``(B, joints, 6)``,
    ``"quat"`` ``(B, joints, 4)``. No input checks: callers validate once at their API."""
    have = rot6d.shape[1] // 6
    x = rot6d.reshape(rot6d.shape[0], have, 6)
    if joints > have:
        eye = torch.tensor(_IDENTITY_6D, dtype=x.dtype, device=x.device)
        x = torch.cat([x, eye.expand(x.shape[0], joints - have, 6)], dim=1)
    elif joints < have:
        x = x[:, :joints]
    out = rot6d_to(x, output)
    return out.reshape(out.shape[0], joints * 3) if output == "axis_angle" else out


def _check_body(body: str) -> int:
    if body not in _BODY_JOINTS:
        raise ValueError(f"body must be one of {BODIES}, got {body!r}")
    return _BODY_JOINTS[body]


def _check_output_and_body(output: str, body: str) -> int:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    return _check_body(body)


class PosePrior(nn.Module, PretrainedMixin):
    """Adversarial parametric pose prior (Davydov et al., CVPR 2022): latent ``z`` -> body pose.

    Generator: Linear(D, H) - LeakyReLU(0.2) - Dropout - Linear(H, H) - LeakyReLU(0.2) -
    Linear(H, J*6), then Gram-Schmidt from 6D to rotation matrices.

    Args:
        latent: latent kind: ``"sphere"`` (GAN-S), ``"uniform"`` (GAN-U), ``"normal"`` (GAN-N).
        latent_dim: D.
        num_joints: J, 21 (SMPL-H/SMPL-X body) or 23 (SMPL body incl. hands).
        hidden_dim: H.
        dropout: dropout after the first layer (active only in train mode).
    """

    model_type = "gan"

    def __init__(
        self,
        latent: str = "sphere",
        latent_dim: int = 32,
        num_joints: int = NUM_BODY_JOINTS,
        hidden_dim: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self._latent_space = LatentSpace(latent, latent_dim)
        if num_joints not in (NUM_BODY_JOINTS, NUM_SMPL_BODY_JOINTS):
            raise ValueError(f"num_joints must be 21 or 23, got {num_joints!r}")
        if isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim < 1:
            raise ValueError(f"hidden_dim must be a positive int, got {hidden_dim!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.latent = latent
        self.latent_dim = latent_dim
        self.num_joints = num_joints
        self.generator = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden_dim, num_joints * 6),
        )

    def extra_repr(self) -> str:
        return f"latent={self.latent!r}, latent_dim={self.latent_dim}, num_joints={self.num_joints}"

    @property
    def latent_space(self) -> LatentSpace:
        """The :class:`LatentSpace` this prior samples from and projects onto."""
        return self._latent_space

    def _param(self) -> torch.Tensor:
        return next(self.generator.parameters())

    # -- decoding -----------------------------------------------------------------------------

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Body pose ``(..., 63)`` (axis-angle, radians, SMPL joints 1..21) from ``(..., D)``."""
        return self.decode(z)

    def decode(
        self, z: torch.Tensor, output: str = "axis_angle", body: str = "smplx"
    ) -> torch.Tensor:
        """Decode latents ``(..., D)`` (not projected: pass :meth:`project` output if needed).

        ``output``: ``"axis_angle"`` ``(..., 3J)``, ``"rotmat"`` ``(..., J, 3, 3)``,
        ``"rot6d"`` ``(..., J, 6)`` (first two columns of the orthonormalised matrix),
        ``"quat"`` ``(..., J, 4)`` in ``(x, y, z, w)`` order. ``J`` is 21 for
        ``body="smplx"``/``"smplh"`` and 23 for ``body="smpl"`` (hand joints appended as identity).
        """
        joints = _check_output_and_body(output, body)
        check_latent(z, self.latent_dim)
        dtype = self._param().dtype
        if z.dtype != dtype:
            raise TypeError(
                f"z has dtype {z.dtype} but the prior's weights are {dtype}; "
                f"convert one of them (z.to({dtype}) or prior.to({z.dtype}))"
            )
        return self._decode(z, output, joints)

    def _decode(self, z: torch.Tensor, output: str, joints: int) -> torch.Tensor:
        """:meth:`decode` without the input checks (for callers that made them already)."""
        lead = z.shape[:-1]
        rot6d = run_mlp(self.generator, z.reshape(-1, self.latent_dim))
        out = decode_6d(rot6d, output, joints)
        return out.reshape(*lead, *out.shape[1:])

    # -- latent space -------------------------------------------------------------------------

    def sample_latent(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(n, D)`` latents from the prior's latent distribution, on the model's device/dtype.
        With a seeded ``generator`` the result is reproducible and the global RNG is untouched."""
        p = self._param()
        return self._latent_space.sample(n, generator=generator, device=p.device, dtype=p.dtype)

    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        output: str = "axis_angle",
        body: str = "smplx",
    ) -> torch.Tensor:
        """``n`` random poses: :meth:`decode` of :meth:`sample_latent` (shapes as in ``decode``)."""
        joints = _check_output_and_body(output, body)
        return self._decode(self.sample_latent(n, generator=generator), output, joints)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``(..., D)`` moved onto the latent manifold (see :meth:`LatentSpace.project`)."""
        return self._latent_space.project(z)

    def interpolate(self, z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
        """Latent path ``(steps, D)`` or ``(B, steps, D)`` incl. endpoints: slerp on the sphere,
        linear otherwise (see :meth:`LatentSpace.interpolate`)."""
        return self._latent_space.interpolate(z0, z1, steps)

    # -- pose -> latent -----------------------------------------------------------------------

    def invert(self, body_pose: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Latents ``(..., D)`` whose decoding best matches ``body_pose``; see
        :func:`advprior.inversion.invert` for the keyword arguments."""
        from advprior.inversion import invert

        return invert(self, body_pose, **kwargs)

    def project_pose(self, body_pose: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """The closest pose the prior can produce: ``decode(invert(body_pose))``, same layout as
        ``body_pose`` (``(..., 63)``, or ``(..., 69)`` for SMPL input). Returns the pose only,
        also when ``return_error=True`` is passed through to ``invert``."""
        if not isinstance(body_pose, torch.Tensor):
            raise TypeError(f"body_pose must be a torch.Tensor (..., 63), got {type(body_pose)}")
        body = "smpl" if body_pose.shape[-1] == 3 * NUM_SMPL_BODY_JOINTS else "smplx"
        z = self.invert(body_pose, **kwargs)
        if isinstance(z, tuple):  # invert(..., return_error=True) -> (z, error)
            z = z[0]
        return self.decode(z, body=body)


class LatentPose(nn.Module):
    """One free latent per batch item, decoded through a prior: VPoser's ``pose_embedding``.

    ``forward()`` returns ``prior(prior.project(z))`` ``(B, 63)`` so any torch optimiser can act on
    :attr:`z` while the pose stays on the prior's manifold. ``prior`` is registered as a submodule
    (it follows ``.to()``); it is usually frozen, so optimising ``LatentPose.parameters()`` updates
    only ``z``.

    Args:
        prior: a :class:`PosePrior`.
        batch_size: B.
        init: ``(B, D)`` or ``(D,)`` initial latents; default: draws from the latent distribution
            with a fixed seed (0), so fits are reproducible and the global RNG is untouched.
    """

    def __init__(self, prior: PosePrior, batch_size: int, init: torch.Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(prior, PosePrior):
            raise TypeError(f"prior must be a PosePrior, got {type(prior).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be a non-negative int, got {batch_size!r}")
        self.prior = prior
        p = prior._param()
        if init is None:
            seeded = torch.Generator().manual_seed(0)
            init = prior.latent_space.sample(batch_size, generator=seeded, dtype=p.dtype)
        else:
            check_latent(init, prior.latent_dim, "init")
            if init.ndim == 1:
                init = init.expand(batch_size, -1)
            if tuple(init.shape) != (batch_size, prior.latent_dim):
                raise ValueError(
                    f"init must have shape ({batch_size}, {prior.latent_dim}) or "
                    f"({prior.latent_dim},), got {tuple(init.shape)}"
                )
        self.z = nn.Parameter(init.detach().to(device=p.device, dtype=p.dtype).clone())

    def latent(self) -> torch.Tensor:
        """The projected latents ``(B, D)`` actually decoded."""
        return self.prior.project(self.z)

    def forward(self, output: str = "axis_angle", body: str = "smplx") -> torch.Tensor:
        """Decoded poses, ``(B, 63)`` by default; ``output``/``body`` as in ``PosePrior.decode``."""
        joints = _check_output_and_body(output, body)
        # z is this module's own parameter, checked by project(); decode need not check again
        return self.prior._decode(self.latent(), output, joints)
