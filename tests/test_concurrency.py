"""Threads and processes sharing advprior's state (docs/core.md, "Threads and processes").

Interleavings are forced with barriers and events, not sleeps. Where the fix is a lock, the
forced interleaving cannot happen any more: the thread inside waits for the other one with a
timeout (:data:`BLOCKED`), which is then always reached, whatever the machine's speed."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advprior import fileio
from advprior.errors import RunFolderError
from advprior.inversion import frozen
from advprior.train.runfolder import LOCK_NAME, claim_run_folder

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


def test_trainers_in_two_threads_restore_the_default_dtype_once_both_end() -> None:
    # Trainers run with float32 as torch's (process-wide) default dtype. Before: each saved
    # and restored it, so T1's end put the caller's float64 back under T2 (building its
    # models in float64), and T2's end left float32 for good.
    from advprior.train.loop import trainer_entry

    barrier = threading.Barrier(2, timeout=WAIT)
    seen: dict[str, torch.dtype] = {}

    @trainer_entry
    def first() -> None:
        barrier.wait()  # 1: T1 inside
        barrier.wait()  # 2: T2 inside

    @trainer_entry
    def second() -> None:
        barrier.wait()  # 2
        barrier.wait()  # 3: T1 ended
        seen["inside"] = torch.get_default_dtype()

    def other() -> None:
        barrier.wait()
        second()

    def one() -> None:
        first()
        barrier.wait()  # 3: T1 ended

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        _run_threads(one, other)
        assert seen["inside"] == torch.float32
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(before)


def test_evaluation_figures_leave_matplotlibs_process_state_alone(tmp_path: Path) -> None:
    # Before: matplotlib.use("Agg") switched the caller's backend (a notebook's) and every
    # figure went through pyplot's process-wide registry (not thread-safe).
    matplotlib = pytest.importorskip("matplotlib")
    from advprior.eval import plots

    before = matplotlib.get_backend()
    matplotlib.use("pdf")
    try:
        curves = {"a": np.linspace(0.5, 1.5, 8)[None].repeat(3, 0)}
        path = plots.deformation_curves(curves, tmp_path / "d.png")
        assert path.read_bytes().startswith(b"\x89PNG")
        assert matplotlib.get_backend() == "pdf"
        assert (
            "matplotlib.pyplot" not in sys.modules
            or not sys.modules["matplotlib.pyplot"].get_fignums()
        )
    finally:
        matplotlib.use(before)


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


def _child_leaves_global_state() -> None:
    from advprior._sync import GLOBAL_STATE

    GLOBAL_STATE.release()  # the block the forking thread was in ends here too
    if not GLOBAL_STATE.acquire(timeout=WAIT / 4):
        sys.exit(6)
    GLOBAL_STATE.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_lock_the_forking_thread_holds_is_still_its_own_in_the_child() -> None:
    # Fork inside one of advprior's locked blocks (a foreign prior's sample() starting
    # workers): the child's fresh lock is held by the forking thread as often as before, so
    # the block's end releases it instead of raising "cannot release un-acquired lock".
    from advprior._sync import GLOBAL_STATE

    with GLOBAL_STATE:
        proc = multiprocessing.get_context("fork").Process(target=_child_leaves_global_state)
        proc.start()
        proc.join(WAIT / 2)
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert proc.exitcode == 0


# -- files shared by hosts ------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _as_host(monkeypatch: pytest.MonkeyPatch, host: str, pid: int) -> None:
    """Look like process ``pid`` on host ``host``."""
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    monkeypatch.setattr(os, "getpid", lambda: pid)
    monkeypatch.setattr(fileio, "_SCOPE", [], raising=False)  # the cached host identity


def test_another_hosts_live_temp_file_is_not_taken_for_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two hosts writing into one NFS folder. Before: host B took host A's pid for one of its
    # own, found no such process and removed A's temporary file in the middle of A's write.
    target = tmp_path / "poses.npz"
    real, dead = os.getpid(), _dead_pid()
    with monkeypatch.context() as m:
        _as_host(m, "host-a", dead)
        theirs = fileio._temp_name(target)
        theirs.write_bytes(b"half written")
    with monkeypatch.context() as m:
        _as_host(m, "host-b", real)
        ours = fileio._temp_name(target)
        assert ours.name != theirs.name
        fileio.write_text_atomic(target, "x")
        assert theirs.exists()  # live on host A, as far as host B can tell
        # an old one of another host is a killed write's leftover
        old = time.time() - fileio.STALE_TEMP_AGE - 60
        os.utime(theirs, (old, old))
        assert fileio.remove_stale_temps(target) == [theirs]


def test_this_hosts_temp_files_are_judged_by_their_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "poses.npz"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        temps = {}
        for name, pid in (("dead", _dead_pid()), ("live", sleeper.pid), ("mine", os.getpid())):
            with monkeypatch.context() as m:
                m.setattr(os, "getpid", lambda pid=pid: pid)
                temps[name] = fileio._temp_name(target)
            temps[name].write_bytes(b"")
        old = time.time() - 2 * fileio.STALE_TEMP_AGE
        for path in temps.values():
            os.utime(path, (old, old))  # age does not matter on this host
        assert fileio.remove_stale_temps(target) == [temps["dead"]]
        assert temps["live"].exists() and temps["mine"].exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_temp_names_of_hosts_with_the_same_pid_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The run lock wrote its content to ".run.lock.<pid>.tmp" before linking it into place:
    # two hosts (NFS) with the same pid wrote one file, and each linked the other's identity.
    linked: list[str] = []
    real_link = os.link

    def link(src, dst, **kwargs):
        linked.append(Path(src).name)
        raise FileExistsError(dst)

    out = tmp_path / "run"
    out.mkdir()
    for host in ("node-1", "node-2"):
        with monkeypatch.context() as m:
            _as_host(m, host, 4242)
            m.setattr(os, "link", link)
            from advprior.train import runfolder

            runfolder._create_lock(out / LOCK_NAME, *(("t",) if _takes_token() else ()))
    assert os.link is real_link
    assert len(linked) == 2 and linked[0] != linked[1]
    names = [fileio._temp_name(out / "a.npz").name for _ in range(2)]
    assert names[0] != names[1]


def _takes_token() -> bool:
    import inspect

    from advprior.train import runfolder

    return "token" in inspect.signature(runfolder._create_lock).parameters


def test_lock_of_another_machine_with_our_host_name_and_pid_is_refused(tmp_path: Path) -> None:
    # Containers on two machines may share a host name and a pid. Before: the lock's pid was
    # ours and its host ours, so it was taken for a stale lock of this process and stolen.
    out = tmp_path / "run"
    out.mkdir()
    lock = out / LOCK_NAME
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "scope": "0123456789ab",  # another boot / pid namespace
        "token": "theirs",
    }
    lock.write_text(json.dumps(owner))
    with pytest.raises(RunFolderError, match="another host"):
        claim_run_folder(out, resume=False, overwrite=False)
    assert json.loads(lock.read_text()) == owner


def test_two_threads_claiming_one_run_folder(tmp_path: Path) -> None:
    # Before: the second claim saw a lock of its own pid, took it for stale and stole it.
    out = tmp_path / "run"
    barrier = threading.Barrier(2, timeout=WAIT)
    refused: list[str] = []

    def first() -> None:
        with claim_run_folder(out, resume=False, overwrite=False):
            barrier.wait()  # 1: claimed
            barrier.wait()  # 2: the other tried
        assert not (out / LOCK_NAME).exists()

    def other() -> None:
        barrier.wait()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a "took over a stale lock" warning fails too
                claim_run_folder(out, resume=False, overwrite=False).release()
        except (RunFolderError, UserWarning) as err:
            refused.append(str(err))
        finally:
            barrier.wait()

    _run_threads(first, other)
    assert len(refused) == 1 and "in use" in refused[0], refused


def test_a_lock_link_whose_reply_was_lost_is_still_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NFS retries a link() whose reply was lost; the retry fails with EEXIST although the
    # first attempt made the lock. The claim must see its own token, not another run's lock.
    real_link = os.link

    def link(src, dst, **kwargs):
        real_link(src, dst, **kwargs)
        raise FileExistsError(dst)

    out = tmp_path / "run"
    out.mkdir()
    monkeypatch.setattr(os, "link", link)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = claim_run_folder(out, resume=False, overwrite=False)
    folder.release()
    assert not (out / LOCK_NAME).exists()


def test_a_lock_released_between_the_claims_attempt_and_its_read_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another run held the lock when this claim tried to create it and released it before the
    # claim read who owns it: the claim failed with the lock's own FileNotFoundError although
    # the folder was free.
    real_link = os.link
    calls = []

    def link(src, dst, **kwargs):
        calls.append(dst)
        if len(calls) == 1:
            raise FileExistsError(dst)  # the other run's lock, gone by the time it is read
        real_link(src, dst, **kwargs)

    out = tmp_path / "run"
    out.mkdir()
    monkeypatch.setattr(os, "link", link)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        folder = claim_run_folder(out, resume=False, overwrite=False)
    assert (out / LOCK_NAME).exists() and len(calls) == 2
    folder.release()
    assert not (out / LOCK_NAME).exists()
