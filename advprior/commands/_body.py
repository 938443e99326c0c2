"""The ``--body-model`` / ``--model-type`` / ``--gender`` options shared by the commands."""

from __future__ import annotations

import argparse
from typing import Any


def add_body_model_arguments(p: argparse.ArgumentParser, help: str) -> None:
    """``--body-model PATH`` (``help`` says what it is for), and for a folder the
    ``--model-type`` and ``--gender`` that choose its file."""
    p.add_argument("--body-model", default=None, help=help)
    p.add_argument(
        "--model-type",
        default=None,
        choices=("smpl", "smplh", "smplx"),
        help="model type for a --body-model folder (default smpl)",
    )
    p.add_argument(
        "--gender",
        default=None,
        choices=("neutral", "male", "female"),
        help="gender for a --body-model folder (default neutral)",
    )


def body_model_from_args(args: argparse.Namespace) -> Any:
    """The ``BodyModel`` the options name, or None for the open stand-in."""
    from advprior.errors import UsageError

    if args.body_model is None:
        if args.model_type or args.gender:
            raise UsageError("--model-type and --gender choose the file in a --body-model folder")
        return None
    from advprior.body import load_body_model

    return load_body_model(
        args.body_model, model_type=args.model_type, gender=args.gender or "neutral"
    )
