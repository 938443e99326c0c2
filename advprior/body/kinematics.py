"""Forward kinematics on SMPL's 24-joint tree, pure torch, batched and differentiable.

Conventions: axis-angle in radians; metres; SMPL's frame (y up, x to the body's left, the body
faces +z). Joints rotate about their own rest position, so the pelvis stays at its rest position
plus ``transl`` -- exactly what SMPL's linear blend skinning does to its joints.
"""

from __future__ import annotations

import numpy as np
import torch

from advprior.body.model import BodyModel, check_body_model, check_pose, default_standin
from advprior.rotations import axis_angle_to_rotmat
from advprior.skeleton import NUM_JOINTS, PARENTS, REST_JOINTS, pad_hand_joints
from advprior.tensors import cacheable

__all__ = ["forward_kinematics", "forward_kinematics_rotmat", "rest_joints", "check_pose"]

_PARENTS = np.asarray(PARENTS)


def _depth_levels(parents: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` joint ranges of equal tree depth, root first."""
    depth = np.zeros(len(parents), dtype=int)
    for i, p in enumerate(parents):
        if p >= 0:
            if p >= i:
                raise ValueError("parents must list every parent before its children")
            depth[i] = depth[p] + 1
    levels = []
    for d in range(depth.max() + 1):
        idx = np.flatnonzero(depth == d)
        contiguous = np.array_equal(idx, np.arange(idx[0], idx[-1] + 1))
        if not contiguous or (levels and levels[-1][1] != idx[0]):
            raise ValueError("joints of equal depth must be contiguous and ordered by depth")
        levels.append((int(idx[0]), int(idx[-1]) + 1))
    return levels


# SMPL numbers its joints breadth-first, so each depth is one contiguous slice: FK then runs
# one batched matmul per depth (9) instead of one per joint (24).
_LEVELS = _depth_levels(_PARENTS)


def rest_joints(
    body_model: BodyModel | None = None,
    betas: torch.Tensor | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """SMPL's 24 rest joints, metres.

    Without ``body_model`` and ``betas``: the neutral SMPL joints of
    :data:`advprior.skeleton.REST_JOINTS`, ``(24, 3)``. With ``betas (..., K)``: the shaped rest
    joints ``(..., 24, 3)`` of ``body_model`` (or of the stand-in body when ``body_model`` is
    ``None``). With ``body_model`` and no betas: that model's joints at zero shape, ``(24, 3)``.
    """
    check_body_model(body_model)
    if body_model is None and betas is None:
        return torch.as_tensor(REST_JOINTS, dtype=dtype, device=device)
    if body_model is None:
        body_model = default_standin()
    out = body_model.rest_joints(betas)
    if betas is None:
        out = out.to(dtype=dtype, device=device)
    return out


def forward_kinematics(
    global_orient: torch.Tensor,
    body_pose: torch.Tensor,
    betas: torch.Tensor | None = None,
    transl: torch.Tensor | None = None,
    body_model: BodyModel | None = None,
    *,
    return_rotations: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Posed positions of SMPL's 24 joints.

    Args:
        global_orient: ``(..., 3)`` pelvis axis-angle, radians (or smplx's ``(B, 1, 3)``,
            ``(B, 3, 3)``, ``(B, 1, 3, 3)`` for B poses: :func:`advprior.body.model.check_pose`).
        body_pose: ``(..., 63)`` (SMPL joints 1..21; the hand joints 22, 23 stay at rest) or
            ``(..., 69)`` (joints 1..23), axis-angle, radians; also per joint ``(..., J, 3)`` or
            as rotation matrices ``(..., J, 3, 3)`` (:func:`advprior.skeleton.check_body_pose`).
        betas: optional ``(..., K)`` shape coefficients of ``body_model`` (the stand-in body when
            ``body_model`` is None).
        transl: optional ``(..., 3)`` translation, metres, added to every joint.
        body_model: a :class:`~advprior.body.BodyModel`; its shaped rest joints replace the
            neutral :data:`~advprior.skeleton.REST_JOINTS`.
        return_rotations: also return the global joint rotations ``(..., 24, 3, 3)``.

    Returns:
        joints ``(..., 24, 3)`` in metres (and the rotations when asked). Leading dimensions of
        all inputs broadcast. Equal to :class:`~advprior.body.BodyModel`'s ``joints`` for the
        same model and parameters.
    """
    go, bp = check_pose(global_orient, body_pose)
    check_body_model(body_model)
    dtype, device = bp.dtype, bp.device
    try:
        lead = torch.broadcast_shapes(go.shape[:-1], bp.shape[:-1])
    except RuntimeError as exc:
        raise ValueError(
            f"global_orient {tuple(go.shape)} and body_pose {tuple(bp.shape)} have leading "
            "dimensions that do not broadcast"
        ) from exc
    aa = torch.cat(
        [go.expand(*lead, 3)[..., None, :], bp.expand(*lead, bp.shape[-1]).unflatten(-1, (-1, 3))],
        -2,
    )
    if betas is not None:
        if not isinstance(betas, torch.Tensor) or betas.ndim == 0:
            raise TypeError("betas must be a torch.Tensor of shape (..., K)")
        rest = rest_joints(body_model, betas.to(dtype=dtype, device=device))
    else:
        rest = rest_joints(body_model, None, device=device, dtype=dtype)
    rest = rest.to(dtype=dtype, device=device)
    try:
        lead = torch.broadcast_shapes(lead, rest.shape[:-2])
    except RuntimeError as exc:
        raise ValueError(
            f"betas {tuple(betas.shape)} do not broadcast with the poses' leading shape {lead}"
        ) from exc
    pos, rot = forward_kinematics_rotmat(axis_angle_to_rotmat(aa), rest, return_rotations=True)

    if transl is not None:
        if not isinstance(transl, torch.Tensor) or transl.shape[-1:] != (3,):
            got = tuple(transl.shape) if isinstance(transl, torch.Tensor) else type(transl).__name__
            raise ValueError(f"transl must be a tensor of shape (..., 3), got {got}")
        try:
            fits = torch.broadcast_shapes(transl.shape[:-1], lead) == lead
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"transl {tuple(transl.shape)} does not match the poses' leading shape {lead}"
            )
        pos = pos + transl.to(dtype=dtype, device=device)[..., None, :]
    if return_rotations:
        return pos, rot
    return pos


_PARENT_INDEX: dict[torch.device, torch.Tensor] = {}


def _parent_index(device: torch.device) -> torch.Tensor:
    """SMPL's parents of joints 1..23 as an index tensor on ``device``, made once per device: a
    fit runs the kinematic chain at every evaluation of its objective, and a tensor made from
    host numbers is a copy a GPU stream waits for."""
    value = None if torch.jit.is_tracing() else _PARENT_INDEX.get(device)
    if value is None:
        # outside inference mode, so that it also serves calls that autograd records
        with torch.inference_mode(False):
            value = torch.as_tensor(_PARENTS[1:], device=device)
        if cacheable(value):
            _PARENT_INDEX[device] = value
    return value


def forward_kinematics_rotmat(
    local_rotmat: torch.Tensor,
    rest: torch.Tensor | None = None,
    *,
    return_rotations: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The kinematic chain: SMPL's 24 posed joints from local rotation matrices.

    Args:
        local_rotmat: ``(..., J, 3, 3)``, J = 22 (pelvis, then SMPL joints 1..21; the hand
            joints stay at rest) or 24, each relative to its parent.
        rest: ``(..., 24, 3)`` rest joints in metres (:func:`rest_joints`); default the neutral
            :data:`~advprior.skeleton.REST_JOINTS`.
        return_rotations: also return the global rotations ``(..., 24, 3, 3)``.

    Returns:
        joints ``(..., 24, 3)`` in metres, the pelvis at its rest position; leading dimensions
        broadcast. Works on the matrices directly: training losses use it because the gradient
        of a matrix -> axis-angle conversion is unstable near zero angle.
    """
    if (
        not isinstance(local_rotmat, torch.Tensor)
        or local_rotmat.shape[-2:] != (3, 3)
        or (local_rotmat.ndim < 3 or local_rotmat.shape[-3] not in (NUM_JOINTS - 2, NUM_JOINTS))
    ):
        got = (
            tuple(local_rotmat.shape)
            if isinstance(local_rotmat, torch.Tensor)
            else type(local_rotmat).__name__
        )
        raise ValueError(
            f"local_rotmat must have shape (..., 22, 3, 3) or (..., 24, 3, 3), got {got}"
        )
    device = local_rotmat.device
    if rest is None:
        rest = rest_joints(device=device, dtype=local_rotmat.dtype)
    # Joint 0 is the pelvis, so the body joints 1..J-1 pad like a body pose of J-1 joints.
    local = pad_hand_joints(local_rotmat, NUM_JOINTS, rotmat=True)
    parents = _parent_index(device)
    offsets = torch.cat([rest[..., :1, :], rest[..., 1:, :] - rest[..., parents, :]], -2)
    lead = torch.broadcast_shapes(local.shape[:-3], offsets.shape[:-2])
    local = local.expand(*lead, NUM_JOINTS, 3, 3)
    offsets = offsets.expand(*lead, NUM_JOINTS, 3)

    rot = local[..., :1, :, :]
    pos = offsets[..., :1, :]
    for start, stop in _LEVELS[1:]:
        par = parents[start - 1 : stop - 1]
        prot = rot[..., par, :, :]
        rot = torch.cat([rot, prot @ local[..., start:stop, :, :]], -3)
        step = (prot @ offsets[..., start:stop, :, None])[..., 0]
        pos = torch.cat([pos, pos[..., par, :] + step], -2)
    return (pos, rot) if return_rotations else pos
