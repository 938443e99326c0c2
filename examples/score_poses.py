"""Score poses by plausibility with any prior (``Prior.score``, higher = more plausible).

    python examples/score_poses.py --prior gan-s --data data/mocap30.npz --poses 200

Scores held-out real poses (the test split; without ``--data`` the prior's own samples), the
same poses with 0.3 rad of rotation noise per joint, and with a knee or elbow bent backwards
past its limit (advprior.eval.tasks), prints the ROC AUC of real against each, and flags poses
below a threshold: the 5th percentile of the scores of validation poses (docs/results.md lists
these percentiles for the shipped priors).
"""

from __future__ import annotations

import argparse

import torch

from advprior.data import require_dataset_file
from advprior.eval import tasks
from advprior.hub import load_pretrained


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prior", default="gan-s", help="alias or checkpoint folder (gan-s)")
    p.add_argument("--data", default=None, help="dataset .npz (default: prior samples)")
    p.add_argument("--poses", type=int, default=200, help="poses to score (200)")
    p.add_argument("--steps", type=int, default=50, help="inversion steps of a latent prior")
    args = p.parse_args(argv)
    if args.data is not None:
        try:  # before the prior loads, and one line rather than a traceback
            require_dataset_file(args.data)
        except FileNotFoundError as err:
            p.exit(2, f"{err} (or leave out --data)\n")

    prior = load_pretrained(args.prior).eval()
    gen = torch.Generator().manual_seed(0)
    if args.data is None:
        real = prior.sample(args.poses, generator=gen)
        calibration = prior.sample(args.poses, generator=gen)
    else:
        from advprior.data import load_dataset

        test, val = load_dataset(args.data, 2), load_dataset(args.data, 1)
        real = test.body_pose[torch.randperm(len(test), generator=gen)[: args.poses]]
        calibration = val.body_pose[torch.randperm(len(val), generator=gen)[: args.poses]]

    opts = {"steps": args.steps}
    threshold = float(prior.score(calibration, **opts).quantile(0.05))
    real_score = prior.score(real, **opts)
    out = {"threshold": threshold}
    for name, poses in (
        ("noise 0.3 rad", tasks.rotation_noise(real, 0.3, gen)),
        ("past limits", tasks.past_limits(real, gen)),
    ):
        score = prior.score(poses, **opts)
        out[f"auc {name}"] = tasks.roc_auc(real_score, score)
        out[f"flagged {name}"] = float((score < threshold).float().mean())
    out["flagged real"] = float((real_score < threshold).float().mean())
    print(f"prior {args.prior}: threshold (5th percentile of validation scores) {threshold:.4g}")
    for key, value in out.items():
        if key != "threshold":
            print(f"  {key}: {value:.3f}")
    return out


if __name__ == "__main__":
    main()
