"""Drop-in compatibility with VPoser (human_body_prior v1 and v2) and SMPLify pipelines.

- :func:`load_vposer` (VPoser v1) and :func:`load_model` (VPoser v2): change the import line and
  the checkpoint name; the embedding goes through a :class:`LatentChart` (``z = 0`` a typical
  pose, unit-variance latents), see ``docs/compat.md``.
- SMPLify's ``gmm_08.pkl``: :meth:`advprior.baselines.GMMPrior.export_smplify`.
- An SMPL model folder for ``smplx.create``: :func:`advprior.body.standin_folder`.
"""

from advprior.compat.chart import LatentChart, chart_for
from advprior.compat.vposer import VPoserSettings, VPoserV1, VPoserV2, load_model, load_vposer

__all__ = [
    "LatentChart",
    "VPoserSettings",
    "VPoserV1",
    "VPoserV2",
    "chart_for",
    "load_model",
    "load_vposer",
]
