"""AMASS-style ``.npz``: SMPL-H ``poses (T, 156)`` or SMPL-X ``poses (T, 165)``, ``trans (T, 3)``,
``betas``, ``mocap_framerate`` (or ``mocap_frame_rate``).

Already SMPL: columns 0:3 are the root orientation and 3:66 the 21 body joints. AMASS stores
motion in a z-up world; it is rotated into SMPL's y-up frame by ``R = Rx(-90 deg)``
(``(x, y, z) -> (x, z, -y)``): ``global_orient' = R global_orient`` and, because SMPL rotates
about the pelvis, ``transl' = R (J0 + transl) - J0`` with ``J0`` the neutral rest pelvis (shape
is ignored, a few millimetres).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from advprior.data import rotmath
from advprior.data.motion import Motion, Skeleton
from advprior.errors import MotionFormatError
from advprior.skeleton import JOINT_NAMES, PARENTS, REST_JOINTS, rest_offsets

Z_UP_TO_Y_UP = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])


def is_amass(path: Path) -> bool:
    """True when the ``.npz`` holds a ``poses`` array (AMASS motion, not a shape file)."""
    try:
        with zipfile.ZipFile(path) as z:
            return "poses.npy" in z.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read_amass(path: str | Path, *, fps: float | None = None, z_up: bool = True) -> Motion:
    """Read an AMASS ``.npz`` into a :class:`Motion` on SMPL's own skeleton (``is_smpl``)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            if "poses" not in f.files:
                raise MotionFormatError(
                    f"no 'poses' array (keys: {', '.join(f.files)}); not an AMASS motion", path
                )
            poses = np.asarray(f["poses"], dtype=np.float64)
            trans = np.asarray(f["trans"], dtype=np.float64) if "trans" in f.files else None
            rate = None
            for key in ("mocap_framerate", "mocap_frame_rate"):
                if key in f.files:
                    rate = float(f[key])
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise MotionFormatError(f"cannot read npz: {err}", path) from None
    if poses.ndim != 2 or poses.shape[1] not in (156, 165) or poses.shape[0] == 0:
        raise MotionFormatError(
            f"'poses' must be (T, 156) SMPL-H or (T, 165) SMPL-X, got {poses.shape}", path
        )
    t = poses.shape[0]
    if trans is None:
        trans = np.zeros((t, 3))
    if trans.shape != (t, 3):
        raise MotionFormatError(f"'trans' must be ({t}, 3), got {trans.shape}", path)
    for key, arr in (("poses", poses), ("trans", trans)):
        bad = np.argwhere(~np.isfinite(arr))
        if len(bad):
            frame, col = (int(x) for x in bad[0])
            raise MotionFormatError(
                f"non-finite value {arr[frame, col]} in '{key}' at frame {frame}, column {col}",
                path,
            )
    fps = fps if fps is not None else rate
    if fps is None or not np.isfinite(fps) or fps <= 0:
        raise MotionFormatError("no mocap_framerate / mocap_frame_rate; pass fps=", path)
    rot = np.broadcast_to(np.eye(3), (t, 24, 3, 3)).copy()
    rot[:, :22] = rotmath.rotvec_to_matrix(poses[:, :66].reshape(t, 22, 3))
    pelvis = REST_JOINTS[0] + trans
    if z_up:
        rot[:, 0] = Z_UP_TO_Y_UP @ rot[:, 0]
        pelvis = pelvis @ Z_UP_TO_Y_UP.T
    sk = Skeleton(
        names=JOINT_NAMES,
        parents=np.asarray(PARENTS),
        offsets=rest_offsets(),
        is_end=np.zeros(24, dtype=bool),
    )
    return Motion(
        skeleton=sk,
        rotations=rot,
        root_position=pelvis,
        fps=float(fps),
        path=str(path),
        format="amass",
        is_smpl=True,
    )
