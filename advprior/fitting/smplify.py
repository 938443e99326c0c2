"""SMPLify-style fitting of a body model to 2D keypoints, with any pose prior.

Stages (all per frame; see ``docs/fitting.md``):

0. Camera: depth from torso length and focal length (``depth = f * torso_3d / torso_2d``, as
   SMPLify), then global orientation and translation on the torso keypoints (shoulders, hips),
   from each of the :data:`YAW_CANDIDATES` body yaws (upright) and (``view_starts``, the default)
   from the two orientations whose torso plane projects as the visible shoulders and hips do (a
   person lying, upside down, seen from above; at the plane's depth); each frame keeps its best
   orientation and (by default) the best one facing >= 60 degrees away from it, since a torso
   seen in 2D does not tell front-left from back-right; both go through the next stages, the
   lower final loss wins (SMPLify fits a body and its flip the same way).
1..4. Everything (orientation, translation, betas, pose through the prior) with the
   Geman-McClure reprojection term and decreasing prior/shape weights (SMPLify's schedule).

Objective per frame: ``sum_j c_j^2 rho_sigma(u_j - k_j) + w_prior E_prior + w_shape |beta|^2``
(+ ``w_pose E_pose`` from a pose density, by default the GMM's for GAN-S; + a depth anchor in
stage 0), ``rho_sigma(r) = sigma^2 r^2 / (sigma^2 + r^2)`` per pixel
coordinate. Each frame is its own optimisation problem (see :mod:`advprior.lbfgs`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advprior.fitting import keypoints as _keypoints
from advprior.fitting.camera import PinholeCamera, positive_number, real_number, whole_number
from advprior.fitting.keypoints import (
    SURFACE_POINTS,
    KeypointFormat,
    count_hint,
    get_format,
    mask_unobserved,
    model_joint_indices,
)
from advprior.fitting.priors import (
    POSE_DENSITY_WEIGHT,
    POSE_DIM,
    PriorTerm,
    frozen,
    resolve_pose_density,
    resolve_prior,
)
from advprior.fitting.result import FitResult, fit_environment
from advprior.interface import Prior
from advprior.inversion import with_autograd
from advprior.lbfgs import minimize_lbfgs
from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle
from advprior.tensors import cacheable, float64_device

#: SMPLify's stage weights (Bogo et al. 2016): (pose-prior weight, shape weight) per stage; the
#: objective multiplies the energies by their squares, as SMPLify's sum-of-squares residuals do.
SMPLIFY_STAGES: tuple[tuple[float, float], ...] = (
    (404.0, 100.0),
    (404.0, 50.0),
    (57.4, 10.0),
    (4.78, 5.0),
)
#: The pose stages a fit from a pose estimate (``init_pose``) runs when ``stages`` is not given,
#: per prior kind (:func:`default_stages`). SPIN's refinement (SMPLify's last stage alone) for a
#: normal latent: its energy ``|z|^2``, weighted 404^2 by SMPLify's first stages, pulls the
#: estimate's latent to the origin (validation, rounds 23-24, mean P-MPJPE over SMPL-24, COCO-17
#: and BODY_25 from a regressor's estimate: the VAE 84.0 mm with SMPLify's schedule, 69.2 with
#: the last stage alone; GAN-N 87.6 and 73.9; ``docs/fitting.md``, "A learned start"). SMPLify's
#: schedule for the others, which gain from it or tie: GAN-S 69.8 / 70.8, GAN-U 69.0 / 69.3, the
#: GMM 67.8 / 67.6 (within the 1 mm the rule asked for); no prior was not measured.
INIT_POSE_STAGES: dict[str, tuple[tuple[float, float], ...]] = {
    "normal": SMPLIFY_STAGES[-1:],
    "sphere": SMPLIFY_STAGES,
    "uniform": SMPLIFY_STAGES,
    "pose": SMPLIFY_STAGES,
    "none": SMPLIFY_STAGES,
}
#: Fixed weight of ``|pose|^2`` when fitting without a prior (radians^2 vs pixels^2).
NO_PRIOR_WEIGHT = 1.0
#: Weight of :meth:`PriorTerm.gauge` (keeps a sphere latent's norm near 1; no effect on poses).
GAUGE_WEIGHT = 100.0
#: Weight of the squared camera-depth change (metres^2) in stage 0, as SMPLify-X.
DEPTH_WEIGHT = 100.0
#: Body yaws (radians, about the body's up axis) tried in stage 0; 0 faces the camera.
YAW_CANDIDATES = tuple(i * math.pi / 4 for i in range(8))
OPTIMIZERS = ("lbfgs", "adam")


def _as_tensor(x: object, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    elif isinstance(x, (list, tuple)):
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    # keypoints from a network may carry autograd; the fit is not differentiable in them
    return x.detach()


#: Largest accepted keypoint coordinate (pixels). The robust reprojection loss squares
#: residuals and multiplies by sigma^2; beyond ~1e17 px float32 overflows (the fit returns NaN),
#: and no camera image is anywhere near this size, so a far smaller bound loses nothing.
MAX_KEYPOINT_PX = 1e9
#: Smallest accepted extent (pixels, the larger side of the bounding box) of a frame's visible
#: keypoints. Keypoints in normalised coordinates ([0, 1], [-1, 1]) span at most 2 units; no
#: detector finds a person 2 px tall, and a fit of one would be meaningless anyway.
MIN_KEYPOINT_SPAN_PX = 2.0
#: Smallest accepted focal length (pixels). The fit's weights (``sigma``, the stage weights,
#: the pose density's) are relative to squared pixels: in normalised units (focal ~1) the
#: prior outweighs the keypoints by ~1e5 and the fit ignores them. A 20 px wide image at a
#: 90 degree field of view still has a 10 px focal length.
MIN_FOCAL_PX = 10.0


def check_pixel_camera(camera: object) -> PinholeCamera:
    """``camera`` if it is a :class:`PinholeCamera` in pixels: ``TypeError`` for another type,
    ``ValueError`` for a focal length below :data:`MIN_FOCAL_PX` (normalised coordinates)."""
    if not isinstance(camera, PinholeCamera):
        raise TypeError(
            f"camera must be an advprior.fitting.PinholeCamera, got {type(camera).__name__}"
        )
    if min(camera.focal) < MIN_FOCAL_PX:
        raise ValueError(
            f"camera focal length {camera.focal} is below {MIN_FOCAL_PX:g}: the fit works in "
            "pixels (sigma and the prior weights are relative to squared pixels); for "
            "normalised coordinates multiply the keypoints, focal length and centre by the "
            "image size in pixels"
        )
    return camera


def prepare_keypoints(
    keypoints: object,
    confidence: object,
    fmt: KeypointFormat,
    min_keypoints: int = 2,
    *,
    check_layout: bool = True,
) -> tuple[Tensor, Tensor]:
    """Validate ``keypoints (B, J, 2)`` (or ``(B, J, 3)`` with confidence in the last column
    when ``confidence`` is None) and ``confidence (B, J)``; return float tensors.

    NaN keypoints count as missing (their confidence becomes 0); no frames (B = 0), Inf
    keypoints, coordinates beyond :data:`MAX_KEYPOINT_PX`, NaN or out-of-range confidences,
    and frames with fewer than two keypoints of positive confidence raise ``ValueError`` (the
    last check uses ``min_keypoints``; 0 skips it). Keypoints with no counterpart on the body
    (``fmt.unobserved``, BODY_25B's HeadTop) get confidence 0.
    :func:`~advprior.fitting.keypoints.check_layout` raises
    :class:`~advprior.errors.KeypointLayoutError` for BODY_25B keypoints given as
    ``openpose25`` and the reverse, unless ``check_layout`` is False.
    """
    kp = _as_tensor(keypoints, "keypoints")
    dtype = kp.dtype if kp.dtype == torch.float64 else torch.float32
    kp = kp.to(dtype)
    j = fmt.num_keypoints
    if kp.ndim != 3 or kp.shape[1] != j or kp.shape[2] not in (2, 3):
        hint = count_hint(kp.shape[1], fmt) if kp.ndim == 3 else ""
        raise ValueError(
            f"keypoints must have shape (B, {j}, 2) for keypoint_format "
            f"{fmt.name!r} (or (B, {j}, 3) with confidence), got {tuple(kp.shape)}{hint}"
        )
    if kp.shape[0] == 0:
        # an empty batch (every frame filtered out upstream) has nothing to fit; the fit
        # itself failed on it with a ZeroDivisionError
        raise ValueError(f"keypoints has no frames (shape {tuple(kp.shape)}); give B >= 1 frames")
    if confidence is None:
        if kp.shape[2] == 3:
            conf = kp[..., 2]
        else:
            conf = torch.ones(kp.shape[:2], dtype=dtype, device=kp.device)
    else:
        if kp.shape[2] == 3:
            raise ValueError(
                "keypoints has a third (confidence) column and confidence is also "
                "given; pass keypoints (B, J, 2) with confidence, or (B, J, 3) alone"
            )
        conf = _as_tensor(confidence, "confidence").to(dtype=dtype, device=kp.device)
        if conf.shape != kp.shape[:2]:
            raise ValueError(
                f"confidence must have shape {tuple(kp.shape[:2])} (B, J) to match "
                f"keypoints {tuple(kp.shape)}, got {tuple(conf.shape)}"
            )
    kp = kp[..., :2]
    # a missing keypoint (NaN coordinates) needs no confidence: a (B, J, 3) row [nan, nan, nan]
    # is missing, not a NaN confidence
    conf = torch.where(torch.isnan(kp).any(-1), torch.zeros_like(conf), conf)
    if bool(torch.isnan(conf).any()) or bool(((conf < 0) | (conf > 1)).any()):
        raise ValueError("confidence must lie in [0, 1] (no NaN)")
    if bool(torch.isinf(kp).any()):
        raise ValueError("keypoints contain +-Inf; mark missing keypoints with NaN or confidence 0")
    big = float(torch.nan_to_num(kp.abs(), nan=0.0).max()) if kp.numel() else 0.0
    if big > MAX_KEYPOINT_PX:
        raise ValueError(
            f"keypoints must be pixel coordinates with |x|, |y| <= {MAX_KEYPOINT_PX:.0e}, got "
            f"{big:.3g}: squared residuals that large overflow float32 and the fit turns NaN"
        )
    missing = torch.isnan(kp).any(-1)
    conf = torch.where(missing, torch.zeros_like(conf), conf)
    kp = torch.where(missing[..., None], torch.zeros_like(kp), kp)
    # BODY_25B keypoints passed as openpose25 (or the reverse) raise KeypointLayoutError; the
    # rule was measured on synthetic keypoints only, so a caller sure of its data can skip it
    if check_layout:
        _keypoints.check_layout(kp, conf, fmt)
    if fmt.unobserved:
        # keypoints with no counterpart on the body (BODY_25B's HeadTop): never fitted
        missing[:, list(fmt.unobserved)] = True
        conf = torch.where(missing, torch.zeros_like(conf), conf)
        kp = torch.where(missing[..., None], torch.zeros_like(kp), kp)
    visible = conf > 0
    seen = visible.sum(-1)
    bad = torch.nonzero(seen < min_keypoints).flatten().tolist()
    if bad:
        raise ValueError(
            f"frames [{_frame_list(bad)}] have fewer than 2 keypoints with confidence > 0 "
            "(all-zero confidence or NaN keypoints); nothing to fit there: drop them"
        )
    inf = torch.tensor(float("inf"), dtype=kp.dtype, device=kp.device)
    low = torch.where(visible[..., None], kp, inf).amin(1)
    high = torch.where(visible[..., None], kp, -inf).amax(1)
    span = (high - low).amax(-1)  # (B,), -inf without visible keypoints
    tiny = torch.nonzero((seen >= 2) & (span < MIN_KEYPOINT_SPAN_PX)).flatten().tolist()
    if tiny:
        raise ValueError(
            f"frames [{_frame_list(tiny)}]: their visible keypoints span less than "
            f"{MIN_KEYPOINT_SPAN_PX:g} px; keypoints must be pixel coordinates (normalised "
            "[0, 1] or [-1, 1] ones? multiply them by the image size; else drop the frames)"
        )
    return kp, conf


def _frame_list(frames: list[int]) -> str:
    return ", ".join(str(b) for b in frames[:10]) + (" ..." if len(frames) > 10 else "")


class _Body:
    """Keypoints in 3D ``(n, J, 3)`` and the 24 joints for body parameters, through the fastest
    route: forward kinematics for SMPL's joints; for surface keypoints, only those vertices on
    an SMPL :class:`~advprior.body.BodyModel`, else the full mesh."""

    def __init__(self, body_model: object, fmt: KeypointFormat) -> None:
        from advprior.body import forward_kinematics
        from advprior.body.model import check_body_model

        self.model = check_body_model(body_model)
        self.fmt = fmt
        self.num_betas = int(body_model.num_betas)
        self._fk = forward_kinematics
        self.index: list[int] | None = None
        self.points: tuple[list[int], list[int]] | None = None
        if fmt.needs_surface:
            like = {
                "dtype": getattr(body_model, "dtype", torch.float32),
                "device": getattr(body_model, "device", "cpu"),
            }
            with torch.no_grad():
                out = body_model(
                    global_orient=torch.zeros(1, 3, **like), body_pose=torch.zeros(1, 63, **like)
                )
            names = tuple(getattr(body_model, "extra_joint_names", SURFACE_POINTS))
            self.index = model_joint_indices(
                fmt, body_model.model_type, out.model_joints.shape[1], names
            )
            # An SMPL BodyModel can skin just the surface points (BodyModel.posed_points); its
            # model_joints are SMPL's 24 joints, then one vertex per extra joint name.
            extra = getattr(getattr(body_model, "layer", None), "vertex_joint_selector", None)
            extra = getattr(extra, "extra_joints_idxs", None)
            first = out.model_joints.shape[1] - (len(extra) if extra is not None else 0)
            fast = hasattr(body_model, "posed_points") and body_model.model_type == "smpl"
            if fast and extra is not None and first == 24:
                vertex = [int(extra[i - first]) for i in self.index if i >= first]
                slots = [i if i < first else first + vertex.index(int(extra[i - first]))
                         for i in self.index]  # fmt: skip
                self.points = (vertex, slots)

    def _on(self, name: str, values: Sequence[int], device: torch.device) -> Tensor:
        """The index list ``values`` as a tensor on ``device``, made once per device: indexing
        a GPU tensor by a Python list copies the list to the GPU at every call (the objective
        calls this at every evaluation), and the stream waits for each copy."""
        kept = self.__dict__.setdefault("_indices", {})
        key = (name, device)
        value = None if torch.jit.is_tracing() else kept.get(key)
        if value is None:
            with torch.inference_mode(False):
                value = torch.tensor(list(values), dtype=torch.long, device=device)
            if cacheable(value):
                kept[key] = value
        return value

    def __call__(
        self, go: Tensor, pose: Tensor, betas: Tensor, transl: Tensor
    ) -> tuple[Tensor, Tensor]:
        # (n, 1, 3), smplx's per-joint layout, reads one way only: as (n, 3) with n = 3 the
        # body functions would test at every objective evaluation whether the 3 rotation
        # vectors also make a rotation matrix (a device sync; the warning is for callers' data)
        orient = go[:, None]
        if self.index is None:
            joints = self._fk(orient, pose, betas, transl, body_model=self.model)
            return joints[:, self._on("sources", self.fmt.body_sources, joints.device)], joints
        if self.points is not None:
            vertex, slots = self.points
            points, joints = self.model.posed_points(
                orient, pose, vertex, betas=betas, transl=transl
            )
            keypoints = torch.cat([joints, points], 1)[:, self._on("slots", slots, joints.device)]
            return keypoints.to(go.dtype), joints.to(go.dtype)
        out = self.model(global_orient=orient, body_pose=pose, betas=betas, transl=transl)
        index = self._on("index", self.index, out.model_joints.device)
        return out.model_joints[:, index].to(go.dtype), out.joints.to(go.dtype)


def body_keypoints(
    global_orient: Tensor,
    body_pose: Tensor,
    betas: Tensor | None = None,
    transl: Tensor | None = None,
    *,
    body_model: object | None = None,
    keypoint_format: str | KeypointFormat = "smpl24",
) -> tuple[Tensor, Tensor]:
    """Where :func:`fit_keypoints` places the keypoints of ``keypoint_format`` on a body:
    ``(keypoints3d (B, K, 3), joints (B, 24, 3))`` in metres, world frame, for
    ``global_orient (B, 3)``, ``body_pose (B, 63)``, ``betas (B, num_betas)`` (default 0) and
    ``transl (B, 3)`` (default 0). SMPL joints come from forward kinematics, surface points
    (nose, eyes, ears, toes, heels) from the body model's mesh vertices; default body: the
    stand-in. Project them with the camera to get the fitter's own 2D keypoints of this body.
    Keypoints with no counterpart on the body (BODY_25B's HeadTop) are NaN."""
    from advprior.body.model import check_pose

    fmt = get_format(keypoint_format)
    # read (and checked, an ambiguous (3, 3) warned about) here, where the caller's data comes
    # in: _Body passes smplx's unambiguous (n, 1, 3) on
    global_orient, body_pose = check_pose(global_orient, body_pose)
    lead = torch.broadcast_shapes(global_orient.shape[:-1], body_pose.shape[:-1])
    global_orient = global_orient.expand(*lead, 3)
    body_pose = body_pose.expand(*lead, body_pose.shape[-1])
    if body_model is None:
        from advprior.body import load_body_model

        body_model = load_body_model(device=global_orient.device)
    n = global_orient.shape[0]
    like = {"dtype": global_orient.dtype, "device": global_orient.device}
    if betas is None:
        betas = torch.zeros(n, int(body_model.num_betas), **like)
    if transl is None:
        transl = torch.zeros(n, 3, **like)
    points, joints = _Body(body_model, fmt)(global_orient, body_pose, betas, transl)
    return mask_unobserved(points, fmt), joints


def geman_mcclure(sq_residual: Tensor, sigma: float) -> Tensor:
    """``sigma^2 r^2 / (sigma^2 + r^2)`` of squared residuals (pixels^2), elementwise."""
    s2 = sigma * sigma
    return s2 * sq_residual / (s2 + sq_residual)


def _yaw_orients(camera: PinholeCamera, like: Tensor) -> Tensor:
    """Global orientations ``(Y, 3)`` that stand the body upright facing the camera, turned by
    each of :data:`YAW_CANDIDATES`: ``R_go = R_cam^T Rx(pi) Ry(yaw)``."""
    flip = axis_angle_to_rotmat(like.new_tensor([math.pi, 0.0, 0.0]))
    yaws = like.new_tensor(YAW_CANDIDATES)
    turn = axis_angle_to_rotmat(
        torch.stack([torch.zeros_like(yaws), yaws, torch.zeros_like(yaws)], -1)
    )
    rot = camera.rotation_tensor(like).T @ flip @ turn
    return rotmat_to_axis_angle(rot)


def _pair_lengths(points: Tensor, pairs: Sequence[tuple[int, int]]) -> Tensor:
    a = points[..., [p[0] for p in pairs], :]
    b = points[..., [p[1] for p in pairs], :]
    return (a - b).norm(dim=-1)


def _torso_affine(
    kp: Tensor, seen: Tensor, camera: PinholeCamera, fmt: KeypointFormat, rest3d: Tensor
) -> tuple[Tensor, Tensor]:
    """The affine map ``(n, 2, 2)`` from the torso's frontal plane (the rest keypoints' x, y of
    the shoulders and hips, metres) to their image (normalised image units, pixels minus the
    centre over the focal length), least squares on the visible ones, and ``(n,)`` bool where
    it is defined (at least three of them visible, not in a line)."""
    torso = sorted({i for pair in fmt.torso for i in pair})
    # in the keypoints' dtype: a bool mask divided by its count would take torch's default
    # dtype, and a user's float64 default met float32 keypoints in a matmul further on
    w = seen[:, torso].to(kp.dtype)
    q = torch.stack(
        [
            (kp[:, torso, 0] - camera.center[0]) / camera.focal[0],
            (kp[:, torso, 1] - camera.center[1]) / camera.focal[1],
        ],
        -1,
    )
    p = rest3d[torso, :2][None].expand(kp.shape[0], -1, -1)
    wn = w / w.sum(-1, keepdim=True).clamp(min=1e-9)
    pc = p - (p * wn[..., None]).sum(1, keepdim=True)
    qc = q - (q * wn[..., None]).sum(1, keepdim=True)
    gram = (pc * w[..., None]).transpose(1, 2) @ pc  # (n, 2, 2)
    cross = (qc * w[..., None]).transpose(1, 2) @ pc
    # Three points span the plane when the smaller eigenvalue of their scatter is not tiny
    # against the larger (shoulders and hips, ~0.3 x 0.5 m, give ~0.1-0.3).
    eig = torch.linalg.eigvalsh(gram)
    ok = (w.sum(-1) >= 3) & (eig[:, 0] > 1e-2 * eig[:, 1].clamp(min=1e-12))
    eye = torch.eye(2, dtype=kp.dtype, device=kp.device)
    affine = cross @ torch.linalg.inv(torch.where(ok[:, None, None], gram, eye))
    return affine, ok


def _torso_plane_depth(affine: Tensor, ok: Tensor) -> tuple[Tensor, Tensor]:
    """Depth ``(n,)`` (metres) of the torso from :func:`_torso_affine`'s map, and where defined.

    Seen from any direction, a plane's image is an affine map of it whose larger singular value
    is the scale ``1 / depth``: a line in the plane parallel to the image keeps its length, only
    the direction across it shortens (by the cosine of the tilt). SMPLify's shoulder-hip length
    ratio is that shortened length whenever the torso leans towards or away from the camera (a
    camera above the person, a person lying feet first) and overestimated the depth ~2x in such
    views (``benchmarks/fit_views.py``)."""
    scale = torch.linalg.svdvals(affine)[:, 0]
    return 1.0 / scale.clamp(min=1e-9), ok & (scale > 0)


def _plane_orients(affine: Tensor, ok: Tensor, camera: PinholeCamera) -> Tensor:
    """The two body orientations ``(n, 2, 3)`` (axis-angle, world frame) whose frontal plane
    projects as :func:`_torso_affine`'s map (weak perspective): the map divided by its scale is
    the upper-left 2 x 2 block ``U diag(1, c) V^T`` of the camera-from-body rotation, which is
    ``U Rx(+-acos c) V^T`` (block-extended); the sign is the torso's lean towards or away from
    the camera, which the plane's image cannot tell. Rows where ``ok`` is False get the upright
    body facing the camera."""
    n = affine.shape[0]
    like = {"dtype": affine.dtype, "device": affine.device}
    eye = torch.eye(2, **like).expand(n, 2, 2)
    u, sv, vh = torch.linalg.svd(torch.where(ok[:, None, None], affine, eye))
    c = (sv[:, 1] / sv[:, 0].clamp(min=1e-12)).clamp(0.0, 1.0)
    # For a rotation the 2 x 2 block's determinant is R_33 = c: negative where the body's
    # forward axis points towards the camera (facing it), so the sign goes into c, not U.
    mirror = torch.linalg.det(u) * torch.linalg.det(vh) < 0
    u = torch.cat([u[:, :, :1], torch.where(mirror[:, None, None], -u[:, :, 1:], u[:, :, 1:])], -1)
    c = torch.where(mirror, -c, c)
    sn = (1.0 - c * c).clamp(min=0.0).sqrt()
    out = []
    for sign in (1.0, -1.0):
        m = torch.zeros(n, 3, 3, **like)
        m[:, 0, 0] = 1.0
        m[:, 1, 1] = c
        m[:, 2, 2] = c
        m[:, 1, 2] = -sign * sn
        m[:, 2, 1] = sign * sn
        u3 = torch.zeros(n, 3, 3, **like)
        u3[:, :2, :2] = u
        u3[:, 2, 2] = 1.0
        v3 = torch.zeros(n, 3, 3, **like)
        v3[:, :2, :2] = vh
        v3[:, 2, 2] = 1.0
        out.append(u3 @ m @ v3)
    rot = torch.stack(out, 1)  # (n, 2, 3, 3) camera from body
    upright = camera.rotation_tensor(affine).T @ axis_angle_to_rotmat(
        affine.new_tensor([math.pi, 0.0, 0.0])
    )
    rot = camera.rotation_tensor(affine).T @ rot
    rot = torch.where(ok[:, None, None, None], rot, upright)
    return rotmat_to_axis_angle(rot.reshape(-1, 3, 3)).view(n, 2, 3)


def _initial_translation(
    kp: Tensor,
    conf: Tensor,
    camera: PinholeCamera,
    fmt: KeypointFormat,
    rest3d: Tensor,
    posed3d: Tensor,
    plane: Tensor | None = None,
) -> Tensor:
    """The torso's depth (SMPLify's ``f * L3 / L2`` from the shoulder-hip lengths seen in 2D,
    the spread of all visible keypoints when no shoulder-hip pair is visible; on rows where
    ``plane (n,)`` is True and three shoulders/hips are visible, :func:`_torso_plane_depth`),
    then the translation
    ``(n, 3)`` putting the visible keypoints' 3D centroid on the ray of their 2D centroid.

    ``rest3d (J, 3)``: keypoints at rest; ``posed3d (n, J, 3)``: keypoints of the initial
    orientation and pose at zero translation."""
    focal = 0.5 * (camera.focal[0] + camera.focal[1])
    seen = (conf > 0).to(kp.dtype)
    pairs = fmt.torso
    pair_seen = seen[:, [p[0] for p in pairs]] * seen[:, [p[1] for p in pairs]]
    l2 = (_pair_lengths(kp, pairs) * pair_seen).sum(-1)
    l3 = (_pair_lengths(rest3d, pairs)[None] * pair_seen).sum(-1)
    # Fallback: RMS distance to the centroid of the visible keypoints, image plane vs body plane.
    w = seen / seen.sum(-1, keepdim=True)
    c2 = (kp * w[..., None]).sum(1)
    spread2 = (((kp - c2[:, None]) ** 2).sum(-1) * w).sum(-1).sqrt()
    rest_xy = rest3d[None, :, :2].expand(kp.shape[0], -1, -1)
    c3 = (rest_xy * w[..., None]).sum(1)
    spread3 = (((rest_xy - c3[:, None]) ** 2).sum(-1) * w).sum(-1).sqrt()
    use_torso = (pair_seen.sum(-1) > 0) & (l2 > 1e-6)
    ratio = torch.where(use_torso, l3 / l2.clamp(min=1e-6), spread3 / spread2.clamp(min=1e-6))
    depth = focal * ratio
    if plane is not None:
        depth_plane, ok = _torso_plane_depth(*_torso_affine(kp, seen, camera, fmt, rest3d))
        depth = torch.where(plane & ok, depth_plane, depth)
    depth = depth.clamp(min=0.1, max=1e3)
    target = camera.backproject(c2, depth)
    centroid = (posed3d * w[..., None]).sum(1)
    return target - centroid


def _split(x: Tensor, nb: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return x[:, :3], x[:, 3:6], x[:, 6 : 6 + nb], x[:, 6 + nb :]


def _minimize(
    fn, x0: Tensor, optimizer: str, iterations: int, lr: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Run one stage; returns ``(x, loss, iterations)`` per row."""
    if optimizer == "lbfgs":
        # torch.optim.LBFGS's default evaluation budget (max_iter * 5 / 4): without it a few
        # frames with long line searches set the run time of the whole batch.
        res = minimize_lbfgs(fn, x0, max_iter=iterations, max_evals=iterations * 5 // 4)
        return res.x, res.loss, res.iterations
    x = x0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(iterations):
        opt.zero_grad(set_to_none=True)
        with torch.enable_grad():
            fn(x).sum().backward()
        opt.step()
    with torch.no_grad():
        loss = fn(x)
    steps = torch.full((x.shape[0],), iterations, dtype=torch.long, device=x.device)
    return x.detach(), loss, steps


def stages_kind(term: PriorTerm) -> str:
    """The key of :data:`INIT_POSE_STAGES` for ``term``'s prior: its latent kind (``"normal"``,
    ``"sphere"``, ``"uniform"``), ``"pose"`` for a pose-space prior (the GMM) or ``"none"``."""
    if term.prior is None:
        return "none"
    return "pose" if term.space is None else term.space.kind


def default_stages(term: PriorTerm, init_pose: bool) -> tuple[tuple[float, float], ...]:
    """The pose stages :func:`fit_keypoints` runs when ``stages`` is None: SMPLify's schedule
    (:data:`SMPLIFY_STAGES`), or, when the fit starts from a pose estimate (``init_pose``),
    :data:`INIT_POSE_STAGES` of the prior's kind (:func:`stages_kind`)."""
    return INIT_POSE_STAGES[stages_kind(term)] if init_pose else SMPLIFY_STAGES


@with_autograd
def fit_keypoints(
    keypoints: object,
    confidence: object,
    camera: PinholeCamera,
    *,
    body_model: object | None = None,
    prior: object = "gan-s",
    keypoint_format: str | KeypointFormat = "smpl24",
    iterations: int = 30,
    batch: bool = True,
    optimizer: str = "lbfgs",
    sigma: float = 100.0,
    stages: Sequence[tuple[float, float]] | None = None,
    lr: float = 0.02,
    orientations: int = 2,
    starts: int = 1,
    latent_density: object | None = None,
    latent_weight: float = 1.0,
    pose_density: object = "auto",
    pose_weight: float = POSE_DENSITY_WEIGHT,
    view_starts: bool = True,
    pixel_scale: float | str = "auto",
    check_layout: bool = True,
    init_pose: object | None = None,
    init_global_orient: object | None = None,
    init_betas: object | None = None,
    init_transl: object | None = None,
) -> FitResult:
    """Fit body pose, shape, orientation and translation to 2D keypoints, per frame.

    Args:
        keypoints: ``(B, J, 2)`` pixels (OpenCV image coordinates: x right, y down), or
            ``(B, J, 3)`` with the confidence in the last column when ``confidence`` is None. NaN
            marks a missing keypoint (treated as confidence 0).
        confidence: ``(B, J)`` in ``[0, 1]``, or None (all 1, or the third keypoint column).
            Each frame needs at least two keypoints with positive confidence.
        camera: a :class:`PinholeCamera` (intrinsics, optional world-to-camera rotation).
        body_model: an :class:`advprior.body.BodyModel` (real SMPL/SMPL-H/SMPL-X or stand-in);
            default: the open stand-in body.
        prior: ``"gan-s"`` or any alias/path :func:`advprior.hub.load_pretrained` accepts, a
            ``PosePrior``, a VAE (``model_type "vae"``), a GMM (``"gmm"``) or ``None`` (also
            ``"none"``).
        keypoint_format: ``"smpl24"``, ``"openpose25"`` (OpenPose BODY_25), ``"openpose25b"``
            (OpenPose BODY_25B, or the first 25 of BODY_135) or ``"coco17"`` (see
            :mod:`advprior.fitting.keypoints`; all but the first need the body model's surface
            points). BODY_25B's HeadTop has no counterpart on the body: ignored, NaN in
            ``projected``. BODY_25B keypoints given as ``"openpose25"``, or the reverse, raise
            :class:`~advprior.errors.KeypointLayoutError` naming the right format (unless
            ``check_layout`` is False).
        iterations: optimiser iterations per stage (L-BFGS iterations, with at most
            ``iterations * 5 // 4`` batched objective evaluations as ``torch.optim.LBFGS``'s
            default budget; or Adam steps).
        batch: fit all frames in one batched optimisation (True) or one after another (False).
            Frames never influence each other (a frame gives the same bits at the same place
            in any batch of the same size, whatever the other frames hold), but the batch size
            and the frame's place in it change float32 rounding (CPU matrix kernels treat rows
            in blocks), which L-BFGS amplifies: a frame fitted alone, or in a reordered batch,
            can end centimetres from its batched fit after 10-30 iterations (and in another
            basin now and then), as any two nearly equal starts can.
        optimizer: ``"lbfgs"`` (batched, per-frame strong-Wolfe line search) or ``"adam"``.
        sigma: Geman-McClure scale in pixels.
        stages: ``(prior weight, shape weight)`` per pose stage; energies are multiplied by the
            squares. Given, it always runs. None (default): SMPLify's schedule
            (:data:`SMPLIFY_STAGES`, large prior weights first), except that a fit from a pose
            estimate (``init_pose`` given) with a normal-latent prior (the VAE, GAN-N: energy
            ``|z|^2``) runs SMPLify's last stage alone, SPIN's refinement: SMPLify's first
            stages weigh ``|z|^2`` by 404^2 and pull the estimate to the latent's origin
            (measured on validation; :data:`INIT_POSE_STAGES`, :func:`default_stages`,
            ``docs/fitting.md``, "A learned start"). ``init_global_orient``, ``init_betas`` or
            ``init_transl`` without ``init_pose`` keep SMPLify's schedule (the pose starts at
            the prior's centre). ``info["stages"]`` records the stages run,
            ``info["stages_from"]`` why: ``"argument"``, ``"smplify"`` or ``"init_pose"``.
        lr: Adam's learning rate (ignored by L-BFGS).
        orientations: body orientations carried from the camera stage through the pose stages
            per frame, the frame keeping the one with the lower final loss: 2 (the best and the
            best facing at least 60 degrees away from it: SMPLify's guard against the torso's
            front/back ambiguity) or 1 (half the work). With ``init_global_orient`` the
            estimate's orientation is carried besides these, and 0 carries it alone.
        starts: starting poses per frame and orientation, the frame keeping the lowest final
            loss: 1 (the prior's central pose, :meth:`PriorTerm.init`) or more
            (:meth:`PriorTerm.starts`: the central pose, then representative poses of the
            prior's samples, or the GMM's heaviest component means). The work grows
            ``starts``-fold; frames stay independent. Without a prior there is one start.
        latent_density: for a sphere-latent prior (GAN-S), a density on its latent sphere
            (:class:`advprior.fitting.latent_density.VMFMixture`) whose negative log-density,
            times ``latent_weight``, is added to every pose stage: prefers common poses among
            those that explain the keypoints equally well.
        pose_density: a density on poses whose energy of the fitted pose, times
            ``pose_weight``, is added to every pose stage (not scaled by the stage weights):
            ``"auto"`` (default) the bundled GMM for a sphere-latent prior (GAN-S has no energy
            of its own, so without it nothing prefers a common pose over a rare one that
            projects as well) and nothing for the others; ``None``/``"none"``; an alias or path
            of a pose-space prior; or a pose-space prior object (e.g. a ``GMMPrior``). See
            :func:`advprior.fitting.priors.resolve_pose_density`. Validated for the shipped
            GAN-S; with a GAN-S of your own, compare with ``None`` on validation frames (one
            of three other generators measured fitted worse with it; ``docs/fitting.md``).
        pose_weight: the pose density's weight (default
            :data:`advprior.fitting.priors.POSE_DENSITY_WEIGHT`, chosen on validation for the
            pixel scale of ``docs/fitting.md``'s benchmark; like SMPLify's stage weights it is
            relative to squared pixels).
        view_starts: also start the camera stage, per frame, from the two orientations whose
            torso plane projects as the visible shoulders and hips do (the torso leaning
            towards or away from the camera), at the depth that plane's image gives. For
            people seen from a camera looking down steeply, lying feet first or upside down,
            whose leaning torso makes SMPLify's depth guess about 2x too far (validation:
            feet first 103 -> 82 mm P-MPJPE, seen from above 88 -> 83, handstand 90 -> 80;
            upright people within noise; ``docs/fitting.md``, "Views and body orientations").
            On by default since round 16 (the test-split tables were measured again with it);
            ``False`` gives 0.2.0's camera stage bit for bit.
        pixel_scale: how many of your pixels make one pixel of the scale the defaults suit
            (``sigma``, ``stages`` and ``pose_weight`` are tuned for people a few hundred
            pixels tall, as in ``docs/fitting.md``'s benchmark). The fit runs on keypoints and
            camera divided by it, so that every weight keeps its balance; ``projected`` comes
            back in your pixels and ``loss`` in your squared pixels. ``"auto"`` (default):
            :func:`auto_pixel_scale` of the keypoints (1 for people up to about 500 pixels
            tall, then 2, 4, ...; ``docs/fitting.md``, "Large images"), the median frame's for
            the batch, except that a person whose own scale is more than twice it is fitted at
            that (frames stay independent: the other frames keep their place in a batch of the
            call's size; ``info["pixel_scale"]`` is then a list, one scale per frame); a
            number: that scale for every frame (``1`` is the fit of 0.2.0). An
            image scaled by a power of two, with ``pixel_scale`` scaled alike, gives the same
            fit bit for bit.
        check_layout: refuse OpenPose BODY_25B keypoints given as ``"openpose25"`` and BODY_25
            ones as ``"openpose25b"`` (:func:`advprior.fitting.keypoints.check_layout`; default
            True). ``False`` skips the check, for a dataset you know is in the format given
            that trips it anyway (the rule's margin was measured on synthetic keypoints only);
            recorded as ``info["check_layout"]``.
        init_pose: a per-frame starting pose, e.g. a regressor's estimate (SPIN-style
            refinement): ``(B, 63 | 69)`` axis-angle (radians; poses that can only be degrees
            are refused), ``(B, 21 | 23, 3)`` per joint or ``(B, 21 | 23, 3, 3)`` rotation
            matrices (:func:`advprior.skeleton.check_body_pose`); SMPL's hand joints 22-23 are
            not fitted and ignored. A latent prior starts from its inversion,
            :meth:`Prior.invert <advprior.interface.Prior.invert>` of the pose, batched (GAN-S:
            an optimisation through the decoder, measured about as long as the default fit
            itself; the VAE: one encoder pass); the GMM and no prior from the pose itself. It
            is the pose of the camera stage's body and the first of the ``starts``
            (``starts=1``: the init only; more add the prior's representative poses after it).
            With ``stages`` None it also picks the pose stages (SMPLify's last stage alone for
            the VAE and GAN-N; see ``stages``).
        init_global_orient: ``(B, 3)`` axis-angle, the per-frame orientation estimate, in the
            frame of ``FitResult.global_orient`` (the world frame the camera's ``rotation``
            maps from: the camera frame itself for a camera without rotation, as a regressor
            predicts it). Added to the camera stage's candidate orientations (refined there
            with the others, from ``init_transl`` or the depth guess) and always carried
            through the pose stages, besides the ``orientations`` built-in ones the fit would
            carry without it (2 by default: 1.5x the pose stages' work), the lowest final loss
            winning per frame; ``orientations=0``: the estimate's alone (SPIN-style trust in
            the regressor, the default fit's work).
        init_betas: ``(B, K')`` shape coefficients to start from, ``K' <= num_betas`` (the
            rest start at 0); also the camera stage's body.
        init_transl: ``(B, 3)`` metres, in the frame of ``FitResult.transl``: replaces the
            camera stage's depth guess (and its depth anchor) for every candidate orientation
            (the body turns about its root joint, so a translation places the pelvis whatever
            the orientation). Any subset of the four may be given; ``info["init"]`` says which
            were (and the inversion's seconds); see ``docs/fitting.md``, "Starting from a
            regressor's estimate".

    Returns:
        A :class:`FitResult` (``body_pose (B, 63)``, ``global_orient``, ``transl``, ``betas``,
        ``latent`` or None, ``loss (B,)``, ``joints (B, 24, 3)``, ...).
    """
    fmt = get_format(keypoint_format)
    check_pixel_camera(camera)
    if whole_number(iterations) is None or iterations < 1:
        raise ValueError(f"iterations must be a positive int, got {iterations!r}")
    iterations = int(iterations)
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    sigma = _check_sigma(sigma)
    if stages is not None:
        stages = [(float(a), float(b)) for a, b in stages]
        if not stages:
            raise ValueError("stages must list at least one (prior weight, shape weight) pair")
    kp, conf = prepare_keypoints(keypoints, confidence, fmt, check_layout=bool(check_layout))
    groups = _scale_groups(pixel_scale, kp, conf)
    kp, conf, model, body_model = place_fit(keypoints, kp, conf, prior, body_model)
    term = _prior_term(model, latent_density, latent_weight, pose_density, pose_weight, kp.device)
    stages_from = "argument"
    if stages is None:
        stages_from = "init_pose" if init_pose is not None else "smplify"
        stages = [(float(a), float(b)) for a, b in default_stages(term, init_pose is not None)]
    body = _Body(body_model, fmt)
    if orientations not in (0, 1, 2) or isinstance(orientations, bool):
        raise ValueError(
            f"orientations must be 1 or 2 (or 0 with init_global_orient), got {orientations!r}"
        )
    if whole_number(starts) is None or starts < 1:
        raise ValueError(f"starts must be a positive int, got {starts!r}")
    starts = int(starts)
    if orientations == 0 and init_global_orient is None:
        raise ValueError(
            "orientations=0 (carry only the estimate's orientation) needs init_global_orient"
        )
    init, init_info = _check_init(
        init_pose, init_global_orient, init_betas, init_transl, kp, term, body.num_betas
    )
    opts = _Options(
        camera,
        body,
        term,
        fmt,
        iterations,
        optimizer,
        float(sigma),
        stages,
        float(lr),
        orientations,
        starts if term.prior is not None else 1,
        bool(view_starts),
    )
    kind = term.describe()
    info: dict[str, Any] = {
        "prior": prior if isinstance(prior, str) or prior is None else type(prior).__name__,
        "prior_kind": kind,
        "keypoint_format": fmt.name,
        "check_layout": bool(check_layout),
        "optimizer": optimizer,
        "iterations_per_stage": iterations,
        "sigma_px": float(sigma),
        "stages": stages,
        "stages_from": stages_from,
        "orientations": orientations,
        "starts": opts.starts,
        "view_starts": opts.view_starts,
        "pixel_scale": _scale_info(groups, kp.shape[0]),
        "batch": bool(batch),
        "latent_density": None
        if latent_density is None
        else {"components": int(latent_density.mu.shape[0]), "weight": float(latent_weight)},
        "pose_density": kind["pose_density"],
        "environment": fit_environment(kp.device),
        "init": init_info,
    }
    pieces = []
    seconds = 0.0
    with frozen(model), frozen(body_model), frozen(term.pose_density):
        for g, (scale, rows) in enumerate(groups):
            # People of different sizes are fitted as separate batches, each at its own scale;
            # one group (every benchmark) is the whole batch. The batch's scale (the first,
            # smallest group) is fitted on every frame, the others' results unused, so that its
            # frames keep their place in a batch of the caller's size: a frame's float rounding
            # depends on both (L-BFGS amplifies it to centimetres), and a near person or a
            # false detection spanning the image must not change everyone else's fit.
            whole = rows is None or (batch and g == 0)
            kp_g, conf_g = (kp, conf) if whole else (kp[rows], conf[rows])
            init_g = init if init is None or whole else init.take(rows)
            opts_g = opts
            if scale != 1.0:
                kp_g = kp_g / scale
                opts_g = replace(opts, camera=camera.scaled(1.0 / scale))
            if batch or kp_g.shape[0] <= 1:
                parts = [_fit(kp_g, conf_g, opts_g, init_g)]
            else:
                parts = [
                    _fit(
                        kp_g[i : i + 1],
                        conf_g[i : i + 1],
                        opts_g,
                        None if init_g is None else init_g.take(slice(i, i + 1)),
                    )
                    for i in range(kp_g.shape[0])
                ]
            piece = _concat(parts)
            if whole and rows is not None:
                piece = _take(piece, rows)
            seconds += sum(p.info["seconds"] for p in parts)
            if scale != 1.0:
                # back to the caller's pixels: every term of the objective is squared pixels there
                piece.projected = piece.projected * scale
                piece.loss = piece.loss * (scale * scale)
            pieces.append(piece)
    result = _concat(pieces)
    if len(groups) > 1:
        order = torch.cat([rows for _, rows in groups])
        result = _take(result, torch.argsort(order))
    result.info = {**info, "seconds": seconds}
    return result


#: Person size (pixels: the larger side of a frame's visible keypoints' bounding box) that the
#: default weights suit: about the median of docs/fitting.md's benchmark people (303 px with
#: SMPL-24 joints, 346 px with BODY_25, whose nose and heels reach further;
#: benchmarks/fit_large_images.py, validation split).
REFERENCE_PERSON_PX = 350.0


def auto_pixel_scale(keypoints: Tensor, confidence: Tensor, per_frame: bool = False) -> Any:
    """The ``pixel_scale`` that ``pixel_scale="auto"`` picks.

    Args:
        keypoints: ``(..., J, 2)`` pixels; confidence ``(..., J)``, 0 for missing keypoints.
        per_frame: each frame's own scale instead of one for the batch (the median frame's).
            :func:`fit_keypoints` fits at the batch's scale, except a person whose own scale is
            more than twice it (a nearer person among farther ones), who is fitted at its own;
            :func:`fit_sequence` does the same per clip (a clip's scale is its median
            frame's), its frames being tied together.

    Returns:
        The power of two nearest to the person's size (the larger side of the visible
        keypoints' bounding box) over :data:`REFERENCE_PERSON_PX`, and at least 1: a float
        for the median size over frames, or with ``per_frame`` a float64 tensor of shape
        ``(...)`` (1 for a frame with fewer than two visible keypoints). Powers of two keep
        the scaling exact in floating point (so the benchmark's people, 0.87-0.99 of the
        reference, get 1, the fit of 0.2.0, bit for bit), and a fit is within noise of its
        best within a factor of 2 of the right scale (``docs/fitting.md``, "Large images").
        Never below 1: for people smaller than the benchmark's a detector's noise does not
        shrink with them, and the defaults were not measured against that.
    """
    seen = confidence > 0
    xy = keypoints.detach()
    big = torch.full_like(xy, float("inf"))
    low = torch.where(seen[..., None], xy, big).amin(-2)
    high = torch.where(seen[..., None], xy, -big).amax(-2)
    size = (high - low).amax(-1)
    valid = seen.sum(-1) >= 2
    if per_frame:
        ratio = torch.where(valid, size, 0.0).to(torch.float64) / REFERENCE_PERSON_PX
        # a ratio of 0 or NaN (one point seen twice, no keypoints) keeps the scale of 0.2.0
        ratio = torch.where(ratio > 0, ratio, 1.0)
        return torch.exp2(torch.round(torch.log2(ratio))).clamp(min=1.0)
    size = size[valid]
    if size.numel() == 0:
        return 1.0
    ratio = float(size.float().median()) / REFERENCE_PERSON_PX
    if not ratio > 0:
        return 1.0
    return float(max(1.0, 2.0 ** round(math.log2(ratio))))


def _scale_groups(
    value: object, keypoints: Tensor, confidence: Tensor, clips: int | None = None
) -> list[tuple[float, Tensor | None]]:
    """``(scale, indices)`` per distinct pixel scale of a ``(B, J, 2)`` batch: indices of
    frames, or with ``clips``, of the clips the B frames are (``clips`` x ``B / clips`` frames,
    clip after clip; a clip's own scale is its median frame's). One group with ``None``
    (everything) when all share a scale."""
    batch = _check_pixel_scale(value, keypoints, confidence)
    items = keypoints.shape[0] if clips is None else clips
    if not (isinstance(value, str) and value == "auto") or items <= 1:
        return [(batch, None)]
    # A person more than twice the batch's scale (a factor of 4 or more in size) is fitted at
    # its own: that far off, the shared scale costs 20-50 mm (docs/fitting.md, "Large images").
    # Never the other way: a body's box is at most about its height, so a box much larger than
    # the others' is a nearer person, but a much smaller one is as often a crouching, folded or
    # partly visible person of the batch's scale as a farther one.
    if clips is None:
        own = auto_pixel_scale(keypoints, confidence, per_frame=True)
    else:
        per_clip = zip(keypoints.chunk(clips), confidence.chunk(clips), strict=True)
        own = torch.tensor([auto_pixel_scale(k, c) for k, c in per_clip], dtype=torch.float64)
    scales = torch.where(own > 2.0 * batch, own, torch.full_like(own, batch))
    distinct = torch.unique(scales).tolist()
    if len(distinct) == 1:
        return [(batch, None)]
    return [(float(v), torch.nonzero(scales == v).flatten()) for v in distinct]


def _scale_info(groups: list[tuple[float, Tensor | None]], frames: int) -> Any:
    """``info["pixel_scale"]``: the scale, or with several, the list of each frame's (clip's)."""
    if len(groups) == 1:
        return groups[0][0]
    scales = [0.0] * frames
    for scale, rows in groups:
        for i in rows.tolist():
            scales[i] = scale
    return scales


def _take(result: FitResult, rows: Tensor) -> FitResult:
    """The frames ``rows`` of ``result``, in that order."""
    fields = {
        name: None if getattr(result, name) is None else getattr(result, name)[rows]
        for name in (
            "body_pose",
            "global_orient",
            "transl",
            "betas",
            "latent",
            "loss",
            "joints",
            "projected",
            "iterations",
        )
    }
    return FitResult(**fields)


def _check_pixel_scale(value: object, keypoints: Tensor, confidence: Tensor) -> float:
    if isinstance(value, str) and value == "auto":
        return auto_pixel_scale(keypoints, confidence)
    number = positive_number(value)
    if number is None:
        raise ValueError(f"pixel_scale must be a positive number or 'auto', got {value!r}")
    return number


def _check_sigma(value: object) -> float:
    number = positive_number(value)
    if number is None:
        raise ValueError(f"sigma must be a positive number of pixels, got {value!r}")
    return number


def _check_weight(value: object, name: str) -> float:
    number = real_number(value)
    if number is None or not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return number


def place_fit(
    keypoints: object, kp: Tensor, conf: Tensor, prior: object, body_model: object | None
) -> tuple[Tensor, Tensor, Prior | None, object]:
    """``(kp, conf, prior model, body model)`` of a fit, all on the device it runs on.

    That device is the prior's when the prior is passed as a module (its decoder cannot take
    latents from elsewhere), else that of ``keypoints`` (the caller's) when they are a tensor,
    else (numpy keypoints have no device) the body model's, else the CPU. The checked
    keypoints ``kp``, ``conf``, a prior given by name and the default stand-in body are put
    there: GPU keypoints with ``prior="gan-s"`` (which loads on the CPU), and numpy or CPU
    keypoints with a prior on a GPU, met on mixed devices at the first decode. On Apple's MPS,
    which has no float64, float64 keypoints (numpy's default) are fitted in float32."""
    from advprior.body import load_body_model

    model, _ = resolve_prior(prior)
    named = isinstance(prior, str)
    if model is not None and not named and isinstance(model, torch.nn.Module):
        device = model.device
    elif isinstance(keypoints, Tensor):
        device = keypoints.device
    else:
        device = getattr(body_model, "device", kp.device)
    if body_model is None:
        body_model = load_body_model(device=device)
    if named and model is not None:
        model = model.to(device)  # loaded by this call: no one else holds it
    dtype = kp.dtype if float64_device(device) == device else torch.float32
    return kp.to(device, dtype), conf.to(device, dtype), model, body_model


def _prior_term(
    model: object,
    latent_density: object | None,
    latent_weight: object,
    pose_density: object,
    pose_weight: object,
    device: torch.device | None = None,
) -> PriorTerm:
    """The :class:`PriorTerm` of a fit, its weights checked and its pose density resolved; both
    densities on ``device`` (the fit's), copied there when elsewhere (the caller's objects stay
    where they are: a latent density fitted on the CPU serves a GPU fit)."""
    latent_weight = _check_weight(latent_weight, "latent_weight")
    pose_weight = _check_weight(pose_weight, "pose_weight")
    density = resolve_pose_density(pose_density, model)
    if device is not None:
        density = _on_device(density, device)
        latent_density = _on_device(latent_density, device)
    return PriorTerm(model, latent_density, latent_weight, density, pose_weight)


def _on_device(module: Any, device: torch.device) -> Any:
    """``module``, or a copy of it on ``device`` when its tensors are elsewhere."""
    if not isinstance(module, torch.nn.Module):
        return module
    for t in (*module.parameters(), *module.buffers()):
        return module if t.device == device else copy.deepcopy(module).to(device)
    return module


def _concat(parts: list[FitResult]) -> FitResult:
    def cat(name: str) -> Tensor | None:
        values = [getattr(p, name) for p in parts]
        return None if values[0] is None else torch.cat(values)

    if len(parts) == 1:
        return parts[0]
    return FitResult(
        body_pose=cat("body_pose"),
        global_orient=cat("global_orient"),
        transl=cat("transl"),
        betas=cat("betas"),
        latent=cat("latent"),
        loss=cat("loss"),
        joints=cat("joints"),
        projected=cat("projected"),
        iterations=cat("iterations"),
    )


@dataclass(frozen=True)
class _Options:
    camera: PinholeCamera
    body: _Body
    term: PriorTerm
    fmt: KeypointFormat
    iterations: int
    optimizer: str
    sigma: float
    stages: list[tuple[float, float]]
    lr: float
    orientations: int
    starts: int = 1
    view_starts: bool = True


@dataclass(frozen=True)
class _Init:
    """A fit's per-frame starting values (one row per frame), each None where not given:
    ``params`` the prior's free numbers of the start pose (the inverted latent, or the pose)."""

    params: Tensor | None
    global_orient: Tensor | None
    betas: Tensor | None
    transl: Tensor | None

    def take(self, rows: Tensor | slice) -> _Init:
        """The frames ``rows``, in that order."""
        values = (self.params, self.global_orient, self.betas, self.transl)
        return _Init(*(None if v is None else v[rows] for v in values))


def _init_rows(value: object, name: str, n: int, width: str, kp: Tensor) -> Tensor:
    """``value`` as a finite ``(n, w)`` tensor in ``kp``'s dtype and device (``width``: the
    message's name of ``w``); its width is the caller's to check."""
    x = _as_tensor(value, name)
    if x.ndim != 2 or x.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n}, {width}): one row per frame of the {n} keypoint "
            f"frames, got {tuple(x.shape)}"
        )
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return x.to(device=kp.device, dtype=kp.dtype)


def _check_init(
    init_pose: object,
    init_global_orient: object,
    init_betas: object,
    init_transl: object,
    kp: Tensor,
    term: PriorTerm,
    num_betas: int,
) -> tuple[_Init | None, dict[str, Any] | None]:
    """The checked starting values of :func:`fit_keypoints` (``kp (B, J, 2)`` gives the frames,
    dtype and device) and ``info["init"]``, or ``(None, None)`` when none is given. A latent
    prior's start is its inversion of ``init_pose``, done here once for all frames."""
    from advprior.rotations import degrees_reason
    from advprior.skeleton import check_body_pose

    given = {
        "pose": init_pose is not None,
        "global_orient": init_global_orient is not None,
        "betas": init_betas is not None,
        "transl": init_transl is not None,
    }
    if not any(given.values()):
        return None, None
    n = kp.shape[0]
    params = orient = betas = transl = None
    info: dict[str, Any] = {**given, "pose_start": None}
    if init_pose is not None:
        pose = check_body_pose(_as_tensor(init_pose, "init_pose"), "init_pose", refuse_degrees=True)
        if pose.ndim != 2 or pose.shape[0] != n:
            raise ValueError(
                f"init_pose must hold one pose per frame of the {n} keypoint frames: (B, 63 | 69),"
                f" (B, 21 | 23, 3) or (B, 21 | 23, 3, 3) with B = {n}, got "
                f"{tuple(_as_tensor(init_pose, 'init_pose').shape)}"
            )
        # SMPL's hand joints (22, 23 of a 69-number pose) are no part of the fitted body pose
        pose = pose[:, :POSE_DIM].to(device=kp.device, dtype=kp.dtype)
        if term.has_latent:
            prior = term.prior
            start = time.perf_counter()
            z = prior.invert(pose.to(device=prior.device, dtype=prior.dtype))
            params = z.detach().to(device=kp.device, dtype=kp.dtype)
            info["pose_start"] = "inversion"
            info["invert_seconds"] = time.perf_counter() - start
        else:
            params = pose
            info["pose_start"] = "pose"
    if init_global_orient is not None:
        shape = tuple(getattr(init_global_orient, "shape", ()))
        if shape[-2:] == (3, 3):
            raise ValueError(
                f"init_global_orient must be axis-angle ({n}, 3), got {shape}: rotation "
                "matrices? pass advprior.rotations.rotmat_to_axis_angle(m).reshape(-1, 3)"
            )
        orient = _init_rows(init_global_orient, "init_global_orient", n, "3", kp)
        if orient.shape[1] != 3:
            raise ValueError(f"init_global_orient must have shape ({n}, 3), got {shape}")
        reason = degrees_reason(orient[:, None], "init_global_orient", "orientations")
        if reason is not None:
            raise ValueError(reason)
    if init_betas is not None:
        betas = _init_rows(init_betas, "init_betas", n, f"<= {num_betas}", kp)
        if betas.shape[1] > num_betas:
            raise ValueError(
                f"init_betas has {betas.shape[1]} shape coefficients, the body model "
                f"{num_betas}: pass init_betas[:, :{num_betas}] or a body model with more betas"
            )
        betas = torch.cat([betas, betas.new_zeros(n, num_betas - betas.shape[1])], 1)
    if init_transl is not None:
        transl = _init_rows(init_transl, "init_transl", n, "3", kp)
        if transl.shape[1] != 3:
            raise ValueError(f"init_transl must have shape ({n}, 3), got {tuple(transl.shape)}")
    return _Init(params, orient, betas, transl), info


def stage_weights(term: PriorTerm, prior_weight: float, shape_weight: float) -> tuple[float, float]:
    """The multipliers ``(prior, shape)`` of one pose stage's energies for ``term``: the squared
    stage weights (a prior's energy is 0 where its manifold is the prior: GAN-S, GAN-U), and
    :data:`NO_PRIOR_WEIGHT` without a prior."""
    pw = NO_PRIOR_WEIGHT if term.prior is None else prior_weight**2
    return pw, shape_weight**2


def pose_objective(
    camera: PinholeCamera,
    body: _Body,
    term: PriorTerm,
    keypoints: Tensor,
    weight: Tensor,
    sigma: float,
    prior_w: float,
    shape_w: float,
):
    """The objective of a pose stage as a function of packed parameters ``x (n, 6 + K + dim)``
    (global orientation, translation, betas, the prior's free numbers) -> ``(n,)``:
    robust reprojection of ``keypoints (n, J, 2)`` weighted by ``weight (n, J)`` (squared
    confidences), plus ``shape_w |beta|^2 + prior_w E_prior + preference + GAUGE_WEIGHT gauge``
    (:meth:`PriorTerm.preference`: the latent and pose densities, not scaled by the stage)."""
    nb = body.num_betas

    def fn(x: Tensor) -> Tensor:
        go, tr, be, pp = _split(x, nb)
        pose = term.pose(pp)
        pts, _ = body(go, pose, be, tr)
        sq = (camera.project(pts) - keypoints) ** 2
        loss = (weight * geman_mcclure(sq, sigma).sum(-1)).sum(-1) + shape_w * (be * be).sum(-1)
        return (
            loss
            + prior_w * term.energy(pp, pose)
            + term.preference(pp, pose)
            + GAUGE_WEIGHT * term.gauge(pp)
        )

    return fn


def final_objective(
    keypoints: object,
    confidence: object,
    camera: PinholeCamera,
    *,
    prior: object,
    body_model: object | None = None,
    keypoint_format: str | KeypointFormat = "smpl24",
    sigma: float = 100.0,
    stages: Sequence[tuple[float, float]] = SMPLIFY_STAGES,
    latent_density: object | None = None,
    latent_weight: float = 1.0,
    pose_density: object = "auto",
    pose_weight: float = POSE_DENSITY_WEIGHT,
    check_layout: bool = True,
):
    """The objective :func:`fit_keypoints` minimises in its last stage (its ``FitResult.loss``),
    for evaluating other parameters, e.g. the true pose's: returns ``(fn, term, num_betas)``
    with ``fn(x (B, 6 + num_betas + term.dim)) -> (B,)`` on the packed parameters ``(global
    orientation, translation, betas, the prior's free numbers)``. ``check_layout`` as in
    :func:`fit_keypoints`."""
    fmt = get_format(keypoint_format)
    check_pixel_camera(camera)
    kp, conf = prepare_keypoints(keypoints, confidence, fmt, check_layout=bool(check_layout))
    kp, conf, model, body_model = place_fit(keypoints, kp, conf, prior, body_model)
    term = _prior_term(model, latent_density, latent_weight, pose_density, pose_weight, kp.device)
    body = _Body(body_model, fmt)
    pw, sw = stage_weights(term, *[float(v) for v in stages[-1]])
    return (
        pose_objective(camera, body, term, kp, conf * conf, float(sigma), pw, sw),
        term,
        body.num_betas,
    )


def _pick_orientations(
    x_cam: Tensor, loss_cam: Tensor, n: int, ny: int, k: int, camera: PinholeCamera
) -> Tensor:
    """Row indices ``(n, k)`` into the stage-0 results: per frame the lowest loss, then (k=2)
    the lowest loss among orientations facing >= 60 degrees away from it (the best again if
    none does)."""
    loss = loss_cam.view(n, ny)
    first = loss.argmin(1)
    base = torch.arange(n, device=loss.device) * ny
    if k == 1:
        return (first + base)[:, None]
    rot = camera.rotation_tensor(x_cam) @ axis_angle_to_rotmat(x_cam[:, :3])
    facing = rot[:, :, 2].view(n, ny, 3)  # the body's forward axis in camera coordinates
    cos = (facing * facing[torch.arange(n), first][:, None]).sum(-1)
    other = torch.where(cos < 0.5, loss, torch.full_like(loss, float("inf")))
    second = torch.where(torch.isfinite(other.min(1).values), other.argmin(1), first)
    return torch.stack([first, second], 1) + base[:, None]


def _init_candidates(
    kp: Tensor,
    conf: Tensor,
    o: _Options,
    init: _Init,
    yaws: Tensor,
    pose0: Tensor,
    rest3d: Tensor,
) -> tuple[Tensor, int, Tensor | None, Tensor, Tensor, Tensor]:
    """The camera stage's candidates of a fit from an estimate: per frame the yaw orientations
    ``yaws (Y, 3)``, the two torso-plane ones (``view_starts``) and, last, the estimate's
    ``init.global_orient``; the body posed as ``init``'s pose and betas where given.

    Returns ``(orients (n * ny, 3) frame-major, ny, torso-plane rows (n * ny,) bool or None,
    posed keypoints at zero translation (n * ny, J, 3), poses (n * ny, 63), betas (n * ny,
    K))``."""
    camera, body, term, fmt = o.camera, o.body, o.term, o.fmt
    n = kp.shape[0]
    parts, kinds = [yaws.expand(n, -1, -1)], [0] * yaws.shape[0]
    if o.view_starts:
        affine, plane_ok = _torso_affine(kp, conf > 0, camera, fmt, rest3d)
        parts.append(_plane_orients(affine, plane_ok, camera))
        kinds += [1, 1]
    if init.global_orient is not None:
        parts.append(init.global_orient[:, None])
        kinds.append(2)
    ny = len(kinds)
    orients = torch.cat(parts, 1).reshape(-1, 3)
    plane = torch.tensor(kinds, device=kp.device).repeat(n) == 1 if o.view_starts else None
    pose = pose0.expand(n, -1) if init.params is None else term.pose(init.params)
    pose_y = pose.repeat_interleave(ny, 0)
    betas = (
        torch.zeros(n, body.num_betas, dtype=kp.dtype, device=kp.device)
        if init.betas is None
        else init.betas
    )
    betas_y = betas.repeat_interleave(ny, 0)
    posed, _ = body(orients, pose_y, betas_y, torch.zeros_like(orients))
    return orients, ny, plane, posed, pose_y, betas_y


def _pick_around_init(
    x_cam: Tensor, loss_cam: Tensor, n: int, ny: int, k: int, camera: PinholeCamera
) -> Tensor:
    """Row indices ``(n, 1 + k)`` into the stage-0 results of :func:`_init_candidates` (the
    estimate's orientation last of a frame's ``ny``): the estimate's, then the ``k`` (0, 1 or 2)
    that :func:`_pick_orientations` picks among the built-in candidates.

    Why the estimate always: the candidates are ranked before the pose is fitted, on the
    initial pose's limbs, and a regressor that learned how people stand resolves the torso's
    front/back ambiguity from more than that. Why the built-in ones too (by default): an
    estimate can be wrong, and with them the frame keeps everything the fit without an estimate
    tries; the lowest final loss decides, per frame, as between SMPLify's two orientations."""
    first = torch.full((n, 1), ny - 1, dtype=torch.long, device=loss_cam.device)
    if k > 0:
        m = ny - 1
        x_built = x_cam.view(n, ny, -1)[:, :m].reshape(n * m, -1)
        sub = _pick_orientations(x_built, loss_cam.view(n, ny)[:, :m].reshape(-1), n, m, k, camera)
        first = torch.cat([first, sub % m], 1)
    return first + torch.arange(n, device=loss_cam.device)[:, None] * ny


def _fit(kp: Tensor, conf: Tensor, o: _Options, init: _Init | None = None) -> FitResult:
    start = time.perf_counter()
    camera, body, term, fmt = o.camera, o.body, o.term, o.fmt
    n, dtype, device = kp.shape[0], kp.dtype, kp.device
    like = {"dtype": dtype, "device": device}
    nb = body.num_betas

    pose_params0 = term.init(1, dtype, device)
    with torch.no_grad():
        pose0 = term.pose(pose_params0)
        zeros3 = torch.zeros(1, 3, **like)
        rest3d, _ = body(zeros3, torch.zeros_like(pose0), torch.zeros(1, nb, **like), zeros3)
        orients = _yaw_orients(camera, kp)  # (Y, 3), the same for every frame
        if init is not None:
            orients, ny, plane_rows, posed, pose0_y, betas0 = _init_candidates(
                kp, conf, o, init, orients, pose0, rest3d[0]
            )
        elif o.view_starts:
            # ...and per frame the two orientations whose torso plane projects as the visible
            # shoulders and hips do: a person lying, upside down or seen from above starts
            # close.
            affine, plane_ok = _torso_affine(kp, conf > 0, camera, fmt, rest3d[0])
            orients = torch.cat(
                [orients.expand(n, -1, -1), _plane_orients(affine, plane_ok, camera)], 1
            ).reshape(-1, 3)  # (n * Y, 3), frame-major
            ny = orients.shape[0] // n
            posed, _ = body(
                orients,
                pose0.expand(n * ny, -1),
                torch.zeros(n * ny, nb, **like),
                torch.zeros(n * ny, 3, **like),
            )  # (n * Y, J, 3)
        else:  # the 0.2.0 camera stage, bit for bit: Y upright headings shared by all frames
            ny = orients.shape[0]
            posed, _ = body(
                orients,
                pose0.expand(ny, -1),
                torch.zeros(ny, nb, **like),
                torch.zeros(ny, 3, **like),
            )  # (Y, J, 3)
            orients, posed = orients.repeat(n, 1), posed.repeat(n, 1, 1)
        if init is None:
            # The yaw rows keep SMPLify's depth guess (right for an upright torso, less
            # sensitive to noise on a small one), the torso-plane rows take the plane's.
            plane_rows = (
                (torch.arange(n * ny, device=device) % ny >= ny - 2) if o.view_starts else None
            )
            betas0 = torch.zeros(n * ny, nb, **like)
            pose0_y = pose0.expand(n * ny, -1)

    def data_term(points3d: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        sq = (camera.project(points3d) - target) ** 2
        return (weight * geman_mcclure(sq, o.sigma).sum(-1)).sum(-1)

    # Stage 0 on n * Y problems (frame-major): orientation + translation on the torso.
    kp_y = kp.repeat_interleave(ny, 0)
    conf_y = conf.repeat_interleave(ny, 0)
    if init is not None and init.transl is not None:
        # the estimate's translation places the pelvis whatever the orientation (the body turns
        # about its root joint): every candidate starts there, anchored to its depth
        transl_y = init.transl.repeat_interleave(ny, 0)
    else:
        transl_y = _initial_translation(kp_y, conf_y, camera, fmt, rest3d[0], posed, plane_rows)
    torso = sorted({i for pair in fmt.torso for i in pair})
    torso_w = torch.zeros_like(conf_y)
    torso_w[:, torso] = conf_y[:, torso] ** 2
    # Frames without any torso keypoint align on all their keypoints instead.
    torso_w = torch.where(torso_w.sum(-1, keepdim=True) > 0, torso_w, conf_y**2)
    depth0 = camera.to_camera(transl_y)[:, 2]
    rot_cam = camera.rotation_tensor(kp)

    def camera_objective(x: Tensor) -> Tensor:
        pts, _ = body(x[:, :3], pose0_y, betas0, x[:, 3:6])
        depth = (x[:, 3:6] @ rot_cam.T)[:, 2]
        return data_term(pts, kp_y, torso_w) + DEPTH_WEIGHT * (depth - depth0) ** 2

    x_cam, loss_cam, it_cam = _minimize(
        camera_objective,
        torch.cat([orients, transl_y], -1),
        o.optimizer,
        o.iterations,
        o.lr,
    )
    k = o.orientations
    with_orient = init is not None and init.global_orient is not None
    # Four torso points fit many yaws about equally well; the limbs (even in the initial pose)
    # tell them apart, so rank the aligned orientations on all keypoints.
    with torch.no_grad():
        pts, _ = body(x_cam[:, :3], pose0_y, betas0, x_cam[:, 3:6])
        rank = data_term(pts, kp_y, conf_y**2)
    if with_orient:
        pick = _pick_around_init(x_cam, rank, n, ny, k, camera).reshape(-1)
        k += 1  # the estimate's orientation is carried besides the built-in ones
    else:
        pick = _pick_orientations(x_cam, rank, n, ny, k, camera).reshape(-1)  # (n * k,)
    # Rows frame-major, then orientation, then start: n * k * s independent problems.
    s = o.starts
    starts = pose_params0 if s == 1 else term.starts(s, dtype, device)  # (s, dim)
    ks = k * s
    if init is None or init.params is None:
        start_rows = starts.repeat(n * k, 1)
    else:
        # the estimate replaces the prior's central pose as each frame's first start
        per_frame = torch.cat([init.params[:, None], starts[1:].expand(n, -1, -1)], 1)
        start_rows = per_frame[:, None].expand(-1, k, -1, -1).reshape(n * ks, -1)
    betas_start = (
        torch.zeros(n * ks, nb, **like)
        if init is None or init.betas is None
        else init.betas.repeat_interleave(ks, 0)
    )
    x = torch.cat([x_cam[pick].repeat_interleave(s, 0), betas_start, start_rows], -1)
    steps = it_cam.view(n, ny).sum(1)
    kp_k, w2_k = kp.repeat_interleave(ks, 0), (conf * conf).repeat_interleave(ks, 0)

    for prior_weight, shape_weight in o.stages:
        pw, sw = stage_weights(term, prior_weight, shape_weight)
        fn = pose_objective(camera, body, term, kp_k, w2_k, o.sigma, pw, sw)
        x, loss, it = _minimize(fn, x, o.optimizer, o.iterations, o.lr)
        steps = steps + it.view(n, ks).sum(1)
    keep = loss.view(n, ks).argmin(1) + torch.arange(n, device=device) * ks
    x, loss = x[keep], loss[keep]

    with torch.no_grad():
        go, tr, be, pp = _split(x, nb)
        pose = term.pose(pp)
        pts, joints = body(go, pose, be, tr)
        projected = mask_unobserved(camera.project(pts), fmt)
        latent = term.latent(pp)
    info = {"seconds": time.perf_counter() - start}
    return FitResult(
        body_pose=pose.detach(),
        global_orient=go.detach(),
        transl=tr.detach(),
        betas=be.detach(),
        latent=None if latent is None else latent.detach(),
        loss=loss.detach(),
        joints=joints.detach(),
        projected=projected.detach(),
        iterations=steps,
        info=info,
    )
