"""numpy faces of roma's rotation functions for the importers, plus the few roma lacks.

The importers work on float64 numpy arrays; every rotation here is computed by roma (a core
dependency; keeps scipy out of the install) on float64 CPU tensors, except
:func:`align_vectors`, :func:`skew` and :func:`frame_from`, which roma has no counterpart for.

Conventions: rotation matrices ``(..., 3, 3)`` act on column vectors; quaternions ``(..., 4)`` are
``(x, y, z, w)`` (SciPy's and roma's order); angles in radians.
"""

from __future__ import annotations

import numpy as np
import roma
import torch


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))


def axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotation ``(..., 3, 3)`` by ``angle (...)`` radians about coordinate ``axis`` x|y|z."""
    return euler_matrix(np.asarray(angle, dtype=np.float64)[..., None], axis)


def euler_matrix(angles: np.ndarray, axes: str) -> np.ndarray:
    """``R = R_axes[0](a0) @ R_axes[1](a1) @ ...`` for ``angles (..., len(axes))`` in radians.

    This is the BVH channel convention (channels listed left to right multiply left to right),
    i.e. roma's intrinsic (upper-case) Euler convention. Acclaim ``dof``/``axis`` orders apply
    the *first* listed axis first, i.e. pass them reversed.
    """
    angles = np.asarray(angles, dtype=np.float64)
    if not axes:  # a joint without rotation channels
        return np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    return roma.euler_to_rotmat(axes.upper(), _tensor(angles)).numpy()


def _roma(fn, x: np.ndarray, tail: int, out_tail: tuple[int, ...]) -> np.ndarray:
    lead = x.shape[: x.ndim - tail]
    flat = _tensor(x).reshape(-1, *x.shape[-tail:])
    return getattr(roma, fn)(flat).numpy().reshape(*lead, *out_tail)


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` -> ``(..., 4)`` unit quaternions (x, y, z, w)."""
    return _roma("rotmat_to_unitquat", m, 2, (4,))


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions (x, y, z, w) -> ``(..., 3, 3)``; normalises the input."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return _roma("unitquat_to_rotmat", q, 1, (3, 3))


def matrix_to_rotvec(m: np.ndarray) -> np.ndarray:
    """``(..., 3, 3)`` -> axis-angle ``(..., 3)``, angle in ``[0, pi]``."""
    return _roma("rotmat_to_rotvec", m, 2, (3,))


def rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    """Axis-angle ``(..., 3)`` radians -> ``(..., 3, 3)``."""
    return _roma("rotvec_to_rotmat", v, 1, (3, 3))


def quat_slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Shortest-path slerp of ``(..., 4)`` unit quaternions, each pair at its own fraction ``t``
    (broadcasts as ``(..., 1)``): ``q0 exp(t log(q0^-1 q1))``.

    roma's ``unitquat_slerp`` evaluates every step for every pair (a ``(steps, pairs)`` grid);
    resampling needs one step per pair, so this composes roma's quaternion maps instead (the
    same great arc; ``unitquat_to_rotvec`` takes the shortest one).
    """
    a, b = _tensor(q0), _tensor(q1)
    fraction = _tensor(t)[..., None]
    relative = roma.unitquat_to_rotvec(roma.quat_product(roma.quat_conjugation(a), b))
    out = roma.quat_product(a, roma.rotvec_to_unitquat(fraction * relative))
    return roma.quat_normalize(out).numpy()


def align_vectors(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Smallest rotation ``(..., 3, 3)`` taking directions ``u (..., 3)`` onto ``v (..., 3)``."""
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    k = np.cross(u, v)
    c = np.sum(u * v, axis=-1)
    kx = skew(k)
    eye = np.broadcast_to(np.eye(3), kx.shape)
    opposite = c < -1.0 + 1e-9
    denom = np.where(opposite, 1.0, 1.0 + c)[..., None, None]
    out = eye + kx + kx @ kx / denom
    if np.any(opposite):
        # Antiparallel: half-turn about any axis perpendicular to u.
        uo = u[opposite]
        helper = np.where(np.abs(uo[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
        axis = np.cross(uo, helper)
        axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
        out = out.copy()
        out[opposite] = 2.0 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return out


def skew(k: np.ndarray) -> np.ndarray:
    """Cross-product matrices ``(..., 3, 3)`` of ``k (..., 3)``."""
    out = np.zeros(k.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2] = -k[..., 2], k[..., 1]
    out[..., 1, 0], out[..., 1, 2] = k[..., 2], -k[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -k[..., 1], k[..., 0]
    return out


def frame_from(d: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``(..., 3, 3)`` with columns ``(d, ref without its d part, d x ref)``."""
    e1 = d / np.linalg.norm(d, axis=-1, keepdims=True)
    e2 = ref - np.sum(ref * e1, axis=-1, keepdims=True) * e1
    e2 = e2 / np.linalg.norm(e2, axis=-1, keepdims=True)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=-1)
