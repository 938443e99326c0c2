"""advprior in one screen: sample poses, pose a body, project a pose, interpolate, fit 2D
keypoints.

    python examples/quickstart.py [--prior gan-s]

Runs on the open stand-in body; ``--prior`` takes any alias, checkpoint directory or Hub id.
"""

from __future__ import annotations

import argparse
import math
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prior", default="gan-s")
    args = parser.parse_args(argv)

    from advprior.body import load_body_model
    from advprior.fitting import PinholeCamera, fit_keypoints
    from advprior.hub import load_pretrained

    prior = load_pretrained(args.prior)  # frozen, eval mode
    body = load_body_model()  # the open stand-in (SMPL format)
    gen = torch.Generator().manual_seed(0)

    # 1. Random plausible poses: (4, 63) axis-angle, SMPL joints 1..21.
    poses = prior.sample(4, generator=gen)
    print("sampled poses", tuple(poses.shape))

    # 2. Pose the body: vertices (4, V, 3), 24 joints (4, 24, 3), metres, y up.
    with torch.no_grad():
        out = body(global_orient=torch.zeros(4, 3), body_pose=poses)
    print("vertices", tuple(out.vertices.shape), "joints", tuple(out.joints.shape))

    # 3. The nearest plausible pose to a noisy one (a latent prior: every Prior has the method,
    # but the GMM, a density on poses, has no latent to project through and raises).
    if getattr(prior, "latent_space", None) is not None:
        from advprior.body import forward_kinematics

        noisy = poses + 0.2 * torch.randn(4, 63, generator=gen)
        fixed = prior.project_pose(noisy, steps=50)
        zero = torch.zeros(4, 3)

        def joint_error_mm(pose: torch.Tensor) -> float:
            diff = forward_kinematics(zero, pose) - forward_kinematics(zero, poses)
            return 1000.0 * float(diff.norm(dim=-1).mean())

        print(
            f"noisy poses: {joint_error_mm(noisy):.0f} mm from the clean ones; after "
            f"project_pose: {joint_error_mm(fixed):.0f} mm"
        )

    # 4. A path between two latents: the latent space's own (slerp on the sphere), and the same
    # path shortened on the decoded poses (geodesic=True), which does not detour.
    if getattr(prior, "latent_space", None) is not None:
        from advprior.body import forward_kinematics

        z0, z1 = prior.sample_latent(2, generator=gen)
        for geodesic in (False, True):
            with torch.no_grad():
                path = prior.decode(prior.interpolate(z0, z1, 16, geodesic=geodesic))
            joints = forward_kinematics(torch.zeros(16, 3), path)  # (16, 24, 3)
            length = (joints[1:] - joints[:-1]).norm(dim=-1).mean(-1).sum()
            direct = (joints[-1] - joints[0]).norm(dim=-1).mean()
            print(
                f"{'geodesic' if geodesic else 'latent'} path: "
                f"{float(length / direct):.2f}x the direct distance"
            )

    # 5. SMPLify-style fit of 2D keypoints seen by a pinhole camera (OpenCV convention).
    camera = PinholeCamera(focal=1000.0, center=(500.0, 500.0))
    facing = torch.tensor([[math.pi, 0.0, 0.0]]).expand(4, 3)  # upright, facing the camera
    with torch.no_grad():
        truth = body(
            global_orient=facing,
            body_pose=poses,
            transl=torch.tensor([[0.0, 0.0, 4.0]]).expand(4, 3),
        )
    keypoints = camera.project(truth.joints)  # (4, 24, 2) pixels
    confidence = torch.ones(4, 24)
    result = fit_keypoints(
        keypoints, confidence, camera, body_model=body, prior=prior, iterations=30
    )
    err = (result.joints - truth.joints).norm(dim=-1).mean()
    print(
        f"fit: mean 3D joint error {1000 * float(err):.0f} mm, "
        f"reprojection {float((result.projected - keypoints).norm(dim=-1).mean()):.1f} px, "
        f"{result.info['seconds']:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
