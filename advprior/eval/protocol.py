"""The measurements of the paper's protocol, one model at a time (no plotting, no files).

- :class:`Poser` turns body poses into the point sets the metrics compare (24 joints and a
  fixed vertex subset, global orientation zeroed, pelvis at the origin, metres).
- :func:`sample_recall_precision`: recall/precision from a stream of samples (section 4.1).
- :func:`interpolation_paths` / :func:`smoothness`: interpolation smoothness (section 4.2).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import roma
import torch
from torch import Tensor

from advprior.eval.metrics import (
    nn_distances,
    per_step_deformation,
    pose_joints,
    smoothness_ratio,
)
from advprior.interface import Prior
from advprior.tensors import check_tensor

#: Point kinds compared by the protocol.
KINDS = ("joints", "vertices")


class Poser:
    """Poses -> pelvis-centred points on a body model, in chunks.

    Args:
        body_model: an ``advprior.body.BodyModel`` (stand-in or real SMPL).
        n_vertices: size of the fixed random vertex subset used for the per-vertex distance;
            a uniform random subset gives an unbiased estimate of the full-mesh per-vertex
            mean for every pair of poses. ``None`` or a number >= V keeps every vertex.
        seed: seed of the vertex subset.
        chunk: poses per body-model call.
    """

    def __init__(
        self, body_model: object, n_vertices: int | None = 256, seed: int = 0, chunk: int = 2048
    ) -> None:
        self.body_model = body_model
        self.chunk = chunk
        from advprior.body.model import rest_output

        rest = rest_output(body_model)  # on the body model's device and dtype
        self.num_vertices = int(rest.vertices.shape[1])
        if n_vertices is None or n_vertices >= self.num_vertices:
            self.vertex_ids = torch.arange(self.num_vertices)
        else:
            g = torch.Generator().manual_seed(seed)
            self.vertex_ids = torch.randperm(self.num_vertices, generator=g)[:n_vertices].sort()[0]

    @torch.no_grad()
    def __call__(
        self, body_pose: Tensor, *, kinds: tuple[str, ...] = KINDS, all_vertices: bool = False
    ) -> dict[str, Tensor]:
        """``body_pose (N, 63)`` -> ``{"joints": (N, 24, 3), "vertices": (N, V', 3)}`` metres
        (only the ``kinds`` asked for). Joints come from forward kinematics (fast); vertices
        need the full body model (linear blend skinning of every vertex, slow)."""
        out: dict[str, Tensor] = {}
        check_tensor(body_pose, "body_pose", (63, 69))
        if body_pose.ndim != 2:
            raise ValueError(
                f"body_pose must have shape (N, 63) or (N, 69), got {tuple(body_pose.shape)}"
            )
        body_pose = body_pose.float()
        if "joints" in kinds:
            out["joints"] = (
                pose_joints(body_pose, self.body_model)
                if body_pose.shape[0]
                else body_pose.new_zeros(0, 24, 3)
            )
        if "vertices" in kinds:
            n_v = self.num_vertices if all_vertices else len(self.vertex_ids)
            verts = [body_pose.new_zeros(0, n_v, 3)]
            for start in range(0, body_pose.shape[0], self.chunk):
                pose = body_pose[start : start + self.chunk]
                res = self.body_model(
                    global_orient=pose.new_zeros(pose.shape[0], 3), body_pose=pose
                )
                v = res.vertices if all_vertices else res.vertices[:, self.vertex_ids]
                verts.append(v - res.joints[:, :1])
            out["vertices"] = torch.cat(verts)
        return out


def sample_stream(
    prior: Prior,
    n: int,
    chunk: int,
    generator: torch.Generator,
) -> Iterator[Tensor]:
    """``n`` samples of ``prior.sample`` in chunks of at most ``chunk`` poses ``(m, 63)``."""
    done = 0
    with torch.no_grad():
        while done < n:
            m = min(chunk, n - done)
            yield prior.sample(m, generator=generator).detach().float()
            done += m


@dataclass
class RecallPrecision:
    """Nearest-neighbour distances (metres) of one model, per point kind."""

    recall: dict[str, Tensor] = field(default_factory=dict)
    precision: dict[str, Tensor] = field(default_factory=dict)
    samples: Tensor | None = None  # the generated poses used as precision queries, (P, 63)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{kind: {recall_mean, recall_median, precision_mean, precision_median}}`` in mm."""
        out = {}
        for kind in self.recall:
            r, p = self.recall[kind] * 1000, self.precision[kind] * 1000
            out[kind] = {
                "recall_mean": float(r.mean()),
                "recall_median": float(r.median()),
                "precision_mean": float(p.mean()),
                "precision_median": float(p.median()),
            }
        return out


def sample_recall_precision(
    prior: Prior,
    poser: Poser,
    real_queries: dict[str, Tensor],
    reference: dict[str, Tensor],
    *,
    n_samples: int,
    n_precision_queries: int,
    generator: torch.Generator,
    n_vertex_samples: int | None = None,
    sample_chunk: int = 8192,
    nn_chunk: int = 512,
) -> RecallPrecision:
    """Recall and precision of ``prior`` against real poses, never holding all samples.

    Samples are generated, posed, compared and discarded chunk by chunk: recall keeps the
    running minimum distance of every real query to the samples seen so far; the first
    ``n_precision_queries`` samples are kept as the precision queries and compared with the
    real ``reference`` point sets.

    Args:
        prior: a :class:`advprior.interface.Prior` (only ``sample`` is used).
        poser: turns poses into point sets.
        real_queries: ``{kind: (Q, K, 3)}`` real poses whose nearest sample defines recall.
        reference: ``{kind: (R, K, 3)}`` real poses that precision compares samples with.
        n_samples: generated poses compared with the real queries.
        n_precision_queries: generated poses whose nearest real pose defines precision.
        generator: seeded generator for the samples.
        n_vertex_samples: only the first this many samples are compared per vertex (skinning
            every vertex is ~100x slower than forward kinematics); None: all of them.
    """
    result = RecallPrecision()
    best = {
        k: torch.full((v.shape[0],), float("inf"), device=v.device) for k, v in real_queries.items()
    }
    kept: list[Tensor] = []
    n_kept = n_seen = 0
    t_sample = t_pose = t_nn = 0.0
    stream = sample_stream(prior, n_samples, sample_chunk, generator)
    while True:
        t0 = time.perf_counter()
        poses = next(stream, None)
        t_sample += time.perf_counter() - t0
        if poses is None:
            break
        if n_kept < n_precision_queries:
            kept.append(poses[: n_precision_queries - n_kept])
            n_kept += kept[-1].shape[0]
        # How many of this chunk's poses each point kind compares.
        used = {k: poses.shape[0] for k in real_queries}
        if "vertices" in used and n_vertex_samples is not None:
            used["vertices"] = max(0, min(poses.shape[0], n_vertex_samples - n_seen))
        n_seen += poses.shape[0]
        for kind, count in used.items():
            if count == 0:
                continue
            t0 = time.perf_counter()
            points = poser(poses[:count], kinds=(kind,))[kind]
            t1 = time.perf_counter()
            d = nn_distances(real_queries[kind], points, chunk_size=nn_chunk, bound=best[kind])
            torch.minimum(best[kind], d, out=best[kind])
            t_pose += t1 - t0
            t_nn += time.perf_counter() - t1
    result.recall = best
    samples = torch.cat(kept) if kept else torch.zeros(0, 63)
    if samples.shape[0] < n_precision_queries:
        more = prior.sample(n_precision_queries - samples.shape[0], generator=generator)
        samples = torch.cat([samples, more.detach().float()])
    result.samples = samples
    t0 = time.perf_counter()
    gen_points = poser(samples, kinds=tuple(reference))
    for kind, ref in reference.items():
        result.precision[kind] = nn_distances(gen_points[kind], ref, chunk_size=nn_chunk)
    t_nn += time.perf_counter() - t0
    result.seconds = {"sample": t_sample, "pose": t_pose, "nearest_neighbour": t_nn}
    return result


def model_kind(model: Prior) -> str:
    """The prior's ``model_type`` (``"gan"``, ``"vae"``, ``"gmm"``, ...)."""
    return str(model.model_type)


def pose_space_slerp(pose_a: Tensor, pose_b: Tensor, steps: int) -> Tensor:
    """Per-joint rotation slerp between two poses, ``(B, D)`` x2 -> ``(B, steps, D)``, D = 63
    (or 69 for SMPL).

    The model-free reference path: each joint turns at constant angular speed (shortest arc).
    """
    b, d = pose_a.shape
    qa = roma.rotvec_to_unitquat(pose_a.reshape(b, d // 3, 3))
    qb = roma.rotvec_to_unitquat(pose_b.reshape(b, d // 3, 3))
    t = torch.linspace(0.0, 1.0, steps, dtype=pose_a.dtype, device=pose_a.device)
    q = roma.utils.unitquat_slerp(qa, qb, t)  # (steps, B, J, 4)
    return roma.unitquat_to_rotvec(q).permute(1, 0, 2, 3).reshape(b, steps, d)


def interpolation_paths(
    model: Prior | None,
    pose_a: Tensor,
    pose_b: Tensor,
    steps: int,
    *,
    invert_kwargs: dict | None = None,
    geodesic: int = 0,
) -> tuple[Tensor, str] | None:
    """Poses along the model's interpolation from ``pose_a`` to ``pose_b``.

    - A latent prior: both ends mapped to latents by its ``invert`` (``PosePrior``: optimisation;
      ``VPoserVAE``: the encoder's mean), interpolated with its latent space's ``interpolate``
      (slerp on the sphere, linear otherwise), decoded. ``geodesic > 0``: that path shortened
      by ``geodesic`` L-BFGS iterations of :func:`advprior.geodesic.geodesic_path`.
    - ``None``: per-joint rotation slerp in pose space (the model-free reference).
    - A pose-space prior (the GMM has no latent space): ``None``.

    Returns:
        ``((B, steps, 63) poses, description)`` or ``None`` when the model has no latent.
    """
    if model is None:
        return pose_space_slerp(pose_a, pose_b, steps), "per-joint rotation slerp, no model"
    space = model.latent_space
    if space is None:
        return None
    b = pose_a.shape[0]
    z0 = model.invert(pose_a, **(invert_kwargs or {})).detach()
    z1 = model.invert(pose_b, **(invert_kwargs or {})).detach()
    how = "slerp" if space.kind == "sphere" else "linear"
    if geodesic > 0:
        from advprior.geodesic import geodesic_path

        body = (invert_kwargs or {}).get("body_model")
        z = geodesic_path(model, z0, z1, steps, iterations=geodesic, body_model=body)
        how = f"geodesic ({geodesic} L-BFGS iterations from the {how} path)"
    else:
        z = space.interpolate(z0, z1, steps)
    with torch.no_grad():
        poses = model.decode(z.reshape(b * steps, -1)).reshape(b, steps, 63)
    return poses, f"{model.invert_method}, {how} in latent space, decode"


def smoothness(poser: Poser, paths: Tensor) -> tuple[Tensor, Tensor]:
    """Smoothness ratio R ``(B,)`` and normalised per-step deformation ``(B, T-1)`` of paths
    ``(B, T, 63)`` measured on every mesh vertex."""
    b, t = paths.shape[:2]
    verts = poser(paths.reshape(b * t, 63), all_vertices=True)["vertices"]
    verts = verts.reshape(b, t, -1, 3)
    return smoothness_ratio(verts), per_step_deformation(verts, normalize=True)


def path_ratio(paths: Tensor, body_model: object | None = None) -> Tensor:
    """Detour of interpolation paths ``(B, T, 63)``: the path length over the direct distance,
    ``(B,)``. Length = sum over consecutive poses of the mean displacement of the 24 joints
    (pelvis-relative: zero global orientation, :func:`advprior.eval.metrics.pose_joints`);
    direct = the mean joint distance between the path's two ends. 1 for a path that moves
    every joint straight at constant speed; a path that detours through a third pose (a kick
    between two standing poses) is much longer than 1."""
    if paths.ndim != 3 or paths.shape[1] < 2:
        raise ValueError(f"paths must be (B, T >= 2, 63), got {tuple(paths.shape)}")
    b, t = paths.shape[:2]
    if b == 0:
        return paths.new_zeros(0)
    joints = pose_joints(paths.reshape(b * t, -1), body_model=body_model).reshape(b, t, -1, 3)
    length = (joints[:, 1:] - joints[:, :-1]).norm(dim=-1).mean(-1).sum(-1)
    direct = (joints[:, -1] - joints[:, 0]).norm(dim=-1).mean(-1)
    # A path between two equal poses has no direct distance to compare with: NaN, not the
    # float noise of its length over the smallest float (1e30)
    return torch.where(
        direct > 0, length / direct.clamp(min=torch.finfo(paths.dtype).tiny), torch.nan
    )


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    """``(fn(), seconds)`` by wall clock."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0
