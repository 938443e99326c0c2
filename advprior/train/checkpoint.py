"""Training checkpoints: atomic writes, and the complete state needed to resume bit-for-bit.

A checkpoint (``<out>/checkpoint.pt``) holds the step, model and optimiser state dicts, every RNG
state in play (torch's global CPU generator and CUDA generators, and the trainer's own
``torch.Generator`` objects for latents and data, per rank), the batch streams' positions, the
configuration and the accumulated wall time. It is read with ``torch.load(weights_only=True)``:
plain tensors and containers only, never arbitrary pickled objects.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from advprior.errors import CorruptCheckpointError, ModelNotFoundError
from advprior.fileio import check_pickle_shape, write_atomic

CHECKPOINT_NAME = "checkpoint.pt"


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, synced, then moved into place."""

    def write(fh: Any) -> None:
        # Serialised in memory first: torch's zip writer turns a failed write (a full disk)
        # into "RuntimeError: unexpected pos ...", while a plain write raises the OSError that
        # says what happened. A checkpoint is a few MB.
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        fh.write(buffer.getbuffer())
        fh.flush()
        os.fsync(fh.fileno())  # a checkpoint must survive a crash right after the rename

    return write_atomic(path, write)  # a write that fails partway names the file (fileio)


# Lines of torch's refusal that advise loading the file with ``weights_only=False`` (which would
# run code from it), or point at its documentation: never passed on.
_ADVICE = ("weights_only", "weights only load failed", "trusted source", "check the documentation")


def _reason(err: Exception) -> str:
    """torch's reason for refusing a file (e.g. "unsupported GLOBAL posix.system"), without its
    advice to retry with ``weights_only=False`` (which would run code from the file).

    torch < 2.6-ish wrote the reason after "WeightsUnpickler error:"; newer versions put it in
    its own paragraph after the advice. Either way the first line that is not advice is kept.
    """
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    for line in text.splitlines():
        line = line.strip()
        if line and not any(a in line.lower() for a in _ADVICE):
            # "... Please use `torch.serialization.add_safe_globals([eval])` ... to allowlist
            # this global": advice to allow the very function the file names; not passed on.
            return line.split(" Please use", 1)[0]
    return type(err).__name__


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_atomic`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"no training checkpoint at {path}")
    if path.stat().st_size == 0:
        raise CorruptCheckpointError(
            f"training checkpoint {path} is empty (a write that never finished); remove it, or "
            "start over with --overwrite"
        )
    _check_pickle(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated/garbage files
        raise CorruptCheckpointError(
            f"cannot read training checkpoint {path} (damaged, or not an advprior checkpoint; "
            f"it is never loaded with pickle's code execution): {_reason(err)}"
        ) from err
    if not isinstance(state, dict) or "step" not in state or "models" not in state:
        raise CorruptCheckpointError(f"{path} is not an advprior training checkpoint")
    check_structure(state, path)
    return state


#: Largest pickle (the objects around the tensor data) a checkpoint may hold; advprior's are a
#: few hundred KB.
MAX_PICKLE_BYTES = 256 * 2**20


def _check_pickle(path: Path) -> None:
    """Before torch unpickles anything: the file is torch's zip format, as :func:`save_atomic`
    writes it, and its pickle is no nesting or sharing bomb (:func:`check_pickle_shape`; a
    crafted one crashes or hangs even torch's ``weights_only`` unpickler)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if len(names) != 1:
                raise CorruptCheckpointError(
                    f"{path} is not a training checkpoint (no single data.pkl in the archive)"
                )
            if archive.getinfo(names[0]).file_size > MAX_PICKLE_BYTES:
                raise CorruptCheckpointError(
                    f"{path}: its pickle is larger than {MAX_PICKLE_BYTES} bytes; not a "
                    "checkpoint advprior writes"
                )
            data = archive.read(names[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as err:
        raise CorruptCheckpointError(
            f"cannot read training checkpoint {path} (damaged, or not an advprior checkpoint, "
            f"which is torch's zip format; it is never loaded with pickle's code execution): "
            f"{err}"
        ) from err
    try:
        check_pickle_shape(data, str(path))
    except ValueError as err:
        raise CorruptCheckpointError(f"training checkpoint {err}; it was not loaded") from None


def _bad(path: Path, key: str, problem: str) -> CorruptCheckpointError:
    return CorruptCheckpointError(
        f"training checkpoint {path} is damaged: {key} {problem}; remove it, or start over "
        "with --overwrite"
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_tensors(tree: Any, path: Path, key: str) -> None:
    """Every floating-point tensor in ``tree`` (dicts/lists of tensors and numbers) is finite."""
    if isinstance(tree, torch.Tensor):
        if (tree.is_floating_point() or tree.is_complex()) and not bool(tree.isfinite().all()):
            raise _bad(path, key, "holds NaN or infinite values")
    elif isinstance(tree, dict):
        for k, v in tree.items():
            _check_tensors(v, path, f"{key}[{k!r}]")
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            _check_tensors(v, path, f"{key}[{i}]")
    elif isinstance(tree, float) and not math.isfinite(tree):
        raise _bad(path, key, "is NaN or infinite")


def _check_state_dict(sd: Any, path: Path, key: str) -> None:
    if not isinstance(sd, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()
    ):
        raise _bad(path, key, "is not a {name: tensor} state dict")
    _check_tensors(sd, path, key)


def _check_rng(rng: Any, path: Path, key: str) -> None:
    if not isinstance(rng, dict) or not isinstance(rng.get("named"), dict):
        raise _bad(path, key, "must be an object with 'torch' and 'named' RNG states")
    states = {"torch": rng.get("torch"), **{f"named[{k!r}]": v for k, v in rng["named"].items()}}
    if "cuda" in rng:
        if not isinstance(rng["cuda"], (list, tuple)):
            raise _bad(path, f"{key}['cuda']", "must be a list of RNG states")
        states.update({f"cuda[{i}]": v for i, v in enumerate(rng["cuda"])})
    for name, value in states.items():
        ok = isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.ndim == 1
        if not ok:
            raise _bad(path, f"{key}[{name!r}]", "is not an RNG state (a 1-d uint8 tensor)")


def check_structure(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Check that ``state`` has the layout :class:`~advprior.train.loop.Trainer` writes: every
    key with its type, numbers finite, state dicts of finite tensors. Raises
    :class:`CorruptCheckpointError` naming ``path`` and the key; checks the names a particular
    run needs (and that the tensors fit its models) only when the state is applied."""
    path = Path(path)
    step = state["step"]
    if not _is_int(step) or not 0 <= step < 2**63:
        raise _bad(path, "'step'", f"must be an integer in [0, 2**63), got {step!r:.40}")
    for key in ("models", "optimizers", "config"):
        if not isinstance(state.get(key), dict):
            got = type(state.get(key)).__name__ if key in state else "missing"
            raise _bad(path, repr(key), f"must be an object ({got})")
    for name, sd in state["models"].items():
        _check_state_dict(sd, path, f"models[{name!r}]")
    for name, opt in state["optimizers"].items():
        key = f"optimizers[{name!r}]"
        if (
            not isinstance(opt, dict)
            or not isinstance(opt.get("state"), dict)
            or not isinstance(opt.get("param_groups"), list)
            or not all(
                isinstance(g, dict)
                and isinstance(g.get("params"), list)
                and all(_is_int(i) for i in g["params"])
                for g in opt["param_groups"]
            )
        ):
            raise _bad(path, key, "is not an optimiser state dict")
        _check_tensors(opt, path, key)
    ranks = state.get("ranks")
    if not isinstance(ranks, list) or not ranks:
        raise _bad(path, "'ranks'", "must be a non-empty list (one entry per process)")
    world = state.get("world_size", 1)
    if not _is_int(world) or world != len(ranks):
        raise _bad(path, "'world_size'", f"is {world!r:.40}, but 'ranks' has {len(ranks)}")
    for i, rank in enumerate(ranks):
        if not isinstance(rank, dict):
            raise _bad(path, f"ranks[{i}]", "is not an object")
        _check_rng(rank.get("rng"), path, f"ranks[{i}]['rng']")
        streams = rank.get("streams")
        if not isinstance(streams, dict):
            raise _bad(path, f"ranks[{i}]['streams']", "must be an object")
        for name, pos in streams.items():
            ok = isinstance(pos, dict) and all(
                _is_int(pos.get(k)) and pos[k] >= 0 for k in ("epoch", "pos")
            )
            if not ok:
                raise _bad(
                    path,
                    f"ranks[{i}]['streams'][{name!r}]",
                    "must hold non-negative integers 'epoch' and 'pos'",
                )
    elapsed = state.get("elapsed_s")
    if not _finite_number(elapsed) or elapsed < 0:
        raise _bad(path, "'elapsed_s'", f"must be a finite number >= 0, got {elapsed!r:.40}")
    last_val = state.get("last_val", {})
    if not isinstance(last_val, dict) or not all(
        isinstance(k, str) and _finite_number(v) for k, v in last_val.items()
    ):
        raise _bad(path, "'last_val'", "must map metric names to finite numbers")
    for key in ("best", "grid_best"):
        best = state.get(key, {})
        if not isinstance(best, dict):
            raise _bad(path, repr(key), "must be an object")
        if best:
            if not _is_int(best.get("step")) or not _finite_number(best.get("score")):
                raise _bad(path, repr(key), "needs an integer 'step' and a finite 'score'")
            val = best.get("val")
            if not isinstance(val, dict) or not all(_finite_number(v) for v in val.values()):
                raise _bad(path, f"{key}['val']", "must map metric names to finite numbers")
            _check_state_dict(best.get("state"), path, f"{key}['state']")
    validated = state.get("validated_at", 0)
    if not _is_int(validated) or not -1 <= validated < 2**63:
        raise _bad(path, "'validated_at'", f"must be an integer >= -1, got {validated!r:.40}")


def rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """This process's RNG states: the global CPU/CUDA generators and the named ones."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "named": {k: g.get_state() for k, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    missing = set(generators) - set(state["named"])
    if missing:
        raise CorruptCheckpointError(f"checkpoint lacks RNG state for {sorted(missing)}")
    for k, g in generators.items():
        g.set_state(state["named"][k])
