"""advprior: an adversarially learned pose prior for SMPL, SMPL-H and SMPL-X.

Importing the package is light (torch only); body models, fitting and heads load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from advprior import _moved
from advprior.hub import load_pretrained
from advprior.interface import Prior
from advprior.latent import LatentSpace
from advprior.prior import LatentPose, PosePrior
from advprior.version import __version__

_moved.install()

# Names owned by other modules, imported when first touched so `import advprior` stays light.
_LAZY = {
    "LatentHead": "advprior.head",
    "load_body_model": "advprior.body",
    "fit_keypoints": "advprior.fitting",
}

# The lazy names stay out of __all__ so `from advprior import *` stays light too.
__all__ = ["LatentPose", "LatentSpace", "PosePrior", "Prior", "__version__", "load_pretrained"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'advprior' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
