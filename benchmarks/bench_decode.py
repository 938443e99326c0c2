"""Decode, sampling and latent-interpolation throughput of GAN-S beside the VAE and the GMM,
next to the machine's measured matmul FLOP/s (the ceiling a decoder MLP can reach); and the
cost of decoding next to the bare decoder MLP (same model, same thread count, measured in
turns in one run), at one thread and at torch's default thread count, with onnxruntime running
the exported file beside PyTorch.

Run: ``python benchmarks/bench_decode.py [--out FILE.json] [--threads 1] [--device cpu]``.
Run it without ``OMP_NUM_THREADS`` set, or torch's "default" thread count is that variable.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from _bench import emit, load_priors, parser, setup, synced, time_call, time_interleaved

# torch's own default, read before setup() pins the thread count
DEFAULT_THREADS = torch.get_num_threads()
OUTPUT_KINDS = ("axis_angle", "rotmat", "quat", "rot6d")
# The goals of docs/performance.md: throughput ratios (decode / bare MLP, higher is better)
# and time ratios (decode / bare MLP, lower is better).
GOALS = {
    "axis_angle_throughput_ratio": 0.75,
    "rotmat_throughput_ratio": 0.9,
    "batch1_time_ratio": 2.0,
    "gradient_time_ratio": 2.0,
}


def matmul_flops(
    n: int, m: int, k: int, min_seconds: float, device: torch.device
) -> dict[str, float]:
    """FLOP/s of an ``(n, k) @ (k, m)`` float32 matmul (2nmk FLOPs per call)."""
    a, b = torch.randn(n, k, device=device), torch.randn(k, m, device=device)
    out = torch.empty(n, m, device=device)
    t = time_call(synced(lambda: torch.mm(a, b, out=out), device), min_seconds=min_seconds)
    return {
        "shape": [n, k, m],
        "gflops_best": 2 * n * m * k / t["best_s"] / 1e9,
        "gflops_median": 2 * n * m * k / t["median_s"] / 1e9,
    }


def mlp_flops(module: torch.nn.Module) -> int:
    """Multiply-add FLOPs (2 per MAC) of the Linear layers of ``module`` for one input row."""
    return sum(
        2 * m.in_features * m.out_features
        for m in module.modules()
        if isinstance(m, torch.nn.Linear)
    )


def _mlp(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "generator", None) or model.decoder


def _onnx_sessions(model_name: str, threads: int, folder: Path) -> dict:
    """onnxruntime sessions of the exported decoder (axis-angle, rotation matrices), or why
    there are none."""
    try:
        import onnxruntime as ort

        from advprior.export import export_prior
    except ImportError as err:
        return {"unavailable": f"{err}"}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sessions = {}
    for kind in ("axis_angle", "rotmat"):
        path = folder / f"{model_name}-{kind}.onnx"
        if not path.exists():
            export_prior(model_name, path, output_kind=kind)
        sessions[kind] = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sessions


def versus_mlp(
    models: dict,
    big: int,
    device: torch.device,
    threads: int,
    secs: float,
    rounds: int,
    folder: Path,
) -> dict:
    """Decode next to the bare MLP at ``threads`` threads, every variant timed in turns."""
    torch.set_num_threads(threads)
    out: dict = {"threads": threads}
    g = torch.Generator().manual_seed(0)
    for name, model in models.items():
        mlp = _mlp(model)
        dim = mlp[0].in_features
        z1 = torch.randn(1, dim, generator=g).to(device)
        zb = torch.randn(big, dim, generator=g).to(device)
        variants = {}
        for batch, z in ((1, z1), (big, zb)):
            variants[f"mlp b{batch}"] = lambda z=z, f=mlp: f(z)
            for kind in OUTPUT_KINDS:
                variants[f"{kind} b{batch}"] = lambda z=z, k=kind, m=model: m.decode(z, output=k)
        sessions = (
            _onnx_sessions(name, threads, folder)
            if device.type == "cpu"
            else {"unavailable": "onnxruntime measured on CPU only"}
        )
        for kind, session in sessions.items():
            if kind == "unavailable":
                continue
            for batch, z in ((1, z1), (big, zb)):
                feed = {"z": z.cpu().numpy()}
                variants[f"onnxruntime {kind} b{batch}"] = lambda s=session, f=feed: s.run(None, f)
        with torch.inference_mode():
            t = time_interleaved(
                {k: synced(f, device) for k, f in variants.items()}, min_seconds=secs, rounds=rounds
            )
        # gradients: forward + backward to z, bare MLP vs decode (axis-angle and rotmat)
        grads = {}
        for batch, z in ((1, z1), (big, zb)):
            zg = z.clone().requires_grad_(True)
            w6 = torch.randn(batch, mlp[-1].out_features, generator=g).to(device)
            waa = torch.randn(batch, mlp[-1].out_features // 2, generator=g).to(device)
            wrm = torch.randn(batch, mlp[-1].out_features // 6, 3, 3, generator=g).to(device)
            grads[f"mlp grad b{batch}"] = lambda zg=zg, w=w6, f=mlp: torch.autograd.grad(
                (f(zg) * w).sum(), zg
            )
            grads[f"axis_angle grad b{batch}"] = lambda zg=zg, w=waa, m=model: torch.autograd.grad(
                (m.decode(zg) * w).sum(), zg
            )
            grads[f"rotmat grad b{batch}"] = lambda zg=zg, w=wrm, m=model: torch.autograd.grad(
                (m.decode(zg, output="rotmat") * w).sum(), zg
            )
        t.update(
            time_interleaved(
                {k: synced(f, device) for k, f in grads.items()}, min_seconds=secs, rounds=rounds
            )
        )
        ratios = {}
        for batch in (1, big):
            mlp_s = t[f"mlp b{batch}"]["median_s"]
            for kind in OUTPUT_KINDS:
                ratios[f"{kind} b{batch} throughput ratio"] = (
                    mlp_s / t[f"{kind} b{batch}"]["median_s"]
                )
            for kind in sessions:
                if kind != "unavailable":
                    ratios[f"onnxruntime/pytorch {kind} b{batch} throughput ratio"] = (
                        t[f"{kind} b{batch}"]["median_s"]
                        / t[f"onnxruntime {kind} b{batch}"]["median_s"]
                    )
            for kind in ("axis_angle", "rotmat"):
                ratios[f"{kind} grad b{batch} time ratio"] = (
                    t[f"{kind} grad b{batch}"]["median_s"] / t[f"mlp grad b{batch}"]["median_s"]
                )
        goals = {
            "axis_angle_throughput_ratio": ratios[f"axis_angle b{big} throughput ratio"],
            "rotmat_throughput_ratio": ratios[f"rotmat b{big} throughput ratio"],
            "batch1_time_ratio": 1.0
            / min(ratios[f"{k} b1 throughput ratio"] for k in OUTPUT_KINDS),
            "gradient_time_ratio": max(
                ratios[f"{k} grad b{big} time ratio"] for k in ("axis_angle", "rotmat")
            ),
        }
        met = {k: (v >= GOALS[k] if "throughput" in k else v <= GOALS[k]) for k, v in goals.items()}
        ops = {"mlp": count_ops(lambda f=mlp, z=z1: f(z))}
        ops.update(
            {
                kind: count_ops(lambda k=kind, m=model, z=z1: m.decode(z, output=k))
                for kind in OUTPUT_KINDS
            }
        )
        out[name] = {
            "seconds": t,
            "ratios": ratios,
            "goals": goals,
            "goal_met": met,
            "ops_batch_1": ops,
            "onnxruntime": sessions.get("unavailable", "measured"),
        }
        if not all(met.values()):
            out[name]["profile"] = profile_decode(model, z1, zb)
    return out


def count_ops(fn: Callable[[], object]) -> int:
    """Number of torch operator calls (aten dispatches, views included) that ``fn`` makes."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    with torch.inference_mode(), Count():
        fn()
    return Count.calls


def profile_decode(model: torch.nn.Module, z1: torch.Tensor, zb: torch.Tensor) -> dict:
    """torch.profiler tables (self time per op): axis-angle decode at batch 1, axis-angle and
    rotation-matrix decode at the large batch."""
    tables = {}
    cases = (("axis_angle", z1, 200), ("axis_angle", zb, 5), ("rotmat", zb, 5))
    for kind, z, reps in cases:
        with torch.inference_mode():
            model.decode(z, output=kind)
            with torch.profiler.profile() as prof:
                for _ in range(reps):
                    model.decode(z, output=kind)
        tables[f"{kind}, batch {z.shape[0]}"] = {
            "calls": reps,
            "table": prof.key_averages().table(
                sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=28
            ),
        }
    return tables


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median reported)")
    args = p.parse_args()
    setup(args)
    device = torch.device(args.device)
    secs = 0.05 if args.quick else 0.5
    priors, weights = load_priors(device=args.device)
    gan, vae = priors["gan-s"], priors["vae"]
    big = 256 if args.quick else 4096
    result: dict = {
        "benchmark": "decode",
        "weights": weights,
        "batch_large": big,
        "device": str(device),
        "matmul": {
            "square_1024": matmul_flops(1024, 1024, 1024, secs, device),
            "decoder_hidden_layer": matmul_flops(big, 512, 512, secs, device),
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        result["versus_mlp"] = {
            "goals": GOALS,
            "default_threads": DEFAULT_THREADS,
            "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
            "load_average_before": os.getloadavg(),
            "runs": [
                versus_mlp(
                    {"gan-s": gan, "vae": vae},
                    big,
                    device,
                    threads,
                    0.02 if args.quick else 0.2,
                    3 if args.quick else args.rounds,
                    Path(tmp),
                )
                for threads in sorted({1, DEFAULT_THREADS})
            ],
            "load_average_after": os.getloadavg(),
        }
    torch.set_num_threads(args.threads)
    peak = result["matmul"]["square_1024"]["gflops_best"]
    decoders = {
        "gan-s": (gan, gan.generator, gan.latent_dim),
        "vae": (vae, getattr(vae, "decoder", vae), vae.latent_dim),
    }
    decode: dict = {}
    with torch.no_grad():
        for name, (model, mlp, dim) in decoders.items():
            flops = mlp_flops(mlp)
            decode[name] = {"flops_per_pose": flops}
            for batch in (1, big):
                z = torch.randn(batch, dim, device=device)
                t = time_call(synced(lambda m=model, z=z: m.decode(z), device), min_seconds=secs)
                rate = batch / t["best_s"]
                decode[name][f"batch_{batch}"] = {
                    "poses_per_s": rate,
                    "median_poses_per_s": batch / t["median_s"],
                    "gflops": rate * flops / 1e9,
                    "fraction_of_matmul_peak": rate * flops / 1e9 / peak,
                }
            z = torch.randn(big, dim, device=device)
            t = time_call(
                synced(lambda m=model, z=z: m.decode(z, output="rotmat"), device), min_seconds=secs
            )
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
        v0 = torch.randn(pairs, vae.latent_dim, device=device)
        v1 = torch.randn(pairs, vae.latent_dim, device=device)
        w = torch.linspace(0, 1, steps, device=device)[None, :, None]

        def vae_path() -> torch.Tensor:
            return vae.decode(v0[:, None] + w * (v1 - v0)[:, None])

        t_vae = time_call(vae_path, min_seconds=secs)
        result["interpolation"] = {
            "pairs": pairs,
            "steps": steps,
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
