"""What every trainer shares after its own loop: the validator, the weights to export, and the
export itself with its model card; plus the seed offsets of a run's random streams.

The GAN (:mod:`advprior.train.gan`), the VAE (:mod:`advprior.train.vae`) and the GMM
(:mod:`advprior.train.gmm`) all validate and export through here, so they select and describe
their weights the same way.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advprior.hub import RUN_MODEL_DIR
from advprior.train.distributed import DistInfo
from advprior.train.loop import TrainResult
from advprior.train.provenance import data_terms, source_names
from advprior.train.validation import pose_joints, recall_precision_mm
from advprior.version import software_versions

#: Offsets that give each random stream of a run its own seed (data order, latents, validation).
SEED_DATA, SEED_LATENT, SEED_VAL = 0, 1_000_003, 2_000_003


def make_validator(
    prior: nn.Module,
    val_poses: torch.Tensor,
    *,
    num_samples: int,
    seed: int,
    sample_fn: Callable[[int, torch.Generator], torch.Tensor] | None = None,
) -> Callable[[], dict[str, float]]:
    """A function returning recall/precision (mm) of ``num_samples`` prior samples against
    ``val_poses``. Samples come from a fixed seed (same poses-to-latents every time) and the
    model is switched to eval mode meanwhile; the global RNG is never touched."""
    val_joints = pose_joints(val_poses)

    def draw(n: int, gen: torch.Generator) -> torch.Tensor:
        return prior.sample(n, generator=gen)

    sample = sample_fn or draw

    def validate() -> dict[str, float]:
        was_training = prior.training
        prior.eval()
        try:
            with torch.no_grad():
                gen = torch.Generator().manual_seed(seed + SEED_VAL)
                poses = sample(num_samples, gen).float().cpu()
        finally:
            prior.train(was_training)
        return recall_precision_mm(val_joints, pose_joints(poses))

    return validate


def selected_state(result: TrainResult, model: torch.nn.Module, select: str) -> dict:
    """The weights to export: the best-validation state when ``select == "best"`` and a
    validation ran, else ``model``'s current state (on the CPU)."""
    if select == "best" and result.best_state:
        return result.best_state
    return {k: v.cpu() for k, v in model.state_dict().items()}


def environment(dist: DistInfo | None = None) -> dict[str, Any]:
    """What besides the settings and the seed decides a run's numbers, for its model card:
    advprior's, torch's, numpy's and Python's versions, the processes (``--batch-size`` is per
    process), the CPU threads per process and the device type (torch splits its sums by thread
    count and device, so a seed gives other weights with either changed; docs/training.md,
    "Resume")."""
    dist = dist or DistInfo()
    return {
        **software_versions(),
        "processes": dist.world_size,
        "threads_per_process": torch.get_num_threads(),
        "device": dist.device.type,
    }


def export_model(
    model: Any,
    out: Path,
    result: TrainResult,
    data_description: dict[str, Any],
    config: dict,
    dist: DistInfo | None = None,
) -> Path:
    """``save_pretrained`` the trained model into ``<out>/model`` with a model card; ``dist``:
    the run's processes and device (None: one process on the CPU), recorded with the versions
    under ``training["environment"]``."""
    model_dir = out / RUN_MODEL_DIR
    selected = result.best_step is not None and config.get("select") == "best"
    training = {
        "data": data_description,
        "steps": result.step,
        "selected_step": result.best_step if selected else result.step,
        "selection": (
            "lowest validation recall + precision (mean, mm) among the validated steps"
            if selected
            else "last step"
        ),
        "config": {k: v for k, v in config.items() if k not in ("data", "out")},
        "metrics_val_mm": result.best_val if selected else result.val,
        "final_step_val_mm": result.val,
        "wall_time_s": round(result.wall_time_s, 1),
        "environment": environment(dist),
        **data_terms(source_names(data_description)),
    }
    # Written whole beside the run's model/ and then moved into place: save_pretrained writes
    # its three files one by one, so a run stopped between them (Ctrl-C, a kill, a full disk)
    # while replacing an earlier export (an extended or refitted run) left the new weights
    # with the old config.json, a model/ that refused to load as "changed or damaged".
    staging = out / f"{STAGING_PREFIX}{os.getpid()}.tmp"
    aside = out / f"{STAGING_PREFIX}{os.getpid()}.old"
    for leftover in (staging, aside):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        model.save_pretrained(staging, training=training)
        if model_dir.is_dir():
            os.replace(model_dir, aside)
        os.replace(staging, model_dir)
    finally:
        for leftover in (staging, aside):
            shutil.rmtree(leftover, ignore_errors=True)
    return model_dir


#: Name prefix of the folders :func:`export_model` writes before moving them into place; a
#: killed run's are removed when the next run claims the folder (``runfolder``).
STAGING_PREFIX = f".{RUN_MODEL_DIR}.export."
