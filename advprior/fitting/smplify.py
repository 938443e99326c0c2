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

This module holds the driver (:func:`fit_keypoints`); the checked inputs live in
:mod:`advprior.fitting.inputs`, the body's keypoints in :mod:`advprior.fitting.body_points`,
the camera stage's starts in :mod:`advprior.fitting.start` and the objective in
:mod:`advprior.fitting.objective`; their names stay importable from here.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from advprior.errors import CameraWarning
from advprior.fitting.body_points import (  # noqa: F401 - re-exported
    _Body,
    body_keypoints,
)
from advprior.fitting.camera import (
    PinholeCamera,
    focal_length_reason,
    positive_number,
    whole_number,
)
from advprior.fitting.inputs import (  # noqa: F401 - re-exported
    MAX_KEYPOINT_PX,
    MIN_FOCAL_PX,
    MIN_KEYPOINT_SPAN_PX,
    REFERENCE_PERSON_PX,
    _as_tensor,
    _check_pixel_scale,
    _check_sigma,
    _check_weight,
    _frame_list,
    _scale_groups,
    _scale_info,
    auto_pixel_scale,
    check_pixel_camera,
    place_fit,
    prepare_keypoints,
)
from advprior.fitting.keypoints import KeypointFormat, get_format, mask_unobserved
from advprior.fitting.objective import (  # noqa: F401 - re-exported
    DEPTH_WEIGHT,
    GAUGE_WEIGHT,
    INIT_POSE_STAGES,
    NO_PRIOR_WEIGHT,
    SMPLIFY_STAGES,
    _on_device,
    _prior_term,
    _RowScaledCamera,
    _split,
    _stage_weight,
    check_stages,
    default_stages,
    final_objective,
    geman_mcclure,
    pose_objective,
    pose_schedule_scales,
    stage_weights,
    stages_kind,
)
from advprior.fitting.priors import POSE_DENSITY_WEIGHT, PriorTerm, frozen
from advprior.fitting.result import FitResult, fit_environment
from advprior.fitting.start import (  # noqa: F401 - re-exported
    YAW_CANDIDATES,
    _check_init,
    _Init,
    _init_candidates,
    _init_rows,
    _initial_translation,
    _pair_lengths,
    _pick_around_init,
    _pick_orientations,
    _plane_orients,
    _torso_affine,
    _torso_plane_depth,
    _yaw_orients,
)
from advprior.inversion import with_autograd
from advprior.lbfgs import minimize_lbfgs

# The imports marked re-exported bring the names that moved out of this module in round 24
# (inputs, body_points, objective, start): every one stays importable from here, as before.

OPTIMIZERS = ("lbfgs", "adam")


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


def _warn_focal_length(kp: Tensor, conf: Tensor, camera: PinholeCamera) -> None:
    """A :class:`~advprior.errors.CameraWarning` when the keypoints say the focal length is in
    millimetres (:func:`~advprior.fitting.camera.focal_length_reason`): such a fit places the
    body a few decimetres from the camera and returns without error. A warning, not an error:
    keypoints of any size fit to finite numbers, and a caller may mean an extreme wide angle
    (``advprior fit`` refuses instead). Judged on the CPU only: reading keypoint values on a GPU
    would synchronise it for a check."""
    if kp.device.type != "cpu" or kp.numel() == 0:
        return
    reason = focal_length_reason(
        kp.detach().numpy(), conf.detach().numpy(), [min(camera.focal)] * len(kp)
    )
    if reason is not None:
        # this function, fit_keypoints, its with_autograd wrapper: the caller is four up
        warnings.warn(reason, CameraWarning, stacklevel=4)


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
    pose_schedule: object = None,
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
        stages: ``(prior weight, shape weight)`` per pose stage (finite numbers >= 0; else a
            ``ValueError``); energies are multiplied by the squares. Given, it always runs.
            None (default): SMPLify's schedule (:data:`SMPLIFY_STAGES`, large prior weights
            first), except that a fit from a pose estimate (``init_pose`` given) with a
            normal-latent prior (the VAE, GAN-N: energy ``|z|^2``) runs SMPLify's last stage
            alone, SPIN's refinement: SMPLify's first stages weigh ``|z|^2`` by 404^2 and pull
            the estimate to the latent's origin (measured on validation;
            :data:`INIT_POSE_STAGES`, :func:`default_stages`, ``docs/fitting.md``, "A learned
            start"). ``init_global_orient``, ``init_betas`` or ``init_transl`` without
            ``init_pose`` keep SMPLify's schedule (the pose starts at the prior's centre).
            ``info["stages"]`` records the stages run, ``info["stages_from"]`` why:
            ``"argument"``, ``"smplify"`` or ``"init_pose"``.
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
        pose_schedule: the pose density's weight per pose stage, as a multiplier of
            ``pose_weight`` (:func:`advprior.fitting.objective.pose_schedule_scales`): ``None``
            (default) the same weight in every stage; a number ``p``, ``(w_s / w_last) ** p``
            with ``w_s`` the stage's prior weight (annealed with the stages, strong early); or
            one multiplier per stage. The last stage's is always 1, so ``FitResult.loss`` and
            :func:`advprior.fitting.objective.final_objective` are unchanged. Recorded in
            ``info["pose_schedule"]``. Validation, round 24: ``docs/fitting.md``, "Annealing
            GAN-S's pose density".
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
    # checked for L-BFGS too, which ignores it: a NaN lr is a mistake whichever optimiser runs
    if positive_number(lr) is None:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if stages is not None:
        stages = check_stages(stages)
    kp, conf = prepare_keypoints(keypoints, confidence, fmt, check_layout=bool(check_layout))
    _warn_focal_length(kp, conf, camera)
    groups = _scale_groups(pixel_scale, kp, conf)
    kp, conf, model, body_model = place_fit(keypoints, kp, conf, prior, body_model)
    term = _prior_term(model, latent_density, latent_weight, pose_density, pose_weight, kp.device)
    stages_from = "argument"
    if stages is None:
        stages_from = "init_pose" if init_pose is not None else "smplify"
        stages = [(float(a), float(b)) for a, b in default_stages(term, init_pose is not None)]
    pose_scales = pose_schedule_scales(stages, pose_schedule)
    body = _Body(body_model, fmt)
    # a whole number only: 2.0 passed `in (0, 1, 2)` and failed deep in the fit (repeat())
    if whole_number(orientations) not in (0, 1, 2):
        raise ValueError(
            f"orientations must be 1 or 2 (or 0 with init_global_orient), got {orientations!r}"
        )
    orientations = int(orientations)
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
        pose_scales,
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
        "pose_schedule": pose_scales,
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
    pose_scales: list[float] | None = None


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

    scales = o.pose_scales or [1.0] * len(o.stages)
    for (prior_weight, shape_weight), scale in zip(o.stages, scales, strict=True):
        pw, sw = stage_weights(term, prior_weight, shape_weight)
        fn = pose_objective(camera, body, term, kp_k, w2_k, o.sigma, pw, sw, scale)
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
