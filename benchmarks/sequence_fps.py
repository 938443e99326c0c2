"""How the temporal weights of ``fit_sequence`` should follow the video's frame rate.

The defaults (:class:`advprior.fitting.Smoothness`) were chosen on 30 fps clips. The temporal
terms penalise squared steps between consecutive frames; at another frame rate the steps, and
the number of terms per second, change. This script fits the same held-out motions (the first
``--seconds`` of the first ``--clips`` sequences of a split) from datasets built at several
frame rates (``advprior data build --fps F --split-from data/mocap30_v5.npz``: same subjects,
same split) with the defaults times each of ``--scales``, and reports P-MPJPE, MPJPE and the
acceleration error in m/s^2 (comparable across frame rates). Everything else is the sequence
benchmark's protocol (docs/fitting.md, "Sequence results"): 1000 px focal length, 4-5 m, 5 px
noise, 20% of the keypoints dropped, ``fit_sequence``'s default windows.

    PYTHONPATH=. python benchmarks/sequence_fps.py --split val \
        --datasets 15=data/mocap15_v5.npz 30=data/mocap30_v5.npz 60=data/mocap60_v5.npz \
        --out benchmarks/results/sequence_fps_val.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from advprior.data import load_dataset
from advprior.eval.sequence_benchmark import clip_errors, make_clip_views
from advprior.eval.tasks import contiguous_clips
from advprior.fileio import write_text_atomic
from advprior.fitting import fit_keypoints, fit_sequence
from advprior.hub import load_pretrained

sys.path.insert(0, str(Path(__file__).parent))
from _bench import machine, parser, setup  # noqa: E402

SPLITS = {"train": 0, "val": 1, "test": 2}


def _dataset_arg(text: str) -> tuple[float, Path]:
    fps, _, path = text.partition("=")
    return float(fps), Path(path)


def run_rate(prior, path: Path, fps: float, args) -> dict[str, object]:
    data = load_dataset(path, SPLITS[args.split])
    length = round(args.seconds * fps)
    index = contiguous_clips(data.sequence, length, args.clips)
    pick = torch.stack(index)
    views = make_clip_views(
        data.body_pose[pick], data.global_orient[pick], data.transl[pick], seed=args.seed
    )
    seen = (views.confidence > 0).sum(-1) >= 2
    t0 = time.perf_counter()
    init = fit_keypoints(views.keypoints[seen], views.confidence[seen], views.camera, prior=prior)
    per_frame = time.perf_counter() - t0
    rows = {}
    for scale in args.scales:
        t0 = time.perf_counter()
        seq = fit_sequence(
            views.keypoints, views.confidence, views.camera, prior=prior, smoothness=scale,
            init=init,
        )  # fmt: skip
        err = clip_errors(seq.joints, views)
        rows[str(scale)] = {
            "p_mpjpe_mm": err["p_mpjpe_mm"],
            "mpjpe_mm": err["mpjpe_mm"],
            # mm per frame^2 -> m/s^2, so that frame rates compare
            "accel_m_s2": err["accel_mm"] * fps * fps / 1000.0,
            "seconds": time.perf_counter() - t0,
        }
        print(fps, scale, json.dumps(rows[str(scale)]), flush=True)
    return {
        "clips": len(index),
        "frames_per_clip": length,
        "per_frame_seconds": per_frame,
        "scales": rows,
    }


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--split", choices=tuple(SPLITS), default="val")
    p.add_argument("--datasets", nargs="+", type=_dataset_arg, required=True, help="FPS=PATH")
    p.add_argument("--scales", nargs="+", type=float, default=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--prior", default="gan-s")
    args = p.parse_args()
    setup(args)
    prior = load_pretrained(args.prior).eval()
    out: dict[str, object] = {
        "command": " ".join(sys.argv),
        "machine": machine(),
        "split": args.split,
        "prior": args.prior,
        "rates": {},
    }
    for fps, path in args.datasets:
        out["rates"][str(fps)] = run_rate(prior, path, fps, args)
        if args.out is not None:
            write_text_atomic(args.out, json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["rates"]))


if __name__ == "__main__":
    main()
