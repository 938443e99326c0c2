"""Where a fit places the keypoints of a format on a body: :class:`_Body` (the fitters' fast
route, per objective evaluation) and :func:`body_keypoints` (the same points for callers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from advprior.fitting.keypoints import (
    SURFACE_POINTS,
    KeypointFormat,
    get_format,
    mask_unobserved,
    model_joint_indices,
)
from advprior.tensors import cacheable


class _Body:
    """Keypoints in 3D ``(n, J, 3)`` and the 24 joints for body parameters, through the fastest
    route: forward kinematics for SMPL's joints; for surface keypoints, only those vertices on
    an SMPL :class:`~advprior.body.BodyModel`, else the full mesh."""

    def __init__(self, body_model: object, fmt: KeypointFormat) -> None:
        from advprior.body import forward_kinematics
        from advprior.body.model import check_body_model, rest_output

        self.model = check_body_model(body_model)
        self.fmt = fmt
        self.num_betas = int(body_model.num_betas)
        self._fk = forward_kinematics
        self.index: list[int] | None = None
        self.points: tuple[list[int], list[int]] | None = None
        if fmt.needs_surface:
            out = rest_output(body_model)
            names = tuple(getattr(body_model, "extra_joint_names", SURFACE_POINTS))
            self.index = model_joint_indices(
                fmt, body_model.model_type, out.model_joints.shape[1], names
            )
            # An SMPL BodyModel can skin just the surface points (BodyModel.posed_points); its
            # model_joints are SMPL's 24 joints, then one vertex per extra joint name.
            extra = getattr(getattr(body_model, "layer", None), "vertex_joint_selector", None)
            extra = getattr(extra, "extra_joints_idxs", None)
            first = out.model_joints.shape[1] - (len(extra) if extra is not None else 0)
            fast = hasattr(body_model, "posed_points") and body_model.model_type == "smpl"
            if fast and extra is not None and first == 24:
                vertex = [int(extra[i - first]) for i in self.index if i >= first]
                slots = [i if i < first else first + vertex.index(int(extra[i - first]))
                         for i in self.index]  # fmt: skip
                self.points = (vertex, slots)

    def _on(self, name: str, values: Sequence[int], device: torch.device) -> Tensor:
        """The index list ``values`` as a tensor on ``device``, made once per device: indexing
        a GPU tensor by a Python list copies the list to the GPU at every call (the objective
        calls this at every evaluation), and the stream waits for each copy."""
        kept = self.__dict__.setdefault("_indices", {})
        key = (name, device)
        value = None if torch.jit.is_tracing() else kept.get(key)
        if value is None:
            with torch.inference_mode(False):
                value = torch.tensor(list(values), dtype=torch.long, device=device)
            if cacheable(value):
                kept[key] = value
        return value

    def __call__(
        self, go: Tensor, pose: Tensor, betas: Tensor, transl: Tensor
    ) -> tuple[Tensor, Tensor]:
        # (n, 1, 3), smplx's per-joint layout, reads one way only: as (n, 3) with n = 3 the
        # body functions would test at every objective evaluation whether the 3 rotation
        # vectors also make a rotation matrix (a device sync; the warning is for callers' data)
        orient = go[:, None]
        if self.index is None:
            joints = self._fk(orient, pose, betas, transl, body_model=self.model)
            return joints[:, self._on("sources", self.fmt.body_sources, joints.device)], joints
        if self.points is not None:
            vertex, slots = self.points
            points, joints = self.model.posed_points(
                orient, pose, vertex, betas=betas, transl=transl
            )
            keypoints = torch.cat([joints, points], 1)[:, self._on("slots", slots, joints.device)]
            return keypoints.to(go.dtype), joints.to(go.dtype)
        out = self.model(global_orient=orient, body_pose=pose, betas=betas, transl=transl)
        index = self._on("index", self.index, out.model_joints.device)
        return out.model_joints[:, index].to(go.dtype), out.joints.to(go.dtype)


def body_keypoints(
    global_orient: Tensor,
    body_pose: Tensor,
    betas: Tensor | None = None,
    transl: Tensor | None = None,
    *,
    body_model: object | None = None,
    keypoint_format: str | KeypointFormat = "smpl24",
) -> tuple[Tensor, Tensor]:
    """Where :func:`fit_keypoints` places the keypoints of ``keypoint_format`` on a body:
    ``(keypoints3d (B, K, 3), joints (B, 24, 3))`` in metres, world frame, for
    ``global_orient (B, 3)``, ``body_pose (B, 63)``, ``betas (B, num_betas)`` (default 0) and
    ``transl (B, 3)`` (default 0). Any number of leading dimensions ``(...)`` in place of
    ``(B,)``, e.g. :func:`fit_sequence`'s ``(B, T)`` (they failed with an ``IndexError``): the
    frames are posed as one flat batch. SMPL joints come from forward kinematics, surface
    points (nose, eyes, ears, toes, heels) from the body model's mesh vertices; default body:
    the stand-in. Project them with the camera to get the fitter's own 2D keypoints of this
    body. Keypoints with no counterpart on the body (BODY_25B's HeadTop) are NaN."""
    from advprior.body.model import check_pose

    fmt = get_format(keypoint_format)
    # read (and checked, an ambiguous (3, 3) warned about) here, where the caller's data comes
    # in: _Body passes smplx's unambiguous (n, 1, 3) on
    global_orient, body_pose = check_pose(global_orient, body_pose)
    lead = torch.broadcast_shapes(global_orient.shape[:-1], body_pose.shape[:-1])
    global_orient = global_orient.expand(*lead, 3)
    body_pose = body_pose.expand(*lead, body_pose.shape[-1])
    if body_model is None:
        from advprior.body import load_body_model

        body_model = load_body_model(device=global_orient.device)
    like = {"dtype": global_orient.dtype, "device": global_orient.device}
    if betas is None:
        betas = torch.zeros(*lead, int(body_model.num_betas), **like)
    if transl is None:
        transl = torch.zeros(*lead, 3, **like)
    if len(lead) > 1:
        # _Body takes (n, .) rows: the frames flat, then back to the caller's dimensions
        rows = [x.expand(*lead, x.shape[-1]).reshape(-1, x.shape[-1]) for x in (betas, transl)]
        go, pose = global_orient.reshape(-1, 3), body_pose.reshape(-1, body_pose.shape[-1])
        points, joints = _Body(body_model, fmt)(go, pose, *rows)
        points, joints = points.unflatten(0, lead), joints.unflatten(0, lead)
    else:
        points, joints = _Body(body_model, fmt)(global_orient, body_pose, betas, transl)
    return mask_unobserved(points, fmt), joints
