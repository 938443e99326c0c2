"""The adversarial pose prior: a generator from a latent space to body poses, and ``LatentPose``.

Conventions: ``body_pose`` is axis-angle in radians for SMPL joints 1..21 (the SMPL-H / SMPL-X
body joints, AMASS ``pose_body``), ``(..., 63)``; ``body="smpl"`` adds SMPL's two hand joints
(22, 23) as identity rotations, ``(..., 69)``. Rotation matrices act on column vectors; 6D is the
first two columns read row by row, ``R[..., :2].flatten(-2)`` (:mod:`advprior.rotations`);
quaternions are ``(x, y, z, w)``.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advprior.errors import PriorMismatchError
from advprior.hub import PretrainedMixin
from advprior.interface import (
    BODIES,
    OUTPUTS,
    Prior,
    body_joints,
    check_output,
    convert_rotmat,
    start_samples,
)
from advprior.latent import LatentSpace, check_latent
from advprior.rotations import _const, rot6d_to
from advprior.skeleton import NUM_BODY_JOINTS, NUM_SMPL_BODY_JOINTS
from advprior.tensors import (
    check_dtype,
    chunk_bounds,
    forgive_missing,
    json_tensor,
    read_json_tensor,
)
from advprior.version import is_compiling

__all__ = [
    "BODIES",
    "OUTPUTS",
    "LatentPose",
    "PosePrior",
    "convert_rotmat",
    "decode_6d",
    "decode_rows",
    "run_mlp",
]


def _has_hooks(module: nn.Module) -> bool:
    # torch keeps hooks in these (private but long-stable) dicts; any hook means the layers
    # must run as modules so that it fires.
    if nn.modules.module._global_forward_hooks or nn.modules.module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


def run_mlp(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``mlp(x)``; in eval mode without hooks, its Linear / LeakyReLU / Dropout layers run as
    functions: same numbers, but a module call costs ~3-5 us of Python per layer, as much as
    the layer's own arithmetic at batch 1.

    A frozen ``mlp`` (no parameter requires grad, as ``from_pretrained`` loads a prior) runs as
    in eval mode even in training mode: it is not being trained, and a user's
    ``model.train()`` reaching a prior held as a plain submodule would otherwise switch on its
    dropout and make every decoded pose random. (With hooks, the layers then run as modules
    except the dropout, so hooks on the layers fire; one on ``mlp`` itself does not.)"""
    if mlp.training and any(p.requires_grad for p in mlp.parameters()):
        return mlp(x)
    if _has_hooks(mlp):
        if not mlp.training:
            return mlp(x)
        for layer in mlp:
            if not isinstance(layer, nn.Dropout):
                x = layer(x)
        return x
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
    x = rot6d.reshape(-1, have, 6)  # -1: onnxruntime cannot infer a dim beside a 0 batch
    if joints > have:
        # kept per dtype and device: made from host numbers at every call, it was a copy a GPU
        # stream waited for at every decode of SMPL's 23 joints
        eye = _const("identity6d", x)
        x = torch.cat([x, eye.expand(x.shape[0], joints - have, 6)], dim=1)
    elif joints < have:
        x = x[:, :joints]
    out = rot6d_to(x, output)
    return out.reshape(out.shape[0], joints * 3) if output == "axis_angle" else out


#: Latents decoded at once when no gradient is recorded (:func:`decode_rows`).
DECODE_CHUNK = 65536
# A last chunk of fewer latents joins the one before (its rotations would take other kernels).
_MIN_CHUNK = 64


def decode_rows(mlp: nn.Sequential, z: torch.Tensor, output: str, joints: int) -> torch.Tensor:
    """``decode_6d(run_mlp(mlp, z), output, joints)`` for latents ``z (B, D)``, in chunks of
    :data:`DECODE_CHUNK` rows where nothing records a gradient and the layers act row by row.

    Why: the hidden layers hold ~4 KB per latent, 16x the axis-angle pose they give
    (``sample(10**6)`` peaked at ~4 GB for 250 MB of poses; ~0.9 GB in chunks). Each row goes
    through the same kernels as in one call (chunks are a multiple of 64 rows; a short last one
    joins the one before), so the poses are the same to the bit. In training mode (dropout,
    BatchNorm's batch statistics) or with a gradient to record, ``z`` is decoded in one call."""
    n = z.shape[0]
    params = list(mlp.parameters())
    trains = mlp.training and any(p.requires_grad for p in params)
    records = torch.is_grad_enabled() and (z.requires_grad or any(p.requires_grad for p in params))
    bounds = [(0, n)] if trains or records else chunk_bounds(n, DECODE_CHUNK, min_last=_MIN_CHUNK)
    if len(bounds) == 1:
        return decode_6d(run_mlp(mlp, z), output, joints)
    out = None
    for a, b in bounds:
        part = decode_6d(run_mlp(mlp, z[a:b]), output, joints)
        if out is None:
            out = part.new_empty(n, *part.shape[1:])
        out[a:b] = part
    return out


class PosePrior(nn.Module, PretrainedMixin, Prior):
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
    invert_method = "invert (PosePrior.invert)"

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
        # float() first raised "could not convert string to float: 'x'", naming no argument
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
            raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")
        if not 0.0 <= dropout < 1.0:
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

    # -- decoding -----------------------------------------------------------------------------

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Body pose ``(..., 63)`` (axis-angle, radians, SMPL joints 1..21) from ``(..., D)``."""
        return self.decode(z)

    def decode(
        self,
        z: torch.Tensor,
        output: str = "axis_angle",
        body: str = "smplx",
        *,
        project: bool = True,
    ) -> torch.Tensor:
        """Decode latents ``(..., D)``.

        ``output``: ``"axis_angle"`` ``(..., 3J)``, ``"rotmat"`` ``(..., J, 3, 3)``,
        ``"rot6d"`` ``(..., J, 6)`` (first two columns of the orthonormalised matrix),
        ``"quat"`` ``(..., J, 4)`` in ``(x, y, z, w)`` order. ``J`` is 21 for
        ``body="smplx"``/``"smplh"`` and 23 for ``body="smpl"`` (hand joints appended as identity).

        ``project`` (default True) first moves ``z`` onto the latent manifold
        (:meth:`project`). That is the default because every fit (:class:`LatentPose`,
        :func:`advprior.fitting.fit_keypoints`) decodes ``project(z)``: a raw fitted ``z``, saved
        and decoded later, gives the pose that was fitted. A latent already on the manifold decodes
        as with ``project=False`` up to float rounding (renormalising a unit vector can move it by
        an ulp); ``project=False`` decodes ``z`` as given (the generator never saw latents off
        the manifold).

        NaN/Inf latents decode to NaN/Inf poses (no exception), so the call is safe inside any
        optimiser's line search; shape, dtype and type errors still raise.

        Dropout acts only in training mode while some generator weight requires grad: a frozen
        prior (``from_pretrained``'s default) held in a user's model decodes deterministically
        after ``model.train()``.
        """
        check_output(output)
        joints = body_joints(body)
        check_latent(z, self.latent_dim, finite=False)
        if project:
            z = self.project(z)
        return self._decode(check_dtype(z, self.dtype, "z"), output, joints)

    def _decode(self, z: torch.Tensor, output: str, joints: int) -> torch.Tensor:
        """:meth:`decode` without the input checks (for callers that made them already)."""
        lead = z.shape[:-1]
        out = decode_rows(self.generator, z.reshape(-1, self.latent_dim), output, joints)
        return out.reshape(*lead, *out.shape[1:])

    # -- latent space -------------------------------------------------------------------------

    def typical_latent(self) -> torch.Tensor:
        """The latent ``(D,)`` of a typical pose, a pure function of the weights
        (:meth:`advprior.interface.Prior.fit_start`): on the sphere the medoid of the decodings of
        512 latents drawn with seed 0 (in float32 whatever the prior's dtype: a ``.double()``
        prior has the same one); the origin (itself on the manifold) for the cube and the
        Gaussian. It is :func:`advprior.fitting.fit_keypoints`' starting latent,
        ``LatentPose(init="typical")`` and the centre of :mod:`advprior.compat`'s chart."""
        return self.fit_start()


#: The released priors of each latent kind, to name them when a LatentPose state dict is refused.
_KIND_ALIAS = {"sphere": "gan-s", "uniform": "gan-u", "normal": "gan-n or the vae"}
_MAX_LATENT_RECORD_BYTES = 256


def _read_latent_record(state: Any) -> dict[str, Any]:
    record = read_json_tensor(state, _MAX_LATENT_RECORD_BYTES)
    if (
        isinstance(record, dict)
        and set(record) == {"latent", "latent_dim"}
        and isinstance(record["latent"], str)
        and isinstance(record["latent_dim"], int)
        and not isinstance(record["latent_dim"], bool)
    ):
        return record
    raise PriorMismatchError(
        "the LatentPose state dict's '_extra_state' is not a latent record (a uint8 tensor of at "
        f"most {_MAX_LATENT_RECORD_BYTES} bytes of JSON: 'latent' a kind, 'latent_dim' an int); "
        "was it saved from a LatentPose?"
    )


class LatentPose(nn.Module):
    """One free latent per batch item, decoded through a prior: VPoser's ``pose_embedding``.

    ``forward()`` returns ``prior(prior.project(z))`` ``(B, 63)`` so any torch optimiser can act on
    :attr:`z` while the pose stays on the prior's manifold. ``prior`` is registered as a submodule
    (it follows ``.to()``); it is usually frozen, so optimising ``LatentPose.parameters()`` updates
    only ``z``.

    Args:
        prior: a prior with a latent space (:class:`PosePrior`, or any
            :class:`advprior.interface.Prior` whose ``latent_space`` is not None).
        batch_size: B.
        init: where :attr:`z` starts (and where :meth:`reset` puts it back): ``None`` (default)
            draws from the latent distribution with a fixed seed (0), so fits are reproducible
            and the global RNG is untouched; ``"typical"`` is :meth:`PosePrior.typical_latent`
            for every item, the start of :func:`advprior.fitting.fit_keypoints`; or a tensor
            ``(B, D)`` / ``(D,)``.

    Do not reset :attr:`z` with ``z.data.fill_(0)`` as VPoser code does: on the sphere the zero
    vector has no direction, decodes to a fixed pole with zero gradient and never moves (a
    ``RuntimeWarning`` says so). Call :meth:`reset`, or use :mod:`advprior.compat`, whose chart
    puts a typical pose at ``z = 0``.
    """

    def __init__(
        self, prior: Prior, batch_size: int, init: torch.Tensor | str | None = None
    ) -> None:
        super().__init__()
        if not isinstance(prior, Prior) or prior.latent_space is None:
            raise TypeError(
                f"prior must have a latent space (a PosePrior, a VPoserVAE), got "
                f"{type(prior).__name__}"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be a non-negative int, got {batch_size!r}")
        # eval mode from the start, as LatentHead: a prior straight from training still has
        # dropout on, and every call would decode the same z to another pose
        self.prior = prior.eval()
        dim, dtype = prior.latent_space.dim, prior.dtype
        if init is None:
            init = start_samples(prior.latent_space, dtype, batch_size)
        elif isinstance(init, str):
            if init != "typical":
                raise ValueError(f'init must be None, "typical" or a tensor, got {init!r}')
            init = prior.fit_start().detach().expand(batch_size, -1)
        else:
            check_latent(init, dim, "init")
            if init.ndim == 1:
                init = init.expand(batch_size, -1)
            if tuple(init.shape) != (batch_size, dim):
                raise ValueError(
                    f"init must have shape ({batch_size}, {dim}) or ({dim},), "
                    f"got {tuple(init.shape)}"
                )
        start = init.detach().to(device=prior.device, dtype=dtype).clone()
        self.z = nn.Parameter(start.clone())
        # A buffer, so that the start follows .to() and is saved with the state dict.
        self.register_buffer("z_init", start)
        self._warned_zero = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A LatentPose pickled whole (torch.save(model)) by advprior 0.1.0 has neither the
        # zero-row flag nor a start (reset() came in 0.2.0): every call raised AttributeError.
        # Its start is the one a LatentPose built with the default init has, as for 0.1.0's
        # state dicts (load_state_dict keeps the module's own start).
        super().__setstate__(state)
        self.__dict__.setdefault("_warned_zero", False)
        if "z_init" not in self._buffers:
            start = start_samples(self.prior.latent_space, self.z.dtype, self.z.shape[0])
            self.register_buffer("z_init", start.to(self.z.device))

    # -- what the state dict records -----------------------------------------------------------

    def latent_record(self) -> dict[str, Any]:
        """What the state dict records (``_extra_state``, a uint8 tensor of JSON) of the latent
        space its ``z`` live in: ``{"latent": kind, "latent_dim": D}``. The kind is the prior's
        constructor value, not a tensor: without it a fit saved on GAN-U (its ``z`` and the
        prior's weights) loaded silently into a ``LatentPose`` on GAN-S, whose projection
        decoded every ``z`` to another pose (up to 5 rad apart)."""
        space = self.prior.latent_space
        return {"latent": space.kind, "latent_dim": space.dim}

    def get_extra_state(self) -> torch.Tensor:
        return json_tensor(self.latent_record())

    def set_extra_state(self, state: Any) -> None:
        # nothing to set (the kind is the prior's); _load_from_state_dict compared it already
        _read_latent_record(state)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        extra = prefix + "_extra_state"
        if extra in state_dict:
            # before anything loads: torch loads this module, then its prior
            saved, mine = _read_latent_record(state_dict[extra]), self.latent_record()
            if saved != mine:
                where = f" (at {prefix[:-1]!r})" if prefix else ""
                raise PriorMismatchError(
                    f"this LatentPose state dict{where} was fitted on a prior with latent "
                    f"{saved['latent']!r} dim {saved['latent_dim']}, but this LatentPose's prior "
                    f"has latent {mine['latent']!r} dim {mine['latent_dim']}: its z decode to "
                    "other poses there. Build the LatentPose on the prior it was fitted with "
                    f"({_KIND_ALIAS.get(saved['latent'], 'the same kind')}). Nothing was loaded "
                    "into the LatentPose."
                )
        before = len(missing_keys)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        # advprior 0.1.0 saved no start (reset() came in 0.2.0): its state dicts keep this
        # module's own start, as a LatentPose built with the same init would have had
        if prefix + "z" in state_dict:
            forgive_missing(missing_keys, before, prefix + "z_init")
        # nor the latent record (added later): they load as before, strictly too
        forgive_missing(missing_keys, before, extra)

    def train(self, mode: bool = True) -> LatentPose:
        super().train(mode)
        # a wrapper's .train() (user code, Lightning) would switch on the generator's dropout:
        # random poses, and a saved z no longer decoding to the pose it fitted
        self.prior.eval()
        return self

    @torch.no_grad()
    def reset(self) -> None:
        """Put :attr:`z` back to its starting value (VPoser code's ``pose_embedding.fill_(0)``
        before each new try). In place: an optimiser holding :attr:`z` keeps working, but
        clear its state (a new ``torch.optim`` instance) as you would after ``fill_``."""
        self.z.copy_(self.z_init.to(self.z.dtype))

    def latent(self) -> torch.Tensor:
        """The projected latents ``(B, D)`` actually decoded."""
        if self.prior.latent_space.kind == "sphere" and not self._warned_zero:
            self._warn_if_zero()
        return self.prior.project(self.z)

    def _warn_if_zero(self) -> None:
        # Advice only, so never in a traced graph: torch.export (and jit.trace) would otherwise
        # depend on the latent's values, and inside torch.func.vmap a value cannot steer Python.
        if is_compiling() or torch.jit.is_tracing():
            return
        with torch.no_grad():
            small = (self.z.norm(dim=-1) <= 1e-12).any()
            try:
                zero = bool(small)
            except RuntimeError:  # vmap's "data-dependent control flow"
                return
        if zero:
            self._warned_zero = True
            warnings.warn(
                "LatentPose.z has a zero row: on the sphere it has no direction, decodes to a "
                "fixed pole with zero gradient and will not move; call LatentPose.reset() "
                "instead of z.fill_(0), or use advprior.compat (z = 0 is a typical pose there)",
                RuntimeWarning,
                stacklevel=3,
            )

    def forward(self, output: str = "axis_angle", body: str = "smplx") -> torch.Tensor:
        """Decoded poses, ``(B, 63)`` by default; ``output``/``body`` as in ``PosePrior.decode``.
        Exactly ``prior.decode(z)`` (which projects), so a saved raw :attr:`z` decodes bitwise to
        the pose returned here."""
        if self.prior.latent_space.kind == "sphere" and not self._warned_zero:
            self._warn_if_zero()
        return self.prior.decode(self.z, output=output, body=body)
