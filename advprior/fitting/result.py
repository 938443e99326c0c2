"""The outcome of a keypoint fit, convertible to numpy and saved atomically as ``.npz`` or
JSON."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from advprior.fileio import save_npz_atomic, write_text_atomic
from advprior.version import software_versions


def fit_environment(device: Any) -> dict[str, Any]:
    """``info["environment"]`` of a fit: the software versions, torch's CPU thread count and
    the device type. A fit is deterministic for its inputs and these; another thread count or
    device rounds differently, which L-BFGS amplifies (docs/fitting.md, "Frames are
    independent"), so a saved fit says what it needs to be reproduced."""
    import torch

    return {
        **software_versions(),
        "threads": torch.get_num_threads(),
        "device": torch.device(device).type,
    }


@dataclass
class FitResult:
    """Per-frame fit results (``B`` frames; every tensor is detached, on the input's device).

    Attributes:
        body_pose: ``(B, 63)`` axis-angle, radians, SMPL joints 1..21.
        global_orient: ``(B, 3)`` axis-angle of the pelvis in the world frame (the frame the
            camera's ``rotation`` maps from; the camera frame itself when ``rotation`` is None).
        transl: ``(B, 3)`` metres, in the same world frame.
        betas: ``(B, K)`` shape coefficients of the body model (K = its ``num_betas``, 10 by
            default).
        latent: ``(B, D)`` the latent decoded to ``body_pose`` (projected onto the manifold for a
            PosePrior, the VAE latent for a VAE), or ``None`` for the GMM and for no prior.
        loss: ``(B,)`` final objective per frame (robust reprojection + prior + shape terms).
        joints: ``(B, 24, 3)`` the 24 SMPL joints, metres, in the world frame.
        projected: ``(B, J, 2)`` the fitted body's keypoints projected to pixels.
        iterations: ``(B,)`` optimiser iterations spent on each frame (all stages).
        info: free-form run description (prior, keypoint format, stages, optimiser, seconds).
    """

    body_pose: Tensor
    global_orient: Tensor
    transl: Tensor
    betas: Tensor
    latent: Tensor | None
    loss: Tensor
    joints: Tensor
    projected: Tensor
    iterations: Tensor
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.body_pose.shape[0])

    def as_dict(self) -> dict[str, Any]:
        """Numpy arrays for every tensor field (``latent`` omitted when ``None``) plus ``info``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                out[f.name] = value.detach().cpu().numpy()
            elif value is not None:
                out[f.name] = value
        return out

    def to_npz(self, path: str | os.PathLike) -> Path:
        """Write every array (and ``info`` as a JSON string) to ``path`` atomically; returns it."""
        path = Path(path)
        arrays = self.as_dict()
        arrays["info"] = np.array(json.dumps(arrays.pop("info", {})))
        save_npz_atomic(path, arrays)
        return path

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write every array as nested lists (NaN as ``null``) and ``info`` as an object to a
        UTF-8 JSON file, atomically; returns it. For tools without numpy (a Blender or web
        script): ``json.load`` gives the same names and shapes as :meth:`to_npz`'s arrays."""
        path = Path(path)
        out: dict[str, Any] = {}
        for name, value in self.as_dict().items():
            if isinstance(value, np.ndarray):
                # JSON has no NaN: null, as advprior's keypoint files mark a missing value
                value = np.where(np.isnan(value), None, value) if value.dtype.kind == "f" else value
                value = value.tolist()
            out[name] = value
        write_text_atomic(path, json.dumps(out, allow_nan=False))
        return path
