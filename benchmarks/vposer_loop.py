"""An unchanged VPoser-v1-style SMPLify loop (``tests/vposer_style_loop.py``) run with advprior
priors through ``advprior.compat``, next to ``advprior.fitting.fit_keypoints`` on the same frames.

    python benchmarks/vposer_loop.py --data data/mocap30.npz --frames 24 [--jobs 2] [--write-docs]

Frames: test-split poses (``--split validation`` for choosing settings; the docs table is always
the test split) with their recorded global orientation, seen as in ``docs/fitting.md``'s protocol
(random heading and elevation, 3-6 m, 1000 px focal, 5 px noise, 20% of the non-torso keypoints
dropped), OpenPose BODY_25 keypoints of the stand-in body built by plain
``smplx.create(advprior.body.standin_folder(), model_type="smpl", joint_mapper=...)``.
Rows: the loop with ``load_vposer("gan-s")``, ``"gan-u"`` and ``"vae"`` (only the import and the
checkpoint name differ from VPoser code), the loop with SMPLify's max-mixture term read from
``GMMPrior.export_smplify``'s ``gmm_08.pkl``, and ``fit_keypoints`` (batched) with each prior.
The loop fits frames one by one (as those pipelines do); it uses SMPLify's published stage
weights, and the charts were chosen on validation frames (``vposer_chart_ablation.py``).
``--jobs N`` runs rows in N processes (seconds per frame then include that contention). With
``--write-docs`` (test split only) the table replaces the generated block in ``docs/fitting.md``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

SOURCE = "benchmarks/vposer_loop.py"
LOOP_PRIORS = ("gan-s", "gan-u", "vae")
FIT_PRIORS = ("gan-s", "gan-u", "vae", "gmm")
FOCAL, CENTER = 1000.0, (500.0, 500.0)


def _frames(args: argparse.Namespace):
    import smplx
    from vposer_style_loop import make_frames, smpl_joint_mapper

    from advprior.body import standin_folder
    from advprior.eval.data import load_split, subsample

    poses = load_split(args.data, args.split)
    idx = subsample(len(poses), args.frames, torch.Generator().manual_seed(args.seed))
    body = smplx.create(str(standin_folder()), model_type="smpl", joint_mapper=smpl_joint_mapper())
    kp, true = make_frames(body, poses.body_pose[idx], poses.global_orient[idx], seed=args.seed)
    return body, kp, true


def run_row(args: argparse.Namespace, what: str, alias: str) -> dict:
    """One row: ``what`` is ``"loop"`` or ``"fit"``; returns the joints, projections, s/frame."""
    torch.set_num_threads(1)
    from vposer_style_loop import MaxMixtureEnergy, fit_frames

    from advprior.compat import load_vposer
    from advprior.fitting import PinholeCamera, fit_keypoints
    from advprior.hub import load_pretrained

    body, kp, _ = _frames(args)
    loop = {"maxiters": args.maxiters, "inner": args.inner}
    if what == "fit":
        start = time.perf_counter()
        result = fit_keypoints(
            kp[..., :2],
            kp[..., 2],
            PinholeCamera(FOCAL, CENTER),
            prior=alias,
            keypoint_format="openpose25",
        )
        spf = (time.perf_counter() - start) / kp.shape[0]
        return {
            "name": f'`fit_keypoints(prior="{alias}")`',
            "joints": result.joints,
            "projected": result.projected,
            "spf": spf,
            "extra": "-",
        }
    if alias == "gmm":
        with tempfile.TemporaryDirectory() as tmp:
            gmm_file = Path(tmp) / "gmm_08.pkl"
            load_pretrained("gmm").export_smplify(gmm_file)
            energy = MaxMixtureEnergy(str(gmm_file))
        fits, spf = fit_frames(
            kp, body, FOCAL, CENTER, pose_prior=energy, mean_pose=energy.mean_pose(), **loop
        )
        name, extra = "loop + exported `gmm_08.pkl` (max-mixture, float32)", "-"
    else:
        vposer, _ = load_vposer(alias)
        fits, spf = fit_frames(kp, body, FOCAL, CENTER, vposer=vposer, **loop)
        moved = sum(bool((f.embedding_end - f.embedding_start).norm() > 1e-3) for f in fits)
        norm = torch.stack([f.embedding_end.norm() for f in fits]).mean()
        name = f'loop + `load_vposer("{alias}")`'
        extra = f"z moved in {moved}/{len(fits)} frames, mean norm(z) {norm:.2f}"
    return {
        "name": name,
        "joints": torch.stack([f.joints for f in fits]),
        "projected": torch.stack([f.projected for f in fits]),
        "spf": spf,
        "extra": extra,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=REPO / "data" / "mocap30.npz")
    p.add_argument("--split", choices=("test", "validation"), default="test")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--maxiters", type=int, default=6, help="L-BFGS steps per stage")
    p.add_argument("--inner", type=int, default=10, help="L-BFGS max_iter per step")
    p.add_argument("--jobs", type=int, default=1, help="rows run in this many processes")
    p.add_argument("--write-docs", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="write every row with per-frame errors")
    p.add_argument(
        "--docs",
        type=Path,
        default=REPO / "docs" / "fitting.md",
        help="the Markdown file whose generated block --write-docs rewrites",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    from advprior.eval.benchmark import joint_errors_mm, write_generated_block
    from advprior.eval.metrics import paired_ratio_interval

    if args.write_docs and args.split != "test":
        p.error("--write-docs writes the test-split table; choose settings with --split validation")
    _, kp, true = _frames(args)
    seen = kp[..., 2] > 0
    jobs = [("loop", a) for a in LOOP_PRIORS] + [("loop", "gmm")]
    jobs += [("fit", a) for a in FIT_PRIORS]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            outs = list(pool.map(run_row, [args] * len(jobs), *zip(*jobs, strict=True)))
    else:
        outs = [run_row(args, what, alias) for what, alias in jobs]

    rows = {}
    for (what, alias), out in zip(jobs, outs, strict=True):
        err = joint_errors_mm(out["joints"], true)
        r = {
            "name": out["name"],
            "p_mpjpe": float(err["p_mpjpe"].mean()),
            "p_mpjpe_median": float(err["p_mpjpe"].median()),
            "mpjpe": float(err["mpjpe"].mean()),
            "reproj": float((out["projected"] - kp[..., :2]).norm(dim=-1)[seen].mean()),
            "spf": out["spf"],
            "extra": out["extra"],
        }
        print(r, flush=True)
        rows[what, alias] = {**r, "per_frame": err["p_mpjpe"]}

    gan, fk = rows["loop", "gan-s"]["p_mpjpe"], rows["fit", "gan-s"]["p_mpjpe"]
    vae = rows["loop", "vae"]["p_mpjpe"]
    # Per-frame errors are heavy-tailed: give each goal's ratio its paired bootstrap interval.
    per = {key: r["per_frame"] for key, r in rows.items()}
    vs_fk = paired_ratio_interval(per["loop", "gan-s"], per["fit", "gan-s"])
    vs_vae = paired_ratio_interval(per["loop", "gan-s"], per["loop", "vae"])
    # The command as given (its --data included), so that the line reproduces the block.
    command = shlex.join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"Generated by `python {SOURCE} {command}` on "
        f"{datetime.date.today()} ({platform.machine()}, torch {torch.__version__}, 1 thread per "
        "process).",
        f"Data: `{args.data.name}`, {args.split} split, {kp.shape[0]} frames (seed {args.seed}); "
        "BODY_25 keypoints of the stand-in through `smplx.create(standin_folder())`; 5 px noise, "
        "20% of non-torso keypoints dropped; loop: 2 orientation tries, 4 stages, "
        f"{args.maxiters} x L-BFGS(max_iter={args.inner}, strong Wolfe) per stage, one frame "
        "at a time; `fit_keypoints`: defaults, all frames in one batch.",
        "",
        "| fit | P-MPJPE mm (median) | MPJPE mm | reprojection px | s / frame | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows.values():
        lines.append(
            f"| {r['name']} | {r['p_mpjpe']:.1f} ({r['p_mpjpe_median']:.1f}) | "
            f"{r['mpjpe']:.1f} | {r['reproj']:.2f} | {r['spf']:.2f} | {r['extra']} |"
        )
    lines += [
        "",
        f"- GAN-S through the VPoser loop vs `fit_keypoints` with GAN-S: {gan:.1f} vs {fk:.1f} mm "
        f"({100 * (gan / fk - 1):+.1f}%, 95% paired bootstrap interval over the frames "
        f"{100 * vs_fk[0]:+.1f}% to {100 * vs_fk[1]:+.1f}%; goal: within 10%: "
        f"{'met' if gan <= 1.1 * fk else 'NOT met'})",
        f"- GAN-S vs the VAE through the same loop: {gan:.1f} vs {vae:.1f} mm "
        f"({100 * (gan / vae - 1):+.1f}%, interval {100 * vs_vae[0]:+.1f}% to "
        f"{100 * vs_vae[1]:+.1f}%; goal: as good: {'met' if gan <= vae else 'NOT met'})",
    ]
    block = "\n".join(lines)
    print(block)
    if args.write_docs:
        write_generated_block(args.docs, SOURCE, block)
    if args.json:
        import json

        from advprior.fileio import write_text_atomic

        saved = [
            {"what": w, "alias": a, **r, "per_frame": [round(float(x), 2) for x in r["per_frame"]]}
            for (w, a), r in rows.items()
        ]
        meta = {"split": args.split, "frames": int(kp.shape[0]), "seed": args.seed}
        write_text_atomic(args.json, json.dumps({**meta, "rows": saved}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
