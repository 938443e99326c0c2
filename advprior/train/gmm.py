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
from typing import Any

import torch

from advprior.baselines import GMMPrior
from advprior.errors import RunFolderError, require_extra
from advprior.fileio import read_json, write_text_atomic
from advprior.train.config import GMMConfig
from advprior.train.export import export_model, make_validator
from advprior.train.loop import TrainResult
from advprior.train.poses import load_training_poses
from advprior.train.runfolder import RunFolder, claim_run_folder


def fit_gmm(
    data: str | os.PathLike,
    out: str | os.PathLike,
    settings: GMMConfig | None = None,
    *,
    export: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    **overrides: Any,
) -> TrainResult:
    """Fit :class:`advprior.baselines.GMMPrior` to a dataset file's training split.

    Settings as a :class:`~advprior.train.config.GMMConfig` and/or keywords:
    ``num_components`` (SMPLify: 8); ``seed`` (k-means initialisation); ``max_iter`` /
    ``reg_covar`` (EM); ``max_samples`` (fit on at most this many evenly spaced rows, 0: all);
    ``mirror``, ``val_samples``, ``max_val_poses`` as for the GAN. ``out`` is the run folder:
    ``model/`` holds the exported prior, ``gmm_fit.json`` the settings and validation metrics.
    ``out`` is claimed as the trainers claim theirs (:func:`advprior.train.runfolder.
    claim_run_folder`): a folder holding an earlier run (a checkpoint or ``model/``) is refused
    unless ``overwrite=True`` or ``resume=True`` (a GMM has no checkpoint: resuming refits it,
    deterministic for a seed, and replaces ``model/``), and one in use by another process is
    refused.
    """
    # scikit-learn is a training extra: loaded when a mixture is fitted, not on import.
    sk_mixture = require_extra("sklearn.mixture", "train", "fitting the GMM")

    cfg = GMMConfig.build(settings, overrides)
    out = Path(out)
    folder = claim_run_folder(out, resume=resume, overwrite=overwrite, model_type="gmm")
    try:
        return _fit(sk_mixture, cfg, data, out, export, folder, resume)
    finally:
        folder.release()


#: What a refit (``resume=True``) must keep: everything that decides the mixture but its
#: iteration budget (as the networks' resume allows only ``steps`` and the periods to change).
_REFIT_KEEPS = ("num_components", "seed", "reg_covar", "max_samples", "mirror", "data_sha256")


def _check_refit(out: Path, config: dict[str, Any]) -> None:
    try:
        # read_json: nesting too deep is a ValueError too (json's RecursionError escaped)
        old = read_json(out / "gmm_fit.json")
    except (OSError, ValueError):
        return  # nothing recorded (or unreadable): nothing to compare
    if not isinstance(old, dict):
        return  # not a record this fit wrote (a list holding "seed" was indexed by it)
    changed = [k for k in _REFIT_KEEPS if k in old and old[k] != config.get(k)]
    if changed:
        raise RunFolderError(
            f"{out}: --resume refits the run with its own settings, but "
            + ", ".join(f"{k} {old[k]!r} -> {config.get(k)!r}" for k in changed)
            + "; pass --overwrite to replace it, or use another --out"
        )


def _fit(
    sk_mixture: Any,
    cfg: GMMConfig,
    data: Any,
    out: Path,
    export: bool,
    folder: RunFolder,
    resume: bool = False,
) -> TrainResult:
    t0 = time.perf_counter()
    poses = load_training_poses(data, mirror=cfg.mirror, max_val=cfg.max_val_poses)
    if resume:
        _check_refit(out, {**cfg.record(data), "data_sha256": poses.description["sha256"]})
    x = poses.train
    if cfg.max_samples and x.shape[0] > cfg.max_samples:
        x = x[torch.linspace(0, x.shape[0] - 1, cfg.max_samples).round().long()]
    mixture = sk_mixture.GaussianMixture(
        n_components=cfg.num_components,
        covariance_type="full",
        max_iter=cfg.max_iter,
        reg_covar=cfg.reg_covar,
        random_state=cfg.seed,
    ).fit(x.double().numpy())
    prior = GMMPrior.from_sklearn(mixture)
    wall = time.perf_counter() - t0
    val = make_validator(prior, poses.val, num_samples=cfg.val_samples, seed=cfg.seed)()
    config = {
        **cfg.record(data),
        "data_sha256": poses.description["sha256"],
        "converged": bool(mixture.converged_),
        "em_iterations": int(mixture.n_iter_),
    }
    result = TrainResult(
        out=out,
        step=int(mixture.n_iter_),
        steps=cfg.max_iter,
        interrupted=False,
        wall_time_s=wall,
        val=val,
    )
    folder.start_over()  # --overwrite: only now that the fit succeeded
    write_text_atomic(
        out / "gmm_fit.json",
        json.dumps({**config, "val_mm": val, "wall_time_s": wall}, indent=2) + "\n",
    )
    if export:
        result.model_dir = export_model(prior, out, result, poses.description, config)
    return result
