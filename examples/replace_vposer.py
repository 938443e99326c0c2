"""Replacing VPoser in an existing optimisation loop: change the import line.

    python examples/replace_vposer.py --api v1 [--prior gan-s]
    python examples/replace_vposer.py --api v2
    python examples/replace_vposer.py --api native

The loop below is written the way VPoser code is written -- a separate ``pose_embedding``
optimised through ``vposer.decode``, reset with ``fill_(0)``, an ``|z|^2`` prior term -- and runs
unchanged on advprior after swapping the import::

    # VPoser v1 (human_body_prior)                        # advprior
    from human_body_prior.tools.model_loader \\            from advprior.compat import load_vposer
        import load_vposer
    vposer, _ = load_vposer(expr_dir, vp_model="snapshot")  vposer, _ = load_vposer("gan-s")

    # VPoser v2
    from human_body_prior.tools.model_loader \\            from advprior.compat import load_model
        import load_model
    vp, _ = load_model(expr_dir, model_code=VPoser, ...)  vp, _ = load_model("gan-s", ...)

The body model is a plain ``smplx`` SMPL object built on the open stand-in body
(``load_body_model(as_smplx=True)``, i.e. ``smplx.create(advprior.body.standin_folder(),
model_type="smpl")``). ``--api native`` shows advprior's own spelling (:class:`LatentPose`).
The loop fits the body's 3D joints to those of a few target poses drawn from the prior, so the
example needs no dataset; see ``advprior.fitting.fit_keypoints`` for a complete fit to 2D
keypoints and ``docs/compat.md`` for what the compatibility layer does.
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prior", default="gan-s", help="an alias or checkpoint folder")
    parser.add_argument("--api", choices=("v1", "v2", "native"), default="v1")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--prior-weight",
        type=float,
        default=1e-3,
        help="w in w * |pose_embedding|^2 (VPoser code's own term)",
    )
    args = parser.parse_args(argv)

    from advprior.body import load_body_model

    batch = 4
    body = load_body_model(as_smplx=True, batch_size=batch)  # a plain smplx.SMPL object

    if args.api == "native":
        from advprior import LatentPose
        from advprior.hub import load_pretrained

        prior = load_pretrained(args.prior)
        latent = LatentPose(prior, batch, init="typical")
        pose_embedding = latent.z

        def decode(_z: torch.Tensor) -> torch.Tensor:
            return latent()  # (B, 63)

        def sample(n: int) -> torch.Tensor:
            return prior.sample(n, generator=torch.Generator().manual_seed(1))
    elif args.api == "v1":
        from advprior.compat import load_vposer  # was: from human_body_prior... import load_vposer

        vposer, _ = load_vposer(args.prior, vp_model="snapshot")
        pose_embedding = torch.zeros(batch, vposer.latentD, requires_grad=True)

        def decode(z: torch.Tensor) -> torch.Tensor:
            return vposer.decode(z, output_type="aa").view(z.shape[0], -1)

        def sample(n: int) -> torch.Tensor:
            return vposer.sample_poses(n, seed=1).view(n, -1)
    else:
        from advprior.compat import load_model  # was: from human_body_prior... import load_model

        vp, _ = load_model(args.prior, remove_words_in_model_weights="vp_model.", disable_grad=True)
        pose_embedding = torch.zeros(batch, vp.latentD, requires_grad=True)

        def decode(z: torch.Tensor) -> torch.Tensor:
            return vp.decode(z)["pose_body"].reshape(z.shape[0], -1)

        def sample(n: int) -> torch.Tensor:
            return vp.sample_poses(num_poses=n, seed=1)["pose_body"].reshape(n, -1)

    def smpl_pose(pose63: torch.Tensor) -> torch.Tensor:
        return torch.cat([pose63, pose63.new_zeros(pose63.shape[0], 6)], 1)  # SMPL's hands

    with torch.no_grad():
        target = body(body_pose=smpl_pose(sample(batch))).joints[:, :24]
    orient = torch.zeros(batch, 3, requires_grad=True)
    opt = torch.optim.Adam([pose_embedding, orient], lr=0.02)

    def error_mm() -> float:
        with torch.no_grad():
            joints = body(global_orient=orient, body_pose=smpl_pose(decode(pose_embedding)))
        return 1000.0 * float((joints.joints[:, :24] - target).norm(dim=-1).mean())

    print(
        f"api {args.api}, prior {args.prior}: start (a typical pose): mean joint error "
        f"{error_mm():.1f} mm"
    )
    for _ in range(args.steps):
        opt.zero_grad()
        pose = decode(pose_embedding)
        joints = body(global_orient=orient, body_pose=smpl_pose(pose)).joints[:, :24]
        loss = ((joints - target) ** 2).sum()
        if args.api != "native":
            loss = loss + args.prior_weight * pose_embedding.pow(2).sum()  # VPoser's term
        loss.backward()
        opt.step()
    final = error_mm()
    print(
        f"after {args.steps} Adam steps: mean joint error {final:.1f} mm; "
        f"|pose_embedding| {float(pose_embedding.detach().norm(dim=-1).mean()):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
