"""How ``fit_keypoints`` copes with views and body orientations a level, upright benchmark lacks.

    OMP_NUM_THREADS=1 python benchmarks/fit_views.py --data data/mocap30_v5.npz \
        [--frames 32] [--formats smpl24 openpose25] [--starts 1 8] [--conditions ...] \
        [--json benchmarks/results/fit_views_val.json] [--label before]
    python benchmarks/fit_views.py --table [--json ...]

Validation-split poses (their recorded global orientation, turned to a random heading; ``--split
test`` measures the test split once, after a choice: ``fit_views_test_96.json``), the same frames
in every condition; the camera is ``BENCH_CAMERA`` (1000 x 1000 px, focal 1000 px,
no rotation given to the fitter: as a user with only intrinsics), 5 px Gaussian noise and 20% of
the keypoints dropped as in ``advprior.eval.benchmark``. Conditions (:data:`CONDITIONS`) set
how the body lies in the world, the camera's elevation and roll, and the distance; ``close_*``
put the person 1.1-1.6 m away, partly outside the image, with the keypoints outside it either at
confidence 0 (``close_conf0``) or still given (``close_given``); ``near_far`` is one call with
people of two sizes (a 4K photo, :data:`NEAR_FAR_FOCAL_PX`), for ``--pixel-scale median``
(round 19's one scale per call) against ``auto`` (round 20: a much nearer person at its own
scale; docs/fitting.md, "Large images"). Per fit: P-MPJPE and MPJPE
(pelvis-aligned) in mm on the 24 joints, the mean reprojection error over the used keypoints in
px, and the angle between the fitted and the true torso axis (pelvis -> neck, camera frame):
its median and the share of frames above 60 degrees (``axis_flip``: an upside-down or sideways
torso where the person is not).

Each run (label x condition x format x starts) is stored under its key in ``--json``; rerunning
a key replaces it, so a "before" and an "after" run sit side by side for ``--table``. The stored
``before`` runs are this script run against the code before round 15's torso-plane start (an
installed checkout of it, without this worktree on ``PYTHONPATH``); ``fit_views_val.json`` holds
32 frames per condition, ``fit_views_val_96.json`` 96 (``--frames 96``, 1 start, and 8 for a few
conditions), the table in docs/fitting.md ("Views and body orientations").
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import Tensor

REPO = Path(__file__).resolve().parents[1]
DEFAULT_JSON = REPO / "benchmarks" / "results" / "fit_views_val.json"

#: name -> (world tilt of the body, camera elevation range in degrees, camera roll choices in
#: degrees, pelvis depth range in m, heading range in degrees (0 faces the camera) or None for
#: any, description). World tilts: "up" upright, "side" lying with the long axis across the
#: view, "feet" lying with the feet towards the camera, "hand" upside down.
CONDITIONS: dict[
    str,
    tuple[
        str,
        tuple[float, float],
        tuple[float, ...],
        tuple[float, float],
        tuple[float, float] | None,
        str,
    ],
] = {  # fmt: skip
    "control": ("up", (-10, 20), (0,), (3, 6), None, "upright, level camera (benchmark)"),
    "lying_side": ("side", (0, 30), (0,), (3, 6), None, "lying, seen from the side"),
    "lying_feet": ("feet", (20, 40), (0,), (3, 6), None, "lying, seen from the feet"),
    "handstand": ("hand", (-10, 20), (0,), (3, 6), None, "upside down"),
    "top_down": ("up", (45, 80), (0,), (3, 6), None, "camera looking down 45-80 deg"),
    "roll90": ("up", (-10, 20), (90, -90), (3, 6), None, "camera rolled 90 deg"),
    "far": ("up", (-10, 20), (0,), (14, 23), None, "far: 60-100 px tall"),
    "far_1px": ("up", (-10, 20), (0,), (14, 23), None, "far, 1.25 px noise (5 px x its size)"),
    "close_conf0": ("up", (-10, 20), (0,), (1.1, 1.6), None, "close, off-image keypoints conf 0"),
    "close_given": ("up", (-10, 20), (0,), (1.1, 1.6), None, "close, off-image keypoints given"),
    "facing_away": ("up", (-10, 20), (0,), (3, 6), (135, 225), "facing away (135-225 deg)"),
    "near_far": (
        "up",
        (-10, 20),
        (0,),
        (12, 20),
        None,
        "4K photo: a third of the people 2-3 m away, the rest 12-20 m",
    ),
}
#: Conditions whose keypoints outside the image get confidence 0, as a detector gives them.
OFF_IMAGE_CONF0 = ("close_conf0", "near_far")
#: ``near_far``: one call with people of two sizes, as in a photo with a group near the camera
#: and a crowd behind it, taken with a 4000 x 4000 px camera of focal 3000 px (a third of the
#: frames 2-3 m away, 1,500-2,500 px tall; the others at the depth range above, 200-350 px).
#: Its noise is 5 px for a person of the benchmark's size and grows with the person (as a
#: top-down detector's error does, working on a crop of the person): 5 px x 3000 / 1000 x 4.5 /
#: depth.
NEAR_FAR_FOCAL_PX = 3000.0
NEAR_FAR_IMAGE_PX = 4000.0
NEAR_FAR_NEAR_M = (2.0, 3.0)
IMAGE_PX = 1000.0
#: Keypoint noise (px, Gaussian per coordinate): the benchmark's 5 px, except that ``far_1px``
#: scales it with the person's size (~80 px tall against ~320 px at 3-6 m), to tell the pixel
#: noise apart from anything the fit does with a small person.
NOISE_PX = {"far_1px": 1.25}


def _rot(axis: int, angle: Tensor) -> Tensor:
    from advprior.rotations import axis_angle_to_rotmat

    aa = torch.zeros(angle.shape[0], 3)
    aa[:, axis] = angle
    return axis_angle_to_rotmat(aa)


def make_condition(body_pose: Tensor, global_orient: Tensor, name: str, seed: int, fmt: str):
    """Keypoints ``(B, K, 2)``, confidence ``(B, K)``, true joints ``(B, 24, 3)`` (camera frame)
    and camera of condition ``name`` for the given poses (their recorded orientation, y up)."""
    from advprior.eval.benchmark import BENCH_CAMERA
    from advprior.fitting import PinholeCamera
    from advprior.fitting.smplify import body_keypoints
    from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

    tilt, elev, rolls, depth, heading, _ = CONDITIONS[name]
    n = body_pose.shape[0]
    gen = torch.Generator().manual_seed(seed)
    u = lambda: torch.rand(n, generator=gen)  # noqa: E731
    deg = math.pi / 180.0
    if heading is None:
        yaw = u() * 2 * math.pi
    else:
        yaw = (heading[0] + (heading[1] - heading[0]) * u()) * deg
    # Recorded orientations carry their own heading: take it out so that `yaw` is the angle
    # between the body's forward axis and the direction towards the camera.
    rec = axis_angle_to_rotmat(global_orient.float())
    fwd = rec[:, :, 2]
    rec_yaw = torch.atan2(fwd[:, 0], fwd[:, 2])
    # The camera (before its Rx(pi)) looks along world -z at a body facing +z: heading 0 faces it.
    body = _rot(1, yaw) @ _rot(1, -rec_yaw) @ rec
    spin = u() * 2 * math.pi  # which side a lying person shows the camera
    if tilt == "side":
        body = _rot(2, torch.full((n,), math.pi / 2)) @ _rot(1, spin) @ body
    elif tilt == "feet":
        # head away from the camera, feet towards it
        body = _rot(0, torch.full((n,), -math.pi / 2)) @ _rot(1, spin) @ body
    elif tilt == "hand":
        body = _rot(2, torch.full((n,), math.pi)) @ body
    e = (elev[0] + (elev[1] - elev[0]) * u()) * deg
    roll = torch.tensor(rolls)[torch.randint(len(rolls), (n,), generator=gen)] * deg
    # world -> camera: camera looks along +z, y down; Rx(pi + e) with e > 0 looks down on the
    # body (its up axis points towards the camera), as the benchmark's elevation does.
    view = _rot(2, roll) @ _rot(0, math.pi + e)
    orient = rotmat_to_axis_angle(view @ body)
    z = depth[0] + (depth[1] - depth[0]) * u()
    if name == "near_far":
        near = NEAR_FAR_NEAR_M[0] + (NEAR_FAR_NEAR_M[1] - NEAR_FAR_NEAR_M[0]) * u()
        z = torch.where(u() < 1 / 3, near, z)
    spread = 0.1 if depth[0] < 2 else 0.6
    pelvis = torch.stack([(u() - 0.5) * spread * z / 3, (u() - 0.5) * spread * z / 3, z], -1)
    pose = body_pose.float()
    zero = torch.zeros(n, 3)
    _, rest = body_keypoints(orient, pose, None, zero, keypoint_format="smpl24")
    transl = pelvis - rest[:, 0]
    points, joints = body_keypoints(orient, pose, None, transl, keypoint_format=fmt)
    camera, image_px, noise = BENCH_CAMERA, IMAGE_PX, torch.full((n, 1, 1), NOISE_PX.get(name, 5.0))
    if name == "near_far":
        image_px = NEAR_FAR_IMAGE_PX
        camera = PinholeCamera(NEAR_FAR_FOCAL_PX, (image_px / 2, image_px / 2))
        noise = (5.0 * NEAR_FAR_FOCAL_PX / 1000.0 * 4.5 / z)[:, None, None]
    k = points.shape[1]
    kp = camera.project(points) + noise * torch.randn(n, k, 2, generator=gen)
    conf = (torch.rand(n, k, generator=gen) >= 0.2).float()
    if name in OFF_IMAGE_CONF0:
        inside = ((kp >= 0) & (kp <= image_px)).all(-1)
        conf = conf * inside.float()
    # A frame needs two keypoints: keep the two most central ones if fewer survive.
    few = conf.sum(-1) < 2
    if bool(few.any()):
        d = (kp - image_px / 2).norm(dim=-1)
        best = d.argsort(-1)[:, :2]
        conf[few.nonzero()[:, 0][:, None], best[few]] = 1.0
    return kp, conf, joints, camera


def torso_axis(joints: Tensor) -> Tensor:
    """Unit pelvis -> neck direction ``(B, 3)``."""
    v = joints[:, 12] - joints[:, 0]
    return v / v.norm(dim=-1, keepdim=True)


def measure(
    data,
    idx: Tensor,
    name: str,
    fmt: str,
    starts: int,
    seed: int,
    prior: object,
    view_starts: bool = False,
    pixel_scale: str = "auto",
) -> dict:
    from advprior.eval.benchmark import joint_errors_mm
    from advprior.fitting import auto_pixel_scale, fit_keypoints

    kp, conf, joints, camera = make_condition(
        data.body_pose[idx], data.global_orient[idx], name, seed, fmt
    )
    # "median": round 19's rule, one scale for the call (the median frame's)
    scale = auto_pixel_scale(kp, conf) if pixel_scale == "median" else pixel_scale
    t0 = time.perf_counter()
    res = fit_keypoints(
        kp,
        conf,
        camera,
        prior=prior,
        keypoint_format=fmt,
        starts=starts,
        view_starts=view_starts,
        pixel_scale=float(scale) if scale != "auto" else scale,
    )
    seconds = time.perf_counter() - t0
    err = joint_errors_mm(res.joints, joints)
    seen = conf > 0
    reproj = (res.projected - kp).norm(dim=-1)[seen].mean()
    cos = (torso_axis(res.joints) * torso_axis(joints)).sum(-1).clamp(-1, 1)
    angle = torch.rad2deg(torch.acos(cos))
    image_px = 2.0 * camera.center[0]  # every condition's principal point is the centre
    inside = ((kp >= 0) & (kp <= image_px)).all(-1).float().mean()
    return {
        "frames": int(idx.numel()),
        "p_mpjpe_mm": float(err["p_mpjpe"].mean()),
        "p_mpjpe_median_mm": float(err["p_mpjpe"].median()),
        "mpjpe_mm": float(err["mpjpe"].mean()),
        "mpjpe_median_mm": float(err["mpjpe"].median()),
        "reprojection_px": float(reproj),
        "axis_error_median_deg": float(angle.median()),
        "axis_flip": float((angle > 60).float().mean()),
        "keypoints_in_image": float(inside),
        "height_px_median": float(
            (kp[..., 1].amax(-1) - kp[..., 1].amin(-1))
            .maximum(kp[..., 0].amax(-1) - kp[..., 0].amin(-1))
            .median()
        ),
        "seconds": seconds,
        "per_frame_pixel_scale": res.info["pixel_scale"]
        if isinstance(res.info["pixel_scale"], list)
        else [res.info["pixel_scale"]] * int(idx.numel()),
        "per_frame_p_mpjpe": [round(float(v), 1) for v in err["p_mpjpe"]],
        "per_frame_mpjpe": [round(float(v), 1) for v in err["mpjpe"]],
    }


def run(args: argparse.Namespace) -> None:
    from advprior.data import load_dataset
    from advprior.hub import load_pretrained

    data = load_dataset(args.data, split=args.split)
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(data.body_pose.shape[0], generator=gen)[: args.frames].sort().values
    prior = load_pretrained(args.prior)
    path = Path(args.json)
    store = json.loads(path.read_text()) if path.is_file() else {}
    store.setdefault("runs", {})
    store["protocol"] = {
        "data": Path(args.data).name,
        "split": args.split,
        "frames": args.frames,
        "seed": args.seed,
        "prior": args.prior,
        "noise_px": {
            name: "5 x 3 x 4.5 / depth" if name == "near_far" else NOISE_PX.get(name, 5.0)
            for name in CONDITIONS
        },
        "drop": 0.2,
        "camera": "focal 1000 px, 1000 x 1000 px (near_far: 3000 px, 4000 x 4000 px), no "
        "rotation given to the fitter",
        "conditions": {k: v[-1] for k, v in CONDITIONS.items()},
    }
    for fmt in args.formats:
        for starts in args.starts:
            for name in args.conditions:
                r = measure(
                    data, idx, name, fmt, starts, args.seed, prior, args.view_starts,
                    args.pixel_scale,
                )  # fmt: skip
                key = f"{args.label}|{name}|{fmt}|{starts}"
                store["runs"][key] = r
                short = {k: round(v, 2) for k, v in r.items() if not k.startswith("per_frame")}
                print(key, json.dumps(short), flush=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(store, indent=1) + "\n")


def table(path: Path) -> str:
    from advprior.eval.metrics import paired_difference_interval

    store = json.loads(path.read_text())
    runs = store["runs"]
    labels = sorted({k.split("|")[0] for k in runs}, key=lambda s: (s != "before", s))
    rows = sorted({tuple(k.split("|")[1:]) for k in runs},
                  key=lambda r: (r[1], int(r[2]), list(CONDITIONS).index(r[0])))  # fmt: skip
    paired = "before" in labels and "after" in labels
    head = "| condition | keypoints | starts |" + "".join(
        f" {lab} P-MPJPE / MPJPE mm, px, flip |" for lab in labels
    )
    head += " after - before, P-MPJPE mm (95% paired bootstrap) |" if paired else ""
    lines = [head, "|---|---|---|" + "---|" * (len(labels) + paired)]
    for name, fmt, starts in rows:
        cells = []
        for lab in labels:
            r = runs.get(f"{lab}|{name}|{fmt}|{starts}")
            cells.append(
                "-"
                if r is None
                else f"{r['p_mpjpe_mm']:.1f} / {r['mpjpe_mm']:.1f}, {r['reprojection_px']:.1f},"
                f" {r['axis_flip'] * 100:.0f}%"
            )
        if paired:
            a = runs.get(f"after|{name}|{fmt}|{starts}")
            b = runs.get(f"before|{name}|{fmt}|{starts}")
            if a is None or b is None:
                cells.append("-")
            else:
                after = torch.tensor(a["per_frame_p_mpjpe"], dtype=torch.float64)
                before = torch.tensor(b["per_frame_p_mpjpe"], dtype=torch.float64)
                mean = float((after - before).mean())
                low, high = paired_difference_interval(after, before)
                cells.append(f"{mean:+.1f} ({low:+.1f} to {high:+.1f})")
        lines.append(f"| {name} | {fmt} | {starts} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(REPO / "data" / "mocap30_v5.npz"))
    p.add_argument(
        "--split",
        default="val",
        choices=("val", "test"),
        help="val (choices are made here); test once, after a choice",
    )
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prior", default="gan-s")
    p.add_argument("--formats", nargs="+", default=["smpl24", "openpose25"])
    p.add_argument("--starts", nargs="+", type=int, default=[1, 8])
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), choices=list(CONDITIONS))
    p.add_argument("--label", default="after")
    p.add_argument(
        "--view-starts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit_keypoints(view_starts=...): the torso-plane starts (the default since round "
        "16; the 'after' rows), --no-view-starts for the 'before' rows",
    )
    p.add_argument(
        "--pixel-scale",
        default="auto",
        choices=("auto", "median", "1"),
        help="fit_keypoints(pixel_scale=...): auto (the default: the median frame's scale, a "
        "much nearer person at its own), median (round 19: one scale per call) or 1",
    )
    p.add_argument("--json", default=str(DEFAULT_JSON))
    p.add_argument("--table", action="store_true", help="print the markdown table and exit")
    args = p.parse_args(argv)
    if args.table:
        print(table(Path(args.json)))
        return 0
    torch.set_num_threads(1)
    run(args)
    print(table(Path(args.json)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
