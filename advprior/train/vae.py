"""Training of the VPoser-style VAE baseline on the same data as the GAN.

Loss, following VPoser v2 (human_body_prior, V02_05 settings):

- ``0.005 * mean_b sum_d KL(q(z|x) || N(0, I))``;
- reconstruction ``4 * L1`` of body positions in metres. VPoser takes the L1 over the SMPL-X mesh
  vertices; we take it over the 24 joints of the stand-in body (``advprior.body``), because
  there is no licensed mesh here and FK is much cheaper;
- during the first 15% of the steps (VPoser: the first 15 of 100 epochs) also
  ``2 * geodesic`` rotation error and ``2 * L1`` joint error.

Adam (lr 1e-3, weight decay 1e-5) as VPoser; its ReduceLROnPlateau/early stopping are left out
(a fixed step budget here). Uses the same trainer as the GAN: checkpoints, resume, logs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from advprior.baselines import VPoserVAE
from advprior.body import forward_kinematics_rotmat
from advprior.rotations import axis_angle_to_rotmat
from advprior.train import distributed as ddp
from advprior.train.config import VAEConfig
from advprior.train.export import SEED_DATA, export_model, make_validator, selected_state
from advprior.train.loop import Trainer, TrainResult, trainer_entry
from advprior.train.poses import load_training_poses
from advprior.train.runfolder import claim_run_folder
from advprior.train.sampler import BatchStream

KL_WEIGHT = 0.005
REC_WEIGHT = 4.0
ROT_WEIGHT = 2.0
JOINT_WEIGHT = 2.0
EXTRA_TERMS_FRACTION = 0.15


def _joints_from_rotmat(rotmat: torch.Tensor) -> torch.Tensor:
    """Joints ``(B, 24, 3)`` in metres of local rotations ``(B, 21, 3, 3)`` (SMPL joints 1..21),
    zero global orientation, hands at rest, neutral rest skeleton.

    Works on rotation matrices directly (:func:`advprior.body.forward_kinematics_rotmat`): the
    gradient of a matrix -> axis-angle conversion is unstable near zero angle, which made the
    VAE loss diverge.
    """
    eye = torch.eye(3, dtype=rotmat.dtype, device=rotmat.device)
    pelvis = eye.expand(*rotmat.shape[:-3], 1, 3, 3)
    return forward_kinematics_rotmat(torch.cat([pelvis, rotmat], -3))


def _geodesic(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle ``(...)`` between rotations ``(..., 3, 3)`` as ``atan2(sin, cos)``: finite gradients
    everywhere except at the (never reached) point sin = cos = 0, unlike ``acos``/``asin``."""
    rel = r1.transpose(-1, -2) @ r2
    cos = (rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    skew = torch.stack(
        [
            rel[..., 2, 1] - rel[..., 1, 2],
            rel[..., 0, 2] - rel[..., 2, 0],
            rel[..., 1, 0] - rel[..., 0, 1],
        ],
        -1,
    )
    sin = skew.norm(dim=-1) / 2.0
    return torch.atan2(sin, cos)


def vae_loss(
    model: torch.nn.Module, body_pose: torch.Tensor, *, extra_terms: bool
) -> tuple[torch.Tensor, dict[str, float]]:
    """VPoser's weighted loss for one batch ``(B, 63)``; returns ``(total, parts)``."""
    q = model.encode(body_pose)
    z = q.rsample()
    rec_rot = model.decode(z, output="rotmat")
    target_rot = axis_angle_to_rotmat(body_pose.reshape(-1, 21, 3))
    with torch.no_grad():
        target_joints = _joints_from_rotmat(target_rot)
    rec_joints = _joints_from_rotmat(rec_rot)
    prior = torch.distributions.Normal(torch.zeros_like(q.loc), torch.ones_like(q.scale))
    kl = torch.distributions.kl_divergence(q, prior).sum(-1).mean()
    l1 = (rec_joints - target_joints).abs().mean()
    parts = {"kl": KL_WEIGHT * kl, "rec": REC_WEIGHT * l1}
    if extra_terms:
        parts["rot"] = ROT_WEIGHT * _geodesic(rec_rot, target_rot).mean()
        parts["jtr"] = JOINT_WEIGHT * l1
    total = torch.stack(list(parts.values())).sum()
    return total, {f"loss_{k}": v.item() for k, v in parts.items()}


@trainer_entry
def train_vae(
    data: str | os.PathLike,
    out: str | os.PathLike,
    settings: VAEConfig | None = None,
    **keywords: Any,
) -> TrainResult:
    """Train :class:`advprior.baselines.VPoserVAE` on a dataset file.

    Settings as a :class:`~advprior.train.config.VAEConfig` and/or keywords, run options
    (:class:`~advprior.train.config.RunOptions`, ``resume``/``overwrite`` for a folder that
    holds a checkpoint) and results as
    :func:`advprior.train.train_gan` (``steps`` counts optimiser updates, one batch each;
    ``select`` picks the best-validation or the last weights). The exported model lands in
    ``<out>/model``.
    """
    cfg, run = VAEConfig.split(settings, keywords)
    out = Path(out)
    config = cfg.record(data, out)
    info = ddp.setup(run.device)
    folder = None
    try:
        # before any data is read: refuse a folder with a checkpoint or one in use
        folder = claim_run_folder(
            out, resume=run.resume, overwrite=run.overwrite, dist=info, model_type="vae"
        )
        poses = load_training_poses(data, mirror=cfg.mirror, max_val=cfg.max_val_poses)
        config["data_sha256"] = poses.description["sha256"]  # resume refuses other data
        torch.manual_seed(cfg.seed)
        model = VPoserVAE(latent_dim=cfg.latent_dim, hidden_dim=cfg.hidden_dim).to(info.device)
        torch.manual_seed(cfg.seed + info.rank)  # reparameterisation and dropout noise per rank
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        train = poses.train
        stream = BatchStream(
            train.shape[0], cfg.batch_size, cfg.seed + SEED_DATA, info.rank, info.world_size
        )
        folder.start_over()  # --overwrite: only now that this run can start
        trainer = Trainer(
            out,
            steps=cfg.steps,
            config=config,
            dist=info,
            val_every=cfg.val_every,
            ckpt_every=cfg.ckpt_every,
            **run.trainer_options(),
            select="vae",
        )
        trainer.add_module("vae", model, opt)
        trainer.add_stream("data", stream)
        extra_until = int(EXTRA_TERMS_FRACTION * cfg.steps)
        # DDP needs the whole loss computed through the wrapped module's forward.
        loss_module = _LossModule(model)
        loss_net = ddp.wrap(loss_module, info)

        def step_fn(step: int) -> dict[str, float]:
            batch = train[stream.next()].to(info.device)
            total, parts = loss_net(batch, step < extra_until)
            if not bool(torch.isfinite(total)):
                raise FloatingPointError(
                    f"VAE loss is not finite at step {step + 1} ({parts}); the last good "
                    f"checkpoint is in {out}"
                )
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            return {"loss": total.item(), **parts}

        validate = None
        if info.is_main:
            validate = make_validator(model, poses.val, num_samples=cfg.val_samples, seed=cfg.seed)
        result = trainer.run(step_fn, validate)
        if run.export and not result.interrupted and info.is_main:
            final = VPoserVAE(latent_dim=cfg.latent_dim, hidden_dim=cfg.hidden_dim)
            final.load_state_dict(selected_state(result, model, cfg.select))
            final.eval()
            result.model_dir = export_model(final, out, result, poses.description, config, info)
        ddp.barrier(info)
        return result
    finally:
        if folder is not None:
            folder.release()
        ddp.teardown(info)


class _LossModule(torch.nn.Module):
    """Wraps the VAE so that DDP sees the loss computation as one ``forward``."""

    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, batch: torch.Tensor, extra_terms: bool) -> tuple[torch.Tensor, dict]:
        return vae_loss(self.vae, batch, extra_terms=extra_terms)
