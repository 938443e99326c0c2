"""Names to checkpoint files: a local folder, a manifest alias (bundled copy or pinned Hub
download) or a Hub repo id, resolved in that order (see :mod:`advprior.hub`) and verified
against the sha256 pinned or recorded for them.

Layer "weights" (``docs/design.md``); :mod:`advprior.hub` re-exports every name.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

from advprior.errors import (
    CorruptCheckpointError,
    ModelNotFoundError,
    RevisionWarning,
)
from advprior.fileio import expand_home, read_json, sha256_file
from advprior.hub.checkpoint import (
    CONFIG_NAME,
    RUN_MODEL_DIR,
    WEIGHTS_NAME,
    CheckpointFiles,
    read_config,
)
from advprior.hub.download import (
    _cache_hint,
    _DamagedCachedCopy,
    _hub_download,
    _pinned_hub_file,
    _verified_download,
    _verify,
)
from advprior.hub.manifest import PACKAGE_DIR, _manifest_models

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")


def _alias_key(name: str) -> str:
    """``name`` as compared for a suggestion: lower case, ``_``/space/``.`` read as ``-``."""
    return re.sub(r"[\s_.]+", "-", name.strip().lower())


def did_you_mean(name: str, aliases: list[str] | Any) -> str:
    """``"; did you mean 'gan-s'?"`` for a name close to a known alias (``"GAN-S"``,
    ``"gan_s"``, ``"gans"``), else ``""``. Only a suggestion: an alias pins one sha256, so a
    misspelt one is never loaded in its place."""
    import difflib

    key = _alias_key(name)
    keys = {_alias_key(alias): alias for alias in aliases}
    if not keys:  # no manifest: nothing to suggest (and get_close_matches refuses n=0)
        return ""
    close = difflib.get_close_matches(key, list(keys), n=len(keys), cutoff=0.75)
    # all the equally close ones: "gan" is as near 'gan-n' as 'gan-s', and naming one of them
    # would be a guess
    ratio = {k: difflib.SequenceMatcher(None, key, k).ratio() for k in close}
    best = [repr(keys[k]) for k in close if ratio[k] == max(ratio.values())]
    if not best:
        return ""
    best.sort()
    return f"; did you mean {', '.join(best[:-1]) + ' or ' if best[:-1] else ''}{best[-1]}?"


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
        raise ModelNotFoundError(
            f"{alias!r} is not a known model alias (known: {known}){did_you_mean(alias, models)}"
        )
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
    """Find a checkpoint's ``config.json`` and weights file locally (in the order
    :mod:`advprior.hub`'s docstring lists).

    Raises :class:`ModelNotFoundError` (unknown name; the message lists known aliases),
    :class:`ChecksumMismatchError`, or :class:`OfflineError` (offline and not cached). A
    ``revision`` that was not used (an alias pinned to another one, a local folder) warns
    (:class:`~advprior.errors.RevisionWarning`): those weights are not that revision's.
    """
    files = _resolve_files(
        name_or_path,
        revision=revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        force_download=force_download,
        token=token,
        manifest=manifest,
    )
    if revision is not None and (files.entry is not None or files.source == "local"):
        if files.entry is not None:
            used = str(files.entry.get("revision") or "")
            why = f"{os.fspath(name_or_path)!r} is a manifest alias pinned to revision {used!r}"
        else:
            used, why = None, f"{files.directory} is a local folder"
        if str(revision) != used:
            warnings.warn(
                f"revision={revision!r} not used: {why} (revision= is for Hub repo ids)",
                RevisionWarning,
                stacklevel=3,  # the caller of from_pretrained / load_pretrained
            )
    return files


def _resolve_files(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    local_files_only: bool,
    force_download: bool,
    token: str | bool | None,
    manifest: str | os.PathLike | None,
) -> CheckpointFiles:
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
    if not isinstance(name_or_path, str):
        # a Path names a folder, as it does when one exists (above): a missing one is never
        # the alias of its name, or a fine-tune saved as Path("gmm") and looked for from
        # another working directory loaded the released gmm without a word
        hint = ""
        if name in _manifest_models(manifest, quiet=True):
            hint = f"; a Path is never taken for an alias: pass the string {name!r} for that model"
        raise ModelNotFoundError(f"{name!r} is not a checkpoint directory (no such folder){hint}")
    models = _manifest_models(manifest)
    if name in models:
        return _alias_files(name, models[name], **hub_kwargs)
    if isinstance(name_or_path, str) and not _looks_like_path(name) and _HUB_ID.fullmatch(name):
        # "runs/a" is both a relative path and a Hub id: say which was tried, since a mistyped
        # local folder ends up here
        what = f"Hub model {name!r} (no local folder {name!r} exists either)"
        return _verified_download(
            lambda kw: _hub_repo_files(name, what, kw),
            lambda files, kw: _verify_hub_files(files, models, kw),
            hub_kwargs,
        )
    known = ", ".join(sorted(models)) or "none yet"
    hint = did_you_mean(name, models)
    if os.sep == "/" and "\\" in name:
        # a path copied from Windows: backslashes are no separators here
        slashed = expand_home(name.replace("\\", "/"))
        if slashed.is_dir():
            hint += f"; '\\' separates no folders on this system: did you mean {str(slashed)!r}?"
    raise ModelNotFoundError(
        f"{name!r} is not a checkpoint directory, a known model alias (known: {known}), "
        f"or a Hub repo id of the form 'owner/name'{hint}"
    )


def _verify_hub_files(
    files: CheckpointFiles, models: dict[str, dict[str, Any]], hub_kwargs: dict[str, Any]
) -> None:
    """A Hub repo's files as cached: a config.json that is no longer JSON was damaged after
    its download (nothing records its sha256, unlike an alias's) and is fetched again as
    weights that fail their recorded sha256 are."""
    try:
        read_json(files.config, CorruptCheckpointError)
    except CorruptCheckpointError as err:
        if hub_kwargs.get("force_download"):
            raise  # downloaded just now: the repo's own file
        raise _DamagedCachedCopy(f"{err} ({_cache_hint(files.config, hub_kwargs)})") from err
    _verify_recorded(files, models, _cache_hint(files.weights, hub_kwargs))


def _hub_repo_files(name: str, what: str, hub_kwargs: dict[str, Any]) -> CheckpointFiles:
    config = _hub_download(name, CONFIG_NAME, what=what, **hub_kwargs)
    weights = _hub_download(name, WEIGHTS_NAME, what=what, **hub_kwargs)
    return CheckpointFiles(config, weights, "hub")


def resolve(name_or_path: str | os.PathLike, **kwargs: Any) -> Path:
    """Directory holding the resolved weights file (same arguments as :func:`resolve_files`)."""
    return resolve_files(name_or_path, **kwargs).directory
