"""Fitting the SMPLify-style GMM baseline (8 full-covariance Gaussians on the 63-d pose).

SMPLify fitted its mixture to CMU poses by expectation-maximisation; we do the same with
scikit-learn's ``GaussianMixture`` on exactly the training rows the GAN sees (mirrored copies
included when ``mirror``), then store the parameters as tensors in
:class:`advprior.baselines.GMMPrior`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from advprior.fileio import write_text_atomic
from advprior.train.gan import export_model, make_validator
from advprior.train.loop import TrainResult
from advprior.train.poses import load_training_poses


def fit_gmm(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    num_components: int = 8,
    seed: int = 0,
    mirror: bool = True,
    max_iter: int = 200,
    reg_covar: float = 1e-5,
    max_samples: int = 0,
    val_samples: int = 5000,
    max_val_poses: int = 2000,
    export: bool = True,
) -> TrainResult:
    """Fit :class:`advprior.baselines.GMMPrior` to a dataset file's training split.

    Args:
        data: dataset npz; ``out``: run folder (``model/`` holds the exported prior, plus
            ``val_log.csv``-style metrics in ``gmm_fit.json``).
        num_components: mixture size (SMPLify: 8).
        seed: k-means initialisation seed; ``max_iter``/``reg_covar``: EM settings.
        max_samples: fit on at most this many evenly spaced rows (0: all).
    """
    from sklearn.mixture import GaussianMixture

    from advprior.baselines import GMMPrior

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    poses = load_training_poses(data, mirror=mirror, max_val=max_val_poses)
    x = poses.train
    if max_samples and x.shape[0] > max_samples:
        x = x[torch.linspace(0, x.shape[0] - 1, max_samples).round().long()]
    mixture = GaussianMixture(
        n_components=num_components,
        covariance_type="full",
        max_iter=max_iter,
        reg_covar=reg_covar,
        random_state=seed,
    ).fit(x.double().numpy())
    prior = GMMPrior.from_sklearn(mixture)
    wall = time.perf_counter() - t0
    val = make_validator(prior, poses.val, num_samples=val_samples, seed=seed)()
    config = {
        "model": "gmm",
        "data": str(Path(data).resolve()),
        "num_components": num_components,
        "seed": seed,
        "mirror": mirror,
        "max_iter": max_iter,
        "reg_covar": reg_covar,
        "max_samples": max_samples,
        "converged": bool(mixture.converged_),
        "em_iterations": int(mixture.n_iter_),
    }
    result = TrainResult(out=out, step=int(mixture.n_iter_), steps=max_iter, interrupted=False,
                         wall_time_s=wall, val=val)
    write_text_atomic(out / "gmm_fit.json", json.dumps({**config, "val_mm": val,
                                                        "wall_time_s": wall}, indent=2) + "\n")
    if export:
        result.model_dir = export_model(prior, out, result, poses.description, config)
    return result
