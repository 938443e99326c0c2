"""The ``advprior`` console script: one sub-command per module in ``advprior.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module registers its own sub-command; heavy imports happen inside the handlers.
COMMANDS = ("sample", "data", "train", "fit", "eval", "export")


def build_parser() -> argparse.ArgumentParser:
    from advprior import __version__

    parser = argparse.ArgumentParser(prog="advprior", description=__doc__)
    parser.add_argument("--version", action="version", version=f"advprior {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"advprior.commands.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"advprior.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
