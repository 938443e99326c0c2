"""``BodyModel``: one interface over the stand-in body and real SMPL / SMPL-H / SMPL-X files.

Every model is built by ``smplx`` (its ``*Layer`` classes) from the file's arrays; this module
hides smplx's quirks: SMPL ``.npz`` files and chumpy pickles (read by
:mod:`advprior.body.files`), vertex-id selectors that index past the end of non-standard meshes,
parameters created at a fixed batch size, and chatter on stdout.

Conventions: axis-angle in radians, metres, SMPL's frame (y up, x to the body's left, facing +z).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import smplx
import torch
from smplx.utils import Struct
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS
from torch import nn

from advprior._sync import GLOBAL_STATE
from advprior.body import files, standin
from advprior.errors import (
    AmbiguousOrientationWarning,
    AngleUnitWarning,
    CorruptCheckpointError,
    ModelNotFoundError,
)
from advprior.fileio import expand_home
from advprior.rotations import axis_angle_to_rotmat, degrees_reason, rotmat_to_axis_angle
from advprior.skeleton import (
    _ROTATION_HINTS,
    NUM_BODY_JOINTS,
    NUM_JOINTS,
    NUM_SMPL_BODY_JOINTS,
    ROTATION_TOLERANCE,
    _check_rotations,
    body_pose_layout,
    check_body_pose,
    pad_hand_joints,
)
from advprior.tensors import cacheable, check_tensor, chunk_bounds
from advprior.version import is_compiling, is_exporting, torch_readable

__all__ = ["BodyModel", "BodyOutput", "load_body_model", "default_standin"]

#: Model joints standing for SMPL's ``left_hand``/``right_hand`` (22, 23) in SMPL-H / SMPL-X:
#: the first middle-finger joints, which hang off the wrists as SMPL's hand joints do.
_SKELETON_INDEX = {
    "smpl": tuple(range(NUM_JOINTS)),
    "smplh": (*range(22), 25, 40),
    "smplx": (*range(22), 28, 43),
}
_STANDARD_VERTICES = {"smpl": 6890, "smplh": 6890, "smplx": 10475}
_LAYERS = {"smpl": smplx.SMPLLayer, "smplh": smplx.SMPLHLayer, "smplx": smplx.SMPLXLayer}
_FACE = ("nose", "reye", "leye", "rear", "lear")
_FEET = ("LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel")
_TIPS = tuple(f"{s}{n}" for s in "lr" for n in ("thumb", "index", "middle", "ring", "pinky"))
#: Names of the vertex joints smplx appends after the skeleton, in its order.
EXTRA_JOINT_NAMES: tuple[str, ...] = _FACE + _FEET + _TIPS


def check_pose(
    global_orient: torch.Tensor, body_pose: torch.Tensor, name: str = "body_pose"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``global_orient (..., 3)`` and ``body_pose (..., 63 | 69)`` and return them as
    floating tensors on the same device/dtype (``body_pose``'s dtype wins for numpy input).

    smplx's layouts are read as smplx reads them: ``body_pose`` per joint ``(..., J, 3)`` or as
    rotation matrices ``(..., J, 3, 3)`` (:func:`advprior.skeleton.check_body_pose`), and a
    ``global_orient`` of ``body_pose``'s batch with a joint axis, ``(B, 1, 3)``, or as a rotation
    matrix, ``(B, 3, 3)`` / ``(B, 1, 3, 3)``. Why: by broadcasting alone a ``(B, 1, 3)``
    orientation posed a ``(B, B)`` grid of bodies (every pose under every orientation) and a
    batch-1 matrix three bodies, silently.

    A ``(3, 3)`` (or ``(1, 3, 3)``) ``global_orient`` whose rows broadcast to the poses' batch
    (3 poses, clips of 3 frames) is read as 3 rotation vectors, one per pose; when its values
    also make a rotation matrix (to :data:`~advprior.skeleton.ROTATION_TOLERANCE`, determinant
    > 0) an :class:`~advprior.errors.AmbiguousOrientationWarning` names both readings and the
    shapes that settle it: ``(1, 3, 3)`` or ``(3, 3, 3)`` for the matrix, ``(3, 1, 3)`` for the
    rotation vectors (no warning for a ``(3, 3)`` that is no rotation: it can only be rotation
    vectors).

    An axis-angle ``body_pose`` that looks like degrees gets an
    :class:`~advprior.errors.AngleUnitWarning` (on the CPU, outside autograd; never an
    exception: :func:`_warn_degrees`)."""
    go, bp = (
        torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in (global_orient, body_pose)
    )
    # Type and dtype first for both, then shapes: a list for either is a TypeError.
    check_tensor(go, "global_orient", None, finite=False)
    check_tensor(bp, name, None, finite=False)
    layout = body_pose_layout(bp)
    bp = check_body_pose(bp, name, finite=False)
    if layout in ("flat", "joints"):
        _warn_degrees(bp, name)
    go = _smplx_global_orient(go, tuple(bp.shape[:-1]), layout != "flat")
    hints = {**_ROTATION_HINTS, 9: "flattened rotation matrices? pass x.unflatten(-1, (3, 3))"}
    if go.ndim and go.shape[-1] in hints:
        # another library's representation (quaternions, 6D): torch's broadcasting error, or
        # "must have shape (..., 3)", said nothing of the conversion
        raise ValueError(
            f"global_orient must be axis-angle (..., 3) or rotation matrices (B, 3, 3), "
            f"(B, 1, 3, 3) or one (3, 3) for all poses, got {tuple(go.shape)}; "
            f"{hints[go.shape[-1]]}"
        )
    check_tensor(go, "global_orient", 3, finite=False)
    if go.device != bp.device:
        raise ValueError(f"global_orient is on {go.device} but {name} is on {bp.device}")
    go = go.to(bp.dtype)
    return go, bp


def _warn_degrees(body_pose: torch.Tensor, name: str) -> None:
    """An :class:`~advprior.errors.AngleUnitWarning` when axis-angle ``body_pose (..., 3 J)``
    looks like degrees (:func:`advprior.rotations.degrees_reason`); never an exception.

    Why a warning and not an error: this runs inside fits, on whatever an optimiser's line
    search tries, and a forward pass takes any finite value. Judged only where it costs a fit
    nothing: on the CPU (reading the flag is no device synchronisation; one norm and max over
    the pose: measured 15 us for one pose against 3 ms to pose the stand-in body, one CPU
    thread), for a pose outside autograd (a user's data: an optimiser's variable, and all it is
    decoded into, requires grad) and not while tracing or compiling (reading a value would
    break the graph). So a pose in degrees on a GPU, or one that requires grad, passes
    silently; the API boundaries (file importers, ``invert``, ``project_pose``, ``score``, AMASS
    export) refuse it instead."""
    if (
        body_pose.device.type != "cpu"
        or body_pose.requires_grad
        or torch.jit.is_tracing()
        or is_compiling()
        or is_exporting()
    ):
        return
    reason = degrees_reason(body_pose.unflatten(-1, (-1, 3)), name)
    if reason is not None:
        warnings.warn(reason, AngleUnitWarning, stacklevel=_caller_stacklevel())


def _smplx_global_orient(go: torch.Tensor, lead: tuple[int, ...], smplx_pose: bool) -> torch.Tensor:
    """``go`` as ``(..., 3)`` axis-angle when it holds smplx's layout for a batch ``lead`` of
    body poses (``lead + (1, 3)``, ``lead + (3, 3)``, ``lead + (1, 3, 3)``); otherwise unchanged,
    for broadcasting. An unbatched flat pose (``lead == ()``, ``(63,)``) keeps broadcasting:
    ``(1, 3)`` and ``(3, 3)`` are then batches of orientations; with an unbatched pose in
    smplx's own layouts (``smplx_pose``: per joint or matrices, e.g. one sample inside
    ``torch.func.vmap``) they are that pose's orientation. For batched poses a ``(3, 3)`` or
    ``(1, 3, 3)`` that does not broadcast to ``lead`` as rows of axis-angle is one rotation
    matrix for every pose (``(1, 3, 3)`` always is, unless ``lead`` ends in 3)."""
    if not lead and not smplx_pose:
        return go
    shape = tuple(go.shape)
    if shape == (*lead, 1, 3):
        return go.squeeze(-2)
    if shape in ((*lead, 3, 3), (*lead, 1, 3, 3)):
        rot = _check_rotations(go.reshape(*lead, 3, 3), "global_orient")
        return rotmat_to_axis_angle(rot)
    if shape in ((3, 3), (1, 3, 3)) and not _broadcasts_to(shape[:-1], lead):
        # one matrix for every pose (a camera-aligned orientation, SPIN's batch-1 init): read
        # as rows of axis-angle it did not broadcast, and the error said only that
        rot = _check_rotations(go.reshape(3, 3), "global_orient")
        return rotmat_to_axis_angle(rot)
    if shape in ((3, 3), (1, 3, 3)) and lead and _is_rotation(go):
        # the rows broadcast to the batch (3 poses, clips of 3 frames): 3 rotation vectors by
        # shape, kept so (a reading that flipped with the values would change under the same
        # code), but the values are a rotation matrix too, whose reading gives other bodies
        warnings.warn(
            _ambiguous_orientation(shape, lead),
            AmbiguousOrientationWarning,
            stacklevel=_caller_stacklevel(),
        )
    return go


def _is_rotation(m: torch.Tensor) -> bool:
    """Whether the 9 numbers of ``m`` make a rotation matrix as
    :func:`advprior.skeleton._check_rotations` accepts one (``max |R^T R - I|`` within
    :data:`~advprior.skeleton.ROTATION_TOLERANCE`, determinant > 0); False where the values
    cannot be read (the meta device, inside ``torch.func.vmap``) and for NaN."""
    if m.device.type == "meta":
        return False
    with torch.no_grad():
        r = m.detach().reshape(3, 3)
        r = r.to(torch.float64 if r.dtype == torch.float64 else torch.float32)
        off = (r.T @ r - torch.eye(3, dtype=r.dtype, device=r.device)).abs().amax()
        ok = (off <= ROTATION_TOLERANCE) & (torch.linalg.det(r) > 0)
        try:
            return bool(ok)
        except RuntimeError:  # vmap's "data-dependent control flow"
            return False


def _ambiguous_orientation(shape: tuple[int, ...], lead: tuple[int, ...]) -> str:
    """The warning for a ``global_orient`` of ``shape`` (``(3, 3)`` or ``(1, 3, 3)``) read as
    rotation vectors for poses of batch ``lead`` although it is a rotation matrix."""
    dims = ", ".join(str(d) for d in lead)
    matrix = f"R.expand({dims}, 3, 3)"
    if lead == (3,):
        matrix = "R.reshape(1, 3, 3) or R.expand(3, 3, 3)"
    return (
        f"global_orient of shape {shape} for body poses of batch {lead} is read as 3 rotation "
        "vectors (axis-angle, one per row and pose), but its values are also a rotation "
        "matrix, which would be one orientation for every pose; the two readings give "
        f"different bodies. For the matrix pass {matrix}; for rotation vectors give them a "
        f"joint axis, global_orient.expand({dims}, 3).unsqueeze(-2) (shape ({dims}, 1, 3)), "
        "which reads one way only"
    )


def _caller_stacklevel() -> int:
    """``stacklevel`` for a warning issued by the caller of this function: the first frame
    outside advprior and torch (a warning shows once per place; from inside advprior it would
    show once per process, and name no line of the user's)."""
    inside = tuple(  # with the separator: torchvision/ or advprior_scripts/ are outside
        os.path.join(os.path.dirname(path), "")
        for path in (os.path.dirname(os.path.abspath(__file__)), os.path.abspath(torch.__file__))
    )
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def _broadcasts_to(shape: tuple[int, ...], lead: tuple[int, ...]) -> bool:
    """Whether a batch ``shape`` broadcasts to ``lead`` without changing it."""
    try:
        return tuple(torch.broadcast_shapes(shape, lead)) == lead
    except RuntimeError:
        return False


@dataclass
class BodyOutput:
    """Posed body. ``vertices (..., V, 3)``, ``joints (..., 24, 3)`` on SMPL's skeleton,
    ``model_joints (..., J, 3)``: every joint smplx returns (the model's own skeleton, then the
    vertex joints of :attr:`BodyModel.extra_joint_names`, then SMPL-X's face landmarks).
    Metres, translation included."""

    vertices: torch.Tensor
    joints: torch.Tensor
    model_joints: torch.Tensor


class BodyModel(nn.Module):
    """A posable SMPL-family body. Build it with :func:`load_body_model`.

    Attributes:
        faces: ``(F, 3)`` int64 numpy triangle indices.
        num_betas: number of shape coefficients the model uses.
        model_type: ``"smpl"``, ``"smplh"`` or ``"smplx"`` (the stand-in is ``"smpl"``).
        is_standin: True for the open stand-in body.
        parents: ``(24,)`` SMPL's parent indices (``-1`` for the pelvis) of ``joints``.
        num_vertices: V.
        extra_joint_names: names of the vertex joints in ``model_joints`` after the skeleton.
        source: the file the model was read from.
        chunk_size: bodies posed at once by :meth:`forward` (a larger batch is posed in chunks
            of this size, with the same result); 512 by default, a class attribute you may
            set per instance.
    """

    chunk_size: int = 512

    def __init__(
        self,
        layer: nn.Module,
        *,
        model_type: str,
        is_standin: bool,
        source: Path,
        gender: str,
        extra_joint_names: tuple[str, ...],
    ) -> None:
        super().__init__()
        self.layer = layer
        self.model_type = model_type
        self.is_standin = is_standin
        self.source = source
        self.gender = gender
        self.extra_joint_names = extra_joint_names
        self.faces = np.asarray(layer.faces, dtype=np.int64)
        self.num_betas = int(layer.num_betas)
        self.num_vertices = int(layer.v_template.shape[0])
        self.register_buffer(
            "skeleton_index", torch.tensor(_SKELETON_INDEX[model_type]), persistent=False
        )
        # J_regressor is linear: regress the template and each shape direction once, so rest
        # joints for any betas cost one small matmul (fitting loops call this every step)
        regressor = layer.J_regressor[self.skeleton_index]
        self.register_buffer("rest_j0", regressor @ layer.v_template, persistent=False)
        self.register_buffer(
            "rest_jdirs", torch.einsum("jv,vck->jck", regressor, layer.shapedirs), persistent=False
        )
        parents = layer.parents[self.skeleton_index].clone()
        # in SMPL-H/X the stand-ins for SMPL's hand joints hang off the wrists as well
        self.parents = tuple(
            int(i)
            for i in torch.where(
                parents >= 0, torch.searchsorted(self.skeleton_index, parents.clamp(min=0)), -1
            )
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.layer.v_template.dtype

    @property
    def device(self) -> torch.device:
        return self.layer.v_template.device

    def extra_repr(self) -> str:
        kind = "stand-in" if self.is_standin else str(self.source)
        return f"{self.model_type}, {kind}, V={self.num_vertices}, num_betas={self.num_betas}"

    def _betas(
        self, betas: torch.Tensor | None, lead: tuple[int, ...], cast: bool = True
    ) -> torch.Tensor:
        if betas is None:
            return torch.zeros(*lead, self.num_betas, dtype=self.dtype, device=self.device)
        if not isinstance(betas, torch.Tensor) or not betas.is_floating_point() or betas.ndim == 0:
            raise TypeError(
                f"betas must be a floating torch.Tensor of shape (..., {self.num_betas})"
            )
        k = betas.shape[-1]
        if k > self.num_betas:
            raise ValueError(
                f"betas has {k} coefficients but this model has num_betas={self.num_betas}; "
                "pass num_betas to load_body_model (or trim betas)"
            )
        if cast:
            betas = betas.to(self.dtype)
        if k < self.num_betas:
            betas = torch.cat([betas, betas.new_zeros(*betas.shape[:-1], self.num_betas - k)], -1)
        return betas

    def rest_joints(self, betas: torch.Tensor | None = None) -> torch.Tensor:
        """Shaped rest joints on SMPL's skeleton, metres: ``(24, 3)`` in the model's dtype
        without betas, else ``(..., 24, 3)`` in betas' dtype and device for betas ``(..., K)``
        (K <= num_betas; missing coefficients are zero). Differentiable in betas."""
        if betas is None:
            return self.rest_j0.clone()
        b = self._betas(betas, (), cast=False)
        like = {"dtype": b.dtype, "device": b.device}
        return self.rest_j0.to(**like) + torch.einsum(
            "...k,jck->...jc", b, self.rest_jdirs.to(**like)
        )

    def _inputs(
        self,
        global_orient: torch.Tensor,
        body_pose: torch.Tensor,
        betas: torch.Tensor | None,
        transl: torch.Tensor | None,
    ) -> tuple[tuple[int, ...], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Checked, broadcast and flattened inputs of :meth:`forward`: ``(lead, global_orient
        (n, 3), joint rotations (n, J, 3, 3) as the layer takes them, betas (n, num_betas),
        transl (n, 3) or None)`` in the model's dtype."""
        go, bp = check_pose(global_orient, body_pose)
        if go.device != self.device:
            raise ValueError(f"inputs are on {go.device} but the body model is on {self.device}")
        shapes = [go.shape[:-1], bp.shape[:-1]]
        for name, x in (("betas", betas), ("transl", transl)):
            if x is not None:
                if not isinstance(x, torch.Tensor) or x.ndim == 0:
                    raise TypeError(f"{name} must be a torch.Tensor of shape (..., D)")
                shapes.append(x.shape[:-1])
        if transl is not None and transl.shape[-1] != 3:
            raise ValueError(f"transl must have shape (..., 3), got {tuple(transl.shape)}")
        try:
            lead = torch.broadcast_shapes(*shapes)
        except RuntimeError as exc:
            raise ValueError(f"leading dimensions do not broadcast: {shapes}") from exc
        n = int(np.prod(lead)) if lead else 1
        # explicit sizes: an empty batch (n = 0) cannot infer a -1 dimension
        betas = self._betas(betas, lead).expand(*lead, self.num_betas).reshape(n, self.num_betas)
        go = go.to(self.dtype).expand(*lead, 3).reshape(n, 3)
        bp = bp.to(self.dtype).expand(*lead, bp.shape[-1]).reshape(n, bp.shape[-1] // 3, 3)
        wanted = NUM_SMPL_BODY_JOINTS if self.model_type == "smpl" else NUM_BODY_JOINTS
        rot = pad_hand_joints(axis_angle_to_rotmat(bp[:, :wanted]), wanted, rotmat=True)
        if transl is not None:
            transl = transl.to(self.dtype).expand(*lead, 3).reshape(n, 3)
        return lead, go, rot, betas, transl

    def _vertex_index(self, vertex_ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """``vertex_ids`` checked and as an index on the model's device. Checked where the
        indices live (a list: on the CPU, so a GPU fit loop never waits for the check); the
        last list's tensor is kept, since a fit passes the same list at every evaluation and
        each copy of it to a GPU is a wait for the device."""
        key = (tuple(vertex_ids), self.device) if isinstance(vertex_ids, (list, tuple)) else None
        kept = self.__dict__.get("_vertex_ids")
        if key is not None and kept is not None and kept[0] == key and not torch.jit.is_tracing():
            return kept[1]
        ids = torch.as_tensor(vertex_ids, dtype=torch.long)
        if ids.ndim != 1 or (ids.numel() and (ids.min() < 0 or ids.max() >= self.num_vertices)):
            raise ValueError(
                f"vertex_ids must be a 1-d list of indices in [0, {self.num_vertices}), "
                f"got {vertex_ids!r}"
            )
        with torch.inference_mode(False):
            ids = ids.to(self.device)
        if key is not None and cacheable(ids):
            self.__dict__["_vertex_ids"] = (key, ids)
        return ids

    def posed_points(
        self,
        global_orient: torch.Tensor,
        body_pose: torch.Tensor,
        vertex_ids: torch.Tensor | list[int],
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The posed vertices ``vertex_ids`` ``(..., M, 3)`` and the 24 SMPL joints
        ``(..., 24, 3)``, metres, for the inputs of :meth:`forward`; equal to
        ``forward(...).vertices[..., vertex_ids, :]`` and ``.joints`` up to float rounding.

        Why: fitting to detector keypoints needs a dozen surface points (nose, eyes, ears, toes,
        heels), and skinning only those skips the pose blend shapes and skinning of the other
        ~5,000-10,000 vertices, which dominate the cost of every objective evaluation. SMPL
        models (the stand-in included) take this route; SMPL-H/SMPL-X pose the full mesh (their
        hand and face parameters live inside the smplx layer).
        """
        ids = self._vertex_index(vertex_ids)
        if self.model_type != "smpl":
            out = self.forward(global_orient, body_pose, betas, transl)
            return out.vertices[..., ids, :], out.joints
        from smplx.lbs import batch_rigid_transform

        lead, go, rot, betas, transl = self._inputs(global_orient, body_pose, betas, transl)
        layer = self.layer
        n, m = go.shape[0], ids.numel()
        if n == 0:
            empty = go.new_zeros(*lead, m, 3), go.new_zeros(*lead, 24, 3)
            return empty
        rot = torch.cat([axis_angle_to_rotmat(go)[:, None], rot], 1)  # (n, 24, 3, 3)
        shaped = layer.v_template[ids] + torch.einsum("nk,mck->nmc", betas, layer.shapedirs[ids])
        # the same linear blend shapes as smplx's lbs, restricted to the chosen vertices
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        features = (rot[:, 1:] - eye).reshape(n, -1)
        dirs = layer.posedirs.reshape(layer.posedirs.shape[0], -1, 3)[:, ids]
        posed = shaped + torch.einsum("np,pmc->nmc", features, dirs)
        # smplx's chain reads parents[i] into Python at each of the 23 joints: from the layer's
        # buffer on a GPU every read waits for the device; the same indices (SMPL's, as the
        # layer's) on the CPU do not
        parents = torch.tensor(self.parents)
        joints, transforms = batch_rigid_transform(
            rot, self.rest_joints(betas), parents, dtype=self.dtype
        )
        skin = torch.einsum("mj,njab->nmab", layer.lbs_weights[ids], transforms)
        points = (skin[..., :3, :3] @ posed[..., None])[..., 0] + skin[..., :3, 3]
        if transl is not None:
            points = points + transl[:, None]
            joints = joints + transl[:, None]
        return points.reshape(*lead, m, 3), joints.reshape(*lead, -1, 3)

    def _pose(
        self,
        orient: torch.Tensor,
        rot: torch.Tensor,
        betas: torch.Tensor,
        transl: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """smplx's layer on flat inputs (``orient (n, 1, 3, 3)``, the others of :meth:`_inputs`):
        ``(vertices (n, V, 3), joints (n, J', 3))``."""
        kwargs: dict[str, Any] = {} if transl is None else {"transl": transl}
        out = self.layer(betas=betas, global_orient=orient, body_pose=rot, **kwargs)
        return out.vertices, out.joints

    def forward(
        self,
        global_orient: torch.Tensor,
        body_pose: torch.Tensor,
        betas: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Pose the body.

        Args:
            global_orient: ``(..., 3)`` pelvis axis-angle, radians (or smplx's layouts, as
                :func:`check_pose` reads them).
            body_pose: ``(..., 63)`` joints 1..21 or ``(..., 69)`` joints 1..23, axis-angle
                (or per joint / as rotation matrices, :func:`check_pose`).
                SMPL: a 63-d pose gets identity hand joints. SMPL-H / SMPL-X: a 69-d pose has its
                last 6 values (SMPL's hand joints, absent from these models) dropped; fingers,
                jaw and eyes stay at identity (flat hands, neutral face).
            betas: ``(..., K)``, K <= num_betas (missing coefficients are zero); default zeros.
            transl: ``(..., 3)`` metres; default zeros.

        Leading dimensions broadcast; any batch size works. Inputs are cast to the model dtype.
        Batches over :attr:`chunk_size` bodies are posed that many at a time (same result; the
        memory is that of the returned vertices plus one chunk's skinning).
        """
        lead, go, rot, betas, transl = self._inputs(global_orient, body_pose, betas, transl)
        n = go.shape[0]
        if n == 0:  # smplx's layers need a batch: pose one neutral body, keep none of it
            go, rot, betas = (
                go.new_zeros(1, 3),
                _identity_like(rot),
                betas.new_zeros(1, betas.shape[-1]),
            )
            transl = None
        orient = axis_angle_to_rotmat(go)[:, None]
        bounds = chunk_bounds(n, self.chunk_size)
        if len(bounds) > 1:
            # smplx's skinning holds ~12x the vertices it returns (a (V, 4, 4) transform and a
            # (V, J) weight copy per body): in chunks, 10^5 stand-in bodies take the ~6 GB of
            # their vertices instead of ~70 GB. Each body goes through the same kernels as in
            # one call, so the result is the same to the bit.
            chunks = (
                self._pose(
                    orient[a:b], rot[a:b], betas[a:b], None if transl is None else transl[a:b]
                )
                for a, b in bounds
            )
            inputs = (orient, rot, betas, transl, *self.layer.parameters())
            if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
                parts = list(chunks)
                verts = torch.cat([v for v, _ in parts])
                joints = torch.cat([j for _, j in parts])
            else:  # filled in place: the chunks' outputs are not all held twice
                for k, ((a, b), (v, j)) in enumerate(zip(bounds, chunks, strict=True)):
                    if k == 0:
                        verts = v.new_empty(n, *v.shape[1:])
                        joints = j.new_empty(n, *j.shape[1:])
                    verts[a:b] = v
                    joints[a:b] = j
        else:
            verts, joints = self._pose(orient, rot, betas, transl)
            verts, joints = verts[:n], joints[:n]
        model_joints = joints.reshape(*lead, joints.shape[-2], 3)
        return BodyOutput(
            vertices=verts.reshape(*lead, verts.shape[-2], 3),
            joints=model_joints[..., self.skeleton_index, :],
            model_joints=model_joints,
        )


def check_body_model(body_model: object, name: str = "body_model") -> Any:
    """``body_model`` when it is None, a :class:`BodyModel` or an object with its
    ``rest_joints(betas)`` (a body of one's own, e.g. for evaluation), else a ``TypeError``
    saying how to get one (a plain ``smplx`` model takes other inputs: axis-angle per call, its
    own joint order; :func:`load_body_model` reads the same file into a :class:`BodyModel`)."""
    if body_model is None or isinstance(body_model, BodyModel):
        return body_model
    if callable(getattr(body_model, "rest_joints", None)):
        return body_model
    kind = type(body_model)
    hint = ""
    if kind.__module__.split(".")[0] == "smplx":
        hint = (
            "; for a plain smplx model, load the same file with "
            "advprior.body.load_body_model(path, model_type=...) (as_smplx=True gives the "
            "plain smplx model back for your own code)"
        )
    raise TypeError(
        f"{name} must be an advprior.body.BodyModel from load_body_model() (or have its "
        f"rest_joints(betas)), got "
        f"{kind.__module__}.{kind.__qualname__}{hint}"
    )


def rest_output(body_model: Any) -> Any:
    """One body in the rest pose (zero orientation and ``body_pose``, default shape), computed
    without autograd on the model's device and dtype: a :class:`BodyModel` and the fitting's
    duck-typed models expose ``.device`` / ``.dtype``, anything else gets CPU float32. Used to
    read what a model's outputs look like (its vertices, its extra joints) before using it."""
    like = {
        "dtype": getattr(body_model, "dtype", torch.float32),
        "device": getattr(body_model, "device", "cpu"),
    }
    with torch.no_grad():
        return body_model(
            global_orient=torch.zeros(1, 3, **like), body_pose=torch.zeros(1, 63, **like)
        )


def _identity_like(rot: torch.Tensor) -> torch.Tensor:
    """One batch item of identity rotations ``(1, J, 3, 3)`` for ``rot (n, J, 3, 3)``."""
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
    return eye.expand(1, rot.shape[1], 3, 3).clone()


def _quiet(fn, *args: Any, **kwargs: Any) -> Any:
    """Run smplx code with its prints and warnings swallowed.

    ``sys.stdout`` and the warnings filters are process-wide: each block saves them and puts
    them back, so two threads interleaving put back each other's suppression (stdout swallowed
    and every warning ignored for the rest of the process); hence the lock."""
    with GLOBAL_STATE, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _first(table: dict[str, Any], n: int = 3) -> str:
    """The first ``n`` entries of ``table`` for a message (its values may be long)."""
    items = list(table.items())
    more = f", ... ({len(items)} entries)" if len(items) > n else ""
    return ", ".join(f"{k}={str(v)[:40]!r}" for k, v in items[:n]) + more


def _select_vertex_ids(
    data: dict[str, Any], model_type: str, vertex_ids: dict[str, int] | None, path: Path
) -> dict[str, int] | None:
    """The vertex-joint selectors for this mesh, or None where none can be meaningful.

    Raises:
        ValueError: the ``vertex_ids`` argument is not a table of this mesh's vertex indices.
        CorruptCheckpointError: the file's own ``vertex_ids`` entry is not (naming the file).
    """
    num_v = int(np.asarray(data["v_template"]).shape[0])
    where, error = "vertex_ids", ValueError
    if vertex_ids is None and "vertex_ids" in data:
        stored = data["vertex_ids"]
        vertex_ids = (
            stored.item() if isinstance(stored, np.ndarray) and stored.ndim == 0 else stored
        )
        where, error = f"{path}: vertex_ids", CorruptCheckpointError
    if vertex_ids is None and num_v == _STANDARD_VERTICES[model_type]:
        vertex_ids = SMPLX_VERTEX_IDS["smplx" if model_type == "smplx" else "smplh"]
    if vertex_ids is None:
        return None
    if not isinstance(vertex_ids, Mapping):
        raise error(f"{where} must map joint names to vertex indices, got {type(vertex_ids)}")
    missing = [k for k in EXTRA_JOINT_NAMES if k not in vertex_ids]
    if missing:
        raise error(f"{where} lacks {missing}")
    ids = {k: vertex_ids[k] for k in EXTRA_JOINT_NAMES}
    not_int = {
        k: v
        for k, v in ids.items()
        if not isinstance(v, (int, np.integer)) or isinstance(v, (bool, np.bool_))
    }
    if not_int:
        raise error(f"{where} holds entries that are not vertex indices: {_first(not_int)}")
    bad = {k: int(v) for k, v in ids.items() if not 0 <= int(v) < num_v}
    if bad:
        raise error(f"{where} index past the mesh's {num_v} vertices: {_first(bad)}")
    return {k: int(v) for k, v in ids.items()}


def _build(
    path: Path,
    data: dict[str, Any],
    model_type: str,
    gender: str,
    *,
    num_betas: int,
    dtype: torch.dtype,
    is_standin: bool,
    vertex_ids: dict[str, int] | None,
) -> BodyModel:
    ids = _select_vertex_ids(data, model_type, vertex_ids, path)
    common: dict[str, Any] = {"num_betas": num_betas, "dtype": dtype, "gender": gender}
    # smplx always builds its vertex selector; placeholder ids (0) are replaced below
    placeholder = ids or dict.fromkeys(EXTRA_JOINT_NAMES, 0)
    common["num_betas"] = _prepare_for_smplx(data, model_type, num_betas)
    if model_type == "smplx":
        with _clean_copy(data) as copy:
            layer = _quiet(smplx.SMPLXLayer, str(copy), ext="npz", use_pca=False, **common)
    else:
        extra = {"use_pca": False, "flat_hand_mean": True} if model_type == "smplh" else {}
        layer = _quiet(
            _LAYERS[model_type],
            str(path),
            data_struct=Struct(**data),
            vertex_ids=placeholder,
            **common,
            **extra,
        )
    _keep_file_precision(layer, data)
    selector = smplx.vertex_joint_selector.VertexJointSelector(vertex_ids=placeholder)
    if ids is None:
        selector.extra_joints_idxs = selector.extra_joints_idxs[:0]
    layer.vertex_joint_selector = selector
    return BodyModel(
        layer,
        model_type=model_type,
        is_standin=is_standin,
        source=path,
        gender=gender,
        extra_joint_names=EXTRA_JOINT_NAMES if ids is not None else (),
    )


@contextlib.contextmanager
def _clean_copy(data: dict[str, Any]) -> Iterator[Path]:
    """A plain-arrays ``.npz`` of ``data`` in a private temporary folder, for smplx's SMPL-X
    layer, which reads only from a path and unpickles whatever it finds there
    (``np.load(allow_pickle=True)``): it is given only this file, written from the arrays our
    safe reader returned, never the user's file nor a cached copy another process could swap."""
    # numeric arrays only: smplx must be able to read the copy back without our classes
    # (unsigned index arrays as int64 for a torch that cannot read them: smplx's torch.tensor)
    arrays = {
        k: torch_readable(np.asarray(v))
        for k, v in data.items()
        if isinstance(v, (np.ndarray, str, int, float)) and not np.asarray(v).dtype.hasobject
    }
    with tempfile.TemporaryDirectory(prefix="advprior-smplx-") as folder:
        path = Path(folder) / "SMPLX_MODEL.npz"
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
        yield path


def load_body_model(
    path: str | Path | None = None,
    model_type: str | None = None,
    gender: str = "neutral",
    *,
    num_betas: int = 10,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    vertex_ids: dict[str, int] | None = None,
    as_smplx: bool = False,
    **smplx_kwargs: Any,
) -> BodyModel | nn.Module:
    """Load a body model.

    Args:
        path: None for the open stand-in body; else the user's model file (``.pkl`` -- original
            chumpy pickles included, no chumpy needed -- or ``.npz``) or a folder laid out as
            smplx expects (``<path>/<model_type>/<PREFIX>_<GENDER>.pkl|npz``; see
            :func:`advprior.body.files.find_model_file` for all accepted layouts).
        model_type: ``"smpl"``, ``"smplh"`` or ``"smplx"``. For a folder it picks the model
            (default ``"smpl"``); for a file it is inferred from the file and, when given, must
            match. The stand-in is always an SMPL-format body (24 joints, rigid hands): any of
            the three names is accepted for it and ``.model_type`` reports ``"smpl"``; the pose
            conventions (63- or 69-d ``body_pose``) are the same for all (not with
            ``as_smplx=True``, below).
        gender: ``"neutral"``, ``"male"`` or ``"female"``; picks the file in a folder. The
            stand-in has one neutral body and ignores it.
        num_betas: shape coefficients to use (capped by the file's; the stand-in has 10).
        device, dtype: where and how the model's buffers live.
        vertex_ids: smplx's extra-joint selectors (nose, eyes, ears, toes, heels, fingertips)
            for a non-standard mesh. Default: the file's own ``vertex_ids`` entry (the stand-in
            has one), else smplx's table for standard SMPL/SMPL-H/SMPL-X meshes, else none
            (``model_joints`` then holds only the skeleton).
        as_smplx: return the plain ``smplx`` model object instead (``smplx.SMPL``/``SMPLH``/
            ``SMPLX``, built by ``smplx.create``: ``reset_params``, ``joint_mapper``,
            ``faces_tensor``, parameters as attributes), for pipelines written against smplx.
            The stand-in comes from :func:`advprior.body.standin_folder` (SMPL's vertex
            layout, so smplx's default landmark vertices are right) and is SMPL only:
            ``model_type="smplh"`` / ``"smplx"`` without ``path`` is a ``ValueError`` here (smplx
            would build its SMPL class and drop SMPL-X's arguments). ``smplx_kwargs`` go to
            ``smplx.create`` (``batch_size``, ``joint_mapper``, ``create_*`` ...).

    Raises:
        ValueError: unknown model_type/gender, or a model_type that contradicts the file.
        ModelNotFoundError: path or the wanted file inside the folder does not exist.
        CorruptCheckpointError: the file cannot be read as an SMPL-family model.
    """
    if model_type is not None and model_type not in files.MODEL_TYPES:
        raise ValueError(f"model_type must be one of {files.MODEL_TYPES}, got {model_type!r}")
    if not isinstance(gender, str) or gender.lower() not in files.GENDERS:
        raise ValueError(f"gender must be one of {files.GENDERS}, got {gender!r}")
    if not isinstance(num_betas, int) or num_betas < 1:
        raise ValueError(f"num_betas must be a positive int, got {num_betas!r}")
    gender = gender.lower()
    if as_smplx:
        model = _load_smplx(path, model_type, gender, num_betas, dtype, vertex_ids, smplx_kwargs)
        return model.to(device) if device is not None else model
    if smplx_kwargs:
        raise TypeError(
            f"unexpected arguments {sorted(smplx_kwargs)} (smplx.create's arguments "
            "are accepted only with as_smplx=True)"
        )
    if path is None:
        model = _load_standin(num_betas, dtype)
    else:
        path, data, found = _read_user_model(path, model_type, gender)
        model = _build(
            path,
            data,
            found,
            gender,
            num_betas=num_betas,
            dtype=dtype,
            is_standin=False,
            vertex_ids=vertex_ids,
        )
    return model.to(device) if device is not None else model


def _read_user_model(
    path: str | Path, model_type: str | None, gender: str
) -> tuple[Path, dict[str, Any], str]:
    """The user's model file (a folder is searched as smplx lays it out), read by the safe
    reader: ``(file, arrays, model type found in it)``; the type must match ``model_type``."""
    path = expand_home(path)
    if path.is_dir():
        path = files.find_model_file(path, model_type or "smpl", gender)
    elif not path.exists():
        raise ModelNotFoundError(f"body model path does not exist: {path}")
    data = files.read_model_file(path)
    found = files.infer_model_type(data)
    if model_type is not None and model_type != found:
        raise ValueError(f"{path} holds an {found} model, not {model_type}")
    return path, data, found


def _load_smplx(
    path: str | Path | None,
    model_type: str | None,
    gender: str,
    num_betas: int,
    dtype: torch.dtype,
    vertex_ids: dict[str, int] | None,
    kwargs: dict[str, Any],
) -> nn.Module:
    """``smplx.create`` on the stand-in folder or the user's model, files read safely."""
    common = {"gender": gender, "num_betas": num_betas, "dtype": dtype, **kwargs}
    if path is None and model_type in ("smplh", "smplx"):
        # smplx.create with model_type="smpl" takes SMPL-X's arguments (use_pca, create_jaw_pose,
        # ...) and ignores them: an SMPL-X pipeline got smplx.SMPL, whose 69-d body_pose failed
        # deep in smplx at its first 63-d pose ("mat1 and mat2 shapes cannot be multiplied")
        raise ValueError(
            f"model_type={model_type!r} with as_smplx=True needs your own {model_type.upper()} "
            "model files (path=...): the open stand-in is an SMPL body only (24 joints, no "
            "fingers or face). Use model_type='smpl' (smplx.SMPL: body_pose (B, 69), e.g. "
            "prior.decode(z, body='smpl')), or drop as_smplx=True: a BodyModel takes 63- and "
            "69-d poses for every family"
        )
    if path is None:
        # the arrays are built here, never read back from the cache folder (a pickle)
        folder = standin.standin_folder()
        arrays = standin.smpl_layout(standin.build_standin())
        if vertex_ids is not None:
            common["vertex_ids"] = vertex_ids
        model = _quiet(
            smplx.create, str(folder), model_type="smpl", data_struct=Struct(**arrays), **common
        )
        _keep_file_precision(model, arrays, kwargs)
        return model
    path, data, found = _read_user_model(path, model_type, gender)
    # the file is resolved here; smplx.create's own `ext` would name its format a second time
    common.pop("ext", None)
    no_pca = [f"hands_components{side}" for side in "lr" if f"hands_components{side}" not in data]
    if found in ("smplh", "smplx") and no_pca and common.get("use_pca", True):
        # smplx's hand PCA (its default) would read the identity filled in below: a hand pose of
        # num_pca_comps numbers would silently pose only the first finger joints
        raise ValueError(
            f"{path} has no hand PCA ({', '.join(no_pca)}): pass use_pca=False (each hand "
            "posed by its 45 axis-angle numbers)"
        )
    common["num_betas"] = _prepare_for_smplx(data, found, num_betas)
    if found == "smplx":
        # smplx's SMPL-X reads only from a path and unpickles it: give it the private plain copy
        with _clean_copy(data) as copy:
            model = _quiet(smplx.create, str(copy), model_type="smplx", ext="npz", **common)
        if vertex_ids is not None:
            # smplx's SMPL-X layer passes its own table to its parent (a second vertex_ids
            # argument is a TypeError): its selector is rebuilt the way smplx builds it
            selector = smplx.vertex_joint_selector.VertexJointSelector(vertex_ids=vertex_ids)
            model.vertex_joint_selector = selector
    else:
        if vertex_ids is not None:
            common["vertex_ids"] = vertex_ids
        # The class, not smplx.create: create takes a file's model type from its name
        # (basicModel_neutral_lbs_... -> "basicmodel"), and the arrays come from our safe
        # reader, where smplx would unpickle the file itself.
        layer = {"smpl": smplx.SMPL, "smplh": smplx.SMPLH}[found]
        model = _quiet(layer, str(path), data_struct=Struct(**data), **common)
    _keep_file_precision(model, data, kwargs)
    return model


def _keep_file_precision(
    layer: nn.Module, data: dict[str, Any], kwargs: Mapping[str, Any] | None = None
) -> None:
    """Give a model built wider than float32 the file's own numbers.

    smplx passes every array through ``np.array(x, dtype=np.float32)`` before casting it to the
    requested dtype, so a ``float64`` model held the file's float64 template, shape and pose
    directions, regressor and skinning weights rounded to float32 (a relative 6e-8: posed
    joints off by about 2e-8 m and vertices by 7e-8 m, 1e8 times float64's resolution). The
    same buffers, sliced as smplx slices them, are set again from the file's arrays; a narrower
    dtype is left as smplx made it (rounding through float32 first changes nothing there, or
    at most an ulp for float16).
    What the caller gave smplx in ``kwargs`` instead (a ``v_template``, the kid shape
    direction of ``age="kid"``) is left alone."""
    kwargs = kwargs or {}
    dtype = layer.v_template.dtype
    if torch.finfo(dtype).eps >= torch.finfo(torch.float32).eps:
        return
    dirs = np.asarray(data["shapedirs"])
    dirs = dirs[:, :, None] if dirs.ndim == 2 else dirs
    posedirs = np.asarray(data["posedirs"])
    exact = {
        "v_template": data["v_template"],
        "shapedirs": dirs[:, :, : layer.shapedirs.shape[-1]],
        "J_regressor": data["J_regressor"],
        "posedirs": posedirs.reshape(-1, posedirs.shape[-1]).T,
        "lbs_weights": data["weights"],
    }
    if hasattr(layer, "expr_dirs"):
        # smplx: expressions follow 300 betas in a 400-column file, else the first 10
        full = layer.SHAPE_SPACE_DIM + layer.EXPRESSION_SPACE_DIM
        start = 10 if dirs.shape[-1] < full else layer.SHAPE_SPACE_DIM
        exact["expr_dirs"] = dirs[:, :, start : start + layer.expr_dirs.shape[-1]]
    if kwargs.get("v_template") is not None:
        del exact["v_template"]
    if kwargs.get("age", "adult") != "adult":
        del exact["shapedirs"]
    with torch.no_grad():
        for name, value in exact.items():
            buffer = getattr(layer, name)
            value = torch.as_tensor(np.asarray(value, dtype=np.float64)).to(dtype)
            if value.shape != buffer.shape:  # smplx sliced differently: keep its copy
                continue
            buffer.copy_(value)


# smplx's SMPL / SMPL-H keep min(num_betas, 10) shape directions of a file with fewer than 300
_SMPLX_CAP, _SMPLX_CAPPED_BELOW = 10, 300


def _prepare_for_smplx(data: dict[str, Any], model_type: str, num_betas: int) -> int:
    """Complete an SMPL-family file's arrays (in place) for smplx's classes; returns the
    ``num_betas`` to ask for: the requested number, up to the file's.

    AMASS's SMPL-H files carry no hand PCA, which smplx reads even when unused (for SMPL-X as
    well); and smplx's SMPL / SMPL-H keep only 10 shape directions of a file with fewer than 300
    (AMASS's SMPL-H has 16): zero columns up to 300 make it keep what was asked. (SMPL-X's
    columns are betas then expressions: smplx's own split is kept.)"""
    if model_type in ("smplh", "smplx"):
        for side in "lr":
            data.setdefault(f"hands_components{side}", np.eye(45))
            data.setdefault(f"hands_mean{side}", np.zeros(45))
    if model_type == "smplx":
        return num_betas
    dirs = np.asarray(data["shapedirs"])
    file_betas = int(dirs.shape[-1])
    if not _SMPLX_CAPPED_BELOW > file_betas > _SMPLX_CAP:
        return num_betas
    pad = np.zeros((*dirs.shape[:-1], _SMPLX_CAPPED_BELOW - file_betas), dtype=dirs.dtype)
    data["shapedirs"] = np.concatenate([dirs, pad], -1)
    return min(num_betas, file_betas)


def _load_standin(num_betas: int, dtype: torch.dtype) -> BodyModel:
    # Generated in memory (deterministic, ~30 ms): the cached file is written for smplx users
    # (and verified against these bytes), but never read back by us; a cache that cannot be
    # written (a read-only container or compute node) costs only that file.
    try:
        source = standin.standin_path()
    except OSError:
        source = standin.standin_file()
    return _build(
        source,
        standin.build_standin(),
        "smpl",
        "neutral",
        num_betas=num_betas,
        dtype=dtype,
        is_standin=True,
        vertex_ids=None,
    )


_DEFAULT_STANDIN: list[BodyModel] = []


def default_standin() -> BodyModel:
    """The stand-in body (float32, CPU), built once per process; do not modify it."""
    if _DEFAULT_STANDIN:
        return _DEFAULT_STANDIN[0]
    model = load_body_model()
    model.requires_grad_(False)
    # one built while torch.export traces holds fake tensors: used for that trace only
    if all(cacheable(b) for b in model.buffers()):
        _DEFAULT_STANDIN.append(model)
    return model
