"""Why a prior fits 2D keypoints as well as it does: representability, optimisation, preference.

    python benchmarks/diagnose_fitting.py --data data/mocap30_v5.npz --split val --frames 128 \
        --priors gan-s gan-u vae [--starts 1 4] [--keypoints coco17] [--json out.json] \
        [--markdown out.md] [--pose-weights 0 1 2 3]

Uses the fitting benchmark's views (:func:`advprior.eval.benchmark.make_views`: 5 px noise,
20% dropped, random heading and elevation; ``--keypoints`` smpl24, coco17 or openpose25, fitted
in the same format) of ``--frames`` poses of ``--split`` (validation: this
is where choices are made; never the test split) and
:func:`advprior.eval.benchmark.diagnose_fitting` per prior and number of starts. A prior is an
alias or a model folder (``runs/x/model``); ``name=path`` labels it. The fits use
``fit_keypoints``' defaults (``pose_density="auto"``: the bundled GMM's energy for GAN-S) unless
``--pose-weights`` asks for the GMM's energy at given weights for every prior (0: none).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def load(spec: str):
    from advprior.hub import load_pretrained

    name, _, path = spec.partition("=")
    return (name, load_pretrained(path or name))


def _pose_density_kwargs(weight: float) -> dict:
    """``fit_keypoints`` keywords for the bundled GMM's pose energy at ``weight`` (0: none)."""
    if weight == 0:
        return {"pose_density": None, "pose_weight": 0.0}
    return {"pose_density": "gmm", "pose_weight": weight}


def table(rows: dict[str, dict]) -> str:
    lines = [
        "| prior | fit P-MPJPE (observed / not observed) | representability (obs / not obs) | "
        "oracle | misses: frames, excess mm | preferences: frames, excess mm | "
        "fine: excess mm | fit below truth objective | s / frame |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        e = r["p_mpjpe_mm"]
        n = r["frames"]
        lines.append(
            f"| {name} | {e['fit']['all']:.1f} ({e['fit']['observed']:.1f} / "
            f"{e['fit']['dropped']:.1f}) | {e['representability']['all']:.1f} "
            f"({e['representability']['observed']:.1f} / {e['representability']['dropped']:.1f})"
            f" | {e['oracle']['all']:.1f} | {r['frames_miss']}/{n}, {r['excess_mm']['miss']:.1f} "
            f"| {r['frames_prefer']}/{n}, {r['excess_mm']['prefer']:.1f} | "
            f"{r['excess_mm']['fine']:.1f} | {r['frames_below_truth_objective']}/{n} | "
            f"{r['fit_seconds'] / n:.3f} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO / "data" / "mocap30_v5.npz")
    ap.add_argument(
        "--split",
        default="val",
        choices=("train", "val"),
        help="never the test split: diagnosis drives choices",
    )
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument(
        "--keypoints",
        choices=("smpl24", "coco17", "openpose25", "openpose25b"),
        default="smpl24",
        help="observed keypoint set, fitted in the same format",
    )
    ap.add_argument(
        "--subjects",
        nargs="+",
        default=None,
        help="only frames of these subjects (e.g. those an older model never saw)",
    )
    ap.add_argument("--priors", nargs="+", default=["gan-s", "gan-u", "vae"])
    ap.add_argument("--starts", nargs="+", type=int, default=[1])
    ap.add_argument(
        "--density-weights",
        nargs="+",
        type=float,
        default=[],
        help="also fit sphere priors with a vMF-mixture latent density of training "
        "poses at these weights",
    )
    ap.add_argument(
        "--density-poses", type=int, default=4000, help="training poses inverted to fit the density"
    )
    ap.add_argument("--density-components", type=int, default=16)
    ap.add_argument(
        "--density-only",
        action="store_true",
        help="skip the runs without the density for sphere priors",
    )
    ap.add_argument(
        "--density-cache",
        type=Path,
        default=None,
        help="folder caching each prior's fitted density (reused when present)",
    )
    ap.add_argument(
        "--invert-restarts",
        type=int,
        default=1,
        help="restarts of the inversion that defines the truth's latent",
    )
    ap.add_argument("--invert-steps", type=int, default=50)
    ap.add_argument(
        "--pose-weights",
        nargs="+",
        type=float,
        default=None,
        help="fit every prior with the bundled GMM's pose energy at these weights (0: without "
        "any pose density) instead of the default pose_density='auto'",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--markdown", type=Path, default=None)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from advprior.data import load_dataset
    from advprior.eval.benchmark import diagnose_fitting, make_views

    data = load_dataset(args.data, split=args.split)
    pool = torch.arange(data.body_pose.shape[0])
    if args.subjects:
        known = [data.subject_names.index(s) for s in args.subjects]
        pool = pool[torch.isin(data.subject, torch.tensor(known, dtype=data.subject.dtype))]
    gen = torch.Generator().manual_seed(args.seed)
    idx = pool[torch.randperm(len(pool), generator=gen)[: min(args.frames, len(pool))]].sort()
    idx = idx.values
    views = make_views(
        data.body_pose[idx], data.global_orient[idx], seed=args.seed, keypoints=args.keypoints
    )
    rows: dict[str, dict] = {}
    for spec in args.priors:
        name, prior = load(spec)
        # (starts, latent density, its weight, pose-density keywords)
        if args.pose_weights is None:
            variants = [(s, None, 0.0, {}) for s in args.starts]
        else:
            variants = [
                (s, None, 0.0, _pose_density_kwargs(w))
                for s in args.starts
                for w in args.pose_weights
            ]
        if args.density_weights and getattr(prior, "latent", None) == "sphere":
            from advprior.fitting.latent_density import VMFMixture, fit_latent_density

            cache = None
            if args.density_cache:
                tag = name.replace("/", "_")
                cache = (
                    args.density_cache / f"{tag}_{args.density_components}_{args.density_poses}.pt"
                )
            if cache is not None and cache.is_file():
                state = torch.load(cache, weights_only=True)
                density = VMFMixture(state["mu"], state["kappa"], state["weight"])
                print(f"{name}: density from {cache}", flush=True)
            else:
                train = load_dataset(args.data, split="train").body_pose
                pick = torch.randperm(
                    train.shape[0], generator=torch.Generator().manual_seed(args.seed)
                )[: args.density_poses]
                t = time.perf_counter()
                density = fit_latent_density(
                    prior, train[pick], components=args.density_components, seed=args.seed
                )
                print(
                    f"{name}: vMF mixture of {args.density_components} on {len(pick)} inverted "
                    f"training poses in {time.perf_counter() - t:.0f} s; kappa "
                    f"{density.kappa.min():.0f}-{density.kappa.max():.0f}",
                    flush=True,
                )
                if cache is not None:
                    from advprior.train.checkpoint import save_atomic

                    cache.parent.mkdir(parents=True, exist_ok=True)
                    save_atomic(dict(density.state_dict()), cache)
            if args.density_only:
                variants = []
            variants += [(s, density, w, {}) for s in args.starts for w in args.density_weights]
        for s, density, w, pose_kw in variants:
            label = name if len(args.starts) == 1 else f"{name}, {s} start(s)"
            if density is not None:
                label += f", density w={w:g}"
            if pose_kw:
                label += f", pose density w={pose_kw.get('pose_weight', 0.0):g}"
            t = time.perf_counter()
            extra = {} if density is None else {"latent_density": density, "latent_weight": w}
            extra.update(pose_kw)
            inv = {"restarts": args.invert_restarts, "steps": args.invert_steps}
            r = diagnose_fitting(views, prior, starts=s, invert_kwargs=inv, **extra)
            rows[label] = r
            print(
                f"{label}: fit {r['p_mpjpe_mm']['fit']['all']:.1f} rep "
                f"{r['p_mpjpe_mm']['representability']['all']:.1f} oracle "
                f"{r['p_mpjpe_mm']['oracle']['all']:.1f} miss {r['frames_miss']} "
                f"({r['excess_mm']['miss']:.1f}) prefer {r['frames_prefer']} "
                f"({r['excess_mm']['prefer']:.1f}) fine {r['excess_mm']['fine']:.1f} "
                f"[{time.perf_counter() - t:.0f} s]",
                flush=True,
            )
    print(table(rows))
    meta = {
        "data": str(args.data),
        "split": args.split,
        "subjects": args.subjects,
        "frames": len(idx),
        "keypoints": args.keypoints,
        "seed": args.seed,
        "command": "python benchmarks/diagnose_fitting.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if args.json:
        from advprior.fileio import write_text_atomic

        out = {k: {kk: vv for kk, vv in v.items() if kk != "per_frame"} for k, v in rows.items()}
        write_text_atomic(args.json, json.dumps({**meta, "priors": out}, indent=1))
    if args.markdown:
        from advprior.fileio import write_text_atomic

        write_text_atomic(args.markdown, table(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
