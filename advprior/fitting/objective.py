"""The objective of a keypoint fit: the Geman-McClure reprojection term, SMPLify's stage
weights, the prior's term, and the packed parameters ``(global orientation, translation, betas,
the prior's free numbers)`` they are functions of.

Per frame: ``sum_j c_j^2 rho_sigma(u_j - k_j) + w_prior E_prior + w_shape |beta|^2``
(+ ``w_pose E_pose`` from a pose density; + a depth anchor in the camera stage),
``rho_sigma(r) = sigma^2 r^2 / (sigma^2 + r^2)`` per pixel coordinate.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from advprior.fitting.body_points import _Body
from advprior.fitting.camera import PinholeCamera, real_number
from advprior.fitting.inputs import (
    _check_weight,
    _scale_groups,
    _scale_info,
    check_pixel_camera,
    place_fit,
    prepare_keypoints,
)
from advprior.fitting.keypoints import KeypointFormat, get_format
from advprior.fitting.priors import POSE_DENSITY_WEIGHT, PriorTerm, resolve_pose_density

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


def geman_mcclure(sq_residual: Tensor, sigma: float) -> Tensor:
    """``sigma^2 r^2 / (sigma^2 + r^2)`` of squared residuals (pixels^2), elementwise."""
    s2 = sigma * sigma
    return s2 * sq_residual / (s2 + sq_residual)


def _split(x: Tensor, nb: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    return x[:, :3], x[:, 3:6], x[:, 6 : 6 + nb], x[:, 6 + nb :]


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


def _stage_weight(value: object) -> float | None:
    """``float(value)`` for a number (Python's, numpy's, a one-element tensor), else None."""
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def check_stages(stages: object) -> list[tuple[float, float]]:
    """``stages`` (``fit_keypoints(stages=)``, :func:`final_objective`) as a list of
    ``(prior weight, shape weight)`` float pairs; ``ValueError`` for an empty list, an entry
    that is not a pair, or a weight that is negative, NaN or infinite. Why: a NaN weight made
    every frame's fit NaN without an error, and a negative one was squared into its opposite."""
    try:
        pairs = [tuple(pair) for pair in stages]  # type: ignore[union-attr]
    except TypeError as exc:
        raise ValueError(
            f"stages must be a sequence of (prior weight, shape weight) pairs, got {stages!r}"
        ) from exc
    if not pairs:
        raise ValueError("stages must list at least one (prior weight, shape weight) pair")
    out = []
    for pair in pairs:
        weights = [_stage_weight(v) for v in pair] if len(pair) == 2 else [None]
        if any(w is None or not (math.isfinite(w) and w >= 0) for w in weights):
            raise ValueError(
                "stages must hold (prior weight, shape weight) pairs of finite numbers >= 0, "
                f"got {pair!r}"
            )
        out.append((weights[0], weights[1]))
    return out


def stage_weights(term: PriorTerm, prior_weight: float, shape_weight: float) -> tuple[float, float]:
    """The multipliers ``(prior, shape)`` of one pose stage's energies for ``term``: the squared
    stage weights (a prior's energy is 0 where its manifold is the prior: GAN-S, GAN-U), and
    :data:`NO_PRIOR_WEIGHT` without a prior."""
    pw = NO_PRIOR_WEIGHT if term.prior is None else prior_weight**2
    return pw, shape_weight**2


def pose_schedule_scales(
    stages: Sequence[tuple[float, float]], schedule: object = None
) -> list[float]:
    """The pose density's weight multiplier per pose stage (``fit_keypoints(pose_schedule=)``):
    ``None`` or ``0``: 1 in every stage (the constant weight); a number ``p``:
    ``(w_s / w_last) ** p`` with ``w_s`` the stage's prior weight (annealed as the stages anneal
    the prior's own energy, with exponent ``p``); a sequence: one multiplier per stage. The last
    stage's multiplier is always 1, so the final objective (:func:`final_objective`) is the same
    whatever the schedule."""
    n = len(stages)
    if schedule is None:
        return [1.0] * n
    if isinstance(schedule, bool):
        raise TypeError("pose_schedule must be None, a number or a sequence of numbers")
    # real_number: numpy's scalars too (np.float32(1) is no float and was iterated: TypeError)
    if real_number(schedule) is not None:
        p = real_number(schedule)
        if not p >= 0.0 or p == float("inf"):
            raise ValueError(f"pose_schedule exponent must be finite and >= 0, got {schedule!r}")
        if p == 0.0:
            return [1.0] * n
        last = float(stages[-1][0])
        if last <= 0.0 or any(float(w) < 0.0 for w, _ in stages):
            raise ValueError("an exponent pose_schedule needs a positive last prior weight")
        return [(float(w) / last) ** p for w, _ in stages[:-1]] + [1.0]
    scales = [float(v) for v in schedule]  # type: ignore[union-attr]
    if len(scales) != n:
        raise ValueError(f"pose_schedule lists {len(scales)} multipliers for {n} pose stages")
    if any(not (v >= 0.0 and v != float("inf")) for v in scales):
        raise ValueError(f"pose_schedule multipliers must be finite and >= 0, got {scales}")
    if scales[-1] != 1.0:
        raise ValueError("pose_schedule's last multiplier must be 1 (the final objective)")
    return scales


def pose_objective(
    camera: PinholeCamera,
    body: _Body,
    term: PriorTerm,
    keypoints: Tensor,
    weight: Tensor,
    sigma: float,
    prior_w: float,
    shape_w: float,
    pose_scale: float = 1.0,
) -> Callable[[Tensor], Tensor]:
    """The objective of a pose stage as a function of packed parameters ``x (n, 6 + K + dim)``
    (global orientation, translation, betas, the prior's free numbers) -> ``(n,)``:
    robust reprojection of ``keypoints (n, J, 2)`` weighted by ``weight (n, J)`` (squared
    confidences), plus ``shape_w |beta|^2 + prior_w E_prior + preference + GAUGE_WEIGHT gauge``
    (:meth:`PriorTerm.preference`: the latent and pose densities, not scaled by the stage's
    weights; the pose density's weight times ``pose_scale``, 1 unless ``pose_schedule``)."""
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
            + term.preference(pp, pose, pose_scale)
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
    pixel_scale: float | str = "auto",
) -> tuple[Callable[[Tensor], Tensor], PriorTerm, int]:
    """The objective :func:`fit_keypoints` minimises in its last stage (its ``FitResult.loss``),
    for evaluating other parameters, e.g. the true pose's: returns ``(fn, term, num_betas)``
    with ``fn(x (B, 6 + num_betas + term.dim)) -> (B,)`` on the packed parameters ``(global
    orientation, translation, betas, the prior's free numbers)``. ``check_layout`` and
    ``pixel_scale`` as in :func:`fit_keypoints`: each frame's objective is evaluated at the
    scale that fit runs it at, times the squared scale (the caller's squared pixels, as
    ``FitResult.loss``). Why: with people over ~500 px tall (``"auto"`` picks a scale above 1)
    this returned the objective at scale 1, another function than the fit's (the prior's terms
    1/16 of the fit's at scale 4), and comparing it with ``FitResult.loss`` compared the two."""
    fmt = get_format(keypoint_format)
    check_pixel_camera(camera)
    kp, conf = prepare_keypoints(keypoints, confidence, fmt, check_layout=bool(check_layout))
    groups = _scale_groups(pixel_scale, kp, conf)
    kp, conf, model, body_model = place_fit(keypoints, kp, conf, prior, body_model)
    term = _prior_term(model, latent_density, latent_weight, pose_density, pose_weight, kp.device)
    body = _Body(body_model, fmt)
    pw, sw = stage_weights(term, *check_stages(stages)[-1])
    if len(groups) == 1 and groups[0][0] == 1.0:
        fn = pose_objective(camera, body, term, kp, conf * conf, float(sigma), pw, sw)
        return fn, term, body.num_betas
    if len(groups) == 1:
        scale = torch.full((kp.shape[0],), groups[0][0], dtype=kp.dtype, device=kp.device)
        view: Any = camera.scaled(1.0 / groups[0][0])
    else:
        scale = torch.tensor(_scale_info(groups, kp.shape[0]), dtype=kp.dtype, device=kp.device)
        view = _RowScaledCamera(camera, scale)
    inner = pose_objective(
        view, body, term, kp / scale[:, None, None], conf * conf, float(sigma), pw, sw
    )

    def fn(x: Tensor) -> Tensor:
        return inner(x) * (scale * scale)

    return fn, term, body.num_betas


class _RowScaledCamera:
    """``camera`` seen in an image shrunk by ``scale (n,)`` per row of ``(n, J, 3)`` points:
    ``camera.scaled(1 / scale[i]).project`` row by row. The same bits for powers of two (as
    :func:`~advprior.fitting.inputs.auto_pixel_scale` gives): ``(a f + c) / s`` and
    ``a (f / s) + c / s`` round alike when dividing by ``s`` is exact."""

    def __init__(self, camera: PinholeCamera, scale: Tensor) -> None:
        self.camera, self.scale = camera, scale

    def project(self, points: Tensor) -> Tensor:
        return self.camera.project(points) / self.scale[:, None, None].to(points.dtype)


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
