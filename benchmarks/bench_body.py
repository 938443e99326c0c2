"""Body benchmark: forward kinematics, the stand-in's build/load, and mesh posing speed.

    python benchmarks/bench_body.py [--threads 1] [--quick] [--out benchmarks/results/body.json]

Prints one JSON object:

- ``fk``: ``advprior.body.forward_kinematics`` on N random poses (63-d, no shape), seconds per
  call and poses per second, for N in ``fk_batches``; also with betas and a body model;
- ``standin``: seconds to generate the stand-in's arrays, to load it through smplx from the
  cache (a fresh ``load_body_model()``), its vertex/face counts and the largest
  ``|J_regressor @ v_template - REST_JOINTS|`` in metres;
- ``mesh``: ``BodyModel`` forward (vertices + joints) seconds per call and bodies per second for
  the batches in ``mesh_batches``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402


def main() -> None:
    args = _bench.parser(__doc__.splitlines()[0]).parse_args()
    _bench.setup(args)
    import os

    from advprior.body import forward_kinematics, load_body_model
    from advprior.body.standin import build_standin
    from advprior.skeleton import REST_JOINTS

    fk_batches = (1, 100) if args.quick else (1, 100, 10_000)
    mesh_batches = (1, 8) if args.quick else (1, 32, 256)
    timing = {"min_seconds": 0.05, "repeats": 2} if args.quick else {}

    fk = {}
    for n in fk_batches:
        go, bp = torch.randn(n, 3) * 0.5, torch.randn(n, 63) * 0.5
        t = _bench.time_call(lambda go=go, bp=bp: forward_kinematics(go, bp), **timing)
        fk[str(n)] = {**t, "poses_per_s": n / t["best_s"]}

    with tempfile.TemporaryDirectory() as cache:
        os.environ["ADVPRIOR_CACHE"] = cache
        t0 = time.perf_counter()
        data = build_standin()
        build_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = load_body_model()  # built in memory (the cache file is for smplx users)
        first_load_s = time.perf_counter() - t0
        load = _bench.time_call(
            load_body_model,
            **({"min_seconds": 0.05, "repeats": 2} if args.quick else {"min_seconds": 1.0}),
        )
    err = float(np.abs(data["J_regressor"] @ data["v_template"] - REST_JOINTS).max())

    n = fk_batches[-1]
    go, bp, betas = torch.randn(n, 3) * 0.5, torch.randn(n, 63) * 0.5, torch.randn(n, 10)
    t = _bench.time_call(lambda: forward_kinematics(go, bp, betas, body_model=model), **timing)
    fk[f"{n}_with_betas"] = {**t, "poses_per_s": n / t["best_s"]}

    mesh = {}
    with torch.no_grad():
        for b in mesh_batches:
            go, bp = torch.randn(b, 3) * 0.5, torch.randn(b, 63) * 0.5
            t = _bench.time_call(lambda go=go, bp=bp: model(go, bp), **timing)
            mesh[str(b)] = {**t, "bodies_per_s": b / t["best_s"]}

    _bench.emit(
        {
            "fk": fk,
            "standin": {
                "build_s": build_s,
                "first_load_s": first_load_s,
                "cached_load": load,
                "vertices": int(len(data["v_template"])),
                "faces": int(len(data["f"])),
                "regressor_max_error_m": err,
            },
            "mesh": mesh,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
