"""Does a learned keypoint -> pose regressor start GAN-S's fits in the right basin? Issue #10.

    python benchmarks/fit_regressor_start.py --data data/mocap30_v5.npz \
        --json benchmarks/results/fit_regressor_start_val128.json \
        [--formats smpl24 coco17] [--priors gan-s vae gmm] [--steps 2000] [--frames 128]

Development script (validation split only; never the test split). Per keypoint set, one
regressor (``examples/regressor.py``'s MLP with a direct 63-d pose head and a 6D global
orientation head, no prior inside, so every prior gets the same starts) is trained on the
train split's poses seen from fresh random views (5 px noise, 20% dropped). Then, on
``--frames`` validation frames drawn as ``benchmarks/fit_starts.py`` draws them (seed
``--draw``, by default ``--seed``, which also seeds the training), each prior is fitted (a) not
at all (the regressor's pose and orientation), (b) with ``fit_keypoints``' defaults, (c) with
``fit_keypoints(init_pose=..., init_global_orient=...)`` from the regressor's estimate
(translation from the fit's camera stage) under SMPLify's schedule, and (c) with
``orientations=0`` (the estimate's orientation alone) and with SPIN's single stage at SMPLify's
last weights (every variant names its stages: ``fit_keypoints``' default schedule from an
estimate depends on the prior's kind since round 24). P-MPJPE on the 24
SMPL joints (mm) and seconds per frame; the trained regressors are cached in ``--cache``.
The regressor is trained with the joints' rotation error too (``--rotation-weight``, SPIN's
parameter supervision): trained on joint positions alone its limbs come out twisted, and those
starts made every prior's fit worse.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]


def _examples_regressor():
    """``examples/regressor.py`` as a module (examples/ is no package): its features, model
    and training loop, so this experiment's regressor is the documented one."""
    spec = importlib.util.spec_from_file_location(
        "_examples_regressor", REPO / "examples" / "regressor.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def regressor_for(
    fmt: str, train_set, args: argparse.Namespace, ex
) -> tuple[nn.Module, dict[str, float]]:
    """The regressor of keypoint set ``fmt``, trained (seeded) or loaded from ``--cache``."""
    from advprior.fitting.keypoints import get_format

    k = get_format(fmt).num_keypoints
    torch.manual_seed(args.seed)
    model = ex.Regressor(nn.Linear(512, 63), inputs=3 * k)
    name = f"regressor_{fmt}_s{args.steps}_b{args.batch}_r{args.rotation_weight:g}_seed{args.seed}"
    path = args.cache / f"{name}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state"])
        return model.eval(), {"train_seconds": saved["train_seconds"], "cached": True}
    seconds = ex.train(
        model,
        train_set,
        args.steps,
        args.batch,
        args.seed,
        keypoints=fmt,
        rotation_weight=args.rotation_weight,
    )
    args.cache.mkdir(parents=True, exist_ok=True)
    torch.save({"state": model.state_dict(), "train_seconds": seconds}, path)
    return model.eval(), {"train_seconds": seconds, "cached": False}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=REPO / "data" / "mocap30_v5.npz")
    p.add_argument("--formats", nargs="+", default=["smpl24", "coco17"])
    p.add_argument("--priors", nargs="+", default=["gan-s", "vae", "gmm"])
    p.add_argument("--frames", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--draw", type=int, default=None, help="seed of the validation draw (default: --seed)"
    )
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument(
        "--rotation-weight",
        type=float,
        default=0.1,
        help="weight of the joint rotations' squared matrix error in training (SPIN-style "
        "parameter supervision; 0: joint positions only, as examples/regressor.py)",
    )
    p.add_argument("--cache", type=Path, default=Path("/tmp/advprior_regressors"))
    p.add_argument("--train-only", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="results (added to the file's)")
    p.add_argument("--tag", default="", help="suffix of the results' key (another regressor)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from advprior.data import load_dataset
    from advprior.eval.benchmark import joint_errors_mm, make_views, run_fitting
    from advprior.fitting.smplify import SMPLIFY_STAGES
    from advprior.hub import load_pretrained

    ex = _examples_regressor()
    train_set = load_dataset(args.data, split="train")
    val = load_dataset(args.data, split="val")
    n = val.body_pose.shape[0]
    draw = args.seed if args.draw is None else args.draw
    gen = torch.Generator().manual_seed(draw)
    idx = torch.randperm(n, generator=gen)[: min(args.frames, n)].sort().values
    priors = {} if args.train_only else {a: load_pretrained(a) for a in args.priors}
    old = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
    out: dict = {
        "split": "val",
        "frames": int(idx.numel()),
        "seed": args.seed,
        # steps and rotation weight per result (results of several regressors share a file)
        "regressor": {"batch": args.batch, "head": "direct 63-d"},
        "threads": 1,
        # a run of other keypoint sets adds to the file's results (same draw and regressors)
        "results": old.get("results", {}),
    }
    for fmt in args.formats:
        model, meta = regressor_for(fmt, train_set, args, ex)
        print(f"{fmt}: regressor {meta}", flush=True)
        if args.train_only:
            continue
        views = make_views(val.body_pose[idx], val.global_orient[idx], seed=draw, keypoints=fmt)
        start = time.perf_counter()
        with torch.no_grad():
            orient, pose = model(ex.features(views.keypoints, views.confidence))
        reg_seconds = time.perf_counter() - start
        # pelvis at the origin: P-MPJPE aligns by a similarity, so the missing translation and
        # scale do not count against the regressor
        reg_joints = ex.joints_of(orient, pose)
        reg = joint_errors_mm(reg_joints, views.joints)["p_mpjpe"]
        rec = {
            "regressor": {
                "p_mpjpe_mm": float(reg.mean()),
                "p_mpjpe_median_mm": float(reg.median()),
                "seconds_per_frame": reg_seconds / idx.numel(),
                "steps": args.steps,
                "rotation_weight": args.rotation_weight,
                "draw": draw,
                **meta,
            },
            "priors": {},
        }
        print(f"{fmt} regressor alone: {rec['regressor']['p_mpjpe_mm']:.1f} mm", flush=True)
        starts = {"init_pose": pose, "init_global_orient": orient}
        variants = {
            "default": {},
            # the estimate's orientation besides the two built-in ones, SMPLify's annealed
            # schedule (explicit: since round 24 a normal latent's default from init_pose is the
            # last stage alone, and this key keeps round 23's meaning)
            "regressor_init": {**starts, "stages": SMPLIFY_STAGES},
            # the estimate's orientation alone: trusting the regressor's front/back
            "regressor_init_orient_only": {**starts, "orientations": 0, "stages": SMPLIFY_STAGES},
            # SPIN's refinement: one stage at SMPLify's last weights, no annealing from a
            # strong prior (which pulls a normal latent to its origin, forgetting the start)
            "regressor_init_last_stage": {**starts, "stages": SMPLIFY_STAGES[-1:]},
        }
        for alias, prior in priors.items():
            runs = {name: run_fitting(views, prior, **kw) for name, kw in variants.items()}
            rec["priors"][alias] = {
                name: {
                    "p_mpjpe_mm": r["p_mpjpe_mm"],
                    "p_mpjpe_median_mm": r["p_mpjpe_median_mm"],
                    "seconds_per_frame": r["seconds_per_frame"],
                    "per_frame": [round(x, 2) for x in r["p_mpjpe_per_frame_mm"]],
                }
                for name, r in runs.items()
            }
            d = runs["default"]["p_mpjpe_per_frame_mm"]
            for name, r in runs.items():
                if name == "default":
                    continue
                i = r["p_mpjpe_per_frame_mm"]
                cell = rec["priors"][alias][name]
                # paired: frames more than 1 mm better / worse than the default start
                cell["better_frames"] = sum(b < a - 1.0 for a, b in zip(d, i, strict=True))
                cell["worse_frames"] = sum(b > a + 1.0 for a, b in zip(d, i, strict=True))
            print(
                f"{fmt} {alias}: "
                + ", ".join(
                    f"{name} {r['p_mpjpe_mm']:.1f} mm ({r['seconds_per_frame']:.2f} s/frame)"
                    for name, r in runs.items()
                ),
                flush=True,
            )
        pr = rec["priors"]
        if "gan-s" in pr and "vae" in pr:
            rec["gan_s_over_vae"] = {
                name: pr["gan-s"][name]["p_mpjpe_mm"] / pr["vae"][name]["p_mpjpe_mm"]
                for name in variants
            }
            print(f"{fmt} GAN-S / VAE: {rec['gan_s_over_vae']}", flush=True)
        out["results"][fmt + args.tag] = rec
        if args.json is not None:  # after every keypoint set: a partial run keeps its results
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
