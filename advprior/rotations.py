"""Rotation conversions on batched tensors, written for the decode hot path.

Conventions (all functions accept any leading batch shape ``...``):

- axis-angle (rotation vector): ``(..., 3)``, radians, direction = axis, angle in ``[0, pi]``.
- rotation matrix: ``(..., 3, 3)``, acting on column vectors, row-major in memory.
- 6D: ``(..., 6)``, the first two *columns* of the rotation matrix read row by row,
  ``R[..., :2].flatten(-2) = (R00, R01, R10, R11, R20, R21)``: the layout of SPIN, HMR, VIBE and
  VPoser's decoder (``x.view(-1, 3, 2)``, columns 0 and 1; roma's ``special_gramschmidt`` of that
  view). Decoded by Gram-Schmidt. Two other layouts of Zhou et al.'s representation are in use
  and are *not* this one: PyTorch3D's ``matrix_to_rotation_6d`` holds the first two *rows*,
  ``R[..., :2, :].flatten(-2)``, and Zhou et al.'s reference code the two columns one after the
  other, ``(R00, R10, R20, R01, R11, R21)``. Both give a wrong rotation read as ours; the
  conversions are in docs/api/rotations.md ("From other libraries").
- quaternion: ``(..., 4)`` in roma's and SciPy's ``(x, y, z, w)`` order, unit norm, ``w >= 0``.

Speed: the conversions from 6D and from matrices work on a *planar* layout (one contiguous row
per matrix entry, ``(9, N)``), so that every step is one elementwise kernel over ``N`` numbers;
torch's reductions over a trailing dimension of size 3 are an order of magnitude slower. The
6D outputs go straight to axis-angle and quaternions by closed forms (no detour through a second
representation). Angles come from ``atan2(|skew|, trace - 1)``, accurate over ``[0, pi]``; the
axis near ``pi`` comes from the symmetric part of the matrix. Every branch is evaluated on
guarded (finite) values, so gradients are finite everywhere, also at the identity and at ``pi``.
These functions check shapes only; the public model APIs validate their inputs once. float16
inputs are computed in float32 and rounded once (:func:`_widen`); other dtypes are kept.
"""

from __future__ import annotations

import math

import torch

from advprior.tensors import cacheable, check_tensor
from advprior.version import is_exporting

# Below this angle theta / (2 sin theta) is taken as 1/2: the next term, theta^2 / 12 < 1e-17,
# is below float64's eps, and the quotient's gradient would cancel catastrophically (or its
# 1/s^2 underflow in float32) as theta -> 0.
_SMALL_ANGLE = 1e-8
# At and above this many rotations the "component" kernels are faster than the "vector" ones
# (measured crossover ~1-2k rotations on one CPU thread; both are within 1.5x around it).
_COMPONENT_MIN = 1024
# Below this theta^2 Rodrigues' coefficients are Taylor series: their next terms, x^7 / 15! and
# x^7 / 16! at x = theta^2 = 0.1, are < 1e-19, below float64's eps, and above it the closed
# forms' derivatives lose at most ~eps / theta^4 = 100 eps to cancellation.
_RODRIGUES_SERIES = 0.1
# sin(t) / t = 1 - x/6 (1 - x/20 (1 - x/42 ...)): ratio k is (2k + 2)(2k + 3), x = t^2.
_SINC_RATIOS = (6.0, 20.0, 42.0, 72.0, 110.0, 156.0)
# (1 - cos t) / t^2 = 1/2 (1 - x/12 (1 - x/30 ...)): ratio k is (2k + 3)(2k + 4).
_COSC_RATIOS = (12.0, 30.0, 56.0, 90.0, 132.0, 182.0)


def _small(n: int) -> bool:
    """Whether ``n`` rotations take the small-batch ("vector") kernels."""
    # A symbolic size (torch.export or torch.compile with a dynamic batch): a kernel chosen by
    # it would guard the graph on the batch size, so the large-batch kernels, correct for every
    # size, are recorded. (torch.jit.trace's sizes are no SymInt: it records what eager runs.)
    # Strict torch.export traces with dynamo, where a symbolic size reads as a plain int:
    # there every export takes the large-batch kernels (an export's inputs are not one size).
    if isinstance(n, torch.SymInt) or is_exporting():
        return False
    return n < _COMPONENT_MIN


def _log_map_linear() -> tuple[list[list[float]], list[list[float]]]:
    """``(L, c)`` with ``L @ p + c`` the linear parts of the logarithm of planar matrices ``p``
    ``(9, N)`` (``R[i, j]`` at row ``3 i + j``): rows 0-2 the skew part ``v = (R21 - R12, R02 -
    R20, R10 - R01)``, row 3 ``trace - 1``, rows 4-12 the symmetric part ``B = R + R^T - (trace
    - 1) I`` (symmetric, so rows ``4 + 3 k ..`` are its column ``k``), rows 13-15 its diagonal."""

    def row(*terms: tuple[int, float]) -> list[float]:
        r = [0.0] * 9
        for idx, coef in terms:
            r[idx] += coef
        return r

    trace = ((0, 1.0), (4, 1.0), (8, 1.0))
    rows = [row((7, 1.0), (5, -1.0)), row((2, 1.0), (6, -1.0)), row((3, 1.0), (1, -1.0))]
    rows.append(row(*trace))
    for k in range(3):
        for i in range(3):
            if i == k:
                rows.append(row((4 * k, 2.0), *((t, -c) for t, c in trace)))
            else:
                rows.append(row((3 * i + k, 1.0), (3 * k + i, 1.0)))
    rows += [list(rows[4 + 4 * k]) for k in range(3)]
    const = [0.0, 0.0, 0.0, -1.0] + [float(i == k) for k in range(3) for i in range(3)]
    return rows, [[c] for c in const + [1.0, 1.0, 1.0]]


_LOG_L, _LOG_C = _log_map_linear()
_CONSTANTS: dict[str, object] = {
    "L": _LOG_L,
    "c": _LOG_C,
    # one-hot matrices: a product with them moves rows to columns far faster than a strided copy
    # and is exact (x * 1 + 0 * y + ... is x); the 6D permutation puts columns a, b first.
    "half": 0.5,
    "rodrigues": [list(r) for r in zip(_SINC_RATIOS, _COSC_RATIOS, strict=True)],
    "perm6": [[float(k == (2 * r if r < 3 else 2 * r - 5)) for k in range(6)] for r in range(6)],
    **{f"eye{n}": [[float(i == j) for j in range(n)] for i in range(n)] for n in (3, 4, 6, 9)},
    # the identity rotation in 6D (first two columns, row-major): Gram-Schmidt maps it to I
    "identity6d": [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
}
_CONST_CACHE: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}


def _const(name: str, like: torch.Tensor) -> torch.Tensor:
    """A small constant tensor on ``like``'s dtype and device, built once per pair (building a
    tensor costs more than a whole small kernel on the hot path)."""
    key = (name, like.dtype, like.device)
    # Not read while torch.jit.trace records: a graph that builds the constant on the first
    # trace and reads it as a constant on the next one fails trace's own re-trace check.
    value = None if torch.jit.is_tracing() else _CONST_CACHE.get(key)
    if value is None:
        # Outside inference mode, so the constant can also serve autograd-tracked calls.
        with torch.inference_mode(False):
            value = torch.tensor(_CONSTANTS[name], dtype=like.dtype, device=like.device)
        if cacheable(value):
            _CONST_CACHE[key] = value
    return value


def _widen(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is float16, else ``x``: float16's range is too narrow for the
    guards of the kernels below (``_SMALL_ANGLE``, the clamped squared norms and ``tiny`` all
    round to 0 there, so an identity rotation gave ``0 / 0 = NaN``). Computed in float32 and
    rounded once to float16, which is also more accurate; bfloat16 has float32's range."""
    return x.float() if x.dtype == torch.float16 else x


def _check_last(x: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        # the one checker's TypeErrors: a numpy array was refused as "(..., (3,)), got <class
        # 'numpy.ndarray'>", and integer tensors failed inside torch ("linalg.vector_norm:
        # Expected a floating point ...") or came back as integers (rotmat_to_rot6d)
        check_tensor(x, name, None, finite=False)  # raises
    if x.ndim < len(shape) or tuple(x.shape[x.ndim - len(shape) :]) != shape:
        dims = ", ".join(str(d) for d in shape)
        raise ValueError(f"{name} must have shape (..., {dims}), got {tuple(x.shape)}")


# -- planar kernels ---------------------------------------------------------------------------
#
# Every kernel works on a planar layout, one row per coordinate: ``(6, N)`` for 6D, ``(9, N)``
# for matrices (``R[i, j]`` at row ``3 i + j``). Two implementations of each step, picked by N:
# for few rotations every torch call costs ~1 us whatever its size, so the "vector" kernels
# use the fewest calls ((3, N) blocks, one matmul for all linear parts); for many, the
# "component" kernels work on contiguous (N,) rows, which stay in cache and vectorise (there a
# (3, N) op is ~9x slower per element, and argmax, gather, vector_norm over the leading
# dimension and torch.where are 10-50x slower than an elementwise kernel).


def _planar_6d(x6: torch.Tensor) -> torch.Tensor:
    """``(..., 6)`` -> ``(6, N)``: rows ``a_0, a_1, a_2, b_0, b_1, b_2`` (the two 6D columns)."""
    x2d = x6.reshape(-1, 6)
    return torch.mm(_const("perm6", x2d), x2d.t())


def _to_planar(rotmat: torch.Tensor) -> torch.Tensor:
    r2d = rotmat.reshape(-1, 9)
    return torch.mm(_const("eye9", r2d), r2d.t())


def _from_planar(p: torch.Tensor, lead: torch.Size, tail: tuple[int, ...]) -> torch.Tensor:
    return torch.mm(p.t(), _const(f"eye{p.shape[0]}", p)).reshape(*lead, *tail)


def _dot3(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> torch.Tensor:
    return torch.addcmul(torch.addcmul(a[0] * b[0], a[1], b[1]), a[2], b[2])


def _gram_schmidt(ab: torch.Tensor) -> torch.Tensor:
    """Planar 6D ``(6, N)`` -> planar rotation matrices ``(9, N)``.

    The second column is projected twice ("twice is enough"): when the two 6D columns are
    nearly parallel, as an untrained network emits them, one float32 pass (roma's
    ``special_gramschmidt``) leaves ~3e-5 in ``R R^T - I``; the second brings it to ~3e-7 at the
    same cost. A zero column gives zeros instead of NaN (clamped norms).
    """
    if _small(ab.shape[1]):
        a, b = ab.view(2, 3, -1).unbind(0)
        e1 = a / torch.linalg.vector_norm(a, dim=0).clamp_min(1e-12)
        e2 = torch.addcmul(b, e1, torch.linalg.vecdot(e1, b, dim=0), value=-1.0)
        e2 = torch.addcmul(e2, e1, torch.linalg.vecdot(e1, e2, dim=0), value=-1.0)
        e2 = e2 / torch.linalg.vector_norm(e2, dim=0).clamp_min(1e-12)
        e3 = torch.linalg.cross(e1, e2, dim=0)
        return torch.stack((e1, e2, e3), dim=1).view(9, -1)  # [i, j] = e_j[i]
    rows = ab.unbind(0)
    a, b = rows[0:3], rows[3:6]
    inv = torch.rsqrt(_dot3(a, a).clamp_min(1e-24))
    e1 = tuple(ai * inv for ai in a)
    for _ in range(2):
        d = _dot3(e1, b)
        b = tuple(torch.addcmul(bi, ei, d, value=-1.0) for bi, ei in zip(b, e1, strict=True))
    inv = torch.rsqrt(_dot3(b, b).clamp_min(1e-24))
    e2 = tuple(bi * inv for bi in b)
    e3 = tuple(
        torch.addcmul(e1[i] * e2[j], e1[j], e2[i], value=-1.0) for i, j in ((1, 2), (2, 0), (0, 1))
    )
    return torch.stack([e[i] for i in range(3) for e in (e1, e2, e3)])


# The logarithm of R (angle theta, unit axis n) in closed form:
#   cos2 = trace - 1 = 2 cos(theta), v = skew part = 2 sin(theta) n, sin2 = |v|,
#   theta = atan2(sin2, cos2), accurate over [0, pi].
# Below pi/2 the axis is v / sin2. Near pi v vanishes and is all rounding, so above pi/2 the
# axis comes from w = v + s B[:, k]: B = R + R^T - cos2 I = 2 (1 - cos) n n^T, k its largest
# diagonal entry (|n_k| >= 1/sqrt(3)), s = +-1 signing B[:, k] = 2 (1 - cos) n_k n like v. Both
# terms point along n, so |w| >= 2 for theta >= pi/2 and w / |w| is accurate up to pi. Each
# branch is computed on guarded (clamped) values everywhere, so the side a select drops has a
# finite gradient and the select's zero gradient stays zero.


def _log_vector(p: torch.Tensor) -> tuple[torch.Tensor, ...]:
    lin = torch.addmm(_const("c", p), _const("L", p), p)  # (16, N), see _log_map_linear
    v, cos2, b, diag = lin.split((3, 1, 9, 3))
    k = diag.argmax(0).view(1, 1, -1)
    col = b.view(3, 3, -1).gather(0, k.expand(1, 3, -1)).squeeze(0)  # B[:, k]
    col = torch.where(torch.linalg.vecdot(v, col, dim=0) >= 0, col, -col)
    w = v + col
    w_hat = w / torch.linalg.vector_norm(w, dim=0).clamp_min(1.0)
    sin2 = torch.linalg.vector_norm(v, dim=0)  # its gradient at 0 is 0, not NaN
    return cos2.squeeze(0), sin2, torch.atan2(sin2, cos2.squeeze(0)), v, w_hat


def _log_components(p: torch.Tensor) -> tuple[object, ...]:
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = p.unbind(0)
    v = (r21 - r12, r02 - r20, r10 - r01)
    cos2 = (r00 + r11 + r22) - 1.0
    neg_cos2 = -cos2
    s01, s02, s12 = r01 + r10, r02 + r20, r12 + r21
    q0, q1, q2 = (torch.add(neg_cos2, r, alpha=2.0) for r in (r00, r11, r22))  # B_kk
    # the largest diagonal entry by comparisons, the selects by lerp with a 0/1 weight (exact)
    m1 = (r11 > r00).to(p.dtype)
    m2 = (r22 > torch.maximum(r00, r11)).to(p.dtype)
    col = tuple(
        torch.lerp(torch.lerp(c0, c1, m1), c2, m2)
        for c0, c1, c2 in ((q0, s01, s02), (s01, q1, s12), (s02, s12, q2))
    )
    sign = (_dot3(v, col) >= 0).to(p.dtype).mul(2.0).sub(1.0)
    w = tuple(torch.addcmul(vi, ci, sign) for vi, ci in zip(v, col, strict=True))
    inv = torch.rsqrt(_dot3(w, w).clamp_min(1.0))
    w_hat = tuple(wi * inv for wi in w)
    # sqrt of a clamped square: its gradient at v = 0 is 0, not NaN
    sin2 = torch.sqrt(_dot3(v, v).clamp_min(torch.finfo(p.dtype).tiny))
    return cos2, sin2, torch.atan2(sin2, cos2), v, w_hat


def _blend(
    mask: torch.Tensor, a: object, scale_a: torch.Tensor, b: object, scale_b: torch.Tensor
) -> torch.Tensor:
    """Planar ``a * scale_a`` where ``mask`` else ``b * scale_b``."""
    if isinstance(a, torch.Tensor):
        return torch.where(mask, a * scale_a, b * scale_b)
    m = mask.to(scale_a.dtype)  # lerp is exact at weights 0 and 1, and ~10x faster than where
    return torch.stack(
        [torch.lerp(bi * scale_b, ai * scale_a, m) for ai, bi in zip(a, b, strict=True)]
    )


def _axis_angle_planar(p: torch.Tensor) -> torch.Tensor:
    """Planar matrices ``(9, N)`` -> planar rotation vectors ``(3, N)``."""
    small = _small(p.shape[1])
    cos2, sin2, theta, v, w_hat = (_log_vector if small else _log_components)(p)
    # theta n = v * theta / (2 sin theta) below pi/2: atan2(s, c) / s is smooth in s
    # (float16 never gets here: its 1e-8 would round to 0, see _widen)
    quotient = theta / sin2.clamp_min(_SMALL_ANGLE)
    tiny = theta < _SMALL_ANGLE
    # (a cached 0-d tensor: a Python 0.5 costs torch.where two dtype conversions per call)
    half = _const("half", p)
    if small:
        factor = torch.where(tiny, half, quotient)
    else:
        factor = torch.lerp(quotient, half.expand_as(quotient), tiny.to(p.dtype))
    return _blend(cos2 > 0, v, factor, w_hat, theta)


def _quat_planar(p: torch.Tensor) -> torch.Tensor:
    """Planar matrices ``(9, N)`` -> planar quaternions ``(4, N)``, ``(x, y, z, w)``, ``w >= 0``."""
    small = _small(p.shape[1])
    cos2, _, theta, v, w_hat = (_log_vector if small else _log_components)(p)
    half = 0.5 * theta
    half_cos = torch.cos(half)
    # below pi/2: sin(theta/2) n = v / (4 cos(theta/2)), exact and smooth at the identity;
    # there 4 cos(theta/2) > 2.8, and the clamp only keeps the other side finite near pi
    xyz = _blend(
        cos2 > 0, v, torch.reciprocal((4.0 * half_cos).clamp_min(1.0)), w_hat, torch.sin(half)
    )
    return torch.cat((xyz, half_cos[None]), dim=0)


# -- public conversions -----------------------------------------------------------------------


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt a 6D representation ``(..., 6)`` into a rotation matrix ``(..., 3, 3)``.

    ``x`` is the first two columns read row by row, ``(R00, R01, R10, R11, R20, R21)`` (SPIN's
    and VPoser's layout, ``R[..., :2].flatten(-2)``); PyTorch3D's 6D (the first two rows) is
    ``rot6d_to_rotmat(x.unflatten(-1, (2, 3)).mT.flatten(-2)).mT``.

    The second column is projected twice, so the result is orthonormal to ~3e-7 in float32 even
    for nearly parallel columns (one pass, as in roma's ``special_gramschmidt``, leaves ~3e-5).
    """
    _check_last(x, (6,), "x")
    return _from_planar(_gram_schmidt(_planar_6d(_widen(x))), x.shape[:-1], (3, 3)).to(x.dtype)


def rot6d_to(x: torch.Tensor, output: str) -> torch.Tensor:
    """6D ``(..., 6)`` to ``output`` by the shortest route: ``"rotmat"`` ``(..., 3, 3)``,
    ``"axis_angle"`` ``(..., 3)``, ``"quat"`` ``(..., 4)`` or ``"rot6d"`` ``(..., 6)`` (the
    first two columns of the orthonormalised matrix)."""
    _check_last(x, (6,), "x")
    p = _gram_schmidt(_planar_6d(_widen(x)))
    lead = x.shape[:-1]
    if output == "rotmat":
        return _from_planar(p, lead, (3, 3)).to(x.dtype)
    if output == "axis_angle":
        return _from_planar(_axis_angle_planar(p), lead, (3,)).to(x.dtype)
    if output == "quat":
        return _from_planar(_quat_planar(p), lead, (4,)).to(x.dtype)
    if output == "rot6d":
        return _from_planar(p.reshape(3, 3, -1)[:, :2].reshape(6, -1), lead, (6,)).to(x.dtype)
    raise ValueError(f"output must be 'rotmat', 'axis_angle', 'quat' or 'rot6d', got {output!r}")


def rot6d_to_axis_angle(x: torch.Tensor) -> torch.Tensor:
    """6D ``(..., 6)`` to rotation vectors ``(..., 3)`` (radians, angle in ``[0, pi]``)."""
    return rot6d_to(x, "axis_angle")


def rot6d_to_quat(x: torch.Tensor) -> torch.Tensor:
    """6D ``(..., 6)`` to unit quaternions ``(..., 4)``, ``(x, y, z, w)``, ``w >= 0``."""
    return rot6d_to(x, "quat")


def rotmat_to_rot6d(rotmat: torch.Tensor) -> torch.Tensor:
    """First two columns of ``(..., 3, 3)`` read row by row, ``R[..., :2].flatten(-2)``, as
    ``(..., 6)`` (inverse of :func:`rot6d_to_rotmat`; PyTorch3D's layout is ``R[..., :2, :]``)."""
    # checked: a flattened (3, 9) batch (three joints) would pass the reshape as one (6,) result
    _check_last(rotmat, (3, 3), "rotmat")
    return rotmat[..., :, :2].reshape(*rotmat.shape[:-2], 6)


def _rodrigues_series(sq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sin t / t, (1 - cos t) / t^2)`` of ``t^2 = sq`` by their Taylor series in Horner form,
    ``c0 (1 - x / r0 (1 - x / r1 (...)))``, both at once (half the kernel launches)."""
    x = sq.unsqueeze(-1)
    ratios = _const("rodrigues", sq)  # (terms, 2): sin t / t in column 0
    acc = 1.0 - x / ratios[-1]
    for k in range(ratios.shape[0] - 2, -1, -1):
        acc = 1.0 - x / ratios[k] * acc
    a, b = acc.unbind(-1)
    return a, 0.5 * b


def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """``(..., 3)`` rotation vectors in radians to ``(..., 3, 3)`` matrices.

    Rodrigues' formula as ``R = cos(theta) I + a [v]_x + b v v^T`` with ``a = sin(theta) /
    theta`` and ``b = (1 - cos theta) / theta^2 = 2 sin^2(theta / 2) / theta^2`` (no
    cancellation), both even functions of ``theta``; below ``theta^2 = 0.1`` they are their
    Taylor series in ``theta^2`` (truncated below float64's eps), so the map and all its
    derivatives are smooth and exact at the zero rotation: first *and second* derivatives
    (``torch.autograd.functional.hessian``, double backward) are finite and correct there,
    where a first-order small-angle branch (roma's ``rotvec_to_rotmat``) has none.
    """
    _check_last(aa, (3,), "aa")
    if aa.dtype == torch.float16:  # theta^2 overflows float16 beyond 256 rad (NaN), see _widen
        return axis_angle_to_rotmat(aa.float()).to(torch.float16)
    x0, x1, x2 = aa.unbind(-1)
    sq = x0 * x0 + x1 * x1 + x2 * x2
    small = sq < _RODRIGUES_SERIES
    # the closed forms on guarded values, so the branch a select drops has finite gradients
    theta = torch.sqrt(torch.where(small, torch.ones_like(sq), sq))
    half_sin = torch.sin(0.5 * theta) / theta
    # the series on clamped values likewise: its polynomial overflows beyond ~20 rad in half
    # (1e4 rad in float32), and a select's zero gradient times inf is NaN
    series_a, series_b = _rodrigues_series(sq.clamp(max=_RODRIGUES_SERIES))
    a = torch.where(small, series_a, torch.sin(theta) / theta)
    b = torch.where(small, series_b, 2.0 * half_sin * half_sin)
    c = 1.0 - b * sq
    bx0, bx1, bx2 = b * x0, b * x1, b * x2
    ax0, ax1, ax2 = a * x0, a * x1, a * x2
    rows = (
        c + bx0 * x0,
        bx0 * x1 - ax2,
        bx0 * x2 + ax1,
        bx0 * x1 + ax2,
        c + bx1 * x1,
        bx1 * x2 - ax0,
        bx0 * x2 - ax1,
        bx1 * x2 + ax0,
        c + bx2 * x2,
    )
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def rotmat_to_axis_angle(rotmat: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` matrices to ``(..., 3)`` rotation vectors, angle in ``[0, pi]``.

    Closed form: ``theta = atan2(|v|, trace - 1)`` with ``v`` the skew part; the axis is ``v``
    below ``pi/2`` and comes from the symmetric part above, so angles near ``pi`` keep full
    accuracy; exact series at the identity; finite gradients everywhere. ``rotmat`` must be
    rotations: one off orthonormal by ``e`` moves the result by about ``e`` (project it with
    :func:`nearest_rotation` first).
    """
    _check_last(rotmat, (3, 3), "rotmat")
    p = _to_planar(_widen(rotmat))
    return _from_planar(_axis_angle_planar(p), rotmat.shape[:-2], (3,)).to(rotmat.dtype)


def rotmat_to_quat(rotmat: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` matrices to unit quaternions ``(..., 4)``, ``(x, y, z, w)``, ``w >= 0``."""
    _check_last(rotmat, (3, 3), "rotmat")
    p = _to_planar(_widen(rotmat))
    return _from_planar(_quat_planar(p), rotmat.shape[:-2], (4,)).to(rotmat.dtype)


def quat_to_rotmat(quat: torch.Tensor) -> torch.Tensor:
    """Quaternions ``(..., 4)`` in ``(x, y, z, w)`` order to ``(..., 3, 3)`` matrices.

    Normalised first, as SciPy's ``Rotation.from_quat`` and PyTorch3D's
    ``quaternion_to_matrix`` do: roma's ``unitquat_to_rotmat`` alone turns a quaternion of norm
    ``n`` into a matrix scaled by ``n^2`` (a float32 or rounded quaternion from another library
    gave a matrix that is no rotation). A zero quaternion gives the zero matrix, not NaN."""
    # checked: roma reads entries 0-3 of any longer last dimension (a 6D batch) silently
    _check_last(quat, (4,), "quat")
    import roma  # here, not at import: roma imports torch._dynamo (about 1 s)

    q = _widen(quat)
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min(1e-30)
    return roma.unitquat_to_rotmat(q).to(quat.dtype)


#: Longest rotation vector (radians) a body joint of a pose in radians is taken to have: 4 pi.
#: :func:`degree_poses` flags a pose whose longest joint vector exceeds it. Why 4 pi:
#: canonical vectors are at most pi long; optimisers, unwrapped (continuous) sequences and some
#: datasets hold longer equivalent ones, up to ~2 pi (a full turn more is the same rotation
#: again), so 4 pi leaves another full turn of margin above what radians data holds. Read in
#: degrees, 4 pi is a bend of 12.6 degrees: a pose in degrees is flagged as soon as any joint
#: is bent further, as the shoulders, elbows, knees and spine of captured poses are (SMPL's rest
#: pose is a T-pose, so arms down alone are ~70 degrees at the shoulders). Measured numbers are
#: in docs/api/rotations.md ("Units").
DEGREES_NORM = 4.0 * math.pi
# Longest rotation vector whose message says "degrees": the same bound in degrees (4 pi rad =
# 720 deg); longer ones are neither unit (corrupt data, positions, another quantity).
_DEGREES_MAX = 720.0


def degree_poses(rotvec: torch.Tensor) -> torch.Tensor:
    """Which poses can only be in degrees: ``(...)`` bool for body poses ``rotvec (..., J, 3)``
    (J joints' rotation vectors, meant in radians), True where the longest of a pose's J vectors
    exceeds :data:`DEGREES_NORM`.

    Judged per pose, not per joint: a pose in degrees holds many short vectors too (joints bent
    by a few degrees read as a few radians, which is still a valid rotation), so no single
    joint tells; the most bent joint of a real pose does. Pass the body joints only: a root
    (global) orientation may be unwrapped over many turns (a spinning dancer) in radians. A NaN
    pose is not flagged (the finiteness checks judge it). Values are compared here, on the
    tensor's device; reading the result (``bool(mask.any())``) is the caller's choice, a GPU
    synchronisation that has no place inside an optimiser's loop.
    """
    _check_last(rotvec, (3,), "rotvec")
    # squared norms against the squared bound: no square root, and exact at the bound
    sq = (rotvec * rotvec).sum(-1)
    return sq.amax(-1) > DEGREES_NORM * DEGREES_NORM


def degrees_reason(rotvec: torch.Tensor, name: str, noun: str = "poses") -> str | None:
    """Why body poses ``rotvec (..., J, 3)`` (``name``, for the message) look like degrees, with
    the fix, or None when no pose does (:func:`degree_poses`), or when the values cannot be read
    (the meta device, inside ``torch.func.vmap``). Reads one flag from the tensor's device (a
    GPU synchronisation): for API boundaries, not for code inside an optimiser's loop."""
    if rotvec.numel() == 0 or rotvec.device.type == "meta":
        return None
    with torch.no_grad():
        flagged = degree_poses(rotvec.detach())
        try:
            if not bool(flagged.any()):
                return None
        except RuntimeError:  # vmap's "data-dependent control flow": not judged, as NaN is
            return None
        longest = float(torch.linalg.vector_norm(rotvec.detach()[flagged].double(), dim=-1).max())
        count, total = int(flagged.sum()), flagged.numel()
    head = (
        f"{name}: {count} of {total} {noun} hold joint rotation vectors up to {longest:.4g} "
        f"long, beyond any body joint's rotation in radians (<= 4 pi = {DEGREES_NORM:.4g})"
    )
    if longest > _DEGREES_MAX:
        return f"{head}, and too long for degrees too: not axis-angle, or corrupt"
    return (
        f"{head}: the values look like degrees. Axis-angle is in radians: convert with "
        "np.deg2rad(x) or torch.deg2rad(x)"
    )


# Newton-Schulz steps of nearest_rotation: a singular value 1 + e goes to 1 - 1.5 e^2 + ..., so
# from |e| <= 0.17 (max |R^T R - I| <= 0.1, ROTATION_TOLERANCE) six steps reach float64's eps.
_POLAR_STEPS = 6


def nearest_rotation(rotmat: torch.Tensor) -> torch.Tensor:
    """The nearest rotation (in the Frobenius norm) to each nearly orthonormal ``(..., 3, 3)``
    matrix: its orthogonal polar factor ``U V^T`` (``rotmat = U S V^T``), here by Newton-Schulz
    steps ``X <- X (3 I - X^T X) / 2``, matrix products only, so gradients are finite also at
    exact rotations (where an SVD's backward divides by ``s_i - s_j = 0``).

    For matrices off by float rounding or a little more (float32 round-trips through other
    libraries, frame-averaged matrices): converges for singular values in ``(0, sqrt 3)``, to
    float64's eps within ``max |R^T R - I| <= 0.1``. A matrix with determinant < 0 (a
    reflection) stays one: check the determinant first (:func:`advprior.skeleton.check_body_pose`
    does, and projects its matrices with this)."""
    _check_last(rotmat, (3, 3), "rotmat")
    # in float32 for both half types: bfloat16's 8-bit mantissa would stop the steps at ~1e-2
    half = rotmat.dtype in (torch.float16, torch.bfloat16)
    x = rotmat.float() if half else rotmat
    eye3 = 3.0 * torch.eye(3, dtype=x.dtype, device=x.device)
    for _ in range(_POLAR_STEPS):
        x = 0.5 * (x @ (eye3 - x.mT @ x))
    return x.to(rotmat.dtype)


def geodesic_distance(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle in radians ``(...)``, in ``[0, pi]``, of the relative rotation ``r1^T r2`` between
    ``(..., 3, 3)`` matrices (leading shapes that broadcast); finite gradients everywhere.

    ``theta = 2 atan2(s, c)`` with ``s = sin(theta / 2) = |r2 - r1|_F / (2 sqrt 2)``, accurate
    near 0, and ``c = cos(theta / 2)``: ``sqrt(1 - s^2)`` below ``pi / 2``, above it ``|v| /
    (4 s)`` from the skew part ``v = 2 sin(theta) n`` of ``r1^T r2``, accurate near ``pi``.
    (roma's ``2 asin(s)`` alone loses half the digits near ``pi``: ~1e-3 rad in float32, with
    gradients up to ~1e3 there, or zero once rounding puts ``s`` above 1.)
    """
    _check_last(r1, (3, 3), "r1")
    _check_last(r2, (3, 3), "r2")
    # in the common dtype, as r2 - r1 would be (a matrix product refuses mixed dtypes)
    dtype = torch.promote_types(r1.dtype, r2.dtype)
    if dtype == torch.float16:
        return geodesic_distance(r1.float(), r2.float()).to(dtype)
    r1, r2 = r1.to(dtype), r2.to(dtype)
    s = torch.linalg.matrix_norm(r2 - r1) * (0.5 / 2.0**0.5)
    rel = r1.transpose(-1, -2) @ r2
    v = (
        rel[..., 2, 1] - rel[..., 1, 2],
        rel[..., 0, 2] - rel[..., 2, 0],
        rel[..., 1, 0] - rel[..., 0, 1],
    )
    # sqrt of a clamped square: its gradient at v = 0 (a half turn) is 0, not NaN
    v_norm = torch.sqrt(_dot3(v, v).clamp_min(torch.finfo(rel.dtype).tiny))
    sq = s * s
    # each branch on guarded values, so the one the select drops has a finite gradient
    c = torch.where(
        sq <= 0.5,
        torch.sqrt((1.0 - sq).clamp_min(0.5)),
        v_norm / (4.0 * s.clamp_min(0.5)),
    )
    return 2.0 * torch.atan2(s, c)
