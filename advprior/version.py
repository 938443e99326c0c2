"""The package version, in the lowest layer so that any module can record it."""

__version__ = "0.2.0"


def software_versions() -> dict[str, str]:
    """advprior's, torch's, numpy's and Python's versions, for a results file: a seed gives
    the same numbers only with the same code (and the same thread count and device type,
    which the callers record beside these)."""
    import platform

    import numpy as np
    import torch

    return {
        "advprior": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# Fallbacks for the older releases pyproject.toml admits. Every check of a dependency's version
# or of an API it added later lives here; callers ask these functions, never ``hasattr`` on
# torch themselves. docs: README.md's "Tested minimum versions".


def is_compiling() -> bool:
    """``torch.compiler.is_compiling()`` (torch >= 2.3). On older torch, dynamo's own flag:
    when ``torch._dynamo`` was never imported nothing is being compiled (importing it costs
    about a second, so it is looked up, not imported)."""
    import sys

    import torch

    check = getattr(torch.compiler, "is_compiling", None)
    if check is not None:
        return bool(check())
    dynamo = sys.modules.get("torch._dynamo")
    return dynamo is not None and bool(dynamo.is_compiling())


def is_exporting() -> bool:
    """``torch.compiler.is_exporting()`` (torch >= 2.5). Older torch has no flag for it; its
    ``torch.export`` traces with dynamo, which :func:`is_compiling` already reports."""
    import torch

    check = getattr(torch.compiler, "is_exporting", None)
    return bool(check()) if check is not None else is_compiling()
