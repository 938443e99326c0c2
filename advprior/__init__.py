"""advprior: an adversarially learned pose prior for SMPL, SMPL-H and SMPL-X."""

__version__ = "0.1.0"
