"""Wildcards in file arguments, for shells that leave them to the program.

cmd.exe and PowerShell pass ``out\\*_keypoints.json`` to a program as typed (a POSIX shell
expands it, or passes it on unchanged when nothing matches, or when it is quoted).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

_MAGIC = ("*", "?", "[")


def expand_wildcards(paths: list[str] | list[Path], what: str = "file") -> list:
    """``paths`` with each argument that does not exist as written and holds ``*``, ``?`` or
    ``[`` replaced by its matches, sorted by their text (OpenPose's zero-padded frame numbers
    sort into frame order); arguments keep their type (``str`` or ``Path``).

    Raises ``FileNotFoundError`` naming a pattern that matches nothing."""
    out: list = []
    for value in paths:
        text = os.fspath(value)
        if os.path.lexists(text) or not any(ch in text for ch in _MAGIC):
            out.append(value)
            continue
        matches = sorted(glob.glob(text))
        if not matches:
            raise FileNotFoundError(f"no {what} matches {text}")
        out += [Path(m) if isinstance(value, Path) else m for m in matches]
    return out
