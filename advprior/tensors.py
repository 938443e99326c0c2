"""Batched-tensor helpers every layer shares: the one input checker and batch flattening.

advprior's functions take ``(..., D)`` tensors: any leading batch shape ``...`` and fixed
trailing dimensions, in the habit of roma. :func:`check_tensor` is the one validation of such an
input (type, floating dtype, trailing size, finiteness) with messages that name the argument
and the expected shape. :func:`flatten_batch_dims` / :func:`unflatten_batch_dims` fold the
leading dimensions into one for code that works on ``(N, D)`` and restore them afterwards
(the pattern of roma's private helpers of the same names).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from advprior._sync import GLOBAL_STATE
from advprior.version import (
    autocast_dtype,
    autocast_enabled,
    check_torch_numpy,
    is_compiling,
    is_exporting,
)

check_torch_numpy()


@contextmanager
def isolated_global_rng(seed: int | None = None, *, enabled: bool = True) -> Iterator[None]:
    """torch's global RNG as it was before, afterwards (``torch.random.fork_rng``), seeded
    with ``seed`` meanwhile when given; ``enabled=False``: nothing is done.

    Process-wide state, so the block holds advprior's :data:`advprior._sync.GLOBAL_STATE`
    lock: two threads in it at once drew each other's seeded streams and left the global RNG
    at the other's seed. (A thread of the caller's own drawing from the global RNG meanwhile
    still shares the stream: pass generators.) CUDA's generators are saved and seeded too when
    CUDA is initialised; when it is not, only the CPU generator is seeded
    (``torch.manual_seed`` would queue CUDA's seeding for its later start)."""
    if not enabled:
        yield
        return
    with GLOBAL_STATE:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        devices = list(range(torch.cuda.device_count())) if cuda else []
        with torch.random.fork_rng(devices=devices):
            if seed is not None:
                if cuda:
                    torch.manual_seed(seed)
                else:
                    torch.default_generator.manual_seed(seed)
            yield


def _shape_text(sizes: tuple[int, ...]) -> str:
    return " or ".join(f"(..., {d})" for d in sizes)


def check_tensor(
    x: object, name: str, last: int | tuple[int, ...] | None, *, finite: bool = True
) -> Tensor:
    """Validate a batched input ``(..., D)`` and return it unchanged.

    Args:
        x: the value to check.
        name: the argument's name, used in the messages.
        last: the allowed size(s) of the last dimension; None accepts any size (at least one
            dimension is still required).
        finite: also reject NaN and infinite entries (skipped where values cannot be read:
            inside ``torch.func.vmap`` and on the meta device).

    Raises:
        TypeError: ``x`` is not a ``torch.Tensor`` or not floating point.
        ValueError: ``x`` is 0-d, has another last size, or (``finite``) a NaN/Inf entry.
    """
    sizes = () if last is None else ((last,) if isinstance(last, int) else tuple(last))
    want = _shape_text(sizes) if sizes else "(..., D)"
    if not isinstance(x, Tensor):
        # numpy arrays are what SciPy, smplx's .npz files and OpenCV hand over
        hint = "; convert it with torch.from_numpy(x)" if type(x).__module__ == "numpy" else ""
        raise TypeError(
            f"{name} must be a torch.Tensor of shape {want}, got {type(x).__name__}{hint}"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor (float32 or float64) of shape {want}, "
            f"got dtype {x.dtype}"
        )
    if x.ndim == 0 or (sizes and x.shape[-1] not in sizes):
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if finite and x.numel() and not _all_finite(x):
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def _all_finite(x: Tensor) -> bool:
    """Whether every entry of ``x`` is finite; True when the values cannot be read here:
    inside ``torch.func.vmap`` (a value cannot steer Python there, torch raises "data-dependent
    control flow") and on the meta device (no values). NaN/Inf then propagate, as in any torch
    op, instead of the whole transform failing on a check."""
    if x.device.type == "meta":
        return True
    try:
        return bool(torch.isfinite(x).all())
    except NotImplementedError:
        # a layout isfinite lacks (sparse): torch's error, as before, not NaN let through
        raise
    except RuntimeError:
        return True


def check_dtype(x: Tensor, dtype: torch.dtype, name: str, model: str = "prior") -> Tensor:
    """Return ``x`` when its dtype is the model's ``dtype``, else raise a ``TypeError`` that says
    which conversion fixes it (torch's own error, ``mat1 and mat2 must have the same dtype``,
    names neither the argument nor the model). ``model`` names the model in the message.

    Inside ``torch.autocast``, ``x`` in the autocast dtype is accepted: the linear layers run in
    that dtype anyway, and a regressor's own layers hand it over (mixed-precision training)."""
    if x.dtype != dtype and not _autocast_dtype(x):
        raise TypeError(
            f"{name} has dtype {x.dtype} but the {model}'s weights are {dtype}; convert one of "
            f"them ({name}.to({dtype}) or {model}.to({x.dtype}))"
        )
    return x


def check_device(device: object, name: str = "device") -> torch.device:
    """``torch.device(device)``, or a ``ValueError`` naming ``name`` for a malformed device, or
    a CUDA/MPS device this machine does not have (torch's own error comes only at the first
    ``.to()``, as an ``AssertionError`` about how torch was compiled)."""
    try:
        dev = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{name} {device!r} is not a torch device ({err})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {device!r}: CUDA is not available on this machine")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{name} {device!r}: this machine has {count} CUDA device(s)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name} {device!r}: MPS is not available on this machine")
    if dev.type not in ("cpu", "cuda", "mps", "meta"):
        # xla, xpu, hpu, ipu...: a well-formed name this torch may not be built for, which
        # torch says only when the first tensor is made there ("PyTorch is not linked with
        # support for xla devices"), so one empty tensor asks now
        try:
            torch.empty(0, device=dev)
        except (RuntimeError, AssertionError, NotImplementedError):
            raise ValueError(
                f"{name} {device!r}: this PyTorch cannot make tensors on {dev.type!r} (not "
                "built with it, or its backend package is not installed)"
            ) from None
    return dev


def float64_device(device: torch.device) -> torch.device:
    """Where float64 work on behalf of tensors on ``device`` runs: ``device`` itself, or the CPU
    for Apple's MPS, which has no float64 (torch raises "Cannot convert a MPS Tensor to float64
    dtype"). For the few small float64 steps (a Cholesky factor, a seeded k-means++) whose
    precision the library needs."""
    return torch.device("cpu") if device.type == "mps" else device


def follow_prior(module: nn.Module, prior: object) -> nn.Module:
    """``module`` (layers a class builds around ``prior``) moved to the device and floating
    dtype of ``prior``'s first parameter or buffer; unchanged for a prior without tensors.

    Layers are built where torch's defaults say (the CPU, float32) while the prior they feed or
    read may already be on a GPU or in float64: the first call would then fail on mixed devices
    or dtypes. Moved after they are built, so a seed gives the same initial weights on any
    device."""
    if isinstance(prior, nn.Module):
        for t in (*prior.parameters(), *prior.buffers()):
            if t.is_floating_point():
                return module.to(device=t.device, dtype=t.dtype)
            return module.to(device=t.device)
    return module


def cacheable(t: Tensor) -> bool:
    """Whether ``t`` may be kept past this call: a plain tensor made outside any tracing.
    ``torch.export`` runs eager code with fake tensors (a ``Tensor`` subclass); one kept in a
    module-level cache would make every later eager call return fake tensors. One made while
    ``torch.jit.trace`` records is part of that graph."""
    return (
        type(t) in (torch.Tensor, nn.Parameter)
        and not is_compiling()
        and not torch.jit.is_tracing()
    )


def chunk_bounds(n: int, size: int, *, min_last: int = 1) -> list[tuple[int, int]]:
    """``(start, end)`` of consecutive chunks of ``size`` rows covering ``range(n)``; a last
    chunk shorter than ``min_last`` joins the one before it (so that it runs the same kernels
    as the rows before it). One chunk ``(0, n)`` while tracing or compiling, where a batch is
    one graph (and its size may be symbolic)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"chunk size must be a positive int, got {size!r}")
    # the tracing checks come first: comparing a symbolic size (strict export reads it as a
    # plain int) would guard the graph on it
    if (
        is_compiling()
        or is_exporting()
        or torch.jit.is_tracing()
        or not isinstance(n, int)
        or isinstance(n, torch.SymInt)
        or n <= size
    ):
        return [(0, n)]
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] < min_last:
        starts.pop()
    return [(a, starts[k + 1] if k + 1 < len(starts) else n) for k, a in enumerate(starts)]


def _autocast_dtype(x: Tensor) -> bool:
    """Whether autocast is on for ``x``'s device and ``x`` has its dtype."""
    kind = x.device.type
    return autocast_enabled(kind) and x.dtype == autocast_dtype(kind)


def flatten_batch_dims(x: Tensor, end_dim: int) -> tuple[Tensor, torch.Size]:
    """Fold the leading dimensions ``x.shape[:end_dim + 1]`` into one.

    ``end_dim`` is negative, counted from the end as in :meth:`torch.Tensor.flatten` (``-2`` for
    ``(..., D)`` inputs, ``-3`` for ``(..., J, 3)``). Returns ``(flat, batch_shape)``; with no
    leading dimension a batch of one is added. :func:`unflatten_batch_dims` undoes it.
    """
    batch_shape = x.shape[: x.ndim + end_dim + 1]
    if len(batch_shape) == 0:
        return x.unsqueeze(0), batch_shape
    return x.flatten(end_dim=end_dim), batch_shape


def unflatten_batch_dims(x: Tensor, batch_shape: torch.Size) -> Tensor:
    """Undo :func:`flatten_batch_dims`: ``(N, ...)`` back to ``(*batch_shape, ...)``."""
    if len(batch_shape) == 0:
        return x.squeeze(0)
    return x.reshape(*batch_shape, *x.shape[1:])


def forgive_missing(missing_keys: list[str], since: int, *keys: str) -> None:
    """Take ``keys`` off the keys a ``load_state_dict`` found missing (those from index
    ``since`` on: this module's own): records that state dicts of older versions lack, which
    then still load, strictly too."""
    for key in keys:
        if key in missing_keys[since:]:
            del missing_keys[since + missing_keys[since:].index(key)]


def json_tensor(value: Any) -> Tensor:
    """``value`` as a uint8 tensor of its JSON (keys sorted): what a module's
    ``get_extra_state`` returns to record its constructor values in its state dict, which stays
    all tensors, so ``torch.load(weights_only=True)`` and safetensors keep it."""
    blob = json.dumps(value, sort_keys=True).encode()
    return torch.frombuffer(bytearray(blob), dtype=torch.uint8)


def read_json_tensor(state: Any, max_bytes: int) -> Any:
    """The JSON value a :func:`json_tensor` holds, or None when ``state`` is not a 1-d uint8
    tensor of at most ``max_bytes`` bytes of JSON (a larger one is not read)."""
    if (
        not isinstance(state, Tensor)
        or state.dtype != torch.uint8
        or state.ndim != 1
        or state.numel() > max_bytes
        or state.is_meta
    ):
        return None
    try:
        return json.loads(state.cpu().numpy().tobytes().decode())
    except (UnicodeDecodeError, ValueError):
        return None
