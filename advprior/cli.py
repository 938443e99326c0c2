"""The ``advprior`` console script: one sub-command per module in ``advprior.commands``.

Errors are one line on stderr, ``advprior <command>: error: <message>``, with exit status 2 for
usage errors (argparse's, and :class:`~advprior.errors.UsageError`), 1 for failures
(:class:`~advprior.errors.AdvPriorError`, ``ValueError``, ``OSError``, a missing optional extra),
130 for an interrupt (Ctrl-C) and 143 for SIGTERM (temporary files removed; ``advprior train``
saves its checkpoint and exits 130). Where the reader of stdout closes it early (``| head -1``)
the command stops quietly with 141, as a Unix tool stopped by SIGPIPE.
``--debug`` (anywhere on the command line) or ``ADVPRIOR_DEBUG=1`` adds the traceback.
A leading ``~`` in any path argument is the home folder, also where the shell leaves it
(``--out=~/x.npz``, cmd.exe, PowerShell).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Iterator

# Each module registers its own sub-command; heavy imports happen inside the handlers.
COMMANDS = ("sample", "data", "train", "fit", "eval", "export")
EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPT = 1, 2, 130
# 128 + SIGPIPE: what a shell reports for `seq 1000000 | head -1`'s seq
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a scheduler or workflow manager stopping the job), raised
    where the command is so that it unwinds as for Ctrl-C: temporary files removed, one line."""


# reST in the docstrings that become help texts: ``code`` and :role:`~pkg.mod.Name` / `text <t>`
_LITERAL = re.compile(r"``([^`]+)``")
_ROLE = re.compile(r":[a-z]+:`~?([^`<]*?)\s*(?:<[^`>]*>)?`")
_BLOCK = re.compile(r"(?m)(\S)::$")


def plain_text(text: str) -> str:
    """``text`` with Sphinx markup turned into what a terminal reader expects: ``code`` and
    :class:`~advprior.PosePrior` read as ``code`` and ``PosePrior``."""

    def role(match: re.Match[str]) -> str:
        target = match.group(1)
        return target.rsplit(".", 1)[-1] if "~" in match.group(0) else target

    text = _LITERAL.sub(r"\1", _ROLE.sub(role, text))
    return _BLOCK.sub(r"\1:", text)  # "layout::" (a literal block follows) reads "layout:"


class _PlainHelp:
    """Mixed into a parser's formatter class: descriptions and argument help as plain text."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return super()._fill_text(plain_text(text), width, indent)  # type: ignore[misc]

    def _expand_help(self, action: argparse.Action) -> str:
        return plain_text(super()._expand_help(action))  # type: ignore[misc]


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` and every sub-command parser below it a plain-text formatter."""
    base = parser.formatter_class
    if isinstance(base, type) and not issubclass(base, _PlainHelp):
        parser.formatter_class = type(f"Plain{base.__name__}", (_PlainHelp, base), {})
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _plain_help(child)


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
    _plain_help(parser)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    """``"fit"``, or ``"data build"`` for a command with sub-commands."""
    words = [args.command]
    words += [str(v) for k, v in sorted(vars(args).items()) if k.endswith("_command") and v]
    return " ".join(words)


def _one_line(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return re.sub(r"\s*\n\s*", " ", text.strip())


def _tolerant_output() -> None:
    """Let stdout and stderr write any character, escaped where their encoding has none.

    Redirected to a file or a pipe on Windows they encode with the ANSI code page (cp1252), so
    a message naming ``données/张.npz`` raised ``UnicodeEncodeError`` after the work was done,
    and the command failed (exit 1) although its file was written."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


_HOME_PREFIX = re.compile(r"~[^/\\]*(?:[/\\]|$)")


def _expand_home(args: argparse.Namespace) -> None:
    """Expand a leading ``~`` / ``~user`` in every path-like argument, in place.

    Shells expand ``~`` only at the start of a word: ``--out=~/x.npz``, a quoted ``"~/x"``,
    and every argument given in cmd.exe or PowerShell reach the command as typed, and used to
    create a folder literally named ``~`` in the working directory. Values stay ``str`` or
    ``Path`` as parsed; a ``~name`` that is no user's home is left as it is."""
    from pathlib import PurePath

    def expand(value: object) -> object:
        if isinstance(value, (str, PurePath)) and _HOME_PREFIX.match(str(value)):
            expanded = os.path.expanduser(str(value))
            return type(value)(expanded) if isinstance(value, PurePath) else expanded
        if isinstance(value, list):
            return [expand(v) for v in value]
        return value

    for key, value in vars(args).items():
        if key != "func":
            setattr(args, key, expand(value))


def _stdout_gone() -> bool:
    """Whether the reader of stdout has closed it (``advprior data info F | head -1``).

    Asked of the stream itself: a ``BrokenPipeError`` can also come from another pipe (a
    worker process, a socket), which is a failure to report."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    try:
        import select

        poller = select.poll()
    except (ImportError, AttributeError):  # Windows: no poll(); a pipe is what breaks there
        return True
    poller.register(fd, select.POLLOUT)
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))


def _discard_stdout() -> None:
    """Point stdout at the null device, so that the interpreter's flush at exit cannot fail
    again with "Exception ignored ... BrokenPipeError"."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While a command runs, SIGTERM raises :class:`Terminated`. By default it ended Python at
    once: no message, and a half-written output's temporary file left beside it. The previous
    handler comes back afterwards (``main`` is also called from Python)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        # None: a handler installed outside Python, which cannot be put back; the default is
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def main(argv: list[str] | None = None) -> int:
    with _sigterm_unwinds():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _tolerant_output()
    # --debug is accepted after the sub-command too, where argparse would not know it
    debug = "--debug" in argv or os.environ.get("ADVPRIOR_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    try:
        # building the parser imports torch (seconds): a Ctrl-C then is as common as later on
        args = build_parser().parse_args(argv)  # usage errors: argparse prints them, exits 2
        _expand_home(args)
    except KeyboardInterrupt as err:
        if debug:
            traceback.print_exc()
        return _interrupted("advprior", err)
    return _run(args, debug)


def _interrupted(prefix: str, err: KeyboardInterrupt) -> int:
    if isinstance(err, Terminated):
        print(f"{prefix}: error: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_TERMINATED
    print(f"{prefix}: error: interrupted", file=sys.stderr)
    return EXIT_INTERRUPT


def _run(args: argparse.Namespace, debug: bool) -> int:
    from advprior.errors import AdvPriorError, UsageError

    name = _command_name(args)
    try:
        if not debug:
            # huggingface_hub logs a warning per retry of an unreachable Hub (five, over ~25 s);
            # the command's answer stays one line (its error says the Hub could not be reached)
            from huggingface_hub.utils import logging as hub_logging

            hub_logging.set_verbosity_error()  # after its import, which sets its own level
        code = int(args.func(args) or 0)
        if sys.stdout is not None:  # None: started with stdout closed (`>&-`)
            sys.stdout.flush()  # here, where a closed pipe is caught, not at the interpreter's exit
        return code
    except KeyboardInterrupt as err:
        if debug:
            traceback.print_exc()
        return _interrupted(f"advprior {name}", err)
    except (AdvPriorError, ValueError, OSError, ImportError) as err:
        if isinstance(err, BrokenPipeError) and _stdout_gone():
            # the reader took what it wanted (`| head -1`): quiet, as any Unix tool; an error
            # line about it ("[Errno 32] Broken pipe", exit 1) read as a failure of the command
            _discard_stdout()
            return EXIT_BROKEN_PIPE
        # ImportError: an optional extra that is not installed (MissingExtraError names it)
        if debug:
            traceback.print_exc()
        print(f"advprior {name}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(err, UsageError) else EXIT_FAILURE
    except Exception as err:  # noqa: BLE001 - the last resort: still one line, and a way on
        # an error no check above anticipated (a bug, or input of a kind nobody foresaw)
        if debug:
            traceback.print_exc()
        print(
            f"advprior {name}: error: {type(err).__name__}: {_one_line(err)} (unexpected; "
            "rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    finally:
        # main is also called from Python (a notebook, a test): its later work must not run on
        # the thread count a command's --threads set (advprior.commands._device.set_threads)
        threads = getattr(args, "threads_before", None)
        if threads is not None:
            sys.modules["torch"].set_num_threads(threads)


if __name__ == "__main__":
    sys.exit(main())
