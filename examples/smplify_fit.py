"""Fit noisy 2D keypoints of held-out mocap poses with every prior and compare (docs/fitting.md).

    python examples/smplify_fit.py --frames 256 --write-docs
    python examples/smplify_fit.py --frames 256 --keypoints coco17 --inversion-poses 0 \
        --write-docs --docs docs/fitting.md docs/results.md

For each prior (GAN-S, GAN-U, GAN-N, VAE, GMM, no prior) the same keypoints are fitted in one
batch with :func:`advprior.fitting.fit_keypoints` and its defaults (GAN-S with the bundled GMM's
pose energy, ``pose_density="auto"``; ``gan-s:no-pose-density`` is GAN-S without it):
test-split poses of the dataset, seen from a random heading and elevation 3-6 m in front of a
1000 px focal-length camera, 5 px Gaussian noise, 20% of the keypoints dropped (confidence 0) --
see :mod:`advprior.eval.benchmark`. The
keypoints are SMPL's 24 joints (``--keypoints smpl24``) or a 2D detector's (``coco17``,
``openpose25``, ``openpose25b``: limb joints plus face and feet points on the body's surface),
fitted in the same format; errors are always on the 24 SMPL joints. Prints
P-MPJPE / MPJPE (mm) of the recovered 3D joints and seconds per frame, then the inversion error
of ``project_pose`` on held-out poses and its time. ``--write-docs`` rewrites the generated
block of each ``--docs`` file, one block per keypoint set (``<!-- BEGIN GENERATED:
examples/smplify_fit.py -->`` for smpl24, ``... examples/smplify_fit.py --keypoints coco17 -->``
for the others; added at the end of the file when missing); ``--json`` writes the numbers.

Needs the dataset (``advprior data build ../shared/data/mocap --out data/mocap30.npz``) and the
shipped weights (aliases gan-s, gan-u, gan-n, vae, gmm).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from advprior.eval.metrics import paired_ratio_interval
from advprior.fileio import check_writable, write_text_atomic
from advprior.prior import PosePrior

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "fitting.md"
#: A prior name with this suffix is fitted without any pose density (``pose_density=None``), so
#: that GAN-S's default GMM energy is also reported the other way.
NO_POSE_DENSITY = ":no-pose-density"
PRIORS = ("gan-s", f"gan-s{NO_POSE_DENSITY}", "gan-u", "gan-n", "vae", "gmm", "none")
KEYPOINT_SETS = ("smpl24", "coco17", "openpose25", "openpose25b")
#: How the generated block describes each keypoint set.
KEYPOINT_TITLE = {
    "smpl24": "SMPL-24 joint keypoints",
    "coco17": "COCO-17 detector keypoints",
    "openpose25": "OpenPose BODY_25 detector keypoints",
    "openpose25b": "OpenPose BODY_25B detector keypoints",
}
KEYPOINT_TEXT = {
    "smpl24": "SMPL 24-joint keypoints",
    "coco17": "COCO-17 detector keypoints (12 limb joints; nose, eyes, ears from the stand-in's "
    "surface vertices; no spine, collar, neck, pelvis, hand or foot joint)",
    "openpose25": "OpenPose BODY_25 detector keypoints (limb joints, MidHip = pelvis, Neck = "
    "SMPL's neck; nose, eyes, ears, big/small toes, heels from the stand-in's surface "
    "vertices; no spine or collar joint)",
    "openpose25b": "OpenPose BODY_25B detector keypoints (12 limb joints, UpperNeck = SMPL's "
    "head; nose, eyes, ears, big/small toes, heels from the stand-in's surface vertices; "
    "HeadTop unobserved; no spine, collar, neck or pelvis joint)",
}


def docs_source(keypoints: str, starts: int = 1) -> str:
    """The name in the ``BEGIN GENERATED`` marker of the block for ``keypoints`` and
    ``starts`` (one block per combination, so one- and several-start tables live side by
    side)."""
    name = "examples/smplify_fit.py"
    if keypoints != "smpl24":
        name += f" --keypoints {keypoints}"
    return name if starts == 1 else f"{name} --starts {starts}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO / "data" / "mocap30.npz")
    p.add_argument("--frames", type=int, default=256, help="test frames fitted in one batch")
    p.add_argument("--priors", nargs="+", default=list(PRIORS))
    p.add_argument(
        "--keypoints",
        choices=KEYPOINT_SETS,
        default="smpl24",
        help="observed keypoint set, fitted in the same format (default smpl24)",
    )
    p.add_argument("--noise", type=float, default=5.0, help="2D noise std, pixels")
    p.add_argument("--drop", type=float, default=0.2, help="fraction of keypoints dropped")
    p.add_argument("--iterations", type=int, default=None, help="per stage (fit default)")
    p.add_argument(
        "--starts",
        type=int,
        default=1,
        help="starting poses per frame for every prior (fit_keypoints(starts=N))",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--timing-repeats",
        type=int,
        default=2,
        help="fit every prior this often, keep the fastest time (errors: first run)",
    )
    p.add_argument(
        "--inversion-poses",
        type=int,
        default=1000,
        help="held-out poses for project_pose (0: skip)",
    )
    p.add_argument(
        "--encoder-steps",
        type=int,
        default=1000,
        help="also train a PoseEncoder this long per GAN and invert from it (0: skip)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the numbers here")
    p.add_argument(
        "--write-docs",
        action="store_true",
        help="rewrite this keypoint set's generated block of each --docs file",
    )
    p.add_argument(
        "--docs",
        type=Path,
        nargs="+",
        default=[DOCS],
        help="Markdown files (default docs/fitting.md; e.g. also docs/results.md)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: comparable runs)")
    return p.parse_args(argv)


def load_prior(name: str):
    name = name.removesuffix(NO_POSE_DENSITY)
    if name == "none":
        return None
    from advprior.hub import load_pretrained

    return load_pretrained(name)


def select(n_total: int, n: int, seed: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` random indices of ``range(n_total)`` not in ``exclude``, sorted (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n_total, generator=gen)
    if exclude is not None:
        # drop before cutting: the first n of the *sorted* rest would be the file's first frames
        order = order[~torch.isin(order, exclude)]
    return order[:n].sort().values


def fitting_table(rows: dict[str, dict]) -> list[str]:
    vae_time = rows.get("vae", {}).get("seconds_per_frame")
    lines = [
        "| prior | P-MPJPE mm (median) | MPJPE mm (median) | reprojection px | "
        "s / frame | time vs VAE |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        ratio = f"{r['seconds_per_frame'] / vae_time:.2f}x" if vae_time else "-"
        lines.append(
            f"| {name} | {r['p_mpjpe_mm']:.1f} ({r['p_mpjpe_median_mm']:.1f}) | "
            f"{r['mpjpe_mm']:.1f} ({r['mpjpe_median_mm']:.1f}) | "
            f"{r['reprojection_px']:.2f} | {r['seconds_per_frame']:.3f} | {ratio} |"
        )
    return lines


def _signed_change(ratio_minus_one: float) -> str:
    return f"{100.0 * ratio_minus_one:+.1f}%"


def goal_lines(rows: dict[str, dict]) -> list[str]:
    out = []
    gs = rows.get("gan-s")
    if gs is None:
        return out
    for other, goal in (("vae", 10.0), ("gmm", 15.0)):
        if other in rows:
            gain = 100.0 * (1.0 - gs["p_mpjpe_mm"] / rows[other]["p_mpjpe_mm"])
            verdict = "met" if gain >= goal else "NOT met"
            change = f"{gain:.1f}% lower" if gain >= 0 else f"{-gain:.1f}% higher"
            # The same frames for both priors: a paired bootstrap over frames says how much of
            # the difference a different draw of frames could undo.
            low, high = paired_ratio_interval(
                torch.tensor(gs["p_mpjpe_per_frame_mm"]),
                torch.tensor(rows[other]["p_mpjpe_per_frame_mm"]),
            )
            out.append(
                f"- GAN-S P-MPJPE vs {other.upper()}: {gs['p_mpjpe_mm']:.1f} vs "
                f"{rows[other]['p_mpjpe_mm']:.1f} mm, {change} (GAN-S / {other.upper()} - 1, "
                f"95% interval over frames: {_signed_change(low)} to {_signed_change(high)}; "
                f"goal: at least "
                f"{goal:.0f}% lower; {verdict})"
            )
    if "none" in rows:
        base = rows["none"]["p_mpjpe_mm"]
        gains = {k: 100.0 * (1.0 - r["p_mpjpe_mm"] / base) for k, r in rows.items() if k != "none"}
        if gains:
            lo, hi = min(gains, key=gains.get), max(gains, key=gains.get)
            out.append(
                f"- every prior vs no prior ({base:.1f} mm): {gains[lo]:.0f}% ({lo}) to "
                f"{gains[hi]:.0f}% ({hi}) lower P-MPJPE"
            )
    if "vae" in rows:
        ratio = gs["seconds_per_frame"] / rows["vae"]["seconds_per_frame"]
        out.append(
            f"- GAN-S time per frame vs VAE: {ratio:.2f}x (goal <= 1.2x: "
            f"{'met' if ratio <= 1.2 else 'NOT met'})"
        )
    return out


def inversion_table(rows: dict[str, dict]) -> list[str]:
    lines = [
        "| prior (inversion) | mean joint error mm | median mm | poses | seconds | "
        "encoder training s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        train = r.get("encoder_train_seconds")
        lines.append(
            f"| {name} | {r['joint_error_mm']:.1f} | {r['joint_error_median_mm']:.1f} | "
            f"{r['poses']} | {r['seconds']:.1f} | "
            f"{'-' if train is None else f'{train:.0f}'} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    from advprior.data import load_dataset, require_dataset_file
    from advprior.eval.benchmark import (
        make_views,
        run_fitting,
        run_inversion,
        write_generated_block,
    )
    from advprior.inversion import PoseEncoder

    try:  # before anything loads, and one line rather than a traceback
        require_dataset_file(args.data)
    except FileNotFoundError as err:
        print(err, file=sys.stderr)
        return 2
    # the outputs are checked now, not after a run of minutes to hours (folders are created)
    outputs = [("--json", args.json)] if args.json is not None else []
    outputs += [("--docs", path) for path in args.docs] if args.write_docs else []
    for flag, path in outputs:
        try:
            check_writable(path)
        except OSError as err:
            print(f"{flag}: {err}", file=sys.stderr)
            return 2
    test = load_dataset(args.data, split="test")
    n_test = test.body_pose.shape[0]
    idx = select(n_test, min(args.frames, n_test), args.seed)
    views = make_views(
        test.body_pose[idx],
        test.global_orient[idx],
        seed=args.seed,
        noise_px=args.noise,
        drop=args.drop,
        keypoints=args.keypoints,
    )
    fit_kwargs = {} if args.iterations is None else {"iterations": args.iterations}
    if args.starts != 1:
        fit_kwargs["starts"] = args.starts

    fitting: dict[str, dict] = {}
    priors = {name: load_prior(name) for name in args.priors}
    row_kwargs = {
        name: {**fit_kwargs, "pose_density": None} if name.endswith(NO_POSE_DENSITY) else fit_kwargs
        for name in priors
    }
    for name, prior in priors.items():
        fitting[name] = run_fitting(views, prior, **row_kwargs[name])
        r = fitting[name]
        print(
            f"{name:6s} P-MPJPE {r['p_mpjpe_mm']:6.1f} mm  MPJPE {r['mpjpe_mm']:6.1f} mm  "
            f"reproj {r['reprojection_px']:5.2f} px  {r['seconds']:.1f} s",
            flush=True,
        )
    # The machine is shared: time every prior again in reverse order and keep each one's
    # fastest run, so that a burst of load elsewhere does not decide the time ratios (the
    # fits themselves are deterministic: same errors every run).
    for _ in range(args.timing_repeats - 1):
        for name in reversed(list(priors)):
            again = run_fitting(views, priors[name], **row_kwargs[name])
            if again["seconds"] < fitting[name]["seconds"]:
                fitting[name].update(
                    seconds=again["seconds"], seconds_per_frame=again["seconds_per_frame"]
                )
    for name, r in fitting.items():
        print(f"{name:6s} {r['seconds_per_frame']:.3f} s/frame (best of {args.timing_repeats})")

    inversion: dict[str, dict] = {}
    if args.inversion_poses > 0:
        # Other held-out poses than the fitted ones.
        rest = select(n_test, args.inversion_poses, args.seed + 1, exclude=idx)
        for name in args.priors:
            prior = priors[name]
            # The GANs' inversion is an optimisation (the VAE's is its encoder, the GMM has no
            # latent): only they get the rows and an amortised PoseEncoder.
            if not isinstance(prior, PosePrior) or name.endswith(NO_POSE_DENSITY):
                continue
            inversion[name] = run_inversion(prior, test.body_pose[rest])
            if args.encoder_steps > 0:
                torch.manual_seed(args.seed)  # the encoder's initial weights
                encoder = PoseEncoder(prior)
                start = time.perf_counter()
                encoder.fit(steps=args.encoder_steps, seed=args.seed)
                trained = time.perf_counter() - start
                encoder.eval()
                row = run_inversion(prior, test.body_pose[rest], encoder=encoder, steps=10)
                inversion[f"{name} + PoseEncoder, 10 steps"] = {
                    **row,
                    "encoder_train_seconds": trained,
                }
            for label, r in inversion.items():
                if label.split(" ")[0] == name:
                    print(
                        f"{label}: project_pose {r['joint_error_mm']:.1f} mm mean joint error, "
                        f"{r['seconds']:.1f} s for {r['poses']} poses",
                        flush=True,
                    )

    command = "python examples/smplify_fit.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__}, {args.threads} thread(s)"
    )
    block = "\n".join(
        [
            # A title, since the block also lands in pages without its surrounding text.
            f"**Fitting from 2D keypoints: {KEYPOINT_TITLE[args.keypoints]}**",
            "",
            f"Generated by `{command.strip()}` on {datetime.date.today().isoformat()} ({machine}).",
            f"Data: `{args.data.name}`, test split, {len(idx)} frames in one batch (seed "
            f"{args.seed}); {args.noise:g} px Gaussian noise, {100 * args.drop:.0f}% of keypoints "
            f"dropped; stand-in body; {KEYPOINT_TEXT[args.keypoints]}; {args.starts} "
            "start(s) per frame for every prior; time: fastest of "
            f"{args.timing_repeats} runs per prior.",
            "",
            *fitting_table(fitting),
            "",
            *goal_lines(fitting),
            "",
            *(
                [
                    "Inversion (`PosePrior.project_pose`, defaults: bank start, 50 L-BFGS "
                    "steps; and from a "
                    f"`PoseEncoder` trained {args.encoder_steps} steps, then 10 steps) "
                    "of held-out test poses not used above:",
                    "",
                    *inversion_table(inversion),
                ]
                if inversion
                else []
            ),
        ]
    )
    print("\n" + block)
    if args.json is not None:
        write_text_atomic(
            args.json,
            json.dumps(
                {
                    "keypoints": args.keypoints,
                    "fitting": fitting,
                    "inversion": inversion,
                    "command": command,
                    "machine": machine,
                },
                indent=2,
            ),
        )
    if args.write_docs:
        for path in args.docs:
            write_generated_block(path, docs_source(args.keypoints, args.starts), block)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
