"""A learned VPoser chart for GAN-S (an ablation of issue 14, not shipped): train the map
``z in R^32 -> GAN-S latent`` as the decoder half of a VAE whose decoder ends in GAN-S's frozen
generator, so that ``N(0, I)`` in chart coordinates is where real poses are (as VPoser's latent
is) and the loop's ``|z|^2`` term pulls toward common poses the way it does for VPoser.

    python benchmarks/vposer_learned_chart.py --data data/mocap30_v5.npz --out chart_dir
    python benchmarks/vposer_chart_ablation.py --data data/mocap30_v5.npz --frames 48 \
        --variant learned:chart_dir --out benchmarks/results/vposer_chart_val48.jsonl

Chart: ``w = normalize(c + 2 z + A z + g(z))``, the shipped chart (``advprior.compat``, ``c`` the
typical latent) plus a learned linear map ``A`` and a two-layer MLP ``g`` (256 units, LeakyReLU
0.2), both initialised to zero, so training starts from the shipped chart. Encoder: the VAE
baseline's (``advprior.baselines.VPoserVAE``, its decoder unused). Loss and schedule: the VAE
baseline's (``advprior.train.vae``: ``0.005 KL + 4 L1`` of the 24 joints in metres, plus
``2 geodesic + 2 L1`` in the first 15% of the steps), Adam lr 1e-3, batch 128, on the training
split with mirrored copies; GAN-S's weights never change. About 5 minutes for 20,000 steps on one
CPU thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SOURCE = "benchmarks/vposer_learned_chart.py"


class LearnedChart(nn.Module):
    """``R^D`` -> the unit sphere: ``normalize(c + s z + A z + g(z))`` (see the module docstring);
    ``kind``, ``scale`` and ``dim`` as :class:`advprior.compat.LatentChart`, for ``VPoserV1``."""

    kind = "sphere"

    def __init__(self, centre: torch.Tensor, scale: float = 2.0, hidden: int = 256) -> None:
        super().__init__()
        self.dim = int(centre.shape[0])
        self.scale = float(scale)
        self.hidden = int(hidden)
        self.register_buffer("centre", centre / centre.norm())
        self.linear = nn.Linear(self.dim, self.dim, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(self.dim, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, self.dim),
        )
        # zero-initialised corrections: step 0 is the shipped chart
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.centre.to(z.dtype) + self.scale * z + self.linear(z) + self.mlp(z)
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def load_chart(folder: str | Path) -> LearnedChart:
    """The chart saved by :func:`main` in ``folder`` (``chart.safetensors`` + ``chart.json``)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = json.loads((folder / "chart.json").read_text())
    chart = LearnedChart(torch.zeros(config["dim"]), config["scale"], config["hidden"])
    chart.load_state_dict(load_file(folder / "chart.safetensors"))
    return chart.eval().requires_grad_(False)


def train(data: Path, steps: int, seed: int, log=print) -> LearnedChart:
    from advprior.baselines import VPoserVAE
    from advprior.hub import load_pretrained
    from advprior.rotations import axis_angle_to_rotmat
    from advprior.train.poses import load_training_poses
    from advprior.train.vae import (
        EXTRA_TERMS_FRACTION,
        JOINT_WEIGHT,
        KL_WEIGHT,
        REC_WEIGHT,
        ROT_WEIGHT,
        _geodesic,
        _joints_from_rotmat,
    )

    torch.manual_seed(seed)
    train_poses = load_training_poses(data, mirror=True).train
    prior = load_pretrained("gan-s").eval().requires_grad_(False)
    chart = LearnedChart(prior.fit_start().detach())
    encoder = VPoserVAE(latent_dim=prior.latent_dim)
    params = [p for n, p in encoder.named_parameters() if not n.startswith("decoder")]
    opt = torch.optim.Adam([*params, *chart.parameters()], lr=1e-3, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(seed + 1)
    extra_until = int(EXTRA_TERMS_FRACTION * steps)
    start = time.perf_counter()
    for step in range(steps):
        pose = train_poses[torch.randint(0, len(train_poses), (128,), generator=gen)]
        q = encoder.encode(pose)
        rot = prior.decode(chart(q.rsample()), output="rotmat", project=False)
        target = axis_angle_to_rotmat(pose.reshape(-1, 21, 3))
        with torch.no_grad():
            target_joints = _joints_from_rotmat(target)
        l1 = (_joints_from_rotmat(rot) - target_joints).abs().mean()
        normal = torch.distributions.Normal(torch.zeros_like(q.loc), torch.ones_like(q.scale))
        kl = torch.distributions.kl_divergence(q, normal).sum(-1).mean()
        loss = KL_WEIGHT * kl + REC_WEIGHT * l1
        if step < extra_until:
            loss = loss + ROT_WEIGHT * _geodesic(rot, target).mean() + JOINT_WEIGHT * l1
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 2000 == 0 or step == steps - 1:
            log(
                f"step {step}: loss {loss.item():.4f}, joint L1 {1000 * l1.item():.1f} mm, "
                f"KL {kl.item():.2f}, mean |mu| {q.loc.norm(dim=-1).mean().item():.2f}, "
                f"{time.perf_counter() - start:.0f} s"
            )
    return chart.eval().requires_grad_(False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=REPO / "data" / "mocap30_v5.npz")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="folder for the chart's files")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from safetensors.torch import save_file

    chart = train(args.data, args.steps, args.seed, log=lambda line: print(line, flush=True))
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in chart.state_dict().items()},
              str(args.out / "chart.safetensors"))  # fmt: skip
    config = {"dim": chart.dim, "scale": chart.scale, "hidden": chart.hidden,
              "steps": args.steps, "seed": args.seed, "data": args.data.name}  # fmt: skip
    (args.out / "chart.json").write_text(json.dumps(config, indent=1) + "\n")
    print(f"chart -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
