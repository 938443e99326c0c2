"""Issue 4, item 4: the shipped priors side by side on the dataset's TEST split, in one run.

For every model (GAN-S/U/N, VAE, GMM; aliases or checkpoint folders):

- recall: for each test pose, the distance to the nearest of ``--n-recall`` (100k) generated
  poses; precision: for each of ``--n-precision`` generated poses, the distance to the nearest
  training pose. Distance = paper Eq. 4, the mean over SMPL's 24 joints of the Euclidean
  distance in mm, joints from the stand-in body with zero global orientation and the pelvis at
  the origin (``advprior.train.validation.pose_joints``);
- the training wall time recorded in the checkpoint's config (``training.wall_time_s``).

Writes JSON (``--out``) and, with ``--doc``, replaces the block between
``<!-- bench_train:start -->`` and ``<!-- bench_train:end -->`` in that Markdown file
with the table.

    OMP_NUM_THREADS=1 python benchmarks/bench_train.py --data data/mocap30.npz \
        --out docs/training_results.json --doc docs/training.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from advprior.fileio import write_text_atomic

DEFAULT_MODELS = ("gan-s", "gan-u", "gan-n", "vae", "gmm")
START, END = "<!-- bench_train:start -->", "<!-- bench_train:end -->"


def _sample(model: object, n: int, seed: int, chunk: int = 20000) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for i in range(0, n, chunk):
            out.append(model.sample(min(chunk, n - i), generator=gen).float())
    return torch.cat(out)


def measure(args: argparse.Namespace) -> dict:
    from advprior.data import load_dataset
    from advprior.eval.metrics import nn_distances
    from advprior.hub import load_pretrained
    from advprior.train.validation import pose_joints

    test = load_dataset(args.data, split="test").body_pose.float()
    train = load_dataset(args.data, split="train").body_pose.float()
    test_j, train_j = pose_joints(test), pose_joints(train)
    rows = {}
    for name in args.models:
        t0 = time.perf_counter()
        model = load_pretrained(name)
        model.eval()
        recall_j = pose_joints(_sample(model, args.n_recall, args.seed))
        rec = nn_distances(test_j, recall_j)
        prec_j = recall_j[: args.n_precision]
        prec = nn_distances(prec_j, train_j)
        training = getattr(model, "training_metadata", None) or {}
        rows[name] = {
            "recall_mean_mm": float(rec.mean()),
            "recall_median_mm": float(rec.median()),
            "precision_mean_mm": float(prec.mean()),
            "precision_median_mm": float(prec.median()),
            "train_wall_time_s": training.get("wall_time_s"),
            "train_steps": training.get("steps"),
            "selected_step": training.get("selected_step", training.get("steps")),
            "measure_time_s": round(time.perf_counter() - t0, 1),
        }
        print(name, json.dumps(rows[name]), flush=True)
    # Reference: the training poses themselves as the "generated" set. A model that only
    # reproduces its training poses reaches this recall and no better; its precision is 0.
    ref = nn_distances(test_j, train_j)
    reference = {"recall_mean_mm": float(ref.mean()), "recall_median_mm": float(ref.median())}
    print("training poses", json.dumps(reference), flush=True)
    return {
        "data": str(args.data),
        "test_poses": int(test.shape[0]),
        "train_poses": int(train.shape[0]),
        "n_recall": args.n_recall,
        "n_precision": args.n_precision,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}",
        "models": rows,
        "training_poses_as_samples": reference,
    }


def table(result: dict) -> str:
    lines = [
        f"Test split: {result['test_poses']} poses; recall against {result['n_recall']:,} "
        f"generated poses, precision of {result['n_precision']:,} generated poses against the "
        f"{result['train_poses']:,} training poses; seed {result['seed']}; {result['machine']}.",
        "",
        "| model | recall mean (mm) | recall median (mm) | precision mean (mm) "
        "| precision median (mm) | training wall time | steps (selected) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["models"].items():
        wall = r["train_wall_time_s"]
        wall_s = f"{wall / 60:.1f} min" if isinstance(wall, (int, float)) else "n/a"
        lines.append(
            f"| {name} | {r['recall_mean_mm']:.1f} | {r['recall_median_mm']:.1f} | "
            f"{r['precision_mean_mm']:.1f} | {r['precision_median_mm']:.1f} | {wall_s} | "
            f"{r['train_steps']} ({r.get('selected_step', r['train_steps'])}) |"
        )
    ref = result.get("training_poses_as_samples")
    if ref:
        lines.append(
            f"| *the {result['train_poses']:,} training poses themselves* | "
            f"{ref['recall_mean_mm']:.1f} | {ref['recall_median_mm']:.1f} | 0 | 0 | | |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/mocap30.npz")
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--n-recall", type=int, default=100_000)
    parser.add_argument("--n-precision", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/training_results.json")
    parser.add_argument("--doc", default=None, help="Markdown file whose marked block is updated")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    result = measure(args)
    write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    md = table(result)
    print(md)
    if args.doc:
        doc = Path(args.doc)
        text = doc.read_text()
        if START not in text or END not in text:
            raise SystemExit(f"{doc} lacks the {START} ... {END} markers")
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        write_text_atomic(doc, f"{head}{START}\n{md}\n{END}{tail}")


if __name__ == "__main__":
    main()
