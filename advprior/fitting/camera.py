"""A pinhole camera in OpenCV's convention, shared by every frame of a fit."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from advprior.tensors import cacheable

# Points closer than this to the image plane are projected as if at this depth (metres), so a
# body that an optimiser pushes behind the camera gives large but finite residuals.
MIN_DEPTH = 1e-2


def real_number(value: object) -> float | None:
    """``float(value)`` for a real scalar (Python, or numpy's: keypoint arithmetic on float32
    arrays gives ``np.float32``, which is not a ``float``), else None; bools are not numbers."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def whole_number(value: object) -> int | None:
    """``int(value)`` for an integer (Python's, or numpy's: ``np.int64`` from array arithmetic
    or indexing is not an ``int``), else None; bools are not numbers."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def positive_number(value: object) -> float | None:
    """:func:`real_number` of ``value`` if it is finite and positive, else None."""
    number = real_number(value)
    return number if number is not None and math.isfinite(number) and number > 0 else None


def _pair(value: object, name: str) -> tuple[float, float]:
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"{name} must be a number or a pair (x, y) of numbers, got {value!r}")
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    try:
        items = [float(v) for v in np.asarray(value, dtype=float).reshape(-1)]
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a number or a pair (x, y) of numbers") from exc
    except OverflowError:  # an integer beyond float64 (JSON has no bound on them)
        raise ValueError(f"{name} must be finite, got a number beyond float64's range") from None
    # one number of any kind (np.float32(f), a 0-d tensor, [f]) is both axes: K[0, 0] of a
    # float32 K is not a Python float
    if len(items) == 1:
        items = items * 2
    if len(items) != 2:
        hint = (
            "; for a 3x3 intrinsic matrix K use PinholeCamera.from_matrix(K)"
            if len(items) == 9
            else ""
        )
        raise ValueError(f"{name} must be a number or a pair (x, y), got {len(items)} values{hint}")
    pair = (items[0], items[1])
    if not all(math.isfinite(v) for v in pair):
        raise ValueError(f"{name} must be finite, got {pair}")
    return pair


#: Largest |skew| (K[0, 1]) accepted by :meth:`PinholeCamera.from_matrix`, relative to fx:
#: calibrations (OpenCV, COLMAP's pinhole models) write exactly 0; a real skew cannot be
#: represented by (focal, center), so it is refused rather than dropped.
MAX_SKEW = 1e-6


#: How far a camera ``rotation`` may be from orthonormal (``max |R R^T - I|``) and still be read
#: as its nearest rotation: float32 round-trips (OpenCV, COLMAP, JSON with few digits) are off
#: by 1e-7 to 1e-4; a matrix off by more is something else (a scaled matrix, ``K @ R``).
CAMERA_ROTATION_TOLERANCE = 1e-2

# Shapes of camera matrices other libraries hand over -> what to pass.
_ROTATION_SHAPE_HINTS = {
    (3,): "; an axis-angle (OpenCV rvec)? pass "
    "advprior.rotations.axis_angle_to_rotmat(torch.as_tensor(rvec)), the matrix cv2.Rodrigues "
    "gives",
    (3, 1): "; an OpenCV rvec? pass advprior.rotations.axis_angle_to_rotmat("
    "torch.as_tensor(rvec).reshape(3)), the matrix cv2.Rodrigues gives",
    (3, 4): "; an [R | t] extrinsic? pass rotation=Rt[:, :3]: the fit's world frame then has its "
    "origin at the camera centre (add -R^T t to its transl to return to yours)",
    (4, 4): "; a 4x4 world-to-camera transform? pass rotation=T[:3, :3]: the fit's world frame "
    "then has its origin at the camera centre (add -R^T T[:3, 3] to its transl)",
    (1, 3, 3): "; one rotation with a batch axis? pass rotation[0]",
}

_T_HINT = (
    "a camera translation is not used: the fit's world has its origin at the camera centre "
    "(add -R^T t to its transl and joints to return to yours); leave it out"
)

#: Keys of a camera dict that other tools use for what :meth:`PinholeCamera.from_dict` reads
#: under another name, or does not read -> what to do. Unknown keys are otherwise ignored
#: (files carry notes such as the image size), so ``{"K", "R", "t"}`` (OpenCV's names) lost
#: its rotation without a word and the fit ran in the camera's frame instead of the world's.
_CAMERA_KEY_HINTS = {
    "R": 'name the world-to-camera rotation "rotation"',
    "rvec": 'pass the rotation as a (3, 3) matrix under "rotation" (cv2.Rodrigues(rvec))',
    "rotation_matrix": 'name the world-to-camera rotation "rotation"',
    "t": _T_HINT,
    "T": _T_HINT,
    "tvec": _T_HINT,
    "translation": _T_HINT,
}


#: Largest accepted ratio of a person's extent in the image (the larger side of the visible
#: keypoints' box; median over the frames) to the focal length, i.e. of the person's extent to
#: their distance from the camera. A standing person filling a 4K frame's height through a wide
#: lens (focal length ~1000 px) is ~2; 3 is a whole body seen across 110 degrees. A focal
#: length given in millimetres (24-85) instead of pixels gives 4-15 for a 300 px person, and
#: the fit then placed the body a few decimetres from the camera, bent by the perspective.
MAX_SPAN_FOCALS = 3.0


def focal_length_reason(
    keypoints: object, confidence: object, focals: Sequence[float]
) -> str | None:
    """Why the focal lengths look like millimetres, or None: the median frame's visible
    keypoints span more than :data:`MAX_SPAN_FOCALS` of its focal length. ``keypoints (B, J, 2)``
    pixels, ``confidence (B, J)`` (numpy or CPU tensors; NaN or confidence 0: not seen),
    ``focals`` one focal length per frame (the smaller of fx, fy). The median, because one false
    detection spanning the image is not the camera's fault."""
    kp, conf = np.asarray(keypoints, dtype=np.float64), np.asarray(confidence, dtype=np.float64)
    seen = (conf > 0) & np.isfinite(kp).all(-1)
    rows = seen.sum(-1) >= 2
    if not rows.any():
        return None
    low = np.where(seen[..., None], kp, np.inf).min(1)
    high = np.where(seen[..., None], kp, -np.inf).max(1)
    ratio = ((high - low).max(-1) / np.asarray(focals, dtype=np.float64))[rows]
    middle = float(np.sort(ratio)[(len(ratio) - 1) // 2])
    if middle <= MAX_SPAN_FOCALS:
        return None
    t = int(np.flatnonzero(rows)[np.argsort(ratio)[(len(ratio) - 1) // 2]])
    f = float(focals[t])
    return (
        f"the keypoints span {middle * f:.0f} px (median frame), {middle:.1f} times the focal "
        f"length {f:g} px: a person seen across {math.degrees(2 * math.atan(middle / 2)):.0f} "
        "degrees; a focal length in mm? In pixels it is f_mm * image width (px) / sensor width "
        "(mm), e.g. 50 mm on a 36 mm wide sensor, 1920 px wide: 2667 px"
    )


def check_rotation(rotation: object, name: str = "rotation") -> np.ndarray:
    """A camera rotation as given by a user (array-like or tensor ``(3, 3)``) -> float64
    ``(3, 3)`` proper rotation, projected as :func:`_nearest_rotation` says; TypeError or
    ValueError naming ``name`` and, for the shapes other libraries hand over, what to pass."""
    if isinstance(rotation, Tensor):
        rotation = rotation.detach().cpu().numpy()
    try:
        rot = np.asarray(rotation, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a (3, 3) array of numbers") from exc
    except OverflowError:  # an integer beyond float64
        raise ValueError(f"{name} contains a number beyond float64's range") from None
    if rot.shape != (3, 3):
        hint = _ROTATION_SHAPE_HINTS.get(rot.shape, "")
        raise ValueError(f"{name} must have shape (3, 3), got {rot.shape}{hint}")
    if not np.isfinite(rot).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return _nearest_rotation(rot, name)


def _nearest_rotation(rot: np.ndarray, name: str = "rotation") -> np.ndarray:
    """``rot (3, 3)`` projected to the nearest rotation (``U V^T`` of its SVD) when it is off
    orthonormal by rounding or a little more, up to :data:`CAMERA_ROTATION_TOLERANCE`; a
    rotation to 1e-12 is kept as given. ValueError for a reflection or a matrix further off.

    Why: a matrix accepted as it came (up to 1e-4 before) scaled and sheared every projected
    point by its error; one off by 2e-4 (a float32 matrix written with 4 digits) was refused.
    """
    det = float(np.linalg.det(rot))
    off = float(np.abs(rot @ rot.T - np.eye(3)).max())
    if det <= 0:
        raise ValueError(
            f"{name} must be a proper rotation (det R = +1), got det R = {det:.3g}: a "
            "reflection (a mirrored or left-handed frame, e.g. y flipped without z) has no "
            "nearest rotation; flip one more axis or convert the frame first"
        )
    if off > CAMERA_ROTATION_TOLERANCE:
        sv = np.linalg.svd(rot, compute_uv=False)
        raise ValueError(
            f"{name} must be a proper rotation (R R^T = I), got max |R R^T - I| = {off:.3g} "
            f"(singular values {np.round(sv, 4).tolist()}; up to {CAMERA_ROTATION_TOLERANCE} it "
            "is projected to the nearest rotation): a scaled matrix such as K @ R, or not a "
            "rotation"
        )
    if off <= 1e-12:
        return rot
    u, _, vt = np.linalg.svd(rot)
    return u @ vt


class PinholeCamera:
    """Pinhole camera, OpenCV convention: x right, y down, looking down +z; pixels.

    A world point ``X`` (metres, the body model's frame) is seen at camera coordinates
    ``X_c = R X`` (the camera centre is the world origin; the body's own translation places it in
    front of the camera) and at pixel ``u = fx X_c.x / X_c.z + cx``, ``v = fy X_c.y / X_c.z + cy``.

    Args:
        focal: ``(fx, fy)`` in pixels, or one number for both; must be positive.
        center: principal point ``(cx, cy)`` in pixels.
        rotation: optional known world-to-camera rotation ``R`` ``(3, 3)`` (orthonormal, det +1;
            within :data:`CAMERA_ROTATION_TOLERANCE` of that it is stored as its nearest
            rotation, beyond it refused); identity when ``None``. SMPL's frame is y up, so
            with the identity an upright body appears upside down unless its global
            orientation turns it; the fit's initialisation accounts for that.
    """

    def __init__(
        self,
        focal: float | Sequence[float],
        center: Sequence[float],
        rotation: object | None = None,
    ) -> None:
        fx, fy = _pair(focal, "focal")
        if fx <= 0 or fy <= 0:
            raise ValueError(f"focal length must be positive (pixels), got ({fx}, {fy})")
        self.focal = (fx, fy)
        self.center = _pair(center, "center")
        self.rotation = np.eye(3) if rotation is None else check_rotation(rotation)

    def __repr__(self) -> str:
        return f"PinholeCamera(focal={self.focal}, center={self.center})"

    def scaled(self, factor: float) -> PinholeCamera:
        """The same camera for the image resized by ``factor`` (focal length and principal
        point times ``factor``; the rotation is kept)."""
        value = positive_number(factor)
        if value is None:
            raise ValueError(f"factor must be a positive number, got {factor!r}")
        factor = value
        fx, fy = self.focal
        cx, cy = self.center
        return PinholeCamera(
            (fx * factor, fy * factor), (cx * factor, cy * factor), rotation=self.rotation
        )

    @classmethod
    def from_dict(cls, data: dict) -> PinholeCamera:
        """From ``{"focal": [fx, fy], "center": [cx, cy], "rotation": [[...]] (optional)}``,
        or ``{"K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], "rotation": ...}``
        (:meth:`from_matrix`). Keys other tools use for the extrinsics (``"R"``, ``"t"``,
        ``"rvec"``, ...) are refused with what to pass: they are not read, and dropping a
        rotation silently would fit in another frame."""
        if isinstance(data, dict):
            misnamed = [k for k in _CAMERA_KEY_HINTS if k in data]
            if misnamed:
                key = misnamed[0]
                raise ValueError(f"a camera's {key!r} is not read: {_CAMERA_KEY_HINTS[key]}")
        if isinstance(data, dict) and "K" in data and "focal" not in data:
            return cls.from_matrix(data["K"], data.get("rotation"))
        if not isinstance(data, dict) or "focal" not in data or "center" not in data:
            raise ValueError(
                'a camera needs "focal" and "center" keys (or "K", a 3x3 intrinsic matrix), '
                'e.g. {"focal": [1000, 1000], "center": [512, 512]}'
            )
        return cls(data["focal"], data["center"], data.get("rotation"))

    @classmethod
    def from_matrix(cls, matrix: object, rotation: object | None = None) -> PinholeCamera:
        """From an intrinsic matrix ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (pixels;
        numpy, torch or nested lists) and an optional world-to-camera ``rotation``.

        Raises ``ValueError`` for another shape, NaN/Inf, a last row other than ``[0, 0, 1]``,
        ``K[1, 0] != 0`` or a skew ``K[0, 1]`` (a pinhole without skew cannot represent it).
        """
        if isinstance(matrix, Tensor):
            matrix = matrix.detach().cpu().numpy()
        try:
            k = np.asarray(matrix, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError("the intrinsic matrix must be a (3, 3) array of numbers") from exc
        except OverflowError:  # an integer beyond float64
            raise ValueError(
                "the intrinsic matrix K contains a number beyond float64's range"
            ) from None
        if k.shape != (3, 3):
            hint = {
                (3, 4): "; a projection matrix P = K [R | t]? split it (cv2.decomposeProjection"
                "Matrix(P) gives K, R and the camera centre) and pass K and rotation=R",
                (4, 4): "; a 4x4 projection (PyTorch3D's or OpenGL's, in NDC, not pixels)? "
                "pass the pixel intrinsics [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]",
            }.get(k.shape, "")
            raise ValueError(f"the intrinsic matrix K must have shape (3, 3), got {k.shape}{hint}")
        if not np.isfinite(k).all():
            raise ValueError("the intrinsic matrix K contains NaN or Inf")
        if not np.array_equal(k[2], [0.0, 0.0, 1.0]) or k[1, 0] != 0.0:
            raise ValueError(
                "the intrinsic matrix K must be [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with last "
                f"row [0, 0, 1], got {k.tolist()}"
            )
        if abs(k[0, 1]) > MAX_SKEW * abs(k[0, 0]):
            raise ValueError(
                f"the intrinsic matrix K has skew K[0, 1] = {k[0, 1]:g}; PinholeCamera has no "
                "skew (undistort/rectify the keypoints to a skew-free camera first)"
            )
        return cls((k[0, 0], k[1, 1]), (k[0, 2], k[1, 2]), rotation)

    def to_dict(self) -> dict:
        """JSON-ready ``{"focal", "center", "rotation"}``."""
        return {
            "focal": list(self.focal),
            "center": list(self.center),
            "rotation": self.rotation.tolist(),
        }

    def _tensors(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(R (3, 3), focal (2,), center (2,))`` with ``like``'s dtype and device, kept for
        the last dtype and device (and these values: the attributes may be reassigned). A fit
        projects at every evaluation of its objective, and each tensor made from host numbers
        is a copy a GPU stream waits for."""
        key = (like.dtype, like.device, self.focal, self.center, self.rotation.tobytes())
        kept = None if torch.jit.is_tracing() else self.__dict__.get("_on_device")
        if kept is not None and kept[0] == key:
            return kept[1]
        # outside inference mode, so that they also serve calls that autograd records
        with torch.inference_mode(False):
            made = (
                torch.as_tensor(self.rotation, dtype=like.dtype, device=like.device),
                torch.tensor(self.focal, dtype=like.dtype, device=like.device),
                torch.tensor(self.center, dtype=like.dtype, device=like.device),
            )
        if cacheable(made[0]):
            self.__dict__["_on_device"] = (key, made)
        return made

    def __getstate__(self) -> dict:
        # a copy or a pickle (another process) makes its own tensors where it needs them
        return {k: v for k, v in self.__dict__.items() if k != "_on_device"}

    def rotation_tensor(self, like: Tensor) -> Tensor:
        """``R`` ``(3, 3)`` with ``like``'s dtype and device."""
        return self._tensors(like)[0]

    def to_camera(self, points: Tensor) -> Tensor:
        """World points ``(..., 3)`` to camera coordinates ``(..., 3)`` (metres)."""
        return points @ self.rotation_tensor(points).T

    def project(self, points: Tensor) -> Tensor:
        """World points ``(..., 3)`` (metres) to pixels ``(..., 2)``."""
        cam = self.to_camera(points)
        depth = cam[..., 2:].clamp(min=MIN_DEPTH)
        _, f, c = self._tensors(cam)
        return cam[..., :2] / depth * f + c

    def backproject(self, pixels: Tensor, depth: Tensor) -> Tensor:
        """Pixels ``(..., 2)`` at camera depth ``(...)`` (metres) to world points ``(..., 3)``."""
        _, f, c = self._tensors(pixels)
        xy = (pixels - c) / f * depth[..., None]
        cam = torch.cat([xy, depth[..., None]], -1)
        return cam @ self.rotation_tensor(pixels)
