"""The paper's evaluation protocol: metrics (``advprior.eval.metrics``) and ``run_eval``.

Import-light: the runner (and matplotlib) load only when ``run_eval`` is first used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_eval"]


def __getattr__(name: str) -> Any:
    if name == "run_eval":
        from advprior.eval.runner import run_eval

        return run_eval
    raise AttributeError(f"module 'advprior.eval' has no attribute {name!r}")
