"""SMPLify-style fitting of SMPL-family bodies to 2D keypoints, with any pose prior.

Public names: :func:`fit_keypoints`, :func:`fit_sequence` (clips, with temporal terms),
:func:`auto_pixel_scale` (the scale ``pixel_scale="auto"`` picks), :class:`Smoothness`,
:class:`PinholeCamera`, :class:`FitResult`, :data:`KEYPOINT_FORMATS`; the batched optimiser
is :func:`advprior.lbfgs.minimize_lbfgs`.
"""

from advprior.fitting.camera import PinholeCamera
from advprior.fitting.keypoints import KEYPOINT_FORMATS, KeypointFormat
from advprior.fitting.result import FitResult
from advprior.fitting.sequence import Smoothness, fit_sequence
from advprior.fitting.smplify import auto_pixel_scale, fit_keypoints

__all__ = [
    "fit_keypoints",
    "fit_sequence",
    "auto_pixel_scale",
    "Smoothness",
    "PinholeCamera",
    "FitResult",
    "KEYPOINT_FORMATS",
    "KeypointFormat",
]
