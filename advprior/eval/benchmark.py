"""The synthetic fitting benchmark: noisy 2D keypoints of known 3D poses, fitted with each prior.

Protocol (``docs/fitting.md``): held-out poses (body pose and the recorded global orientation)
are turned to a random heading, tilted by a random camera elevation, placed 3-6 m in front of a
1000 x 1000 px pinhole camera (focal 1000 px) and projected; Gaussian noise (``noise_px``) is
added to every keypoint and a random ``drop`` fraction of keypoints per frame gets confidence 0.

The observed keypoints (``keypoints``) are either SMPL's 24 joints (``smpl24``, the default) or
the points a 2D detector reports (``coco17``, ``openpose25``, ``openpose25b``): placed on the
body by the very mapping :func:`advprior.fitting.fit_keypoints` fits with
(:func:`advprior.fitting.smplify.body_keypoints`): limb joints, the pelvis as OpenPose's MidHip,
SMPL's neck as its Neck, SMPL's head as BODY_25B's UpperNeck, and nose, eyes, ears, big/small
toes and heels from the body's surface vertices; no spine or collar joint is observed in those
formats (nor BODY_25B's HeadTop, which has confidence 0).

Errors compare the fitted body's 24 SMPL joints with the true ones (betas 0, the stand-in body
unless another is given): MPJPE after aligning the pelvis, and P-MPJPE after a similarity
(Procrustes) alignment, both in millimetres.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from advprior.fileio import write_text_atomic
from advprior.fitting.camera import PinholeCamera
from advprior.fitting.keypoints import KeypointFormat, get_format
from advprior.fitting.smplify import body_keypoints, fit_keypoints
from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

#: The benchmark camera: 1000 x 1000 px image, focal length 1000 px.
BENCH_CAMERA = PinholeCamera(focal=1000.0, center=(500.0, 500.0))


@dataclass
class SyntheticViews:
    """Keypoints ``(B, K, 2)`` and confidence ``(B, K)`` in ``keypoint_format`` (K = 24 for
    ``smpl24``), true joints ``(B, 24, 3)`` (world = camera frame), the true
    ``global_orient``/``transl`` ``(B, 3)`` and ``body_pose (B, 63)``."""

    keypoints: Tensor
    confidence: Tensor
    joints: Tensor
    global_orient: Tensor
    transl: Tensor
    body_pose: Tensor
    camera: PinholeCamera
    keypoint_format: str = "smpl24"

    @property
    def observed_joints(self) -> Tensor:
        """``(B, 24)`` bool: which of SMPL's 24 joints a keypoint of positive confidence sits
        on (surface points observe no joint; joints the format lacks are never observed)."""
        fmt = get_format(self.keypoint_format)
        seen = self.confidence > 0
        observed = torch.zeros(*seen.shape[:-1], 24, dtype=torch.bool, device=seen.device)
        for k, source in enumerate(fmt.sources):
            if isinstance(source, int):
                observed[..., source] |= seen[..., k]
        return observed


@torch.no_grad()
def make_views(
    body_pose: Tensor,
    global_orient: Tensor,
    *,
    seed: int = 0,
    noise_px: float = 5.0,
    drop: float = 0.2,
    body_model: Any = None,
    camera: PinholeCamera = BENCH_CAMERA,
    keypoints: str | KeypointFormat = "smpl24",
) -> SyntheticViews:
    """Project ``body_pose (B, 63)`` with its recorded ``global_orient (B, 3)`` (SMPL frame, y up)
    through ``camera`` from a random heading and elevation; see the module docstring.

    ``keypoints``: the observed keypoint set, ``"smpl24"``, ``"coco17"``, ``"openpose25"`` or
    ``"openpose25b"`` (:mod:`advprior.fitting.keypoints`); pass the same to :func:`fit_keypoints` as
    ``keypoint_format`` (:func:`run_fitting` does). A frame keeps at least two keypoints."""
    from advprior.body import forward_kinematics

    fmt = get_format(keypoints)
    n = body_pose.shape[0]
    gen = torch.Generator().manual_seed(seed)
    yaw = torch.rand(n, generator=gen) * 2 * math.pi
    elevation = (torch.rand(n, generator=gen) * 30.0 - 10.0) * math.pi / 180.0
    zeros = torch.zeros(n)
    # Camera looks along +z with y down: Rx(pi) stands the y-up body upright in the image.
    view = axis_angle_to_rotmat(torch.stack([math.pi + elevation, zeros, zeros], -1))
    turn = axis_angle_to_rotmat(torch.stack([zeros, yaw, zeros], -1))
    orient = rotmat_to_axis_angle(view @ turn @ axis_angle_to_rotmat(global_orient.float()))
    pelvis = torch.stack(
        [
            (torch.rand(n, generator=gen) - 0.5) * 0.6,
            (torch.rand(n, generator=gen) - 0.5) * 0.6,
            3.0 + 3.0 * torch.rand(n, generator=gen),
        ],
        -1,
    )
    body_pose = body_pose.float()
    rest = forward_kinematics(orient, body_pose, body_model=body_model)
    transl = pelvis - rest[:, 0]
    joints = rest + transl[:, None]
    cam_rot = camera.rotation_tensor(joints)
    joints_world = joints @ cam_rot  # the camera frame is R X, so X = R^T X_c
    transl_world = (transl[:, None] @ cam_rot)[:, 0]
    orient_world = rotmat_to_axis_angle(cam_rot.T @ axis_angle_to_rotmat(orient))
    if fmt.needs_surface:
        # Surface points come from the mesh: the fitter's own mapping, on the same true body.
        points, _ = body_keypoints(
            orient_world, body_pose, None, transl_world, body_model=body_model, keypoint_format=fmt
        )
    else:
        points = joints_world[:, list(fmt.sources)]
    k = fmt.num_keypoints
    kp = camera.project(points) + noise_px * torch.randn(n, k, 2, generator=gen)
    conf = (torch.rand(n, k, generator=gen) >= drop).float()
    if fmt.unobserved:  # no counterpart on the body (BODY_25B's HeadTop): never seen
        conf[:, list(fmt.unobserved)] = 0.0
    # Every frame keeps at least two keypoints (a fit needs them).
    conf[:, :2] = torch.where(conf.sum(-1, keepdim=True) < 2, 1.0, conf[:, :2])
    return SyntheticViews(
        kp, conf, joints_world, orient_world, transl_world, body_pose, camera, fmt.name
    )


def joint_errors_mm(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-frame ``mpjpe`` (pelvis-aligned) and ``p_mpjpe`` (Procrustes-aligned) in mm, ``(B,)``."""
    from advprior.eval.metrics import mpjpe, p_mpjpe

    rel_pred = pred - pred[:, :1]
    rel_target = target - target[:, :1]
    return {
        "mpjpe": 1000.0 * mpjpe(rel_pred, rel_target),
        "p_mpjpe": 1000.0 * p_mpjpe(pred, target),
    }


def run_fitting(
    views: SyntheticViews, prior: Any, *, body_model: Any = None, **fit_kwargs: Any
) -> dict[str, Any]:
    """Fit ``views`` in one batch with ``prior`` (alias, model or None), in the views'
    ``keypoint_format``; returns the errors on the 24 joints (mean/median mm, and
    ``p_mpjpe_per_frame_mm``: each frame's P-MPJPE in the views' order, for paired comparisons
    of priors on the same frames), the wall-clock seconds of the fit call and seconds per
    frame."""
    n = views.keypoints.shape[0]
    fit_kwargs.setdefault("keypoint_format", views.keypoint_format)
    start = time.perf_counter()
    result = fit_keypoints(
        views.keypoints,
        views.confidence,
        views.camera,
        body_model=body_model,
        prior=prior,
        **fit_kwargs,
    )
    seconds = time.perf_counter() - start
    err = joint_errors_mm(result.joints, views.joints)
    seen = views.confidence > 0
    reproj = (result.projected - views.keypoints).norm(dim=-1)[seen].mean()
    return {
        "frames": n,
        "mpjpe_mm": float(err["mpjpe"].mean()),
        "mpjpe_median_mm": float(err["mpjpe"].median()),
        "p_mpjpe_mm": float(err["p_mpjpe"].mean()),
        "p_mpjpe_median_mm": float(err["p_mpjpe"].median()),
        "p_mpjpe_per_frame_mm": err["p_mpjpe"].tolist(),
        "reprojection_px": float(reproj),
        "seconds": seconds,
        "seconds_per_frame": seconds / max(n, 1),
        "iterations_mean": float(result.iterations.float().mean()),
    }


def run_inversion(prior: Any, body_pose: Tensor, **invert_kwargs: Any) -> dict[str, Any]:
    """``prior.project_pose`` on ``body_pose (N, 63)``: mean/median joint error (mm; 24 joints,
    zero global orientation, stand-in skeleton) and wall-clock seconds."""
    from advprior.body import forward_kinematics

    start = time.perf_counter()
    projected = prior.project_pose(body_pose, **invert_kwargs)
    seconds = time.perf_counter() - start
    zero = body_pose.new_zeros(body_pose.shape[0], 3)
    err = (forward_kinematics(zero, projected) - forward_kinematics(zero, body_pose)).norm(dim=-1)
    per_pose = 1000.0 * err.mean(-1)
    return {
        "poses": int(body_pose.shape[0]),
        "joint_error_mm": float(per_pose.mean()),
        "joint_error_median_mm": float(per_pose.median()),
        "seconds": seconds,
    }


GENERATED_END = "<!-- END GENERATED -->"


def write_generated_block(path: str | os.PathLike, source: str, block: str) -> Path:
    """Replace the text between the line ``<!-- BEGIN GENERATED: {source} -->`` and the next
    line ``<!-- END GENERATED -->`` in the Markdown file ``path`` by ``block`` (appending the
    marked block when absent); written atomically. Returns the path.

    Markers count only as whole lines, so prose that quotes a marker (in backticks, say) is never
    taken for one and never overwritten."""
    path = Path(path)
    begin = f"<!-- BEGIN GENERATED: {source} -->"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == begin), None)
    end = None
    if start is not None:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].strip() == GENERATED_END), None
        )
    if start is not None and end is not None:
        lines[start : end + 1] = [begin, block, GENERATED_END]
        text = "\n".join(lines)
    else:
        text = f"{text.rstrip()}\n\n{begin}\n{block}\n{GENERATED_END}\n"
    write_text_atomic(path, text)
    return path


def _aligned_joint_errors_mm(pred: Tensor, target: Tensor) -> Tensor:
    """Per-joint error ``(B, 24)`` in mm after a per-frame similarity (Procrustes) alignment."""
    from advprior.eval.metrics import procrustes_align

    return 1000.0 * (procrustes_align(pred, target) - target).norm(dim=-1)


def diagnose_fitting(
    views: SyntheticViews,
    prior: Any,
    *,
    body_model: Any = None,
    margin_mm: float = 10.0,
    rel_tol: float = 1e-2,
    invert_kwargs: dict | None = None,
    refine_iterations: int = 100,
    fit_result: Any = None,
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """Split each fit's 3D error (P-MPJPE, mm) into what the prior cannot represent, what the
    optimiser missed, and what the prior prefers over the truth (``docs/fitting.md``).

    Per frame, with the objective ``L`` of the fit's last stage
    (:func:`advprior.fitting.smplify.final_objective`):

    - *truth*: the true orientation and translation, zero betas, and the prior's inversion of the
      true pose (:func:`advprior.inversion.invert`; the pose itself for the GMM and no prior);
      its error is the **representability** floor, ``L_truth`` its objective;
    - *oracle*: ``L`` minimised from the truth (``refine_iterations`` L-BFGS iterations): the
      optimum in the truth's basin, ``L_oracle`` and its error;
    - the fit (:func:`fit_keypoints` with ``fit_kwargs``, or ``fit_result``): ``L_fit``.

    A frame is an **optimisation miss** when ``L_fit > (1 + rel_tol) L_oracle``: a clearly
    better optimum existed near the truth (the tolerance keeps a fit that merely stopped a few
    iterations short of the same optimum out of this class); else, when its error exceeds the
    oracle's by more than ``margin_mm``, a **prior preference** (the objective prefers a wrong
    pose); else **fine**. The mean fit error is exactly ``oracle + excess of misses + excess of
    preferences + excess of fine frames`` (excess = fit minus oracle error, summed over the
    class, divided by all frames). Joint errors are also split by whether the joint was
    observed (:attr:`SyntheticViews.observed_joints`) or not ("dropped": its keypoint was
    dropped, or the views' keypoint format has none on it, e.g. the spine in ``coco17``).
    The fit uses the views' ``keypoint_format`` unless ``fit_kwargs`` names one.

    Returns a dict of summary numbers and ``per_frame`` tensors.
    """
    from advprior.body import forward_kinematics
    from advprior.fitting.priors import frozen
    from advprior.fitting.smplify import final_objective
    from advprior.inversion import invert
    from advprior.lbfgs import minimize_lbfgs

    n = views.keypoints.shape[0]
    fit_kwargs.setdefault("keypoint_format", views.keypoint_format)
    start = time.perf_counter()
    fit = (
        fit_result
        if fit_result is not None
        else fit_keypoints(
            views.keypoints,
            views.confidence,
            views.camera,
            body_model=body_model,
            prior=prior,
            **fit_kwargs,
        )
    )
    fit_seconds = time.perf_counter() - start
    fn_kwargs = {
        k: fit_kwargs[k]
        for k in (
            "keypoint_format",
            "sigma",
            "stages",
            "latent_density",
            "latent_weight",
            "pose_density",
            "pose_weight",
            "pixel_scale",
        )
        if k in fit_kwargs
    }
    fn, term, nb = final_objective(
        views.keypoints,
        views.confidence,
        views.camera,
        prior=prior,
        body_model=body_model,
        **fn_kwargs,
    )
    with frozen(term.prior), frozen(term.pose_density):
        if term.has_latent:
            params = invert(term.prior, views.body_pose, **(invert_kwargs or {}))
            params = params.to(views.keypoints.dtype)
        else:
            params = views.body_pose.to(views.keypoints.dtype)
        x_true = torch.cat(
            [views.global_orient, views.transl, views.keypoints.new_zeros(n, nb), params], -1
        )
        with torch.no_grad():
            loss_truth = fn(x_true)
        refined = minimize_lbfgs(fn, x_true, max_iter=refine_iterations)
        loss_oracle = refined.loss

        def joints_of(x: Tensor) -> Tensor:
            with torch.no_grad():
                go, tr = x[:, :3], x[:, 3:6]
                be, pp = x[:, 6 : 6 + nb], x[:, 6 + nb :]
                # (n, 1, 3): read one way only, no test of a 3-frame (3, 3) for a matrix
                orient = go[:, None]
                return forward_kinematics(orient, term.pose(pp), be, tr, body_model=body_model)

        joints_truth = joints_of(x_true)
        joints_oracle = joints_of(refined.x)
    err_fit = _aligned_joint_errors_mm(fit.joints, views.joints)
    err_truth = _aligned_joint_errors_mm(joints_truth, views.joints)
    err_oracle = _aligned_joint_errors_mm(joints_oracle, views.joints)
    seen = views.observed_joints
    loss_fit = fit.loss.to(loss_oracle.dtype)
    tol = rel_tol * loss_oracle.abs().clamp(min=1.0)
    miss = loss_fit > loss_oracle + tol
    excess = err_fit.mean(-1) - err_oracle.mean(-1)
    prefer = ~miss & (excess > margin_mm)
    fine = ~miss & ~prefer

    def split(err: Tensor) -> dict[str, float]:
        return {
            "all": float(err.mean()),
            "observed": float(err[seen].mean()),
            "dropped": float(err[~seen].mean()) if bool((~seen).any()) else float("nan"),
        }

    return {
        "frames": n,
        "fit_seconds": fit_seconds,
        "p_mpjpe_mm": {
            "fit": split(err_fit),
            "representability": split(err_truth),
            "oracle": split(err_oracle),
        },
        "frames_miss": int(miss.sum()),
        "frames_prefer": int(prefer.sum()),
        "frames_fine": int(fine.sum()),
        "frames_below_truth_objective": int((loss_fit <= loss_truth).sum()),
        "excess_mm": {
            name: float(excess[mask].sum() / n)
            for name, mask in (("miss", miss), ("prefer", prefer), ("fine", fine))
        },
        "excess_mean_mm": {
            name: float(excess[mask].mean()) if bool(mask.any()) else 0.0
            for name, mask in (("miss", miss), ("prefer", prefer), ("fine", fine))
        },
        "objective_median": {
            "fit": float(loss_fit.median()),
            "truth": float(loss_truth.median()),
            "oracle": float(loss_oracle.median()),
        },
        "per_frame": {
            "loss_fit": loss_fit,
            "loss_truth": loss_truth,
            "loss_oracle": loss_oracle,
            "error_fit": err_fit.mean(-1),
            "error_truth": err_truth.mean(-1),
            "error_oracle": err_oracle.mean(-1),
            "miss": miss,
            "prefer": prefer,
        },
    }
