"""``advprior data build|info``: make the SMPL pose dataset from motion capture and inspect it."""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="build or inspect a pose dataset file")
    sub = p.add_subparsers(dest="data_command", required=True)

    b = sub.add_parser(
        "build",
        help="import mocap (ASF/AMC, BVH, AMASS npz, DeepMimic JSON), retarget to SMPL, write npz",
    )
    b.add_argument("paths", nargs="+", help="motion files or folders (searched recursively)")
    b.add_argument("--out", required=True, help="output .npz (written atomically)")
    b.add_argument("--fps", type=float, default=30.0, help="output frame rate (default 30)")
    b.add_argument(
        "--on-error",
        choices=("skip", "abort"),
        default="skip",
        help="skip (and report) or abort on a bad file (default skip)",
    )
    b.add_argument(
        "--split",
        default="0.8,0.1,0.1",
        help="train,val,test frame fractions, split by subject (default 0.8,0.1,0.1)",
    )
    b.add_argument("--split-seed", default="advprior", help="seed of the subject order")
    b.add_argument(
        "--split-from", default=None, help="previous dataset file: its subjects keep their split"
    )
    b.add_argument(
        "--no-stratify",
        action="store_true",
        help="split all subjects as one pool instead of per subject group "
        "(cmu, hdm05, one per other source)",
    )
    b.add_argument(
        "--source-fps",
        action="append",
        default=[],
        metavar="GLOB=FPS",
        help="override the frame rate of files whose relative path matches GLOB",
    )
    b.add_argument(
        "--up",
        action="append",
        default=[],
        metavar="GLOB=AXIS",
        help="the world up axis (x, y, z, -x, -y, -z) of files whose relative path matches "
        "GLOB: a BVH, ASF/AMC or DeepMimic file whose frames stand along another axis than its "
        "rest skeleton, an npz/pkl/npy in another world than its format's; repeatable, the "
        "first match wins; recorded in the dataset's metadata",
    )
    b.add_argument(
        "--torso",
        choices=("bones", "rest"),
        default="bones",
        help="how SMPL's spine and neck meet the source's: 'bones' (default, build v5, the data "
        "of the 0.2.0 weights) lays each SMPL torso bone on the source's and straightens "
        "SMPL's spine; 'rest' takes the source's rest torso, collars and feet as SMPL's "
        "(docs/data.md)",
    )
    b.set_defaults(func=_build)

    i = sub.add_parser("info", help="print frame counts per source and split of a dataset file")
    i.add_argument("path")
    i.set_defaults(func=_info)


def _build(args: argparse.Namespace) -> int:
    from advprior.data.dataset import build_dataset, load_dataset
    from advprior.errors import UsageError

    try:
        split = tuple(float(x) for x in args.split.split(","))
        overrides = {}
        for item in args.source_fps:
            glob, _, rate = item.rpartition("=")
            overrides[glob] = float(rate)
    except ValueError:
        raise UsageError(
            "--split takes three numbers like 0.8,0.1,0.1 and --source-fps GLOB=FPS"
        ) from None
    up = _up_patterns(args.up)
    from advprior.commands._numbers import check_number

    # a NaN or zero rate failed every file, reported as "no motion could be imported"
    check_number(args.fps, "--fps", low_open=True)
    for glob, rate in overrides.items():
        check_number(rate, f"--source-fps {glob}=", low_open=True)
    if len(split) != 3 or not all(math.isfinite(x) and x >= 0 for x in split):
        raise UsageError(f"--split takes three numbers >= 0 like 0.8,0.1,0.1, got {args.split}")
    from advprior.commands._wildcards import expand_wildcards

    report = build_dataset(
        expand_wildcards(args.paths, "motion file or folder"),
        args.out,
        fps=args.fps,
        split=split,
        on_error=args.on_error,
        split_seed=args.split_seed,
        split_from=args.split_from,
        source_fps=overrides,
        up=up,
        stratify=not args.no_stratify,
        log=lambda line: print(line, file=sys.stderr),
        torso=args.torso,
    )
    # The split is by subject: too few subjects leave a requested split empty. Said here, not
    # first by a training warning or an eval refusal.
    subjects = len(report.subjects)
    instead = {
        "val": "advprior train then holds out every 20th training pose for validation, with "
        "optimistic numbers",
        "test": "advprior eval then needs --split val",
    }
    from advprior.data.dataset import subject_group

    groups = {subject_group(s) for s in report.subjects}
    # Each group is split on its own, and a group of one person always trains: folders of one
    # person each (each its own source, so its own group) leave val and test empty.
    hint = (
        f"; the split is stratified by subject group ({len(groups)} groups here, each split "
        f"on its own, and a group of one person always trains): --no-stratify splits all "
        f"{subjects} subjects as one group"
        if not args.no_stratify and len(groups) > 1 and subjects >= 3
        else ""
    )
    for (name, n), share in zip(report.per_split.items(), split, strict=True):
        if n == 0 and share > 0 and report.frames > 0 and name in instead:
            print(
                f"note: split {name!r} is empty although --split gives it {share:g}: the split "
                f"is by subject and {subjects} subject{'s' if subjects != 1 else ''} did not "
                f"reach it ({instead[name]}){hint or '; add people or change --split'}",
                file=sys.stderr,
            )
    # one line; `advprior data info FILE` prints the per-source and per-subject counts
    splits = ", ".join(f"{name} {n}" for name, n in report.per_split.items())
    # read back: the digest is of what a training run will load, and proves the file reads
    from advprior.fileio import is_stream

    # a stream (`--out /dev/null` to see what would be imported and skipped) cannot be read back
    content = None if is_stream(report.out) else load_dataset(report.out).content_sha256()
    from advprior.commands._answer import answer

    answer(
        f"wrote {report.out}: {report.frames} frames ({splits}), "
        f"{_count(report.sequences, 'sequence')}, "
        f"{_count(len(report.subjects), 'subject')}, {_count(len(report.per_source), 'source')}, "
        f"{_skipped(report.skipped)}"
        # notes are of files imported with an approximation and of the split (copies under
        # two subjects, a subject on several sides of --split-from's file): counted as notes
        + (f", {_count(len(report.notes), 'note')}" if report.notes else "")
        + (f"; content sha256 {content[:16]}" if content else ""),
        report.out,
    )
    return 0


def _up_patterns(items: list[str]) -> dict[str, str]:
    """``--up GLOB=AXIS`` items as glob -> axis, checked before anything is imported."""
    from advprior.data.bvh import UP_AXES
    from advprior.errors import UsageError

    up: dict[str, str] = {}
    for item in items:
        glob, sep, axis = item.rpartition("=")
        axis = axis.strip().lower()
        if not sep or not glob:
            raise UsageError(f"--up takes GLOB=AXIS like 'blender/*.bvh=y', got {item!r}")
        if axis not in UP_AXES:
            raise UsageError(
                f"--up {glob}=: the axis must be one of {', '.join(UP_AXES)}, got {axis!r}"
            )
        up.setdefault(glob, axis)  # the first of a repeated glob, as the first match wins
    return up


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _skipped(skipped: list[tuple[str, str]]) -> str:
    """``"3 files skipped"``, or ``"1 file and 2 people skipped"`` where single people of a file
    of several (a 3DPW pickle's ``file#k``) were skipped while the file's others were read."""
    people = sum(bool(re.search(r"#\d+$", path)) and not Path(path).exists() for path, _ in skipped)
    files = len(skipped) - people
    if not people:
        return f"{_count(files, 'file')} skipped"
    who = f"{people} {'person' if people == 1 else 'people'}"
    return f"{_count(files, 'file')} and {who} skipped" if files else f"{who} skipped"


def _print_counts(per_source: dict, per_split: dict, subjects: dict[str, list[str]]) -> None:
    print("frames per source:")
    for name, n in sorted(per_source.items()):
        print(f"  {name:32s} {n:8d}")
    print("frames per split:")
    for name, n in per_split.items():
        subs = subjects.get(name, [])
        print(f"  {name:6s} {n:8d}  ({_count(len(subs), 'subject')}: {', '.join(subs)})")


def _split_counts(data: Any) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Frames and subject names per split, counted in the file's arrays: the build's record of
    them in ``meta`` is stale for a file filtered after its build and absent from one written
    without advprior (as :func:`advprior.eval.data.load_split` counts them too)."""
    import torch

    codes = data.split.long()
    counts = torch.bincount(codes, minlength=len(data.split_names)).tolist()
    frames, subjects = {}, {}
    for code, name in enumerate(data.split_names):
        frames[name] = int(counts[code])
        present = torch.unique(data.subject[codes == code]).tolist()
        # a file made by hand may carry fewer names than subject codes (load_dataset allows it)
        names = data.subject_names
        subjects[name] = sorted(names[i] if i < len(names) else f"#{i}" for i in present)
    return frames, subjects


def _info(args: argparse.Namespace) -> int:
    from advprior.data.dataset import load_dataset

    data = load_dataset(args.path)
    meta = data.meta
    print(
        f"{args.path}: {len(data)} frames at {data.fps:g} fps, "
        f"{_count(len(data.sequence_names), 'sequence')}, "
        f"{_count(len(data.subject_names), 'subject')}"
    )
    built = meta.get("advprior_version", "an unknown advprior version")
    print(f"content sha256 {data.content_sha256()} (built by advprior {built})")
    # per source: only the build records it (no per-frame source array)
    _print_counts(meta.get("frames_per_source", {}), *_split_counts(data))
    return 0
