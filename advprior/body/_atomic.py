"""Atomic file writes: a temporary file in the destination folder, then ``os.replace``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Create ``path`` (and its folder) with ``write(fh)``; readers never see a partial file.

    The temporary file is opened with ``open(..., "xb")`` so it gets the usual permissions
    (0666 less the umask), which ``tempfile.mkstemp``'s 0600 would not.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
