"""Decode, sampling and latent-interpolation throughput of GAN-S beside the VAE and the GMM,
next to the machine's measured matmul FLOP/s (the ceiling a decoder MLP can reach).

Run: ``python benchmarks/bench_decode.py [--out FILE.json] [--threads 1]``.
"""

from __future__ import annotations

import torch
from _bench import emit, load_priors, parser, setup, time_call


def matmul_flops(n: int, m: int, k: int, min_seconds: float) -> dict[str, float]:
    """FLOP/s of an ``(n, k) @ (k, m)`` float32 matmul (2nmk FLOPs per call)."""
    a, b = torch.randn(n, k), torch.randn(k, m)
    out = torch.empty(n, m)
    t = time_call(lambda: torch.mm(a, b, out=out), min_seconds=min_seconds)
    return {"shape": [n, k, m], "gflops_best": 2 * n * m * k / t["best_s"] / 1e9,
            "gflops_median": 2 * n * m * k / t["median_s"] / 1e9}


def mlp_flops(module: torch.nn.Module) -> int:
    """Multiply-add FLOPs (2 per MAC) of the Linear layers of ``module`` for one input row."""
    return sum(2 * m.in_features * m.out_features for m in module.modules()
               if isinstance(m, torch.nn.Linear))


def main() -> None:
    args = parser(__doc__).parse_args()
    setup(args)
    secs = 0.05 if args.quick else 0.5
    priors, weights = load_priors()
    gan, vae = priors["gan-s"], priors["vae"]
    big = 256 if args.quick else 4096
    result: dict = {"benchmark": "decode", "weights": weights, "batch_large": big,
                    "matmul": {"square_1024": matmul_flops(1024, 1024, 1024, secs),
                               "decoder_hidden_layer": matmul_flops(big, 512, 512, secs)}}
    peak = result["matmul"]["square_1024"]["gflops_best"]
    decoders = {"gan-s": (gan, gan.generator, gan.latent_dim),
                "vae": (vae, getattr(vae, "decoder", vae), vae.latent_dim)}
    decode: dict = {}
    with torch.no_grad():
        for name, (model, mlp, dim) in decoders.items():
            flops = mlp_flops(mlp)
            decode[name] = {"flops_per_pose": flops}
            for batch in (1, big):
                z = torch.randn(batch, dim)
                t = time_call(lambda m=model, z=z: m.decode(z), min_seconds=secs)
                rate = batch / t["best_s"]
                decode[name][f"batch_{batch}"] = {
                    "poses_per_s": rate, "median_poses_per_s": batch / t["median_s"],
                    "gflops": rate * flops / 1e9, "fraction_of_matmul_peak": rate * flops / 1e9
                    / peak}
            z = torch.randn(big, dim)
            t = time_call(lambda m=model, z=z: m.decode(z, output="rotmat"), min_seconds=secs)
            decode[name][f"batch_{big}_rotmat"] = {"poses_per_s": big / t["best_s"]}
        result["decode"] = decode

        sampling = {}
        for name, model in priors.items():
            g = torch.Generator().manual_seed(0)
            t = time_call(lambda m=model, g=g: m.sample(big, generator=g), min_seconds=secs)
            sampling[name] = {"poses_per_s": big / t["best_s"]}
        result["sampling"] = sampling

        pairs, steps = (64, 16) if args.quick else (1024, 16)
        z0, z1 = gan.sample_latent(pairs), gan.sample_latent(pairs)
        t_slerp = time_call(lambda: gan.interpolate(z0, z1, steps), min_seconds=secs)
        t_path = time_call(lambda: gan(gan.interpolate(z0, z1, steps)), min_seconds=secs)
        v0, v1 = torch.randn(pairs, vae.latent_dim), torch.randn(pairs, vae.latent_dim)
        w = torch.linspace(0, 1, steps)[None, :, None]

        def vae_path() -> torch.Tensor:
            return vae.decode(v0[:, None] + w * (v1 - v0)[:, None])

        t_vae = time_call(vae_path, min_seconds=secs)
        result["interpolation"] = {
            "pairs": pairs, "steps": steps,
            "gan-s_slerp_latents_per_s": pairs * steps / t_slerp["best_s"],
            "gan-s_path_poses_per_s": pairs * steps / t_path["best_s"],
            "vae_linear_path_poses_per_s": pairs * steps / t_vae["best_s"],
            "gmm": "no latent space",
        }
    d = result["decode"]
    result["ratios"] = {
        "gan-s/vae decode batch 1": d["gan-s"]["batch_1"]["poses_per_s"]
        / d["vae"]["batch_1"]["poses_per_s"],
        f"gan-s/vae decode batch {big}": d["gan-s"][f"batch_{big}"]["poses_per_s"]
        / d["vae"][f"batch_{big}"]["poses_per_s"],
        "gan-s/vae sampling": sampling["gan-s"]["poses_per_s"] / sampling["vae"]["poses_per_s"],
        "gan-s/gmm sampling": sampling["gan-s"]["poses_per_s"] / sampling["gmm"]["poses_per_s"],
        "gan-s/vae interpolation path": result["interpolation"]["gan-s_path_poses_per_s"]
        / result["interpolation"]["vae_linear_path_poses_per_s"],
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
