"""Training: the adversarial prior (GAN-S/U/N) and the same-data baselines (VAE, GMM).

Settings are dataclasses (:mod:`advprior.train.config`); the dataset tools live in
:mod:`advprior.data`. The trainers load on first attribute access, so that importing this
package (and the settings) needs none of the training extras (tqdm, tensorboard, scikit-learn).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "train_gan",
    "train_vae",
    "fit_gmm",
    "PoseDiscriminator",
    "TrainResult",
    "GANConfig",
    "VAEConfig",
    "GMMConfig",
]

_LAZY = {
    "GANConfig": "advprior.train.config",
    "VAEConfig": "advprior.train.config",
    "GMMConfig": "advprior.train.config",
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
