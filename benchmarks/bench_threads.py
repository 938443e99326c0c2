"""Thread count vs machine load: a batched SMPLify-style fit (``fit_keypoints`` with GAN-S) and a
batch-4096 decode, at one thread and at torch's default thread count, with the machine as it is
and with extra busy processes (``python -c 'while True: pass'``, one per logical CPU) running for
the duration of the "busy" rounds. Variants run in turns (interleaved) and the median of the
rounds is reported, so a change of background load hits every variant alike.

Run: ``python benchmarks/bench_threads.py [--out FILE.json] [--rounds 5]`` without
``OMP_NUM_THREADS`` set (torch's default thread count is that variable when it is set).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import torch
from _bench import emit, load_priors, parser, real_poses

DEFAULT_THREADS = torch.get_num_threads()
# A busy process never outlives the benchmark: each is killed after its round, and as a last
# resort exits by itself after this many seconds.
BUSY_TIMEOUT_S = 600


def busy_processes(n: int) -> list[subprocess.Popen]:
    code = (
        f"import time\nend = time.time() + {BUSY_TIMEOUT_S}\nwhile time.time() < end:\n    pass\n"
    )
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--iterations", type=int, default=10, help="fitting iterations")
    p.add_argument(
        "--busy",
        type=int,
        default=os.cpu_count() or 2,
        help="busy processes in the loaded condition (default: one per logical CPU)",
    )
    args = p.parse_args()
    torch.manual_seed(0)
    from advprior.eval.benchmark import make_views, run_fitting

    frames = 8 if args.quick else args.frames
    iterations = 5 if args.quick else args.iterations
    rounds = 2 if args.quick else args.rounds
    priors, weights = load_priors(("gan-s",))
    gan = priors["gan-s"]
    poses, source = real_poses(args.data, frames)
    views = make_views(poses, torch.zeros(frames, 3), seed=0)
    z = torch.randn(256 if args.quick else 4096, 32)

    def fit() -> float:
        return run_fitting(views, gan, iterations=iterations)["seconds"]

    def decode() -> float:
        with torch.inference_mode():
            gan.decode(z)  # warm
            t0 = time.perf_counter()
            for _ in range(5):
                gan.decode(z)
            return (time.perf_counter() - t0) / 5

    thread_counts = sorted({1, DEFAULT_THREADS})
    seconds: dict[str, list[float]] = {}
    load: dict[str, list[list[float]]] = {"as is": [], "busy": []}
    for _ in range(rounds):
        for condition in ("as is", "busy"):
            procs = busy_processes(args.busy) if condition == "busy" else []
            try:
                time.sleep(0.5 if procs else 0.0)  # let the busy processes get scheduled
                load[condition].append(list(os.getloadavg()))
                for threads in thread_counts:
                    torch.set_num_threads(threads)
                    for task, fn in (("fit", fit), ("decode", decode)):
                        key = f"{task} | {condition} | {threads} thread(s)"
                        seconds.setdefault(key, []).append(fn())
            finally:
                stop(procs)
    result: dict = {
        "benchmark": "threads",
        "weights": weights,
        "pose_source": source,
        "frames": frames,
        "fit_iterations": iterations,
        "decode_batch": z.shape[0],
        "default_threads": DEFAULT_THREADS,
        "busy_processes": args.busy,
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "rounds": rounds,
        "load_average_1min": {k: [v[0] for v in vs] for k, vs in load.items()},
        "median_seconds": {k: float(np.median(v)) for k, v in seconds.items()},
        "all_seconds": seconds,
    }
    ratios = {}
    d = DEFAULT_THREADS
    if d != 1:
        for task in ("fit", "decode"):
            for condition in ("as is", "busy"):
                med = result["median_seconds"]
                ratios[f"{task} {condition}: {d} threads / 1 thread (time)"] = (
                    med[f"{task} | {condition} | {d} thread(s)"]
                    / med[f"{task} | {condition} | 1 thread(s)"]
                )
    result["ratios"] = ratios
    emit(result, args.out)


if __name__ == "__main__":
    main()
