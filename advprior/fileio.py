"""Atomic file writes, shared by every module that writes files, and the one file checksum.

A file is written to a temporary name in its destination folder and moved into place with
``os.replace``, so readers see either the old file or the complete new one, never a partial
write. Temporary files are created with mode 0666 less the umask (``tempfile.mkstemp`` would
leave them 0600, and ``os.replace`` keeps that).

A process killed outright (SIGKILL, power loss) cannot remove its temporary file
(``.<name>.<pid>.<scope>.<random>.tmp``); the next write to the same path removes those whose
process is gone (:func:`remove_stale_temps`), so they never pile up. ``<scope>`` names the pid
space the writer ran in (:func:`pid_scope`: host name, boot and pid namespace), so that writers
on several hosts sharing a folder (NFS) never take each other's pids for their own: a temporary
file of another scope cannot be checked and is removed only once it is older than
:data:`STALE_TEMP_AGE`.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import io
import json
import os
import pickle
import pickletools
import re
import secrets
import shutil
import socket
import stat
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def expand_home(path: str | os.PathLike) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded where that user exists, else as is.

    Not ``Path.expanduser``, which raises RuntimeError("Could not determine home directory")
    for a ``~user`` it cannot find, which is what a Windows-style ``~\\models\\x`` is here."""
    return Path(os.path.expanduser(os.fspath(path)))


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine."""
    if sys.platform == "win32":
        # not os.kill(pid, 0): on Windows signal 0 is CTRL_C_EVENT, sent to a console process
        # group (the caller's own when pid leads none), and any other signal terminates
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _windows_process_alive(pid: int) -> bool:
    """``process_alive`` on Windows: the process can be opened and has no exit code yet."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.OpenProcess.restype = wintypes.HANDLE
    kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    query_limited_information, still_active, access_denied = 0x1000, 259, 5
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return ctypes.get_last_error() == access_denied  # alive, owned by someone else
    try:
        code = wintypes.DWORD()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True  # cannot tell: never take a live writer's file
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


#: Age in seconds (by modification time) after which a temporary file written from another
#: host (another :func:`pid_scope`), whose writer cannot be asked whether it still runs, is
#: taken for a killed write's leftover: a day. A live writer's file is written to as it goes,
#: and no write of advprior's takes a day.
STALE_TEMP_AGE = 24 * 3600.0

_SCOPE: list[str] = []


def pid_scope() -> str:
    """12 hex digits naming the space this process's pid means something in: its host name,
    and on Linux its boot (``/proc/sys/kernel/random/boot_id``) and pid namespace (containers
    on one machine have their own pids, and hosts of a cluster may share names). Two processes
    with the same scope can check each other's pids (:func:`process_alive`); others cannot."""
    if not _SCOPE:
        parts = [socket.gethostname()]
        try:
            with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
                parts.append(fh.read().strip())
            parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
        except OSError:
            pass
        _SCOPE.append(hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12])
    return _SCOPE[0]


def remove_stale_temps(path: str | os.PathLike, *, owner: bool = False) -> list[Path]:
    """Remove the temporary files a killed writer of ``path`` left beside it; returns what was
    removed. A file of this machine (this :func:`pid_scope`) is stale when its process no
    longer runs; one of another host when it is older than :data:`STALE_TEMP_AGE` (its writer
    cannot be asked). Files of this process (another thread's write) are never removed.
    ``owner``: the caller is the only legitimate writer of ``path`` (it holds a lock, checked
    across hosts), so every temp file of another process is stale, whether or not that pid has
    been reused since, or runs on another host.

    Names without a scope (advprior 0.2 and older: ``.<name>.<pid>.<random>.tmp``) are taken
    for this machine's, as those versions did."""
    path = Path(path)
    name = re.escape(path.name)
    pattern = re.compile(rf"^\.{name}\.(\d+)\.(?:([0-9a-f]{{12}})\.)?[0-9a-f]+\.tmp$")
    removed: list[Path] = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    me, here = os.getpid(), pid_scope()
    for entry in names:
        match = pattern.match(entry)
        if not match:
            continue
        pid, scope = int(match.group(1)), match.group(2) or here
        if pid == me and scope == here:
            continue
        if not owner:
            if scope == here:
                if process_alive(pid):
                    continue
            else:
                try:
                    age = time.time() - os.stat(path.parent / entry).st_mtime
                except OSError:
                    continue
                if age < STALE_TEMP_AGE:
                    continue
        try:
            os.unlink(path.parent / entry)
            removed.append(path.parent / entry)
        except FileNotFoundError:
            pass
        except OSError as err:
            warnings.warn(f"cannot remove stale temporary file {entry}: {err}", stacklevel=2)
    return removed


#: Errors of a write itself (not of opening or reading anything): reworded to name the file.
_WRITE_ERRNOS = {
    e for e in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS) if e is not None
}


def _named(err: OSError, path: Path) -> OSError:
    """``err`` reworded to name the destination, not the temporary file (same type, errno)."""
    reason = err.strerror or str(err)
    blocker = next((p for p in path.parents if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        reason = f"{blocker} is a file, not a folder"
    new = type(err)(f"cannot write {path}: {reason}")
    new.errno = err.errno
    return new


def is_stream(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an existing device, named pipe or socket, also through a symlink
    (``/dev/null``, ``/dev/stdout``, a FIFO a pipeline reads from), or this process's stdout or
    stderr whatever it is (``--out /dev/stdout > file``): written in place, never replaced."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return False
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return True
    return is_standard_stream(path, st)


def is_standard_stream(path: str | os.PathLike, st: os.stat_result | None = None) -> bool:
    """Whether ``path`` is the file this process's stdout or stderr writes to (``/dev/stdout``,
    or the file the shell redirected stdout to)."""
    try:
        st = st or os.stat(path)
    except (OSError, ValueError):
        return False
    for stream in (sys.stdout, sys.stderr):
        try:
            if os.path.samestat(st, os.fstat(stream.fileno())):
                return True
        except (AttributeError, OSError, ValueError):
            continue
    return False


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, naming ``path``, if ``path`` cannot be written (its folder is created): a
    probe temporary file is created and removed beside it. Returns ``path``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder")
    if is_stream(path):
        if not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, f"cannot write {path}: Permission denied")
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = _temp_name(path)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.unlink(probe)
    except OSError as err:
        raise _named(err, path) from None
    return path


def _temp_name(path: Path) -> Path:
    """A temporary name beside ``path``, unique per host (:func:`pid_scope`), process and call
    (64 random bits): ``.<name>.<pid>.<scope>.<random>.tmp``."""
    return path.parent / f".{path.name}.{os.getpid()}.{pid_scope()}.{secrets.token_hex(8)}.tmp"


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (its folder is created); on success it replaces
    ``path`` atomically, on error it is removed and ``path`` is left untouched. Errors creating
    the temporary file name ``path``. A device, named pipe or socket (:func:`is_stream`) is
    yielded itself, to be written in place."""
    path = Path(path)
    if is_stream(path):
        # `--out /dev/null`, `/dev/stdout`, a FIFO: copied into once complete. Replacing it put
        # a regular file where the device was (as root, in a container: /dev/null itself), or
        # failed with "Permission denied" on /dev. The temporary file is a regular one because
        # writers seek (zipfile, on /dev/null, computed offsets from a tell() stuck at 0).
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(name)
        try:
            yield tmp
            try:
                with open(tmp, "rb") as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except OSError as err:
                raise _named(err, path) from None
        finally:
            _remove_temp(tmp)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        tmp = _temp_name(path)
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise _named(err, path) from None
    try:
        try:
            yield tmp
        except OSError as err:
            # a write that failed partway (a full disk, a quota): say which file, as for the
            # other failures; other OSErrors of the caller's block are not about this file
            if err.errno in _WRITE_ERRNOS:
                raise _named(err, path) from None
            raise
        try:
            os.replace(tmp, path)
        except PermissionError as err:
            new = _named(err, path)
            if sys.platform == "win32":
                # Windows refuses to replace a file another process holds open
                new = PermissionError(
                    f"{new} (is it open in another program? close it and try again)"
                )
                new.errno = err.errno
            raise new from None
        except OSError as err:
            raise _named(err, path) from None
    finally:
        _remove_temp(tmp)


def _remove_temp(tmp: Path) -> None:
    """Remove a temporary file if it is there, without hiding the error that left it: on
    Windows a virus scanner or indexer may still hold it open, and the caller must hear about
    the write that failed, not about its leftover (which the next write removes once this
    process has ended, :func:`remove_stale_temps`)."""
    try:
        if os.path.exists(tmp):
            os.unlink(tmp)
    except OSError as err:
        warnings.warn(f"cannot remove temporary file {tmp}: {err}", stacklevel=3)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Create ``path`` with ``write(binary_file_handle)``, atomically; returns ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _write_npz(fh: BinaryIO, arrays: dict[str, Any]) -> None:
    """The layout of ``np.savez`` (stored ``KEY.npy`` members, zip64, every member stamped
    1980-01-01 as zipfile does by default), with no pickled members: ``np.savez`` pickles object
    arrays, which every reader here refuses (``allow_pickle=False``), and numpy before 2.1 has
    no switch to stop it."""
    with zipfile.ZipFile(fh, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy")
            info.compress_type = zipfile.ZIP_STORED
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def save_npz_atomic(path: str | os.PathLike, arrays: dict[str, Any]) -> Path:
    """Write the arrays to ``path`` as an ``.npz`` (``np.load`` reads it), atomically; no
    ``.npz`` suffix is appended. The same arrays in the same order give the same bytes. Object
    arrays are refused (``ValueError``, the old file kept): nothing that reads them back may
    unpickle."""
    return write_atomic(path, lambda fh: _write_npz(fh, arrays))


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Deepest nesting of containers a pickle read here may build; advprior's own checkpoints
#: nest about a dozen levels (dicts of dicts of torch's tensor-rebuild tuples).
MAX_PICKLE_DEPTH = 100


def check_pickle_shape(data: bytes, what: str) -> None:
    """Refuse, before any unpickler runs, a pickle whose objects nest deeper than
    :data:`MAX_PICKLE_DEPTH` or that expand (shared objects counted at every use) to far more
    objects than it has opcodes. Both only show when the objects are built: a tuple nested a
    million deep crashes the interpreter when it is hashed or printed (torch's own
    ``weights_only`` unpickler included), one shared 64 levels deep (a few hundred bytes) takes
    2**64 steps. The opcodes are only read (:func:`pickletools.genops`); nothing is built.
    Raises ``ValueError`` naming ``what``."""
    mark = object()
    problem = ""
    stack: list[Any] = []
    memo: dict[Any, tuple[int, int]] = {}
    ops = 0
    cap = 2**62
    in_place = {"SETITEMS", "APPENDS", "ADDITEMS", "SETITEM", "APPEND", "BUILD"}
    try:
        for op, arg, _ in pickletools.genops(data):
            ops += 1
            name = op.name
            if name == "STOP":
                break
            if name == "MARK":
                stack.append(mark)
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif name == "DUP":
                stack.append(stack[-1])
            else:
                items: list[tuple[int, int]] = []
                before = op.stack_before
                if pickletools.markobject in before:
                    at = len(stack) - 1 - stack[::-1].index(mark)
                    items = stack[at + 1 :]
                    del stack[at:]
                    count = before.index(pickletools.markobject)
                else:
                    count = len(before)
                pre = [stack.pop() for _ in range(count)][::-1]
                if name in in_place:  # the container below keeps its place and grows
                    (depth, size), rest = pre[0], pre[1:] + items
                    node = (
                        max(depth, 1 + max((d for d, _ in rest), default=0)),
                        min(size + sum(n for _, n in rest), cap),
                    )
                    stack.append(node)
                else:
                    parts = pre + items
                    node = (
                        1 + max((d for d, _ in parts), default=-1),
                        min(1 + sum(n for _, n in parts), cap),
                    )
                    stack.extend([node] * len(op.stack_after))
                if node[0] > MAX_PICKLE_DEPTH:
                    problem = f"objects nested deeper than {MAX_PICKLE_DEPTH}"
                    break
                if node[1] > 16 * ops + 10**6:
                    problem = (
                        f"{ops} pickle opcodes expand to more than {16 * ops + 10**6} objects "
                        "(shared objects nested into an exponential structure)"
                    )
                    break
    except (ValueError, IndexError, KeyError, EOFError, TypeError, AttributeError) as err:
        # a malformed stream: unknown opcode, a mark or memo entry that is not there
        raise ValueError(f"{what}: not a readable pickle ({type(err).__name__}: {err})") from None
    if problem:
        raise ValueError(f"{what}: {problem}")


class _Py2Str(str):
    """An ASCII ``str`` of the caller's object, pickled as Python 2 pickled its ``str``."""


class _Py2Pickler(pickle._Pickler):
    """The pure-Python pickler, writing :class:`_Py2Str` with Python 2's string opcodes."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj: _Py2Str) -> None:
        data = obj.encode("ascii")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2_str


def _as_py2_strings(obj: object) -> object:
    """``obj`` with every ASCII ``str`` in its dicts, lists and tuples marked as :class:`_Py2Str`
    (numpy's own strings, made while pickling an array, are not reached and stay as they are)."""
    if type(obj) is str:
        return _Py2Str(obj) if obj.isascii() else obj
    if type(obj) is dict:
        return {_as_py2_strings(k): _as_py2_strings(v) for k, v in obj.items()}
    if type(obj) is list:
        return [_as_py2_strings(v) for v in obj]
    if type(obj) is tuple:
        return tuple(_as_py2_strings(v) for v in obj)
    return obj


def portable_pickle(obj: object) -> bytes:
    """A protocol-2 pickle of plain numpy arrays and containers that every numpy reads, with
    its strings as in SMPL's and SMPLify's own (Python 2) files.

    numpy 2 pickles arrays through ``numpy._core.multiarray``, a module that numpy before 1.26
    does not have (``ModuleNotFoundError: numpy._core`` in the older environments that SMPLify
    and SPIN-style code still run in). Those globals are written under numpy 1.x's
    ``numpy.core`` names, as SMPL's and SMPLify's own files have them; numpy 2 resolves those
    names for old pickles. Protocol 2 is what those files use (Python 2 could read them).

    ASCII strings of ``obj`` (dict keys such as ``"covars"``, values such as ``"lrotmin"``)
    are written as Python 2 wrote its ``str``, as in those files: ``pickle.load`` gives ``str``
    by default and with ``encoding="latin1"``, and ``bytes`` with ``encoding="bytes"``, which
    code written for those files indexes with (``gmm[b"covars"]``).
    """
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(_as_py2_strings(obj))
    data = buf.getvalue()
    out, last = bytearray(), 0
    for op, arg, pos in pickletools.genops(data):
        if op.name != "GLOBAL":
            continue
        module, name = arg.split(" ", 1)
        if module == "numpy._core" or module.startswith("numpy._core."):
            legacy = "numpy.core" + module[len("numpy._core") :]
            out += data[last:pos] + b"c" + f"{legacy}\n{name}\n".encode("ascii")
            last = pos + len(f"c{module}\n{name}\n")
    out += data[last:]
    return bytes(out)


#: Members above this uncompressed size are checked for a bomb's compression ratio.
ZIP_CHECK_ABOVE = 64 * 2**20
#: Largest uncompressed / compressed size of a large member. Arrays of real data compress a few
#: times at most (np.savez stores them uncompressed: ratio 1); a zip bomb is ~1000.
ZIP_MAX_RATIO = 100


def check_zip_members(path: str | os.PathLike, what: str = "file") -> None:
    """Refuse a zip (``.npz``, TorchScript archive) that would decompress into a memory bomb.

    Reading a member allocates its uncompressed size, which the archive declares; a small file
    can declare gigabytes of zeros. A member is refused when it is larger than
    :data:`ZIP_CHECK_ABOVE` and more than :data:`ZIP_MAX_RATIO` times its compressed size, and
    so is an archive whose members declare more compressed bytes than the file holds: numpy
    allocates a member's declared size before zipfile finds the data missing (a 400-byte file
    declaring a 128 GiB stored member was numpy's MemoryError). Raises ``ValueError`` naming the
    file and the member; not a zip or unreadable: nothing to check here (the reader says so).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
        size = os.stat(path).st_size
    except (OSError, zipfile.BadZipFile, ValueError):
        return
    for info in members:
        if info.compress_size > size:
            raise ValueError(
                f"{path}: {what} member {info.filename!r} declares {info.compress_size} stored "
                f"bytes in a file of {size}: not read (truncated or crafted)"
            )
        big = info.file_size > ZIP_CHECK_ABOVE
        if big and info.file_size > ZIP_MAX_RATIO * max(info.compress_size, 1):
            raise ValueError(
                f"{path}: {what} member {info.filename!r} would decompress to "
                f"{info.file_size / 2**20:.0f} MiB from {info.compress_size / 2**20:.1f} MiB "
                f"(over {ZIP_MAX_RATIO}x): not read (a zip bomb?)"
            )
    # the same for the members together: many members each just under the size above
    total = sum(info.file_size for info in members)
    packed = sum(info.compress_size for info in members)
    if packed > size:  # members do not overlap in an archive a zip writer made
        raise ValueError(
            f"{path}: {what} of {len(members)} members declares {packed} stored bytes in a "
            f"file of {size}: not read (truncated or crafted)"
        )
    if total > ZIP_CHECK_ABOVE and total > ZIP_MAX_RATIO * max(packed, 1):
        raise ValueError(
            f"{path}: {what} of {len(members)} members would decompress to "
            f"{total / 2**20:.0f} MiB from {packed / 2**20:.1f} MiB (over {ZIP_MAX_RATIO}x): "
            "not read (a zip bomb?)"
        )


# A JSON file advprior reads (config.json, weights_manifest.json, export metadata) is a few KiB;
# anything this large is not one (and a symlink to /dev/zero must not fill the memory).
JSON_MAX_BYTES = 16 * 2**20


def read_regular_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of ``path``, which must be a regular file (or a link to one): a FIFO would
    block for ever and a device such as ``/dev/zero`` fill the memory. Raises ``OSError``
    (``EINVAL`` for anything else than a regular file)."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, f"{path} is not a regular file")
    return Path(path).read_bytes()


def decode_text(data: bytes) -> str:
    """UTF-8 ``data``, or UTF-16 when it starts with a UTF-16 byte-order mark (what Windows
    PowerShell 5's ``Out-File`` and ``>`` write); a leading byte-order mark is dropped. Raises
    ``UnicodeDecodeError``."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")  # the mark says the byte order and is dropped
    return data.decode("utf-8-sig")


class _DuplicateKey(Exception):
    """A JSON object that names a key twice (the key is the argument)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return found


def parse_json(data: str | bytes, source: object, error: type[Exception] = ValueError) -> Any:
    """``json.loads`` of UTF-8 ``data`` where every decoding problem (bad syntax, bad UTF-8,
    nesting too deep, an integer of more digits than Python converts) is one ``error`` naming
    ``source`` (a file name, or e.g. ``"model.onnx metadata"``). A leading byte-order mark, which
    .NET and PowerShell tools write into UTF-8 files, and a trailing Ctrl-Z, the end-of-file mark
    of DOS-era tools (``copy /a``), are dropped (``json.loads`` refuses both); UTF-16 with its
    byte-order mark (Windows PowerShell 5's ``Out-File`` and ``>``) is read too. A key given
    twice in one object is an ``error``: ``json`` keeps the last, other readers the first, so
    a file could say one thing to a checker and another to advprior."""
    try:
        text = decode_text(data) if isinstance(data, bytes) else data.removeprefix("\ufeff")
        return json.loads(text.rstrip("\x1a"), object_pairs_hook=_unique_keys)
    except _DuplicateKey as err:
        raise error(f"{source}: the key {err.args[0]!r} appears twice in one object") from None
    except RecursionError:
        raise error(f"{source} is not valid JSON: nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError, the int-digits limit
        reason = str(err).split("; use sys.set_int_max_str_digits", 1)[0]
        raise error(f"{source} is not valid JSON: {reason}") from None


def read_json(
    path: str | os.PathLike,
    error: type[Exception] = ValueError,
    max_bytes: int | None = None,
    what: str = "",
) -> Any:
    """Read and parse the UTF-8 JSON file ``path`` (see :func:`parse_json`), at most
    ``max_bytes`` (default :data:`JSON_MAX_BYTES`) of it. A missing file is
    ``FileNotFoundError``; other read failures keep their ``OSError`` type and errno and name
    ``path``; too large or not JSON: ``error``. ``what`` (e.g. ``"weights manifest"``)
    precedes the path in messages."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    max_bytes = JSON_MAX_BYTES if max_bytes is None else max_bytes
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
        if regular:
            with open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise
    except OSError as err:
        new = type(err)(err.errno, f"cannot read {label}: {err.strerror or err}")
        raise new from err
    if not regular:
        # a FIFO blocks in open() until someone writes to it; a device never ends
        raise error(f"{label} is not a regular file: not a JSON file advprior reads")
    if len(data) > max_bytes:
        raise error(f"{label} is larger than {max_bytes} bytes: not a JSON file advprior reads")
    return parse_json(data, label, error)
