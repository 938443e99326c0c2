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
   ``./gan-s``: an output folder called ``gan-s`` does not hide the alias);
2. an alias in ``weights_manifest.json`` (e.g. ``"gan-s"``): the copy bundled in
   ``advprior/weights/<alias>/`` if present, else a download of the pinned ``repo_id`` /
   ``revision`` / ``filename``; either way the sha256 must match the manifest;
3. any other Hub repo id ``"owner/name"`` (``config.json`` + ``model.safetensors``).

The manifest path can be overridden per call (``manifest=``) or by ``$ADVPRIOR_MANIFEST``.
``$HF_ENDPOINT`` and ``$HF_HUB_OFFLINE`` are read at call time, not only when huggingface_hub is
first imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any, ClassVar, NoReturn, TypeVar

import numpy as np
import torch

from advprior._sync import ForkSafeLock
from advprior.errors import (
    ChecksumMismatchError,
    CorruptCheckpointError,
    ManifestError,
    ModelNotFoundError,
    OfflineError,
)
from advprior.fileio import atomic_path, expand_home, read_json, sha256_file, write_text_atomic
from advprior.tensors import check_device, isolated_global_rng

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
PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_MANIFEST = PACKAGE_DIR / "weights_manifest.json"
# Keys of config.json that are not constructor arguments.
RESERVED_CONFIG_KEYS = ("model_type", "format_version", "training", "weights_sha256")
MANIFEST_REQUIRED_KEYS = (
    "repo_id",
    "revision",
    "filename",
    "sha256",
    "model_type",
    "latent",
    "training_data",
)
# Where a model_type's class lives, so load_pretrained can import it on demand.
MODEL_TYPE_MODULES = {
    "gan": "advprior.prior",
    "vae": "advprior.baselines",
    "gmm": "advprior.baselines",
}

_REGISTRY: dict[str, type] = {}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")

T = TypeVar("T", bound="PretrainedMixin")
_R = TypeVar("_R")  # what a Hub fetch returns (a path, or a checkpoint's files)


# ---------------------------------------------------------------------------------------------
# Small file helpers


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _offline(local_files_only: bool) -> bool:
    """Offline for this call: ``local_files_only``, else ``$HF_HUB_OFFLINE`` as it is now (set
    to 0 it turns offline mode off again), else huggingface_hub's import-time setting."""
    from huggingface_hub import constants

    if local_files_only:
        return True
    if os.environ.get("HF_HUB_OFFLINE", "").strip():
        return _env_true("HF_HUB_OFFLINE")
    return bool(constants.HF_HUB_OFFLINE)


_OFFLINE_LOCK = ForkSafeLock()  # a forked child must not inherit it held


@contextlib.contextmanager
def _hub_offline_mode(offline: bool) -> Iterator[None]:
    """huggingface_hub's HTTP layer checks its import-time ``HF_HUB_OFFLINE``; for this call it
    must see the value read now (serialised, since it is a module global)."""
    from huggingface_hub import constants

    with _OFFLINE_LOCK:
        old = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = offline
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = old


def _endpoint() -> str | None:
    endpoint = os.environ.get("HF_ENDPOINT")
    return endpoint.rstrip("/") if endpoint else None


# ---------------------------------------------------------------------------------------------
# Manifest


def manifest_path(manifest: str | os.PathLike | None = None) -> Path:
    """The manifest in use: ``manifest``, else ``$ADVPRIOR_MANIFEST``, else the packaged one.
    A leading ``~`` is the home folder, as for checkpoint paths and ``$ADVPRIOR_CACHE`` (a
    variable set in a Dockerfile, a ``.env`` file or ``os.environ`` keeps it unexpanded)."""
    if manifest is not None:
        return expand_home(manifest)
    env = os.environ.get("ADVPRIOR_MANIFEST")
    return expand_home(env) if env else DEFAULT_MANIFEST


def _symlink_placeholder_target(path: Path) -> Path:
    """``path``, or the file it names if it is a symlink checked out as a plain file.

    The package's ``weights_manifest.json`` is a symlink to the checkout's top-level one; Git
    on Windows without symlink support (``core.symlinks=false``, its default) writes it as a
    small text file holding the link's target, ``../weights_manifest.json``, which an editable
    install would then try to read as the manifest."""
    try:
        if path.is_symlink() or path.stat().st_size > 255:
            return path
        target = path.read_bytes().decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return path
    if target.endswith(".json") and not target.startswith(("{", "[")) and "\n" not in target:
        followed = path.parent / target
        if followed.is_file() and followed.resolve() != path.resolve():
            return followed
    return path


def read_manifest(manifest: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate the weights manifest; returns ``{alias: entry}``.

    Raises :class:`~advprior.errors.ManifestError` for a manifest that is not valid JSON or
    whose entries lack a required key (see ``docs/api/hub.md`` for the schema).
    """
    path = _symlink_placeholder_target(manifest_path(manifest))
    try:
        data = read_json(path, ManifestError, what="weights manifest")
    except FileNotFoundError as err:
        raise ModelNotFoundError(f"weights manifest not found: {path}") from err
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ManifestError(f"weights manifest {path} needs a top-level 'models' object")
    for alias, entry in models.items():
        if not isinstance(entry, dict):
            raise ManifestError(f"weights manifest {path}: entry {alias!r} is not an object")
        # "latent" must be present but may be null (a model without a latent space, e.g. gmm).
        missing = [
            k
            for k in MANIFEST_REQUIRED_KEYS
            if k not in entry or (k != "latent" and not isinstance(entry[k], str))
        ]
        if missing:
            raise ManifestError(
                f"weights manifest {path}: entry {alias!r} lacks required string keys {missing}"
            )
        for key in ("sha256", "config_sha256"):
            value = entry.get(key)
            if value is not None and not (isinstance(value, str) and _SHA256.fullmatch(value)):
                raise ManifestError(
                    f"weights manifest {path}: entry {alias!r} {key} must be 64 lowercase hex"
                )
        # File names are looked up in a Hub repo and inside the package: plain relative paths
        # only, so an entry can never point at a file elsewhere on this machine.
        for key in ("filename", "config_filename", "bundled"):
            value = entry.get(key)
            if value is None and key != "filename":
                continue
            problem = _relative_path_problem(value)
            if problem:
                raise ManifestError(
                    f"weights manifest {path}: entry {alias!r} {key} {value!r:.80} {problem}"
                )
    return models


def _relative_path_problem(value: Any) -> str | None:
    """Why ``value`` is not a plain relative path ("dir/file", no ".." or absolute), or None."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    parts = value.split("/")
    if (
        not value
        or "\\" in value
        or "\0" in value
        or value.startswith("/")
        or PureWindowsPath(value).drive
        or any(p in ("", ".", "..") for p in parts)
    ):
        return "must be a plain relative path (no '..', no absolute path, no backslash)"
    return None


def known_aliases(manifest: str | os.PathLike | None = None) -> list[str]:
    """Sorted aliases listed in the manifest."""
    return sorted(read_manifest(manifest))


# ---------------------------------------------------------------------------------------------
# Resolution


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


def _looks_like_path(name: str) -> bool:
    """A name meant as a filesystem path, never as a Hub repo id ``owner/name``."""
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


# What a human_body_prior VPoser experiment folder holds (v1: ``snapshots/*.pt`` and an ``.ini``;
# v2: ``snapshots/*.ckpt`` and a ``.yaml``): users who swap only the import keep passing it.
_VPOSER_HINT = (
    "advprior cannot load VPoser's own weights (another model, stored as pickles, which advprior "
    "never unpickles); pass an advprior alias ('gan-s', 'vae', ...) or an advprior checkpoint "
    f"folder ({CONFIG_NAME} + {WEIGHTS_NAME}) instead"
)
_PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".pkl", ".tar")


def _looks_like_vposer(directory: Path) -> bool:
    snapshots = directory / "snapshots"
    if not snapshots.is_dir():
        return False
    settings = any(directory.glob("*.yaml")) or any(directory.glob("*.ini"))
    return settings or any(f.suffix.lower() in _PICKLE_SUFFIXES for f in snapshots.iterdir())


def _is_checkpoint(directory: Path) -> bool:
    return (directory / CONFIG_NAME).is_file() and (directory / WEIGHTS_NAME).is_file()


def resolve_alias(alias: str, **kwargs: Any) -> CheckpointFiles:
    """:func:`resolve_files` for a manifest alias only, whatever folders the working directory
    holds: for defaults chosen by the library (a fit's ``pose_density="auto"``), which must not
    change with the directory a user runs in. Keywords as :func:`resolve_files`'."""
    manifest = kwargs.pop("manifest", None)
    models = _manifest_models(manifest)
    if alias not in models:
        known = ", ".join(sorted(models)) or "none yet"
        raise ModelNotFoundError(f"{alias!r} is not a known model alias (known: {known})")
    return _alias_files(alias, models[alias], **kwargs)


def _local_files(directory: Path) -> CheckpointFiles:
    config, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for f in (config, weights):
        if not f.is_file():
            exported = directory / RUN_MODEL_DIR
            if (exported / CONFIG_NAME).is_file():
                raise ModelNotFoundError(
                    f"{directory} is a training run folder; its model is {exported}"
                )
            if _looks_like_vposer(directory):
                raise ModelNotFoundError(
                    f"{directory} looks like a VPoser (human_body_prior) folder: {_VPOSER_HINT}"
                )
            raise ModelNotFoundError(f"checkpoint directory {directory} has no {f.name}")
    return CheckpointFiles(config, weights, "local")


def _file_error(path: Path) -> ModelNotFoundError:
    """Why a file is not a checkpoint name, and what to pass instead."""
    parent = path.parent
    if (parent / CONFIG_NAME).is_file() and (parent / WEIGHTS_NAME).is_file():
        return ModelNotFoundError(f"{path} is a file; pass the checkpoint directory {parent}")
    if path.name == "checkpoint.pt":  # advprior.train's resume state, not a model
        exported = parent / RUN_MODEL_DIR
        where = (
            f"its model is {exported}"
            if exported.is_dir()
            else f"the run exports its model to {exported} when it finishes"
        )
        return ModelNotFoundError(f"{path} is a training checkpoint (the state to resume); {where}")
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        # also what torch.save(prior.state_dict()) and Lightning write: say how those load
        return ModelNotFoundError(
            f"{path} is a pickled PyTorch/VPoser checkpoint: {_VPOSER_HINT}. A state dict saved "
            "from an advprior model (torch.save(model.state_dict()), a Lightning .ckpt's "
            "'state_dict' under its prefix) loads into a model of its architecture: "
            "PosePrior.from_config(model.config).load_state_dict(torch.load(path, "
            "weights_only=True)); save_pretrained writes a folder that loads here"
        )
    return ModelNotFoundError(
        f"{path} is a file, not a checkpoint directory ({CONFIG_NAME} + {WEIGHTS_NAME}) or a "
        "model alias"
    )


def _hub_download(
    repo_id: str,
    filename: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    local_files_only: bool,
    force_download: bool,
    token: str | bool | None,
    what: str,
) -> Path:
    """``hf_hub_download`` with its errors translated into advprior's."""
    from huggingface_hub import hf_hub_download

    # huggingface_hub.utils, not .errors: 0.23 (pyproject's lower bound) has an errors module
    # without these, and .utils exports them from 0.23 through 2.x
    from huggingface_hub.utils import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = _offline(local_files_only)
    where = f"{repo_id}@{revision or 'main'}/{filename}"
    if offline and force_download:
        # huggingface_hub would blame local_files_only, which a caller with HF_HUB_OFFLINE=1
        # who follows a checksum refusal's advice never passed
        raise OfflineError(
            f"{what}: force_download=True downloads {where} again, but offline mode is on "
            "(HF_HUB_OFFLINE=1 or local_files_only=True); connect to the Hub to download it"
        )
    try:
        with _hub_offline_mode(offline):
            path = hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=offline,
                force_download=force_download,
                token=token,
                endpoint=_endpoint(),
                library_name="advprior",
            )
        return Path(path)
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as err:
        reason = (
            "offline mode is on (HF_HUB_OFFLINE=1 or local_files_only=True)"
            if offline
            else "the Hub could not be reached"
        )
        raise OfflineError(
            f"{what}: {where} is not in the local Hub cache and {reason}; "
            "connect once to download it, or pass a local checkpoint directory"
        ) from err
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:
        raise ModelNotFoundError(f"{what}: {where} does not exist on the Hub ({err})") from err
    except HFValidationError as err:
        raise ModelNotFoundError(f"{what}: {repo_id!r} is not a valid Hub repo id ({err})") from err
    except ValueError as err:
        # with force_download, huggingface_hub reports a Hub it cannot reach as a bare
        # ValueError("Force download failed due to the above error.") chained to the cause
        if not force_download or err.__cause__ is None:
            raise
        raise OfflineError(
            f"{what}: force_download=True could not download {where}: the Hub could not be "
            f"reached ({type(err.__cause__).__name__}: {err.__cause__})"
        ) from err


def _verify(
    path: Path,
    expected: str | None,
    what: str,
    pinned_by: str = "the manifest pins",
    hint: str = "re-download with force_download=True if the cached copy is damaged",
) -> None:
    """The one sha256 check of every checkpoint file advprior loads (or exports)."""
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise ChecksumMismatchError(
            f"{what}: {path} has sha256 {actual}, but {pinned_by} {expected}; refusing to "
            f"load it ({hint})"
        )


def _verify_recorded(
    files: CheckpointFiles,
    models: dict[str, dict[str, Any]],
    hint: str = "it was changed or damaged after it was saved",
) -> None:
    """Check a folder's (or Hub repo's) weights against the sha256 recorded for them: its
    config.json's ``weights_sha256`` (written by ``save_pretrained``; a mismatch is a
    :class:`ChecksumMismatchError`). A config.json without one that is a released alias's own
    (its ``config_sha256``) is a copy of that checkpoint or a fine-tune of it saved by advprior
    0.2.0, which wrote the loaded model's config unchanged and no record: weights other than the
    alias's are then loaded with a ``UserWarning`` (the two cannot be told apart, and 0.2.0's
    fine-tunes must keep loading). Nothing is recorded for other folders."""
    what = f"checkpoint {files.directory}"
    recorded = read_config(files.config).get("weights_sha256")
    if recorded is not None:
        _verify(
            files.weights,
            recorded,
            what,
            f"its {CONFIG_NAME} records",
            hint,
        )
        return
    digest = sha256_file(files.config)
    for alias, entry in sorted(models.items()):
        if entry.get("config_sha256") == digest:
            actual = sha256_file(files.weights)
            if entry.get("sha256") not in (None, actual):
                warnings.warn(
                    f"{what}: its {CONFIG_NAME} is that of {alias!r} but {files.weights} has "
                    f"sha256 {actual}, not {alias!r}'s {entry['sha256']}: a fine-tune saved by "
                    "advprior 0.2.0 (which kept the config and recorded no weights sha256), or "
                    "a changed or damaged copy; loading it. save_pretrained it again to record "
                    "its sha256",
                    UserWarning,
                    stacklevel=2,
                )
            return


def _alias_files(alias: str, entry: dict[str, Any], **hub_kwargs: Any) -> CheckpointFiles:
    filename = entry["filename"]
    config_filename = entry.get("config_filename") or CONFIG_NAME
    what = f"model {alias!r}"
    bundled = entry.get("bundled")
    if bundled and not hub_kwargs.get("force_download"):
        directory = PACKAGE_DIR / bundled
        weights, config = directory / Path(filename).name, directory / Path(config_filename).name
        if weights.is_file() and config.is_file():
            _verify(weights, entry["sha256"], what)
            _verify(config, entry.get("config_sha256"), what)
            return CheckpointFiles(config, weights, "bundled", entry)
    # A pinned revision always wins over the caller's: the sha256 refers to that revision.
    hub_kwargs["revision"] = entry["revision"]
    repo_id = entry["repo_id"]
    weights = _pinned_hub_file(repo_id, filename, entry["sha256"], what, hub_kwargs)
    config_sha256 = entry.get("config_sha256")
    config = _pinned_hub_file(repo_id, config_filename, config_sha256, what, hub_kwargs)
    return CheckpointFiles(config, weights, "hub", entry)


def _can_fetch_again(hub_kwargs: dict[str, Any]) -> bool:
    """Whether a cached Hub file that fails its sha256 may be downloaded once more: online,
    and not just downloaded (``force_download``), when the Hub itself serves other bytes."""
    return not hub_kwargs.get("force_download") and not _offline(
        bool(hub_kwargs.get("local_files_only"))
    )


def _cache_hint(path: Path, hub_kwargs: dict[str, Any]) -> str:
    """What to do about a Hub file that fails its sha256 and was not downloaded again."""
    if hub_kwargs.get("force_download"):
        return "it was downloaded just now: the Hub serves other bytes than those pinned"
    why = "offline" if _offline(bool(hub_kwargs.get("local_files_only"))) else "Hub unreachable"
    # the snapshot entry is a symlink into the cache's blobs: deleting it alone changes nothing
    return (
        f"{why}, so the damaged cached copy {path.resolve()} was not replaced: load it once "
        "online, which downloads it again, or delete that file"
    )


def _pinned_hub_file(
    repo_id: str, filename: str, expected: str | None, what: str, hub_kwargs: dict[str, Any]
) -> Path:
    """A Hub file that must have sha256 ``expected``. A cached copy that fails the check was
    damaged after its download (a disk error, an edit, a half-copied cache) or is not what the
    Hub serves now: online it is downloaded once more and checked again, so that a damaged
    cache heals itself also for the CLI, which has no ``force_download``."""
    return _verified_download(
        lambda kw: _hub_download(repo_id, filename, what=what, **kw),
        lambda path, kw: _verify(path, expected, what, hint=_cache_hint(path, kw)),
        hub_kwargs,
    )


def _verified_download(
    fetch: Callable[[dict[str, Any]], _R],
    verify: Callable[[_R, dict[str, Any]], None],
    hub_kwargs: dict[str, Any],
) -> _R:
    """``fetch(hub_kwargs)`` checked by ``verify(result, hub_kwargs)``; a cached copy that
    fails the check is fetched once more with ``force_download`` (when online) and checked
    again. One mechanism for manifest files and plain Hub repos."""
    result = fetch(hub_kwargs)
    try:
        verify(result, hub_kwargs)
    except ChecksumMismatchError as mismatch:
        if not _can_fetch_again(hub_kwargs):
            raise
        forced = {**hub_kwargs, "force_download": True}
        try:
            result = fetch(forced)
        except OfflineError as err:  # the Hub went away: the damaged copy is the news
            raise mismatch from err
        verify(result, forced)
    return result


def resolve_files(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
    token: str | bool | None = None,
    manifest: str | os.PathLike | None = None,
) -> CheckpointFiles:
    """Find a checkpoint's ``config.json`` and weights file locally (see the module docstring).

    Raises :class:`ModelNotFoundError` (unknown name; the message lists known aliases),
    :class:`ChecksumMismatchError`, or :class:`OfflineError` (offline and not cached).
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a str or path, got {type(name_or_path).__name__}")
    name = os.fspath(name_or_path)
    if not name.strip():
        # Path("") is the working directory: never load whatever happens to be there
        raise ModelNotFoundError("the model name is empty; pass an alias, a folder or a Hub id")
    path = expand_home(name)
    hub_kwargs = dict(
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        force_download=force_download,
        token=token,
    )
    if path.is_dir():
        if (
            isinstance(name_or_path, str)
            and not _looks_like_path(name)
            and not _is_checkpoint(path)
        ):
            # A bare alias names the alias unless the folder of that name is a checkpoint: an
            # output folder called "gan-s" or a training run called "gmm" must not hide it.
            models = _manifest_models(manifest, quiet=True)
            if name in models:
                return _alias_files(name, models[name], **hub_kwargs)
        files = _local_files(path)
        _verify_recorded(files, _manifest_models(manifest, quiet=True))
        return files
    if path.exists():
        raise _file_error(path)
    models = _manifest_models(manifest)
    if name in models:
        return _alias_files(name, models[name], **hub_kwargs)
    if isinstance(name_or_path, str) and not _looks_like_path(name) and _HUB_ID.fullmatch(name):
        # "runs/a" is both a relative path and a Hub id: say which was tried, since a mistyped
        # local folder ends up here
        what = f"Hub model {name!r} (no local folder {name!r} exists either)"
        return _verified_download(
            lambda kw: _hub_repo_files(name, what, kw),
            lambda files, kw: _verify_recorded(files, models, _cache_hint(files.weights, kw)),
            hub_kwargs,
        )
    known = ", ".join(sorted(models)) or "none yet"
    hint = ""
    if os.sep == "/" and "\\" in name:
        # a path copied from Windows: backslashes are no separators here
        slashed = expand_home(name.replace("\\", "/"))
        if slashed.is_dir():
            hint = f"; '\\' separates no folders on this system: did you mean {str(slashed)!r}?"
    raise ModelNotFoundError(
        f"{name!r} is not a checkpoint directory, a known model alias (known: {known}), "
        f"or a Hub repo id of the form 'owner/name'{hint}"
    )


def _hub_repo_files(name: str, what: str, hub_kwargs: dict[str, Any]) -> CheckpointFiles:
    config = _hub_download(name, CONFIG_NAME, what=what, **hub_kwargs)
    weights = _hub_download(name, WEIGHTS_NAME, what=what, **hub_kwargs)
    return CheckpointFiles(config, weights, "hub")


def _manifest_models(
    manifest: str | os.PathLike | None, *, quiet: bool = False
) -> dict[str, dict[str, Any]]:
    """The manifest's entries; ``{}`` for an install without the packaged manifest (it can
    still load directories and Hub repo ids) and, with ``quiet``, for a broken one (a local
    folder is only looked up in it)."""
    path = manifest_path(manifest)
    if not path.exists() and path == DEFAULT_MANIFEST:
        return {}
    try:
        return read_manifest(path)
    except (ManifestError, ModelNotFoundError):
        if quiet:
            return {}
        raise


def resolve(name_or_path: str | os.PathLike, **kwargs: Any) -> Path:
    """Directory holding the resolved weights file (same arguments as :func:`resolve_files`)."""
    return resolve_files(name_or_path, **kwargs).directory


# ---------------------------------------------------------------------------------------------
# Config and weights


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


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _model_card(model: PretrainedMixin, config: dict[str, Any]) -> str:
    from huggingface_hub import ModelCardData

    cls = type(model)
    card = ModelCardData(
        library_name="advprior",
        # Weights carry the licence of their training data when it was recorded (share-alike
        # data); otherwise the class default.
        license=(config.get("training") or {}).get("weights_license")
        or getattr(cls, "card_license", "mit"),
        tags=["advprior", "pose-prior", "smpl", f"model-type-{config['model_type']}"],
    )
    args = {k: v for k, v in config.items() if k not in RESERVED_CONFIG_KEYS}
    lines = [
        "---",
        card.to_yaml(),
        "---",
        "",
        f"# advprior {cls.__name__} ({config['model_type']})",
        "",
        (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        "",
        "## Usage",
        "",
        "```python",
        "from advprior import load_pretrained",
        'model = load_pretrained("<this repo id or directory>")',
        "```",
        "",
        "## Configuration",
        "",
        "| argument | value |",
        "|---|---|",
        *[f"| `{k}` | `{json.dumps(v)}` |" for k, v in sorted(args.items())],
        "",
        "## Training",
        "",
    ]
    training = config.get("training")
    if training:
        for key, value in training.items():
            if isinstance(value, dict):
                lines.append(f"- **{key}**:")
                lines += [f"  - {k}: {json.dumps(v)}" for k, v in value.items()]
            else:
                lines.append(
                    f"- **{key}**: {value if isinstance(value, str) else json.dumps(value)}"
                )
    else:
        lines.append("No training metadata was recorded with this checkpoint.")
    sha = config.get("weights_sha256")
    lines += [
        "",
        f"Checkpoint format version {FORMAT_VERSION}; weights in safetensors"
        + (f" (sha256 `{sha}`)." if sha else "."),
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The mixin


#: Keys of ``training`` metadata that a model fine-tuned from a loaded one keeps: its training
#: data's licence (share-alike data makes derived weights share-alike) and credit.
INHERITED_TRAINING_KEYS = ("weights_license", "licence", "attribution")


def _float32_sha256(model: Any) -> str:
    """sha256 of ``model``'s weights with floating tensors in float32 (names, shapes and raw
    bytes; not a file's sha256, only compared with itself): unchanged by ``.double()`` and
    back, changed by any training step. A third of the cost of serialising them."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.float()
        digest.update(f"{key}\0{tuple(value.shape)}\0{value.dtype}\0".encode())
        digest.update(value.contiguous().view(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """A numpy scalar argument as the Python number it holds (``np.int64(8)`` -> ``8``,
    ``np.float32(0.1)`` -> its exact value): a sweep's ``np.arange`` / ``np.float32`` values
    built and trained a model whose ``save_pretrained`` then refused them as not JSON."""
    if isinstance(value, np.generic) and isinstance(value.item(), (bool, int, float)):
        return value.item()
    return value


class PretrainedMixin:
    """Save/load/push for ``nn.Module`` subclasses; each concrete class sets ``model_type``.

    The constructor arguments are recorded when an instance is created (they must be JSON
    values) and become ``config.json``. Loaded models are put in eval mode, with every parameter
    frozen (``requires_grad=False``) unless ``freeze=False`` (call ``.train()`` to fine-tune
    with dropout); a freshly constructed one is in train mode and trainable.
    """

    model_type: ClassVar[str]
    #: licence tag for the model card
    card_license: ClassVar[str] = "mit"
    _init_config: dict[str, Any]
    training_metadata: dict[str, Any] | None = None
    # (_float32_sha256 of the weights as loaded, their file's sha256, the training_metadata
    # loaded with them): from_pretrained sets it, so that the metadata of a loaded model is not
    # saved as that of weights changed since (a fine-tuning in the user's own loop)
    _loaded_training: tuple[str, str, dict[str, Any]] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "model_type" in cls.__dict__:
            _REGISTRY[cls.model_type] = cls

    def __new__(cls, *args: Any, **kwargs: Any):  # noqa: D102 - records constructor arguments
        instance = super().__new__(cls)
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind(instance, *args, **kwargs)
        except TypeError:
            bound = None  # __init__ itself will raise the informative error
        config: dict[str, Any] = {}
        if bound is not None:
            bound.apply_defaults()
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    config.update({k: _plain(v) for k, v in value.items()})
                elif kind is not inspect.Parameter.VAR_POSITIONAL:
                    config[name] = _plain(value)
        object.__setattr__(instance, "_init_config", config)
        return instance

    def __prepare_scriptable__(self) -> NoReturn:
        # torch.jit.script calls this before compiling (also for a prior held inside a user's
        # module). The API checks its inputs in Python and TorchScript cannot compile that, so
        # say what works instead of failing deep inside the compiler on ``config``.
        raise TypeError(
            f"torch.jit.script cannot compile {type(self).__name__} (its methods check their "
            "inputs in Python); trace it instead: torch.jit.trace(prior, z) with a latent z "
            "of shape (B, D), or `advprior export --model NAME --output prior.pt` for a file "
            "with its metadata; a module that holds a prior scripts once the prior in it is "
            "traced"
        )

    @property
    def config(self) -> dict[str, Any]:
        """What ``config.json`` will hold: constructor arguments, model_type, format_version,
        and ``training`` when training metadata is attached."""
        config = dict(self._init_config)
        config["model_type"] = type(self).model_type
        config["format_version"] = FORMAT_VERSION
        if self.training_metadata is not None:
            config["training"] = self._training_of_these_weights()
        return config

    def _training_of_these_weights(self) -> dict[str, Any]:
        """``training_metadata``, unless it was loaded with weights that have changed since:
        then its steps, data and validation numbers describe the model this one was
        fine-tuned from, and are kept under ``fine_tuned_from`` (with that model's weights
        sha256); the licence and attribution of the training data stay, as derived weights
        carry them."""
        metadata = self.training_metadata
        loaded = self._loaded_training
        if metadata is None or loaded is None or loaded[2] is not metadata:
            return metadata  # new, or replaced by the user: it describes these weights
        if _float32_sha256(self) == loaded[0]:
            return metadata
        kept = {k: metadata[k] for k in INHERITED_TRAINING_KEYS if k in metadata}
        return {**kept, "fine_tuned_from": {"weights_sha256": loaded[1], "training": metadata}}

    @classmethod
    def from_config(cls: type[T], config: Mapping[str, Any]) -> T:
        """A fresh, randomly initialised, trainable model of the architecture ``config``
        describes (``model.config``, or a parsed ``config.json``), e.g. to load a state dict
        saved with ``torch.save(model.state_dict())``. Keys that are not constructor arguments
        (``model_type``, ``format_version``, ``training``, ``weights_sha256``) are dropped;
        ``model_type``, when given, must be this class's (``ValueError``; use
        ``advprior.hub.model_class(config["model_type"])`` to pick the class). Unknown
        arguments are the constructor's ``TypeError``."""
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        kind = config.get("model_type", cls.model_type)
        if kind != cls.model_type:
            raise ValueError(
                f"config describes a {kind!r} model, not {cls.__name__} ({cls.model_type!r}); "
                f"build it with advprior.hub.model_class({kind!r}).from_config(config)"
            )
        return cls(**{k: v for k, v in config.items() if k not in RESERVED_CONFIG_KEYS})

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        training: dict[str, Any] | None = None,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        **push_kwargs: Any,
    ) -> Path | str:
        """Write ``model.safetensors``, ``config.json`` and ``README.md`` into ``save_directory``.

        ``training`` (JSON-serialisable: e.g. ``{"data": ..., "steps": ..., "metrics": {...}}``)
        is stored under ``config["training"]`` and rendered in the model card; it replaces any
        metadata the model already carries. A leading ``~`` is the home folder, as for
        :meth:`from_pretrained`. Each file is written atomically. Returns the
        directory, or the commit URL when ``push_to_hub=True`` (``repo_id`` defaults to the
        directory name).
        """
        if training is not None:
            if not isinstance(training, dict) or not _jsonable(training):
                raise TypeError(
                    "training must be a JSON-serialisable dict (data, steps, metrics, ...)"
                )
            self.training_metadata = dict(training)
        config = self.config
        bad = [k for k, v in config.items() if not _jsonable(v)]
        if bad:
            raise TypeError(
                f"{type(self).__name__} constructor arguments {bad} are not JSON values; "
                "config.json can only record JSON-serialisable arguments"
            )
        # expanded as from_pretrained expands it, so that "~/m" names one folder for both
        directory = expand_home(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        # Serialise to bytes and write them ourselves: safetensors' own file writer leaves the
        # file private (0o600) whatever the umask.
        blob = safetensors_bytes(self.state_dict())
        # recorded so that loading (and exporting) the folder refuses a changed weights file
        config["weights_sha256"] = hashlib.sha256(blob).hexdigest()
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            tmp.write_bytes(blob)
        write_text_atomic(
            directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n"
        )
        write_text_atomic(directory / MODEL_CARD_NAME, _model_card(self, config))
        if push_to_hub:
            return self.push_to_hub(repo_id or directory.name, **push_kwargs)
        return directory

    @classmethod
    def from_pretrained(
        cls: type[T],
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
        token: str | bool | None = None,
        manifest: str | os.PathLike | None = None,
        device: torch.device | str | None = None,
        freeze: bool = True,
    ) -> T:
        """Load a checkpoint of this class from a directory, manifest alias or Hub repo id.

        Raises :class:`ModelNotFoundError`, :class:`ChecksumMismatchError`,
        :class:`CorruptCheckpointError` (unreadable file, tensors that do not match the config,
        bad config.json, or a checkpoint of another model type) and :class:`OfflineError`.
        """
        files = resolve_files(
            name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            force_download=force_download,
            token=token,
            manifest=manifest,
        )
        return cls._from_files(files, device=device, freeze=freeze)

    @classmethod
    def _from_files(
        cls: type[T],
        files: CheckpointFiles,
        *,
        device: torch.device | str | None = None,
        freeze: bool = True,
    ) -> T:
        if device is not None:
            # before reading anything: "cuda" on a machine without one is a ValueError saying
            # so, not torch's AssertionError about how it was compiled at the first .to()
            device = check_device(device)
        config = read_config(files.config)
        if config["model_type"] != cls.model_type:
            raise CorruptCheckpointError(
                f"{files.config} holds a {config['model_type']!r} model, not {cls.__name__} "
                f"({cls.model_type!r}); use advprior.load_pretrained to load any model type"
            )
        entry = files.entry or {}
        for key in ("model_type", "latent"):
            if entry.get(key) is not None and config.get(key, entry[key]) != entry[key]:
                raise CorruptCheckpointError(
                    f"{files.config}: {key} is {config.get(key)!r}, but the manifest entry says "
                    f"{entry[key]!r}"
                )
        params = inspect.signature(cls.__init__).parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in config.items() if k not in RESERVED_CONFIG_KEYS}
        unknown = [k for k in kwargs if k not in params or k == "self"]
        if unknown and not takes_kwargs:
            raise CorruptCheckpointError(
                f"{files.config}: {unknown} are not arguments of {cls.__name__}"
            )
        # Sizes are checked before anything is allocated: the model is first built on the
        # meta device (shapes only) and compared with the safetensors header, so a config.json
        # asking for hidden_dim 1e9 fails here instead of exhausting memory.
        _check_sizes(cls, kwargs, files)
        try:
            # The constructor's random initialisation is overwritten by the checkpoint at once;
            # drawing it from the caller's global RNG would make their later draws depend on
            # which checkpoint they loaded (torch.manual_seed(0); load; torch.randn(...)).
            with isolated_global_rng():
                model = cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise CorruptCheckpointError(
                f"{files.config}: cannot build {cls.__name__}: {err}"
            ) from err
        _load_state(model, files.weights)
        model.training_metadata = config.get("training")
        if model.training_metadata is not None:
            # the file was verified against these when recorded; else hashed once
            file_sha = (
                config.get("weights_sha256")
                or (files.entry or {}).get("sha256")
                or sha256_file(files.weights)
            )
            model._loaded_training = (_float32_sha256(model), file_sha, model.training_metadata)
        if device is not None:
            model.to(device)
        # eval mode whatever `freeze` says, as huggingface_hub's mixin and transformers load:
        # left in train mode, dropout made every decode of a freeze=False model random
        model.eval()
        if freeze:
            model.requires_grad_(False)
        return model

    def push_to_hub(
        self,
        repo_id: str,
        *,
        training: dict[str, Any] | None = None,
        commit_message: str = "Upload advprior checkpoint",
        private: bool | None = None,
        token: str | None = None,
        branch: str | None = None,
        create_pr: bool | None = None,
    ) -> str:
        """Save to a temporary directory and upload it to ``repo_id`` in one commit; returns
        the commit URL. Honours ``$HF_ENDPOINT``."""
        from huggingface_hub import HfApi

        api = HfApi(endpoint=_endpoint(), token=token)
        repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, training=training)
            info = api.upload_folder(
                repo_id=repo_id,
                repo_type="model",
                folder_path=tmp,
                commit_message=commit_message,
                revision=branch,
                create_pr=create_pr,
            )
        return str(info)


# ---------------------------------------------------------------------------------------------
# Any model type


def model_class(model_type: str) -> type:
    """The class registered for ``model_type`` (imports its module on first use)."""
    if model_type not in _REGISTRY and model_type in MODEL_TYPE_MODULES:
        try:
            importlib.import_module(MODEL_TYPE_MODULES[model_type])
        except ModuleNotFoundError as err:
            raise CorruptCheckpointError(
                f"model_type {model_type!r} needs {MODEL_TYPE_MODULES[model_type]}, "
                f"which is not available: {err}"
            ) from err
    if model_type not in _REGISTRY:
        known = sorted(set(_REGISTRY) | set(MODEL_TYPE_MODULES))
        raise CorruptCheckpointError(f"unknown model_type {model_type!r}; known: {known}")
    return _REGISTRY[model_type]


def load_pretrained(name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
    """Load any advprior checkpoint (``"gan"``, ``"vae"``, ``"gmm"``, ...) by its config's
    ``model_type``. Accepts every keyword of :meth:`PretrainedMixin.from_pretrained`."""
    load_kwargs = {k: kwargs.pop(k) for k in ("device", "freeze") if k in kwargs}
    return load_files(resolve_files(name_or_path, **kwargs), **load_kwargs)


def load_files(
    files: CheckpointFiles, *, device: torch.device | str | None = None, freeze: bool = True
) -> Any:
    """The model of already resolved (and so sha256-verified) ``files``
    (:func:`resolve_files`), as :func:`load_pretrained` loads it: for callers that also need
    the files, e.g. to record the weights' sha256 of exactly what was loaded."""
    cls = model_class(read_config(files.config)["model_type"])
    return cls._from_files(files, device=device, freeze=freeze)


def registered_model_types() -> dict[str, type]:
    """A copy of the ``model_type -> class`` registry (classes imported so far)."""
    return dict(_REGISTRY)


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
