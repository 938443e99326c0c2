"""What recall can a pose model reach on people it never saw? The training poses as a "model".

    python benchmarks/recall_reference.py --data data/mocap30_v5.npz --split val \
        --json benchmarks/results/recall_reference_val.json [--write-docs] [--reuse]

Issue 10 asks GAN-S's recall (each held-out pose's distance to its nearest sample, mean joint
distance, paper section 4.1) to be at most the VAE's. A generative model fitted perfectly would
produce the training distribution; this script measures that reference directly: every training
pose used once as a "sample" (76,622 for v5), next to each prior's samples, on the same held-out
queries. Every prior is measured twice: with as many samples as there are training poses (the
fair comparison with the reference) and with the evaluation's 100,000. It also gives each set's
precision against the held-out people themselves (each sample's nearest held-out pose), where
the paper's precision compares samples with the training poses and so cannot score the
reference (its own distance is 0), and its spread: the mean joint distance of each sample to the
training poses' mean joint positions (how far from the average pose a set ranges).

Joints: the 24 joints of the stand-in skeleton at zero global orientation, pelvis at the origin
(``advprior.eval.metrics.pose_joints``, as ``advprior eval``'s per-joint rows); millimetres.
Nothing is chosen from these numbers: it is a diagnosis (``docs/training.md``, round 13).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
FULL_SAMPLES = 100_000
CHUNK = 8192


def _joints_mm(body_pose: torch.Tensor) -> torch.Tensor:
    from advprior.eval.metrics import pose_joints

    return torch.cat([pose_joints(c) for c in body_pose.split(CHUNK)]) * 1000.0


def _recall(queries: torch.Tensor, sets: list[torch.Tensor]) -> torch.Tensor:
    """Each query's distance to its nearest point set over ``sets`` (running minimum)."""
    from advprior.eval.metrics import nn_distances

    best = torch.full((queries.shape[0],), float("inf"))
    for s in sets:
        best = torch.minimum(best, nn_distances(queries, s))
    return best


def _stats(x: torch.Tensor) -> dict[str, float]:
    return {"mean": float(x.mean()), "median": float(x.median())}


def run(args: argparse.Namespace) -> dict:
    from advprior.data import load_dataset
    from advprior.eval.metrics import nn_distances
    from advprior.hub import load_pretrained

    full = load_dataset(args.data)
    train, held = full.select("train"), full.select(args.split)
    gen = torch.Generator().manual_seed(args.seed)
    q = torch.randperm(len(held), generator=gen)[: args.queries].sort().values
    queries = _joints_mm(held.body_pose[q])
    held_all = _joints_mm(held.body_pose)
    n_train = len(train)
    rows = []
    t0 = time.perf_counter()
    train_sets = list(_joints_mm(train.body_pose).split(CHUNK))
    recall = _recall(queries, train_sets)
    prec_q = torch.cat(train_sets)[torch.randperm(n_train, generator=gen)[: args.queries]]
    centre = torch.cat(train_sets).mean(0)  # the training poses' mean joint positions

    def spread(sets: list[torch.Tensor]) -> dict[str, float]:
        return _stats(torch.cat([(s - centre).norm(dim=-1).mean(-1) for s in sets]))

    rows.append(
        {
            "model": f"training poses (all {n_train:,})",
            "spread": spread(train_sets),
            "samples": n_train,
            "recall_at_train_size": _stats(recall),
            "recall_at_100k": None,
            "precision_vs_heldout": _stats(nn_distances(prec_q, held_all)),
            "seconds": time.perf_counter() - t0,
        }
    )
    print(json.dumps(rows[-1]), flush=True)
    for alias in args.priors:
        t0 = time.perf_counter()
        prior = load_pretrained(alias)
        g = torch.Generator().manual_seed(args.seed + 1)
        sets: list[torch.Tensor] = []
        with torch.no_grad():
            # as many samples as the larger of the two counts; both recalls read a prefix
            n_gen = max(FULL_SAMPLES, n_train)
            for a in range(0, n_gen, CHUNK):
                sets.append(_joints_mm(prior.sample(min(CHUNK, n_gen - a), generator=g)))
        allp = torch.cat(sets)
        first = min(n_train, FULL_SAMPLES)
        head = _recall(queries, list(allp[:first].split(CHUNK)))
        # the longer prefix extends the shorter one's running minimum
        rest = torch.minimum(head, _recall(queries, list(allp[first:n_gen].split(CHUNK))))
        at_train, at_full = (head, rest) if n_train <= FULL_SAMPLES else (rest, head)
        rows.append(
            {
                "model": alias,
                "samples": n_gen,
                "spread": spread(sets),
                "recall_at_train_size": _stats(at_train),
                "recall_at_100k": _stats(at_full),
                "precision_vs_heldout": _stats(nn_distances(allp[: args.queries], held_all)),
                "seconds": time.perf_counter() - t0,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {
        "command": "python benchmarks/recall_reference.py " + " ".join(args.argv),
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, torch {torch.__version__}",
        "split": args.split,
        "queries": int(queries.shape[0]),
        "heldout_poses": int(held_all.shape[0]),
        "train_poses": n_train,
        "rows": rows,
    }


def markdown(res: dict) -> str:
    split = {"val": "validation", "test": "test"}.get(res["split"], res["split"])
    lines = [
        f"Generated by `{res['command']}` on {res['date']} ({res['machine']}).",
        f"Queries: {res['queries']:,} random {split} poses (recall); precision vs held-out: "
        f"each of {res['queries']:,} samples' nearest among all {res['heldout_poses']:,} {split}"
        " poses; spread: each sample's distance to the training poses' mean joint positions."
        " Mean (median) joint distance, mm.",
        "",
        f"| model | recall, {res['train_poses']:,} samples | recall, 100,000 samples "
        "| precision vs held-out | spread |",
        "|---|---|---|---|---|",
    ]

    def cell(s: dict | None) -> str:
        return "-" if s is None else f"{s['mean']:.1f} ({s['median']:.1f})"

    for r in res["rows"]:
        lines.append(
            f"| {r['model']} | {cell(r['recall_at_train_size'])} | {cell(r['recall_at_100k'])} "
            f"| {cell(r['precision_vs_heldout'])} | {cell(r['spread'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--split", choices=("val", "test"), default="val")
    p.add_argument("--priors", nargs="+", default=["gan-s", "gan-u", "gan-n", "vae", "gmm"])
    args = p.parse_args(argv)
    return finish(args, argv, run, markdown, f"benchmarks/recall_reference.py --split {args.split}")


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The options both recall benchmarks share."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=REPO / "data" / "mocap30_v5.npz")
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, required=True)
    p.add_argument("--write-docs", action="store_true", help="write docs/training.md's block")
    p.add_argument("--reuse", action="store_true", help="render --json instead of measuring")
    return p


def finish(
    args: argparse.Namespace,
    argv: list[str] | None,
    run: Callable[[argparse.Namespace], dict],
    markdown: Callable[[dict], str],
    marker: str,
) -> int:
    """The tail both recall benchmarks share: measure with ``run(args)`` into ``--json`` (or
    read it back with ``--reuse``), write docs/training.md's block ``marker`` with
    ``--write-docs``, print the table."""
    args.argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    if args.reuse:
        res = json.loads(args.json.read_text())
    else:
        from advprior.fileio import write_text_atomic

        res = run(args)
        write_text_atomic(args.json, json.dumps(res, indent=1) + "\n")
    if args.write_docs:
        from advprior.eval.benchmark import write_generated_block

        write_generated_block(REPO / "docs" / "training.md", marker, markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
