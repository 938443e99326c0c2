"""Locks for the process-wide state advprior touches, safe across threads and ``os.fork``.

A ``threading.Lock`` made at import and held by one thread when another thread forks (a
DataLoader worker started while a server thread loads a body model) stays held for ever in
the child, where no thread will release it: the child's first use deadlocks. A
:class:`ForkSafeLock` is replaced by a fresh, unheld lock in every child
(``os.register_at_fork``); nothing the parent's other threads were doing goes on in the child.

:data:`GLOBAL_STATE` serialises advprior's own changes to interpreter-wide state that Python
and torch keep per process, not per thread: the warnings filters and ``sys.stdout``
(``warnings.catch_warnings``, ``contextlib.redirect_stdout``, which save and restore the whole
list: two threads interleaving left one's suppression on for ever) and torch's global RNG
(``torch.random.fork_rng``: a seeded draw in one thread drew another thread's seed).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

_LOCKS: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()
_CHILD_HOOKS: list[Callable[[], None]] = []


class ForkSafeLock:
    """A ``threading.RLock`` (re-entrant) that a forked child gets fresh: unheld, or held as
    many times by the forking thread as that thread held it at the fork (so its own blocks
    still end normally there).

    Use as a context manager or with :meth:`acquire` / :meth:`release`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0
        _LOCKS.add(self)

    def _reset(self) -> None:
        mine = self._owner == threading.get_ident()
        self._lock = threading.RLock()
        if mine:
            for _ in range(self._depth):
                self._lock.acquire()
        else:
            self._owner, self._depth = None, 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not self._lock.acquire(blocking, timeout):
            return False
        self._owner = threading.get_ident()
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        self._lock.release()

    def __enter__(self) -> ForkSafeLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def after_fork_in_child(hook: Callable[[], None]) -> Callable[[], None]:
    """Register ``hook`` to run in a forked child, after advprior's locks were made fresh
    (so it may take them); returns ``hook`` (usable as a decorator)."""
    _CHILD_HOOKS.append(hook)
    return hook


def _reinit_after_fork() -> None:
    for lock in list(_LOCKS):
        lock._reset()
    for hook in _CHILD_HOOKS:
        hook()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_reinit_after_fork)


#: advprior's changes to process-wide interpreter and torch state (warnings filters,
#: ``sys.stdout``, torch's global RNG) are made under this lock.
GLOBAL_STATE = ForkSafeLock()
