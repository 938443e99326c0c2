"""Reading arrays from an untrusted ``.npz`` (AMASS motions, dataset files) without surprises.

``np.load`` on an npz trusts the archive: a member that would decompress into gigabytes is read
whole, a member that is not an ``.npy`` comes back as raw ``bytes``, and an ``.npy`` header may
declare a shape whose allocation alone exhausts memory (``(10**12, 63)`` in a 1 KB file).
:func:`advprior.fileio.check_zip_members` (called by the readers before ``np.load``) refuses zip
bombs before anything is read, and :func:`read_npz_array` reads the member's ``.npy`` header
first, so each of these is an error naming the file and the key.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

_NPY_MAGIC = b"\x93NUMPY"


def read_npy_header(fh: BinaryIO, size: int) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, offset of the data)`` from the ``.npy`` header at the start of ``fh``,
    an array file or member of ``size`` bytes. The header's declared length is checked against
    ``size`` before numpy reads it: numpy reads it into one buffer of that length, so a 13-byte
    file declaring a 4 GiB header was a 4 GiB allocation (a bare ``MemoryError`` under a memory
    limit). Raises ``ValueError`` (also not an ``.npy``) or ``EOFError``."""
    version = np.lib.format.read_magic(fh)
    width = 2 if version == (1, 0) else 4  # 2.0 and 3.0: a 4-byte header length
    length = int.from_bytes(fh.read(width), "little")
    if fh.tell() + length > size:
        raise ValueError(f"its header declares {length} bytes, more than the {size} it has")
    fh.seek(0)
    np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    else:  # a 3.0 header (UTF-8) is read as 2.0's (latin-1)
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    return shape, dtype, fh.tell()


def read_npz_array(
    f: np.lib.npyio.NpzFile,
    key: str,
    error: Callable[[str], Exception],
) -> np.ndarray:
    """The array ``key`` of the open npz ``f``, checked before it is read.

    Args:
        f: an open npz whose members were checked for zip bombs
            (:func:`advprior.fileio.check_zip_members`).
        key: the array's name (the member ``key.npy``).
        error: makes the exception to raise from a message that names the key (callers add the
            file, e.g. ``lambda m: ValueError(f"{path}: {m}")``).

    Refused: a member that does not start with the ``.npy`` magic (``np.load`` would return its
    bytes), an unreadable header, object arrays (pickles), and a header whose shape needs more
    bytes than the member holds (a small file declaring a huge array).
    """
    names = f.zip.namelist()
    member = key if key in names else f"{key}.npy"
    try:
        info = f.zip.getinfo(member)
        with f.zip.open(member) as fh:
            magic = fh.read(len(_NPY_MAGIC))
            if magic == _NPY_MAGIC:
                fh.seek(0)
                shape, dtype, header_end = read_npy_header(fh, info.file_size)
    except KeyError:
        raise error(f"no array {key!r}") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, SyntaxError) as err:
        raise error(f"{key!r} has an unreadable .npy header ({err})") from None
    if magic != _NPY_MAGIC:
        raise error(f"{key!r} is not a .npy array (member {member!r})")
    if dtype.hasobject:
        raise error(f"{key!r} holds Python objects ({dtype}); only plain arrays are read")
    need = math.prod(shape) * dtype.itemsize
    have = info.file_size - header_end
    if need > have:
        raise error(
            f"{key!r} declares shape {shape} of {dtype} ({need} bytes) but its member holds "
            f"{have} bytes (damaged or crafted file)"
        )
    try:
        return f[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise error(f"{key!r} cannot be read ({err})") from None
