"""A VPoser-style chart of a prior's latent space: ``z in R^D``, ``z = 0`` a typical pose, latents
of real poses about unit variance per dimension.

VPoser code treats its embedding as a Gaussian's: it starts and resets at ``z = 0`` (the most
typical pose), penalises ``w^2 |z|^2`` with weights tuned for latents of real poses having unit
variance, and lets the optimiser move ``z`` anywhere in ``R^D``. A GAN's latent space is a sphere
or a cube, where ``0`` is not a latent (on the sphere it has no direction and zero gradient) and
``|z|^2`` means nothing. :class:`LatentChart` maps ``R^D`` onto the prior's latent space so that
those habits keep their meaning:

- sphere (GAN-S): ``w = (c + s z) / |c + s z|``, ``c`` the centre
  (:meth:`advprior.PosePrior.typical_latent`, the start of ``fit_keypoints``). GAN-S's own
  prior is ``x / |x|`` of a Gaussian ``x``; with ``z ~ N(0, I)`` the chart's ``c + s z`` is that
  Gaussian shifted by ``c / s``, so ``N(0, I)`` in chart coordinates is (nearly, exactly as
  ``s -> inf``) GAN-S's uniform prior and ``|z|^2`` is its negative log-density, as VPoser's is.
  ``z = 0`` is ``c`` with Jacobian ``s (I - c c^T)``. The chart is onto but not one-to-one:
  ``z`` and ``z + t (c / s + z)`` (``t > -1``) give the same pose. So an ``|z|^2`` term, minimised
  over that free radius, is a bounded pull toward ``c``: ``min |z|^2 = sin^2(a) / s^2`` at
  geodesic angle ``a`` from ``c`` (``1 / s^2`` beyond 90 degrees), not the unbounded ``a^2`` of a
  Gaussian on a tangent plane, which drags every fit back to ``c`` (GAN-S's prior has no
  centre). :attr:`scale` ``s`` = :data:`SPHERE_SCALE`, chosen on validation frames of a
  VPoser-style loop (``docs/compat.md``). :meth:`LatentChart.inverse` returns the most probable
  ``z`` of a latent (the mode of the radius given the direction), whose entries have about unit
  variance for the model's own samples and for real poses.
- cube (GAN-U): ``w = erf(s z / sqrt 2) = 2 Phi(s z) - 1`` coordinate-wise (centre: the
  origin; ``Phi`` the standard normal CDF, which carries N(0, 1) onto U[-1, 1] exactly),
  ``s^2 = E[2 erfinv(u)^2]`` over the model's own samples ``u`` (1 up to sampling error).
- Gaussian (GAN-N, VAE): ``w = z``, already unit variance and centred.

The map is a pure function of ``z`` and of buffers computed deterministically from the weights,
smooth wherever ``c + s z != 0``, with a non-zero Jacobian at ``z = 0`` (``s (I - c c^T)``,
``s sqrt(2 / pi)``, 1); ``forward(inverse(w)) = w`` on the latent space.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from advprior.errors import PriorMismatchError
from advprior.latent import check_latent
from advprior.tensors import forgive_missing, json_tensor, read_json_tensor

__all__ = ["LatentChart", "chart_for"]

#: Samples of the prior's own latent distribution that set the cube chart's scale (seed 0).
SCALE_SAMPLES = 4096
#: ``s`` of the sphere chart ``normalize(c + s z)``: ``1 / s = 0.5`` (the offset of the Gaussian
#: from the sphere's centre) was chosen on validation frames of a VPoser-style loop from 1, 0.5,
#: 0.3, 0.2 and 0.1 (``benchmarks/vposer_chart_ablation.py``, docs/compat.md). Larger ``s`` is
#: closer to GAN-S's uniform prior and pulls less; too large and the fit's free radius shrinks
#: until the chart is ill-conditioned for L-BFGS.
SPHERE_SCALE = 2.0
# Below this size c + s z has no direction (the one point where the chart is singular).
_SPHERE_EPS = 1e-12
# Keeps erfinv finite for latents that rounded onto the cube's faces.
_CUBE_EDGE = 1.0 - 1e-6
#: The released alias each chart kind belongs to, to name it in a mismatch.
_KIND_ALIAS = {"sphere": "gan-s", "uniform": "gan-u", "normal": "gan-n or vae"}
#: A chart record is about 50 bytes; a larger tensor is not one (and is not parsed).
_MAX_RECORD_BYTES = 256
#: Two charts of one kind whose scales differ by less than this (relative) are the same: the
#: cube's scale is a float64 mean over 4096 samples, which another build of erfinv may change
#: by a few ulp (1e-16); a chart built with another scale differs by far more.
_SCALE_RTOL = 1e-9


class LatentChart(nn.Module):
    """``R^D`` -> the latent space of kind ``kind`` (``"sphere"``, ``"uniform"``, ``"normal"``).

    Args:
        kind: the prior's latent kind.
        centre: ``(D,)`` unit vector (sphere only; ignored otherwise).
        scale: ``s`` (see the module docstring: the Jacobian at ``z = 0`` is ``s`` times a
            projection); 1 for ``"normal"``.

    Build it for a model with :func:`chart_for`. ``forward(z (..., D)) -> (..., D)``; NaN/Inf
    propagate (no exception), so it is safe inside any optimiser.
    """

    def __init__(self, kind: str, centre: torch.Tensor, scale: float) -> None:
        super().__init__()
        if kind not in ("sphere", "uniform", "normal"):
            raise ValueError(f"kind must be 'sphere', 'uniform' or 'normal', got {kind!r}")
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive finite number, got {scale!r}")
        check_latent(centre, centre.shape[-1] if centre.ndim else 1, "centre")
        if centre.ndim != 1:
            raise ValueError(f"centre must have shape (D,), got {tuple(centre.shape)}")
        if kind == "sphere":
            centre = centre / centre.norm()
        self.kind = kind
        self.dim = int(centre.shape[0])
        self.scale = float(scale)
        self.register_buffer("centre", centre.detach().clone())

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, dim={self.dim}, scale={self.scale:.6g}"

    # -- what the state dict records -----------------------------------------------------------

    def record(self) -> dict[str, Any]:
        """What the state dict records of the chart (``_extra_state``): ``{"chart": kind,
        "dim": D, "scale": s}``. Kind and scale are constructor values, not tensors: without
        the record a state dict of a GAN-S adapter (its prior's weights and the sphere's
        centre) loaded into a GAN-U adapter silently, which then decoded the same ``z`` through
        the cube's map into another pose."""
        return {"chart": self.kind, "dim": self.dim, "scale": self.scale}

    def get_extra_state(self) -> torch.Tensor:
        # a uint8 tensor of JSON (as LatentHead's record): the state dict stays all tensors, so
        # torch.load(weights_only=True) and safetensors keep it
        return json_tensor(self.record())

    def set_extra_state(self, state: Any) -> None:
        # nothing to set: kind and scale are the constructor's; _load_from_state_dict compared
        # the record with them before anything was loaded
        _decode_chart_record(state)

    def check_record(self, state: Any, where: str = "") -> None:
        """Raise :class:`~advprior.errors.PriorMismatchError` unless the chart record ``state``
        (a state dict's ``chart._extra_state``) describes this chart."""
        saved = _decode_chart_record(state)
        mine = self.record()
        differ = [k for k in ("chart", "dim") if saved[k] != mine[k]]
        if not differ and not math.isclose(saved["scale"], mine["scale"], rel_tol=_SCALE_RTOL):
            differ = ["scale"]
        if differ:
            raise PriorMismatchError(
                f"this state dict{where} was saved from a VPoser adapter whose latent chart is "
                f"{_describe_chart(saved)}, but this one's is {_describe_chart(mine)} (they differ "
                f"in: {', '.join(differ)}): the same z decodes to another pose through it. Load it "
                "into an adapter of the prior it was saved from (e.g. load_model"
                f"({_KIND_ALIAS[saved['chart']].split()[0]!r}) for a {saved['chart']!r} chart). "
                "Nothing was loaded into the adapter."
            )

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
        if key in state_dict:
            self.check_record(state_dict[key], _where(prefix))
        before = len(missing_keys)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        # state dicts saved before the record existed still load, strictly too
        forgive_missing(missing_keys, before, key)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latents ``(..., D)`` on the prior's manifold for chart coordinates ``z (..., D)``."""
        check_latent(z, self.dim, finite=False)
        if self.kind == "normal":
            return z * self.scale if self.scale != 1.0 else z
        if self.kind == "uniform":
            return torch.erf(self.scale * z / math.sqrt(2.0))
        c = self.centre.to(z.dtype)
        x = c + self.scale * z
        # Divide by the largest entry first (as LatentSpace.project): |x|^2 overflows float32 for
        # |x| beyond ~1e19, which an optimiser's trial step can reach; the direction is unchanged.
        big = x.abs().amax(dim=-1, keepdim=True)
        unit = x / big.clamp_min(_SPHERE_EPS)
        unit = unit / unit.norm(dim=-1, keepdim=True).clamp_min(_SPHERE_EPS)
        # x = 0 (z = -c / s) has no direction: take c. ``big <= eps`` is False for NaN, so NaN
        # propagates.
        return torch.where(big <= _SPHERE_EPS, c.expand_as(unit), unit)

    def inverse(self, w: torch.Tensor) -> torch.Tensor:
        """Chart coordinates ``(..., D)`` of latents ``w (..., D)`` on the manifold, with
        ``forward(inverse(w)) = w``.

        Sphere: of the ``z`` that give ``w`` (``c + s z = rho w``, any ``rho > 0``), the most
        probable under ``z ~ N(0, I)``: ``rho`` maximises ``rho^(D-1) exp(-|rho w - c|^2 /
        (2 s^2))``, ``rho = (cos a + sqrt(cos^2 a + 4 (D - 1) s^2)) / 2`` with ``cos a = w . c``.
        (A fit that minimises ``|z|^2`` instead moves to the smallest such ``z``, which decodes
        to the same pose.) Cube: ``sqrt 2 erfinv(w) / s``; Gaussian: ``w / s``."""
        check_latent(w, self.dim, "w", finite=False)
        if self.kind == "normal":
            return w / self.scale if self.scale != 1.0 else w
        if self.kind == "uniform":
            return math.sqrt(2.0) * torch.erfinv(w.clamp(-_CUBE_EDGE, _CUBE_EDGE)) / self.scale
        c = self.centre.to(w.dtype)
        w = w / w.norm(dim=-1, keepdim=True)
        cos = (w * c).sum(-1, keepdim=True)
        rho = (cos + (cos * cos + 4 * (self.dim - 1) * self.scale**2).sqrt()) / 2
        return (rho * w - c) / self.scale


def _where(prefix: str) -> str:
    return f" (at {prefix[:-1]!r})" if prefix else ""


def _describe_chart(record: dict[str, Any]) -> str:
    return (
        f"{record['chart']!r} ({_KIND_ALIAS[record['chart']]}) dim {record['dim']} "
        f"scale {record['scale']:.6g}"
    )


def _decode_chart_record(state: Any) -> dict[str, Any]:
    """The chart record a state dict's ``chart._extra_state`` holds; PriorMismatchError if it
    is not one (a hand-edited or foreign tensor)."""
    record = read_json_tensor(state, _MAX_RECORD_BYTES)
    if (
        isinstance(record, dict)
        and record.get("chart") in _KIND_ALIAS
        and isinstance(record.get("dim"), int)
        and not isinstance(record.get("dim"), bool)
        and isinstance(record.get("scale"), (int, float))
        and not isinstance(record.get("scale"), bool)
        and math.isfinite(record["scale"])
    ):
        return record
    raise PriorMismatchError(
        "the state dict's 'chart._extra_state' is not a latent chart record (a uint8 tensor of "
        f"at most {_MAX_RECORD_BYTES} bytes of JSON: 'chart' one of {sorted(_KIND_ALIAS)}, "
        "'dim' an int, 'scale' a finite number); was it saved from an advprior.compat adapter?"
    )


@torch.no_grad()
def chart_for(model: nn.Module) -> LatentChart:
    """The chart of any prior with a latent space (:class:`advprior.interface.Prior` with
    ``latent_space`` not None: a :class:`advprior.PosePrior`, a VAE), on the model's device and
    dtype; a pure function of its weights."""
    space = getattr(model, "latent_space", None)
    kind = getattr(space, "kind", None)
    dim = getattr(space, "dim", None)
    if kind not in ("sphere", "uniform", "normal") or not isinstance(dim, int):
        raise TypeError(
            f"{type(model).__name__} has no latent space to chart (a GMM has none: export it "
            "with GMMPrior.export_smplify for SMPLify's MaxMixturePrior instead)"
        )
    p = next(model.parameters())
    if kind == "normal":
        return LatentChart("normal", torch.zeros(dim, dtype=p.dtype), 1.0).to(p.device)
    if kind == "uniform":
        gen = torch.Generator().manual_seed(0)
        samples = space.sample(SCALE_SAMPLES, generator=gen, dtype=torch.float64)
        u = samples.clamp(-_CUBE_EDGE, _CUBE_EDGE)
        scale = float((2.0 * torch.erfinv(u).pow(2).mean()).sqrt())
        return LatentChart("uniform", torch.zeros(dim, dtype=p.dtype), scale).to(p.device)
    centre = model.fit_start().detach().to(device=p.device, dtype=p.dtype)
    return LatentChart("sphere", centre, SPHERE_SCALE)
