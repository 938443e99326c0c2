"""Motion-capture importers, retargeting to SMPL, and the pose dataset file.

Needs only numpy, torch and roma (no training extras, no scipy). Public names:
:func:`load_motion`, :class:`Motion` (``.to_smpl(fps=30)``), :class:`SMPLMotion`,
:func:`build_dataset`, :func:`load_dataset`, :class:`PoseData`, :func:`bone_direction_errors`.
"""

from advprior.data.dataset import PoseData, build_dataset, load_dataset, require_dataset_file
from advprior.data.loader import load_motion
from advprior.data.motion import Motion, Skeleton, SMPLMotion
from advprior.data.quality import bone_direction_errors

__all__ = [
    "Motion",
    "PoseData",
    "SMPLMotion",
    "Skeleton",
    "bone_direction_errors",
    "build_dataset",
    "load_dataset",
    "require_dataset_file",
    "load_motion",
]
