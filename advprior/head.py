"""``LatentHead``: the last layer of a pose regressor, outputting poses through a frozen prior."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from advprior.errors import PriorMismatchError
from advprior.hub import read_manifest, state_sha256
from advprior.interface import Prior
from advprior.tensors import (
    check_dtype,
    check_tensor,
    follow_prior,
    forgive_missing,
    json_tensor,
    read_json_tensor,
)
from advprior.version import is_compiling

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
    else the head's own prior's). Weights that differ only by rounding are the same prior: cast
    to float16 / bfloat16, or drifted in an EMA copy of the model (each weight within
    ``2^-7 |w| + 2^-25`` of the record's, see ``docs/api/head.md``). (In a model that holds
    the head, torch loads module by module: modules before the head have then already loaded
    their tensors.) A state dict without the
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
            net: nn.Module = nn.Linear(in_features, dim)
        else:
            net = nn.Sequential(
                nn.Linear(in_features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, dim)
            )
        # beside the prior: a prior loaded onto a GPU (from_pretrained(..., device="cuda")) or
        # cast to float64 would otherwise meet a CPU float32 layer at the first forward. Built
        # first and then moved, so a seed gives the same initial weights on any device.
        self.net = follow_prior(net, prior)
        self.prior = prior
        for p in self.prior.parameters():
            p.requires_grad_(False)
        self.prior.eval()
        self._zero_checked = False

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A head pickled whole (torch.save(model)) by advprior 0.1.0 has no ``space``: its
        # forward raised AttributeError. It is the prior's latent space, as __init__ sets it.
        super().__setstate__(state)
        if "space" not in self.__dict__:
            self.space = self.prior.latent_space

    # -- which prior the head was trained for --------------------------------------------------

    def prior_record(self) -> dict[str, Any]:
        """What the state dict records of the prior: ``{"prior": class name, "latent": kind,
        "latent_dim": D, "prior_sha256": sha256 of the prior's weights, "prior_sha256_float16",
        "prior_sha256_bfloat16": sha256 of the weights rounded to those dtypes}``. The first
        is that of the weights serialised as ``save_pretrained`` writes them (floating tensors
        in float32), so for a released prior it is the manifest's ``sha256`` (e.g.
        ``gan-s``'s); the rounded ones (of names, shapes and 2-byte values) let a model cast to
        half precision on either side of the save load (its weights agree at that precision);
        ``"prior_fingerprint"`` (sums per tensor and 64 sampled weights) lets weights that
        drifted by rounding load (an EMA copy of the model)."""
        return _record(self.prior, self.prior.state_dict())

    def get_extra_state(self) -> Tensor:
        # a tensor (not a dict) so the state dict stays all tensors: safetensors can save it
        return json_tensor(self.prior_record())

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
        forgive_missing(missing_keys, before, key)

    def train(self, mode: bool = True) -> LatentHead:
        super().train(mode)
        self.prior.eval()  # dropout in the decoder would make poses random
        return self

    def latent(self, features: Tensor) -> Tensor:
        """Latents ``(..., D)`` on the prior's manifold for features ``(..., F)``."""
        check_tensor(features, "features", self.in_features, finite=False)
        # float64 features (a numpy pipeline's) into a float32 head failed inside the layer with
        # torch's "mat1 and mat2 must have the same dtype", naming neither
        weight = next(self.net.parameters(), None)
        if weight is not None:
            check_dtype(features, weight.dtype, "features", "head")
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
        if is_compiling() or torch.jit.is_tracing():
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
    ``halves=False`` leaves out the half-precision hashes and the fingerprint (only compared
    when needed)."""
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
        parts = _fingerprint_parts(state)
        record["prior_fingerprint"] = None if parts is None else parts.record()
        if len(json.dumps(record, sort_keys=True)) > _MAX_RECORD_BYTES:
            record["prior_fingerprint"] = None  # a prior of thousands of tensors: hashes only
    return record


# -- the prior's weights up to rounding -----------------------------------------------------------
#
# The sha256s tell the same weights bit for bit, or rounded once to float16 / bfloat16. Weights
# that drifted by rounding are the same prior too, yet hash differently: an EMA copy of the
# whole model (timm's ModelEmaV2 ``d * e + (1 - d) * m``, ``e.mul_(d).add_(m, alpha=1 - d)``)
# moves a frozen weight ``w`` every step by the rounding of ``d w`` and of the sum, up to
# 3 u |w| (u = 2^-24, float32), and the contraction ``(1 - d)`` only stops it at
# ``|e - w| <= 3 u |w| / (1 - d)``: 1.8e-3 |w| at d = 0.9999 (measured: 1.7e-4 |w|, about one
# ulp per step until then; 200 steps of d = 0.9998 moved a third of a GAN's weights). A
# float16 / bfloat16 cast on top rounds by at most 2^-11 / 2^-8 of |w|, float16's subnormals
# by 2^-25 absolutely. So two priors are the same when every weight agrees to within
# _DRIFT_RTOL |w| + _DRIFT_ATOL: 2^-7 = 7.8e-3 covers a bfloat16 rounding on one side, a
# float16 one on the other and the drift of an EMA of decay up to 0.9999 (3.9e-3 + 4.9e-4 +
# 1.8e-3). The record cannot hold the weights, so it holds what tests that: per tensor three
# sums (whose drift is bounded by the tolerance times the tensor's L1 norm: a changed tensor
# shows there, however few weights it has), and _FINGERPRINT_SAMPLES weights spread over all
# of them, each compared to the tolerance. Two trainings (gan-s and gan-u, two seeds,
# a fine-tuning) differ by far more than 0.8% at almost every weight: a sample agrees by
# chance with probability about 0.004, all 64 never.

#: Relative and absolute difference of a weight that rounding and EMA drift can make.
_DRIFT_RTOL = 2.0**-7
_DRIFT_ATOL = 2.0**-25
#: float64 summation (n 2^-53 of the L1 norm each side, n < 2^27) and the 9 digits the sums
#: are stored with (5e-9 of it): far below the tolerance, bounded once.
_SUM_SLACK = 2.0**-20
#: Weights recorded, at positions spread over all floating tensors (a Weyl sequence).
_FINGERPRINT_SAMPLES = 64
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _short(value: float) -> float:
    """``value`` to 9 significant digits: a float32 exactly, and a short JSON number."""
    return float(f"{value:.9g}")


class _Parts:
    """A state dict's fingerprint: its layout's sha256 (names, shapes, which tensors are
    floating, the values of the others), per floating tensor three sums of its values (plain,
    with pseudo-random signs, of absolute values: each moves by at most ``sum |w - w'|``, and
    a scaled, shifted or re-drawn tensor moves at least one by far more), and
    :data:`_FINGERPRINT_SAMPLES` of its weights."""

    def __init__(self, layout: str, tensors: list[Tensor]) -> None:
        self.layout = layout
        self.tensors = tensors
        total = sum(t.numel() for t in tensors)
        positions = sorted(
            {int(((k + 1) * _GOLDEN) % 1.0 * total) for k in range(_FINGERPRINT_SAMPLES)}
        )
        self.samples = []
        start = 0  # the positions index all tensors one after the other
        for t in tensors:
            mine = [i - start for i in positions if start <= i < start + t.numel()]
            self.samples += t[mine].tolist()
            start += t.numel()
        self.sums = [
            [float(t.sum()), float(torch.dot(t, _signs(t.numel()))), float(t.abs().sum())]
            for t in tensors
        ]

    def record(self) -> dict[str, Any]:
        return {
            "layout": self.layout,
            "sums": [[_short(v) for v in three] for three in self.sums],
            "samples": [_short(v) for v in self.samples],
        }

    def matches(self, saved: dict[str, Any]) -> bool:
        """Whether the recorded fingerprint ``saved`` is of these weights up to rounding."""
        if (
            saved["layout"] != self.layout
            or len(saved["sums"]) != len(self.sums)
            or len(saved["samples"]) != len(self.samples)
        ):
            return False
        for theirs, mine, tensor in zip(saved["sums"], self.sums, self.tensors, strict=True):
            # sum |w - w'| <= rtol max(|w|, |w'|) + atol summed, with |w| <= |w'| + |w - w'|;
            # mine[2] is this tensor's L1 norm
            bound = (_DRIFT_RTOL + _SUM_SLACK) * mine[2] + tensor.numel() * _DRIFT_ATOL
            bound /= 1.0 - _DRIFT_RTOL
            if not all(abs(a - b) <= bound for a, b in zip(theirs, mine, strict=True)):
                return False
        return all(
            abs(theirs - mine) <= _DRIFT_RTOL * max(abs(theirs), abs(mine)) + _DRIFT_ATOL
            for theirs, mine in zip(saved["samples"], self.samples, strict=True)
        )


@functools.lru_cache(maxsize=8)
def _signs(n: int) -> Tensor:
    """``n`` pseudo-random +-1 (float64), the same on every machine (a multiplicative hash of
    the index): a sum with them changes when weights are exchanged or shifted together."""
    bits = (torch.arange(n, dtype=torch.int64) * 2654435761 % 2**32) >> 16 & 1
    return 1.0 - 2.0 * bits.to(torch.float64)


def _fingerprint_parts(state: dict[str, Tensor]) -> _Parts | None:
    """The fingerprint of ``state``; None on the meta device or with non-finite weights (then
    only the sha256s compare)."""
    if any(v.is_meta for v in state.values()):
        return None
    layout = hashlib.sha256()
    tensors = []
    for key in sorted(state):
        value = state[key].detach().to("cpu")
        floating = value.is_floating_point()
        layout.update(
            f"{key}\0{tuple(value.shape)}\0{'float' if floating else value.dtype}\0".encode()
        )
        if floating:
            tensors.append(value.to(torch.float64).flatten())
        else:
            layout.update(value.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    parts = _Parts(layout.hexdigest(), tensors)
    # a NaN or infinite weight makes its tensor's sum of absolute values so (a cheaper test
    # than isfinite over every weight, which costs more than the fingerprint itself)
    if not all(math.isfinite(three[2]) for three in parts.sums):
        return None
    return parts


def _same_weights(saved: dict[str, Any], state: dict[str, Tensor]) -> bool:
    """Whether ``state`` holds the weights ``saved`` records, the same ones at a half precision
    (a head trained on gan-s in float32 and loaded into a model already cast to float16, or
    trained in bfloat16 and loaded into float32, is gan-s's), or the same ones up to rounding
    drift (:data:`_DRIFT_RTOL`: an EMA copy of the model, with or without such a cast). Two
    trainings never agree on every weight to bfloat16's 3 digits."""
    mine = _sha_at(state, None)
    if mine is None or mine == saved["prior_sha256"]:
        return True
    for name, dtype in _HALF_DTYPES.items():
        half = saved.get(f"prior_sha256_{name}")  # absent from records of earlier versions
        if half is not None and half == _sha_at(state, dtype):
            return True
    # rounding drift: see _DRIFT_RTOL
    fingerprint = saved.get("prior_fingerprint")  # absent from records of earlier versions
    parts = _fingerprint_parts(state) if fingerprint is not None else None
    return parts is not None and parts.matches(fingerprint)


#: A record is about 2 kB (1.6 kB for a GAN and its six tensors, 2.2 kB for the VAE and its
#: 26 tensors); anything much larger is not one (and is not parsed).
_MAX_RECORD_BYTES = 16384
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _valid_record(record: Any) -> bool:
    """Whether ``record`` has the keys and value types :meth:`LatentHead.prior_record` writes
    (so that comparing and describing it cannot fail on a hand-edited one)."""
    if not isinstance(record, dict) or not all(k in record for k in _RECORD_KEYS):
        return False
    dim = record["latent_dim"]
    shas = [record["prior_sha256"], *(record.get(k) for k in _OPTIONAL_KEYS)]
    return (
        _valid_fingerprint(record.get("prior_fingerprint"))
        and isinstance(record["prior"], str)
        and isinstance(record["latent"], str)
        and isinstance(dim, int)
        and not isinstance(dim, bool)
        and all(
            sha is None or (isinstance(sha, str) and _SHA256_HEX.fullmatch(sha) is not None)
            for sha in shas
        )
    )


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )


def _valid_fingerprint(fingerprint: Any) -> bool:
    """None (records of earlier versions, priors on the meta device) or what
    :func:`_fingerprint_parts` records."""
    return fingerprint is None or (
        isinstance(fingerprint, dict)
        and isinstance(fingerprint.get("layout"), str)
        and _SHA256_HEX.fullmatch(fingerprint["layout"]) is not None
        and isinstance(fingerprint.get("sums"), list)
        and all(_numbers(three) and len(three) == 3 for three in fingerprint["sums"])
        and _numbers(fingerprint.get("samples"))
        and len(fingerprint["samples"]) <= _FINGERPRINT_SAMPLES
    )


def _decode_record(state: Any) -> dict[str, Any]:
    record = read_json_tensor(state, _MAX_RECORD_BYTES)
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
        # the state dict's tensors may be the record's rounded (a checkpoint cast to bfloat16
        # to halve it) or drifted: the same prior, as for the head's own weights
        if after is not None and not _same_weights(saved, {**own, **carried}):
            raise PriorMismatchError(
                f"this LatentHead state dict records the prior {_describe(saved)}, but its own "
                f"prior.* tensors give weights sha256 {after[:12]}...: it was edited after "
                "saving, and the head's layer was not trained for these weights. Nothing was "
                "loaded into the head."
            )
    elif not differ and saved_sha is not None and not _same_weights(saved, own):
        differ = ["weights"]
    if differ:
        # Without prior.* tensors the head's own prior is compared as it is now. A prior the
        # model also holds under another name, registered after the head, loads from there
        # only after this check; safetensors' save_model keeps just the alphabetically first
        # name of shared weights, so its load_model can get here with the right prior coming.
        shared = (
            " If the model also holds this prior under another name and the state dict has its "
            "weights only there (safetensors' save_model keeps one name of shared weights), "
            "they load after the head: save with torch.save(model.state_dict()), which keeps "
            "every name."
            if differ == ["weights"] and not carried
            else ""
        )
        raise PriorMismatchError(
            f"this LatentHead state dict was trained for the prior {_describe(saved)}, but the "
            f"head's prior is {_describe(mine)} (they differ in: {', '.join(differ)}); build the "
            f"head on the prior it was trained for. Nothing was loaded into the head.{shared}"
        )
