"""A keypoint -> pose regressor with ``LatentHead`` versus the same net outputting 63 numbers.

    python examples/regressor.py --steps 2000 --write-docs

Both regressors read 24 noisy 2D keypoints (normalised to zero mean and unit spread, plus their
confidences), share the same MLP backbone and the same global-orientation head (6D), and are
trained with the same 3D joint loss on training-split poses seen from random views
(:func:`advprior.eval.benchmark.make_views`: 5 px noise, 20% dropped). The pose head is
either ``LatentHead(512, prior)`` (frozen prior; the latent is normalised onto the sphere) or a
``Linear(512, 63)`` giving axis-angle directly. Reports MPJPE (pelvis-aligned) and P-MPJPE on
test-split views, millimetres. Needs the dataset (see examples/smplify_fit.py).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def features(kp: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
    """``(B, K*3)`` (K keypoints, 24 for SMPL-24): keypoints centred on the confident ones'
    mean and scaled by their RMS spread (so the camera distance does not matter), missing ones
    zeroed, then confidences."""
    w = conf / conf.sum(-1, keepdim=True).clamp(min=1)
    centre = (kp * w[..., None]).sum(1, keepdim=True)
    spread = ((((kp - centre) ** 2).sum(-1) * w).sum(-1).sqrt().clamp(min=1e-6))[:, None, None]
    x = (kp - centre) / spread * conf[..., None]
    return torch.cat([x.flatten(1), conf], -1)


class Regressor(nn.Module):
    """MLP backbone -> (global orientation via 6D, body pose via ``pose_head``)."""

    def __init__(self, pose_head: nn.Module, width: int = 512, inputs: int = 72) -> None:
        # inputs: 3 per keypoint (:func:`features`), 72 for SMPL-24, 51 for COCO-17
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Linear(inputs, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
        )
        self.orient = nn.Linear(width, 6)
        self.pose_head = pose_head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from advprior.rotations import rot6d_to_rotmat, rotmat_to_axis_angle

        h = self.backbone(x)
        orient = rotmat_to_axis_angle(rot6d_to_rotmat(self.orient(h)))
        return orient, self.pose_head(h)


def joints_of(orient: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    from advprior.body import forward_kinematics

    j = forward_kinematics(orient, pose)
    return j - j[:, :1]


def train(
    model: Regressor,
    data,
    steps: int,
    batch: int,
    seed: int,
    keypoints: str = "smpl24",
    rotation_weight: float = 0.0,
) -> float:
    """Adam on the pelvis-relative 3D joint error of fresh random views of ``data`` each step,
    seen as ``keypoints`` (a keypoint set of :mod:`advprior.fitting.keypoints`); seconds.

    ``rotation_weight``: also the squared rotation-matrix error of the body joints (as SPIN
    supervises its SMPL parameters), times this weight. Joint positions say nothing of a limb's
    twist about its bone, so a direct 63-d head trained on them alone returns twisted poses
    that no pose prior finds likely: a poor start for a prior's fit."""
    from advprior.eval.benchmark import make_views
    from advprior.rotations import axis_angle_to_rotmat

    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    n = data.body_pose.shape[0]
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(n, (batch,), generator=gen)
        views = make_views(
            data.body_pose[idx],
            data.global_orient[idx],
            seed=seed * 100003 + step,
            keypoints=keypoints,
        )
        target = views.joints - views.joints[:, :1]
        orient, pose = model(features(views.keypoints, views.confidence))
        loss = ((joints_of(orient, pose) - target) ** 2).sum(-1).mean()
        if rotation_weight:
            rot = axis_angle_to_rotmat(pose.reshape(-1, 21, 3))
            true = axis_angle_to_rotmat(views.body_pose.reshape(-1, 21, 3))
            loss = loss + rotation_weight * ((rot - true) ** 2).sum((-2, -1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return time.perf_counter() - start


@torch.no_grad()
def evaluate(model: Regressor, views) -> dict[str, float]:
    from advprior.eval.metrics import mpjpe, p_mpjpe

    model.eval()
    orient, pose = model(features(views.keypoints, views.confidence))
    pred = joints_of(orient, pose)
    truth = views.joints - views.joints[:, :1]
    return {
        "mpjpe_mm": 1000 * float(mpjpe(pred, truth).mean()),
        "p_mpjpe_mm": 1000 * float(p_mpjpe(pred, truth).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO / "data" / "mocap30.npz")
    p.add_argument("--prior", default="gan-s")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--test-frames", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--write-docs", action="store_true", help="rewrite the generated block of --docs"
    )
    p.add_argument("--docs", type=Path, default=REPO / "docs" / "fitting.md")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from advprior.data import load_dataset, require_dataset_file
    from advprior.eval.benchmark import make_views, write_generated_block
    from advprior.fileio import check_writable
    from advprior.head import LatentHead
    from advprior.hub import load_pretrained

    try:  # before anything loads, and one line rather than a traceback
        require_dataset_file(args.data)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    if args.write_docs:
        # now, not after the training
        try:
            check_writable(args.docs)
        except OSError as err:
            print(f"--docs: {err}", file=sys.stderr)
            return 2
    train_set = load_dataset(args.data, split="train")
    test_set = load_dataset(args.data, split="test")
    n_test = min(args.test_frames, test_set.body_pose.shape[0])
    pick = torch.randperm(
        test_set.body_pose.shape[0], generator=torch.Generator().manual_seed(args.seed)
    )[:n_test]
    test_views = make_views(
        test_set.body_pose[pick], test_set.global_orient[pick], seed=args.seed + 7
    )

    results = {}
    for name in ("LatentHead", "direct 63-d"):
        torch.manual_seed(args.seed)
        head = (
            LatentHead(512, load_pretrained(args.prior))
            if name == "LatentHead"
            else nn.Linear(512, 63)
        )
        model = Regressor(head)
        seconds = train(model, train_set, args.steps, args.batch, args.seed)
        results[name] = {**evaluate(model, test_views), "train_seconds": seconds}
        r = results[name]
        print(
            f"{name:12s} test MPJPE {r['mpjpe_mm']:.1f} mm, P-MPJPE {r['p_mpjpe_mm']:.1f} mm "
            f"(trained {args.steps} steps in {seconds:.0f} s)",
            flush=True,
        )

    command = "python examples/regressor.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    lines = [
        f"Generated by `{command.strip()}` on {datetime.date.today().isoformat()} "
        f"({os.cpu_count()} CPU cores, torch {torch.__version__}, {args.threads} "
        f"thread(s)). Train split of `{args.data.name}` ({train_set.body_pose.shape[0]} "
        f"poses, fresh random views every step), {args.steps} Adam steps of batch "
        f"{args.batch}; test: {n_test} test-split views (5 px noise, 20% dropped).",
        "",
        "| pose head | test MPJPE mm | test P-MPJPE mm | train s |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['mpjpe_mm']:.1f} | {r['p_mpjpe_mm']:.1f} | {r['train_seconds']:.0f} |"
        )
    block = "\n".join(lines)
    print("\n" + block)
    if args.write_docs:
        write_generated_block(args.docs, "examples/regressor.py", block)
        print(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
