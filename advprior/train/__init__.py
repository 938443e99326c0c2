"""Training: the adversarial prior (GAN-S/U/N), the same-data baselines, and the dataset tools.

Import-light on purpose: ``import advprior.data`` must work without the training extras
(tqdm, tensorboard, scikit-learn), so the trainers load on first attribute access.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train_gan", "train_vae", "fit_gmm", "PoseDiscriminator", "TrainResult"]

_LAZY = {
    "train_gan": "advprior.train.gan",
    "train_vae": "advprior.train.vae",
    "fit_gmm": "advprior.train.gmm",
    "PoseDiscriminator": "advprior.train.discriminator",
    "TrainResult": "advprior.train.loop",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'advprior.train' has no attribute {name!r}")
