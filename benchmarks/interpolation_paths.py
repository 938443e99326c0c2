"""Interpolation quality: R and the path ratio of ``advprior eval``, for the priors' own
latent paths and for geodesic paths (:mod:`advprior.geodesic`).

    python benchmarks/interpolation_paths.py --data data/mocap30_v5.npz --split val \
        --models gan-s vae=runs/v5-base/vae/model [--pairs 128 --steps 16] [--geodesic 100 300]

Same paths as ``advprior eval`` (:func:`advprior.eval.protocol.interpolation_paths`: GANs invert
both ends and slerp/lerp the latents, the VAE lerps its encoder means, ``joint slerp`` turns
every joint at constant speed between the real poses), on random pairs of frames from different
sequences; R on every vertex of the stand-in body, the path ratio on the 24 joints. Choices
(the geodesic iteration count) are made on ``--split val``; ``--split test --write-docs`` is
the one measurement on the test split, written as a generated block into docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--models", nargs="+", required=True, help="alias, folder or name=folder")
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--subjects", nargs="+", default=None, help="only frames of these subjects")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--geodesic",
        type=int,
        nargs="*",
        default=[],
        help="also the geodesic paths (advprior.geodesic) with these L-BFGS iteration counts",
    )
    ap.add_argument("--write-docs", action="store_true", help="table into docs/results.md")
    ap.add_argument("--strip", type=Path, default=None, help="PNG: bodies along one pair per row")
    ap.add_argument(
        "--strip-pair",
        default="0",
        help="the pair the strip shows: an index, or 'detour' for the pair whose path of the "
        "first model detours most (largest path ratio)",
    )
    ap.add_argument("--strip-rows", nargs="+", default=None, help="rows of the strip (default all)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from advprior.body import load_body_model
    from advprior.data import load_dataset
    from advprior.eval import protocol
    from advprior.eval.runner import _pairs
    from advprior.hub import load_pretrained

    data = load_dataset(args.data, split=args.split)
    keep = torch.ones(data.body_pose.shape[0], dtype=torch.bool)
    if args.subjects:
        known = torch.tensor([data.subject_names.index(s) for s in args.subjects])
        keep = torch.isin(data.subject, known.to(data.subject.dtype))
    poses, sequence = data.body_pose[keep], data.sequence[keep]
    g = torch.Generator().manual_seed(args.seed)
    a, b = _pairs(poses, sequence, args.pairs, g)
    pose_a, pose_b = poses[a], poses[b]
    body = load_body_model()
    poser = protocol.Poser(body)
    rows = {}
    strip = {}
    detour = args.strip_pair == "detour"
    pair = None if detour else int(args.strip_pair)  # detour: known after the first run
    shown = np.unique(np.linspace(0, args.steps - 1, min(args.steps, 7)).round().astype(int))
    table = [
        "| paths | R mean | R median | path ratio mean | path ratio median | s per "
        f"{args.pairs} paths |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    models = [m.partition("=") for m in args.models] + [("joint slerp", "", "")]
    runs = [(name, path, 0) for name, _, path in models]
    runs += [
        (f"{name} geodesic {it}", path, it)
        for it in args.geodesic
        for name, _, path in models
        if name != "joint slerp"
    ]
    for name, path, iterations in runs:
        model = None if name == "joint slerp" else load_pretrained(path or name.split()[0])
        t0 = time.perf_counter()
        got = protocol.interpolation_paths(
            model,
            pose_a,
            pose_b,
            args.steps,
            invert_kwargs={"body_model": body},
            geodesic=iterations,
        )
        seconds = time.perf_counter() - t0
        if got is None:
            continue
        paths, how = got
        r, _ = protocol.smoothness(poser, paths)
        ratio = protocol.path_ratio(paths, body)
        if pair is None:  # the first run is the first model's own path
            pair = int(ratio.argmax())
        if args.strip is not None and (args.strip_rows is None or name in args.strip_rows):
            one = paths[pair, shown]
            strip[name.replace(" geodesic", "\ngeodesic")] = poser(one, all_vertices=True)[
                "vertices"
            ].numpy()
        rows[name] = {
            "R_mean": float(r.mean()),
            "R_median": float(r.median()),
            "path_ratio_mean": float(ratio.mean()),
            "path_ratio_median": float(ratio.median()),
            "method": how,
            "seconds": seconds,
        }
        table.append(
            f"| {name} | {r.mean():.2f} | {r.median():.2f} | {ratio.mean():.2f} | "
            f"{ratio.median():.2f} | {seconds:.1f} |"
        )
        print(table[-1], flush=True)
    if args.json:
        from advprior.fileio import write_text_atomic

        write_text_atomic(
            args.json,
            json.dumps(
                {
                    "args": {
                        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                    },
                    "strip_pair_shown": pair,
                    "rows": rows,
                },
                indent=1,
            ),
        )
    if args.strip is not None:
        from advprior.eval.plots import interpolation_strip

        interpolation_strip(strip, np.asarray(body.faces), args.strip)
    if args.write_docs:
        write_docs(args, table, pair, detour)
    return 0


def write_docs(args: argparse.Namespace, table: list[str], pair: int, detour: bool) -> None:
    import datetime
    import platform

    from advprior.eval.benchmark import write_generated_block

    command = " ".join(["python benchmarks/interpolation_paths.py", *sys.argv[1:]])
    head = [
        "## Geodesic paths",
        "",
        f"Generated by `{command}` on {datetime.date.today()} (torch {torch.__version__}, "
        f"1 thread, {platform.processor() or platform.machine()}).",
        f"Data: `{args.data.name}`, {args.pairs} random pairs of `{args.split}` frames from "
        f"different sequences (seed {args.seed}), {args.steps} poses per path including both "
        "ends, both ends inverted as in the table above (the pairs differ from the table "
        "above: both path kinds are compared here on the same pairs). `NAME geodesic N`: the "
        "prior's own path (slerp on the sphere, linear otherwise) shortened by N L-BFGS "
        "iterations of `advprior.geodesic.geodesic_path` (`prior.interpolate(z0, z1, steps, "
        "geodesic=True)`); every pose on it is still a decoded latent. Seconds include "
        "inverting both ends. The iteration count was chosen on the validation split (128 "
        "pairs, GAN-S path ratio mean 1.14 / 1.08 / 1.07 at 100 / 300 / 600 iterations); this "
        "is the one test measurement.",
        "",
    ]
    if args.strip is not None:
        rel = os.path.relpath(args.strip.resolve(), DOCS)
        table = [
            *table,
            "",
            f"Pair {pair} of the table"
            + (
                f" (the pair where {args.models[0].partition('=')[0]}'s own path detours most)"
                if detour
                else ""
            )
            + ", by path kind (rows; each row starts and ends at that prior's own "
            "reconstruction of the two real poses):",
            "",
            f"![geodesic and latent paths]({rel})",
        ]
    write_generated_block(
        DOCS / "results.md",
        "benchmarks/interpolation_paths.py",
        "\n".join(head + table),
    )


if __name__ == "__main__":
    sys.exit(main())
