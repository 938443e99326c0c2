"""Pose -> latent for 1,000 real poses: GAN-S (``PosePrior.invert``) beside the VAE, both by
its encoder mean (one forward pass) and by the same optimiser (``advprior.inversion.invert``);
the GMM has no latent space. Also the joint error of the round trip
pose -> latent -> pose (mm, 24 SMPL joints, stand-in body, global orientation zeroed).

Run: ``python benchmarks/bench_inversion.py [--out FILE.json] [--threads 1]``.
"""

from __future__ import annotations

import time

import torch
from _bench import emit, load_priors, parser, real_poses, setup


def joint_error_mm(a: torch.Tensor, b: torch.Tensor) -> float:
    from advprior.eval.metrics import mpjpe, pose_joints

    return float(mpjpe(pose_joints(a), pose_joints(b)).mean()) * 1000


def main() -> None:
    args = parser(__doc__).parse_args()
    setup(args)
    n = 50 if args.quick else 1000
    priors, weights = load_priors(("gan-s", "vae"))
    gan, vae = priors["gan-s"], priors["vae"]
    poses, source = real_poses(args.data, n)

    t0 = time.perf_counter()
    z = gan.invert(poses)
    t_gan = time.perf_counter() - t0
    with torch.no_grad():
        back_gan = gan(z)
        t0 = time.perf_counter()
        zv = vae.encode(poses).mean
        t_vae = time.perf_counter() - t0
        back_vae = vae.decode(zv)
    from advprior.inversion import invert

    t0 = time.perf_counter()
    zo = invert(vae, poses)
    t_vae_opt = time.perf_counter() - t0
    with torch.no_grad():
        back_vae_opt = vae.decode(zo)
    result = {
        "benchmark": "inversion",
        "weights": weights,
        "poses": n,
        "pose_source": source,
        "gan-s": {
            "seconds": t_gan,
            "poses_per_s": n / t_gan,
            "method": "PosePrior.invert (defaults)",
            "round_trip_joint_error_mm": joint_error_mm(back_gan, poses),
        },
        "vae": {
            "seconds": t_vae,
            "poses_per_s": n / t_vae,
            "method": "encoder mean",
            "round_trip_joint_error_mm": joint_error_mm(back_vae, poses),
        },
        "vae (optimised)": {
            "seconds": t_vae_opt,
            "poses_per_s": n / t_vae_opt,
            "method": "advprior.inversion.invert (defaults)",
            "round_trip_joint_error_mm": joint_error_mm(back_vae_opt, poses),
        },
        "gmm": "no latent space",
    }
    result["ratios"] = {
        "gan-s/vae seconds (vae: encoder)": t_gan / t_vae,
        "gan-s/vae seconds (both optimised)": t_gan / t_vae_opt,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
