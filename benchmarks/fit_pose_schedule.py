"""Annealing GAN-S's pose-density weight with SMPLify's stages (round 24). Validation only.

    python benchmarks/fit_pose_schedule.py --data data/mocap30_v5.npz --json out.jsonl \
        [--starts 1] [--keypoints smpl24 coco17 openpose25] [--candidates p0 p0.5 p1 early]

For each draw (``--seeds``: 128 random validation frames and their views, drawn as
``benchmarks/fit_starts.py`` draws them), keypoint set and candidate, one batched
``fit_keypoints(views, "gan-s", starts=S, pose_schedule=...)`` with every other argument at its
default; one JSON line per fit (P-MPJPE mean, median and per frame) is appended to ``--json``.
Candidates (the pose density's weight per stage is ``2 * m_s``, ``m_last = 1``): ``p0`` the
constant weight (default), ``p0.5`` and ``p1`` the exponent ``p`` of ``(w_s / w_last) ** p``,
``early`` the ``p0.5`` multiplier in SMPLify's two first (weight 404) stages only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
EARLY = (404.0 / 4.78) ** 0.5
CANDIDATES: dict[str, object] = {"p0": None, "p0.5": 0.5, "p1": 1.0, "early": [EARLY] * 2 + [1, 1]}


def run(args: argparse.Namespace) -> None:
    from advprior.data import load_dataset
    from advprior.eval.benchmark import make_views, run_fitting
    from advprior.hub import load_pretrained

    data = load_dataset(args.data, split="val")
    prior = load_pretrained(args.prior)
    for seed in args.seeds:
        gen = torch.Generator().manual_seed(seed)
        n = data.body_pose.shape[0]
        idx = torch.randperm(n, generator=gen)[: min(args.frames, n)].sort().values
        for fmt in args.keypoints:
            views = make_views(
                data.body_pose[idx], data.global_orient[idx], seed=seed, keypoints=fmt
            )
            for cand in args.candidates:
                t = time.time()
                r = run_fitting(views, prior, starts=args.starts, pose_schedule=CANDIDATES[cand])
                rec = {
                    "cand": cand,
                    "seed": seed,
                    "format": fmt,
                    "starts": args.starts,
                    "p_mpjpe": r["p_mpjpe_mm"],
                    "median": r["p_mpjpe_median_mm"],
                    "seconds": time.time() - t,
                    "per_frame": [round(x, 2) for x in r["p_mpjpe_per_frame_mm"]],
                }
                print(json.dumps({k: v for k, v in rec.items() if k != "per_frame"}), flush=True)
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=REPO / "data" / "mocap30_v5.npz")
    p.add_argument("--prior", default="gan-s")
    p.add_argument("--starts", type=int, default=1)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--frames", type=int, default=128)
    p.add_argument("--keypoints", nargs="+", default=["smpl24", "coco17", "openpose25"])
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    p.add_argument("--json", type=Path, required=True, help="JSON lines, appended")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
