"""Threads and processes sharing advprior's state (docs/core.md, "Threads and processes").

Interleavings are forced with barriers and events, not sleeps. Where the fix is a lock, the
forced interleaving cannot happen any more: the thread inside waits for the other one with a
timeout (:data:`BLOCKED`), which is then always reached, whatever the machine's speed."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import warnings

import pytest
import torch
from torch import nn

from advprior.inversion import frozen

#: How long a thread waits for another that a lock (correctly) keeps out.
BLOCKED = 1.0
#: Bound on every wait that must succeed (a deadlock fails the test instead of hanging it).
WAIT = 20.0


def _run_threads(*targets) -> None:
    """Run each target in a thread; re-raise the first error of any."""
    errors: list[BaseException] = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as err:  # noqa: BLE001  (reported to the test)
                errors.append(err)

        return run

    threads = [threading.Thread(target=wrap(fn), daemon=True) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive(), "a thread did not finish (deadlock?)"
    if errors:
        raise errors[0]


def _trainable() -> nn.Module:
    module = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Linear(2, 2))
    module.train()
    module[2].eval()  # a layer the caller put in eval mode on purpose stays so
    return module


def _state(module: nn.Module) -> tuple:
    return (
        tuple(m.training for m in module.modules()),
        tuple(p.requires_grad for p in module.parameters()),
    )


FROZEN_STATE = lambda module: (  # noqa: E731
    tuple(False for _ in module.modules()),
    tuple(False for _ in module.parameters()),
)


@pytest.mark.parametrize("inner", [False, True], ids=["same-module", "submodule"])
def test_frozen_by_two_threads_restores_only_when_the_last_leaves(inner: bool) -> None:
    # T1 enters, T2 enters (the same module, or a submodule of it), T1 leaves while T2 is
    # inside. Before: T1's exit turned dropout and gradients back on under T2, and T2's exit
    # then restored the frozen state for good.
    module = _trainable()
    before = _state(module)
    second = module[0] if inner else module
    barrier = threading.Barrier(2, timeout=WAIT)
    seen: dict[str, tuple] = {}

    def first() -> None:
        with frozen(module):
            barrier.wait()  # 1: T1 inside
            barrier.wait()  # 2: T2 inside
        barrier.wait()  # 3: T1 left

    def other() -> None:
        barrier.wait()
        with frozen(second):
            barrier.wait()
            barrier.wait()
            seen["inside"] = _state(second)

    _run_threads(first, other)
    assert seen["inside"] == FROZEN_STATE(second)  # still frozen for T2 (dropout off)
    assert _state(module) == before


def test_frozen_nested_in_one_thread_keeps_its_order() -> None:
    module = _trainable()
    before = _state(module)
    with frozen(module):
        with frozen(module[0]):
            assert _state(module) == FROZEN_STATE(module)
        assert _state(module) == FROZEN_STATE(module)
    assert _state(module) == before


def test_quiet_in_two_threads_leaves_stdout_and_warnings_as_they_were() -> None:
    # smplx's prints and warnings are swallowed by saving and restoring sys.stdout and the
    # warnings filters, which are process-wide. Before: T1 entered, T2 entered (saving T1's
    # suppression), T1 restored, T2 restored T1's suppression: stdout swallowed and every
    # warning ignored for the rest of the process.
    from advprior.body.model import _quiet

    filters, stdout = list(warnings.filters), sys.stdout
    t1_in, t2_in, t1_out = threading.Event(), threading.Event(), threading.Event()

    def first_call() -> None:
        t1_in.set()
        t2_in.wait(BLOCKED)  # never set while T1 is inside, once they are serialised

    def second_call() -> None:
        t2_in.set()
        assert t1_out.wait(WAIT)

    def first() -> None:
        _quiet(first_call)
        t1_out.set()

    def other() -> None:
        assert t1_in.wait(WAIT)
        _quiet(second_call)

    _run_threads(first, other)
    assert sys.stdout is stdout
    assert warnings.filters == filters


class _GlobalRngModel:
    """A foreign prior whose ``sample(n)`` draws from torch's global RNG (no generator); it
    says when it is inside (``entered``), waits for ``wait_for`` before drawing and says when
    it has drawn (``drawn``)."""

    def __init__(self, entered=None, wait_for=None, drawn=None, timeout=BLOCKED) -> None:
        self.entered, self.wait_for, self.drawn = entered, wait_for, drawn
        self.timeout = timeout

    def sample(self, n: int) -> torch.Tensor:
        if self.entered is not None:
            self.entered.set()
        if self.wait_for is not None:
            self.wait_for.wait(self.timeout)
        out = torch.randn(n, 63)
        if self.drawn is not None:
            self.drawn.set()
        return out


def test_seeded_draws_of_two_threads_through_the_global_rng_stay_apart() -> None:
    # SampleOnly seeds torch's global RNG inside fork_rng for a model that takes no
    # generator. Forced: T1 seeded, T2 seeded, T1 draws, T2 draws. Before: T1 drew from T2's
    # seed, T2 from its stream's continuation, and the global RNG was left at T1's seed.
    from advprior.interface import as_prior

    def reference(seed: int) -> torch.Tensor:
        prior = as_prior(_GlobalRngModel())
        return prior.sample(4, generator=torch.Generator().manual_seed(seed))

    want = {1: reference(1), 2: reference(2)}
    state = torch.get_rng_state()
    t1_in, t2_in, t1_drawn = threading.Event(), threading.Event(), threading.Event()
    got: dict[int, torch.Tensor] = {}

    def first() -> None:
        prior = as_prior(_GlobalRngModel(t1_in, t2_in, t1_drawn))
        got[1] = prior.sample(4, generator=torch.Generator().manual_seed(1))

    def other() -> None:
        assert t1_in.wait(WAIT)
        prior = as_prior(_GlobalRngModel(t2_in, t1_drawn, timeout=WAIT))
        got[2] = prior.sample(4, generator=torch.Generator().manual_seed(2))

    _run_threads(first, other)
    assert torch.equal(got[1], want[1]) and torch.equal(got[2], want[2])
    assert torch.equal(torch.get_rng_state(), state)


# -- fork ---------------------------------------------------------------------------------


def _child_takes_offline_lock() -> None:
    from advprior.hub import _hub_offline_mode

    with _hub_offline_mode(False):
        pass


def _child_checks_thawed(module: nn.Module, before: tuple) -> None:
    if _state(module) != before:
        sys.exit(3)
    with frozen(module):  # its lock is free here
        if _state(module) != FROZEN_STATE(module):
            sys.exit(4)
    if _state(module) != before:
        sys.exit(5)


def _fork_while_held(enter, child, args=()) -> int:
    """Fork a child (multiprocessing "fork") while another thread is inside ``enter()``;
    the child's exit code (-9: killed after :data:`WAIT` s, a deadlock)."""
    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with enter():
            inside.set()
            leave.wait(WAIT)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    try:
        assert inside.wait(WAIT)
        proc = multiprocessing.get_context("fork").Process(target=child, args=args)
        proc.start()
        proc.join(WAIT / 2)
        if proc.is_alive():
            proc.kill()
            proc.join()
            return -9
        return proc.exitcode
    finally:
        leave.set()
        holder.join(WAIT)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_does_not_inherit_a_held_lock() -> None:
    # Before: hub's offline-mode lock (a threading.Lock made at import), held by a thread of
    # the parent when a DataLoader worker forked, stayed held in the child for ever.
    from advprior.hub import _hub_offline_mode

    assert _fork_while_held(lambda: _hub_offline_mode(True), _child_takes_offline_lock) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_forked_child_gets_back_what_another_thread_froze() -> None:
    # Only the forking thread goes on in a child: a module another thread had frozen stayed
    # frozen there for good (its block never ends in the child).
    module = _trainable()
    before = _state(module)
    code = _fork_while_held(lambda: frozen(module), _child_checks_thawed, (module, before))
    assert code == 0
    assert _state(module) == before
