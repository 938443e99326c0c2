"""A clean-room SMPLify-X-style fitting loop written against VPoser v1's interface.

Written for the tests from the published description of SMPLify / SMPLify-X (Bogo et al. 2016,
Pavlakos et al. 2019) and the call pattern of pipelines built on them, not from their code: an
``smplx`` SMPL body created from a model folder with a ``joint_mapper`` to OpenPose BODY_25, a
``vposer`` and a separate ``pose_embedding`` passed through helper functions, a camera stage on
the torso keypoints with a depth anchor, then several orientation tries, each starting with
``body_model.reset_params(...)`` and ``pose_embedding.fill_(0)``, through SMPLify's four stage
weights with ``torch.optim.LBFGS(line_search_fn="strong_wolfe")`` inside a ``create_closure``,
the Geman-McClure data term, ``w^2 |pose_embedding|^2`` as the pose prior and ``w^2 |betas|^2``;
the try with the lowest final loss wins. The same loop runs SMPLify's GMM instead of VPoser: the
pose is then free and the prior is the max-mixture energy read from a ``gmm_08.pkl``-layout file
(:class:`MaxMixtureEnergy`, float32 as SMPLify computes it).

Nothing here imports advprior except through ``load_vposer`` (passed in by the caller) and the
keypoint layout: the point is that unchanged VPoser code runs on advprior.
"""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import roma
import torch
from torch import Tensor, nn

#: SMPLify's (pose-prior weight, shape weight) per stage.
STAGE_WEIGHTS: tuple[tuple[float, float], ...] = (
    (404.0, 100.0),
    (404.0, 50.0),
    (57.4, 10.0),
    (4.78, 5.0),
)
#: BODY_25 keypoints used by the camera stage: RShoulder, LShoulder, RHip, LHip.
TORSO = (2, 5, 9, 12)
DEPTH_WEIGHT = 100.0
RHO = 100.0  # Geman-McClure scale, pixels


class JointMapper(nn.Module):
    """smplx's ``joint_mapper`` hook: picks model joints by index."""

    def __init__(self, indices: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("indices", torch.as_tensor(list(indices), dtype=torch.long))

    def forward(self, joints: Tensor, **kwargs: object) -> Tensor:
        return joints.index_select(1, self.indices)


@dataclass
class Camera:
    """Pinhole camera looking down +z, OpenCV pixels; ``translation`` is optimised."""

    focal: float
    center: tuple[float, float]
    translation: Tensor

    def project(self, points: Tensor) -> Tensor:
        p = points + self.translation[:, None]
        xy = p[..., :2] / p[..., 2:3]
        return self.focal * xy + xy.new_tensor(self.center)


class MaxMixtureEnergy(nn.Module):
    """SMPLify's max-mixture pose energy from a ``gmm_08.pkl``-layout file, in float32 as
    SMPLify-style code computes it: ``min_k 0.5 d_k^T P_k d_k - log(nll_w_k)`` with
    ``nll_w_k = w_k / ((2 pi)^(D/2) sqrt|S_k| / min_j sqrt|S_j|)``."""

    def __init__(self, path: str) -> None:
        super().__init__()
        with open(path, "rb") as fh:
            gmm = pickle.load(fh, encoding="latin1")  # a plain dict of numpy arrays
        covars = gmm["covars"]
        sqrdets = np.array([np.sqrt(np.linalg.det(c)) for c in covars])
        const = (2 * np.pi) ** (covars.shape[-1] / 2.0)
        nll_w = gmm["weights"] / (const * (sqrdets / sqrdets.min()))
        self.register_buffer("means", torch.tensor(gmm["means"], dtype=torch.float32))
        precisions = np.stack([np.linalg.inv(c) for c in covars]).astype(np.float32)
        self.register_buffer("precisions", torch.tensor(precisions))
        self.register_buffer("nll_weights", torch.tensor(nll_w, dtype=torch.float32))
        self.register_buffer("weights", torch.tensor(gmm["weights"], dtype=torch.float32))

    def forward(self, pose: Tensor) -> Tensor:
        diff = pose[:, None] - self.means
        quad = torch.einsum("bki,kij,bkj->bk", diff, self.precisions, diff)
        return (0.5 * quad - torch.log(self.nll_weights)).min(dim=1).values

    def mean_pose(self) -> Tensor:
        """The weighted mean of the component means: SMPLify's starting pose ``(69,)``."""
        return self.weights @ self.means


def gmof(sq: Tensor, rho: float = RHO) -> Tensor:
    return rho**2 * sq / (rho**2 + sq)


def guess_depth(keypoints: Tensor, joints3d: Tensor, focal: float) -> Tensor:
    """Depth from the ratio of torso edge lengths, 3D (rest body) over 2D."""
    edges = ((2, 9), (5, 12))
    l3 = sum((joints3d[:, a] - joints3d[:, b]).norm(dim=-1) for a, b in edges)
    l2 = sum((keypoints[:, a, :2] - keypoints[:, b, :2]).norm(dim=-1) for a, b in edges)
    return focal * l3 / l2.clamp_min(1e-3)


def decode_body_pose(
    vposer: object, pose_embedding: Tensor | None, body_model: nn.Module
) -> Tensor:
    """SMPL ``body_pose (1, 69)``: the embedding decoded as VPoser v1 (``output_type="aa"``)
    with the two hand joints appended as zeros; the model's own ``body_pose`` without VPoser."""
    if vposer is None:
        return body_model.body_pose
    body_pose = vposer.decode(pose_embedding, output_type="aa").view(1, -1)
    return torch.cat([body_pose, body_pose.new_zeros(1, 6)], dim=1)


def create_closure(
    optimizer: torch.optim.Optimizer,
    body_model: nn.Module,
    camera: Camera,
    keypoints: Tensor,
    vposer: object,
    pose_embedding: Tensor | None,
    pose_prior: Callable[[Tensor], Tensor] | None,
    weights: tuple[float, float],
    stage: str,
) -> Callable[[], Tensor]:
    conf = keypoints[..., 2]
    target = keypoints[..., :2]
    prior_w, shape_w = weights

    def closure() -> Tensor:
        optimizer.zero_grad()
        body_pose = decode_body_pose(vposer, pose_embedding, body_model)
        out = body_model(body_pose=body_pose, return_verts=True)
        projected = camera.project(out.joints[:, :25])
        if stage == "camera":
            sq = (projected[:, TORSO] - target[:, TORSO]).pow(2).sum(-1)
            loss = (conf[:, TORSO] ** 2 * sq).sum()
            loss = loss + DEPTH_WEIGHT**2 * (camera.translation[:, 2] - camera.depth0).pow(2).sum()
        else:
            data = (conf[..., None] ** 2 * gmof((projected - target).pow(2))).sum()
            if vposer is not None:
                prior = pose_embedding.pow(2).sum()
            else:
                prior = pose_prior(body_pose).sum()
            loss = data + prior_w**2 * prior + shape_w**2 * body_model.betas.pow(2).sum()
        loss.backward()
        return loss

    return closure


def run_optimizer(
    params: list[Tensor], closure_factory: Callable, maxiters: int, inner: int, ftol: float = 1e-9
) -> float:
    optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=inner, line_search_fn="strong_wolfe")
    closure = closure_factory(optimizer)
    prev = None
    for _ in range(maxiters):
        loss = float(optimizer.step(closure).detach())
        if not math.isfinite(loss):
            break
        if prev is not None and abs(prev - loss) <= ftol * max(abs(prev), abs(loss), 1.0):
            break
        prev = loss
    return float(closure().detach())


@dataclass
class FrameFit:
    body_pose: Tensor  # (69,)
    joints: Tensor  # (24, 3) camera frame
    projected: Tensor  # (25, 2)
    loss: float
    embedding_start: Tensor | None
    embedding_end: Tensor | None
    reprojection_start: float
    reprojection_end: float


def fit_single_frame(
    keypoints: Tensor,
    body_model: nn.Module,
    focal: float,
    center: tuple[float, float],
    vposer: object = None,
    pose_prior: Callable[[Tensor], Tensor] | None = None,
    mean_pose: Tensor | None = None,
    orientations: int = 2,
    maxiters: int = 6,
    inner: int = 10,
) -> FrameFit:
    """Fit one frame ``keypoints (1, 25, 3)`` (x, y, confidence). With ``vposer`` the pose is
    its embedding; else ``pose_prior`` (e.g. :class:`MaxMixtureEnergy`) scores a free pose that
    starts at ``mean_pose (69,)``."""
    use_vposer = vposer is not None
    dtype = keypoints.dtype
    pose_embedding = torch.zeros(1, 32, dtype=dtype, requires_grad=True) if use_vposer else None
    upright = torch.tensor([[math.pi, 0.0, 0.0]], dtype=dtype)
    start_pose = (
        torch.zeros(1, 69, dtype=dtype)
        if use_vposer or mean_pose is None
        else mean_pose.reshape(1, 69).to(dtype)
    )
    body_model.reset_params(global_orient=upright, body_pose=start_pose)
    with torch.no_grad():
        rest = body_model(body_pose=decode_body_pose(vposer, pose_embedding, body_model)).joints
    depth = guess_depth(keypoints, rest[:, :25], focal)
    camera = Camera(focal, center, torch.tensor([[0.0, 0.0, float(depth)]], dtype=dtype))
    camera.depth0 = camera.translation[:, 2].clone()
    camera.translation.requires_grad_(True)

    # camera stage: camera translation and body orientation on the torso
    body_model.global_orient.requires_grad_(True)
    run_optimizer(
        [camera.translation, body_model.global_orient],
        lambda opt: create_closure(
            opt,
            body_model,
            camera,
            keypoints,
            vposer,
            pose_embedding,
            pose_prior,
            (0.0, 0.0),
            "camera",
        ),
        maxiters,
        inner,
    )
    camera.translation.requires_grad_(False)
    with torch.no_grad():
        base = body_model.global_orient.detach().clone()
        base_rot = _rotmat(base)

    best: FrameFit | None = None
    for k in range(orientations):
        yaw = 2 * math.pi * k / orientations
        turn = _rotmat(torch.tensor([[0.0, yaw, 0.0]], dtype=dtype))
        orient = _axis_angle(base_rot @ turn)
        body_model.reset_params(global_orient=orient, body_pose=start_pose)
        if use_vposer:
            with torch.no_grad():
                pose_embedding.fill_(0)
        start_emb = pose_embedding.detach().clone() if use_vposer else None
        reproj0 = _reprojection(body_model, camera, keypoints, vposer, pose_embedding)
        params = [body_model.global_orient, body_model.transl, body_model.betas]
        params += [pose_embedding] if use_vposer else [body_model.body_pose]
        loss = math.nan
        for weights in STAGE_WEIGHTS:
            loss = run_optimizer(
                params,
                lambda opt, w=weights: create_closure(
                    opt,
                    body_model,
                    camera,
                    keypoints,
                    vposer,
                    pose_embedding,
                    pose_prior,
                    w,
                    "pose",
                ),
                maxiters,
                inner,
            )
        with torch.no_grad():
            body_pose = decode_body_pose(vposer, pose_embedding, body_model)
            out = body_model(body_pose=body_pose)
            fit = FrameFit(
                body_pose=body_pose[0].detach().clone(),
                joints=(out.joints[0, 25:49] + camera.translation[0]).detach().clone(),
                projected=camera.project(out.joints[:, :25])[0].detach().clone(),
                loss=loss,
                embedding_start=start_emb,
                embedding_end=pose_embedding.detach().clone() if use_vposer else None,
                reprojection_start=reproj0,
                reprojection_end=_reprojection(
                    body_model, camera, keypoints, vposer, pose_embedding
                ),
            )
        if best is None or (math.isfinite(fit.loss) and not fit.loss >= best.loss):
            best = fit
    return best


@torch.no_grad()
def _reprojection(body_model, camera, keypoints, vposer, pose_embedding) -> float:
    out = body_model(body_pose=decode_body_pose(vposer, pose_embedding, body_model))
    err = (camera.project(out.joints[:, :25]) - keypoints[..., :2]).norm(dim=-1)
    seen = keypoints[..., 2] > 0
    return float(err[seen].mean())


def _rotmat(aa: Tensor) -> Tensor:
    return roma.rotvec_to_rotmat(aa)


def _axis_angle(rot: Tensor) -> Tensor:
    return roma.rotmat_to_rotvec(rot)


def fit_frames(
    keypoints: Tensor,
    body_model: nn.Module,
    focal: float,
    center: tuple[float, float],
    **kwargs: object,
) -> tuple[list[FrameFit], float]:
    """Fit each frame of ``keypoints (B, 25, 3)`` in turn (as the pipelines do); returns the
    fits and the seconds per frame."""
    start = time.perf_counter()
    fits = [
        fit_single_frame(keypoints[i : i + 1], body_model, focal, center, **kwargs)
        for i in range(keypoints.shape[0])
    ]
    return fits, (time.perf_counter() - start) / max(keypoints.shape[0], 1)


@torch.no_grad()
def make_frames(
    body_model: nn.Module,
    body_pose: Tensor,
    global_orient: Tensor,
    *,
    focal: float = 1000.0,
    center: tuple[float, float] = (500.0, 500.0),
    seed: int = 0,
    noise_px: float = 5.0,
    drop: float = 0.2,
) -> tuple[Tensor, Tensor]:
    """BODY_25 keypoints ``(B, 25, 3)`` (pixels + confidence) and the true 24 SMPL joints
    ``(B, 24, 3)`` (camera frame, metres) of ``body_pose (B, 63)`` seen from a random heading
    and elevation 3-6 m in front of the camera (the protocol of ``docs/fitting.md``).
    ``body_model`` is an smplx SMPL model whose ``joint_mapper`` puts BODY_25 first and SMPL's
    24 joints next."""
    n = body_pose.shape[0]
    gen = torch.Generator().manual_seed(seed)
    yaw = torch.rand(n, generator=gen) * 2 * math.pi
    elevation = (torch.rand(n, generator=gen) * 30.0 - 10.0) * math.pi / 180.0
    zeros = torch.zeros(n)
    view = _rotmat(torch.stack([math.pi + elevation, zeros, zeros], -1))
    turn = _rotmat(torch.stack([zeros, yaw, zeros], -1))
    orient = _axis_angle(view @ turn @ _rotmat(global_orient.float()))
    pelvis = torch.stack(
        [
            (torch.rand(n, generator=gen) - 0.5) * 0.6,
            (torch.rand(n, generator=gen) - 0.5) * 0.6,
            3.0 + 3.0 * torch.rand(n, generator=gen),
        ],
        -1,
    )
    pose69 = torch.cat([body_pose.float(), torch.zeros(n, 6)], 1)
    kw = {"betas": torch.zeros(n, 10), "global_orient": orient, "body_pose": pose69}
    joints = body_model(transl=torch.zeros(n, 3), **kw).joints
    transl = pelvis - joints[:, 25]
    joints = joints + transl[:, None]
    xy = joints[:, :25, :2] / joints[:, :25, 2:3]
    kp = focal * xy + xy.new_tensor(center) + noise_px * torch.randn(n, 25, 2, generator=gen)
    conf = (torch.rand(n, 25, generator=gen) >= drop).float()
    conf[:, TORSO] = 1.0  # the camera stage needs the torso (a detector's most reliable points)
    return torch.cat([kp, conf[..., None]], -1), joints[:, 25:49]


def smpl_joint_mapper(model_type: str = "smpl") -> JointMapper:
    """BODY_25 (advprior's ``openpose25`` mapping onto smplx's joints) then SMPL's 24 joints."""
    from advprior.fitting.keypoints import OPENPOSE25, model_joint_indices

    body25 = model_joint_indices(OPENPOSE25, model_type, 24 + 21)
    return JointMapper([*body25, *range(24)])
