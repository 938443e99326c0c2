"""``advprior eval``: the paper's protocol for several priors, written to ``<out>.md``."""

from __future__ import annotations

import argparse
import shlex
import sys

from advprior.commands._body import add_body_model_arguments, body_model_from_args
from advprior.commands._numbers import check_counts


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="recall/precision, interpolation smoothness and fitting, side by side",
        description="Run the paper's evaluation protocol for several priors and write "
        "OUT.md with tables and pictures (pictures and results.json in OUT/).",
    )
    p.add_argument(
        "--models",
        nargs="+",
        required=True,
        help="aliases (gan-s gan-u gan-n vae gmm) or checkpoint folders",
    )
    p.add_argument("--data", required=True, help="dataset .npz from `advprior data build`")
    p.add_argument(
        "--split",
        default="test",
        choices=("test", "validation", "val"),
        help="split whose poses are the recall queries (default: test; val = validation)",
    )
    p.add_argument("--out", default="docs/results", help="output folder; report at OUT.md")
    p.add_argument("--quick", action="store_true", help="small sizes (CI, a few minutes)")
    p.add_argument(
        "--samples",
        type=int,
        default=None,
        help="generated poses per model for recall (default 1,000,000; quick 2,000)",
    )
    p.add_argument(
        "--vertex-samples",
        type=int,
        default=None,
        help="of those, compared per vertex (default 10,000; quick 1,000)",
    )
    p.add_argument(
        "--queries",
        type=int,
        default=None,
        help="real and generated query poses (default 2,000; quick 200)",
    )
    p.add_argument(
        "--reference",
        type=int,
        default=None,
        help="training poses precision compares with (default 50,000)",
    )
    p.add_argument(
        "--vertices",
        type=int,
        default=None,
        help="vertex subset for the per-vertex distance (default 256)",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="held-out pairs for interpolation smoothness (default 128)",
    )
    p.add_argument("--steps", type=int, default=None, help="poses per interpolation (16)")
    p.add_argument(
        "--geodesic",
        type=int,
        default=0,
        metavar="ITERATIONS",
        help="also interpolate every latent prior along geodesic paths (Prior.interpolate("
        "geodesic=True)) with this many L-BFGS iterations, as extra rows (0: off; 300 is the "
        "API's default)",
    )
    p.add_argument(
        "--fit-frames",
        type=int,
        default=None,
        help="frames fitted from 2D keypoints per prior (default 128; 0 skips)",
    )
    add_body_model_arguments(p, "real SMPL/SMPL-H/SMPL-X model file or folder (default: stand-in)")
    p.add_argument(
        "--tasks",
        action="store_true",
        help="run the prior tasks instead (plausibility-score ROC AUC, pose denoising, "
        "partial-body completion, motion denoising; docs/eval.md): a generated "
        "section of OUT.md and OUT/tasks.json; --quick for small sizes",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=run)


# Sizes a user passes; checked here so that a bad value is a usage error naming its flag
# (exit 2), before any model is loaded or pose generated. None means "the default".
_SIZE_FLAGS = {
    "samples": 1,
    "vertex_samples": 1,
    "queries": 1,
    "reference": 1,
    "vertices": 1,
    "pairs": 0,
    "steps": 2,
    "fit_frames": 0,
    "geodesic": 0,
    "threads": 1,
}


def _check_out(args: argparse.Namespace) -> None:
    """The report's folder and file must be writable before minutes of work (one line)."""
    from pathlib import Path

    from advprior.errors import UsageError
    from advprior.fileio import check_writable

    out = Path(args.out)
    if out.name in ("", ".", ".."):
        raise UsageError(f"--out {args.out!r} must name a folder (the report goes to OUT.md)")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out!r} is a file; it must be a folder")
    check_writable(out / "results.json")
    check_writable(out.with_suffix(".md"))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from advprior.commands._device import set_threads
    from advprior.eval import run_eval

    check_counts(args, _SIZE_FLAGS)
    if args.split == "val":
        args.split = "validation"
    if args.threads is not None:
        set_threads(args, args.threads)
    _check_out(args)
    command = "advprior " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["eval"] else None
    if args.tasks:
        # the tasks have their own protocol and sizes (--quick picks the small ones): a flag of
        # the main protocol given with --tasks would be silently ignored
        ignored = [
            "--" + name.replace("_", "-")
            for name in (*_SIZE_FLAGS, "body_model", "model_type", "gender")
            if name not in ("threads",) and getattr(args, name) not in (None, 0)
        ]
        ignored += ["--split"] if args.split != "test" else []
        if ignored:
            from advprior.errors import UsageError

            raise UsageError(
                f"{', '.join(ignored)} do(es) not apply to --tasks (the tasks use the test and "
                "validation splits at their own sizes; --quick for small ones)"
            )
        return run_tasks_command(args, command)
    body_model = body_model_from_args(args)
    run_eval(
        args.models,
        args.data,
        split=args.split,
        out=args.out,
        quick=args.quick,
        seed=args.seed,
        n_samples=args.samples,
        body_model=body_model,
        n_vertex_samples=args.vertex_samples,
        n_queries=args.queries,
        n_reference=args.reference,
        n_vertices=args.vertices,
        n_pairs=args.pairs,
        steps=args.steps,
        fit_frames=args.fit_frames,
        geodesic=args.geodesic,
        command=command,
    )
    # one line on stdout, as every command answers (its progress went to stderr)
    out = Path(args.out)
    report = out.parent / (out.name + ".md")
    models = ", ".join(args.models)
    print(f"evaluated {models} on the {args.split} split -> {report}, {out / 'results.json'}")
    return 0


def run_tasks_command(args: argparse.Namespace, command: str | None) -> int:
    """``advprior eval --tasks``: :func:`advprior.eval.tasks.run_tasks` for ``--models`` on the
    test split (calibration and settings on the validation split)."""
    import json
    from pathlib import Path

    from advprior.eval.benchmark import write_generated_block
    from advprior.eval.data import load_split
    from advprior.eval.runner import _load_models
    from advprior.eval.tasks import format_tables, run_tasks
    from advprior.fileio import write_text_atomic
    from advprior.version import software_versions

    weights_sha256: dict[str, str] = {}
    priors = _load_models(args.models, weights_sha256)
    test = load_split(args.data, "test")
    validation = load_split(args.data, "validation")
    results = run_tasks(
        priors,
        test,
        validation,
        quick=args.quick,
        seed=args.seed,
        log=lambda line: print(line, file=sys.stderr),
    )
    # beside the seed in "settings": what a rerun needs to give the same numbers
    results["software"] = software_versions()
    results["weights_sha256"] = weights_sha256
    out = Path(args.out)
    write_text_atomic(out / "tasks.json", json.dumps(results, indent=2) + "\n")
    block = (
        "## The field's prior tasks\n\n"
        'Protocol: docs/eval.md, "The field\'s prior tasks".\n\n'
        f"_Generated by `{command or 'advprior eval --tasks'}`; sizes "
        f"{json.dumps(results['settings'])}._\n\n" + format_tables(results)
    )
    report = write_generated_block(out.with_suffix(".md"), "advprior eval --tasks", block)
    print(f"prior tasks for {', '.join(priors)} -> {report}")
    return 0
