"""Fitting a body to a 2D keypoint sequence (video) through a pose prior, with temporal terms.

Method (``docs/fitting.md``, "Sequences"):

1. Every frame with at least two keypoints is fitted on its own by :func:`fit_keypoints` (or
   ``init=`` gives such a fit; ``init_pose=`` ... give that fit a per-frame start); frames
   without keypoints start from the linear interpolation of their nearest fitted neighbours'
   free numbers (the nearest one at the ends of the clip).
2. The clip is refined in overlapping windows of ``window`` frames, one batched L-BFGS problem
   per clip (:mod:`advprior.lbfgs`, clips never influence each other), on

   ``sum_t [reprojection_t + w_p E_prior,t] + w_s |beta|^2
   + lambda_z sum_t d(z_t, z_t+1)^2 + lambda_R sum_t |R_t - R_t+1|_F^2
   + lambda_T sum_t |T_t - T_t+1|^2``

   with the Geman-McClure reprojection term and prior energy of :func:`fit_keypoints`' last
   stage (``w_p``, ``w_s``), one shape ``beta`` for the whole clip, ``d`` the geodesic angle
   between consecutive latents on the sphere (the latents are projected first), the Euclidean
   distance between projected latents in other latent spaces, and the distance between
   consecutive axis-angle poses for a pose-space prior (or none); ``R_t`` the global
   orientation's matrix, ``T_t`` the translation in metres. The shape is optimised in the first
   window and held in the later ones; each later window starts at the last frame the previous
   one kept, which enters its temporal terms as a fixed neighbour, and a window keeps all but its
   last ``overlap`` frames (refitted by the next with more context). Memory grows with
   ``B * window``, not with the clip length (the per-frame start runs in chunks of
   :data:`INIT_CHUNK` frames, the final joints in chunks of :data:`FINAL_CHUNK`).

Clips never change each other's problem, but the per-frame start fits the frames that are not
missing of all clips as one batch, so a clip's frames sit further up that batch when an
earlier clip misses frames: other float32 rounding, which L-BFGS amplifies (two validation
clips: up to 1 mm), as in :func:`fit_keypoints` for a frame at another place in its batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advprior.fitting.body_points import _Body
from advprior.fitting.camera import PinholeCamera, positive_number, real_number, whole_number
from advprior.fitting.inputs import (
    _as_tensor,
    _check_sigma,
    _scale_groups,
    _scale_info,
    check_pixel_camera,
    place_fit,
    prepare_keypoints,
)
from advprior.fitting.keypoints import KeypointFormat, count_hint, get_format, mask_unobserved
from advprior.fitting.objective import (
    GAUGE_WEIGHT,
    NO_PRIOR_WEIGHT,
    SMPLIFY_STAGES,
    _prior_term,
    geman_mcclure,
)
from advprior.fitting.priors import POSE_DENSITY_WEIGHT, PriorTerm, frozen
from advprior.fitting.result import FitResult, fit_environment
from advprior.fitting.smplify import _concat, _take, fit_keypoints
from advprior.inversion import with_autograd
from advprior.latent import LatentSpace
from advprior.lbfgs import minimize_lbfgs
from advprior.rotations import axis_angle_to_rotmat

__all__ = ["Smoothness", "fit_sequence", "latent_step", "temporal_energy"]

#: Frame rate the default temporal weights were chosen at (docs/fitting.md, "Sequence results").
REFERENCE_FPS = 30.0

#: With ``fps`` given, :func:`fit_sequence` multiplies the temporal weights by
#: ``(fps / REFERENCE_FPS) ** FPS_EXPONENT`` (chosen on validation clips at 15, 60 and 120 fps;
#: docs/fitting.md, "Frame rates"). Consecutive frames of a faster video are closer, so the same
#: weight would penalise the same motion less; 2 keeps that penalty per second of motion.
FPS_EXPONENT = 2.0

#: Frames per call of the per-frame start (:func:`fit_keypoints`).
INIT_CHUNK = 256

#: Frames (of all clips) per body-model call for the final joints (the benchmark's 4 x 60
#: frames are one call, as before).
FINAL_CHUNK = 256


@dataclass(frozen=True)
class Smoothness:
    """Weights of the temporal terms of :func:`fit_sequence` (the objective's units: pixels^2
    of the reprojection term per frame).

    Attributes:
        latent: weight of the squared step between consecutive frames' pose parameters (radians^2
            on the sphere; latent units^2 otherwise; axis-angle radians^2 for a pose-space prior).
        orient: weight of ``|R_t - R_t+1|_F^2`` (global orientation matrices).
        transl: weight of ``|T_t - T_t+1|^2`` (metres^2).

    The defaults were chosen on validation clips (docs/results.md, "Sequence fitting").
    """

    latent: float = 1e5
    orient: float = 1e5
    transl: float = 1e6

    def scaled(self, factor: float) -> Smoothness:
        """All three weights times ``factor``."""
        return Smoothness(self.latent * factor, self.orient * factor, self.transl * factor)


def as_smoothness(value: object) -> Smoothness:
    """``None`` -> the defaults; a number -> the defaults scaled by it; a mapping with keys
    ``latent``/``orient``/``transl``; or a :class:`Smoothness`. Weights must be finite and >= 0."""
    if value is None:
        out = Smoothness()
    elif isinstance(value, Smoothness):
        out = value
    elif real_number(value) is not None:
        out = Smoothness().scaled(real_number(value))
    elif isinstance(value, Mapping):
        names = {f.name for f in fields(Smoothness)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f"smoothness has unknown keys {unknown}; known: {sorted(names)}")
        out = Smoothness(**{k: float(v) for k, v in value.items()})
    else:
        raise TypeError(
            "smoothness must be None, a number, a mapping or a Smoothness, got "
            f"{type(value).__name__}"
        )
    for f in fields(out):
        weight = getattr(out, f.name)
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"smoothness.{f.name} must be a finite number >= 0, got {weight!r}")
    return out


def latent_step(space: LatentSpace | None, a: Tensor, b: Tensor) -> Tensor:
    """Squared step ``(...)`` between pose parameters ``a, b (..., D)`` of consecutive frames.

    Sphere: the squared geodesic angle between ``a/|a|`` and ``b/|b|``,
    ``(2 asin(|a^ - b^| / 2))^2`` (radians^2); another latent space: ``|P(a) - P(b)|^2`` of the
    projected latents; ``space=None`` (poses): ``|a - b|^2``.
    """
    if space is None:
        return ((a - b) ** 2).sum(-1)
    pa, pb = space.project(a), space.project(b)
    sq = ((pa - pb) ** 2).sum(-1)
    if space.kind != "sphere":
        return sq
    # sqrt's gradient is infinite at 0 (two identical latents); below 1e-12 the step is 0 anyway.
    chord = sq.clamp(min=1e-12).sqrt()
    return (2 * torch.asin((chord / 2).clamp(max=1.0))) ** 2


def temporal_energy(
    space: LatentSpace | None,
    params: Tensor,
    global_orient: Tensor,
    transl: Tensor,
    smoothness: Smoothness,
) -> Tensor:
    """Temporal terms ``(B,)`` of clips: ``params (B, T, D)`` (latents, or poses when ``space``
    is None), ``global_orient (B, T, 3)`` axis-angle, ``transl (B, T, 3)`` metres; see
    :class:`Smoothness`. Zero for ``T = 1``."""
    if params.shape[1] < 2:
        return params.new_zeros(params.shape[0])
    steps = latent_step(space, params[:, 1:], params[:, :-1]).sum(-1)
    rot = axis_angle_to_rotmat(global_orient)
    turn = ((rot[:, 1:] - rot[:, :-1]) ** 2).sum((-1, -2, -3))
    move = ((transl[:, 1:] - transl[:, :-1]) ** 2).sum((-1, -2))
    return smoothness.latent * steps + smoothness.orient * turn + smoothness.transl * move


def _fill_missing(values: Tensor, seen: Tensor) -> Tensor:
    """``values (B, T, P)`` with the rows of unseen frames (``seen (B, T)`` False) replaced by
    the linear interpolation of their nearest seen neighbours (the nearest at the ends)."""
    out = values.clone()
    t_idx = torch.arange(values.shape[1], dtype=values.dtype, device=values.device)
    for b in range(values.shape[0]):
        have = torch.nonzero(seen[b]).flatten()
        missing = torch.nonzero(~seen[b]).flatten()
        if len(missing) == 0:
            continue
        right = torch.searchsorted(have, missing).clamp(max=len(have) - 1)
        left = (right - 1).clamp(min=0)
        # searchsorted finds the first seen frame after; the one before is one step left of it,
        # unless the missing frame lies beyond the last seen frame.
        after = have[right] > missing
        left = torch.where(after, left, right)
        t0, t1 = have[left], have[right]
        span = (t_idx[t1] - t_idx[t0]).clamp(min=1)
        w = ((t_idx[missing] - t_idx[t0]) / span).clamp(0, 1)[:, None]
        w = torch.where((t1 == t0)[:, None], torch.zeros_like(w), w)
        out[b, missing] = (1 - w) * values[b, t0] + w * values[b, t1]
    return out


@dataclass(frozen=True)
class _Window:
    camera: PinholeCamera
    body: _Body
    term: PriorTerm
    sigma: float
    prior_weight: float
    shape_weight: float
    smoothness: Smoothness
    iterations: int


def _fit_window(
    kp: Tensor,
    w2: Tensor,
    betas: Tensor,
    go: Tensor,
    tr: Tensor,
    pp: Tensor,
    prev: tuple[Tensor, Tensor, Tensor] | None,
    free_betas: bool,
    o: _Window,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One window for all clips: ``kp (B, W, J, 2)``, ``w2 (B, W, J)`` squared confidences,
    starting values ``betas (B, K)``, ``go``/``tr (B, W, 3)``, ``pp (B, W, P)``; ``prev`` the
    fixed previous frame's ``(go, tr, pp)``, each ``(B, 1, .)``. Returns the optimised
    ``betas, go, tr, pp``, per-frame loss ``(B, W)`` (reprojection + prior), the L-BFGS
    iterations ``(B,)`` and the projected keypoints ``(B, W, J, 2)``."""
    b, w, dim = pp.shape
    nb = betas.shape[-1]
    term = o.term

    def unpack(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        i = 0
        if free_betas:
            be, i = x[:, :nb], nb
        else:
            be = betas
        g = x[:, i : i + 3 * w].reshape(b, w, 3)
        t = x[:, i + 3 * w : i + 6 * w].reshape(b, w, 3)
        p = x[:, i + 6 * w :].reshape(b, w, dim)
        return be, g, t, p

    def per_frame(be: Tensor, g: Tensor, t: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        flat_p = p.reshape(b * w, dim)
        pose = term.pose(flat_p)
        pts, _ = o.body(g.reshape(-1, 3), pose, be.repeat_interleave(w, 0), t.reshape(-1, 3))
        proj = o.camera.project(pts).view(b, w, -1, 2)
        data = (w2 * geman_mcclure((proj - kp) ** 2, o.sigma).sum(-1)).sum(-1)
        prior = (o.prior_weight * term.energy(flat_p, pose) + term.preference(flat_p, pose)).view(
            b, w
        )
        return data + prior + GAUGE_WEIGHT * term.gauge(flat_p).view(b, w), proj

    def objective(x: Tensor) -> Tensor:
        be, g, t, p = unpack(x)
        frames, _ = per_frame(be, g, t, p)
        if prev is not None:
            g, t, p = (torch.cat([a, c], 1) for a, c in zip(prev, (g, t, p), strict=True))
        smooth = temporal_energy(term.space, p, g, t, o.smoothness)
        return frames.sum(-1) + o.shape_weight * (be * be).sum(-1) + smooth

    parts = ([betas] if free_betas else []) + [go.flatten(1), tr.flatten(1), pp.flatten(1)]
    res = minimize_lbfgs(
        objective, torch.cat(parts, -1), max_iter=o.iterations, max_evals=o.iterations * 5 // 4
    )
    be, g, t, p = unpack(res.x)
    with torch.no_grad():
        frames, proj = per_frame(be, g, t, p)
    return be.detach(), g.detach(), t.detach(), p.detach(), frames, res.iterations, proj


def _frame_cameras(cameras: object, length: int) -> tuple[PinholeCamera, Tensor, Tensor]:
    """One camera per frame -> the first, and per-frame ``ratio``, ``offset`` ``(T, 2)`` that map
    frame t's pixels to the first camera's: ``u_ref = u * ratio + offset``. Exact for a pinhole
    without skew: ``u = f X/Z + c`` for every focal length ``f`` and centre ``c`` alike, so the
    same body seen by another camera's intrinsics is the same body seen by the first's, at
    other pixels. The cameras must share their rotation (the body's world frame)."""
    if isinstance(cameras, (str, bytes)) or not hasattr(cameras, "__len__"):
        raise TypeError(
            "camera must be an advprior.fitting.PinholeCamera or a sequence of them, one per "
            f"frame; got {type(cameras).__name__}"
        )
    cams = [check_pixel_camera(c) for c in cameras]  # type: ignore[union-attr]
    if len(cams) != length:
        raise ValueError(
            f"camera: {len(cams)} cameras for {length} frames; give one PinholeCamera, or one "
            "per frame"
        )
    ref = cams[0]
    for t, cam in enumerate(cams):
        if not np.allclose(cam.rotation, ref.rotation, atol=1e-9):
            raise ValueError(
                f"camera: frame {t}'s rotation differs from frame 0's; per-frame cameras may "
                "differ in focal length and centre only (the body's world frame is the camera's)"
            )
    focal = torch.tensor([c.focal for c in cams], dtype=torch.float64)
    center = torch.tensor([c.center for c in cams], dtype=torch.float64)
    ratio = torch.tensor(ref.focal, dtype=torch.float64) / focal
    offset = torch.tensor(ref.center, dtype=torch.float64) - center * ratio
    return ref, ratio, offset


def _split_init(
    init: FitResult | None, conf: Tensor, groups: list[tuple[float, Tensor | None]]
) -> list[FitResult | None]:
    """``init`` (rows: the frames that are not missing, clip after clip) cut into the rows of
    each group's clips; ``conf`` is ``(B, T, J)``."""
    if init is None:
        return [None] * len(groups)
    if not isinstance(init, FitResult):
        raise TypeError(f"init must be a FitResult, got {type(init).__name__}")
    counts = ((conf > 0).sum(-1) >= 2).sum(1).tolist()
    if len(init) != sum(counts):
        raise ValueError(
            f"init has {len(init)} frames; it must fit the {sum(counts)} "
            "frames that are not missing"
        )
    first = [0, *np.cumsum(counts).tolist()]
    parts = []
    for _, clips in groups:
        rows = torch.cat([torch.arange(first[c], first[c + 1]) for c in clips.tolist()])
        part = _take(init, rows.to(init.body_pose.device))
        part.info = init.info
        parts.append(part)
    return parts


def _joined_init_info(parts: list[FitResult]) -> dict[str, Any] | None:
    """``info["init"]`` of fits of parts of the frames (chunks of frames, groups of clips at
    their own pixel scale): the first part's, with the seconds of the estimate's inversion
    summed over the parts, each of which inverted its own rows."""
    first = parts[0].info.get("init")
    if first is None:
        return None
    joined = dict(first)
    if "invert_seconds" in joined:
        joined["invert_seconds"] = sum(p.info["init"]["invert_seconds"] for p in parts)
    return joined


def _join_clips(
    parts: list[FitResult], groups: list[tuple[float, Tensor | None]], seconds: float
) -> FitResult:
    """The fits of each group's clips, ``(B_g, T, ...)``, as one ``(B, T, ...)`` fit in the
    caller's clip order."""
    order = torch.argsort(torch.cat([rows for _, rows in groups]))

    def join(name: str) -> Tensor | None:
        values = [getattr(p, name) for p in parts]
        if values[0] is None:
            return None
        return torch.cat(values)[order.to(values[0].device)]

    n_clips = len(order)
    info = {
        **parts[0].info,
        "pixel_scale": _scale_info(groups, n_clips),
        "missing_frames": sum(p.info["missing_frames"] for p in parts),
        "init": _joined_init_info(parts),
        "clips": n_clips,
        "seconds": seconds,
    }
    names = [f.name for f in fields(FitResult) if f.name != "info"]
    return FitResult(**{name: join(name) for name in names}, info=info)


def _check_int(value: object, name: str, low: int) -> int:
    number = whole_number(value)
    if number is None or number < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return number


#: Per-frame layouts of ``init_pose`` (those :func:`fit_keypoints` takes): axis-angle, per joint,
#: rotation matrices; 21 body joints or SMPL's 23.
POSE_LAYOUTS = ((63,), (69,), (21, 3), (23, 3), (21, 3, 3), (23, 3, 3))


def _sequence_init(
    init_pose: object,
    init_global_orient: object,
    init_betas: object,
    init_transl: object,
    lead: tuple[int, ...],
) -> dict[str, Tensor]:
    """The given ``init_*`` of :func:`fit_sequence` as ``(B, T, ...)`` tensors, keyed by argument
    name; ``lead`` is the keypoints' ``(T,)`` or ``(B, T)``. Only the frames' shapes are checked
    here: the values (finite, radians, number of betas) are checked by :func:`fit_keypoints` on
    the rows it is given, those of the frames that are not missing."""
    dims = "T" if len(lead) == 1 else "B, T"
    where = f"{dims} = {', '.join(map(str, lead))}, the keypoints' frames"
    out: dict[str, Tensor] = {}
    if init_pose is not None:
        pose = _as_tensor(init_pose, "init_pose")
        shape = tuple(pose.shape)
        if shape[: len(lead)] != lead or shape[len(lead) :] not in POSE_LAYOUTS:
            raise ValueError(
                f"init_pose must hold one pose per frame: ({dims}, 63 | 69), ({dims}, 21 | 23, 3) "
                f"or ({dims}, 21 | 23, 3, 3) with {where}; got {shape}"
            )
        out["init_pose"] = pose
    for name, value in (("init_global_orient", init_global_orient), ("init_transl", init_transl)):
        if value is None:
            continue
        x = _as_tensor(value, name)
        shape = tuple(x.shape)
        if shape != lead + (3,):
            hint = ""
            if shape[-2:] == (3, 3) and name == "init_global_orient":
                hint = (
                    ": rotation matrices? pass advprior.rotations.rotmat_to_axis_angle(m)"
                    f".reshape({', '.join(map(str, lead))}, 3)"
                )
            raise ValueError(
                f"{name} must have shape ({dims}, 3), one row per frame with {where}; got "
                f"{shape}{hint}"
            )
        out[name] = x
    if init_betas is not None:
        betas = _as_tensor(init_betas, "init_betas")
        shape = tuple(betas.shape)
        clip_lead = lead[:-1]
        if betas.ndim == len(lead) + 1 and shape[: len(lead)] == lead:
            out["init_betas"] = betas  # per frame
        elif betas.ndim == len(clip_lead) + 1 and shape[: len(clip_lead)] == clip_lead:
            # one shape per clip: every frame of the clip starts from it
            out["init_betas"] = betas.unsqueeze(-2).expand(*lead, shape[-1])
        else:
            per_clip = "(K,)" if len(lead) == 1 else "(B, K)"
            raise ValueError(
                f"init_betas must have shape {per_clip} (one shape per clip) or ({dims}, K) (one "
                f"per frame) with {where}; got {shape}"
            )
    if out:
        n_clips, length = (1, lead[0]) if len(lead) == 1 else lead
        out = {k: v.reshape(n_clips, length, *v.shape[len(lead) :]) for k, v in out.items()}
    return out


@with_autograd
def fit_sequence(
    keypoints: object,
    confidence: object,
    camera: PinholeCamera | Sequence[PinholeCamera],
    *,
    prior: object = "gan-s",
    smoothness: object = None,
    body_model: object | None = None,
    keypoint_format: str | KeypointFormat = "smpl24",
    window: int = 64,
    overlap: int = 16,
    iterations: int = 100,
    init_iterations: int = 30,
    sigma: float = 100.0,
    orientations: int = 2,
    starts: int = 1,
    init: FitResult | None = None,
    pose_density: object = "auto",
    pose_weight: float = POSE_DENSITY_WEIGHT,
    view_starts: bool = True,
    pixel_scale: float | str = "auto",
    fps: float | None = None,
    check_layout: bool = True,
    init_pose: object | None = None,
    init_global_orient: object | None = None,
    init_betas: object | None = None,
    init_transl: object | None = None,
) -> FitResult:
    """Fit one body shape and per-frame pose, orientation and translation to keypoint clips.

    Args:
        keypoints: ``(T, J, 2)`` pixels for one clip or ``(B, T, J, 2)`` for B clips of equal
            length (or ``(..., J, 3)`` with the confidence in the last column when
            ``confidence`` is None); NaN marks a missing keypoint.
        confidence: ``(T, J)`` / ``(B, T, J)`` in ``[0, 1]``, or None. A frame with fewer than
            two keypoints of positive confidence is *missing*: it has no data term and gets its
            pose from its neighbours through the temporal terms. A clip needs one frame that is
            not missing.
        camera: a :class:`PinholeCamera` shared by every frame, or a sequence of ``T``, one per
            frame (shared by the clips), that differ in focal length and centre only (a zoom,
            per-frame calibration): the fit then runs in the first camera's pixels (the
            keypoints are mapped there exactly), ``projected`` is in each frame's pixels and
            ``loss`` in the first camera's.
        prior: as in :func:`fit_keypoints` (alias or path, a prior object, or None / "none").
        smoothness: weights of the temporal terms: None (the defaults), a number (the defaults
            times it; 0 turns them off), a mapping or a :class:`Smoothness`.
        body_model: as in :func:`fit_keypoints` (default: the open stand-in body).
        keypoint_format: ``"smpl24"``, ``"openpose25"``, ``"openpose25b"`` or ``"coco17"``
            (as in :func:`fit_keypoints`).
        window: frames optimised together (memory grows with ``B * window``).
        overlap: frames at the end of a window that the next window refits (``< window``).
        iterations: L-BFGS iterations per window.
        init_iterations: ``iterations`` of the per-frame :func:`fit_keypoints` that starts it.
        sigma: Geman-McClure scale in pixels.
        orientations: as in :func:`fit_keypoints` (for the per-frame start).
        starts: as in :func:`fit_keypoints`: starting poses of the per-frame start (more help
            every latent prior; docs/fitting.md, "How many starts").
        init: a per-frame fit to start from instead of running :func:`fit_keypoints`: its rows
            are the frames that are not missing, clip after clip, in time order (so
            ``fit_keypoints`` on exactly those frames, with the same prior). Not together with
            the ``init_*`` arguments (a ValueError: each gives the start).
        init_pose, init_global_orient, init_betas, init_transl: a per-frame estimate to start
            the per-frame fit from, e.g. a video regressor's (HMR 2.0, VIBE, WHAM; SPIN-style
            refinement): each is handed, row by row, to that :func:`fit_keypoints` call (see
            its arguments of the same names: layouts, radians, the latent prior's inversion,
            ``orientations=0``, and its default pose stages: with ``init_pose`` and a
            normal-latent prior, SMPLify's last stage alone; ``info["init_stages"]``).
            One row per frame, with the keypoints' leading dimensions:
            ``init_pose (T, 63 | 69)``, ``(T, 21 | 23, 3)`` or ``(T, 21 | 23, 3, 3)`` (or
            ``(B, T, ...)`` for B clips), ``init_global_orient`` and ``init_transl (T, 3)`` /
            ``(B, T, 3)``; ``init_betas`` one shape per clip, ``(K,)`` / ``(B, K)``, given to
            every frame of its clip, or one per frame, ``(T, K)`` / ``(B, T, K)`` (the clip's
            shape then starts from the mean of its frames' fitted shapes, as without an
            estimate). The rows of missing frames are not used (they may hold NaN): those
            frames start from their neighbours' fits, as always. Any subset may be given;
            ``info["init"]`` says which (None without), as ``fit_keypoints``' does.
        pose_density, pose_weight: as in :func:`fit_keypoints` (by default the GMM's energy
            for a sphere-latent prior), in the per-frame start and every window.
        view_starts: as in :func:`fit_keypoints`, for the per-frame start.
        pixel_scale: as in :func:`fit_keypoints`, per clip: the fit (start and windows) runs
            on keypoints and camera divided by it, so that the robust scale, the prior's and
            the temporal weights keep their balance on large images; ``projected`` and
            ``loss`` come back in your pixels. ``"auto"`` gives every clip the median frame's
            scale, except a clip whose own (its median frame's) is more than twice that (a
            person near the camera among farther ones), fitted at its own;
            ``info["pixel_scale"]`` then lists each clip's.
        fps: the clips' frame rate. The temporal weights (``smoothness``, defaults or yours)
            are per step between frames and were chosen at :data:`REFERENCE_FPS` (30); a
            number multiplies them by ``(fps / 30) ** FPS_EXPONENT`` so that a faster or slower
            video is smoothed alike per second of motion. None (default): the weights as they
            are (right for 30 fps). ``info["fps"]`` records it.
        check_layout: as in :func:`fit_keypoints`: refuse BODY_25B keypoints given as
            ``"openpose25"`` and the reverse (default), judged once over all the clips' frames;
            ``False`` skips the check (``info["check_layout"]``).

    Returns:
        A :class:`FitResult` whose tensors have the input's leading ``(T,)`` or ``(B, T)``
        dimensions: ``body_pose (.., T, 63)``, ``global_orient``, ``transl``, ``betas`` (the
        clip's one shape on every frame), ``latent`` (or None), ``loss (.., T)`` (reprojection
        + prior per frame), ``joints (.., T, 24, 3)``, ``projected (.., T, J, 2)``,
        ``iterations (.., T)`` (L-BFGS iterations of the window that kept the frame). ``info``
        holds the settings, ``missing_frames`` and ``seconds`` (the per-frame start included).
    """
    start = time.perf_counter()
    fmt = get_format(keypoint_format)
    if isinstance(camera, PinholeCamera):
        check_pixel_camera(camera)
    kp_in = _as_tensor(keypoints, "keypoints")
    if kp_in.ndim not in (3, 4):
        raise ValueError(
            f"keypoints must have shape (T, {fmt.num_keypoints}, 2) or "
            f"(B, T, {fmt.num_keypoints}, 2), got {tuple(kp_in.shape)}"
        )
    single = kp_in.ndim == 3
    lead = tuple(kp_in.shape[:-2])
    if 0 in lead:
        raise ValueError(
            f"keypoints has no frames (shape {tuple(kp_in.shape)}); a sequence needs T >= 1 frames"
        )
    if kp_in.shape[-2] != fmt.num_keypoints or kp_in.shape[-1] not in (2, 3):
        raise ValueError(
            f"keypoints must have shape (..., {fmt.num_keypoints}, 2) for keypoint_format "
            f"{fmt.name!r} (or (..., {fmt.num_keypoints}, 3) with confidence), got "
            f"{tuple(kp_in.shape)}{count_hint(kp_in.shape[-2], fmt)}"
        )
    starts_from = _sequence_init(init_pose, init_global_orient, init_betas, init_transl, lead)
    if starts_from and init is not None:
        raise ValueError(
            f"init (a per-frame fit to start from) and {', '.join(starts_from)} (an estimate "
            "for the per-frame fit to start from) both give the start: pass one or the other"
        )
    conf_in = confidence
    camera_in, kp_raw = camera, kp_in
    if confidence is not None:
        conf_in = _as_tensor(confidence, "confidence")
        if tuple(conf_in.shape) != lead + (fmt.num_keypoints,):
            raise ValueError(
                f"confidence must have shape {lead + (fmt.num_keypoints,)} to "
                f"match keypoints {tuple(kp_in.shape)}, got {tuple(conf_in.shape)}"
            )
        conf_raw = conf_in
        conf_in = conf_in.reshape(-1, fmt.num_keypoints)
    window = _check_int(window, "window", 2)
    overlap = _check_int(overlap, "overlap", 0)
    if overlap >= window:
        raise ValueError(f"overlap ({overlap}) must be smaller than window ({window})")
    iterations = _check_int(iterations, "iterations", 1)
    init_iterations = _check_int(init_iterations, "init_iterations", 1)
    sigma = _check_sigma(sigma)
    weights = as_smoothness(smoothness)
    if fps is not None:
        rate = positive_number(fps)
        if rate is None or not math.isfinite(rate):
            raise ValueError(f"fps must be a positive frame rate or None, got {fps!r}")
        weights = weights.scaled((rate / REFERENCE_FPS) ** FPS_EXPONENT)
        fps = rate
    frame_map = None
    if not isinstance(camera, PinholeCamera):
        camera, ratio, offset = _frame_cameras(camera, kp_in.shape[-3])
        # (T, 1, 2): broadcast over the clips and keypoints; NaN (missing) stays NaN
        if not kp_in.is_floating_point():  # integer pixels: the mapped ones are not
            kp_in = kp_in.double()
        frame_map = (ratio[:, None].to(kp_in), offset[:, None].to(kp_in))
        kp_in = torch.cat([kp_in[..., :2] * frame_map[0] + frame_map[1], kp_in[..., 2:]], -1)
    kp, conf = prepare_keypoints(
        kp_in.reshape(-1, *kp_in.shape[-2:]),
        conf_in,
        fmt,
        min_keypoints=0,
        check_layout=bool(check_layout),
    )
    n_clips, length = (1, lead[0]) if single else lead
    groups = _scale_groups(pixel_scale, kp, conf, clips=n_clips)
    if len(groups) > 1:
        # clips are independent problems: each group of clips is fitted at its own scale
        args = dict(
            prior=prior, smoothness=smoothness, body_model=body_model,
            keypoint_format=fmt, window=window, overlap=overlap, iterations=iterations,
            init_iterations=init_iterations, sigma=sigma, orientations=orientations,
            starts=starts, pose_density=pose_density, pose_weight=pose_weight,
            view_starts=view_starts, fps=fps,
            # judged above over every clip: a group of clips voting alone could disagree
            check_layout=False,
        )  # fmt: skip
        inits = _split_init(init, conf.view(n_clips, length, -1), groups)
        parts = [
            fit_sequence(
                kp_raw[rows],
                None if confidence is None else conf_raw[rows],
                camera_in,
                init=part_init,
                pixel_scale=group_scale,
                **{k: v[rows.to(v.device)] for k, v in starts_from.items()},
                **args,
            )
            for (group_scale, rows), part_init in zip(groups, inits, strict=True)
        ]
        joined = _join_clips(parts, groups, time.perf_counter() - start)
        joined.info["check_layout"] = bool(check_layout)  # the parts record their own False
        return joined
    scale = groups[0][0]
    if scale != 1.0:
        kp = kp / scale
        camera = camera.scaled(1.0 / scale)
    kp = kp.view(n_clips, length, fmt.num_keypoints, 2)
    conf = conf.view(n_clips, length, fmt.num_keypoints)
    seen = (conf > 0).sum(-1) >= 2  # (B, T)
    empty = torch.nonzero(~seen.any(1)).flatten().tolist()
    if empty:
        raise ValueError(
            f"clip(s) {empty} have no frame with two or more keypoints of positive "
            "confidence (all frames missing); nothing to fit"
        )

    kp, conf, model, body_model = place_fit(keypoints, kp, conf, prior, body_model)
    seen = seen.to(kp.device)
    term = _prior_term(model, None, 0.0, pose_density, pose_weight, kp.device)
    if whole_number(starts) is None or starts < 1:
        raise ValueError(f"starts must be a positive int, got {starts!r}")
    starts = int(starts)
    init_given = init
    init_info = None
    init_stages = None
    if init is None:
        # Frames are independent problems: chunks of INIT_CHUNK keep the per-frame start's
        # memory bounded too (8 yaws x 2 orientations per frame in its first stage).
        kp_seen, conf_seen = kp[seen], conf[seen]
        # the estimate's rows of the frames that are not missing, in kp_seen's order
        est_seen = {k: v.to(seen.device)[seen] for k, v in starts_from.items()}
        chunks = [
            fit_keypoints(
                kp_seen[i : i + INIT_CHUNK],
                conf_seen[i : i + INIT_CHUNK],
                camera,
                body_model=body_model,
                prior=model,
                keypoint_format=fmt,
                iterations=init_iterations,
                sigma=sigma,
                orientations=orientations,
                starts=starts,
                pose_density=term.pose_density,
                pose_weight=term.pose_weight,
                view_starts=view_starts,
                pixel_scale=1.0,  # kp_seen is at the fit's scale already
                # judged above over the whole clip: a chunk of frames voting alone could
                # disagree with the clip's verdict and stop the fit halfway
                check_layout=False,
                **{k: v[i : i + INIT_CHUNK] for k, v in est_seen.items()},
            )
            for i in range(0, len(kp_seen), INIT_CHUNK)
        ]
        init_info = _joined_init_info(chunks)
        init_stages = chunks[0].info["stages"]  # the per-frame fit's (fit_keypoints' default)
        init = _concat(chunks)
    elif not isinstance(init, FitResult):
        raise TypeError(f"init must be a FitResult, got {type(init).__name__}")
    if len(init) != int(seen.sum()):
        raise ValueError(
            f"init has {len(init)} frames; it must fit the {int(seen.sum())} "
            "frames that are not missing"
        )
    # latents of every shipped latent prior have 32 numbers: the size alone cannot tell a GAN-S
    # latent from a VAE's, the prior recorded by the fit can
    made = (init.info or {}).get("prior_kind")
    if isinstance(made, dict):
        want = term.describe()
        if (made.get("kind"), made.get("latent")) != (want["kind"], want["latent"]):
            raise ValueError(
                f"init must come from a fit with the same prior: it was fitted with a "
                f"{made.get('kind')} prior (latent {made.get('latent')}), this fit uses a "
                f"{want['kind']} prior (latent {want['latent']})"
            )
    params = init.latent if term.has_latent else init.body_pose
    if params is None or params.shape[-1] != term.dim:
        raise ValueError(
            f"init must come from a fit with the same prior (pose parameters of size {term.dim})"
        )
    dtype, device = kp.dtype, kp.device

    def spread(values: Tensor) -> Tensor:
        full = torch.zeros(n_clips, length, values.shape[-1], dtype=dtype, device=device)
        full[seen] = values.to(dtype)
        return _fill_missing(full, seen)

    go, tr, pp = spread(init.global_orient), spread(init.transl), spread(params)
    be_frames = torch.zeros(n_clips, length, init.betas.shape[-1], dtype=dtype, device=device)
    be_frames[seen] = init.betas.to(dtype)
    betas = (be_frames * seen[..., None]).sum(1) / seen.sum(1, keepdim=True)

    prior_w, shape_w = SMPLIFY_STAGES[-1]
    opts = _Window(
        camera,
        _Body(body_model, fmt),
        term,
        float(sigma),
        NO_PRIOR_WEIGHT if model is None else prior_w**2,
        shape_w**2,
        weights,
        iterations,
    )
    # A missing frame has no data term: its one keypoint of positive confidence, if it has one,
    # is not fitted (it was, pulling the body towards a lone and often false detection).
    w2 = torch.where(seen[..., None], conf * conf, torch.zeros_like(conf))
    loss = torch.zeros(n_clips, length, dtype=dtype, device=device)
    steps = torch.zeros(n_clips, length, dtype=torch.long, device=device)
    projected = torch.zeros_like(kp)
    s = 0
    with frozen(model), frozen(body_model), frozen(term.pose_density):
        while s < length:
            e = min(s + window, length)
            keep = e if e == length else e - overlap
            prev = None if s == 0 else (go[:, s - 1 : s], tr[:, s - 1 : s], pp[:, s - 1 : s])
            out = _fit_window(
                kp[:, s:e],
                w2[:, s:e],
                betas,
                go[:, s:e],
                tr[:, s:e],
                pp[:, s:e],
                prev,
                s == 0,
                opts,
            )
            betas = out[0]
            k = keep - s
            # The refitted tail [keep, e) keeps the window's values as the next window's start.
            go[:, s:e], tr[:, s:e], pp[:, s:e] = out[1], out[2], out[3]
            loss[:, s:keep] = out[4][:, :k].detach()
            steps[:, s:keep] = out[5][:, None]
            projected[:, s:keep] = out[6][:, :k]
            s = keep

        with torch.no_grad():
            flat_p = pp.reshape(-1, term.dim)
            pose = term.pose(flat_p)
            be_all = betas.repeat_interleave(length, 0)
            flat_go, flat_tr = go.reshape(-1, 3), tr.reshape(-1, 3)
            # in chunks: a body posed through its full mesh (SMPL-H, SMPL-X) holds ~0.7 MB per
            # frame, so one call for a 10-minute clip needed ~12 GB; frames are independent
            joints = torch.cat(
                [
                    opts.body(*(x[i : i + FINAL_CHUNK] for x in (flat_go, pose, be_all, flat_tr)))[
                        1
                    ]
                    for i in range(0, len(pose), FINAL_CHUNK)
                ]
            )
            latent = term.latent(flat_p)

    shape = (length,) if single else (n_clips, length)
    projected = mask_unobserved(projected * scale, fmt)
    if frame_map is not None:  # back to each frame's own camera
        ratio, offset = (x.to(projected) for x in frame_map)
        projected = (projected - offset) / ratio

    def out(x: Tensor | None) -> Tensor | None:
        return None if x is None else x.detach().reshape(*shape, *x.shape[1:])

    info: dict[str, Any] = {
        "prior": prior if isinstance(prior, str) or prior is None else type(prior).__name__,
        "prior_kind": term.describe(),
        "keypoint_format": fmt.name,
        "check_layout": bool(check_layout),
        "window": window,
        "overlap": overlap,
        "iterations_per_window": iterations,
        "init_iterations": init_iterations,
        "init_starts": starts if init_given is None else None,
        "init": init_info,
        "init_stages": init_stages,
        "sigma_px": float(sigma),
        "fps": fps,
        "pixel_scale": scale,
        "per_frame_cameras": frame_map is not None,
        "smoothness": {f.name: getattr(weights, f.name) for f in fields(weights)},
        "missing_frames": int((~seen).sum()),
        "clips": n_clips,
        "frames_per_clip": length,
        "environment": fit_environment(device),
        "seconds": time.perf_counter() - start,
    }
    return FitResult(
        body_pose=out(pose),
        global_orient=out(go.reshape(-1, 3)),
        transl=out(tr.reshape(-1, 3)),
        betas=out(be_all),
        latent=out(latent),
        # back to the caller's pixels: every term of the objective is squared pixels there
        loss=out(loss.reshape(-1) * (scale * scale)),
        joints=out(joints),
        projected=out(projected.reshape(-1, *projected.shape[2:])),
        iterations=out(steps.reshape(-1)),
        info=info,
    )
