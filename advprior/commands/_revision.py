"""The revision a command's weights came from, shared by ``sample`` (which records it) and
``export``, and the two options that choose it: a manifest alias loads its pinned revision
whatever ``--revision`` says (docs/core.md), so a ``--revision`` that was not used is said, not
silently dropped."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from advprior.errors import RevisionWarning


def add_hub_arguments(p: argparse.ArgumentParser) -> None:
    """``--revision`` and ``--cache-dir``: which revision of a Hub repo id, cached where."""
    p.add_argument(
        "--revision",
        default=None,
        help="Hub revision for a repo id (an alias always loads its pinned revision)",
    )
    p.add_argument("--cache-dir", type=Path, default=None, help="Hub cache directory")


def used_revision(files: Any, given: str | None, model: object, command: str) -> str:
    """The revision the resolved ``files`` came from: a manifest alias's pinned one (it wins
    over ``--revision``, docs/core.md), ``given`` for a Hub repo id, ``""`` for a local folder.
    A ``--revision`` that was not used is said on stderr: the weights are not that revision's."""
    if files.entry is not None:
        used = str(files.entry.get("revision") or "")
        why = f"{str(model)!r} is a manifest alias pinned to revision {used!r}"
    elif files.source == "hub":
        return "" if given is None else str(given)
    else:
        used, why = "", f"{model} is a local folder"
    if given is not None and str(given) != used:
        print(
            f"advprior {command}: warning: --revision {given} not used: {why} (--revision is "
            "for Hub repo ids)",
            file=sys.stderr,
        )
    return used


@contextlib.contextmanager
def revision_said_here() -> Iterator[None]:
    """Silence the library's :class:`RevisionWarning` while a command loads its weights: the
    command says an unused ``--revision`` itself, in one line (:func:`used_revision`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RevisionWarning)
        yield
