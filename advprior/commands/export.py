"""``advprior export``: write a prior's decoder (z -> pose) as an ONNX or TorchScript file.

The file takes ``z`` ``(batch, D)`` float32 and returns the pose in ``--output-kind``; its
metadata (alias, weights sha256, latent kind, joint order, output kind, advprior version) is
stored inside it. See docs/deploy.md for running it from C++ or JavaScript.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from advprior.commands._revision import add_hub_arguments, revision_said_here, used_revision


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a prior's decoder to ONNX or TorchScript",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--model",
        default="gan-s",
        help="manifest alias (gan-s, gan-u, gan-n, vae), checkpoint directory or Hub repo id "
        "(default: gan-s)",
    )
    p.add_argument(
        "--format",
        choices=("onnx", "torchscript"),
        default=None,
        help="file format (default: from the --output suffix, .pt/.pth/.ts/.torchscript -> "
        "torchscript, anything else -> onnx)",
    )
    p.add_argument("--output", type=Path, required=True, help="the file to write")
    p.add_argument(
        "--output-kind",
        choices=("axis_angle", "rotmat", "rot6d", "quat"),
        default="axis_angle",
        help="pose representation the file returns (default: axis_angle)",
    )
    p.add_argument(
        "--project",
        action="store_true",
        help="project z onto the latent space (sphere / cube) inside the graph",
    )
    p.add_argument("--body", choices=("smplx", "smplh", "smpl"), default="smplx")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    add_hub_arguments(p)
    p.add_argument("--device", default="cpu", help="torch device to trace on (default: cpu)")
    p.set_defaults(func=run)


# Suffixes PyTorch users give TorchScript files; a user who names a file ``decoder.pt`` and
# gets ONNX bytes in it finds out only when torch.jit.load fails.
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")


def format_for(path: Path) -> str:
    """The export format a file name asks for: TorchScript for :data:`TORCHSCRIPT_SUFFIXES`
    (any case), else ONNX."""
    return "torchscript" if path.suffix.lower() in TORCHSCRIPT_SUFFIXES else "onnx"


def run(args: argparse.Namespace) -> int:
    from advprior.commands._device import parse_device
    from advprior.errors import AdvPriorError, UsageError
    from advprior.export import check_opset, export_prior

    device = parse_device(args.device)
    if device is not None and device.type == "meta":
        # a bad option value like any other device (exit 2), not a failure of the export
        raise UsageError("--device meta holds no values to trace with; use cpu or a GPU")
    if args.format is None:
        args.format = format_for(args.output)
    if args.format == "onnx":
        try:
            check_opset(args.opset)
        except ValueError as err:  # a bad argument: exit 2 before loading anything
            raise UsageError(f"--opset: {err}") from None
    if args.revision is not None:
        # export_prior resolves the name itself; resolving it here first (a cache hit for it
        # then) is what tells whether the --revision given is the one exported
        from advprior.hub import resolve_files

        with revision_said_here():
            files = resolve_files(args.model, revision=args.revision, cache_dir=args.cache_dir)
        used_revision(files, args.revision, args.model, "export")
    try:
        with revision_said_here():
            meta = export_prior(
                args.model,
                args.output,
                format=args.format,
                output_kind=args.output_kind,
                project=args.project,
                body=args.body,
                device=device,
                opset=args.opset,
                revision=args.revision,
                cache_dir=args.cache_dir,
            )
    except (TypeError, ImportError) as err:
        # a prior without a latent, or the optional ``export`` extra missing: one line, exit 1
        raise AdvPriorError(str(err)) from err
    shape = ", ".join(str(d) for d in meta["output_shape"])
    from advprior.commands._answer import answer

    answer(
        f"{args.model} ({meta['model_type']}, latent {meta['latent']}) -> {args.output} "
        f"[{args.format}]: z (batch, {meta['latent_dim']}) float32"
        f"{' projected in the graph' if meta['projected'] else ''} -> pose ({shape}) "
        f"{args.output_kind}; weights sha256 {meta['weights_sha256']}",
        args.output,
    )
    return 0
