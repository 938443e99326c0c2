"""Where a keypoint fit starts (its camera stage): the upright yaw orientations, the two
orientations of the torso plane seen in the image, the initial depth and translation, the
orientations carried on to the pose stages, and a caller's per-frame estimate (``init_*``)
checked and added to those candidates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from advprior.fitting.camera import PinholeCamera
from advprior.fitting.inputs import _as_tensor
from advprior.fitting.keypoints import KeypointFormat
from advprior.fitting.priors import POSE_DIM, PriorTerm
from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

if TYPE_CHECKING:
    from advprior.fitting.smplify import _Options


#: Body yaws (radians, about the body's up axis) tried in stage 0; 0 faces the camera.
YAW_CANDIDATES = tuple(i * math.pi / 4 for i in range(8))


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
        # (3, 3) is also 3 frames' axis-angle rows: only a shape that is not (n, 3) is misread
        if shape[-2:] == (3, 3) and shape != (n, 3):
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
