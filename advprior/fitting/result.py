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
    """Per-frame fit results (``B`` frames; every tensor is detached, on the device the fit ran
    on: the prior's when it is a module, else the keypoints'; see
    ``advprior.fitting.inputs.place_fit``).

    Attributes:
        body_pose: ``(B, 63)`` axis-angle, radians, SMPL joints 1..21.
        global_orient: ``(B, 3)`` axis-angle of the pelvis in the world frame (the frame the
            camera's ``rotation`` maps from; the camera frame itself when ``rotation`` is None).
        transl: ``(B, 3)`` metres, in the same world frame.
        betas: ``(B, K)`` shape coefficients of the body model (K = its ``num_betas``, 10 by
            default).
        latent: ``(B, D)`` the latent decoded to ``body_pose`` (projected onto the manifold for a
            PosePrior, the VAE latent for a VAE), or ``None`` for the GMM and for no prior.
        loss: ``(B,)`` final objective per frame (robust reprojection + prior + shape terms, and
            the pose and latent densities' and the latent gauge's where the fit has them: the
            last stage's objective, :func:`advprior.fitting.objective.final_objective`), in the
            caller's squared pixels.
        joints: ``(B, 24, 3)`` the 24 SMPL joints, metres, in the world frame.
        projected: ``(B, J, 2)`` the fitted body's keypoints projected to pixels (NaN for a
            keypoint with no counterpart on the body, BODY_25B's HeadTop).
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

    def to_amass(
        self,
        path: str | os.PathLike,
        *,
        fps: float | None = None,
        gender: str = "neutral",
        up: str = "z",
        camera_rotation: Any = None,
        clip: int | None = None,
        shape: str = "mean",
        model_type: str = "smplh",
        num_betas: int | None = None,
    ) -> Path:
        """Write the fitted clip as an AMASS-style ``.npz`` (atomically; returns ``path``) for
        AMASS viewers, motion datasets and Blender SMPL add-ons: ``poses (N, W)``, ``trans
        (N, 3)``, ``betas``, ``gender``, ``mocap_framerate`` and ``mocap_frame_rate``,
        ``surface_model_type``, ``root_orient``, ``pose_body`` (+ ``pose_hand``, ``pose_jaw``,
        ``pose_eye`` as the model has them); no pickled member. docs/fitting.md, "Export to
        AMASS".

        Args:
            path: the file to write (no suffix is added).
            fps: the clip's frame rate; default the one the fit recorded (``info["fps"]``,
                ``fit_sequence(..., fps=)``), which a given one must equal. Required when the
                fit records none.
            gender: ``"neutral"``, ``"male"`` or ``"female"`` (the body model readers pose).
            up: the written world's up axis: ``"z"`` (AMASS's; default) or ``"y"``. The fit's
                camera frame (x right, y down, z forward) is turned by
                ``(x, y, z) -> (x, z, -y)`` for z up, ``(x, -y, -z)`` for y up; orientation and
                translation alike, about the pelvis (the body lands where the fit put it).
            camera_rotation: the world-to-camera rotation of a camera the fit used with one
                (``PinholeCamera.rotation``, or the camera itself): the fit's world is taken
                into that camera's frame first. Default: the one ``advprior fit`` recorded in
                ``info["camera"]``, else none.
            clip: which clip of a ``fit_sequence`` over ``(B, T, J, 2)`` keypoints (required
                when B > 1). A one-clip fit, or per-frame ``fit_keypoints`` results (taken as
                frames in their order), need none.
            shape: the clip's one ``betas``: ``"mean"`` of the frames' (default; a
                ``fit_sequence`` clip has one shape on every frame) or ``"first"`` frame's.
            model_type: the layout: ``"smplh"`` (``poses (N, 156)``, AMASS's main release),
                ``"smpl"`` (72) or ``"smplx"`` (165). Joints the fit does not estimate are
                zeros.
            num_betas: length of ``betas``: zeros appended, or the rest cut off (with a warning
                when a dropped one is non-zero); default 16 (AMASS's SMPL-H and SMPL-X), 10
                for ``"smpl"``.
        """
        from advprior.fitting.amass import write_amass

        return write_amass(
            self,
            path,
            fps=fps,
            gender=gender,
            up=up,
            camera_rotation=camera_rotation,
            clip=clip,
            shape=shape,
            model_type=model_type,
            num_betas=num_betas,
        )

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
