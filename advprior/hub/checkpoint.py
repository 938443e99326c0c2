"""The checkpoint folder format: its file names and format versions, the resolved files of one
checkpoint (:class:`CheckpointFiles`), ``config.json`` checked (:func:`read_config`), and the
safetensors weights: sizes checked against the config before anything is allocated, loaded
strictly, serialised and hashed as ``save_pretrained`` writes them.

Layer "weights" (``docs/design.md``); :mod:`advprior.hub` re-exports every name.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from advprior.errors import (
    CorruptCheckpointError,
)
from advprior.fileio import read_json

#: The format ``save_pretrained`` writes; 2 since ``config.json`` records ``weights_sha256``.
#: advprior 0.2.0 and older read only format 1 and pass unknown keys to the constructor, so a
#: newer folder given to them must fail their version check ("upgrade advprior"), not look
#: corrupt.
FORMAT_VERSION = 2


#: The formats this advprior reads: 1 (advprior 0.1.0 and 0.2.0), 2.
READABLE_FORMAT_VERSIONS = (1, 2)


WEIGHTS_NAME = "model.safetensors"


#: The folder a training run (``advprior train``) exports its finished model into.
RUN_MODEL_DIR = "model"


CONFIG_NAME = "config.json"


MODEL_CARD_NAME = "README.md"


# Keys of config.json that are not constructor arguments.
RESERVED_CONFIG_KEYS = ("model_type", "format_version", "training", "weights_sha256")


_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CheckpointFiles:
    """Local paths of one resolved checkpoint and where it came from."""

    config: Path
    weights: Path
    source: str  # "local", "bundled", "hub"
    entry: dict[str, Any] | None = None  # the manifest entry, for aliases

    @property
    def directory(self) -> Path:
        return self.weights.parent


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Parse and check a checkpoint's ``config.json``; raises :class:`CorruptCheckpointError`."""
    config = read_json(path, CorruptCheckpointError)
    if not isinstance(config, dict):
        raise CorruptCheckpointError(f"{path} must hold a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type")
    if not isinstance(model_type, str):
        raise CorruptCheckpointError(f"{path} lacks a string 'model_type'")
    version = config.get("format_version")
    if isinstance(version, bool) or version not in READABLE_FORMAT_VERSIONS:
        readable = " or ".join(str(v) for v in READABLE_FORMAT_VERSIONS)
        raise CorruptCheckpointError(
            f"{path} has format_version {version!r}; this advprior reads format_version "
            f"{readable} (upgrade advprior for newer checkpoints)"
        )
    training = config.get("training")
    if training is not None and not isinstance(training, dict):
        raise CorruptCheckpointError(f"{path}: 'training' must be an object or null")
    recorded = config.get("weights_sha256")
    if recorded is not None and not (isinstance(recorded, str) and _SHA256.fullmatch(recorded)):
        raise CorruptCheckpointError(
            f"{path}: 'weights_sha256' must be 64 lowercase hex digits, got {recorded!r:.80}"
        )
    return config


def _header_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors file's header; no tensor data is read."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights), framework="pt", device="cpu") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CorruptCheckpointError(
            f"{weights} is not a readable safetensors file: {err}"
        ) from err


def _check_sizes(cls: type, kwargs: dict[str, Any], files: CheckpointFiles) -> None:
    """Refuse a config whose model would not have exactly the header's tensors and shapes
    (so never allocate more than the weights file holds)."""
    shapes = _header_shapes(files.weights)
    try:
        with torch.device("meta"):
            skeleton = cls(**kwargs)
    except (TypeError, ValueError, RuntimeError, OverflowError, NotImplementedError) as err:
        # torch's own messages may carry its C++ stack (kilobytes): the first line says it
        why = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise CorruptCheckpointError(f"{files.config}: cannot build {cls.__name__}: {why}") from err
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = {
        k: (expected[k], shapes[k]) for k in expected if k in shapes and expected[k] != shapes[k]
    }
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k, (want, got) = next(iter(wrong.items()))
            parts.append(
                f"{len(wrong)} tensor shape(s) differ, e.g. {k!r}: the config implies "
                f"{want}, the weights hold {got}"
            )
        if missing:
            parts.append(f"missing tensors {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:5]}")
        raise CorruptCheckpointError(
            f"{files.config} does not match {files.weights.name}: " + "; ".join(parts)
        )


def _load_state(module: torch.nn.Module, weights: Path) -> None:
    """Strictly load ``weights`` into ``module``; mismatches raise CorruptCheckpointError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CorruptCheckpointError(
            f"{weights} is not a readable safetensors file: {err}"
        ) from err
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CorruptCheckpointError(
            f"{weights} does not match its config: missing tensors {missing}, "
            f"unexpected tensors {unexpected}"
        )
    for key, value in expected.items():
        if tuple(tensors[key].shape) != tuple(value.shape):
            raise CorruptCheckpointError(
                f"{weights}: tensor {key!r} has shape {tuple(tensors[key].shape)}, "
                f"but the config implies {tuple(value.shape)}"
            )
        if tensors[key].dtype.is_floating_point != value.dtype.is_floating_point:
            raise CorruptCheckpointError(
                f"{weights}: tensor {key!r} has dtype {tensors[key].dtype}, expected {value.dtype}"
            )
        if tensors[key].is_floating_point() and not bool(tensors[key].isfinite().all()):
            raise CorruptCheckpointError(f"{weights}: tensor {key!r} holds NaN or infinite values")
    module.load_state_dict(tensors, strict=True)


def safetensors_bytes(state: Mapping[str, torch.Tensor]) -> bytes:
    """``state`` serialised as ``save_pretrained`` writes ``model.safetensors``: each tensor
    detached, on the CPU and contiguous, header metadata ``{"format": "pt"}``."""
    from safetensors.torch import save

    # Clone so tied/shared tensors serialise independently; safetensors refuses shared storage.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    return save(tensors, metadata={"format": "pt"})


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of :func:`safetensors_bytes`: for a model saved with ``save_pretrained`` it is the
    sha256 of its ``model.safetensors`` (the manifest's ``sha256`` for a released alias)."""
    return hashlib.sha256(safetensors_bytes(state)).hexdigest()
