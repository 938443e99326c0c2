"""``advprior train``: train GAN-S/U/N, or the VAE / GMM baselines, on a dataset file.

Multi-process: ``torchrun --nproc_per_node N -m advprior.cli train ...`` (DDP; gloo on CPU,
NCCL on GPUs). Ctrl-C / SIGTERM saves a checkpoint; ``--resume`` continues from it.
"""

from __future__ import annotations

import argparse
import json
import sys

DEFAULT_STEPS = {"gan": 5000, "vae": 10000, "gmm": 200}
# Options only the GAN trainer reads; given with --model vae/gmm they would be dropped silently
# and the user would get a model other than the one asked for.
GAN_ONLY = (
    "latent",
    "d_steps",
    "disc_hidden",
    "ema",
    "r1",
    "cycle",
    "latent_cycle",
    "path_length",
    "coverage",
    "coverage_pool",
    "leg_mix",
    "pose_mix",
    "rebalance",
    "rebalance_clusters",
    "disc_positions",
    "disc_pack",
    "init_from",
    "init_steps",
    "generator_lr",
    "disc_warmup",
)

# The lowest value of each integer option (``--steps`` is also the GMM's EM iterations).
COUNTS = {
    "steps": 1,
    "batch_size": 1,
    "hidden": 1,
    "val_every": 0,
    "val_samples": 1,
    "ckpt_every": 0,
    "d_steps": 1,
    "disc_hidden": 1,
    "coverage_pool": 1,
    "rebalance_clusters": 1,
    "disc_pack": 1,
    "init_steps": 1,
    "disc_warmup": 0,
}


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` only where it says something: not for flags (False), for
    options whose absence is explained in their help (None), or whose help names its default."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a pose prior (GAN-S/U/N) or a baseline (VAE, GMM) on a dataset npz",
        description=__doc__,
        formatter_class=_DefaultsHelp,
    )
    p.add_argument("--data", required=True, help="dataset npz from `advprior data build`")
    p.add_argument("--out", required=True, help="run folder (checkpoint, logs, model/)")
    p.add_argument("--model", choices=("gan", "vae", "gmm"), default="gan")
    p.add_argument(
        "--latent",
        choices=("sphere", "uniform", "normal"),
        default="sphere",
        help="GAN latent space (GAN-S, GAN-U, GAN-N)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"generator/optimiser steps (GMM: EM iterations); default {DEFAULT_STEPS}",
    )
    p.add_argument("--batch-size", type=int, default=128, help="poses per update per process")
    p.add_argument(
        "--hidden",
        type=int,
        default=512,
        help="GAN: width of the generator's two hidden layers; VAE: of its encoder's and "
        "decoder's (512: the paper's and VPoser's)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-every", type=int, default=500, help="steps between validations (0: end)")
    p.add_argument("--val-samples", type=int, default=5000, help="generated poses per validation")
    p.add_argument("--ckpt-every", type=int, default=250, help="steps between checkpoints")
    p.add_argument("--d-steps", type=int, default=10, help="GAN: discriminator steps per G step")
    p.add_argument(
        "--disc-hidden",
        type=int,
        default=1024,
        help="GAN: width of the discriminator's whole-pose MLP",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="GAN: validate and export an exponential moving average of the "
        "generator's weights with this decay per step (e.g. 0.999; 0: off)",
    )
    p.add_argument(
        "--r1",
        type=float,
        default=0.0,
        metavar="GAMMA",
        help="GAN: R1 gradient penalty weight on real poses (0: off, as the paper)",
    )
    p.add_argument(
        "--cycle",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="GAN: train a pose encoder jointly; weight of the pose cycle error "
        "|G(E(x)) - x|^2 of real poses (0: off, as the paper)",
    )
    p.add_argument(
        "--latent-cycle",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="GAN: weight of the latent cycle error |E(G(z)) - z|^2 (0: off)",
    )
    p.add_argument(
        "--path-length",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="GAN: weight of the path-length penalty (spread of the pose speed along random "
        "latent steps; 0: off, as the paper)",
    )
    p.add_argument(
        "--coverage",
        type=float,
        default=0.0,
        metavar="WEIGHT",
        help="GAN: weight of the coverage term, the squared distance of every real pose to "
        "the nearest of a pool of generated poses (implicit maximum likelihood; 0: off, as "
        "the paper)",
    )
    p.add_argument(
        "--coverage-pool",
        type=int,
        default=512,
        metavar="K",
        help="GAN: generated poses the coverage term searches per step",
    )
    p.add_argument(
        "--leg-mix",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="GAN: fraction of real poses whose legs are swapped with another pose's "
        "(0: off, as the paper)",
    )
    p.add_argument(
        "--pose-mix",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="GAN: fraction of real poses blended with another pose (every joint slerped by "
        "one random t; 0: off, as the paper)",
    )
    p.add_argument(
        "--rebalance",
        type=float,
        default=0.0,
        metavar="POWER",
        help="GAN: read real poses with probability size(their k-means cluster)^-POWER "
        "(0: the data's own frequencies, as the paper; 1: every cluster equally often)",
    )
    p.add_argument(
        "--rebalance-clusters",
        type=int,
        default=256,
        metavar="K",
        help="GAN: k-means clusters of the training poses' joints for --rebalance",
    )
    p.add_argument(
        "--disc-positions",
        action="store_true",
        help="GAN: also show the whole-pose critic the posed joint positions (off: the paper)",
    )
    p.add_argument(
        "--disc-pack",
        type=int,
        default=1,
        metavar="N",
        help="GAN: the whole-pose critic judges N poses together (PacGAN; 1: the paper)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="VAE",
        help="GAN: start the generator from this VAE (alias or checkpoint folder, trained on "
        "the same --data), distilled onto the GAN's latent space (default: random weights, "
        "as the paper)",
    )
    p.add_argument(
        "--init-steps",
        type=int,
        default=3000,
        metavar="N",
        help="GAN: distillation steps of --init-from (default 3000)",
    )
    p.add_argument(
        "--generator-lr",
        type=float,
        default=None,
        metavar="LR",
        help="GAN: the generator's learning rate (default: the same as the critic's, 2e-4)",
    )
    p.add_argument(
        "--disc-warmup",
        type=int,
        default=0,
        metavar="N",
        help="GAN: critic updates before the first generator update (default 0: the paper)",
    )
    p.add_argument(
        "--select",
        choices=("best", "last"),
        default="best",
        help="export the best-validation weights (recall + precision) or the last",
    )
    p.add_argument("--no-mirror", action="store_true", help="do not add mirrored poses")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    mode.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh over a run folder that holds a checkpoint (without "
        "--resume or --overwrite such a folder is refused)",
    )
    p.add_argument("--device", default=None, help="torch device (default: CUDA if present)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, gan_only_defaults={dest: p.get_default(dest) for dest in GAN_ONLY})


def run(args: argparse.Namespace) -> int:

    from advprior.commands._device import parse_device, set_threads
    from advprior.commands._numbers import check_counts, check_non_negative, check_number
    from advprior.data.dataset import require_dataset_file
    from advprior.errors import UsageError

    check_counts(args, COUNTS)
    check_non_negative(args, ("r1", "cycle", "latent_cycle", "path_length", "coverage"))
    check_number(args.ema, "--ema", high=1.0, high_open=True)
    for name in ("leg_mix", "pose_mix", "rebalance"):
        check_number(getattr(args, name), "--" + name.replace("_", "-"), high=1.0)
    check_number(args.generator_lr, "--generator-lr", low_open=True)
    if args.model != "gan":
        given = [
            "--" + dest.replace("_", "-")
            for dest, default in args.gan_only_defaults.items()
            if getattr(args, dest) != default
        ]
        if given:
            raise UsageError(
                f"{', '.join(given)}: GAN option(s), which --model {args.model} does not use"
            )
    if args.model == "gmm" and args.hidden != 512:
        raise UsageError("--hidden: a network width, which --model gmm does not have")

    device = None if args.device is None else parse_device(args.device)
    if device is not None and device.type == "meta":
        # a bad option value like any other device (exit 2), as for `advprior export`
        raise UsageError("--device meta holds no values to train with; use cpu or a GPU")
    if args.threads is not None:
        set_threads(args, args.threads)
    # before the run folder is claimed (and made): a wrong --data left an empty one behind
    require_dataset_file(args.data)
    steps = args.steps if args.steps is not None else DEFAULT_STEPS[args.model]
    common = dict(seed=args.seed, mirror=not args.no_mirror, val_samples=args.val_samples)
    loop = dict(
        steps=steps,
        batch_size=args.batch_size,
        hidden_dim=args.hidden,
        val_every=args.val_every,
        ckpt_every=args.ckpt_every,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        # checked here: a CUDA/MPS device this machine lacks is one line, not a torch traceback
        device=None if device is None else str(device),
    )
    if args.model == "gan":
        from advprior.train.gan import train_gan

        result = train_gan(
            args.data,
            args.out,
            latent=args.latent,
            d_steps=args.d_steps,
            disc_hidden_dim=args.disc_hidden,
            select=args.select,
            ema_decay=args.ema,
            r1_gamma=args.r1,
            cycle_weight=args.cycle,
            latent_cycle_weight=args.latent_cycle,
            path_length_weight=args.path_length,
            coverage_weight=args.coverage,
            coverage_pool=args.coverage_pool,
            leg_mix=args.leg_mix,
            pose_mix=args.pose_mix,
            rebalance=args.rebalance,
            rebalance_clusters=args.rebalance_clusters,
            disc_positions=args.disc_positions,
            disc_pack=args.disc_pack,
            init_from=args.init_from,
            init_steps=args.init_steps,
            generator_lr=args.generator_lr,
            disc_warmup=args.disc_warmup,
            **common,
            **loop,
        )
    elif args.model == "vae":
        from advprior.train.vae import train_vae

        result = train_vae(args.data, args.out, select=args.select, **common, **loop)
    else:
        from advprior.train.gmm import fit_gmm

        result = fit_gmm(
            args.data,
            args.out,
            max_iter=steps,
            resume=args.resume,
            overwrite=args.overwrite,
            **common,
        )
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if result.interrupted:
        # stderr: stdout carries only the closing JSON line, for scripts that parse it
        print(
            f"advprior train: interrupted at step {result.step}/{result.steps}; checkpoint saved "
            f"in {args.out}; rerun with --resume to continue",
            file=sys.stderr,
        )
        return 130
    # val_mm: the numbers of the model in model_dir, as its card's metrics_val_mm (with
    # --select best, the selected step's, not the last step's, which a user comparing the
    # exported model's own validation with the summary took for a bug)
    selected = args.select == "best" and result.best_step is not None
    print(
        json.dumps(
            {
                "model_dir": str(result.model_dir),
                "steps": result.step,
                "selected_step": result.best_step if selected else result.step,
                "wall_time_s": round(result.wall_time_s, 1),
                "val_mm": result.best_val if selected else result.val,
                "final_step_val_mm": result.val,
            }
        )
    )
    return 0
