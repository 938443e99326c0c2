"""The ``--device`` option shared by the commands: a clear error instead of a torch traceback."""

from __future__ import annotations


def parse_device(name: str):  # -> torch.device (torch is imported lazily, like every command)
    """``torch.device(name)``; :class:`~advprior.errors.UsageError` (exit 2) for a malformed
    name or a CUDA/MPS device this machine does not have."""
    import torch

    from advprior.errors import UsageError

    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise UsageError(f"--device {name!r} is not a torch device ({err})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name!r}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None:
        count = torch.cuda.device_count()
        if device.index >= count:
            raise UsageError(f"--device {name!r}: this machine has {count} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name!r}: MPS is not available on this machine")
    return device
