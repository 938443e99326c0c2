"""Does the trained critic know which poses are common? Its score as a fitting energy.

    python benchmarks/critic_energy.py --run runs/gan-s --data data/mocap30_v5.npz \
        --keypoints smpl24 --weights 0 10 30 100 [--frames 128] [--json out.json]

Issue 10 listed "the trained critic's score" next to a latent density as an energy that might
make GAN-S prefer common poses when 2D keypoints are ambiguous. This loads the discriminator of a
GAN training run (``RUN/checkpoint.pt``, read with ``weights_only=True``) and the run's exported
generator (``RUN/model``, or ``--prior``), and fits the validation views of the fitting
benchmark (:func:`advprior.eval.benchmark.make_views`) with
``latent_weight * E(z)`` added to every pose stage, ``E(z)`` the per-pose least-squares generator
loss ``sum_j (D_j(G(z)) - 1)^2 + (D_pose(G(z)) - 1)^2`` (how unreal the critic finds the
decoded pose; the energy plugs in where a :class:`~advprior.fitting.latent_density.VMFMixture`
does). It first prints the spread of ``E`` over inverted validation poses and over samples: a
critic at the adversarial equilibrium scores both alike, and then ``E`` is flat.

Validation only (choices are made there; never the test split).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]


class CriticEnergy(nn.Module):
    """``E(z) (...)``: the critic's least-squares generator loss of ``G(z / |z|)``, per pose.

    Duck-types the latent-density interface of ``fit_keypoints`` (``dim``, ``mu``, ``nll``)."""

    def __init__(self, prior: nn.Module, critic: nn.Module) -> None:
        super().__init__()
        self.prior, self.critic = prior, critic
        self.dim = int(prior.latent_dim)
        # fit_keypoints records len(mu) as the density's component count: one energy.
        self.mu = torch.zeros(1, self.dim)

    def nll(self, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        rot = self.prior.decode(z.reshape(-1, self.dim), output="rotmat")
        joint, pose = self.critic(rot)
        return (((joint - 1) ** 2).sum(-1) + ((pose - 1) ** 2).sum(-1)).reshape(lead)


def load_critic(run: Path) -> nn.Module:
    from advprior.train.checkpoint import load
    from advprior.train.discriminator import PoseDiscriminator

    ckpt = load(run / "checkpoint.pt")
    config, state = ckpt["config"], ckpt["models"]["discriminator"]
    if config.get("disc_pack", 1) != 1:
        # A packed whole-pose critic scores groups of poses: it has no energy of one pose.
        raise SystemExit(f"{run}: the critic judges {config['disc_pack']} poses at once")
    critic = PoseDiscriminator(
        hidden_dim=config["disc_hidden_dim"], positions=config.get("disc_positions", False)
    )
    critic.load_state_dict(state)
    return critic.eval().requires_grad_(False)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="GAN training run folder")
    ap.add_argument("--prior", default=None, help="generator to fit with (default RUN/model)")
    ap.add_argument("--data", type=Path, default=REPO / "data" / "mocap30_v5.npz")
    ap.add_argument(
        "--keypoints", default="smpl24", choices=("smpl24", "coco17", "openpose25", "openpose25b")
    )
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 10.0, 30.0, 100.0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from advprior.data import load_dataset
    from advprior.eval.benchmark import make_views, run_fitting
    from advprior.hub import load_pretrained

    prior = load_pretrained(args.prior or str(args.run / "model")).eval()
    energy = CriticEnergy(prior, load_critic(args.run))
    data = load_dataset(args.data, split="validation")
    gen = torch.Generator().manual_seed(args.seed)
    n = data.body_pose.shape[0]
    idx = torch.randperm(n, generator=gen)[: min(args.frames, n)].sort().values
    views = make_views(
        data.body_pose[idx], data.global_orient[idx], seed=args.seed, keypoints=args.keypoints
    )
    with torch.no_grad():
        real = energy.nll(prior.invert(data.body_pose[idx]))
        fake = energy.nll(prior.sample_latent(4096, generator=torch.Generator().manual_seed(1)))
    spread = {
        "inverted_validation": [float(real.mean()), float(real.std())],
        "samples": [float(fake.mean()), float(fake.std())],
        "samples_p10_p90": [float(fake.quantile(0.1)), float(fake.quantile(0.9))],
    }
    print(json.dumps({"energy_mean_std": spread}), flush=True)
    rows = []
    for w in args.weights:
        extra = {} if w == 0 else {"latent_density": energy, "latent_weight": w}
        r = run_fitting(views, prior, **extra)
        rows.append({"weight": w, **r})
        print(
            f"weight {w:g}: P-MPJPE {r['p_mpjpe_mm']:.1f} mm (median {r['p_mpjpe_median_mm']:.1f}),"
            f" reprojection {r['reprojection_px']:.2f} px",
            flush=True,
        )
    if args.json:
        from advprior.fileio import write_text_atomic

        payload = {"args": {k: str(v) for k, v in vars(args).items()}, "energy": spread}
        write_text_atomic(args.json, json.dumps({**payload, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
