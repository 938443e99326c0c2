"""A fitted clip as an AMASS-style ``.npz``, the layout AMASS viewers, motion datasets and
Blender SMPL add-ons read (:meth:`advprior.fitting.FitResult.to_amass`).

The file: ``poses (N, W)`` axis-angle, radians, the root orientation then the model's joints in
its own order (W = 72 SMPL, 156 SMPL-H, 165 SMPL-X; joints a fit does not estimate -- SMPL's
two hand joints, fingers, jaw, eyes -- are zeros: flat hands, a closed jaw, eyes ahead, as AMASS
readers pose zeros), ``trans (N, 3)`` metres, ``betas (num_betas,)``, ``gender`` (a numpy
string), the frame rate under both of AMASS's keys (``mocap_framerate`` of its SMPL-H release,
``mocap_frame_rate`` of its SMPL-X one), ``surface_model_type`` and the split arrays of AMASS's
SMPL-X release: ``root_orient (N, 3)``, ``pose_body (N, 63)``, and with SMPL-H and SMPL-X
``pose_hand (N, 90)``, with SMPL-X ``pose_jaw (N, 3)`` and ``pose_eye (N, 6)``. Every array is
a plain numeric or string array (``np.load(..., allow_pickle=False)`` reads it).

The world: a fit lives in the camera frame (OpenCV: x right, y down, z forward); AMASS's world
is z up. The export turns the world by ``Q``: z up, ``(x, y, z) -> (x, z, -y)`` (the camera's
right stays x, its forward becomes +y, its up +z; ``Rx(-90 deg)``), or y up,
``(x, y, z) -> (x, -y, -z)`` (``Rx(180 deg)``). For a fit through a camera with a ``rotation``
(world to camera) the fit's world is first taken into that camera's frame.

Why the translation is not simply ``Q transl``: SMPL turns the body about its rest pelvis
``J0(betas)``: a point ``x`` of the body posed below the root is placed at
``R (x - J0) + J0 + transl``. Turning the world by ``Q`` gives
``Q R (x - J0) + Q (J0 + transl)``, which is SMPL's form again with ``R' = Q R`` and
``transl' = Q (J0 + transl) - J0 = Q p - J0``, ``p`` the posed pelvis. ``Q transl`` alone would
move the body by ``(Q - I) J0``. ``J0`` is read from the fit itself (its ``joints[..., 0, :]``
minus its ``transl``: the root joint is never moved by the pose), so no body model is needed;
with one shape per clip (the frames' mean, or the first frame's) the rest pelvis is that of the
written ``betas`` (rest joints are linear in the shape coefficients), and every frame's pelvis
stays where the fit put it.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advprior.fileio import save_npz_atomic
from advprior.fitting.camera import check_rotation, positive_number

if TYPE_CHECKING:
    from advprior.fitting.result import FitResult

#: The camera frame (x right, y down, z forward) turned into each output world, by its up axis.
CAMERA_TO_WORLD: dict[str, np.ndarray] = {
    "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
    "y": np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]),
}

#: Joints (root included) of each model type's ``poses``, and the default ``betas`` count (16:
#: AMASS's SMPL-H and SMPL-X releases; 10: SMPL's own).
MODEL_JOINTS = {"smpl": 24, "smplh": 52, "smplx": 55}
DEFAULT_NUM_BETAS = {"smpl": 10, "smplh": 16, "smplx": 16}
GENDERS = ("neutral", "male", "female")
SHAPES = ("mean", "first")


def _rotation(value: Any) -> np.ndarray:
    """A (3, 3) proper rotation from an array-like or a camera's ``rotation``."""
    value = getattr(value, "rotation", value)
    if isinstance(value, str):  # np.asarray reads a string as a 0-d array, not a TypeError
        raise TypeError("camera_rotation must be a (3, 3) rotation or a PinholeCamera")
    return check_rotation(value, "camera_rotation")


def world_rotation(up: str = "z", camera_rotation: Any = None) -> np.ndarray:
    """``Q`` (3, 3): the fit's world to the export's (:data:`CAMERA_TO_WORLD` ``[up]`` after the
    camera's world-to-camera ``camera_rotation``, when given)."""
    if up not in CAMERA_TO_WORLD:
        raise ValueError(f"up must be one of {', '.join(map(repr, CAMERA_TO_WORLD))}, got {up!r}")
    turn = CAMERA_TO_WORLD[up]
    return turn if camera_rotation is None else turn @ _rotation(camera_rotation)


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().double().numpy() if hasattr(x, "detach") else np.asarray(x, float)


def _clip_arrays(result: FitResult, clip: int | None) -> dict[str, np.ndarray]:
    """The clip's ``(N, ...)`` float64 arrays: body_pose, global_orient, transl, betas, pelvis."""
    names = ("body_pose", "global_orient", "transl", "betas")
    arrays = {n: _numpy(getattr(result, n)) for n in names}
    arrays["pelvis"] = _numpy(result.joints)[..., 0, :]
    ndim = arrays["body_pose"].ndim
    if ndim == 3:  # fit_sequence of B clips: (B, T, ...)
        clips = arrays["body_pose"].shape[0]
        if clip is None:
            if clips != 1:
                raise ValueError(
                    f"this fit holds {clips} clips (fit_sequence of (B, T, J, 2) keypoints, "
                    f"info['clips'] = {clips}): choose one with clip=0 .. {clips - 1}"
                )
            clip = 0
    elif ndim == 2:  # one clip (fit_sequence of (T, J, 2)) or per-frame fits in their order
        clips = 1
    else:
        raise ValueError(f"body_pose has shape {arrays['body_pose'].shape}: not a fit's")
    if clip is not None:
        number = None if isinstance(clip, bool) else clip
        if not isinstance(number, (int, np.integer)) or not 0 <= number < clips:
            raise ValueError(f"clip must be an int in [0, {clips}) for this fit, got {clip!r}")
        if ndim == 3:
            arrays = {n: a[int(number)] for n, a in arrays.items()}
    if arrays["body_pose"].shape[0] == 0:
        raise ValueError("the fit has no frames: nothing to export")
    for name, a in arrays.items():
        if not np.isfinite(a).all():
            raise ValueError(f"the fit's {name} holds NaN or Inf: not exported")
    # a FitResult built by hand from poses in degrees would be written as garbage radians (a
    # fit's own poses are decoded or optimised in radians); the root orientation is not judged
    # (an unwrapped spin is long in radians too)
    import torch

    from advprior.rotations import degrees_reason

    body = torch.from_numpy(arrays["body_pose"]).unflatten(-1, (-1, 3))
    reason = degrees_reason(body, "the fit's body_pose")
    if reason is not None:
        raise ValueError(f"{reason}; not exported")
    return arrays


def _betas(betas: np.ndarray, count: int) -> np.ndarray:
    """``betas`` zero-padded or cut to ``count`` (a warning when a cut drops a non-zero one)."""
    if betas.shape[0] >= count:
        dropped = betas[count:]
        if dropped.size and np.abs(dropped).max() > 0:
            warnings.warn(
                f"the fit has {betas.shape[0]} shape coefficients; the file keeps the first "
                f"{count} (largest dropped |beta| {np.abs(dropped).max():.3g}); pass num_betas="
                f"{betas.shape[0]} to keep them all",
                stacklevel=5,  # the caller of FitResult.to_amass
            )
        return betas[:count].copy()
    return np.concatenate([betas, np.zeros(count - betas.shape[0])])


def amass_arrays(
    result: FitResult,
    *,
    fps: float | None = None,
    gender: str = "neutral",
    up: str = "z",
    camera_rotation: Any = None,
    clip: int | None = None,
    shape: str = "mean",
    model_type: str = "smplh",
    num_betas: int | None = None,
) -> dict[str, np.ndarray]:
    """The arrays :meth:`FitResult.to_amass` writes (same arguments, no file)."""
    from advprior.data import rotmath

    info = result.info or {}
    recorded = info.get("fps")
    if fps is None:
        fps = recorded
        if fps is None:
            raise ValueError(
                "fps is required: the fit records no frame rate (fit_sequence(..., fps=) "
                "records it); pass to_amass(..., fps=<the video's frames per second>)"
            )
    rate = positive_number(fps)
    if rate is None:
        raise ValueError(f"fps must be a positive, finite frame rate, got {fps!r}")
    if recorded is not None and not math.isclose(rate, float(recorded), rel_tol=1e-9):
        raise ValueError(
            f"fps={rate:g} but the clip was fitted at fps={float(recorded):g} (info['fps']): "
            "pass the rate the clip was fitted at"
        )
    if not isinstance(gender, str) or gender.lower() not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
    gender = gender.lower()
    if model_type not in MODEL_JOINTS:
        raise ValueError(f"model_type must be one of {tuple(MODEL_JOINTS)}, got {model_type!r}")
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, got {shape!r}")
    if num_betas is None:
        num_betas = DEFAULT_NUM_BETAS[model_type]
    if isinstance(num_betas, bool) or not isinstance(num_betas, (int, np.integer)) or num_betas < 1:
        raise ValueError(f"num_betas must be a positive int, got {num_betas!r}")
    if camera_rotation is None and isinstance(info.get("camera"), dict):
        camera_rotation = info["camera"].get("rotation")  # recorded by `advprior fit`
    q = world_rotation(up, camera_rotation)

    a = _clip_arrays(result, clip)
    n = a["body_pose"].shape[0]
    # one shape for the clip; its rest pelvis J0 is the same combination of the frames' rest
    # pelvises (pelvis - transl), rest joints being linear in betas
    rest_pelvis = a["pelvis"] - a["transl"]
    if shape == "mean":
        betas, j0 = a["betas"].mean(0), rest_pelvis.mean(0)
    else:
        betas, j0 = a["betas"][0], rest_pelvis[0]
    root = rotmath.matrix_to_rotvec(q @ rotmath.rotvec_to_matrix(a["global_orient"]))
    trans = a["pelvis"] @ q.T - j0

    poses = np.zeros((n, 3 * MODEL_JOINTS[model_type]))
    poses[:, :3] = root
    poses[:, 3:66] = a["body_pose"]
    out: dict[str, np.ndarray] = {
        "poses": poses,
        "trans": trans,
        "betas": _betas(betas, int(num_betas)),
        "gender": np.array(gender),
        "mocap_framerate": np.array(rate),
        "mocap_frame_rate": np.array(rate),
        "surface_model_type": np.array(model_type),
        "root_orient": root.copy(),
        "pose_body": a["body_pose"].copy(),
    }
    if model_type == "smplh":
        out["pose_hand"] = poses[:, 66:156].copy()
    elif model_type == "smplx":
        # SMPL-X's order: jaw, left eye, right eye, then the hands
        out["pose_jaw"] = poses[:, 66:69].copy()
        out["pose_eye"] = poses[:, 69:75].copy()
        out["pose_hand"] = poses[:, 75:165].copy()
    return out


def write_amass(result: FitResult, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write :func:`amass_arrays` of ``result`` to ``path`` atomically; returns it."""
    arrays = amass_arrays(result, **kwargs)
    return save_npz_atomic(Path(path), arrays)
