"""Training speed on this machine: GAN steps/s (one generator update after 10 discriminator
updates, batch 128) beside VAE steps/s (one update, batch 128) and the GMM's EM fit time.

Steps/s is timed between the first and the last step callback, so start-up is excluded.
Run: ``python benchmarks/bench_training.py [--out FILE.json] [--threads 1]``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from _bench import emit, parser, setup


def _synthetic(path: Path, n: int = 6000) -> Path:
    rng = np.random.default_rng(0)
    np.savez(
        path,
        body_pose=(rng.normal(size=(n, 63)) * 0.2).astype(np.float32),
        global_orient=np.zeros((n, 3), np.float32),
        transl=np.zeros((n, 3), np.float32),
        sequence=np.repeat(np.arange(n // 100), 100).astype(np.int32),
        subject=np.repeat(np.arange(n // 1000), 1000).astype(np.int32),
        split=np.tile(np.array([0] * 8 + [1, 2], np.int8), n // 10),
        sequence_names=np.array([f"s{i}" for i in range(n // 100)]),
        subject_names=np.array([f"p{i}" for i in range(n // 1000)]),
        split_names=np.array(["train", "validation", "test"]),
        fps=np.float32(30),
        meta=np.array("{}"),
    )
    return path


def _steps_per_s(train, data: Path, out: Path, steps: int, **kw) -> dict[str, float]:
    stamps: list[float] = []
    result = train(
        data,
        out,
        steps=steps,
        val_every=0,
        ckpt_every=0,
        progress=False,
        tensorboard=False,
        export=False,
        callback=lambda step, losses: stamps.append(time.perf_counter()),
        **kw,
    )
    del result
    span = stamps[-1] - stamps[0]
    return {"steps": steps, "steps_per_s": (len(stamps) - 1) / span, "timed_steps": len(stamps) - 1}


def main() -> None:
    args = parser(__doc__).parse_args()
    setup(args)
    from advprior.train import fit_gmm, train_gan, train_vae

    steps_gan, steps_vae = (4, 8) if args.quick else (40, 400)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data if args.data.is_file() else _synthetic(tmp / "synthetic.npz")
        gan = _steps_per_s(train_gan, data, tmp / "gan", steps_gan)
        vae = _steps_per_s(train_vae, data, tmp / "vae", steps_vae)
        t0 = time.perf_counter()
        fit_gmm(
            data,
            tmp / "gmm",
            export=False,
            max_iter=20 if args.quick else 200,
            max_samples=2000 if args.quick else 0,
        )
        gmm_s = time.perf_counter() - t0
    result = {
        "benchmark": "training",
        "data": data.name if args.data.is_file() else "synthetic",
        "gan-s": {**gan, "batch": 128, "d_steps_per_step": 10},
        "vae": {**vae, "batch": 128},
        "gmm": {"fit_seconds": gmm_s, "components": 8},
        "ratios": {
            "gan-s/vae steps per s": gan["steps_per_s"] / vae["steps_per_s"],
            "gan-s/vae updates per s (incl. D updates)": 11
            * gan["steps_per_s"]
            / vae["steps_per_s"],
        },
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
