"""The field's prior tasks, for any :class:`advprior.interface.Prior` (protocols: docs/eval.md).

- :func:`plausibility_task`: ROC AUC of :meth:`Prior.score` for held-out real poses against
  corrupted ones (:func:`rotation_noise`, :func:`past_limits`), score percentiles, cost.
- :func:`denoising_task`: noisy poses projected back by each prior (:func:`project_to_prior`);
  per-joint mm and geodesic degrees to the clean pose (NRDF's pose denoising).
- :func:`completion_task`: 3D joints of the visible body given, the masked part recovered by
  :func:`fit_joints`, best of K hypotheses (DPoser's partial-body completion).
- :func:`motion_denoising_task`: clips with Gaussian noise on the 3D joints, fitted with the
  temporal model of :func:`advprior.fitting.fit_sequence` (:func:`fit_joints` with
  ``smooth``); MPJPE to the clean clip.

Everything is in the body frame: zero global orientation, pelvis at its rest position, joints of
the open stand-in skeleton (betas 0). Only the interface is used (``latent_space`` tells the two
families apart), so any prior object runs through the same code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advprior.body import forward_kinematics_rotmat
from advprior.data.dataset import PoseData
from advprior.fitting.priors import PriorTerm
from advprior.fitting.sequence import latent_step
from advprior.interface import Prior, frozen
from advprior.lbfgs import minimize_lbfgs
from advprior.rotations import axis_angle_to_rotmat, geodesic_distance, rotmat_to_axis_angle
from advprior.tensors import check_tensor

#: Joint (SMPL index), rotation axis (local frame) and sign of a bend *backwards* past the
#: straight limb: knees flex about +x (hyperextension is -x), the left elbow flexes about -y and
#: the right about +y (the arms lie along +-x at rest).
HYPEREXTENSION: dict[str, tuple[int, int, float]] = {
    "left_knee": (4, 0, -1.0),
    "right_knee": (5, 0, -1.0),
    "left_elbow": (18, 1, 1.0),
    "right_elbow": (19, 1, -1.0),
}
#: Bend past straight (degrees) drawn uniformly for :func:`past_limits`: knees and elbows reach
#: at most about 0-10 degrees of hyperextension (AAOS normal ranges of motion).
HYPEREXTENSION_DEGREES = (30.0, 90.0)
#: Masked joints (SMPL indices, 24-joint skeleton) of the partial-body completion task.
COMPLETION_MASKS: dict[str, tuple[int, ...]] = {
    "left arm": (18, 20, 22),
    "right arm": (19, 21, 23),
    "left leg": (4, 7, 10),
    "right leg": (5, 8, 11),
    "both legs": (4, 5, 7, 8, 10, 11),
    "trunk": (3, 6, 9, 12, 13, 14, 15),
}
#: Weight of a pose-space prior's energy against the pose residual in :func:`project_to_prior`.
POSE_SPACE_WEIGHT = 1e-3


def _body_joints(rotmat: Tensor) -> Tensor:
    """24 joints ``(n, 24, 3)`` of body rotations ``(n, 21 | 23, 3, 3)`` in the body frame."""
    root = torch.eye(3, dtype=rotmat.dtype, device=rotmat.device).expand(rotmat.shape[0], 1, 3, 3)
    return forward_kinematics_rotmat(torch.cat([root, rotmat], 1))


def pose_joints(body_pose: Tensor) -> Tensor:
    """24 joints ``(..., 24, 3)`` (metres, body frame) of ``body_pose (..., 63)``."""
    flat = body_pose.reshape(-1, body_pose.shape[-1])
    rot = axis_angle_to_rotmat(flat.unflatten(-1, (-1, 3)))
    return _body_joints(rot).reshape(*body_pose.shape[:-1], 24, 3)


# -- corruptions ---------------------------------------------------------------------------------


def rotation_noise(body_pose: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    """``R_j exp(eps_j)`` per joint, ``eps_j ~ N(0, sigma^2 I_3)`` (radians), ``(N, 63)``."""
    rot = axis_angle_to_rotmat(body_pose.unflatten(-1, (-1, 3)))
    eps = sigma * torch.randn(rot.shape[:-1], generator=generator).to(body_pose)
    return rotmat_to_axis_angle(rot @ axis_angle_to_rotmat(eps)).flatten(-2)


def past_limits(body_pose: Tensor, generator: torch.Generator) -> Tensor:
    """Each pose with one knee or elbow (drawn uniformly) replaced by a bend backwards past the
    straight limb by an angle drawn from :data:`HYPEREXTENSION_DEGREES`, ``(N, 63)``."""
    out = body_pose.clone().unflatten(-1, (-1, 3))
    n = out.shape[0]
    which = torch.randint(len(HYPEREXTENSION), (n,), generator=generator)
    lo, hi = HYPEREXTENSION_DEGREES
    angle = torch.deg2rad(lo + (hi - lo) * torch.rand(n, generator=generator)).to(out)
    for k, (joint, axis, sign) in enumerate(HYPEREXTENSION.values()):
        rows = which == k
        value = out.new_zeros(int(rows.sum()), 3)
        value[:, axis] = sign * angle[rows]
        out[rows, joint - 1] = value
    return out.flatten(-2)


def roc_auc(positive: Tensor, negative: Tensor) -> float:
    """Probability that a positive scores higher than a negative (ties count one half): the
    area under the ROC curve, from the Mann-Whitney U statistic with average ranks.

    ``positive (N,)``, ``negative (M,)``, N, M >= 1. A NaN score is a ``ValueError`` naming
    its side (it would sort above every number and count as the most plausible); +-inf ranks
    as the extreme it is."""
    for name, x in (("positive", positive), ("negative", negative)):
        check_tensor(x, name, None, finite=False)
        if x.ndim != 1 or x.numel() == 0:
            raise ValueError(f"{name} must have shape (N,) with N >= 1, got {tuple(x.shape)}")
        if bool(x.isnan().any()):
            raise ValueError(f"{name} contains NaN scores")
    scores = torch.cat([positive.detach(), negative.detach()]).cpu().double().numpy()
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    n_pos, n_neg = len(positive), len(negative)
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


# -- projection and 3D joint fits ----------------------------------------------------------------


def project_to_prior(prior: Prior, body_pose: Tensor, **options: Any) -> Tensor:
    """The prior's version of poses ``(N, 63)``: ``project_pose`` for a latent prior; for a
    pose-space prior the pose minimising the score's residual to ``body_pose`` plus
    :data:`POSE_SPACE_WEIGHT` times ``prior.energy`` (L-BFGS from ``body_pose``, 100 steps)."""
    if prior.latent_space is not None:
        return prior.project_pose(body_pose, **options)
    target = body_pose.detach()
    target_rot = axis_angle_to_rotmat(target.unflatten(-1, (-1, 3)))
    target_pos = _body_joints(target_rot)

    def objective(x: Tensor) -> Tensor:
        rot = axis_angle_to_rotmat(x.unflatten(-1, (-1, 3)))
        res = ((rot - target_rot) ** 2).sum((-1, -2)).mean(-1)
        pos = ((_body_joints(rot) - target_pos) ** 2).sum(-1).mean(-1)
        energy = prior.energy(x.to(prior.dtype)).to(x.dtype)
        return res + 100.0 * pos + POSE_SPACE_WEIGHT * energy

    with frozen(prior):
        return minimize_lbfgs(objective, target.clone(), max_iter=100).x.detach()


def fit_joints(
    prior: Prior | None,
    targets: Tensor,
    visible: Sequence[int] | None = None,
    *,
    starts: Tensor | None = None,
    noise: float = 0.01,
    smooth: float = 0.0,
    iterations: int = 100,
) -> Tensor:
    """Poses ``(B, T, 63)`` whose body-frame joints match ``targets (B, T, 24, 3)`` (metres) on
    the ``visible`` joints (all when None), through ``prior``.

    Objective per clip: ``0.5 sum |p_j - target_j|^2 / noise^2`` over visible joints and frames
    + ``0.5 E_prior`` per frame (:class:`advprior.fitting.priors.PriorTerm`: ``|z|^2`` for a
    normal latent, the GMM's nll, 0 on the sphere) + the latent gauge + ``smooth`` times the
    summed squared steps between consecutive frames' pose parameters
    (:func:`advprior.fitting.sequence.latent_step`: geodesic on the sphere). ``starts (B, T, P)``
    (default :meth:`Prior.fit_start` everywhere). One batched L-BFGS problem per clip.
    """
    term = PriorTerm(prior)
    b, t = targets.shape[:2]
    dtype = targets.dtype
    mask = torch.zeros(24, dtype=dtype, device=targets.device)
    mask[list(range(24)) if visible is None else list(visible)] = 1.0
    if starts is None:
        starts = term.init(b * t, dtype, targets.device).view(b, t, -1)
    dim = starts.shape[-1]

    def objective(x: Tensor) -> Tensor:
        p = x.view(b * t, dim)
        pose = term.pose(p)
        joints = _body_joints(axis_angle_to_rotmat(pose.unflatten(-1, (-1, 3)))).view(b, t, 24, 3)
        data = (((joints - targets) ** 2).sum(-1) * mask).sum((-1, -2)) / (2 * noise * noise)
        energy = (0.5 * term.energy(p, pose) + 100.0 * term.gauge(p)).view(b, t).sum(-1)
        steps = latent_step(term.space, x.view(b, t, dim)[:, 1:], x.view(b, t, dim)[:, :-1])
        return data + energy + smooth * steps.sum(-1)

    with frozen(prior):
        res = minimize_lbfgs(objective, starts.reshape(b, t * dim).to(dtype), max_iter=iterations)
        with torch.no_grad():
            return term.pose(res.x.view(b * t, dim)).view(b, t, -1)


# -- tasks ---------------------------------------------------------------------------------------


def plausibility_task(
    prior: Prior,
    real: Tensor,
    calibration: Tensor,
    *,
    seed: int = 0,
    noise: Sequence[float] = (0.1, 0.3, 0.5),
    **options: Any,
) -> dict[str, Any]:
    """ROC AUC of ``prior.score`` for ``real (N, 63)`` against each corruption of the same poses,
    the score's seconds per 1,000 poses, and its percentiles on ``calibration (M, 63)``."""
    gen = torch.Generator().manual_seed(seed)
    corrupted = {f"noise {s:g} rad": rotation_noise(real, s, gen) for s in noise}
    corrupted["past limits"] = past_limits(real, gen)
    start = time.perf_counter()
    real_score = prior.score(real, **options)
    seconds = time.perf_counter() - start
    auc = {
        name: roc_auc(real_score, prior.score(poses, **options))
        for name, poses in corrupted.items()
    }
    # on the CPU: a GPU score against the CPU quantiles failed, and MPS has no float64
    cal = prior.score(calibration, **options).detach().cpu().double()
    q = torch.tensor([0.01, 0.05, 0.1, 0.5], dtype=torch.float64)
    return {
        "auc": auc,
        "seconds_per_1000": 1000.0 * seconds / len(real),
        "percentiles": dict(zip(("1%", "5%", "10%", "50%"), cal.quantile(q).tolist(), strict=True)),
    }


def denoising_task(
    prior: Prior, clean: Tensor, *, sigma: float = 0.3, seed: int = 0, **options: Any
) -> dict[str, float]:
    """Poses ``clean (N, 63)`` with :func:`rotation_noise` ``sigma`` projected back by
    :func:`project_to_prior`: mean per-joint position error (mm, 24 joints) and mean geodesic
    error (degrees, 21 joints) to the clean poses, for the noisy input and the projection."""
    gen = torch.Generator().manual_seed(seed)
    noisy = rotation_noise(clean, sigma, gen)
    start = time.perf_counter()
    out = project_to_prior(prior, noisy, **options)
    seconds = time.perf_counter() - start

    def errors(poses: Tensor) -> tuple[float, float]:
        mm = 1000.0 * (pose_joints(poses) - pose_joints(clean)).norm(dim=-1).mean()
        a = axis_angle_to_rotmat(poses.unflatten(-1, (-1, 3)))
        b = axis_angle_to_rotmat(clean.unflatten(-1, (-1, 3)))
        return float(mm), float(torch.rad2deg(geodesic_distance(a, b)).mean())

    mm_in, deg_in = errors(noisy)
    mm, deg = errors(out)
    return {
        "input_mm": mm_in,
        "input_deg": deg_in,
        "mm": mm,
        "deg": deg,
        "seconds_per_1000": 1000.0 * seconds / len(clean),
    }


def completion_task(
    prior: Prior,
    clean: Tensor,
    *,
    hypotheses: Sequence[int] = (1, 10),
    seed: int = 0,
    iterations: int = 100,
) -> dict[str, dict[str, float]]:
    """For each mask of :data:`COMPLETION_MASKS`: fit the visible joints of ``clean (N, 63)``
    (:func:`fit_joints`, 1 cm observation scale) from K starts (the first
    :meth:`Prior.fit_start`, the others seeded prior samples: latents, or poses for a
    pose-space prior); mean over poses of the best start's masked-joint error (mm)."""
    target = pose_joints(clean)[:, None]  # (N, 1, 24, 3)
    n = clean.shape[0]
    k_max = max(hypotheses)
    term = PriorTerm(prior)
    gen = torch.Generator().manual_seed(seed)
    first = term.init(1, clean.dtype, clean.device)
    if k_max > 1:
        with torch.no_grad():
            extra = (
                prior.sample_latent(k_max - 1, generator=gen)
                if term.has_latent
                else prior.sample(k_max - 1, generator=gen)
            ).to(clean.dtype)
        seeds = torch.cat([first, extra])
    else:
        seeds = first
    out: dict[str, dict[str, float]] = {}
    for name, masked in COMPLETION_MASKS.items():
        visible = [j for j in range(24) if j not in masked]
        starts = seeds[None].expand(n, -1, -1).reshape(n * k_max, 1, -1)
        poses = fit_joints(
            prior, target.repeat_interleave(k_max, 0), visible, starts=starts, iterations=iterations
        )
        err = pose_joints(poses[:, 0]) - target[:, 0].repeat_interleave(k_max, 0)
        err = 1000.0 * err[:, list(masked)].norm(dim=-1).mean(-1).view(n, k_max)
        out[name] = {f"K={k}": float(err[:, :k].min(1).values.mean()) for k in hypotheses}
    return out


def motion_denoising_task(
    prior: Prior,
    clips: Tensor,
    *,
    noise: float = 0.04,
    smooth: float = 100.0,
    seed: int = 0,
    iterations: int = 200,
) -> dict[str, float]:
    """Clips ``(B, T, 63)``: body-frame joints plus ``N(0, noise^2)`` per coordinate (metres),
    fitted by :func:`fit_joints` with the temporal term ``smooth`` (0: per frame). MPJPE (mm)
    of the noisy input and of the fit to the clean joints, and acceleration error (mm/frame^2)."""
    gen = torch.Generator().manual_seed(seed)
    clean = pose_joints(clips)
    noisy = clean + noise * torch.randn(clean.shape, generator=gen).to(clean)
    start = time.perf_counter()
    fitted = pose_joints(
        fit_joints(prior, noisy, noise=noise, smooth=smooth, iterations=iterations)
    )
    seconds = time.perf_counter() - start
    return {
        "input_mm": float(1000.0 * (noisy - clean).norm(dim=-1).mean()),
        "mm": float(1000.0 * (fitted - clean).norm(dim=-1).mean()),
        "accel_mm": acceleration_error(fitted, clean),
        "seconds_per_frame": seconds / (clips.shape[0] * clips.shape[1]),
    }


def acceleration_error(pred: Tensor, target: Tensor) -> float:
    """Mean norm (mm/frame^2) of the difference of second differences along time of joints
    ``(..., T, J, 3)`` (metres): ``|(p_t+1 - 2 p_t + p_t-1) - (q_t+1 - 2 q_t + q_t-1)|``.
    ``pred`` and ``target`` of one shape with T >= 3 (``ValueError`` otherwise)."""
    for name, x in (("pred", pred), ("target", target)):
        check_tensor(x, name, 3, finite=False)
        if x.ndim < 3 or x.shape[-3] < 3 or x.shape[-2] == 0:
            raise ValueError(
                f"{name} must have shape (..., T, J, 3) with T >= 3 frames and J >= 1, "
                f"got {tuple(x.shape)}"
            )
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )

    def accel(x: Tensor) -> Tensor:
        return x[..., 2:, :, :] - 2 * x[..., 1:-1, :, :] + x[..., :-2, :, :]

    return float(1000.0 * (accel(pred) - accel(target)).norm(dim=-1).mean())


def contiguous_clips(
    sequence: Tensor, length: int, count: int, *, stride: int | None = None
) -> list[Tensor]:
    """Index tensors of up to ``count`` clips of ``length`` consecutive frames of one sequence
    each (``sequence (N,)`` the per-frame sequence id of a dataset split, frames in file order;
    a sequence shorter than ``length`` or not in one run of rows gives none).

    One clip per sequence first (its first ``length`` frames), in sequence order; with
    ``stride``, then the clips starting ``stride``, ``2 stride``, ... frames into each sequence,
    one per sequence a round, until ``count``. ``None``: one clip per sequence at most."""
    if stride is not None and (isinstance(stride, bool) or not isinstance(stride, int)):
        raise TypeError(f"stride must be an int or None, got {stride!r}")
    if stride is not None and stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    per_sequence: list[list[Tensor]] = []
    for sid in torch.unique_consecutive(sequence).tolist():
        if stride is None and len(per_sequence) >= count:
            break  # one clip each: the sequences after these are not needed
        frames = torch.nonzero(sequence == sid).flatten()
        if len(frames) >= length and bool((frames.diff() == 1).all()):
            starts = [0] if stride is None else range(0, len(frames) - length + 1, stride)
            per_sequence.append([frames[s : s + length] for s in starts])
    clips: list[Tensor] = []
    for depth in range(max((len(c) for c in per_sequence), default=0)):
        clips += [c[depth] for c in per_sequence if depth < len(c)]
    return clips[:count]


@dataclass(frozen=True)
class TaskSizes:
    """Sizes of one :func:`run_tasks` run."""

    poses: int  # held-out test poses (plausibility; half for denoising)
    completion_poses: int  # test poses per completion mask
    hypotheses: tuple[int, ...]  # K of best-of-K completion
    clips: int  # test clips for motion denoising (validation: half, at least one)
    clip_length: int  # frames per clip
    iterations: int  # L-BFGS iterations of the completion fits
    motion_iterations: int  # L-BFGS iterations of the motion-denoising fits
    score_options: tuple[tuple[str, int], ...]  # keyword options of Prior.score


QUICK_TASKS = TaskSizes(24, 4, (1, 3), 1, 12, 20, 20, (("steps", 10), ("bank_size", 256)))
FULL_TASKS = TaskSizes(300, 50, (1, 10), 4, 60, 100, 200, ())
#: Temporal weights tried on validation clips for motion denoising (per prior, lowest MPJPE).
MOTION_SMOOTH = (10.0, 100.0, 1000.0)


def run_tasks(
    priors: Mapping[str, Prior],
    test: PoseData,
    validation: PoseData,
    *,
    quick: bool = False,
    seed: int = 0,
    log: Any = None,
) -> dict[str, Any]:
    """Every task for every prior of ``priors`` (label -> any :class:`Prior`), test poses from
    ``test``, calibration percentiles and the motion-denoising weight from ``validation``
    (:class:`advprior.data.PoseData` splits). Returns ``{task: {label: results}}`` plus
    ``"settings"``; :func:`format_tables` renders it."""
    sizes = QUICK_TASKS if quick else FULL_TASKS
    gen = torch.Generator().manual_seed(seed)
    real = test.body_pose[torch.randperm(len(test), generator=gen)[: sizes.poses]]
    calib = validation.body_pose[torch.randperm(len(validation), generator=gen)[: sizes.poses]]
    clips_test = _clip_poses(test, sizes.clip_length, sizes.clips)
    clips_val = _clip_poses(validation, sizes.clip_length, max(1, sizes.clips // 2))
    options = dict(sizes.score_options)
    out: dict[str, Any] = {"settings": {**asdict(sizes), "seed": seed}}
    half = max(2, sizes.poses // 2)
    for label, prior in priors.items():
        start = time.perf_counter()
        if isinstance(prior, torch.nn.Module):
            prior.eval()
        out.setdefault("plausibility", {})[label] = plausibility_task(
            prior, real, calib, seed=seed, **options
        )
        for sigma in (0.1, 0.3):
            out.setdefault(f"pose denoising ({sigma:g} rad)", {})[label] = denoising_task(
                prior, real[:half], sigma=sigma, seed=seed, **options
            )
        out.setdefault("partial-body completion (mm on masked joints)", {})[label] = (
            completion_task(
                prior,
                real[: sizes.completion_poses],
                hypotheses=sizes.hypotheses,
                seed=seed,
                iterations=sizes.iterations,
            )
        )
        motion = {}
        if clips_test is not None and clips_val is not None:
            val_mm = {
                s: motion_denoising_task(
                    prior, clips_val, smooth=s, seed=seed, iterations=sizes.motion_iterations
                )["mm"]
                for s in MOTION_SMOOTH
            }
            best = min(val_mm, key=val_mm.get)
            res = motion_denoising_task(
                prior, clips_test, smooth=best, seed=seed, iterations=sizes.motion_iterations
            )
            single = motion_denoising_task(
                prior, clips_test, smooth=0.0, seed=seed, iterations=sizes.motion_iterations
            )
            motion = {
                "smooth (val)": best,
                **res,
                "per-frame mm": single["mm"],
                "per-frame accel_mm": single["accel_mm"],
            }
            out.setdefault("motion denoising (4 cm)", {})[label] = motion
        if log is not None:
            log(f"{label}: {time.perf_counter() - start:.1f} s")
    return out


def _clip_poses(data: PoseData, length: int, count: int) -> Tensor | None:
    index = contiguous_clips(data.sequence, length, count)
    return torch.stack([data.body_pose[i] for i in index]) if index else None


#: Keys of a results file beside the tasks' (``advprior eval --tasks`` adds the last two).
NOT_TASKS = ("settings", "software", "weights_sha256")


def format_tables(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown tables of :func:`run_tasks` results."""
    lines: list[str] = []
    for task, per_prior in results.items():
        if task in NOT_TASKS:
            continue
        lines += [f"#### {task}", ""]
        rows = [(label, _flatten(values)) for label, values in per_prior.items()]
        header = list(rows[0][1])
        lines.append("| prior | " + " | ".join(header) + " |")
        lines.append("|---|" + "---|" * len(header))
        for label, flat in rows:
            lines.append(f"| {label} | " + " | ".join(_fmt(flat[h]) for h in header) + " |")
        lines.append("")
    return "\n".join(lines)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name} "))
        else:
            out[name] = value
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)
