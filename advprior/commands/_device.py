"""The ``--device`` option shared by the commands: a clear error instead of a torch traceback."""

from __future__ import annotations


def parse_device(name: str):  # -> torch.device (torch is imported lazily, like every command)
    """``torch.device(name)``; :class:`~advprior.errors.UsageError` (exit 2) for a malformed
    name or a CUDA/MPS device this machine does not have."""
    from advprior.errors import UsageError
    from advprior.tensors import check_device

    try:
        return check_device(name, "--device")
    except ValueError as err:
        raise UsageError(str(err)) from None
