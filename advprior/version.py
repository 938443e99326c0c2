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
