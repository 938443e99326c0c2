"""Body models: forward kinematics on SMPL's tree, the open stand-in body, real SMPL files.

Public names: :func:`forward_kinematics`, :func:`forward_kinematics_rotmat`, :func:`rest_joints`,
:func:`load_body_model`,
:class:`BodyModel`, :class:`BodyOutput`, :func:`standin_folder` (the stand-in as an SMPL model
folder for ``smplx.create``). Plotting lives in :mod:`advprior.body.plot`
(:func:`~advprior.body.plot.plot_bodies`; needs the ``viz`` extra).
"""

from advprior.body.kinematics import forward_kinematics, forward_kinematics_rotmat, rest_joints
from advprior.body.model import BodyModel, BodyOutput, load_body_model
from advprior.body.standin import standin_folder

__all__ = [
    "BodyModel",
    "BodyOutput",
    "forward_kinematics",
    "forward_kinematics_rotmat",
    "load_body_model",
    "rest_joints",
    "standin_folder",
]
