"""Fitting from noisy 2D keypoints with each prior, scored against the true 3D joints.

Uses only ``advprior.fitting``'s public ``fit_keypoints`` and ``PinholeCamera``; the synthetic
set-up (camera, noise, dropped joints) is the one ``docs/results.md`` states.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor

from advprior.eval.metrics import mpjpe, p_mpjpe

#: World-to-camera rotation: SMPL's frame (y up, body facing +z) to OpenCV's (y down, looking
#: down +z), i.e. 180 degrees about x, so a body at world z = -depth faces the camera.
SMPL_TO_OPENCV = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass
class KeypointScene:
    """Synthetic 2D observations of real poses.

    ``keypoints (B, 24, 2)`` pixels, ``confidence (B, 24)`` (0 = dropped), ``joints (B, 24, 3)``
    the true joints in the world frame (metres), ``focal``/``center`` of the pinhole camera.
    """

    keypoints: Tensor
    confidence: Tensor
    joints: Tensor
    focal: float
    center: tuple[float, float]


def make_scene(body_pose: Tensor, global_orient: Tensor, *, body_model: object | None = None,
               noise_px: float = 5.0, drop: float = 0.2, depth: float = 4.0,
               focal: float = 1000.0, image_size: int = 1000, seed: int = 0) -> KeypointScene:
    """Project the 24 joints of ``(B, 63)`` poses with their ``(B, 3)`` global orientation,
    standing ``depth`` metres in front of the camera, add Gaussian pixel noise of std
    ``noise_px`` and give confidence 0 to a random ``drop`` fraction of joints per frame."""
    from advprior.body import forward_kinematics

    g = torch.Generator().manual_seed(seed)
    b = body_pose.shape[0]
    transl = torch.zeros(b, 3)
    transl[:, :2] = (torch.rand(b, 2, generator=g) - 0.5) * 0.4
    transl[:, 2] = -depth
    with torch.no_grad():
        joints = forward_kinematics(global_orient, body_pose, transl=transl, body_model=body_model)
    cam = joints @ SMPL_TO_OPENCV.T
    c = image_size / 2.0
    uv = focal * cam[..., :2] / cam[..., 2:] + c
    uv = uv + noise_px * torch.randn(uv.shape, generator=g)
    n_drop = int(round(drop * 24))
    order = torch.rand(b, 24, generator=g).argsort(dim=1)
    confidence = torch.ones(b, 24)
    confidence.scatter_(1, order[:, :n_drop], 0.0)
    return KeypointScene(uv, confidence, joints, focal, (c, c))


@dataclass
class FitScore:
    """Errors in mm over the frames (MPJPE after pelvis alignment; P-MPJPE after Procrustes)
    and wall seconds per frame of one batched fit."""

    mpjpe_mm: float
    p_mpjpe_mm: float
    seconds_per_frame: float
    frames: int


def fit_and_score(scene: KeypointScene, prior: object | None, *, body_model: object | None = None,
                  iterations: int | None = None) -> FitScore:
    """Fit every frame of ``scene`` in one batch with ``prior`` (a prior object or None) and
    score the recovered 24 joints against the true ones."""
    from advprior.fitting import PinholeCamera, fit_keypoints

    camera = PinholeCamera(focal=(scene.focal, scene.focal), center=scene.center,
                           rotation=SMPL_TO_OPENCV.clone())
    kwargs = {} if iterations is None else {"iterations": iterations}
    t0 = time.perf_counter()
    result = fit_keypoints(scene.keypoints, scene.confidence, camera, body_model=body_model,
                           prior=prior, keypoint_format="smpl24", **kwargs)
    seconds = time.perf_counter() - t0
    pred = result.joints.detach()
    true = scene.joints
    root_err = mpjpe(pred - pred[:, :1], true - true[:, :1])
    return FitScore(
        mpjpe_mm=float(root_err.mean()) * 1000,
        p_mpjpe_mm=float(p_mpjpe(pred.double(), true.double()).mean()) * 1000,
        seconds_per_frame=seconds / max(1, pred.shape[0]),
        frames=int(pred.shape[0]),
    )
