"""Interpolation quality on a validation split: R and the path ratio of ``advprior eval``.

    python benchmarks/interpolation_paths.py --data data/mocap30_v5.npz --split val \
        --models gan-s vae=runs/v5-base/vae/model [--pairs 128 --steps 16]

Same paths as ``advprior eval`` (:func:`advprior.eval.protocol.interpolation_paths`: GANs invert
both ends and slerp/lerp the latents, the VAE lerps its encoder means, ``joint slerp`` turns
every joint at constant speed between the real poses), on random pairs of frames from different
sequences; R on every vertex of the stand-in body, the path ratio on the 24 joints. For choices
made on validation, without touching the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="val", choices=("train", "val"))
    ap.add_argument("--models", nargs="+", required=True, help="alias, folder or name=folder")
    ap.add_argument("--pairs", type=int, default=128)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--subjects", nargs="+", default=None, help="only frames of these subjects")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
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
    models = [m.partition("=") for m in args.models] + [("joint slerp", "", "")]
    for name, _, path in models:
        model = None if name == "joint slerp" else load_pretrained(path or name)
        got = protocol.interpolation_paths(
            model, pose_a, pose_b, args.steps, invert_kwargs={"body_model": body}
        )
        if got is None:
            continue
        paths, how = got
        r, _ = protocol.smoothness(poser, paths)
        ratio = protocol.path_ratio(paths, body)
        rows[name] = {
            "R_mean": float(r.mean()),
            "R_median": float(r.median()),
            "path_ratio_mean": float(ratio.mean()),
            "path_ratio_median": float(ratio.median()),
            "method": how,
        }
        print(
            f"| {name} | {r.mean():.2f} | {r.median():.2f} | {ratio.mean():.2f} | "
            f"{ratio.median():.2f} |",
            flush=True,
        )
    if args.json:
        from advprior.fileio import write_text_atomic

        write_text_atomic(
            args.json,
            json.dumps(
                {
                    "args": vars(args) | {"data": str(args.data), "json": str(args.json)},
                    "rows": rows,
                },
                indent=1,
            ),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
