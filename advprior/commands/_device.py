"""The ``--device`` and ``--threads`` options shared by the commands: a clear error instead of a
torch traceback; a thread count that ends with the command."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a command runs, not when the parser is built
    import torch


def parse_device(name: str) -> torch.device:
    """``torch.device(name)``; :class:`~advprior.errors.UsageError` (exit 2) for a malformed
    name or a CUDA/MPS device this machine does not have."""
    from advprior.errors import UsageError
    from advprior.tensors import check_device

    try:
        return check_device(name, "--device")
    except ValueError as err:
        raise UsageError(str(err)) from None


def set_threads(args: argparse.Namespace, threads: int) -> None:
    """``torch.set_num_threads(threads)`` for this command; the count before it is kept in
    ``args.threads_before`` for :func:`advprior.cli.main` to restore when the command ends."""
    import torch

    from advprior.errors import UsageError

    if threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    if getattr(args, "threads_before", None) is None:
        args.threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
