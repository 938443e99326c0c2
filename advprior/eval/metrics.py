"""Distances and errors of the paper's protocol (Davydov et al., CVPR 2022, section 4).

Units: whatever comes in goes out (the protocol feeds metres; callers convert to mm).
Point sets are ``(..., K, 3)`` with K = 24 joints or V (sub-sampled) vertices.

Nearest-neighbour search (Eq. 4) uses the *mean of per-point Euclidean norms*,
``d(a, b) = mean_k ||a_k - b_k||``. That is not an L2 distance between flattened vectors, so
FAISS (L2 / inner product only) cannot return it exactly; an L2 pre-filter followed by an exact
re-rank could miss the true neighbour. We therefore do an exact, chunked branch-and-bound
search in torch and do not use FAISS.
"""

from __future__ import annotations

from collections.abc import Callable

import roma
import torch
from torch import Tensor

from advprior.tensors import check_tensor

__all__ = [
    "nn_distances",
    "recall_precision",
    "per_step_deformation",
    "smoothness_ratio",
    "procrustes_align",
    "mpjpe",
    "p_mpjpe",
    "paired_ratio_interval",
    "paired_difference_interval",
    "pose_joints",
    "pose_vertices",
]

# Elements of one (query chunk x reference chunk) tile: small enough to stay in cache.
_DEFAULT_CHUNK = 512


def _check_points(name: str, x: Tensor, ndim: int | None = None, *, finite: bool = False) -> None:
    check_tensor(x, name, None, finite=finite)
    want = "(..., K, 3)" if ndim is None else "(N, K, 3)"
    if x.shape[-1:] != (3,) or x.ndim < 2 or (ndim is not None and x.ndim != ndim):
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if x.shape[-2] == 0:
        raise ValueError(f"{name} must hold at least one point (K >= 1), got {tuple(x.shape)}")


def _check_pair(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Both checked, same shape, in their common dtype."""
    _check_points("pred", pred)
    _check_points("target", target)
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    dtype = torch.promote_types(pred.dtype, target.dtype)
    return pred.to(dtype), target.to(dtype)


def nn_distances(
    query: Tensor,
    reference: Tensor,
    *,
    chunk_size: int = _DEFAULT_CHUNK,
    return_index: bool = False,
    bound: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """For each query set, the distance to its nearest reference set (paper Eq. 4).

    ``d(q, r) = mean_k ||q_k - r_k||_2``; returns ``min_r d(q, r)`` for every query.

    Args:
        query: ``(N, K, 3)`` points (joints or vertices), any unit.
        reference: ``(M, K, 3)`` points in the same unit and order, M >= 1.
        chunk_size: rows of query and of reference handled at once; the work tile is
            ``chunk_size x chunk_size`` (never ``N x M`` nor ``N x M x K``).
        return_index: also return the index of the nearest reference, ``(N,)`` int64.
        bound: optional ``(N,)`` distances already known to be reachable (e.g. the running
            minimum over earlier reference chunks). References not closer than a query's bound
            may be skipped; a query with no reference closer than its bound gets ``inf`` (and
            index -1), so ``torch.minimum(bound, result)`` is the exact running minimum.

    Returns:
        ``(N,)`` distances in the input's unit and the common dtype of the inputs (and indices
        if asked).

    Raises:
        TypeError: a non-tensor or non-floating input.
        ValueError: shapes other than above, K = 0, M = 0, a NaN or Inf point, a NaN bound.

    Exact search by branch and bound: per tile, the norms of the K/2 points that vary most
    are summed first; since every term is non-negative, that partial sum is a lower bound of
    the full sum, and pairs already farther than the best distance known for their query are
    dropped before the remaining points are added. Norms inside a tile use the expanded form
    ``|q|^2 + |r|^2 - 2 q.r`` (points centred on the reference mean to limit cancellation,
    and a slack on the bound for its rounding); references whose expanded-form sums lie within
    that rounding of the best are compared on direct differences (the first of equal ones
    wins, as in a brute-force argmin), and the returned distance is recomputed directly from
    the differences, so identical sets give exactly 0.
    """
    return _nn_distances(
        query, reference, chunk_size, return_index, bound, names=("query", "reference")
    )


def _nn_distances(
    query: Tensor,
    reference: Tensor,
    chunk_size: int,
    return_index: bool,
    bound: Tensor | None,
    names: tuple[str, str],
) -> Tensor | tuple[Tensor, Tensor]:
    """:func:`nn_distances`, its messages naming the caller's arguments ``names``."""
    q_name, r_name = names
    # A NaN would silently read as "no neighbour" (inf), and one in the reference poisons the
    # centring of every query's distances.
    _check_points(q_name, query, 3, finite=True)
    _check_points(r_name, reference, 3, finite=True)
    if query.shape[1] != reference.shape[1]:
        raise ValueError(
            f"{q_name} and {r_name} must have the same number of points K, got "
            f"{query.shape[1]} and {reference.shape[1]}"
        )
    if reference.shape[0] == 0:
        raise ValueError(f"{r_name} must hold at least one set of points (M >= 1)")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    n, k = query.shape[:2]
    if bound is not None:
        if not isinstance(bound, Tensor) or bound.shape != (n,):
            got = tuple(bound.shape) if isinstance(bound, Tensor) else type(bound).__name__
            raise ValueError(f"bound must be a torch.Tensor of shape ({n},), got {got}")
        if bool(bound.isnan().any()):
            raise ValueError("bound contains NaN (use inf for a query with no known distance)")
    dtype = torch.promote_types(query.dtype, reference.dtype)
    dev = query.device
    query = query.to(dtype)
    reference = reference.to(dtype)
    best_idx = torch.full((n,), -1, dtype=torch.int64, device=dev)
    if n == 0:
        empty = torch.zeros(0, dtype=dtype, device=dev)
        return (empty, best_idx) if return_index else empty

    centre = reference.mean(dim=0, keepdim=True)
    q_c, r_c = query - centre, reference - centre
    # Points that vary most first: their partial sum is the tightest cheap lower bound.
    order = r_c.square().sum(-1).mean(0).argsort(descending=True)
    n_first = max(1, k // 2)
    rest = order[n_first:]
    # Point-major layout (K, rows, 3) so each point's tile is a plain matrix product.
    q_all = q_c[:, order].transpose(0, 1).contiguous()
    r_all = r_c[:, order].transpose(0, 1).contiguous()
    q_rest, r_rest = q_c[:, rest], r_c[:, rest]
    q_sq_all = q_all.square().sum(-1)  # (K, N)
    r_sq_all = r_all.square().sum(-1)  # (K, M)
    # |q|^2 + |r|^2 - 2 q.r rounds by at most a few eps * max |x|^2 (32 is generous), so one
    # expanded-form norm is off by at most point_err (the square root: the worst case is a
    # norm near 0). The pruning bound compares a partial sum of n_first such norms with a
    # directly computed best; near-ties of full sums (k norms each side) are settled directly.
    biggest = float(torch.maximum(q_sq_all.max(), r_sq_all.max()))
    point_err = (32.0 * torch.finfo(dtype).eps * max(biggest, 1e-30)) ** 0.5
    slack = n_first * point_err
    tie = 2.0 * k * point_err
    m = reference.shape[0]
    inf = float("inf")
    for qs in range(0, n, chunk_size):
        qe = min(qs + chunk_size, n)
        q, q_sq = q_all[:, qs:qe], q_sq_all[:, qs:qe]
        # Best full sum (= K x distance, from direct differences) known so far per query.
        chunk_best = (
            torch.full((qe - qs,), inf, dtype=dtype, device=dev)
            if bound is None
            else bound[qs:qe].to(dtype) * k
        )
        chunk_idx = torch.full((qe - qs,), -1, dtype=torch.int64, device=dev)
        for rs in range(0, m, chunk_size):
            re_ = min(rs + chunk_size, m)
            acc = torch.zeros(qe - qs, re_ - rs, dtype=dtype, device=dev)
            tile = torch.empty_like(acc)

            def add_points(
                points: range,
                acc: Tensor = acc,
                tile: Tensor = tile,
                q: Tensor = q,
                q_sq: Tensor = q_sq,
                rs: int = rs,
                re_: int = re_,
            ) -> None:
                for j in points:
                    # tile = |r|^2 - 2 q.r + |q|^2 -> the point's norm, added to the sum.
                    torch.addmm(
                        r_sq_all[j, rs:re_].unsqueeze(0),
                        q[j],
                        r_all[j, rs:re_].T,
                        beta=1.0,
                        alpha=-2.0,
                        out=tile,
                    )
                    tile.add_(q_sq[j].unsqueeze(1)).clamp_(min=0.0).sqrt_()
                    acc.add_(tile)

            add_points(range(n_first))
            alive = acc <= (chunk_best + slack).unsqueeze(1)
            n_alive = int(alive.sum())
            if n_alive == 0:
                continue
            # The expanded form can misorder references closer to each other than its
            # rounding (sets within ~0.1 mm in float32 at metre scale): every candidate within
            # `tie` of the tile's best (or of the best so far) is measured directly below, and
            # the first of equal ones wins, as a brute-force argmin would pick.
            if n_alive > 0.25 * alive.numel():
                add_points(range(n_first, k))
                acc.masked_fill_(~alive, inf)
                limit = torch.minimum(acc.min(dim=1).values, chunk_best) + tie
                qi, rj = (acc <= limit.unsqueeze(1)).nonzero(as_tuple=True)
            else:
                qi, rj = alive.nonzero(as_tuple=True)
                extra = (q_rest[qs + qi] - r_rest[rs + rj]).norm(dim=-1).sum(-1)
                full = acc[qi, rj] + extra
                tile_best = torch.full((qe - qs,), inf, dtype=dtype, device=dev)
                tile_best.scatter_reduce_(0, qi, full, reduce="amin")
                near = full <= (torch.minimum(tile_best, chunk_best) + tie)[qi]
                qi, rj = qi[near], rj[near]
            if qi.numel() == 0:
                continue
            direct = (query[qs + qi] - reference[rs + rj]).norm(dim=-1).sum(-1)
            vals = torch.full((qe - qs,), inf, dtype=dtype, device=dev)
            vals.scatter_reduce_(0, qi, direct, reduce="amin")
            first = torch.full((qe - qs,), m, dtype=torch.int64, device=dev)
            at_min = direct == vals[qi]
            first.scatter_reduce_(0, qi[at_min], rj[at_min] + rs, reduce="amin")
            better = vals < chunk_best
            chunk_best = torch.where(better, vals, chunk_best)
            chunk_idx = torch.where(better, first, chunk_idx)
        best_idx[qs:qe] = chunk_idx
    found = best_idx >= 0
    best = torch.full((n,), inf, dtype=dtype, device=dev)
    best[found] = (query[found] - reference[best_idx[found]]).norm(dim=-1).mean(dim=-1)
    if bound is not None:
        # The slack may admit a pair that is not really closer than the bound.
        not_closer = best >= bound.to(dtype)
        best[not_closer] = inf
        best_idx[not_closer] = -1
    return (best, best_idx) if return_index else best


def recall_precision(
    real: Tensor,
    generated: Tensor,
    *,
    precision_reference: Tensor | None = None,
    chunk_size: int = _DEFAULT_CHUNK,
) -> dict[str, Tensor | float]:
    """Recall and precision of a generative pose model (paper section 4.1).

    Recall: for each real set, the distance to the nearest generated one (how well the model
    covers real poses). Precision: for each generated set, the distance to the nearest real one
    (how realistic its samples are). Lower is better for both.

    Args:
        real: ``(N, K, 3)`` real poses as points (joints or vertices).
        generated: ``(M, K, 3)`` generated poses as points, same unit and order.
        precision_reference: ``(R, K, 3)`` real sets used for precision instead of ``real``
            (the paper compares samples with the training data).
        chunk_size: passed to :func:`nn_distances`.

    Returns:
        dict with floats ``recall_mean``, ``recall_median``, ``precision_mean``,
        ``precision_median`` and tensors ``recall_dists`` ``(N,)``, ``precision_dists``
        ``(M,)``, all in the input unit.

    Raises ``ValueError`` naming the argument for an empty set (N, M or R = 0), a NaN/Inf
    point, or shapes that differ in K (and ``TypeError`` for a non-tensor).
    """
    ref = real if precision_reference is None else precision_reference
    ref_name = "real" if precision_reference is None else "precision_reference"
    for name, x in (("real", real), ("generated", generated), (ref_name, ref)):
        _check_points(name, x, 3, finite=True)
        if x.shape[0] == 0:
            raise ValueError(f"{name} must hold at least one set of points, got {tuple(x.shape)}")
    recall = _nn_distances(real, generated, chunk_size, False, None, ("real", "generated"))
    precision = _nn_distances(generated, ref, chunk_size, False, None, ("generated", ref_name))
    return {
        "recall_mean": float(recall.mean()),
        "recall_median": float(recall.median()),
        "precision_mean": float(precision.mean()),
        "precision_median": float(precision.median()),
        "recall_dists": recall,
        "precision_dists": precision,
    }


def per_step_deformation(meshes: Tensor, *, normalize: bool = False) -> Tensor:
    """Mean per-vertex displacement between consecutive frames of a path (paper section 4.2).

    Args:
        meshes: ``(..., T, V, 3)`` vertices (or joints) along an interpolation path, T >= 2.
        normalize: divide each path's deltas by their mean, so an evenly spaced path is all 1
            (paper Fig. 5). A path whose deltas are all zero gives NaN when normalised.

    Returns:
        ``(..., T-1)``: ``delta_t = mean_v ||x_{t+1,v} - x_{t,v}||``, in the input unit (or
        unitless when normalised).
    """
    _check_points("meshes", meshes)
    if meshes.ndim < 3 or meshes.shape[-3] < 2:
        raise ValueError(
            f"meshes must have shape (..., T, V, 3) with T >= 2, got {tuple(meshes.shape)}"
        )
    deltas = (meshes[..., 1:, :, :] - meshes[..., :-1, :, :]).norm(dim=-1).mean(dim=-1)
    if normalize:
        deltas = deltas / deltas.mean(dim=-1, keepdim=True)
    return deltas


def smoothness_ratio(meshes: Tensor) -> Tensor:
    """Interpolation smoothness ``R = max_t delta_t / min_t delta_t`` (paper section 4.2).

    Args:
        meshes: ``(..., T, V, 3)`` vertices along each path, T >= 2.

    Returns:
        ``(...)`` unitless, >= 1; 1 for an evenly spaced path. A path with a zero step gives
        ``inf`` (``nan`` if every step is zero).
    """
    deltas = per_step_deformation(meshes)
    return deltas.amax(dim=-1) / deltas.amin(dim=-1)


def procrustes_align(pred: Tensor, target: Tensor) -> Tensor:
    """Similarity-align ``pred`` to ``target`` (scale, rotation, translation; no reflection).

    Args:
        pred: ``(..., J, 3)`` points.
        target: ``(..., J, 3)`` points, same shape.

    Returns:
        ``(..., J, 3)``: ``s R pred + t`` minimising the squared error to ``target`` (Umeyama's
        solution, :func:`roma.rigid_points_registration` with ``compute_scaling=True``), in
        target's unit and the inputs' common dtype. A ``pred`` whose points all coincide (to
        within 8 units in the last place of their dtype) has no rotation or scale to fit: it
        maps to the centroid of ``target`` (``s = 0``), not to NaN.
        A NaN point makes its own set NaN, no other set of the batch.
    """
    pred, target = _check_pair(pred, target)
    # A set with a NaN / Inf point is aligned as zeros and answered as NaN below: roma 1.5
    # (pyproject's lower bound; 1.8 does not) registers by torch's SVD, which raises on a
    # non-finite matrix ("linalg.svd: ... contained non-finite values"), failing the whole batch.
    finite = torch.isfinite(pred).all(dim=-1).all(dim=-1) & torch.isfinite(target).all(-1).all(-1)
    ok = finite[..., None, None]
    zero = pred.new_zeros(())
    rot, shift, scale = roma.rigid_points_registration(
        torch.where(ok, pred, zero), torch.where(ok, target, zero), compute_scaling=True
    )
    aligned = scale[..., None, None] * (pred @ rot.transpose(-1, -2)) + shift[..., None, :]
    aligned = torch.where(ok, aligned, torch.full_like(aligned, float("nan")))
    # Coinciding points centre to rounding noise, not to exact zeros: in float32 roma's own
    # centring could give exact zeros (a 0/0 scale, NaN) where ours left 1 ulp, or the reverse.
    # Points within a few ulps of each other have no shape to align in this dtype.
    spread = (pred - pred.mean(dim=-2, keepdim=True)).abs().amax(dim=(-1, -2))
    size = pred.abs().amax(dim=(-1, -2))
    tol = 8.0 * torch.finfo(pred.dtype).eps * size
    degenerate = finite & ((spread <= tol) | ~torch.isfinite(scale))  # a NaN point stays NaN
    centroid = target.mean(dim=-2, keepdim=True).expand_as(target)
    return torch.where(degenerate[..., None, None], centroid, aligned)


def mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """Mean per-joint position error ``mean_j ||pred_j - target_j||``, ``(..., J, 3) -> (...)``.

    No alignment is applied; root-align beforehand if the protocol asks for it. The inputs'
    common dtype; a NaN point gives NaN for its set.
    """
    pred, target = _check_pair(pred, target)
    return (pred - target).norm(dim=-1).mean(dim=-1)


def p_mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """MPJPE after Procrustes (similarity) alignment of ``pred`` to ``target``, ``(...)``."""
    return mpjpe(procrustes_align(pred, target), target)


def paired_ratio_interval(
    a: Tensor, b: Tensor, *, level: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(a) / mean(b) - 1`` over paired items.

    ``a``, ``b``: ``(N,)`` per-item errors of two methods on the same N items (frames). Items are
    resampled with replacement, the pairs kept together, so what the two methods share (a hard
    frame is hard for both) cancels. Fitting errors are heavy-tailed (a few frames in a wrong
    basin carry much of a mean), so "A is within 10% of B" needs this interval next to the point
    estimate: on 96 frames it is typically about +-8%.

    Returns:
        ``(low, high)`` relative differences (0.05 = A's mean 5% above B's), float64, seeded.
    """
    return _paired_interval(a, b, lambda x, y: x / y - 1.0, level, resamples, seed)


def paired_difference_interval(
    a: Tensor, b: Tensor, *, level: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(a) - mean(b)`` over paired items, in their unit
    (e.g. mm of P-MPJPE: one method's change on the same frames); resampled as
    :func:`paired_ratio_interval`, with the same seeded draws."""
    return _paired_interval(a, b, lambda x, y: x - y, level, resamples, seed)


# Resample x item entries one bootstrap block draws (:func:`_paired_interval`): ~25 MB.
_BOOTSTRAP_BLOCK = 1 << 20


def _paired_interval(
    a: Tensor,
    b: Tensor,
    statistic: Callable[[Tensor, Tensor], Tensor],
    level: float,
    resamples: int,
    seed: int,
) -> tuple[float, float]:
    """``statistic(mean(a*), mean(b*))`` over bootstrap resamples of the pairs: its ``level``
    percentile interval, float64, seeded."""
    check_tensor(a, "a", None)
    check_tensor(b, "b", None)
    if a.ndim != 1 or a.shape != b.shape or a.numel() < 2:
        raise ValueError(f"a and b must be paired (N,) with N >= 2, got {a.shape} and {b.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        # 0 failed in torch.quantile ("input tensor must be non-empty"), a negative count in
        # torch.empty, neither naming the argument
        raise ValueError(f"resamples must be a positive int, got {resamples!r}")
    gen = torch.Generator().manual_seed(seed)
    n = a.numel()
    # to the CPU first: MPS has no float64
    a64, b64 = a.detach().cpu().double(), b.detach().cpu().double()
    # Resamples drawn and averaged a block at a time: all at once they held ~24 bytes per
    # resample and item (15 GB for 10^5 frames). One generator draws the blocks one after the
    # other, the same numbers as one draw, and each resample's mean is its own row's: the
    # interval is the same to the bit.
    # (The blocks reuse two buffers: a fresh pair per block let glibc's heap grow by about a
    # block per block.)
    rows = max(1, min(resamples, _BOOTSTRAP_BLOCK // n))
    idx = torch.empty(rows, n, dtype=torch.long)
    picked = torch.empty(rows * n, dtype=torch.float64)
    mean_a = torch.empty(resamples, dtype=torch.float64)
    mean_b = torch.empty(resamples, dtype=torch.float64)
    for start in range(0, resamples, rows):
        r = min(rows, resamples - start)
        block = torch.randint(n, (r, n), generator=gen, out=idx[:r]).view(-1)
        for x, out in ((a64, mean_a), (b64, mean_b)):
            torch.index_select(x, 0, block, out=picked[: r * n])
            out[start : start + r] = picked[: r * n].view(r, n).mean(-1)
    values = statistic(mean_a, mean_b)
    tail = (1.0 - level) / 2.0
    low, high = torch.quantile(values, torch.tensor([tail, 1.0 - tail], dtype=torch.float64))
    return float(low), float(high)


def _zero_orient_inputs(body_pose: Tensor) -> Tensor:
    check_tensor(body_pose, "body_pose", (63, 69), finite=False)
    if body_pose.ndim != 2:
        raise ValueError(
            f"body_pose must have shape (N, 63) or (N, 69) axis-angle, got {tuple(body_pose.shape)}"
        )
    return body_pose.new_zeros(body_pose.shape[0], 3)


def pose_joints(body_pose: Tensor, body_model: object | None = None) -> Tensor:
    """The 24 SMPL joints of poses with zero global orientation and the pelvis at the origin.

    Args:
        body_pose: ``(N, 63)`` (or ``(N, 69)`` for SMPL) axis-angle, radians.
        body_model: an ``advprior.body.BodyModel``; None uses the open stand-in body.

    Returns:
        ``(N, 24, 3)`` metres, SMPL's frame (y up), joint 0 at the origin.
    """
    from advprior.body import forward_kinematics

    orient = _zero_orient_inputs(body_pose)
    joints = forward_kinematics(orient, body_pose, body_model=body_model)
    return joints - joints[:, :1]


def pose_vertices(
    body_pose: Tensor,
    body_model: object,
    vertex_ids: Tensor | None = None,
) -> Tensor:
    """Mesh vertices of poses with zero global orientation, pelvis joint at the origin.

    Args:
        body_pose: ``(N, 63)`` (or ``(N, 69)``) axis-angle, radians.
        body_model: an ``advprior.body.BodyModel`` (see ``advprior.body.load_body_model``).
        vertex_ids: optional ``(V',)`` int64 indices of the vertices to keep.

    Returns:
        ``(N, V or V', 3)`` metres.
    """
    orient = _zero_orient_inputs(body_pose)
    out = body_model(global_orient=orient, body_pose=body_pose)
    verts = out.vertices - out.joints[:, :1]
    if vertex_ids is not None:
        verts = verts[:, vertex_ids]
    return verts
