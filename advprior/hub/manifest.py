"""The weights manifest (``weights_manifest.json``): where it is (``manifest=``,
``$ADVPRIOR_MANIFEST``, the packaged one), reading and validating it, its aliases.

Layer "weights" (``docs/design.md``); :mod:`advprior.hub` re-exports every name.
"""

from __future__ import annotations

import os
from pathlib import Path, PureWindowsPath
from typing import Any

from advprior.errors import (
    ManifestError,
    ModelNotFoundError,
)
from advprior.fileio import expand_home, read_json
from advprior.hub.checkpoint import _SHA256

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # advprior/, the package holding the weights


DEFAULT_MANIFEST = PACKAGE_DIR / "weights_manifest.json"


MANIFEST_REQUIRED_KEYS = (
    "repo_id",
    "revision",
    "filename",
    "sha256",
    "model_type",
    "latent",
    "training_data",
)


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
