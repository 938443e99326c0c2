"""Replacing VPoser in an optimisation loop, line by line.

    python examples/replace_vposer.py [--prior gan-s]

A typical VPoser (human_body_prior) fitting loop, and the advprior lines that replace it::

    # VPoser                                           # advprior
    vp, _ = load_model(expr_dir, model_code=VPoser,    prior = PosePrior.from_pretrained("gan-s")
                       disable_grad=True)
    z = torch.zeros(B, 32, requires_grad=True)         latent = LatentPose(prior, B)
    pose = vp.decode(z)["pose_body"].reshape(B, 63)    pose = latent()            # (B, 63)
    loss = data + w * z.pow(2).sum()                   loss = data  # z stays on the sphere
    opt = torch.optim.Adam([z, orient], lr)            opt = torch.optim.Adam(
                                                           [*latent.parameters(), orient], lr)

Everything else (body model call, data term, optimiser steps) is unchanged. Here the loop fits
the stand-in body's 3D joints to those of a few target poses; the target poses come from the
prior itself so the example needs no dataset. Use :func:`advprior.fitting.fit_keypoints` for a
complete SMPLify-style fit to 2D keypoints.
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", default="gan-s", help="a PosePrior alias or checkpoint dir")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)

    from advprior import LatentPose
    from advprior.body import load_body_model
    from advprior.hub import load_pretrained

    prior = load_pretrained(args.prior)          # was: vp, _ = load_model(...)
    body = load_body_model()
    batch = 4
    with torch.no_grad():
        target_pose = prior.sample(batch, generator=torch.Generator().manual_seed(1))
        target = body(global_orient=torch.zeros(batch, 3), body_pose=target_pose).joints

    latent = LatentPose(prior, batch)            # was: z = torch.zeros(B, 32, requires_grad=True)
    orient = torch.zeros(batch, 3, requires_grad=True)
    opt = torch.optim.Adam([*latent.parameters(), orient], lr=0.02)

    def error_mm() -> float:
        with torch.no_grad():
            joints = body(global_orient=orient, body_pose=latent()).joints
        return 1000.0 * float((joints - target).norm(dim=-1).mean())

    print(f"start: mean joint error {error_mm():.1f} mm")
    for _ in range(args.steps):
        opt.zero_grad()
        pose = latent()                          # was: vp.decode(z)["pose_body"].reshape(B, -1)
        joints = body(global_orient=orient, body_pose=pose).joints
        loss = ((joints - target) ** 2).sum()    # was: data + w * z.pow(2).sum()
        loss.backward()
        opt.step()
    print(f"after {args.steps} Adam steps: mean joint error {error_mm():.1f} mm; latents on the "
          f"manifold: {bool(torch.allclose(prior.project(latent.latent()), latent.latent()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
