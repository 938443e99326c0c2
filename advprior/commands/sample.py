"""``advprior sample``: draw random poses from a prior and write them to an ``.npz`` (and a PNG).

The ``.npz`` holds ``body_pose`` ``(n, 63)`` float32 (``(n, 69)`` for ``--body smpl``; axis-angle
radians, SMPL joints 1..21 or 1..23), ``z`` ``(n, D)`` float32 (the latents; absent for a model
without a latent space, e.g. the GMM), and scalar strings/ints ``model``, ``model_type``,
``latent``, ``body``, ``seed``, ``revision`` (empty when not given), ``weights_sha256`` (the
weights file sampled) and ``software`` (JSON: advprior's, torch's, numpy's, Python's versions).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

from advprior.commands._revision import add_hub_arguments, revision_said_here, used_revision

# A mesh grid of more bodies than this is unreadable and slow to draw.
MAX_PNG_BODIES = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "sample",
        help="draw random poses from a pose prior",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default="gan-s",
        help="manifest alias (gan-s, gan-u, gan-n, ...), checkpoint directory or Hub repo id "
        "(default: gan-s)",
    )
    p.add_argument("-n", "--num", type=int, default=16, help="number of poses (default: 16)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed (default: 0)")
    p.add_argument(
        "--body",
        choices=("smplx", "smplh", "smpl"),
        default="smplx",
        help="body_pose layout: 63 values for smplx/smplh, 69 for smpl (default: smplx)",
    )
    p.add_argument("--latent-only", action="store_true", help="write the latents z only")
    p.add_argument("--out", type=Path, default=Path("samples.npz"), help="output .npz")
    p.add_argument(
        "--png", type=Path, default=None, help=f"also draw up to {MAX_PNG_BODIES} bodies to a PNG"
    )
    add_hub_arguments(p)
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.set_defaults(func=run)


def _draw(model: Any, n: int, seed: int, body: str, latent_only: bool) -> tuple[Any, Any]:
    """``(body_pose or None, z or None)`` from any prior (only the prior interface is used);
    never touches the global RNG."""
    import torch

    from advprior.interface import body_joints
    from advprior.skeleton import pad_hand_joints

    generator = torch.Generator().manual_seed(seed)
    joints = body_joints(body)
    with torch.no_grad():
        if model.latent_space is not None:
            z = model.sample_latent(n, generator=generator)
            return (None if latent_only else model.decode(z, body=body)), z
        if latent_only:
            raise ValueError(f"{type(model).__name__} has no latent space; drop --latent-only")
        return pad_hand_joints(model.sample(n, generator=generator), joints), None


def _save_npz(path: Path, arrays: dict[str, Any]) -> None:
    import numpy as np

    from advprior.fileio import atomic_path

    # atomic_path creates the folder, and names the file when it cannot: a mkdir of its own
    # here failed first, with "[Errno 17] File exists: 'a'" for --out a/x.npz where a is a file
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # a file object: numpy must not append ".npz" to the temp name


def _missing_viz() -> str | None:
    """Why a PNG cannot be drawn in this installation, or None."""
    if importlib.util.find_spec("matplotlib") is None:
        return "matplotlib is not installed; install it with: pip install 'advprior[viz]'"
    return None


def _render(body_pose: Any, body: str, path: Path) -> str | None:
    """Draw the first bodies to ``path``; returns an error message instead of raising."""
    missing = _missing_viz()
    if missing is not None:
        return missing
    try:
        from advprior.body import load_body_model
        from advprior.body.plot import plot_bodies
    except ImportError as err:
        return f"plotting is unavailable in this installation ({err})"
    import torch

    pose = body_pose[:MAX_PNG_BODIES].to(torch.float32).cpu()
    model = load_body_model(model_type=body)
    with torch.no_grad():
        out = model(global_orient=torch.zeros(len(pose), 3), body_pose=pose)
    titles = [f"#{i}" for i in range(len(pose))]
    plot_bodies(out.vertices.numpy(), model.faces, out.joints.numpy(), path, titles=titles)
    return None


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from advprior.errors import UsageError
    from advprior.fileio import sha256_file
    from advprior.hub import load_files, resolve_files
    from advprior.interface import as_prior
    from advprior.version import software_versions

    if args.num < 0:
        raise UsageError(f"-n must be >= 0, got {args.num}")
    if args.png is not None and args.latent_only:
        raise UsageError("--png needs poses; drop --latent-only")
    if not 0 <= args.seed < 2**63:
        # the file records it as an int64
        raise UsageError(f"--seed must be in [0, 2**63), got {args.seed}")
    if args.png is not None and args.num == 0:
        raise UsageError("--png needs poses; -n 0 draws none")
    missing = _missing_viz() if args.png is not None else None
    if missing is not None:
        # said before loading and sampling, and before the .npz is written: all or nothing
        raise ValueError(f"--png: {missing} (nothing written)")
    from advprior.commands._device import parse_device
    from advprior.fileio import check_writable

    device = parse_device(args.device)  # a usage error before the model is looked for
    # both files before anything is drawn: a --png that could not be written failed (exit 1)
    # after the .npz had been written
    for path in (args.out, args.png):
        if path is not None:
            check_writable(path)
    with revision_said_here():
        files = resolve_files(args.model, revision=args.revision, cache_dir=args.cache_dir)
    revision = used_revision(files, args.revision, args.model, "sample")
    model = as_prior(load_files(files, device=device))
    pose, z = _draw(model, args.num, args.seed, args.body, args.latent_only)

    latent = None if model.latent_space is None else model.latent_space.kind
    arrays: dict[str, Any] = {
        "model": np.array(str(args.model)),
        "model_type": np.array(model.model_type),
        "latent": np.array(str(latent)),
        "body": np.array(args.body),
        "seed": np.array(args.seed, dtype=np.int64),
        # the name alone does not say which weights (another release, a retrained folder, a
        # Hub revision), nor which code drew from them: a rerun matches with these
        # the one the weights came from: an alias's pinned one wins over --revision (docs/
        # core.md), which recorded as given named weights that were never loaded
        "revision": np.array(revision),
        "weights_sha256": np.array(sha256_file(files.weights)),
        "software": np.array(json.dumps(software_versions())),
    }
    if pose is not None:
        arrays["body_pose"] = pose.detach().cpu().to(torch.float32).numpy()
    if z is not None:
        arrays["z"] = z.detach().cpu().to(torch.float32).numpy()
    _save_npz(args.out, arrays)

    kind = f"{model.model_type}, latent {latent}" + (f", D={z.shape[-1]}" if z is not None else "")
    written = [f"body_pose {tuple(pose.shape)}"] if pose is not None else []
    written += [f"z {tuple(z.shape)}"] if z is not None else []
    drawn = ""
    if args.png is not None:
        error = _render(pose, args.body, args.png)
        if error is not None:
            raise ValueError(f"PNG not written: {error}")
        drawn = f"; drew {min(args.num, MAX_PNG_BODIES)} bodies -> {args.png}"
    # one line: what was drawn from what, where it went, and the arrays' shapes (float32)
    from advprior.commands._answer import answer

    answer(
        f"{args.num} samples from {args.model} ({kind}), seed {args.seed} -> {args.out} "
        f"[{', '.join(written)} float32, {args.body}]{drawn}",
        args.out,
        args.png,
    )
    return 0
