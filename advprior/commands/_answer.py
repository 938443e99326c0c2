"""A command's one-line answer, on stdout unless stdout is where its output file went."""

from __future__ import annotations

import os
import sys


def answer(line: str, *outputs: str | os.PathLike | None) -> None:
    """Print ``line`` on stdout, or on stderr where one of ``outputs`` is stdout itself
    (``--out /dev/stdout``): its reader expects the file's bytes only."""
    from advprior.fileio import is_standard_stream

    to_stdout = any(p is not None and is_standard_stream(p) for p in outputs)
    print(line, file=sys.stderr if to_stdout else sys.stdout)
