"""Shared helpers of the benchmark scripts: timing, the priors under test, JSON output.

Every ``bench_*.py`` prints one JSON object and, with ``--out FILE``, writes it atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from advprior.fileio import write_text_atomic

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "data" / "mocap30.npz"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    p.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="dataset .npz for real poses (synthetic poses if missing)",
    )
    return p


def setup(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)


def machine() -> dict[str, object]:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def time_call(
    fn: Callable[[], object], *, min_seconds: float = 0.5, repeats: int = 5, max_calls: int = 10_000
) -> dict[str, float]:
    """Wall seconds per call of ``fn``: the best and the median of ``repeats`` rounds, each
    round running ``fn`` enough times to last ``min_seconds``. One warm-up call first."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    calls = int(min(max_calls, max(1, min_seconds / once)))
    rounds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - t0) / calls)
    return {
        "best_s": float(min(rounds)),
        "median_s": float(np.median(rounds)),
        "calls_per_round": calls,
        "rounds": repeats,
    }


def time_interleaved(
    variants: dict[str, Callable[[], object]], *, min_seconds: float = 0.2, rounds: int = 7
) -> dict[str, dict[str, float]]:
    """Seconds per call of each variant, measured in turns: round r times every variant once
    (each for about ``min_seconds``) before round r + 1 starts, so a change in the machine's
    load hits all variants alike. Returns the median and best round per variant."""
    calls = {}
    for name, fn in variants.items():
        fn()
        t0 = time.perf_counter()
        fn()
        calls[name] = int(min(10_000, max(1, min_seconds / max(time.perf_counter() - t0, 1e-7))))
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            seconds[name].append((time.perf_counter() - t0) / calls[name])
    return {
        name: {
            "median_s": float(np.median(s)),
            "best_s": float(min(s)),
            "calls_per_round": calls[name],
            "rounds": rounds,
        }
        for name, s in seconds.items()
    }


def synced(fn: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """``fn`` followed by a device synchronisation (CUDA work is asynchronous)."""
    if device.type != "cuda":
        return fn

    def call() -> object:
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return call


def load_priors(
    names: tuple[str, ...] = ("gan-s", "vae", "gmm"), device: str = "cpu"
) -> tuple[dict, dict]:
    """The shipped priors by alias; an alias that is not available yet is replaced by an
    untrained model of the same architecture (same speed, meaningless accuracy), and says so.

    Returns ``({alias: model}, {alias: "pretrained" | "untrained stand-in: <why>"})``.
    """
    from advprior.hub import load_pretrained

    models, weights = {}, {}
    for name in names:
        try:
            models[name] = load_pretrained(name)
            weights[name] = "pretrained"
        except (FileNotFoundError, ValueError, OSError) as err:
            models[name] = _untrained(name)
            weights[name] = f"untrained stand-in ({type(err).__name__})"
        models[name].eval().to(device)
        for p in models[name].parameters():
            p.requires_grad_(False)
    return models, weights


def _untrained(name: str) -> torch.nn.Module:
    from advprior.baselines import GMMPrior, VPoserVAE
    from advprior.prior import PosePrior

    if name.startswith("gan-"):
        return PosePrior({"s": "sphere", "u": "uniform", "n": "normal"}[name[-1]])
    if name == "vae":
        return VPoserVAE()
    if name == "gmm":
        gmm = GMMPrior()
        gmm.covariances.mul_(0.05)  # unit covariances give absurd poses; speed is the same
        return gmm
    raise ValueError(f"unknown prior {name!r}")


def real_poses(path: Path, n: int, split: str = "test", seed: int = 0) -> tuple[torch.Tensor, str]:
    """``n`` body poses ``(n, 63)`` from ``split`` of the dataset, or small random poses when
    the dataset file is missing; returns the poses and where they came from."""
    g = torch.Generator().manual_seed(seed)
    if Path(path).is_file():
        from advprior.eval.data import load_split

        poses = load_split(path, split).body_pose
        idx = torch.randint(poses.shape[0], (n,), generator=g)
        return poses[idx], f"{path.name} ({split} split)"
    return torch.randn(n, 63, generator=g) * 0.2, "synthetic N(0, 0.2^2) axis-angle"


def emit(result: dict, out: Path | None) -> None:
    result = {"machine": machine(), **result}
    text = json.dumps(result, indent=2) + "\n"
    if out is not None:
        write_text_atomic(out, text)
    sys.stdout.write(text)
