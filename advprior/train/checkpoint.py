"""Training checkpoints: atomic writes, and the complete state needed to resume bit-for-bit.

A checkpoint (``<out>/checkpoint.pt``) holds the step, model and optimiser state dicts, every RNG
state in play (torch's global CPU generator and CUDA generators, and the trainer's own
``torch.Generator`` objects for latents and data, per rank), the batch streams' positions, the
configuration and the accumulated wall time. It is read with ``torch.load(weights_only=True)``:
plain tensors and containers only, never arbitrary pickled objects.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from advprior.errors import CorruptCheckpointError, ModelNotFoundError
from advprior.fileio import write_atomic

CHECKPOINT_NAME = "checkpoint.pt"


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, synced, then moved into place."""

    def write(fh: Any) -> None:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())  # a checkpoint must survive a crash right after the rename

    return write_atomic(path, write)


def _reason(err: Exception) -> str:
    """torch's reason for refusing a file, without its advice to retry with
    ``weights_only=False`` (which would run code from the file)."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        tail = text.split("WeightsUnpickler error:", 1)[1]
        lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
        return lines[0] if lines else type(err).__name__
    return (text.strip().splitlines() or [type(err).__name__])[0]


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
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated/garbage files
        raise CorruptCheckpointError(
            f"cannot read training checkpoint {path} (damaged, or not an advprior checkpoint; "
            f"it is never loaded with pickle's code execution): {_reason(err)}"
        ) from err
    if not isinstance(state, dict) or "step" not in state or "models" not in state:
        raise CorruptCheckpointError(f"{path} is not an advprior training checkpoint")
    return state


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
