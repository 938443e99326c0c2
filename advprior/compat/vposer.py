"""VPoser-compatible loaders: existing VPoser v1 / v2 code runs on an advprior prior by changing
the import line and the checkpoint name.

- v1: ``from human_body_prior.tools.model_loader import load_vposer`` becomes
  ``from advprior.compat import load_vposer``; ``load_vposer(expr_dir, vp_model="snapshot")``
  takes ``"gan-s"`` (or any alias / checkpoint folder) as ``expr_dir``.
- v2: ``from human_body_prior.tools.model_loader import load_model`` becomes
  ``from advprior.compat import load_model``; ``load_model("gan-s", model_code=VPoser, ...)``.

The returned modules decode VPoser's embedding ``z (B, 32)`` through a :class:`LatentChart`, so
``z = 0`` is a typical pose with a non-zero gradient, an ``|z|^2`` term keeps VPoser's meaning,
and a raw ``z`` decodes to the same pose whenever it is decoded. Output shapes are VPoser's:

- v1 ``decode(z, output_type="matrot")`` -> ``(B, 1, 21, 9)``; ``"aa"`` -> ``(B, 1, 21, 3)``
  (axis-angle, radians, SMPL joints 1..21; ``.view(B, -1)`` gives SMPL-H/SMPL-X ``body_pose``).
- v2 ``decode(z)`` -> ``{"pose_body": (B, 21, 3), "pose_body_matrot": (B, 21, 9)}``.
- ``encode(pose)`` -> a ``torch.distributions.Normal`` over chart coordinates whose ``.mean`` is
  the latent of the pose (for a GAN: the inversion, :meth:`advprior.PosePrior.invert`, with zero
  spread, a point estimate; for the VAE: its posterior).
- ``sample_poses(num_poses, ...)``: poses from the prior's own latent distribution.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from advprior.compat.chart import LatentChart, chart_for
from advprior.rotations import axis_angle_to_rotmat, degree_poses, rotmat_to_axis_angle
from advprior.skeleton import _layout_hint, check_body_pose
from advprior.tensors import check_tensor

__all__ = ["VPoserV1", "VPoserV2", "load_vposer", "load_model", "VPoserSettings"]

_OUTPUT_TYPES = ("matrot", "aa")


class VPoserSettings(dict):
    """What ``load_vposer``/``load_model`` return as ``ps``/``model_cfg``: a dict that also reads
    as attributes (``ps.latentD``), like human_body_prior's configuration objects."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _resolve(expr_dir: object) -> nn.Module:
    if isinstance(expr_dir, nn.Module):
        return expr_dir
    if not isinstance(expr_dir, (str, os.PathLike)):
        raise TypeError(
            "expr_dir must be an advprior alias ('gan-s', 'vae', ...), a checkpoint folder or a "
            f"loaded prior, got {type(expr_dir).__name__}"
        )
    from advprior.hub import load_pretrained

    return load_pretrained(expr_dir)


def _check_z(z: object, dim: int) -> torch.Tensor:
    if not isinstance(z, torch.Tensor):
        check_tensor(z, "z", dim, finite=False)  # raises, with numpy's conversion hint
    if z.ndim == 0 or z.shape[-1] != dim:
        # a pose passed where the embedding goes is the likely mix-up
        hint = (
            " (that is a body pose: encode(pose).mean gives its z)"
            if z.ndim and (z.shape[-1] in (63, 69))
            else ""
        )
        raise ValueError(f"z must have shape (B, {dim}), got {tuple(z.shape)}{hint}")
    return z.reshape(-1, dim)


class VPoserV1(nn.Module):
    """VPoser v1's interface around an advprior prior with a latent (any GAN, or the VAE).

    Attributes as v1: ``latentD`` (32), ``num_joints`` (21). It holds a frozen copy of ``prior``
    (eval mode, no parameter gradients; the caller's module keeps its own mode and gradients);
    only the embedding a caller optimises changes.
    """

    def __init__(self, prior: nn.Module, chart: LatentChart | None = None) -> None:
        super().__init__()
        if getattr(prior, "model_type", None) not in ("gan", "vae"):
            raise TypeError(
                f"{type(prior).__name__} has no latent; VPoser's interface needs a GAN or the VAE "
                "(export a GMM with GMMPrior.export_smplify for SMPLify's MaxMixturePrior)"
            )
        # a copy: freezing the caller's own module in place would silently stop its training
        self.prior = copy.deepcopy(prior).eval().requires_grad_(False)
        self.chart = chart if chart is not None else chart_for(prior)
        self.latentD = int(prior.latent_dim)
        self.num_joints = 21
        self._warned_no_grad = False

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
        # torch loads this module before its children: the chart's record is compared here so
        # that an adapter of another latent kind refuses before its prior takes the weights
        key = f"{prefix}chart._extra_state"
        # a chart of the caller's own (any module with LatentChart's interface, e.g.
        # benchmarks/vposer_learned_chart.py's) records nothing and is not compared here
        check = getattr(self.chart, "check_record", None)
        if key in state_dict and check is not None:
            check(state_dict[key], f" (at {prefix[:-1]!r})" if prefix else "")
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def train(self, mode: bool = True) -> VPoserV1:
        # VPoser users call .train()/.eval() on it; the wrapped prior always decodes in eval mode
        # (dropout off), so that a fitted z gives the same pose whenever it is decoded.
        super().train(mode)
        self.prior.eval()
        return self

    def _param(self) -> torch.Tensor:
        return next(self.prior.parameters())

    @property
    def bodyprior_dec_fc1(self) -> nn.Linear:
        """The prior's first decoder layer, ``Linear(latentD, hidden)``, as v1's layer of that
        name: v1 code reads ``vposer.bodyprior_dec_fc1.weight.device`` / ``.dtype`` to put its
        embeddings where the model is (v1's own ``sample_poses`` does). Read only; it is the
        frozen prior's layer, not a copy."""
        for module in self.prior.modules():
            if isinstance(module, nn.Linear) and module.in_features == self.latentD:
                return module
        # an AttributeError inside a property would fall through to nn.Module.__getattr__,
        # whose message names no reason
        raise RuntimeError(
            f"{type(self.prior).__name__} has no linear layer taking the {self.latentD}-d "
            "latent; for the device and dtype use next(vposer.parameters())"
        )

    def latent(self, z: torch.Tensor) -> torch.Tensor:
        """The prior's latents ``(B, D)`` for embeddings ``z (B, D)`` (the chart)."""
        return self.chart(_check_z(z, self.latentD))

    def decode_rotmat(self, z: torch.Tensor) -> torch.Tensor:
        """Rotation matrices ``(B, 21, 3, 3)`` for embeddings ``z (B, D)``, in ``z``'s dtype
        (computed in the prior's: SMPLify-X run in float64 keeps float64 poses)."""
        w = self.latent(z)
        w = w.to(self._param().dtype)
        if self.prior.model_type == "gan":
            rot = self.prior.decode(w, output="rotmat", project=False)
        else:
            rot = self.prior.decode(w, output="rotmat")
        return rot.to(z.dtype)

    def decode(self, Zin: torch.Tensor, output_type: str = "matrot") -> torch.Tensor:  # noqa: N803
        """``(B, 1, 21, 9)`` rotation matrices (``"matrot"``) or ``(B, 1, 21, 3)`` axis-angle
        (``"aa"``), as VPoser v1."""
        if output_type not in _OUTPUT_TYPES:
            raise ValueError(f"output_type must be 'matrot' or 'aa', got {output_type!r}")
        rot = self.decode_rotmat(Zin)
        if output_type == "aa":
            return rotmat_to_axis_angle(rot).reshape(rot.shape[0], 1, self.num_joints, 3)
        return rot.reshape(rot.shape[0], 1, self.num_joints, 9)

    def encode(self, Pin: torch.Tensor, **invert_kwargs: Any) -> torch.distributions.Normal:  # noqa: N803
        """The latent of axis-angle poses ``Pin`` (``(B, 63)`` or anything with ``B * 63``
        entries, e.g. ``(B, 1, 21, 3)``; SMPL's ``B * 69``, whose two hand joints are dropped, as
        every advprior prior takes it; also rotation matrices, ``B x 21 x 9`` or ``B x 23 x 9``
        numbers, checked and projected as :func:`advprior.skeleton.check_body_pose` does) as a
        ``Normal`` over embeddings; ``.mean (B, D)``. One pose per leading row: ``(B, T, 63)``
        or ``(B, T, 21, 3)`` is a ``ValueError`` naming the reshape, and an integer or bool
        ``Pin`` a ``TypeError`` (VPoser's encoder network refuses both).

        GAN: the inversion (``invert_kwargs`` go to :meth:`advprior.PosePrior.invert`) through
        the chart's inverse, zero spread, **no gradient to the pose** (an optimisation, not a
        network; a warning says so once when the pose requires grad). A loss on
        ``decode(encode(pose).mean)`` against ``pose`` still gets a gradient through ``pose``
        itself, close to the full one: the inverted latent minimises a pose distance of that
        kind, so the latent's own derivative nearly drops out (envelope theorem).
        VAE: the posterior (the chart is the identity), differentiable. The distribution is in
        ``Pin``'s dtype. A row of ``Pin`` holding NaN/Inf gets a NaN ``mean`` (as VPoser's
        encoder network gives, and no exception: code encodes inside its loss closure, where a
        line search may try a non-finite step) and ``stddev`` 0 (so ``.sample()`` gives NaN
        there); the other rows are encoded as if alone."""
        if not isinstance(Pin, torch.Tensor):
            # was "got <class 'numpy.ndarray'>": the one checker's message says how to convert
            check_tensor(Pin, "Pin", None, finite=False)  # raises
        if not Pin.dtype.is_floating_point:
            # integer or bool numbers are no radians (a mask, indices, a pose rounded by a
            # file format): VPoser's encoder network fails on them, a cast hid the mistake
            raise TypeError(
                f"Pin must be a floating-point tensor of poses (radians, or rotation matrices), "
                f"got {Pin.dtype}; VPoser's encoder refuses it too (convert with Pin.float() "
                "if the numbers really are the pose)"
            )
        per_pose = math.prod(Pin.shape[1:]) if Pin.ndim else 0
        stacked = _stacked_poses(tuple(Pin.shape))
        if stacked:
            raise ValueError(stacked)
        if per_pose in (9 * self.num_joints, 9 * (self.num_joints + 2)):
            # checked as every pose input is: matrices that were no rotations (all ones, 6D
            # columns unnormalised) were converted to some pose without a word
            rot = Pin.reshape(Pin.shape[0], per_pose // 9, 3, 3)
            Pin = check_body_pose(rot, "Pin", finite=False)  # noqa: N806
            per_pose = Pin.shape[-1]
        if per_pose not in (3 * self.num_joints, 3 * (self.num_joints + 2)):
            hint = _layout_hint(tuple(Pin.shape)) if Pin.ndim else None
            if hint is None and Pin.ndim:
                hint = _layout_hint((Pin.shape[0], per_pose))
            raise ValueError(
                "Pin must hold B x 63 axis-angle numbers (or SMPL's B x 69), got "
                f"{tuple(Pin.shape)}{f'; {hint}' if hint else ''}"
            )
        # SMPL's two hand joints are dropped here, so that both layouts invert the same body
        pose = Pin.reshape(Pin.shape[0], per_pose)[:, : 3 * self.num_joints].contiguous()
        dtype = Pin.dtype
        pose = pose.to(self._param().dtype)
        finite = torch.isfinite(pose).all(dim=-1)
        if bool(finite.all()):
            loc, scale = self._encode_rows(Pin, pose, invert_kwargs)
        else:
            # Row-wise NaN, as VPoser's encoder network gives: code calls encode inside its loss
            # closure (HuMoR's third stage, EasyMocap's VPoserPrior), where a strong-Wolfe trial
            # step may be non-finite and must give a NaN loss, not an exception; and v2's IK
            # engine masks such rows with isnan(z). The finite rows are encoded on their own.
            # Their spread is 0, not NaN: torch.normal refuses a NaN spread, and EasyMocap's
            # loss calls .sample().
            rows = finite.nonzero().squeeze(1)
            inner, spread = self._encode_rows(Pin, pose[rows], invert_kwargs)
            shape = (pose.shape[0], self.latentD)
            loc = inner.new_full(shape, math.nan).index_copy(0, rows, inner)
            scale = spread.new_zeros(shape).index_copy(0, rows, spread)
        return torch.distributions.Normal(loc.to(dtype), scale.to(dtype), validate_args=False)

    def _encode_rows(
        self,
        Pin: torch.Tensor,  # noqa: N803
        pose: torch.Tensor,
        invert_kwargs: dict[str, Any],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, stddev)`` ``(B, D)`` of finite ``(B, 63)`` poses in the prior's dtype."""
        if self.prior.model_type == "vae":
            q = self.prior.encode(pose)
            return q.mean, q.stddev
        if Pin.requires_grad and torch.is_grad_enabled() and not self._warned_no_grad:
            self._warned_no_grad = True
            warnings.warn(
                "encode() of a GAN prior inverts the pose by optimisation: its latent carries no "
                "gradient to the pose, so a loss on encode(pose).mean trains nothing (a loss on "
                "decode(encode(pose).mean) - pose does get its gradient through pose)",
                UserWarning,
                stacklevel=3,  # the caller of encode()
            )
        # invert refuses rotation vectors longer than 4 pi as degrees, at a user's boundary;
        # encode also runs inside other people's loss closures (HuMoR, EasyMocap), where such a
        # vector is an optimiser's trial step: the same rotation written long, so it is wrapped
        # to its canonical vector (the inversion sees rotations only) instead of raising
        long = degree_poses(pose.reshape(pose.shape[0], pose.shape[-1] // 3, 3))
        if bool(long.any()):
            short = rotmat_to_axis_angle(axis_angle_to_rotmat(pose.reshape(-1, 3)))
            pose = torch.where(long[:, None], short.reshape(pose.shape), pose)
        loc = self.chart.inverse(self.prior.invert(pose, **invert_kwargs))
        return loc, torch.zeros_like(loc)

    def _sample_latent(self, num_poses: int, seed: int | None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        return self.prior.sample_latent(num_poses, generator=gen)

    @torch.no_grad()
    def sample_poses(
        self, num_poses: int, output_type: str = "aa", seed: int | None = None
    ) -> torch.Tensor:
        """``num_poses`` poses from the prior's own latent distribution, shapes as
        :meth:`decode`; ``seed`` makes them reproducible without touching the global RNG
        (without it they are drawn from torch's global RNG)."""
        if output_type not in _OUTPUT_TYPES:
            raise ValueError(f"output_type must be 'matrot' or 'aa', got {output_type!r}")
        w = self._sample_latent(num_poses, seed)
        rot = self.prior.decode(w, output="rotmat")
        if output_type == "aa":
            return rotmat_to_axis_angle(rot).reshape(num_poses, 1, self.num_joints, 3)
        return rot.reshape(num_poses, 1, self.num_joints, 9)

    def forward(
        self,
        Pin: torch.Tensor,  # noqa: N803
        input_type: str = "matrot",
        output_type: str = "matrot",
    ) -> dict[str, torch.Tensor]:
        """Encode then decode the mean: ``{"pose", "mean", "std"}`` as v1's autoencoder, with
        v1's signature; the decoded pose also under the key v1's later release names it,
        ``"pose_aa"`` or ``"pose_matrot"`` (by ``output_type``). ``Pin`` is axis-angle
        (``B x 63`` numbers, what v1's encoder takes whatever ``input_type`` says: v1 checks it
        and ignores it) or rotation matrices
        (``B x 21 x 9`` numbers, or SMPL's ``B x 23 x 9``, read as
        :func:`advprior.skeleton.check_body_pose` reads matrices: projected to the nearest
        rotation within its tolerance, refused beyond it); its size tells which."""
        if input_type not in _OUTPUT_TYPES:
            raise ValueError(f"input_type must be 'matrot' or 'aa', got {input_type!r}")
        if output_type not in _OUTPUT_TYPES:
            raise ValueError(f"output_type must be 'matrot' or 'aa', got {output_type!r}")
        q = self.encode(Pin)
        pose = self.decode(q.mean, output_type=output_type)
        # v1.0 returned {"pose", "mean", "std"}; the last v1 release renamed "pose" to
        # "pose_aa" / "pose_matrot" (its own trainer and renderers read those): both are here
        return {
            "pose": pose,
            f"pose_{output_type}": pose,
            "mean": q.mean,
            "std": q.stddev,
        }

    @staticmethod
    def matrot2aa(pose_matrot: torch.Tensor) -> torch.Tensor:
        """VPoser v1's helper: rotation matrices ``(N, 1, J, 9)`` (any ``N x J*9`` numbers) ->
        axis-angle ``(N, 1, J, 3)`` (radians, angle in ``[0, pi]``), differentiable."""
        per = _per_row(pose_matrot, 9, "pose_matrot")
        aa = rotmat_to_axis_angle(pose_matrot.reshape(-1, 3, 3))
        return aa.reshape(pose_matrot.shape[0], 1, per, 3)

    @staticmethod
    def aa2matrot(pose: torch.Tensor) -> torch.Tensor:
        """VPoser v1's helper: axis-angle ``(N, 1, J, 3)`` (any ``N x J*3`` numbers, radians) ->
        rotation matrices ``(N, 1, J, 9)``, differentiable."""
        per = _per_row(pose, 3, "pose")
        rot = axis_angle_to_rotmat(pose.reshape(-1, 3))
        return rot.reshape(pose.shape[0], 1, per, 9)


def _stacked_poses(shape: tuple[int, ...]) -> str | None:
    """The message for ``Pin`` of shape ``shape`` holding several axis-angle poses per leading
    row, e.g. ``(B, T, 63)`` or ``(B, T, 21, 3)`` (None otherwise). Why: with ``T = 3`` a row
    has 189 numbers, which by their count alone read as 21 rotation matrices and were refused
    as "not rotations", pointing away from the shape."""
    if len(shape) < 3:
        return None
    if shape[-1] in (63, 69):
        per, lead = shape[-1], shape[:-1]
    elif shape[-1] == 3 and shape[-2] in (21, 23):
        per, lead = 3 * shape[-2], shape[:-2]
    else:
        return None
    rows = math.prod(lead[1:])
    if rows <= 1:
        return None
    dims = ", ".join(str(n) for n in lead)
    return (
        f"Pin must hold one pose per leading row (B x 63 axis-angle numbers, e.g. (B, 63) or "
        f"VPoser's (B, 1, 21, 3)), got {shape}: {rows} poses of {per} numbers per row; pass "
        f"Pin.reshape(-1, {per}) and reshape the latents back with .mean.reshape({dims}, -1)"
    )


def _per_row(x: object, size: int, name: str) -> int:
    """Rotations per leading row of ``x`` (``size`` numbers each), for v1's static helpers."""
    if not isinstance(x, torch.Tensor):
        check_tensor(x, name, size, finite=False)  # raises, with numpy's conversion hint
    numbers = math.prod(x.shape[1:]) if x.ndim else 0
    if x.ndim < 2 or numbers % size:
        raise ValueError(f"{name} must have shape (N, 1, J, {size}), got {tuple(x.shape)}")
    return numbers // size


class VPoserV2(VPoserV1):
    """VPoser v2's interface (``decode(z)`` returns a dict) around an advprior prior."""

    @property
    def bodyprior_dec_fc1(self) -> nn.Linear:
        # v2's VPoser has no layer of that name (its decoder is decoder_net): code that tells
        # the two versions apart with hasattr must still see a v2 model
        raise AttributeError("bodyprior_dec_fc1")

    def decode(self, Zin: torch.Tensor) -> dict[str, torch.Tensor]:  # noqa: N803
        """``{"pose_body": (B, 21, 3), "pose_body_matrot": (B, 21, 9)}`` as VPoser v2.

        As v2, the first dimension of ``Zin`` is kept and the joints of any further leading
        dimensions are stacked: ``Zin (B, T, 32)`` gives ``(B, T * 21, 3)`` (``.reshape(B, T,
        63)`` is each frame's ``body_pose``); ``Zin (32,)`` gives ``(1, 21, 3)``."""
        rot = self.decode_rotmat(Zin)
        lead = Zin.shape[0] if Zin.ndim > 1 else 1
        per = self.num_joints * math.prod(Zin.shape[1:-1])
        return {
            "pose_body": rotmat_to_axis_angle(rot).reshape(lead, per, 3),
            "pose_body_matrot": rot.reshape(lead, per, 9),
        }

    @torch.no_grad()
    def sample_poses(self, num_poses: int, seed: int | None = None) -> dict[str, torch.Tensor]:
        """``num_poses`` poses from the prior's latent distribution, as :meth:`decode`'s dict."""
        rot = self.prior.decode(self._sample_latent(num_poses, seed), output="rotmat")
        return {
            "pose_body": rotmat_to_axis_angle(rot).reshape(num_poses, self.num_joints, 3),
            "pose_body_matrot": rot.reshape(num_poses, self.num_joints, 9),
        }

    def forward(self, pose_body: torch.Tensor) -> dict[str, Any]:
        """Encode then decode the mean: v2's keys ``pose_body``, ``pose_body_matrot``,
        ``poZ_body_mean``, ``poZ_body_std``, ``q_z``."""
        q = self.encode(pose_body)
        out: dict[str, Any] = self.decode(q.mean)
        out.update({"poZ_body_mean": q.mean, "poZ_body_std": q.stddev, "q_z": q})
        return out


def _settings(vposer: VPoserV1, name: object, version: int) -> VPoserSettings:
    prior = vposer.prior
    config = getattr(prior, "config", None)
    hidden = config.get("hidden_dim") if isinstance(config, dict) else None
    return VPoserSettings(
        latentD=vposer.latentD,
        # v1's settings file (.ini) keys, which its loader builds the model from
        num_neurons=hidden,
        data_shape=[1, vposer.num_joints, 3],
        # v2 code reads its sizes from the nested config: ``cfg.model_params.latentD``
        model_params=VPoserSettings(latentD=vposer.latentD, num_neurons=hidden),
        num_joints=vposer.num_joints,
        model_type=prior.model_type,
        latent=prior.latent,
        chart=vposer.chart.kind,
        chart_scale=vposer.chart.scale,
        expr_dir=str(name) if not isinstance(name, nn.Module) else type(name).__name__,
        vposer_api=version,
    )


def _device(comp_device: object) -> torch.device | None:
    if comp_device is None:
        return None
    device = torch.device("cuda" if comp_device == "gpu" else comp_device)
    # v2 loads on the CPU when no GPU is there, whatever comp_device says (scripts pass
    # comp_device="cuda" and run on CPU-only machines too)
    if device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    return device


def load_vposer(
    expr_dir: str | os.PathLike | nn.Module, vp_model: str | type = "snapshot"
) -> tuple[VPoserV1, VPoserSettings]:
    """VPoser v1's loader: ``(vposer, ps)`` for an advprior alias (``"gan-s"``, ``"gan-u"``,
    ``"gan-n"``, ``"vae"``), a checkpoint folder or a loaded prior. ``vp_model`` is accepted
    for v1's signature, ``"snapshot"`` or a model class as v1 documents it (VPoser's own
    class, still imported by code that swapped only the loader), and unused: the model comes
    from the checkpoint.

    Raises:
        TypeError: a prior without a latent (the GMM) or a bad argument type.
        advprior.errors.ModelNotFoundError: unknown alias or path (as ``load_pretrained``).
    """
    if not isinstance(vp_model, (str, type)):
        raise TypeError(f"vp_model must be 'snapshot' or a class, got {type(vp_model).__name__}")
    # eval mode, as v1 returns it (code may read .training; decoding never depends on it)
    vposer = VPoserV1(_resolve(expr_dir)).eval()
    return vposer, _settings(vposer, expr_dir, 1)


def _override(cfg: VPoserSettings, override: object) -> None:
    """Merge v2's ``model_cfg_override`` into ``cfg``: keys are dotted paths
    (``"model_params.latentD"``, ``"dirs.work_base_dir"``) as v2 merges them into its config.
    Keys that describe the model must keep their values: the model comes from the checkpoint."""
    if not isinstance(override, Mapping):
        raise TypeError(
            f"model_cfg_override must be a dict of dotted keys, got {type(override).__name__}"
        )
    fixed = {
        "latentD": cfg["latentD"],
        "num_neurons": cfg["num_neurons"],
        "model_params.latentD": cfg["latentD"],
        "model_params.num_neurons": cfg["num_neurons"],
    }
    for key, value in override.items():
        parts = key.split(".") if isinstance(key, str) else []
        if not parts or not all(parts):
            raise ValueError(f"model_cfg_override keys must be dotted names, got {key!r}")
        if key in fixed and value != fixed[key]:
            raise ValueError(
                f"model_cfg_override cannot change {key!r} ({fixed[key]!r}): advprior's model "
                "and its sizes come from the checkpoint (pick another alias or checkpoint)"
            )
        node = cfg
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = VPoserSettings()
            node = node[part]
        node[parts[-1]] = value


def load_model(
    expr_dir: str | os.PathLike | nn.Module,
    model_code: object = None,
    remove_words_in_model_weights: str | None = None,
    load_only_cfg: bool = False,
    disable_grad: bool = True,
    model_cfg_override: Mapping[str, Any] | None = None,
    comp_device: str | torch.device | None = None,
    *,
    custom_hparams: dict[str, Any] | None = None,
) -> tuple[VPoserV2, VPoserSettings] | VPoserSettings:
    """VPoser v2's loader: ``(model, cfg)`` (``cfg`` alone with ``load_only_cfg``), with v2's
    signature.

    ``model_code`` (v2's class) and ``remove_words_in_model_weights`` are accepted and unused:
    the model's class and weights come from the checkpoint. ``model_cfg_override`` is merged
    into ``cfg`` as v2 merges it (dotted keys such as ``"dirs.work_base_dir"`` set nested
    entries); it cannot change the model's sizes (``latentD``, ``num_neurons``: ``ValueError``).
    ``custom_hparams`` (keyword only, this module's earlier spelling) adds flat entries.
    ``comp_device``: None keeps the CPU, ``"gpu"`` means CUDA, or any torch device; a CUDA
    device on a machine without one falls back to the CPU, as v2 loads there. The prior never
    has parameter gradients: ``disable_grad=False`` (v2's way to fine-tune) warns that nothing
    would train (``UserWarning``).
    """
    if remove_words_in_model_weights is not None and not isinstance(
        remove_words_in_model_weights, str
    ):
        raise TypeError("remove_words_in_model_weights must be a str or None")
    if not disable_grad:
        # v2 code passes False to fine-tune VPoser; our parameters stay frozen, so its
        # optimiser would step nothing, silently: say so where the call is made
        warnings.warn(
            "load_model(disable_grad=False): advprior's priors load frozen and the VPoser "
            "adapter does not train them; an optimiser over vposer.parameters() changes nothing. "
            "Train a prior on your poses with `advprior train` instead.",
            UserWarning,
            stacklevel=2,
        )
    vposer = VPoserV2(_resolve(expr_dir)).eval()  # as v2 returns it
    cfg = _settings(vposer, expr_dir, 2)
    if model_cfg_override is not None:
        _override(cfg, model_cfg_override)
    cfg.update(custom_hparams or {})
    if load_only_cfg:
        return cfg
    device = _device(comp_device)
    if device is not None:
        vposer = vposer.to(device)
    return vposer, cfg
