"""``LatentHead``: the last layer of a pose regressor, outputting poses through a frozen prior."""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from advprior.errors import PriorMismatchError
from advprior.hub import read_manifest, state_sha256
from advprior.interface import Prior
from advprior.tensors import check_tensor

#: How a raw linear output is mapped onto each latent manifold
#: (:meth:`advprior.latent.LatentSpace.map_unconstrained`).
MANIFOLD_MAPS = {"sphere": "normalise", "uniform": "tanh", "normal": "identity"}


class LatentHead(nn.Module):
    """Map a feature vector to a latent on the prior's manifold and decode it to a body pose.

    ``Linear(in_features, D)`` then: sphere -> divide by the norm; uniform -> ``tanh`` (inside
    the cube, smooth); normal (GAN-N, and a VAE's N(0, I) latent) -> unchanged. The prior is
    frozen (``requires_grad=False``, kept in eval mode even under ``head.train()``), so an
    optimiser over ``head.parameters()`` trains only the linear layer (and whatever backbone
    feeds it); gradients flow through the prior's decoder to the features.

    Args:
        in_features: F, the size of the features.
        prior: a prior with a latent space (:class:`advprior.PosePrior`, the VAE baseline, any
            :class:`advprior.interface.Prior` whose ``latent_space`` is not None).
        hidden: optional width of one hidden layer (LeakyReLU) before the latent layer.

    ``forward(features (..., F)) -> body_pose (..., 63)`` axis-angle, radians;
    ``forward(features, output="rotmat")`` -> ``(..., 21, 3, 3)``. :meth:`latent` gives the
    latent ``(..., D)``.

    The state dict records the prior the head was trained for (``_extra_state``, a uint8 tensor
    of JSON: the prior's class, latent kind, latent dim and weights sha256, see
    :meth:`prior_record`), so ``torch.save`` with ``torch.load(weights_only=True)`` and
    safetensors both keep it. ``load_state_dict`` raises
    :class:`~advprior.errors.PriorMismatchError` naming both priors, before changing anything
    in the head, when the head is built on another prior than the state dict's record: another
    class, latent kind or dim, or other weights (those the state dict carries under ``prior.``,
    else the head's own prior's). (In a model that holds the head, torch loads module by module:
    modules before the head have then already loaded their tensors.) A state dict without the
    record (advprior 0.2.0 and older) loads with a ``UserWarning``, which says so when the
    ``prior.*`` tensors it carries replace the prior's weights.
    """

    def __init__(self, in_features: int, prior: Prior, hidden: int | None = None) -> None:
        super().__init__()
        if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
            raise ValueError(f"in_features must be a positive int, got {in_features!r}")
        if (
            not isinstance(prior, nn.Module)
            or not isinstance(prior, Prior)
            or (prior.latent_space is None)
        ):
            raise TypeError(
                f"prior must be an nn.Module prior with a latent space (a PosePrior, "
                f"a VPoserVAE), got {type(prior).__name__}"
            )
        self.in_features = in_features
        self.space = prior.latent_space
        self.kind = self.space.kind
        dim = self.space.dim
        if hidden is None:
            self.net = nn.Linear(in_features, dim)
        else:
            self.net = nn.Sequential(
                nn.Linear(in_features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, dim)
            )
        self.prior = prior
        for p in self.prior.parameters():
            p.requires_grad_(False)
        self.prior.eval()
        self._zero_checked = False

    # -- which prior the head was trained for --------------------------------------------------

    def prior_record(self) -> dict[str, Any]:
        """What the state dict records of the prior: ``{"prior": class name, "latent": kind,
        "latent_dim": D, "prior_sha256": sha256 of the prior's weights, "prior_sha256_float16",
        "prior_sha256_bfloat16": sha256 of the weights rounded to those dtypes}``. The first
        is that of the weights serialised as ``save_pretrained`` writes them (floating tensors
        in float32), so for a released prior it is the manifest's ``sha256`` (e.g.
        ``gan-s``'s); the rounded ones (of names, shapes and 2-byte values) let a model cast to
        half precision on either side of the save load (its weights agree at that precision)."""
        return _record(self.prior, self.prior.state_dict())

    def get_extra_state(self) -> Tensor:
        # a tensor (not a dict) so the state dict stays all tensors: safetensors can save it
        blob = json.dumps(self.prior_record(), sort_keys=True).encode()
        return torch.frombuffer(bytearray(blob), dtype=torch.uint8)

    def set_extra_state(self, state: Any) -> None:
        # The record describes the prior, so there is nothing to set; _load_from_state_dict
        # checked it against the prior before anything was loaded.
        _decode_record(state)

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
        key = prefix + "_extra_state"
        # the state dict's prior.* tensors replace the prior's where it has them
        carried = {
            k: state_dict[f"{prefix}prior.{k}"]
            for k in self.prior.state_dict()
            if f"{prefix}prior.{k}" in state_dict
        }
        if key in state_dict:
            saved = _decode_record(state_dict[key])
            _check_record(saved, self.prior, carried)
        elif any(k.startswith(prefix + "net.") for k in state_dict):
            where = f" (at {prefix[:-1]!r})" if prefix else ""
            mine = _record(self.prior, self.prior.state_dict(), halves=False)
            after = _record(self.prior, {**self.prior.state_dict(), **carried}, halves=False)
            if carried and after["prior_sha256"] not in (None, mine["prior_sha256"]):
                # 0.1.0/0.2.0 saved the prior's weights with the head: they are loaded into the
                # head's prior (the head keeps the poses it gave), which other code may share
                what = (
                    f"its prior.* tensors replace the weights of the head's prior "
                    f"({_describe(mine)}) with those it was saved with ({_describe(after)})"
                )
            else:
                what = (
                    f"it cannot be checked that it was trained for this prior ({_describe(mine)})"
                )
            warnings.warn(
                f"this LatentHead state dict{where} records no prior (saved by advprior "
                f"0.2.0 or older): {what}; save it again to record it",
                UserWarning,
                stacklevel=4,
            )
        before = len(missing_keys)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if key not in state_dict and key in missing_keys[before:]:
            missing_keys.remove(key)

    def train(self, mode: bool = True) -> LatentHead:
        super().train(mode)
        self.prior.eval()  # dropout in the decoder would make poses random
        return self

    def latent(self, features: Tensor) -> Tensor:
        """Latents ``(..., D)`` on the prior's manifold for features ``(..., F)``."""
        check_tensor(features, "features", self.in_features, finite=False)
        raw = self.net(features)
        # getattr: a head pickled whole by an earlier version has no flag
        if (
            self.kind == "sphere"
            and raw.requires_grad
            and not getattr(self, "_zero_checked", False)
        ):
            self._warn_if_zero(raw)
        return self.space.map_unconstrained(raw)

    def _warn_if_zero(self, raw: Tensor) -> None:
        # Once, at the first forward that trains: an output layer initialised to zero (as
        # regressors that start from the mean pose do) gives zero rows, which have no direction
        # on the sphere: they decode to project's fixed pole with zero gradient, so the layer
        # never moves and the loss stays flat, silently. Once only: the check costs a device
        # sync. Never in a traced graph, where a value cannot steer Python.
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return
        try:
            zero = bool((raw.detach() == 0).all(dim=-1).any())
        except RuntimeError:  # vmap's "data-dependent control flow"
            return
        self._zero_checked = True
        if zero:
            warnings.warn(
                "LatentHead's layer gave an all-zero output row: on the sphere it has no "
                "direction, decodes to a fixed pose with zero gradient and will not train; "
                "do not initialise the head's last layer to zero (a small random init, e.g. "
                "xavier_uniform_ with gain 0.01, starts near a pose and trains)",
                RuntimeWarning,
                stacklevel=3,
            )

    def forward(self, features: Tensor, **decode_kwargs: Any) -> Tensor:
        """Body pose ``(..., 63)`` (or as ``decode_kwargs`` ask, e.g. ``output="rotmat"``)."""
        return self.prior.decode(self.latent(features), **decode_kwargs)


_RECORD_KEYS = ("prior", "latent", "latent_dim", "prior_sha256")


#: Half precisions a model may be cast to (``model.half()``, ``.bfloat16()``) after or before
#: training its head: the record also hashes the weights as rounded to each.
_HALF_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
#: Optional: records written before these hashes were added (unreleased versions) still load.
_OPTIONAL_KEYS = tuple(f"prior_sha256_{name}" for name in _HALF_DTYPES)


def _sha_at(state: dict[str, Tensor], dtype: torch.dtype | None) -> str | None:
    """sha256 of ``state``'s weights: as ``save_pretrained`` writes them (``dtype`` None:
    floating tensors in float32, the file's sha256), or rounded to the half precision
    ``dtype`` (then of the names, shapes and raw 2-byte values: a quarter of the cost). None
    for weights on the meta device (nothing to hash yet)."""
    if any(v.is_meta for v in state.values()):
        return None
    if dtype is None:
        return state_sha256(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        )
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key].detach().to("cpu")
        if value.is_floating_point():
            value = value.to(dtype).view(torch.int16)  # numpy has no bfloat16
        digest.update(f"{key}\0{tuple(value.shape)}\0{value.dtype}\0".encode())
        digest.update(value.contiguous().numpy().tobytes())
    return digest.hexdigest()


def _record(prior: nn.Module, state: dict[str, Tensor], *, halves: bool = True) -> dict[str, Any]:
    """The record of ``prior`` with weights ``state`` (see :meth:`LatentHead.prior_record`);
    ``halves=False`` leaves out the half-precision hashes (only compared when needed)."""
    space = prior.latent_space
    # float32 whatever the prior's dtype: a head trained on gan-s still matches gan-s after
    # the prior went through .double() and back
    record = {
        "prior": type(prior).__name__,
        "latent": space.kind,
        "latent_dim": space.dim,
        "prior_sha256": _sha_at(state, None),
    }
    if halves:
        for name, dtype in _HALF_DTYPES.items():
            record[f"prior_sha256_{name}"] = _sha_at(state, dtype)
    return record


def _same_weights(saved: dict[str, Any], state: dict[str, Tensor]) -> bool:
    """Whether ``state`` holds the weights ``saved`` records, or the same ones at a half
    precision: a head trained on gan-s in float32 and loaded into a model already cast to
    float16 (or trained in bfloat16 and loaded into float32) is gan-s's. (Two trainings never
    agree on every weight to bfloat16's 3 digits.)"""
    mine = _sha_at(state, None)
    if mine is None or mine == saved["prior_sha256"]:
        return True
    for name, dtype in _HALF_DTYPES.items():
        half = saved.get(f"prior_sha256_{name}")  # absent from records of earlier versions
        if half is not None and half == _sha_at(state, dtype):
            return True
    return False


#: A record is about 330 bytes; anything much larger is not one (and is not parsed).
_MAX_RECORD_BYTES = 4096
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _valid_record(record: Any) -> bool:
    """Whether ``record`` has the keys and value types :meth:`LatentHead.prior_record` writes
    (so that comparing and describing it cannot fail on a hand-edited one)."""
    if not isinstance(record, dict) or not all(k in record for k in _RECORD_KEYS):
        return False
    dim = record["latent_dim"]
    shas = [record["prior_sha256"], *(record.get(k) for k in _OPTIONAL_KEYS)]
    return (
        isinstance(record["prior"], str)
        and isinstance(record["latent"], str)
        and isinstance(dim, int)
        and not isinstance(dim, bool)
        and all(
            sha is None or (isinstance(sha, str) and _SHA256_HEX.fullmatch(sha) is not None)
            for sha in shas
        )
    )


def _decode_record(state: Any) -> dict[str, Any]:
    if (
        isinstance(state, Tensor)
        and state.dtype == torch.uint8
        and state.ndim == 1
        and state.numel() <= _MAX_RECORD_BYTES
        and not state.is_meta
    ):
        try:
            record = json.loads(state.cpu().numpy().tobytes().decode())
        except (UnicodeDecodeError, ValueError):
            record = None
        if _valid_record(record):
            return record
    raise PriorMismatchError(
        "the LatentHead state dict's '_extra_state' is not a prior record (a uint8 tensor of "
        f"at most {_MAX_RECORD_BYTES} bytes of JSON with keys {list(_RECORD_KEYS)}: class and "
        "latent kind strings, latent dim an int, weights sha256 64 hex digits or null); was it "
        "saved from a LatentHead?"
    )


def _alias_of(sha256: str) -> str | None:
    """The manifest alias whose weights have this sha256, if any (only to name it)."""
    try:
        models = read_manifest()
    except Exception:  # naming the alias is a courtesy; a broken manifest must not hide the error
        return None
    return next((a for a, e in sorted(models.items()) if e.get("sha256") == sha256), None)


def _describe(record: dict[str, Any]) -> str:
    sha = record["prior_sha256"]
    alias = _alias_of(sha) if sha else None
    name = f"{alias!r} " if alias else ""
    return (
        f"{name}{record['prior']} latent {record['latent']!r} dim {record['latent_dim']}, "
        f"weights sha256 {sha[:12] + '...' if sha else 'unknown (meta device)'}"
    )


def _check_record(saved: dict[str, Any], prior: nn.Module, carried: dict[str, Tensor]) -> None:
    """Raise PriorMismatchError unless a head trained for the prior ``saved`` describes runs
    on ``prior`` once the state dict's prior tensors ``carried`` are loaded into it."""
    own = prior.state_dict()
    mine = _record(prior, own, halves=False)
    differ = [k for k in ("prior", "latent", "latent_dim") if saved[k] != mine[k]]
    saved_sha = saved["prior_sha256"]  # None: saved from a prior on the meta device
    if not differ and saved_sha is not None and carried:
        after = _sha_at({**own, **carried}, None)
        if after is not None and after != saved_sha:
            raise PriorMismatchError(
                f"this LatentHead state dict records the prior {_describe(saved)}, but its own "
                f"prior.* tensors give weights sha256 {after[:12]}...: it was edited after "
                "saving, and the head's layer was not trained for these weights. Nothing was "
                "loaded into the head."
            )
    elif not differ and saved_sha is not None and not _same_weights(saved, own):
        differ = ["weights"]
    if differ:
        raise PriorMismatchError(
            f"this LatentHead state dict was trained for the prior {_describe(saved)}, but the "
            f"head's prior is {_describe(mine)} (they differ in: {', '.join(differ)}); build the "
            "head on the prior it was trained for. Nothing was loaded into the head."
        )
