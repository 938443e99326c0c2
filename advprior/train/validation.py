"""Validation metrics during training: recall and precision in millimetres of joint position.

Poses are posed on the stand-in body (or a given body model) by ``advprior.body.forward_kinematics``
with the global orientation removed (zero) and the pelvis moved to the origin; distances are the
paper's Eq. 4 (mean over the 24 joints of the Euclidean distance) from
``advprior.eval.metrics.nn_distances``.

- recall: for every reference pose, the distance to the nearest generated pose (coverage);
- precision: for every generated pose, the distance to the nearest reference pose (realism).
"""

from __future__ import annotations

from typing import Any

import torch


def pose_joints(body_pose: torch.Tensor, body_model: Any = None, chunk: int = 8192) -> torch.Tensor:
    """``(N, 63)`` axis-angle body poses -> ``(N, 24, 3)`` joints in millimetres, pelvis at 0.

    :func:`advprior.eval.metrics.pose_joints` in chunks of ``chunk`` poses, scaled to mm.
    """
    from advprior.eval.metrics import pose_joints as joints_m

    if body_pose.shape[0] == 0:
        return body_pose.new_zeros(0, 24, 3)
    return torch.cat([joints_m(bp, body_model) for bp in body_pose.split(chunk)]) * 1000.0


def recall_precision_mm(
    reference_joints: torch.Tensor, generated_joints: torch.Tensor
) -> dict[str, float]:
    """Mean and median recall and precision (mm) between two ``(N, 24, 3)`` joint sets."""
    from advprior.eval.metrics import nn_distances

    rec = nn_distances(reference_joints, generated_joints)
    prec = nn_distances(generated_joints, reference_joints)
    return {
        "recall_mean_mm": float(rec.mean()),
        "recall_median_mm": float(rec.median()),
        "precision_mean_mm": float(prec.mean()),
        "precision_median_mm": float(prec.median()),
    }
