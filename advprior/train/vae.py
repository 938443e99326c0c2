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
from collections.abc import Callable
from pathlib import Path

import torch

from advprior.rotations import axis_angle_to_rotmat, geodesic_distance, rotmat_to_axis_angle
from advprior.train import distributed as ddp
from advprior.train.gan import _SEED_DATA, export_model, make_validator
from advprior.train.loop import Trainer, TrainResult
from advprior.train.poses import load_training_poses
from advprior.train.sampler import BatchStream

KL_WEIGHT = 0.005
REC_WEIGHT = 4.0
ROT_WEIGHT = 2.0
JOINT_WEIGHT = 2.0
EXTRA_TERMS_FRACTION = 0.15


def _joints(body_pose: torch.Tensor) -> torch.Tensor:
    from advprior.body import forward_kinematics

    go = torch.zeros(body_pose.shape[0], 3, dtype=body_pose.dtype, device=body_pose.device)
    return forward_kinematics(go, body_pose)


def vae_loss(
    model: torch.nn.Module, body_pose: torch.Tensor, *, extra_terms: bool
) -> tuple[torch.Tensor, dict[str, float]]:
    """VPoser's weighted loss for one batch ``(B, 63)``; returns ``(total, parts)``."""
    q = model.encode(body_pose)
    z = q.rsample()
    rec_rot = model.decode(z, output="rotmat")
    rec_pose = rotmat_to_axis_angle(rec_rot).reshape(body_pose.shape)
    with torch.no_grad():
        target_joints = _joints(body_pose)
    rec_joints = _joints(rec_pose)
    prior = torch.distributions.Normal(torch.zeros_like(q.loc), torch.ones_like(q.scale))
    kl = torch.distributions.kl_divergence(q, prior).sum(-1).mean()
    l1 = (rec_joints - target_joints).abs().mean()
    parts = {"kl": KL_WEIGHT * kl, "rec": REC_WEIGHT * l1}
    if extra_terms:
        target_rot = axis_angle_to_rotmat(body_pose.reshape(-1, 21, 3))
        parts["rot"] = ROT_WEIGHT * geodesic_distance(rec_rot, target_rot).mean()
        parts["jtr"] = JOINT_WEIGHT * l1
    total = torch.stack(list(parts.values())).sum()
    return total, {f"loss_{k}": v.item() for k, v in parts.items()}


def train_vae(
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    steps: int = 10000,
    batch_size: int = 128,
    seed: int = 0,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
    latent_dim: int = 32,
    hidden_dim: int = 512,
    mirror: bool = True,
    val_every: int = 1000,
    val_samples: int = 5000,
    max_val_poses: int = 2000,
    ckpt_every: int = 500,
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
    device: str | torch.device | None = None,
    export: bool = True,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train :class:`advprior.baselines.VPoserVAE` on a dataset file.

    Arguments as :func:`advprior.train.train_gan` (``steps`` counts optimiser updates, one batch
    each). The exported model lands in ``<out>/model``.
    """
    from advprior.baselines import VPoserVAE

    out = Path(out)
    config = {
        "model": "vae",
        "data": str(Path(data).resolve()),
        "out": str(out.resolve()),
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "lr": lr,
        "weight_decay": weight_decay,
        "latent_dim": latent_dim,
        "hidden_dim": hidden_dim,
        "mirror": mirror,
        "val_every": val_every,
        "val_samples": val_samples,
        "max_val_poses": max_val_poses,
        "ckpt_every": ckpt_every,
    }
    info = ddp.setup(device)
    try:
        poses = load_training_poses(data, mirror=mirror, max_val=max_val_poses)
        config["data_sha256"] = poses.description["sha256"]  # resume refuses other data
        torch.manual_seed(seed)
        model = VPoserVAE(latent_dim=latent_dim, hidden_dim=hidden_dim).to(info.device)
        torch.manual_seed(seed + info.rank)  # reparameterisation and dropout noise per rank
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        train = poses.train
        stream = BatchStream(
            train.shape[0], batch_size, seed + _SEED_DATA, info.rank, info.world_size
        )
        trainer = Trainer(
            out,
            steps=steps,
            config=config,
            dist=info,
            val_every=val_every,
            ckpt_every=ckpt_every,
            resume=resume,
            progress=progress,
            tensorboard=tensorboard,
            callback=callback,
        )
        trainer.add_module("vae", model, opt)
        trainer.add_stream("data", stream)
        extra_until = int(EXTRA_TERMS_FRACTION * steps)
        # DDP needs the whole loss computed through the wrapped module's forward.
        loss_module = _LossModule(model)
        loss_net = ddp.wrap(loss_module, info)

        def step_fn(step: int) -> dict[str, float]:
            batch = train[stream.next()].to(info.device)
            total, parts = loss_net(batch, step < extra_until)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            return {"loss": total.item(), **parts}

        validate = None
        if info.is_main:
            validate = make_validator(model, poses.val, num_samples=val_samples, seed=seed)
        result = trainer.run(step_fn, validate)
        if export and not result.interrupted and info.is_main:
            final = VPoserVAE(latent_dim=latent_dim, hidden_dim=hidden_dim)
            final.load_state_dict({k: v.cpu() for k, v in model.state_dict().items()})
            final.eval()
            result.model_dir = export_model(final, out, result, poses.description, config)
        ddp.barrier(info)
        return result
    finally:
        ddp.teardown(info)


class _LossModule(torch.nn.Module):
    """Wraps the VAE so that DDP sees the loss computation as one ``forward``."""

    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, batch: torch.Tensor, extra_terms: bool) -> tuple[torch.Tensor, dict]:
        return vae_loss(self.vae, batch, extra_terms=extra_terms)
