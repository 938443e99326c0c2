"""advprior: an adversarially learned pose prior for SMPL, SMPL-H and SMPL-X.

Importing the package is instant: it imports no torch. Every public name loads its module (and
torch) when first touched, so ``advprior --help`` answers at once and a Ctrl-C while torch loads
reaches the command line's handler (one line, exit 130) instead of printing a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from advprior import _moved
from advprior.version import __version__

_moved.install()

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports them
    from advprior.body import load_body_model as load_body_model
    from advprior.fitting import fit_keypoints as fit_keypoints
    from advprior.head import LatentHead as LatentHead
    from advprior.hub import load_pretrained
    from advprior.interface import Prior
    from advprior.latent import LatentSpace
    from advprior.prior import LatentPose, PosePrior

# Name -> the module that owns it, imported when the name is first touched.
_LAZY = {
    "load_pretrained": "advprior.hub",
    "Prior": "advprior.interface",
    "LatentSpace": "advprior.latent",
    "LatentPose": "advprior.prior",
    "PosePrior": "advprior.prior",
    "LatentHead": "advprior.head",
    "load_body_model": "advprior.body",
    "fit_keypoints": "advprior.fitting",
}

# LatentHead, load_body_model and fit_keypoints stay out of __all__ so that
# `from advprior import *` imports torch but not the body model, fitting or heads.
__all__ = ["LatentPose", "LatentSpace", "PosePrior", "Prior", "__version__", "load_pretrained"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    # `import advprior; advprior.hub.resolve(...)` kept working while the package imported its
    # submodules eagerly; a submodule is imported on first touch now
    if not name.startswith("_") and importlib.util.find_spec(f"advprior.{name}") is not None:
        return importlib.import_module(f"advprior.{name}")
    raise AttributeError(f"module 'advprior' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
