"""Fit a 2D keypoint clip with temporal smoothness and animate the result next to the keypoints.

    python examples/video_fit.py --data data/mocap30.npz --frames 60 --out video_fit.gif

Takes a held-out mocap clip (the test split; without ``--data`` a blend of two prior
samples), projects its 24 joints through a 1000 px camera with 5 px noise and 20% of the
keypoints dropped, fits it per frame (:func:`advprior.fitting.fit_keypoints`) and as a sequence
(:func:`advprior.fitting.fit_sequence`), and writes an animated GIF (matplotlib's PillowWriter;
pillow comes with matplotlib): the keypoints with the sequence fit's
reprojection, and the fitted 3D skeleton (per frame in grey, sequence in colour).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from advprior.data import require_dataset_file
from advprior.eval.sequence_benchmark import clip_errors, make_clip_views
from advprior.eval.tasks import contiguous_clips
from advprior.fitting import fit_keypoints, fit_sequence
from advprior.hub import load_pretrained
from advprior.skeleton import PARENTS


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A path named like ``out`` (same suffix: matplotlib and pillow pick the format by it) in a
    new hidden folder beside it, moved onto ``out`` only when the block completes. matplotlib's
    writers save whatever frames they have when the drawing is interrupted or fails, so writing
    straight to ``out`` would replace a previous picture by a truncated one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as folder:
        path = Path(folder) / out.name
        yield path
        os.replace(path, out)


def _clip(prior, data: str | None, frames: int):
    if data is None:
        gen = torch.Generator().manual_seed(0)
        ends = prior.sample(2, generator=gen)
        w = torch.linspace(0, 1, frames)[:, None]
        pose = (1 - w) * ends[0] + w * ends[1]  # axis-angle blend: a smooth, made-up motion
        orient = torch.tensor([0.0, 0.0, 0.0]).expand(frames, 3)
        transl = torch.stack(
            [torch.linspace(0, 0.5, frames), torch.zeros(frames), torch.zeros(frames)], -1
        )
        return pose[None], orient[None], transl[None]
    from advprior.data import load_dataset

    test = load_dataset(data, 2)
    index = contiguous_clips(test.sequence, frames, 1)
    if not index:
        raise SystemExit(f"no test sequence has {frames} consecutive frames")
    i = index[0]
    return test.body_pose[i][None], test.global_orient[i][None], test.transl[i][None]


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prior", default="gan-s")
    p.add_argument(
        "--data", default=None, help="dataset .npz (default: a blend of two prior samples)"
    )
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--iterations", type=int, default=30, help="per-frame fit iterations")
    p.add_argument("--out", type=Path, default=Path("video_fit.gif"))
    p.add_argument("--dpi", type=int, default=60, help="picture resolution (60)")
    args = p.parse_args(argv)
    if args.frames < 3:
        p.error("--frames must be at least 3 (the acceleration error needs three frames)")
    from PIL import Image  # a dependency of matplotlib

    # pillow picks the format by the suffix: say so now rather than after the fit
    animated = sorted(e for e, f in Image.registered_extensions().items() if f in Image.SAVE_ALL)
    if args.out.suffix.lower() not in animated:
        p.error(
            f"--out {args.out}: name an animation file, e.g. video_fit.gif (suffixes pillow "
            f"animates: {' '.join(animated)})"
        )
    if args.data is not None:
        try:  # before the prior loads, and one line rather than a traceback
            require_dataset_file(args.data)
        except FileNotFoundError as err:
            p.exit(2, f"{err} (or leave out --data)\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import animation

    prior = load_pretrained(args.prior).eval()
    views = make_clip_views(*_clip(prior, args.data, args.frames), seed=0)
    kp, conf = views.keypoints[0], views.confidence[0]
    single = fit_keypoints(kp, conf, views.camera, prior=prior, iterations=args.iterations)
    seq = fit_sequence(kp, conf, views.camera, prior=prior, init=single)
    for name, joints in (("per frame", single.joints), ("sequence", seq.joints)):
        err = clip_errors(joints[None], views)
        print(
            f"{name}: P-MPJPE {err['p_mpjpe_mm']:.1f} mm, acceleration error "
            f"{err['accel_mm']:.1f} mm/frame^2"
        )

    fig = plt.figure(figsize=(8, 4))
    ax2d = fig.add_subplot(1, 2, 1)
    ax3d = fig.add_subplot(1, 2, 2, projection="3d")

    # matplotlib takes numpy arrays (tensors work but warn).
    kp, conf = kp.numpy(), conf.numpy()
    projected, joints_single, joints_seq = (
        x.numpy() for x in (seq.projected, single.joints, seq.joints)
    )
    seen_kp = kp[conf > 0]
    lo, hi = seen_kp.min(0) - 60, seen_kp.max(0) + 60

    def bones(points):
        return [(points[[j, parent]]) for j, parent in enumerate(PARENTS) if parent >= 0]

    def draw(t: int) -> None:
        ax2d.cla()
        ax3d.cla()
        seen = conf[t] > 0
        ax2d.scatter(kp[t, seen, 0], kp[t, seen, 1], s=8, c="k", label="keypoints")
        for seg in bones(projected[t]):
            ax2d.plot(seg[:, 0], seg[:, 1], c="tab:red", lw=1.5)
        ax2d.set_xlim(lo[0], hi[0])
        ax2d.set_ylim(hi[1], lo[1])
        ax2d.set_aspect("equal")
        ax2d.set_title(f"frame {t}: keypoints, sequence fit")
        for joints, colour in ((joints_single[t], "0.6"), (joints_seq[t], "tab:red")):
            rel = joints - joints[:1]  # each skeleton about its own pelvis
            for seg in bones(rel):
                # Camera frame: x right, y down, z away; draw with up = -y and depth = z.
                ax3d.plot(seg[:, 0], seg[:, 2], -seg[:, 1], c=colour, lw=1.5)
        ax3d.set_xlim(-1, 1)
        ax3d.set_ylim(-1, 1)
        ax3d.set_zlim(-1, 1)
        ax3d.set_title("3D: per frame (grey), sequence (red)")

    out = args.out
    anim = animation.FuncAnimation(fig, draw, frames=kp.shape[0])
    with staged(out) as path:
        anim.save(path, writer=animation.PillowWriter(fps=15), dpi=args.dpi)
    plt.close(fig)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
