"""Mocap import benchmark: speed and retargeting quality over a whole mocap folder.

    python benchmarks/bench_data.py [../shared/data/mocap] [--json out.json] [--figure png]

Prints one JSON object:

- ``seconds_import_retarget``: wall time to import and retarget every motion file to 30 fps
  (what ``advprior data build`` does, without writing);
- ``per_source``: files, source frames, 30-fps frames, and per bone (thigh, shin, upper arm,
  forearm, spine, neck) the mean / 95th-percentile angle in degrees between the bone of the
  stand-in body posed with the retargeted parameters and the source's bone, plus the mean /
  p95 of the rigid-transfer angle (how far the source joint's rotation alone, before the
  direction correction, would leave each bone: how far the source skeleton is from
  one-to-one);
- ``cross_check``: CMU trials present both as ASF/AMC and as DeepMimic retargets: mean distance
  of pelvis-relative joints (metres) between the two independent routes.

``--figure`` also draws a few source skeletons beside the retargeted stand-in bodies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parent.parent / "shared" / "data" / "mocap"


def motion_files(root: Path) -> list[tuple[Path, Path, str]]:
    from advprior.data.dataset import _candidates, classify

    return [(f, rel, src) for f, rel, src in _candidates([root]) if classify(f) is None]


def rigid_transfer_angles(motion) -> dict[str, np.ndarray]:
    """Per bone, degrees between the source bone and SMPL's bone moved by ``W_driver A_j`` alone."""
    from advprior.data import rotmath
    from advprior.data.naming import map_to_smpl
    from advprior.data.quality import BONES
    from advprior.data.retarget import _reference, mapped_points, source_frame
    from advprior.skeleton import REST_JOINTS

    m = map_to_smpl(motion.skeleton)
    rest_src = motion.skeleton.rest_positions()
    frame = source_frame(mapped_points(rest_src, m))
    w_src, p_src = motion.global_transforms()
    w = frame @ w_src @ frame.T
    pts = mapped_points(p_src @ frame.T, m)
    rest = mapped_points(rest_src @ frame.T, m)
    out = {}
    for name, pairs in BONES.items():
        vals = []
        for j, c in pairs:
            if m.a[j] < 0 or m.a[c] < 0:
                continue
            d_smpl = REST_JOINTS[c] - REST_JOINTS[j]
            d_rest = rest[c] - rest[j]
            ref = _reference(d_smpl)
            off = rotmath.frame_from(d_rest, ref) @ rotmath.frame_from(d_smpl, ref).T
            moved = w[:, m.driver[j]] @ off @ d_smpl
            tgt = pts[:, c] - pts[:, j]
            cos = np.sum(moved * tgt, -1) / (
                np.linalg.norm(moved, axis=-1) * np.linalg.norm(tgt, axis=-1)
            )
            vals.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
        if vals:
            out[name] = np.concatenate(vals)
    return out


def cross_check(root: Path) -> dict:
    from advprior.data import load_motion
    from advprior.data.quality import posed_joints
    from advprior.data.rotmath import rotvec_to_matrix

    out = {}
    for dm in sorted((root / "cmu_deepmimic_retarget_jump").rglob("*_*.txt")):
        amc = root / "cmu_asfamc" / dm.parent.name / (dm.stem + ".amc")
        if not amc.is_file():
            continue

        def local(path: Path) -> np.ndarray:
            smpl = load_motion(path).to_smpl(30)
            j = posed_joints(smpl)
            r = rotvec_to_matrix(smpl.global_orient)
            return np.einsum("tji,tkj->tki", r, j - j[:, :1])

        a, b = local(amc), local(dm)
        limbs = [4, 5, 7, 8, 12, 15, 18, 19]
        dist = [
            np.linalg.norm(a[k : k + len(b)] - b, axis=-1)[:, limbs].mean()
            for k in range(len(a) - len(b) + 1)
        ]
        out[dm.stem] = round(float(min(dist)), 4)
    return out


def figure(root: Path, path: Path) -> None:
    import torch

    from advprior.body import load_body_model
    from advprior.body.plot import plot_skeleton_pairs
    from advprior.data import load_motion
    from advprior.data.retarget import source_positions

    picks = [
        ("cmu_asfamc/02/02_05.amc", None, 0.45, "CMU"),
        ("hdm05_asfamc/amc/HDM_bd_kickLFront1Reps_001_120.amc", None, 0.5, "HDM05"),
        ("cmu_bvh_daz_aclstm/martial/05.bvh", None, 0.3, "Daz BVH"),
        ("cmu_deepmimic_retarget_jump/127/127_04.txt", None, 0.5, "DeepMimic"),
    ]
    model = load_body_model()
    parts: dict[bool, list[Path]] = {False: [], True: []}
    for i, (rel, fps, at, title) in enumerate(picks):
        motion = load_motion(root / rel, fps=fps).without_rest_frames().resample(30)
        smpl = motion.to_smpl(None)
        k = int(at * (smpl.num_frames - 1))
        with torch.no_grad():
            out = model(
                global_orient=torch.as_tensor(smpl.global_orient[k : k + 1], dtype=torch.float32),
                body_pose=torch.as_tensor(smpl.body_pose[k : k + 1], dtype=torch.float32),
                transl=torch.as_tensor(smpl.transl[k : k + 1], dtype=torch.float32),
            )
        for overlay in (False, True):
            part = path.with_name(f".{path.stem}_{i}_{int(overlay)}.png")
            plot_skeleton_pairs(
                source_positions(motion)[k : k + 1],
                list(motion.skeleton.parents),
                part,
                vertices=out.vertices.numpy(),
                faces=model.faces,
                joints=out.joints.numpy(),
                titles=[title],
                yaw_deg=30.0,
                overlay=overlay,
            )
            parts[overlay].append(part)
    _stack(parts[False], path, rows=2)
    _stack(parts[True], path.with_name(f"{path.stem}_overlay.png"), rows=1)


def _stack(parts: list[Path], out: Path, rows: int) -> None:
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    from advprior.fileio import atomic_path

    imgs = [mpimg.imread(p) for p in parts]
    h = max(i.shape[0] for i in imgs)
    cols = -(-len(imgs) // rows)
    w = max(i.shape[1] for i in imgs)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * w / 100, rows * h / 100), dpi=100)
    for ax, img in zip(np.ravel(axes), imgs, strict=False):
        ax.imshow(img)
        ax.axis("off")
    fig.tight_layout(pad=0.2)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    for p in parts:
        p.unlink()


def markdown(report: dict) -> str:
    """The tables of ``docs/data.md`` from a report."""
    bones = ("thigh", "shin", "upper_arm", "forearm", "spine", "neck")
    head = (
        "| source | files | source frames | frames at 30 fps | "
        + " | ".join(b.replace("_", " ") for b in bones)
        + " | all | rigid spine |"
    )
    rows = [head, "|" + "---|" * (len(bones) + 6)]
    for name, s in sorted(report["per_source"].items()):
        cells = [f"{s[b]['mean']:.3f} / {s[b]['p95']:.3f}" if b in s else "-" for b in bones]
        rigid = s.get("rigid_spine")
        rows.append(
            f"| {name} | {s['files']} | {s['source_frames']:,} | {s['frames_30fps']:,} | "
            + " | ".join(cells)
            + f" | {s['all_bones']['mean']:.3f} / {s['all_bones']['p95']:.3f} | "
            + (f"{rigid['mean']:.1f} / {rigid['p95']:.1f}" if rigid else "-")
            + " |"
        )
    cc = report["cross_check_asf_vs_deepmimic_m"]
    rows += [
        "",
        "Bone angles: mean / 95th percentile, degrees.",
        "",
        f"Speed: import and retarget all {report['files']} files to {report['fps']:g} fps "
        f"in **{report['seconds_import_retarget']:.1f} s** (one thread, 2-core machine "
        "shared with other jobs).",
        "",
        "| CMU trial | " + " | ".join(cc) + " |",
        "|---|" + "---|" * len(cc),
        "| ASF/AMC vs DeepMimic, mean joint distance (m) | "
        + " | ".join(f"{v:.3f}" for v in cc.values())
        + " |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default=str(DEFAULT))
    ap.add_argument("--json", default=None, help="also write the JSON here")
    ap.add_argument("--figure", default=None, help="write the retargeting picture here")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--markdown", action="store_true", help="print the docs tables too")
    args = ap.parse_args(argv)
    root = Path(args.root)
    from advprior.data import bone_direction_errors, load_motion
    from advprior.data.dataset import source_rate

    files = motion_files(root)
    t0 = time.perf_counter()
    results = []
    for f, rel, source in files:
        motion = load_motion(f, fps=source_rate(f, rel, None)).without_rest_frames()
        smpl = motion.to_smpl(args.fps)
        results.append((f, source, motion, smpl))
    elapsed = time.perf_counter() - t0

    per_source: dict[str, dict] = {}
    acc: dict[str, dict[str, list]] = {}
    for _f, source, motion, smpl in results:
        if motion.duration < 0.25:
            continue
        s = per_source.setdefault(source, {"files": 0, "source_frames": 0, "frames_30fps": 0})
        s["files"] += 1
        s["source_frames"] += motion.num_frames
        s["frames_30fps"] += smpl.num_frames
        a = acc.setdefault(source, {})
        for name, deg in bone_direction_errors(smpl).items():
            a.setdefault(name, []).append(deg)
        if not motion.is_smpl:
            for name, deg in rigid_transfer_angles(motion.resample(args.fps)).items():
                a.setdefault("rigid_" + name, []).append(deg)
    for source, bones in acc.items():
        for name, parts in bones.items():
            deg = np.concatenate(parts)
            per_source[source][name] = {
                "mean": round(float(deg.mean()), 4),
                "p95": round(float(np.percentile(deg, 95)), 4),
            }
        allb = np.concatenate(
            [np.concatenate(v) for k, v in bones.items() if not k.startswith("rigid_")]
        )
        per_source[source]["all_bones"] = {
            "mean": round(float(allb.mean()), 4),
            "p95": round(float(np.percentile(allb, 95)), 4),
        }
    report = {
        "root": str(root),
        "files": len(files),
        "fps": args.fps,
        "seconds_import_retarget": round(elapsed, 2),
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "per_source": per_source,
        "cross_check_asf_vs_deepmimic_m": cross_check(root),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.markdown:
        print(markdown(report), file=sys.stderr)
    if args.figure:
        figure(root, Path(args.figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
