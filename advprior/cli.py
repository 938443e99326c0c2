"""The ``advprior`` console script: one sub-command per module in ``advprior.commands``.

Errors are one line on stderr, ``advprior <command>: error: <message>``, with exit status 2 for
usage errors (argparse's, and :class:`~advprior.errors.UsageError`), 1 for failures
(:class:`~advprior.errors.AdvPriorError`, ``ValueError``, ``OSError``) and 130 for an interrupt.
``--debug`` (anywhere on the command line) or ``ADVPRIOR_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import traceback

# Each module registers its own sub-command; heavy imports happen inside the handlers.
COMMANDS = ("sample", "data", "train", "fit", "eval", "export")
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPT = 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    from advprior import __version__

    parser = argparse.ArgumentParser(
        prog="advprior", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"advprior {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of an error (also: ADVPRIOR_DEBUG=1)",
    )
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


def _command_name(args: argparse.Namespace) -> str:
    """``"fit"``, or ``"data build"`` for a command with sub-commands."""
    words = [args.command]
    words += [str(v) for k, v in sorted(vars(args).items()) if k.endswith("_command") and v]
    return " ".join(words)


def _one_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return re.sub(r"\s*\n\s*", " ", text.strip())


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted after the sub-command too, where argparse would not know it
    debug = "--debug" in argv or os.environ.get("ADVPRIOR_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)  # usage errors: argparse prints them, exits 2
    from advprior.errors import AdvPriorError, UsageError

    name = _command_name(args)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"advprior {name}: error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except (AdvPriorError, ValueError, OSError) as err:
        if debug:
            traceback.print_exc()
        print(f"advprior {name}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, UsageError) else EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
