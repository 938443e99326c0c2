"""Range checks of the commands' numeric options: a bad value is a usage error (exit 2) that names
the flag, before any file is read or model loaded.

The library checks the same values, but in its own words and later: ``advprior train --model
gmm --steps 0`` said "max_iter must be an int >= 1" (exit 1), ``advprior fit --smoothness -1``
"smoothness.latent must be ... got -100000.0", ``advprior data build --fps nan`` "no motion could
be imported", and ``advprior train --r1 nan`` trained to the end and then failed as unexpected.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Mapping


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_counts(args: argparse.Namespace, lows: Mapping[str, int]) -> None:
    """Each integer option ``name`` in ``lows`` that was given (not None) is at least its low."""
    from advprior.errors import UsageError

    for name, low in lows.items():
        value = getattr(args, name)
        if value is not None and value < low:
            raise UsageError(f"{_flag(name)} must be at least {low}, got {value}")


def check_number(
    value: float | None,
    flag: str,
    *,
    low: float = 0.0,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """``value`` (None: not given) is finite and within ``[low, high]`` (an end excluded where
    ``*_open``); otherwise a :class:`~advprior.errors.UsageError` naming ``flag``."""
    from advprior.errors import UsageError

    if value is None:
        return
    above = value > low if low_open else value >= low
    below = high is None or (value < high if high_open else value <= high)
    if math.isfinite(value) and above and below:
        return
    left = "(" if low_open else "["
    if high is None:
        wanted = f"> {low:g}" if low_open else f">= {low:g}"
        wanted = f"a finite number {wanted}"
    else:
        wanted = f"a number in {left}{low:g}, {high:g}{')' if high_open else ']'}"
    raise UsageError(f"{flag} must be {wanted}, got {value:g}")


def check_non_negative(args: argparse.Namespace, names: Iterable[str]) -> None:
    """Each float option in ``names`` that was given is finite and >= 0."""
    for name in names:
        check_number(getattr(args, name), _flag(name))
