"""Checkpoints: the weights manifest, Hub downloads with sha256 pinning, and the one save/load path.

A checkpoint is a directory (or Hub repo) holding

- ``model.safetensors``: the state dict (safetensors only; nothing is ever unpickled),
- ``config.json``: every constructor argument, ``"model_type"``, ``"format_version": 2``,
  ``"weights_sha256"`` (the sha256 of ``model.safetensors``, checked whenever the folder is
  loaded) and an optional free-form ``"training"`` dict (data, steps, metrics). advprior 0.2.0
  and older wrote ``"format_version": 1`` and no ``weights_sha256``; those folders still load,
  and they refuse format 2 folders with "upgrade advprior",
- ``README.md``: a model card rendered from the config.

:class:`PretrainedMixin` gives ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` to any
``nn.Module`` that sets a class attribute ``model_type``; :func:`load_pretrained` returns the right
class for whatever a checkpoint holds. Names resolve in this order (:func:`resolve`):

1. an existing local directory (a folder named exactly like an alias counts only when it
   holds a checkpoint, ``config.json`` + ``model.safetensors``, or is written as a path such as
   ``./gan-s``: an output folder called ``gan-s`` does not hide the alias); a ``pathlib.Path``
   always names a folder, and one that does not exist is never taken for an alias or repo id;
2. an alias in ``weights_manifest.json`` (e.g. ``"gan-s"``): the copy bundled in
   ``advprior/weights/<alias>/`` if present, else a download of the pinned ``repo_id`` /
   ``revision`` / ``filename``; either way the sha256 must match the manifest;
3. any other Hub repo id ``"owner/name"`` (``config.json`` + ``model.safetensors``).

The manifest path can be overridden per call (``manifest=``) or by ``$ADVPRIOR_MANIFEST``.
``$HF_ENDPOINT`` and ``$HF_HUB_OFFLINE`` are read at call time, not only when huggingface_hub is
first imported.

The code lives in five modules, one per part, each importing only those before it:
:mod:`advprior.hub.checkpoint` (the folder format: file names, ``config.json``, the safetensors
weights), :mod:`advprior.hub.manifest` (the weights manifest), :mod:`advprior.hub.download` (Hub
downloads, offline mode, sha256 verification), :mod:`advprior.hub.resolution` (names to checkpoint
files) and :mod:`advprior.hub.pretrained` (:class:`PretrainedMixin`, model cards, the model-type
registry, :func:`load_pretrained`). This module is the one import path for all of them: every
name they define is importable from here, as it was before round 24 split this module up.
"""

from __future__ import annotations

from advprior.errors import (  # noqa: F401 - re-exported, as before
    ChecksumMismatchError,
    CorruptCheckpointError,
    ManifestError,
    ModelNotFoundError,
    OfflineError,
)
from advprior.fileio import (  # noqa: F401 - re-exported, as before
    atomic_path,
    expand_home,
    read_json,
    sha256_file,
    write_text_atomic,
)
from advprior.hub.checkpoint import (  # noqa: F401 - re-exported
    _SHA256,
    CONFIG_NAME,
    FORMAT_VERSION,
    MODEL_CARD_NAME,
    READABLE_FORMAT_VERSIONS,
    RESERVED_CONFIG_KEYS,
    RUN_MODEL_DIR,
    WEIGHTS_NAME,
    CheckpointFiles,
    _check_sizes,
    _header_shapes,
    _load_state,
    read_config,
    safetensors_bytes,
    state_sha256,
)
from advprior.hub.download import (  # noqa: F401 - re-exported
    _OFFLINE_LOCK,
    _R,
    _TRANSFER_PACKAGES,
    _UNWRITABLE,
    _cache_hint,
    _cached_plain_file,
    _can_fetch_again,
    _DamagedCachedCopy,
    _endpoint,
    _env_true,
    _hub_download,
    _hub_offline_mode,
    _is_transfer_error,
    _offline,
    _pinned_hub_file,
    _replaceable,
    _verified_download,
    _verify,
)
from advprior.hub.manifest import (  # noqa: F401 - re-exported
    DEFAULT_MANIFEST,
    MANIFEST_REQUIRED_KEYS,
    PACKAGE_DIR,
    _manifest_models,
    _relative_path_problem,
    _symlink_placeholder_target,
    known_aliases,
    manifest_path,
    read_manifest,
)
from advprior.hub.pretrained import (  # noqa: F401 - re-exported
    _REGISTRY,
    INHERITED_TRAINING_KEYS,
    MODEL_TYPE_MODULES,
    PretrainedMixin,
    T,
    _device_or_map_location,
    _float32_sha256,
    _foreign_card,
    _jsonable,
    _model_card,
    _plain,
    load_files,
    load_pretrained,
    model_class,
    registered_model_types,
)
from advprior.hub.resolution import (  # noqa: F401 - re-exported
    _HUB_ID,
    _PICKLE_SUFFIXES,
    _VPOSER_HINT,
    _alias_files,
    _alias_key,
    _file_error,
    _hub_repo_files,
    _is_checkpoint,
    _local_files,
    _looks_like_path,
    _looks_like_vposer,
    _resolve_files,
    _verify_hub_files,
    _verify_recorded,
    did_you_mean,
    resolve,
    resolve_alias,
    resolve_files,
)

__all__ = [
    "CheckpointFiles",
    "PretrainedMixin",
    "known_aliases",
    "load_files",
    "load_pretrained",
    "manifest_path",
    "model_class",
    "read_config",
    "read_manifest",
    "registered_model_types",
    "resolve",
    "resolve_alias",
    "resolve_files",
    "safetensors_bytes",
    "sha256_file",
    "state_sha256",
]
