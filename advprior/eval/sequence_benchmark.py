"""The sequence-fitting benchmark: held-out mocap clips seen by one camera, fitted per frame
(:func:`advprior.fitting.fit_keypoints`) and as a sequence (:func:`advprior.fitting.fit_sequence`).

Protocol (docs/fitting.md, "Sequences"): each clip (consecutive frames of one recorded sequence)
is turned to a random heading, placed 4-5 m in front of :data:`BENCH_CAMERA` (the whole clip
keeps its recorded global orientation and translation relative to its first frame), projected,
and ``noise_px`` Gaussian pixel noise added; a ``drop`` fraction of keypoints gets confidence 0,
and with ``missing_every`` every such frame loses all its keypoints. Errors on the 24 joints of
the stand-in body (betas 0): MPJPE (pelvis-aligned), P-MPJPE (similarity-aligned) and the
acceleration error (mm/frame^2), all frames included (missing ones too).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from advprior.eval.benchmark import BENCH_CAMERA, joint_errors_mm
from advprior.eval.tasks import acceleration_error
from advprior.fitting.camera import PinholeCamera
from advprior.fitting.sequence import fit_sequence
from advprior.fitting.smplify import fit_keypoints
from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle


@dataclass
class ClipViews:
    """``keypoints (B, T, 24, 2)``, ``confidence (B, T, 24)``, true ``joints (B, T, 24, 3)``."""

    keypoints: Tensor
    confidence: Tensor
    joints: Tensor
    camera: PinholeCamera


@torch.no_grad()
def make_clip_views(
    body_pose: Tensor,
    global_orient: Tensor,
    transl: Tensor,
    *,
    seed: int = 0,
    noise_px: float = 5.0,
    drop: float = 0.2,
    missing_every: int = 0,
    camera: PinholeCamera = BENCH_CAMERA,
) -> ClipViews:
    """Clips ``body_pose (B, T, 63)``, ``global_orient``/``transl (B, T, 3)`` -> 2D views."""
    from advprior.body import forward_kinematics

    b, t = body_pose.shape[:2]
    gen = torch.Generator().manual_seed(seed)
    yaw = torch.rand(b, generator=gen) * 2 * math.pi
    zeros = torch.zeros(b)
    view = axis_angle_to_rotmat(torch.stack([zeros + math.pi, zeros, zeros], -1))
    turn = axis_angle_to_rotmat(torch.stack([zeros, yaw, zeros], -1))
    place = (view @ turn)[:, None]  # (B, 1, 3, 3)
    orient = rotmat_to_axis_angle(place @ axis_angle_to_rotmat(global_orient.float()))
    move = ((transl - transl[:, :1]).float()[..., None, :] @ place.transpose(-1, -2))[..., 0, :]
    joints = forward_kinematics(orient, body_pose.float())
    pelvis0 = torch.stack([zeros, zeros, 4.0 + torch.rand(b, generator=gen)], -1)
    joints = joints - joints[:, :1, :1] + pelvis0[:, None, None] + move[:, :, None]
    kp = camera.project(joints) + noise_px * torch.randn(b, t, 24, 2, generator=gen)
    conf = (torch.rand(b, t, 24, generator=gen) >= drop).float()
    conf[..., :2] = torch.where(conf.sum(-1, keepdim=True) < 2, 1.0, conf[..., :2])
    if missing_every:
        conf[:, missing_every - 1 :: missing_every] = 0.0
    return ClipViews(kp, conf, joints, camera)


def clip_errors(pred: Tensor, views: ClipViews) -> dict[str, float]:
    """MPJPE, P-MPJPE (mm) and acceleration error (mm/frame^2) of joints ``(B, T, 24, 3)``."""
    b, t = pred.shape[:2]
    err = joint_errors_mm(pred.reshape(b * t, 24, 3), views.joints.reshape(b * t, 24, 3))
    rel_pred = pred - pred[..., :1, :]
    rel_true = views.joints - views.joints[..., :1, :]
    return {
        "mpjpe_mm": float(err["mpjpe"].mean()),
        "p_mpjpe_mm": float(err["p_mpjpe"].mean()),
        "accel_mm": acceleration_error(rel_pred, rel_true),
    }


def run_sequence_fitting(
    views: ClipViews, prior: Any, *, smoothness: Any = None, per_frame: bool = True, **kwargs: Any
) -> dict[str, dict[str, float]]:
    """Per-frame and sequence fits of ``views`` with ``prior``: errors and seconds per frame.
    Frames without keypoints have no per-frame fit: there the per-frame result holds the
    nearest earlier fitted frame (the first fitted frame before any), as a tracker would."""
    b, t = views.keypoints.shape[:2]
    seen = (views.confidence > 0).sum(-1) >= 2
    start = time.perf_counter()
    init = fit_keypoints(views.keypoints[seen], views.confidence[seen], views.camera, prior=prior)
    init_seconds = time.perf_counter() - start
    out: dict[str, dict[str, float]] = {}
    if per_frame:
        joints = torch.zeros(b, t, 24, 3)
        joints[seen] = init.joints
        for clip in range(b):
            have = torch.nonzero(seen[clip]).flatten()
            for frame in torch.nonzero(~seen[clip]).flatten().tolist():
                earlier = have[have < frame]
                joints[clip, frame] = joints[clip, int(earlier[-1] if len(earlier) else have[0])]
        per_frame_seconds = init_seconds / (b * t)
        out["per frame"] = {**clip_errors(joints, views), "seconds_per_frame": per_frame_seconds}
    start = time.perf_counter()
    seq = fit_sequence(
        views.keypoints,
        views.confidence,
        views.camera,
        prior=prior,
        smoothness=smoothness,
        init=init,
        **kwargs,
    )
    seconds = time.perf_counter() - start + init_seconds
    out["sequence"] = {**clip_errors(seq.joints, views), "seconds_per_frame": seconds / (b * t)}
    return out
