"""Can any change of the training poses reach the VAE's recall? Recall of augmented training sets.

    python benchmarks/recall_augmented.py --data data/mocap30_v5.npz \
        --json benchmarks/results/recall_augmented_val.json [--write-docs] [--reuse]

Round 13 (``benchmarks/recall_reference.py``) found that the training poses themselves, used as
samples, cover held-out people no better than GAN-S does, while the VAE beats them by about 6 mm:
a generator that learned the training distribution perfectly would still miss issue 10's recall
goal. A GAN learns whatever distribution its real batches come from, so the next question is
whether any augmentation of those batches (the options ``advprior train`` has, and others) makes
a distribution whose own recall reaches the VAE's. Each row here is such a distribution, drawn
once per training pose (76,622 for v5) and measured like a prior's samples at that size, on the
validation split only (a diagnosis: nothing is chosen from it, and the test split is not read).

Columns (mean joint distance of the 24 stand-in joints, pelvis at the origin, mm): recall (each
of ``--queries`` validation poses to its nearest set member), precision against the held-out
people (each of ``--queries`` members to its nearest validation pose) and against the training
poses (the paper's precision: how far the set strays from what was captured).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from recall_reference import CHUNK, _joints_mm, _recall, _stats, finish, parser  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: body_pose joint indices (SMPL joint - 1) of the five parts that part-wise blends treat apart
PARTS = ((0, 3, 6, 9), (1, 4, 7, 10), (2, 5, 8, 11, 14), (12, 15, 17, 19), (13, 16, 18, 20))
NEIGHBOURS = 5


def _slerp_toward(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Every joint of ``a (N, J, 3, 3)`` moved along its geodesic toward ``b``'s by ``t (N,)``."""
    import roma

    step = roma.rotmat_to_rotvec(a.transpose(-1, -2) @ b) * t[:, None, None]
    return a @ roma.rotvec_to_rotmat(step)


def _nearest_other_subject(joints: torch.Tensor, subject: torch.Tensor, k: int) -> torch.Tensor:
    """``(N, k)`` indices of each pose's ``k`` nearest poses of other subjects (L2 over the
    flattened joints: a cheap stand-in for the mean joint distance, good enough to pick donors;
    other subjects, because a pose's own clip holds near-copies of it one frame away)."""
    flat = joints.reshape(joints.shape[0], -1)
    sq = (flat * flat).sum(1)
    out = torch.empty(flat.shape[0], k, dtype=torch.long)
    for a in range(0, flat.shape[0], 2048):
        d = sq[a : a + 2048, None] - 2 * flat[a : a + 2048] @ flat.T + sq[None]
        d[subject[a : a + 2048, None] == subject[None]] = float("inf")
        out[a : a + 2048] = d.topk(k, largest=False).indices
    return out


def augmentations(
    rot: torch.Tensor, joints: torch.Tensor, subject: torch.Tensor
) -> list[tuple[str, Callable[[torch.Generator], torch.Tensor]]]:
    """(name, draw) for every augmented set; ``draw(generator) -> (N, 21, 3, 3)``."""
    import roma

    from advprior.train.augment import blend_poses, mix_legs

    n = rot.shape[0]

    def pair_blend(lo: float, hi: float) -> Callable[[torch.Generator], torch.Tensor]:
        def draw(g: torch.Generator) -> torch.Tensor:
            donor = torch.randperm(n, generator=g)
            return _slerp_toward(rot, rot[donor], lo + (hi - lo) * torch.rand(n, generator=g))

        return draw

    def neighbour_blend(g: torch.Generator) -> torch.Tensor:
        near = _nearest_other_subject(joints, subject, NEIGHBOURS)
        donor = near[torch.arange(n), torch.randint(0, NEIGHBOURS, (n,), generator=g)]
        return _slerp_toward(rot, rot[donor], torch.rand(n, generator=g))

    def part_blend(g: torch.Generator) -> torch.Tensor:
        out = rot.clone()
        for part in PARTS:
            idx = torch.tensor(part)
            donor = torch.randperm(n, generator=g)
            out[:, idx] = _slerp_toward(rot[:, idx], rot[donor][:, idx], torch.rand(n, generator=g))
        return out

    def noise(sigma: float) -> Callable[[torch.Generator], torch.Tensor]:
        return lambda g: rot @ roma.rotvec_to_rotmat(torch.randn(n, 21, 3, generator=g) * sigma)

    def shrink(g: torch.Generator) -> torch.Tensor:
        mean = roma.special_procrustes(rot.mean(0))  # each joint's chordal mean rotation
        return _slerp_toward(rot, mean.expand_as(rot), 0.4 * torch.rand(n, generator=g))

    def blend(g: torch.Generator) -> torch.Tensor:
        return blend_poses(rot, 1.0, g)

    pose_mix, twice = "`--pose-mix 1`", "whole-pose blend, applied twice"
    near = f"blend with one of the {NEIGHBOURS} nearest poses of other people, t ~ U(0, 1)"
    return [
        ("training poses (no change)", lambda g: rot),
        (f"whole-pose blend with a random pose, t ~ U(0, 1) ({pose_mix})", blend),
        ("whole-pose blend with a random pose, t ~ U(0.3, 0.7)", pair_blend(0.3, 0.7)),
        (twice, lambda g: blend_poses(blend(g), 1.0, g)),
        (near, neighbour_blend),
        ("five body parts, each blended with its own random pose", part_blend),
        ("legs of a random pose (`--leg-mix 1`)", lambda g: mix_legs(rot, 1.0, g)),
        ("rotation noise, 0.05 rad per axis", noise(0.05)),
        ("rotation noise, 0.1 rad per axis", noise(0.1)),
        ("toward the mean pose, t ~ U(0, 0.4)", shrink),
    ]


def run(args: argparse.Namespace) -> dict:
    from advprior.data import load_dataset
    from advprior.eval.metrics import nn_distances
    from advprior.hub import load_pretrained
    from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

    full = load_dataset(args.data)
    train, held = full.select("train"), full.select("val")
    gen = torch.Generator().manual_seed(args.seed)
    q = torch.randperm(len(held), generator=gen)[: args.queries].sort().values
    queries = _joints_mm(held.body_pose[q])
    held_all = _joints_mm(held.body_pose)
    n = len(train)
    rot = axis_angle_to_rotmat(train.body_pose.reshape(n, 21, 3))
    joints = _joints_mm(train.body_pose)
    pick = torch.randperm(n, generator=gen)[: args.queries]

    def measure(name: str, body_pose: torch.Tensor, t0: float) -> dict:
        sets = list(_joints_mm(body_pose).split(CHUNK))
        members = torch.cat(sets)[pick]
        row = {
            "set": name,
            "size": int(body_pose.shape[0]),
            "recall": _stats(_recall(queries, sets)),
            "precision_vs_heldout": _stats(nn_distances(members, held_all)),
            "precision_vs_train": _stats(nn_distances(members, joints)),
            "seconds": time.perf_counter() - t0,
        }
        print(json.dumps(row), flush=True)
        return row

    rows = []
    for k, (name, draw) in enumerate(augmentations(rot, joints, train.subject)):
        t0 = time.perf_counter()
        aug = draw(torch.Generator().manual_seed(args.seed + 1 + k))
        rows.append(measure(name, rotmat_to_axis_angle(aug).reshape(n, 63), t0))
    for alias in args.priors:
        t0 = time.perf_counter()
        prior = load_pretrained(alias)
        g = torch.Generator().manual_seed(args.seed + 100)
        with torch.no_grad():
            samples = torch.cat(
                [prior.sample(min(CHUNK, n - a), generator=g) for a in range(0, n, CHUNK)]
            )
        rows.append(measure(f"{alias} samples (reference)", samples, t0))
    return {
        "command": "python benchmarks/recall_augmented.py " + " ".join(args.argv),
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, torch {torch.__version__}",
        "queries": int(queries.shape[0]),
        "heldout_poses": int(held_all.shape[0]),
        "train_poses": n,
        "rows": rows,
    }


def markdown(res: dict) -> str:
    lines = [
        f"Generated by `{res['command']}` on {res['date']} ({res['machine']}).",
        f"Every set has {res['train_poses']:,} members (one per training pose; the priors: as "
        f"many samples). Recall: {res['queries']:,} random validation poses to their nearest "
        f"member; precision: {res['queries']:,} members to their nearest of all "
        f"{res['heldout_poses']:,} validation poses, and to their nearest training pose. "
        "Mean (median) joint distance, mm.",
        "",
        "| set | recall | precision vs held-out | precision vs training poses |",
        "|---|---|---|---|",
    ]

    def cell(s: dict) -> str:
        return f"{s['mean']:.1f} ({s['median']:.1f})"

    for r in res["rows"]:
        lines.append(
            f"| {r['set']} | {cell(r['recall'])} | {cell(r['precision_vs_heldout'])} "
            f"| {cell(r['precision_vs_train'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--priors", nargs="*", default=["gan-s", "vae"])
    args = p.parse_args(argv)
    return finish(args, argv, run, markdown, "benchmarks/recall_augmented.py")


if __name__ == "__main__":
    raise SystemExit(main())
