"""SMPLify-style fitting of 256 frames in one batch from noisy 2D keypoints with each prior
(``advprior.fitting.fit_keypoints``), same observations for all: seconds per frame and errors.

Observations from ``advprior.eval.benchmark.make_views`` (the protocol of ``docs/fitting.md``:
real test poses from a random heading, 3-6 m from a f = 1000 px camera, 5 px noise, 20% of joints
dropped). Run: ``python benchmarks/bench_fitting.py [--out FILE.json]``.
"""

from __future__ import annotations

import torch
from _bench import emit, load_priors, parser, real_poses, setup


def main() -> None:
    from advprior.eval.benchmark import make_views, run_fitting

    p = parser(__doc__)
    p.add_argument("--frames", type=int, default=256)
    args = p.parse_args()
    setup(args)
    frames = 8 if args.quick else args.frames
    priors, weights = load_priors(("gan-s", "vae", "gmm"))
    poses, source = real_poses(args.data, frames)
    orient = torch.zeros(frames, 3)
    if args.data.is_file():
        from advprior.eval.data import load_split

        split = load_split(args.data, "test")
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(len(split), (frames,), generator=g)
        poses, orient = split.body_pose[idx], split.global_orient[idx]
    views = make_views(poses, orient, seed=0)
    kwargs = {"iterations": 10} if args.quick else {}
    result: dict = {
        "benchmark": "fitting",
        "weights": weights,
        "frames": frames,
        "pose_source": source,
        "priors": {},
    }
    for name, prior in [*priors.items(), ("no prior", None)]:
        score = run_fitting(views, prior, **kwargs)
        result["priors"][name] = {
            "seconds_per_frame": score["seconds_per_frame"],
            "seconds_total": score["seconds"],
            "mpjpe_mm": score["mpjpe_mm"],
            "p_mpjpe_mm": score["p_mpjpe_mm"],
        }
    per = {k: v["seconds_per_frame"] for k, v in result["priors"].items()}
    result["ratios"] = {
        "gan-s/vae seconds per frame": per["gan-s"] / per["vae"],
        "gan-s/gmm seconds per frame": per["gan-s"] / per["gmm"],
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
