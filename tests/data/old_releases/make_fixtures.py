"""Write the artefacts of tests/data/old_releases/<version>/ with an OLD advprior release.

Run from a checkout of the release (see README.md here), not by the test suite:

    git worktree add --detach /tmp/advprior-0.1.0 e12a9ed
    PYTHONPATH=/tmp/advprior-0.1.0 python tests/data/old_releases/make_fixtures.py \
        tests/data/old_releases/0.1.0

It uses only API that 0.1.0 and 0.2.0 both have, and keeps every file a few KB: a tiny GAN-S
(hidden 8, latent 4) trained two steps by ``train_gan`` on two committed clips, a ``LatentHead``
and a ``LatentPose`` state dict on it, and the outputs the release gave for fixed inputs.
``modules.pt`` holds the same head and pose, and a small VAE, pickled whole
(``torch.save(module)``, as research code saves a model); ``--modules-only`` writes just it
into a folder that holds the rest.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import advprior
from advprior import LatentHead, LatentPose
from advprior.hub import load_pretrained
from advprior.train import train_gan

MOCAP = Path(__file__).resolve().parents[1] / "mocap"


def main(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    clips = [str(MOCAP / "hdm05_asfamc"), str(MOCAP / "cmu_bvh_daz_aclstm")]
    build = ["data", "build", *clips, "--no-stratify", "--split", "0.5,0.5,0"]
    subprocess.run(
        [sys.executable, "-m", "advprior.cli", *build, "--out", str(out / "data.npz")],
        check=True,
        capture_output=True,
        cwd=tempfile.gettempdir(),  # python -m puts the cwd first: not this checkout's advprior
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train_gan(
            out / "data.npz",
            run,
            steps=2,
            batch_size=8,
            hidden_dim=8,
            latent_dim=4,
            disc_hidden_dim=8,
            d_steps=1,
            val_every=2,
            val_samples=16,
            ckpt_every=1,
            tensorboard=False,
            progress=False,
        )
        shutil.copytree(run / "model", out / "model")
    # the model card is read by no loader, and its code block predates the format check
    (out / "model" / "README.md").unlink()
    prior = load_pretrained(out / "model").eval()
    rng = np.random.default_rng(0)
    z = torch.from_numpy(rng.standard_normal((6, 4)).astype(np.float32))
    z = z / z.norm(dim=-1, keepdim=True)
    features = torch.from_numpy(rng.standard_normal((3, 5)).astype(np.float32))
    torch.manual_seed(1)
    head = LatentHead(5, prior).eval()
    torch.save(head.state_dict(), out / "latent_head.pt")
    pose = LatentPose(prior, 3)
    with torch.no_grad():
        pose.z.add_(0.5)  # a fitted state, away from the start
    torch.save(pose.state_dict(), out / "latent_pose.pt")
    with torch.no_grad():
        np.savez_compressed(
            out / "outputs.npz",
            z=z.numpy(),
            features=features.numpy(),
            rotmat=prior.decode(z, output="rotmat").numpy(),
            axis_angle=prior.decode(z).numpy(),
            head=head(features, output="rotmat").numpy(),
            pose=pose(output="rotmat").numpy(),
            pose_z=pose.z.detach().numpy(),
            version=np.array(advprior.__version__),
        )


def write_modules(out: Path) -> None:
    """``modules.pt``: the head and pose of ``latent_head.pt`` / ``latent_pose.pt`` and a small
    VAE (seed 2), each ``torch.save``d whole (a pickle of the release's classes)."""
    from advprior.baselines import VPoserVAE

    prior = load_pretrained(out / "model").eval()
    head = LatentHead(5, prior).eval()
    head.load_state_dict(torch.load(out / "latent_head.pt"))
    pose = LatentPose(prior, 3)
    pose.load_state_dict(torch.load(out / "latent_pose.pt"))
    torch.manual_seed(2)
    vae = VPoserVAE(hidden_dim=8, latent_dim=4).eval()
    torch.save({"head": head, "pose": pose, "vae": vae}, out / "modules.pt")


if __name__ == "__main__":
    if sys.argv[2:] == ["--modules-only"]:
        write_modules(Path(sys.argv[1]).resolve())
    else:
        main(Path(sys.argv[1]).resolve())
        write_modules(Path(sys.argv[1]).resolve())
