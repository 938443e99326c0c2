"""How ``fit_keypoints`` fits people many pixels tall: ``pixel_scale`` 1, ``"auto"`` and exact.

    OMP_NUM_THREADS=1 python benchmarks/fit_large_images.py --data data/mocap30_v5.npz \
        [--split val] [--frames 128] [--scales 1 2 3 4 8] [--formats smpl24 openpose25] \
        [--json benchmarks/results/fit_large_images_val.json] [--write-docs]

The fit's robust scale (``sigma`` = 100 px), SMPLify's stage weights and the pose density's
weight are in (squared) pixels, tuned on ``docs/fitting.md``'s benchmark, whose people are a few
hundred pixels tall (``BENCH_CAMERA``: focal 1000 px, people 3-6 m away). Here the benchmark's
views of validation-split poses (5 px noise, 20% of keypoints dropped) are scaled by ``k``:
keypoints, noise and the camera's focal length and principal point alike, which is the same
scene photographed at ``k`` times the resolution. Each is fitted with GAN-S (1 start)

- with ``pixel_scale=1`` (the fit of 0.2.0 to round 18, whatever the image size);
- with ``pixel_scale="auto"`` (the default since round 19: ``auto_pixel_scale``, the power of
  two nearest to the median person size over ``REFERENCE_PERSON_PX``, at least 1);
- with ``pixel_scale=k`` (the scale the image was made at; for a power of two ``k`` bit for
  bit the ``k = 1`` fit).

Reported per row: P-MPJPE and MPJPE (mm, 24 joints), the reprojection error in the image's own
pixels divided by ``k`` (comparable across rows), the median person size in pixels (the larger
side of the visible keypoints' box, as ``auto_pixel_scale`` measures it) and the scale used.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from advprior.fitting.smplify import REFERENCE_PERSON_PX

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "benchmarks" / "results" / "fit_large_images_val.json"
DOCS = REPO / "docs" / "fitting.md"
SETTINGS = ("1", "auto", "k")


def person_size_px(keypoints: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """``(B,)`` larger side of each frame's visible keypoints' box (keypoints ``(B, K, 2)``)."""
    seen = (confidence > 0)[..., None]
    big = torch.full_like(keypoints, float("inf"))
    low = torch.where(seen, keypoints, big).amin(-2)
    high = torch.where(seen, keypoints, -big).amax(-2)
    return (high - low).amax(-1)


def measure(views, prior, k: float, setting: str) -> dict[str, float | str]:
    from advprior.eval.benchmark import SyntheticViews, run_fitting
    from advprior.fitting import auto_pixel_scale

    scaled = SyntheticViews(
        views.keypoints * k,
        views.confidence,
        views.joints,
        views.global_orient,
        views.transl,
        views.body_pose,
        views.camera.scaled(k),
        views.keypoint_format,
    )
    pixel_scale: float | str = {"1": 1.0, "auto": "auto", "k": k}[setting]
    r = run_fitting(scaled, prior, pixel_scale=pixel_scale)
    if pixel_scale == "auto":
        pixel_scale = auto_pixel_scale(scaled.keypoints, scaled.confidence)
    return {
        "format": views.keypoint_format,
        "setting": setting,
        "scale": k,
        "pixel_scale": float(pixel_scale),
        "p_mpjpe_mm": r["p_mpjpe_mm"],
        "p_mpjpe_median_mm": r["p_mpjpe_median_mm"],
        "mpjpe_mm": r["mpjpe_mm"],
        "reprojection_px_over_scale": r["reprojection_px"] / k,
        "person_px_median": float(person_size_px(scaled.keypoints, scaled.confidence).median()),
        "seconds_per_frame": r["seconds_per_frame"],
    }


def run(args: argparse.Namespace) -> dict:
    from advprior.data import load_dataset
    from advprior.eval.benchmark import make_views
    from advprior.hub import load_pretrained

    data = load_dataset(args.data, split=args.split)
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(data.body_pose.shape[0], generator=gen)[: args.frames].sort().values
    prior = load_pretrained(args.prior)
    store: dict = {
        "protocol": {
            "data": Path(args.data).name,
            "split": args.split,
            "frames": args.frames,
            "seed": args.seed,
            "prior": args.prior,
            "reference_person_px": REFERENCE_PERSON_PX,
        },
        "runs": [],
    }
    for fmt in args.formats:
        views = make_views(
            data.body_pose[idx], data.global_orient[idx], seed=args.seed, keypoints=fmt
        )
        for k in args.scales:
            for setting in SETTINGS if k != 1.0 else ("1",):
                start = time.perf_counter()
                row = measure(views, prior, k, setting)
                store["runs"].append(row)
                short = {a: round(b, 3) if isinstance(b, float) else b for a, b in row.items()}
                print(json.dumps(short), f"({time.perf_counter() - start:.0f} s)", flush=True)
    return store


def table(store: dict) -> str:
    p = store["protocol"]
    lines = [
        f"Data: `{p['data']}`, {p['split']} split, {p['frames']} frames (seed {p['seed']}), "
        f"{p['prior']} with 1 start; the benchmark's views (focal 1000 px, 5 px noise, 20% "
        "dropped) scaled by k (keypoints, noise, focal length and principal point). "
        "`pixel_scale`: `1` (0.2.0's fit), `auto` (the default: the power of two nearest to "
        f"the median person size over {p['reference_person_px']:g} px, at least 1; the scale "
        "it chose in brackets) or `k`. Person size: the larger side of the visible keypoints' "
        "box. Reprojection: in the image's pixels divided by k.",
        "",
        "| keypoints | k | person size px (median) | pixel_scale | P-MPJPE mm (median) "
        "| MPJPE mm | reprojection px / k |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    for r in store["runs"]:
        ps = {"1": "1", "auto": f"auto ({r['pixel_scale']:g})", "k": "k"}[r["setting"]]
        lines.append(
            f"| {r['format']} | {r['scale']:g} | {r['person_px_median']:.0f} | {ps} | "
            f"{r['p_mpjpe_mm']:.1f} ({r['p_mpjpe_median_mm']:.1f}) | {r['mpjpe_mm']:.1f} | "
            f"{r['reprojection_px_over_scale']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(REPO / "data" / "mocap30_v5.npz"))
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--frames", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", default="gan-s")
    p.add_argument("--formats", nargs="+", default=["smpl24", "openpose25"])
    p.add_argument("--scales", nargs="+", type=float, default=[1.0, 2.0, 3.0, 4.0, 8.0])
    p.add_argument("--json", default=str(DEFAULT_JSON))
    p.add_argument("--write-docs", action="store_true", help=f"write the table into {DOCS.name}")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    store = run(args)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(store, indent=1) + "\n")
    text = table(store)
    print(text)
    if args.write_docs:
        from advprior.eval.benchmark import write_generated_block

        # one block per split: the test split is measured once, after the choice on val
        source = "benchmarks/fit_large_images.py"
        block = source if args.split == "val" else f"{source} --split {args.split}"
        command = " ".join(["python", source, *(argv if argv is not None else sys.argv[1:])])
        write_generated_block(DOCS, block, f"Generated by `{command}`.\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
