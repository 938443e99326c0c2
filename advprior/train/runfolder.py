"""Protected run folders: one training process (group) per folder, and no silent restarts.

:func:`claim_run_folder` is called by the trainers before they load data:

- a folder that holds a checkpoint is refused unless the caller resumes it (``resume=True``,
  ``--resume``) or explicitly starts over (``overwrite=True``, ``--overwrite``), and so is one
  that holds an exported ``model/`` without a checkpoint (a finished GMM fit);
  starting over removes the earlier run's checkpoint, ``model/``, ``tb/`` event files and logs,
  but only when the new run can start (:meth:`RunFolder.start_over`, called by the trainers
  once the data is read and the models are built): a new run that fails its checks (a batch
  larger than the data, a refused ``init_from``, a missing file) leaves the earlier run as it
  was;
- a lock file ``<out>/run.lock`` (JSON: pid, host, pid scope, a random token, start time) is
  created atomically; a lock of a live process is refused (naming its pid and host), a lock
  whose process is gone (same machine: same :func:`advprior.fileio.pid_scope`, not just the
  same host name, which containers on several machines share) is taken over with a warning. A
  lock from another machine cannot be checked and is refused (the message says which file to
  remove). A lock of this very process is refused while its claim is live (another thread
  training into the same folder) and released only by the claim that made it (its token);
- a ``model/`` that holds anything but an export's files is refused (every run replaces it),
  and so are a ``train_log.csv`` or ``val_log.csv`` that are not a run's logs before a new run
  (also ``overwrite``, or ``resume`` without a checkpoint) replaces them: the folder is the
  user's, not a run's;
- temporary files a killed checkpoint write left (``.checkpoint.pt.<pid>.<hex>.tmp``) are
  removed: the lock's owner is the only writer.

Under DDP (torchrun) only rank 0 owns the lock and checks the folder; its verdict is shared with
the other ranks, so every rank fails together instead of waiting for a partner that left.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from advprior._sync import ForkSafeLock, after_fork_in_child
from advprior.errors import RunFolderError
from advprior.fileio import (
    _named,
    _temp_name,
    parse_json,
    pid_scope,
    process_alive,
    remove_stale_temps,
)
from advprior.hub import CONFIG_NAME, MODEL_CARD_NAME, RUN_MODEL_DIR, WEIGHTS_NAME
from advprior.train import checkpoint as ckpt
from advprior.train.distributed import DistInfo, broadcast_flag

LOCK_NAME = "run.lock"
#: TensorBoard's folder: a run writes only its event files there (``events.out.tfevents.*``).
_TB_DIR = "tb"
#: What a run leaves: ``overwrite=True`` removes these when the new run starts, so that an
#: interrupted new run never leaves the old checkpoint (which ``--resume`` would continue),
#: model, TensorBoard events or logs looking like its own (a GMM writes no CSV logs, so a GAN's
#: would stay beside its model).
_EARLIER_RUN = (RUN_MODEL_DIR, _TB_DIR, "train_log.csv", "val_log.csv", "gmm_fit.json")
#: The CSV logs a new run writes from scratch (over a file of that name, with or without
#: ``overwrite``). Every row of them, header included, starts with the ``step`` column.
_RUN_LOGS = ("train_log.csv", "val_log.csv")
#: The prefix of the folders an export writes before moving them into place
#: (``advprior.train.export.STAGING_PREFIX``; not imported: export imports the loop).
_EXPORT_STAGING = f".{RUN_MODEL_DIR}.export."
#: Tokens of the locks this process holds now (claims not yet released).
_LIVE_CLAIMS: set[str] = set()
_CLAIMS_LOCK = ForkSafeLock()


@after_fork_in_child
def _forget_parent_claims() -> None:
    """A forked child holds none of its parent's run locks (and must not release them)."""
    _LIVE_CLAIMS.clear()


class RunFolder:
    """A claimed run folder; :meth:`release` removes the lock (only if it is still ours)."""

    def __init__(
        self, out: Path, lock: Path | None, overwrite: bool = False, token: str | None = None
    ) -> None:
        self.out = out
        self.lock = lock
        self.overwrite = overwrite
        self.token = token

    def start_over(self) -> None:
        """Remove the earlier run's files if this run was claimed with ``overwrite=True``.

        Called by a trainer once nothing but training itself can fail any more (data read,
        models built), so that an ``overwrite`` run refused at its start loses nothing. Only
        the lock's owner (rank 0) removes; once done, later calls do nothing.
        """
        if not self.overwrite or self.lock is None:
            return
        self.overwrite = False
        (self.out / ckpt.CHECKPOINT_NAME).unlink(missing_ok=True)
        for name in _EARLIER_RUN:
            path = self.out / name
            if name == _TB_DIR and path.is_dir():
                _remove_tb_events(path)
            elif path.is_dir():
                shutil.rmtree(path)
            elif path.is_file():
                path.unlink()

    def release(self) -> None:
        if self.lock is None:
            return
        try:
            owner = _read_lock(self.lock)
            if self.token is not None and owner.get("token") == self.token:
                self.lock.unlink()
        except OSError:
            pass
        with _CLAIMS_LOCK:
            _LIVE_CLAIMS.discard(self.token or "")
        self.lock = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _read_lock(lock: Path) -> dict[str, Any]:
    try:
        # parse_json: nesting too deep is a ValueError too (json's RecursionError escaped)
        data = parse_json(lock.read_bytes(), lock)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _create_lock(lock: Path, token: str) -> bool:
    """Atomically create ``lock`` with our identity; False if it already exists."""
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "scope": pid_scope(),
        "token": token,
        "started": time.time(),
    }
    # unique per host, process and call: two hosts (NFS) of the same pid, or two threads of one
    # process, wrote one name, and each linked the other's identity into the lock
    tmp = _temp_name(lock)
    text = json.dumps(info)
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, lock)  # fails if the lock exists: creation with full content, atomically
        return True
    except FileExistsError:
        return False
    except OSError:
        # no hard links here (FAT/exFAT drives, some network shares): exclusive creation, then
        # the content (a claim racing into that instant may take the empty lock for stale)
        return _create_lock_exclusive(lock, text)
    finally:
        tmp.unlink(missing_ok=True)


def _same_machine(owner: dict[str, Any]) -> bool:
    """Whether the lock's pid can be checked here: same :func:`pid_scope` (locks of advprior
    0.2 and older record only the host name)."""
    if "scope" in owner:
        return owner["scope"] == pid_scope()
    return owner.get("host") in (None, socket.gethostname())


def _create_lock_exclusive(lock: Path, text: str) -> bool:
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


def _take_lock(out: Path, token: str) -> Path:
    lock = out / LOCK_NAME
    remove_stale_temps(lock)  # a claim killed between writing its temp file and linking it
    for _ in range(5):
        if _create_lock(lock, token):
            return lock
        try:
            owner = _read_lock(lock)
        except FileNotFoundError:
            continue  # its owner released it between our attempt and this read: try again
        if owner.get("token") == token:
            # ours after all: on NFS a link whose reply was lost is retried and fails with
            # EEXIST although the first attempt made the lock
            return lock
        pid, host = owner.get("pid"), owner.get("host")
        if not _same_machine(owner):
            raise RunFolderError(
                f"{out} is locked by pid {pid} on host {host!r} ({lock}); a process on another "
                "host cannot be checked from here: if that run is over (a preempted or requeued "
                "job, a container restarted under another host name), remove the lock file and "
                "run again with --resume"
            )
        with _CLAIMS_LOCK:
            ours_live = pid == os.getpid() and owner.get("token") in _LIVE_CLAIMS
        if ours_live:
            raise RunFolderError(
                f"{out} is in use by another training run of this process (pid {pid}, another "
                f"thread; lock {lock}); wait for it to finish or use another --out"
            )
        if isinstance(pid, int) and pid != os.getpid() and process_alive(pid):
            raise RunFolderError(
                f"{out} is in use by another training process (pid {pid}, lock {lock}); wait "
                "for it to finish or use another --out"
            )
        # stale: the owner is gone (or the lock is unreadable); move it aside atomically so
        # that two processes taking over cannot both succeed
        aside = lock.with_name(f".{lock.name}.stale.{os.getpid()}.{pid_scope()}.{token}")
        try:
            os.rename(lock, aside)
        except FileNotFoundError:
            continue  # someone else moved it; try to create again
        if _read_lock(aside) != owner:  # a fresh lock was created meanwhile: put it back
            os.rename(aside, lock)
            continue
        aside.unlink(missing_ok=True)
        warnings.warn(
            f"{out}: took over a stale lock of pid {pid} (no such process any more)",
            stacklevel=3,
        )
    raise RunFolderError(f"could not lock {out}: the lock file keeps changing ({lock})")


def _remove_tb_events(tb: Path) -> None:
    """Remove a run's TensorBoard event files from ``tb``, and ``tb`` itself if that empties it.

    Not the whole folder: ``--overwrite`` into a folder that was not a run (no checkpoint) used
    to delete a ``tb/`` of the user's own, with whatever else it held.
    """
    for events in tb.glob("events.out.tfevents.*"):
        if events.is_file():
            events.unlink()
    try:
        tb.rmdir()
    except OSError:
        pass  # not empty: the rest is not ours


def _earlier_model_type(out: Path) -> str | None:
    """The ``model_type`` of the run's exported ``model/config.json``, if it has one."""
    config = out / RUN_MODEL_DIR / "config.json"
    try:
        found = parse_json(config.read_bytes(), config).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return found if isinstance(found, str) else None


#: What ``save_pretrained`` writes into a run's ``model/``.
_MODEL_FILES = frozenset((CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME))


def _foreign_in_model_dir(path: Path) -> list[str]:
    """Names in ``path`` (a run's ``model/``) that no export wrote: ``["model"]`` for a file.

    A ``model/`` was taken for an earlier run's export whatever it held, and the refusal
    advised ``--overwrite``, which deleted it: a project folder's own ``model/`` (body model
    files, say) went with it.
    """
    if not path.exists():
        return []
    if not path.is_dir():
        return [path.name]
    # hidden entries and Windows' thumbnails are what a file browser or Jupyter leaves in a
    # folder it showed (.DS_Store, .ipynb_checkpoints), not the user's work
    return sorted(
        p.name
        for p in path.iterdir()
        if p.name not in _MODEL_FILES and not p.name.startswith(".") and p.name != "Thumbs.db"
    )


def _foreign_log(path: Path) -> bool:
    """Whether ``path`` is something other than a run's CSV log (absent or empty: it is not).

    A folder without a checkpoint or ``model/`` may still be someone's: ``--out`` pointed at a
    folder that holds its own ``train_log.csv`` had it replaced by the new run's log, unasked.
    """
    if not path.exists():
        return False
    if not path.is_file():
        return True
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            head = fh.readline(64)
    except (OSError, UnicodeDecodeError):
        return True
    return head != "" and not head.startswith("step,")


def _check_and_lock(
    out: Path, resume: bool, overwrite: bool, model_type: str | None, token: str
) -> Path:
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"run folder {out} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        # named as every write is: "[Errno 20] Not a directory: 'a/run'" said neither what
        # was being made nor that a, on the way, is a file
        raise _named(err, out) from None
    # live before the lock exists: another thread of this process reading the new lock must
    # find its claim live, never take it for a stale one of this pid
    with _CLAIMS_LOCK:
        _LIVE_CLAIMS.add(token)
    try:
        lock = _take_lock(out, token)
    except BaseException:
        with _CLAIMS_LOCK:
            _LIVE_CLAIMS.discard(token)
        raise
    try:
        checkpoint = out / ckpt.CHECKPOINT_NAME
        if checkpoint.is_file() and not resume and not overwrite:
            raise RunFolderError(
                f"{out} already holds a training checkpoint ({checkpoint.name}); pass "
                "--resume (resume=True) to continue it or --overwrite (overwrite=True) to "
                "start over"
            )
        foreign = _foreign_in_model_dir(out / RUN_MODEL_DIR)
        if foreign:
            # every run writes model/ (--resume too: its export replaces the folder)
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            shown = ", ".join(foreign[:3]) + more
            raise RunFolderError(
                f"{out / RUN_MODEL_DIR} holds what is not an exported advprior model ({shown}), "
                "and a run writes its model there: move it away, or choose another --out"
            )
        exported = (out / RUN_MODEL_DIR).is_dir()
        if exported and not checkpoint.is_file() and not resume and not overwrite:
            # a finished run without a checkpoint (the GMM's fit) is as much a run to protect
            raise RunFolderError(
                f"{out} already holds an exported model ({RUN_MODEL_DIR}/) of an earlier run; pass "
                "--overwrite (overwrite=True) to replace it (--resume: to continue or refit it), "
                "or choose another --out"
            )
        # a new run (also --resume without a checkpoint) writes its logs from scratch; a GMM
        # fit writes none, but --overwrite removes them
        starts_anew = not (resume and checkpoint.is_file())
        if starts_anew and (overwrite or model_type != "gmm"):
            for name in _RUN_LOGS:
                if _foreign_log(out / name):
                    raise RunFolderError(
                        f"{out / name} is not a log of an advprior run, and a new run would "
                        "replace it: move it away, or choose another --out"
                    )
        if resume and model_type is not None:
            # --resume continues the run that is there; training another model type into it
            # would replace that run's exported model/ (data loss), not continue anything
            found = _earlier_model_type(out)
            if found is None and model_type == "gmm" and checkpoint.is_file():
                found = "network"  # a GMM fit writes no checkpoint
            if found is not None and found != model_type:
                raise RunFolderError(
                    f"{out} holds a {found} run, not a {model_type} one: --resume continues "
                    f"the run that is there; use its model type, --overwrite to replace it, or "
                    "another --out"
                )
        # we own the folder: any checkpoint temp file not ours was left by a killed write
        for stale in remove_stale_temps(checkpoint, owner=True):
            warnings.warn(
                f"removed {stale.name}, left by an interrupted checkpoint write", stacklevel=3
            )
        # and so was any export folder not yet moved into place (or not yet removed)
        for stale in out.glob(f"{_EXPORT_STAGING}*"):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        RunFolder(out, lock, token=token).release()
        raise
    return lock


def claim_run_folder(
    out: str | os.PathLike,
    *,
    resume: bool,
    overwrite: bool,
    dist: DistInfo | None = None,
    model_type: str | None = None,
) -> RunFolder:
    """Check and lock ``out`` for a training run (see the module docstring). With
    ``model_type`` (``"gan"``, ``"vae"``, ``"gmm"``), ``resume`` refuses a folder whose run is
    of another type.

    Raises:
        ValueError: both ``resume`` and ``overwrite``.
        RunFolderError: a checkpoint is there (and neither flag), or another process holds it.
    """
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other")
    out = Path(out)
    dist = dist or DistInfo()
    lock, error = None, None
    token = secrets.token_hex(16)
    if dist.is_main:
        try:
            lock = _check_and_lock(out, resume, overwrite, model_type, token)
        except (RunFolderError, OSError) as err:
            error = err
    failed = broadcast_flag(error is not None, dist)  # every rank learns rank 0's verdict
    if error is not None:
        raise error
    if failed:
        raise RunFolderError(f"rank 0 could not claim the run folder {out}")
    return RunFolder(out, lock, overwrite=overwrite, token=token)
