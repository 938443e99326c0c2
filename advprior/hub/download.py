"""Hub downloads: ``hf_hub_download`` with advprior's errors, ``$HF_ENDPOINT`` and
``$HF_HUB_OFFLINE`` read at call time, and the one sha256 check of every checkpoint file
advprior loads, with a damaged cached copy fetched once more when online.

Layer "weights" (``docs/design.md``); :mod:`advprior.hub` re-exports every name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from advprior._sync import ForkSafeLock
from advprior.errors import (
    ChecksumMismatchError,
    CorruptCheckpointError,
    ModelNotFoundError,
    OfflineError,
)
from advprior.fileio import sha256_file

_R = TypeVar("_R")  # what a Hub fetch returns (a path, or a checkpoint's files)


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
        with (
            _hub_offline_mode(offline),
            _replaceable(
                _cached_plain_file(repo_id, filename, revision, cache_dir)
                if force_download
                else None
            ),
        ):
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
        if offline:
            reason = "offline mode is on (HF_HUB_OFFLINE=1 or local_files_only=True)"
        else:
            # why, in the one line the CLI prints: a refused connection, or an HF_ENDPOINT,
            # proxy or captive portal that answers but not as the Hub does
            from huggingface_hub import constants

            cause = err.__cause__ or err
            why = (str(cause).strip().splitlines() or [""])[0][:300]
            reason = (
                f"the Hub could not be reached at {_endpoint() or constants.ENDPOINT} "
                f"({type(cause).__name__}: {why})"
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
    except Exception as err:
        if isinstance(err, OSError) and err.errno in _UNWRITABLE and err.filename:
            # a read-only or another user's cache: huggingface_hub's bare "[Errno 30]
            # Read-only file system: '.../models--x'" named neither the download nor a way out
            raise type(err)(
                err.errno,
                f"{what}: cannot download {where} into the Hub cache ({err.strerror}: "
                f"{err.filename}); pass cache_dir= a writable folder (--cache-dir on the "
                "command line) or set HF_HUB_CACHE before Python starts",
            ) from err
        if not _is_transfer_error(err):
            raise
        # a connection that broke or timed out mid-file, or a server error on the download
        # itself: huggingface_hub raises its HTTP library's own exception, after its retries
        raise OfflineError(
            f"{what}: downloading {where} failed ({type(err).__name__}: {err}): the "
            "connection broke off or the Hub had an error; nothing was loaded: try again (a "
            "slow connection may need a larger HF_HUB_DOWNLOAD_TIMEOUT, in seconds, set before "
            "Python starts)"
        ) from err


_UNWRITABLE = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


# The HTTP libraries huggingface_hub has used (requests up to 0.x, httpx after): their errors
# are what reaches the caller when a download breaks off after its retries.
_TRANSFER_PACKAGES = frozenset({"httpx", "httpx2", "httpcore", "requests", "urllib3"})


def _is_transfer_error(err: Exception) -> bool:
    """A connection that failed, or an answer worth trying again (a server error, 408, 429);
    not a refusal (401, 403, ...), which huggingface_hub's own error states best."""
    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(status, int):
        return status >= 500 or status in (408, 429)
    return any(cls.__module__.split(".")[0] in _TRANSFER_PACKAGES for cls in type(err).__mro__)


def _cached_plain_file(
    repo_id: str, filename: str, revision: str | None, cache_dir: str | os.PathLike | None
) -> Path | None:
    """The cached snapshot entry of ``filename`` when it is a plain file, not a symlink into
    the cache's blobs (a cache on a disk without symlinks, Windows' default, or one copied with
    ``cp -L``); else None. Looked up without network."""
    from huggingface_hub import try_to_load_from_cache

    if cache_dir is not None:  # hf_hub_download expands "~"; try_to_load_from_cache does not
        cache_dir = os.path.expanduser(os.fspath(cache_dir))
    cached = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    if not isinstance(cached, str):
        return None
    path = Path(cached)
    return path if path.is_file() and not path.is_symlink() else None


@contextlib.contextmanager
def _replaceable(cached: Path | None) -> Iterator[None]:
    """huggingface_hub's ``force_download`` writes a new blob but keeps a snapshot entry that
    is a plain file, so a damaged copy there survived every download: moved aside for the
    download, it is replaced; put back if the download fails, so nothing is lost."""
    aside = None
    if cached is not None:
        aside = cached.with_name(f"{cached.name}.{os.getpid()}.{threading.get_ident()}.replaced")
        try:
            os.replace(cached, aside)
        except FileNotFoundError:  # another process replacing it too took it first
            aside = None
    if aside is None:
        yield
        return
    try:
        yield
    except BaseException:
        if not cached.exists():
            os.replace(aside, cached)
        raise
    finally:
        aside.unlink(missing_ok=True)


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
    # the snapshot entry is a symlink into the cache's blobs: deleting it alone changes nothing
    damaged = path.resolve()
    if _offline(bool(hub_kwargs.get("local_files_only"))):
        return (
            f"offline, so the damaged cached copy {damaged} was not replaced: load it once "
            "online, which downloads it again, or delete that file"
        )
    return (
        "downloading it again failed (the error this one is chained to says why: the Hub "
        f"unreachable, or a cache that cannot be written), so the damaged cached copy {damaged} "
        "was not replaced: delete that file, or load it again once the Hub can be reached"
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


class _DamagedCachedCopy(CorruptCheckpointError):
    """A cached Hub file that cannot be parsed (not JSON, not UTF-8): damaged after its
    download, so fetched once more like a file that fails its sha256; raised as the
    ``CorruptCheckpointError`` it is when it cannot be."""


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
    except (ChecksumMismatchError, _DamagedCachedCopy) as mismatch:
        if not _can_fetch_again(hub_kwargs):
            raise
        forced = {**hub_kwargs, "force_download": True}
        try:
            result = fetch(forced)
        except OSError as err:  # the Hub went away, a read-only cache: the damage is the news
            raise mismatch from err
        verify(result, forced)
    return result
