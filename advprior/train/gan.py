"""Adversarial training of the pose prior (GAN-S / GAN-U / GAN-N), Davydov et al. CVPR 2022.

One training step = ``d_steps`` (10) discriminator updates, each on a fresh batch of real poses
and as many generated ones, then one generator update. Least-squares losses, Adam (lr 2e-4,
betas (0.5, 0.999)) for both networks. The discriminator sees rotation matrices
(:class:`~advprior.train.discriminator.PoseDiscriminator`).

Single process by default; under ``torchrun`` the generator and the discriminator are each
wrapped in DistributedDataParallel and every rank draws its own data shard and latents.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advprior.inversion import PoseEncoder
from advprior.prior import PosePrior
from advprior.rotations import axis_angle_to_rotmat
from advprior.train import distributed as ddp
from advprior.train.augment import blend_poses, mix_legs
from advprior.train.checkpoint import CHECKPOINT_NAME
from advprior.train.checkpoint import load as load_checkpoint
from advprior.train.config import GANConfig
from advprior.train.discriminator import PoseDiscriminator, discriminator_loss, generator_loss
from advprior.train.export import (
    SEED_DATA,
    SEED_LATENT,
    export_model,
    make_validator,
    selected_state,
)
from advprior.train.loop import Trainer, TrainResult, trainer_entry
from advprior.train.poses import load_training_poses
from advprior.train.runfolder import claim_run_folder
from advprior.train.sampler import BatchStream, kmeans_labels, rebalanced_rows
from advprior.train.validation import pose_joints
from advprior.train.warmstart import distil_decoder, load_teacher

#: Latent step of the path-length penalty (radians on the sphere, latent units otherwise): about
#: one step of a 16-pose path between two typical latents (90 degrees apart on the sphere).
PATH_STEP = 0.1


class _RotmatGenerator(nn.Module):
    """The prior's decoder to ``(B, 21, 3, 3)`` as ``forward``, so DDP can wrap it; with an
    encoder, ``forward(z, real)`` also returns the two cycle errors (see :func:`train_gan`'s
    ``cycle_weight``), and with ``direction`` the path-length spread (``path_length_weight``),
    so that one forward and one backward cover every trained weight and DDP averages all of
    their gradients."""

    def __init__(self, prior: PosePrior, encoder: PoseEncoder | None = None) -> None:
        super().__init__()
        self.prior = prior
        self.encoder = encoder

    def forward(
        self,
        z: torch.Tensor,
        real: torch.Tensor | None = None,
        direction: torch.Tensor | None = None,
        pool: torch.Tensor | None = None,
        cover: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fake = self.prior.decode(z, output="rotmat")
        if (self.encoder is None or real is None) and direction is None and pool is None:
            return fake
        extra = {}
        if self.encoder is not None and real is not None:
            recon = self.prior.decode(self.encoder(real), output="rotmat")
            z_back = self.encoder(fake)
            # squared chordal error summed over joints, squared latent distance; batch means
            extra["cycle_pose"] = ((recon - real) ** 2).sum(dim=(1, 2, 3)).mean()
            extra["cycle_z"] = ((z_back - self.prior.project(z)) ** 2).sum(dim=-1).mean()
        if direction is not None:
            extra["path_spread"] = self._path_spread(z, fake, direction)
        if pool is not None and cover is not None:
            extra["coverage"] = self._coverage(pool, cover)
        return fake, extra

    def _coverage(self, pool: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Mean over the real poses ``real (B, 21, 3, 3)`` of the squared chordal distance
        (summed over the joints) to the nearest decoded pose of the latents ``pool (K, D)``.

        Implicit maximum likelihood (Li & Malik 2019): only the nearest sample of each real
        pose is pulled toward it, so the map need not send any particular latent to any
        particular pose (unlike an encoder's cycle), but no training pose is left without a
        generated pose nearby, which is what the adversarial loss alone does not ask for."""
        gen = self.prior.decode(pool, output="rotmat").flatten(1)
        target = real.flatten(1)
        with torch.no_grad():
            nearest = torch.cdist(target, gen).argmin(dim=1)
        return ((gen[nearest] - target) ** 2).sum(dim=-1).mean()

    def _path_spread(self, z: torch.Tensor, fake: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Squared coefficient of variation, over the batch, of the pose speed ``|G(z + step v)
        - G(z)| / step`` (chordal, all joints) along random unit directions ``v (B, D)``
        (tangent to the sphere for GAN-S, the step then a slerp)."""
        w = self.prior.project(z)
        if self.prior.latent_space.kind == "sphere":
            v = v - (v * w).sum(-1, keepdim=True) * w
            v = v / v.norm(dim=-1, keepdim=True)
            moved = w * math.cos(PATH_STEP) + v * math.sin(PATH_STEP)
        else:
            moved = w + PATH_STEP * v / v.norm(dim=-1, keepdim=True)
        speed = (self.prior.decode(moved, output="rotmat") - fake).flatten(1).norm(dim=-1)
        speed = speed / PATH_STEP
        # Relative to the batch's mean speed (no running state to checkpoint), so the weight
        # does not depend on the scale the generator happens to have.
        return ((speed / speed.mean().detach().clamp_min(1e-8) - 1) ** 2).mean()


@trainer_entry
def train_gan(
    data: str | os.PathLike,
    out: str | os.PathLike,
    settings: GANConfig | None = None,
    **keywords: Any,
) -> TrainResult:
    """Train a :class:`advprior.PosePrior` adversarially on a dataset file.

    Settings come as a :class:`~advprior.train.config.GANConfig` (``settings``), as keywords
    (0.1.0's signature: ``train_gan(data, out, latent="uniform", steps=100)``), or both (the
    keywords override fields of ``settings``); the record of them goes into the checkpoint and
    the model card. The other keywords are :class:`~advprior.train.config.RunOptions`
    (``resume``, ``progress``, ``tensorboard``, ``device``, ``export``, ``callback``).

    Args:
        data: dataset npz (``advprior data build``); its train split is used for training and
            its validation split for the periodic recall/precision.
        out: run folder: ``checkpoint.pt``, ``train_log.csv``, ``val_log.csv``, ``tb/`` and, when
            finished, the exported generator in ``model/`` (load it with
            ``PosePrior.from_pretrained(out / "model")``).
        settings: a :class:`~advprior.train.config.GANConfig`; default: its defaults.
        latent: ``"sphere"`` (GAN-S), ``"uniform"`` (GAN-U) or ``"normal"`` (GAN-N).
        steps: generator updates (each preceded by ``d_steps`` discriminator updates).
        batch_size: real and generated poses per update, per process.
        seed: seeds model initialisation, data order, latents (per rank) and validation.
        mirror: also train on left/right mirrored copies of the training poses.
        ema_decay: when > 0, keep an exponential moving average of the generator's weights
            (decay per generator step, e.g. 0.999; warmed up as ``min(decay, (1+t)/(10+t))``);
            the average is what is validated and exported. 0 (the paper): the raw generator.
        r1_gamma: when > 0, add ``r1_gamma / 2 * E||d(sum of D's real scores)/d(real rotmat)||^2``
            to the discriminator loss (R1 penalty on real poses, Mescheder et al. 2018); keeps the
            critic from memorising a small training set. 0 (the paper): no penalty.
        cycle_weight / latent_cycle_weight: when either is > 0, train a
            :class:`~advprior.inversion.PoseEncoder` ``E`` with the generator and add
            ``cycle_weight * ||G(E(x)) - x||^2 + latent_cycle_weight * ||E(G(z)) - z||^2`` to
            the generator loss (squared chordal rotation error summed over the joints for real
            poses ``x``; squared latent distance for prior latents ``z``). The first term makes
            every training pose reachable (coverage), the second keeps ``G`` from folding the
            latent space onto itself (shorter latent paths); a jointly trained encoder in the
            spirit of ALI/BiGAN. The encoder is saved in the checkpoint, not exported. 0 (the
            paper): no encoder.
        path_length_weight: when > 0, add ``path_length_weight * Var(s) / E(s)^2`` to the
            generator loss, ``s = |G(z + 0.1 v) - G(z)| / 0.1`` the pose speed (chordal, all
            joints) along a random unit latent direction ``v`` (a slerp step on the sphere): a
            finite-difference path-length regulariser in the spirit of StyleGAN2's (Karras et
            al. 2020), which asks that equal latent steps move the pose equally far everywhere
            and in every direction (even interpolation steps). 0 (the paper): off.
        coverage_weight / coverage_pool: when ``coverage_weight`` > 0, add ``coverage_weight
            * mean_x min_k ||G(z_k) - x||^2`` to the generator loss, over a fresh batch of real
            poses ``x`` and ``coverage_pool`` fresh prior latents ``z_k`` (squared chordal
            error summed over the joints): implicit maximum likelihood (Li & Malik 2019), a
            pull of the nearest generated pose toward every training pose against the mode
            dropping of adversarial training (recall). 0 (the paper): off.
        leg_mix: the fraction of real poses in every batch (the critic's and the coverage
            term's) whose legs are swapped with another pose's
            (:func:`~advprior.train.augment.mix_legs`): combinations of legs and upper body
            that the captures lack. 0 (the paper): off.
        pose_mix: the fraction of real poses in every batch (the critic's and the coverage
            term's, after ``leg_mix``) replaced by a blend with another pose, every joint
            slerped toward the other's by one random ``t``
            (:func:`~advprior.train.augment.blend_poses`): poses between the captured ones
            (measured in docs/training.md, round 13: it widens the generator's range, not its
            coverage). 0 (the paper): off.
        rebalance / rebalance_clusters: when ``rebalance`` > 0, the real poses are read from a
            table in which every training pose appears ``round((s_max / s) ** rebalance)``
            times, ``s`` the size of its cluster among the k-means (``rebalance_clusters``)
            clusters of the training poses' joint positions
            (:func:`~advprior.train.sampler.rebalanced_rows`): a pose's share is proportional to
            ``s ** -rebalance``, so rare poses are seen more often and common ones less, and
            the generator spends more of its samples on the former.
            0 (the paper): the data's own frequencies. More clusters than training poses is a
            ``ValueError`` naming ``rebalance_clusters``, before anything is written.
        disc_positions: also show the whole-pose critic the posed joint positions of the
            neutral skeleton (:class:`~advprior.train.discriminator.PoseDiscriminator`'s
            ``positions``). False (the paper): rotations only.
        disc_pack: poses the whole-pose critic judges together (PacGAN; the
            discriminator's ``pack``); must divide ``batch_size``. 1 (the paper): one at a time.
        init_from: a VAE (alias such as ``"vae"`` or a checkpoint folder) trained on the same
            dataset file; before the adversarial steps the generator is distilled from its
            decoder for ``init_steps`` steps (:mod:`advprior.train.warmstart`), so the game
            starts from a generator that covers the data with a smooth latent map. A VAE
            trained on other data raises ``ValueError`` (its decoder may have seen this run's
            held-out poses). None (the paper): random initial weights.
        generator_lr: the generator's Adam learning rate (None: ``lr``, as the paper); a
            warm-started generator may want smaller steps than one trained from scratch.
        disc_warmup: extra discriminator updates before the first generator update of a
            fresh run (0, the paper: none).
        val_every / ckpt_every: validation and checkpoint periods in steps (0: only at the end).
        val_samples: generated poses per validation; ``max_val_poses``: validation poses used.
        resume: continue from ``out/checkpoint.pt`` if it exists (bit-for-bit on the same machine
            and thread count); settings other than ``steps`` and the periods must match.
        overwrite: start afresh in a folder that holds a checkpoint. Without ``resume`` or
            ``overwrite`` such a folder raises :class:`~advprior.errors.RunFolderError`, as does
            a folder another live process trains in (``run.lock``; see
            :mod:`advprior.train.runfolder`).
        device: default CUDA under torchrun if available, else CPU.
        select: ``"best"`` exports the generator of the validated step with the lowest
            validation recall + precision (mean, mm; model selection on the validation split,
            the test split is never seen); ``"last"`` exports the final generator.
        callback: called as ``callback(step, losses)`` after every step (main process only
            logs; every process calls it).

    Returns:
        :class:`~advprior.train.loop.TrainResult`; ``model_dir`` is set when the run finished.
    """
    cfg, run = GANConfig.split(settings, keywords)
    out = Path(out)
    config = cfg.record(data, out)
    latent, steps, batch_size, seed, select = (
        cfg.latent,
        cfg.steps,
        cfg.batch_size,
        cfg.seed,
        cfg.select,
    )
    d_steps, lr, betas, ema_decay, r1_gamma = (
        cfg.d_steps,
        cfg.lr,
        cfg.betas,
        cfg.ema_decay,
        cfg.r1_gamma,
    )
    mirror, val_every, ckpt_every = cfg.mirror, cfg.val_every, cfg.ckpt_every
    cycle_weight, latent_cycle_weight = cfg.cycle_weight, cfg.latent_cycle_weight
    path_weight = cfg.path_length_weight
    coverage_weight, coverage_pool = cfg.coverage_weight, cfg.coverage_pool
    info = ddp.setup(run.device)
    folder = None
    try:
        # before any data is read: refuse a folder with a checkpoint or one in use
        folder = claim_run_folder(
            out, resume=run.resume, overwrite=run.overwrite, dist=info, model_type="gan"
        )
        poses = load_training_poses(data, mirror=mirror, max_val=cfg.max_val_poses)
        config["data_sha256"] = poses.description["sha256"]  # resume refuses other data
        torch.manual_seed(seed)  # identical initial weights on every rank
        prior = PosePrior(latent=latent, latent_dim=cfg.latent_dim, hidden_dim=cfg.hidden_dim)
        prior = prior.to(info.device)
        if cfg.init_from is not None:
            saved = out / CHECKPOINT_NAME
            if run.resume and saved.is_file():
                # The checkpoint restores the distilled-then-trained weights, so the VAE is not
                # read again (it may have moved or gone since; the checkpoint's data sha256 is
                # still checked). Its record of the VAE's path and of the distillation carries
                # over, so the resumed config matches; a run that had no init_from is refused.
                old = load_checkpoint(saved)["config"]
                if old.get("init_from") is not None:
                    config["init_from"] = old["init_from"]
                config["init_distillation"] = old.get("init_distillation")
            else:
                teacher, teacher_sha256 = load_teacher(
                    cfg.init_from, data_sha256=config["data_sha256"], latent_dim=cfg.latent_dim
                )
                # Same seed on every rank: every rank distils the same generator.
                warm = torch.Generator().manual_seed(seed + SEED_LATENT - 1)
                config["init_distillation"] = {
                    **distil_decoder(prior, teacher, steps=cfg.init_steps, generator=warm),
                    "teacher_weights_sha256": teacher_sha256,
                }
                del teacher
        disc = PoseDiscriminator(
            hidden_dim=cfg.disc_hidden_dim, positions=cfg.disc_positions, pack=cfg.disc_pack
        ).to(info.device)
        torch.manual_seed(seed + info.rank)  # dropout noise differs per rank
        encoder = opt_e = None
        if cycle_weight > 0 or latent_cycle_weight > 0:
            encoder = PoseEncoder(prior, hidden=cfg.hidden_dim).to(info.device)
            # Only the encoder's own layers: the generator inside it has its own optimiser.
            opt_e = torch.optim.Adam(encoder.net.parameters(), lr=lr, betas=tuple(betas))
        gen_net = ddp.wrap(_RotmatGenerator(prior, encoder), info)
        disc_net = ddp.wrap(disc, info)
        lr_g = lr if cfg.generator_lr is None else cfg.generator_lr
        opt_g = torch.optim.Adam(prior.parameters(), lr=lr_g, betas=tuple(betas))
        opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=tuple(betas))
        real_rotmat = axis_angle_to_rotmat(poses.train.reshape(-1, 21, 3))
        # The rows the batch stream draws from: every training pose once, or with
        # rebalance, rare poses repeated. Every rank must read the same table, and k-means'
        # float sums may round differently on different CPUs: rank 0's labels are used.
        rows = torch.arange(real_rotmat.shape[0])
        if cfg.rebalance > 0:
            if cfg.rebalance_clusters > poses.train.shape[0]:
                # known only now that the data is read; still before anything is written
                raise ValueError(
                    f"rebalance_clusters ({cfg.rebalance_clusters}) is more than the "
                    f"{poses.train.shape[0]} training poses; use at most that many clusters"
                )
            joints = pose_joints(poses.train).flatten(1)
            labels = kmeans_labels(joints, cfg.rebalance_clusters, seed=seed + SEED_DATA)
            rows = rebalanced_rows(ddp.broadcast_from_main(labels, info), cfg.rebalance)
        stream = BatchStream(
            rows.shape[0], batch_size, seed + SEED_DATA, info.rank, info.world_size
        )
        zgen = torch.Generator().manual_seed(seed + SEED_LATENT + 7919 * info.rank)
        mixgen = torch.Generator().manual_seed(seed + SEED_DATA + 104_729 + 7919 * info.rank)
        blendgen = torch.Generator().manual_seed(seed + SEED_DATA + 130_363 + 7919 * info.rank)

        def real_batch() -> torch.Tensor:
            real = real_rotmat[rows[stream.next()]].to(info.device)
            if cfg.leg_mix > 0:
                real = mix_legs(real, cfg.leg_mix, mixgen)
            return blend_poses(real, cfg.pose_mix, blendgen) if cfg.pose_mix > 0 else real

        # The model that is validated and exported: the raw generator, or its weight average.
        shown = copy.deepcopy(prior).requires_grad_(False) if ema_decay > 0 else prior

        folder.start_over()  # --overwrite: only now that this run can start
        trainer = Trainer(
            out,
            steps=steps,
            config=config,
            dist=info,
            val_every=val_every,
            ckpt_every=ckpt_every,
            **run.trainer_options(),
            select="generator" if shown is prior else "generator_ema",
        )
        trainer.add_module("generator", prior, opt_g)
        trainer.add_module("discriminator", disc, opt_d)
        if encoder is not None:
            trainer.add_module("encoder", encoder.net, opt_e)
        if shown is not prior:
            trainer.add_module("generator_ema", shown)
        trainer.add_generator("latent", zgen)
        if cfg.leg_mix > 0:  # only then: older checkpoints hold no such generator
            trainer.add_generator("leg_mix", mixgen)
        if cfg.pose_mix > 0:
            trainer.add_generator("pose_mix", blendgen)
        trainer.add_stream("data", stream)

        def latents() -> torch.Tensor:
            return prior.sample_latent(batch_size, generator=zgen)

        def step_fn(step: int) -> dict[str, float]:
            d_total = d_real = d_fake = 0.0
            # A fresh run may first train the critic alone against the initial generator, so
            # that a warm-started generator's first updates follow a critic that has learned
            # something rather than a random one.
            n_d = d_steps + (cfg.disc_warmup if step == 0 else 0)
            for _ in range(n_d):
                real = real_batch()
                with torch.no_grad():
                    fake = prior.decode(latents(), output="rotmat")
                if r1_gamma > 0:
                    real.requires_grad_(True)
                # batch_size is a multiple of the pack size, so no group mixes real and fake.
                joint, pose = disc_net(torch.cat([real, fake]))
                n, m = real.shape[0], pose.shape[0] // 2
                loss_d = discriminator_loss((joint[:n], pose[:m]), (joint[n:], pose[m:]))
                if r1_gamma > 0:
                    (grad,) = torch.autograd.grad(
                        joint[:n].sum() + pose[:m].sum(), real, create_graph=True
                    )
                    loss_d = loss_d + 0.5 * r1_gamma * grad.pow(2).sum(dim=(1, 2, 3)).mean()
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                d_total += loss_d.item()
                d_real += pose[:m].mean().item()
                d_fake += pose[m:].mean().item()
            # The generator step goes through D without DDP and without D's gradients.
            disc.requires_grad_(False)
            extra = {}
            try:
                if encoder is None and path_weight == 0 and coverage_weight == 0:
                    loss_g = generator_loss(disc(gen_net(latents())))
                    total_g = loss_g
                else:
                    z = latents()
                    real = None
                    if encoder is not None:
                        real = real_rotmat[rows[stream.next()]].to(info.device)
                    direction = None
                    if path_weight > 0:
                        direction = torch.randn(z.shape, generator=zgen).to(z)
                    pool = cover = None
                    if coverage_weight > 0:
                        cover = real_batch()
                        pool = prior.sample_latent(coverage_pool, generator=zgen)
                    fake, extra = gen_net(z, real, direction, pool, cover)
                    loss_g = generator_loss(disc(fake))
                    total_g = loss_g
                    if encoder is not None:
                        total_g = (
                            total_g
                            + cycle_weight * extra["cycle_pose"]
                            + latent_cycle_weight * extra["cycle_z"]
                        )
                        opt_e.zero_grad(set_to_none=True)
                    if path_weight > 0:
                        total_g = total_g + path_weight * extra["path_spread"]
                    if coverage_weight > 0:
                        total_g = total_g + coverage_weight * extra["coverage"]
                opt_g.zero_grad(set_to_none=True)
                total_g.backward()
                opt_g.step()
                if encoder is not None:
                    opt_e.step()
            finally:
                disc.requires_grad_(True)
            if shown is not prior:
                decay = min(ema_decay, (1 + step) / (10 + step))
                with torch.no_grad():
                    for avg, cur in zip(shown.parameters(), prior.parameters(), strict=True):
                        avg.lerp_(cur, 1.0 - decay)
            if not (math.isfinite(d_total) and math.isfinite(loss_g.item())):
                raise FloatingPointError(
                    f"GAN losses are not finite at step {step + 1} (D {d_total}, G "
                    f"{loss_g.item()}); the last good checkpoint is in {out}"
                )
            return {
                "loss_d": d_total / n_d,
                "loss_g": loss_g.item(),
                "d_real": d_real / n_d,
                "d_fake": d_fake / n_d,
                **{k: v.item() for k, v in extra.items()},
            }

        validate = None
        if info.is_main:
            validate = make_validator(shown, poses.val, num_samples=cfg.val_samples, seed=seed)
        result = trainer.run(step_fn, validate)
        if run.export and not result.interrupted and info.is_main:
            model = PosePrior(latent=latent, latent_dim=cfg.latent_dim, hidden_dim=cfg.hidden_dim)
            model.load_state_dict(selected_state(result, shown, select))
            result.model_dir = export_model(model, out, result, poses.description, config, info)
        ddp.barrier(info)
        return result
    finally:
        if folder is not None:
            folder.release()
        ddp.teardown(info)
