"""The training loop shared by the GAN and the VAE: logging, validation, checkpoints, signals.

A model-specific ``step_fn(step) -> {name: float}`` does one optimisation step; :class:`Trainer`
runs it ``steps`` times and takes care of the rest:

- determinism: every random draw comes from the global torch generator (seeded per rank) or
  from generators registered with :meth:`Trainer.add_generator`; all of them, the batch streams,
  the models and the optimisers are in the checkpoint, so ``resume=True`` continues bit-for-bit;
- checkpoints (``<out>/checkpoint.pt``, atomic) every ``ckpt_every`` steps, at the end, and when
  SIGINT/SIGTERM arrives (the loop finishes the current step, saves and returns with
  ``interrupted=True``; a second signal aborts at once);
- logs: ``train_log.csv``, ``val_log.csv``, TensorBoard in ``tb/``, a tqdm bar with live losses;
- validation every ``val_every`` steps on the main process.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advprior._sync import ForkSafeLock
from advprior.errors import CorruptCheckpointError
from advprior.train import checkpoint as ckpt
from advprior.train.distributed import (
    DistInfo,
    barrier,
    broadcast_flag,
    gather_objects,
    unwrap,
)
from advprior.train.logs import TrainLogger
from advprior.train.sampler import BatchStream

# Settings a resumed run may change. The run folder and the data file may move (the data's
# identity is checked by its sha256, which is part of the config).
_RESUMABLE_CHANGES = {
    "steps",
    "resume",
    "progress",
    "tensorboard",
    "val_every",
    "ckpt_every",
    "out",
    "data",
}


def trainer_entry(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a trainer (:func:`~advprior.train.train_gan`, :func:`~advprior.train.train_vae`)
    with autograd on and float32 as torch's default dtype, whatever the caller's global state.

    Why: called inside ``torch.no_grad()`` / ``torch.inference_mode()`` (an evaluation script
    wrapped whole in one) training stopped at its first step with torch's "element 0 of
    tensors does not require grad"; under ``torch.set_default_dtype(torch.float64)`` the
    models were built and trained in float64, so a run gave other weights than its recorded
    settings and seed give (the recipe is float32). The caller's default dtype is restored.

    The default dtype is process-wide: trainers running in several threads share one setting,
    saved by the first to start and restored by the last to end (each restoring its own put
    the caller's float64 back under a run still building its models, and left float32 for
    good)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _DTYPE_LOCK:
            if not _DTYPE_HOLDERS:
                _DTYPE_HOLDERS.append(torch.get_default_dtype())
            _DTYPE_HOLDERS.append(torch.float32)
            torch.set_default_dtype(torch.float32)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                return fn(*args, **kwargs)
        finally:
            with _DTYPE_LOCK:
                if _DTYPE_HOLDERS:
                    _DTYPE_HOLDERS.pop()
                if len(_DTYPE_HOLDERS) == 1:
                    torch.set_default_dtype(_DTYPE_HOLDERS.pop())

    return wrapper


#: The caller's default dtype, then one entry per trainer running (:func:`trainer_entry`).
_DTYPE_HOLDERS: list[torch.dtype] = []
_DTYPE_LOCK = ForkSafeLock()


@dataclass
class TrainResult:
    """What a training call returns.

    ``step``: steps done (of ``steps``); ``interrupted``: stopped by a signal (checkpoint saved);
    ``wall_time_s``: training wall time summed over resumed runs; ``val``: the last validation
    metrics (mm); ``model_dir``: the exported ``save_pretrained`` directory (None if interrupted);
    ``best_step`` / ``best_val`` / ``best_state``: the validated step (>= 1) with the lowest
    recall + precision (mean, mm) and the selected module's weights then (see ``select``).
    """

    out: Path
    step: int
    steps: int
    interrupted: bool
    wall_time_s: float
    val: dict[str, float] = field(default_factory=dict)
    model_dir: Path | None = None
    best_step: int | None = None
    best_val: dict[str, float] = field(default_factory=dict)
    best_state: dict[str, torch.Tensor] | None = None


def _arithmetic(dist: DistInfo) -> dict[str, Any]:
    """This process's settings that change float rounding: CPU threads and device type."""
    return {"threads": torch.get_num_threads(), "device": dist.device.type}


class _StopFlag:
    """SIGINT/SIGTERM (and Windows' SIGBREAK) set a flag (main thread only); a second signal
    raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            # SIGBREAK: Ctrl-Break, and closing the console window, on Windows
            extra = (signal.SIGBREAK,) if hasattr(signal, "SIGBREAK") else ()
            for sig in (signal.SIGINT, signal.SIGTERM, *extra):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    """Runs a step function with checkpoints, logs and validation (see the module docstring)."""

    def __init__(
        self,
        out: str | Path,
        *,
        steps: int,
        config: dict[str, Any],
        dist: DistInfo,
        val_every: int = 0,
        ckpt_every: int = 0,
        resume: bool = False,
        progress: bool = True,
        tensorboard: bool = True,
        callback: Callable[[int, dict[str, float]], None] | None = None,
        select: str | None = None,
    ) -> None:
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self.out = Path(out)
        self.steps = steps
        self.config = config
        self.dist = dist
        self.val_every = val_every
        self.ckpt_every = ckpt_every
        self.resume = resume
        self.progress = progress
        self.tensorboard = tensorboard
        self.callback = callback
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.generators: dict[str, torch.Generator] = {}
        self.streams: dict[str, BatchStream] = {}
        self.step = 0
        self.elapsed = 0.0
        self.last_val: dict[str, float] = {}
        # Model selection on the validation split: the module named ``select`` is copied
        # whenever recall + precision (mean, mm) reaches a new low (step 0 never counts).
        self.select = select
        self.best: dict[str, Any] = {}
        # The same over the periodic validations only (every ``val_every`` steps), without a
        # run's end-of-run validation off that grid: a run extended past its end selects from
        # what one longer run would have validated.
        self.grid_best: dict[str, Any] = {}
        # The step of the last validation; a run interrupted at its last step, before its
        # end-of-run validation, does that validation when it is resumed.
        self.validated_at = -1

    def add_module(
        self, name: str, module: nn.Module, optimizer: torch.optim.Optimizer | None = None
    ) -> None:
        """Checkpoint ``module`` (and ``optimizer``, when it has one) under ``name``."""
        self.modules[name] = module
        if optimizer is not None:
            self.optimizers[name] = optimizer

    def add_generator(self, name: str, generator: torch.Generator) -> None:
        self.generators[name] = generator

    def add_stream(self, name: str, stream: BatchStream) -> None:
        self.streams[name] = stream

    @property
    def checkpoint_path(self) -> Path:
        return self.out / ckpt.CHECKPOINT_NAME

    # -- checkpoints ---------------------------------------------------------------------------

    def _local_state(self) -> dict[str, Any]:
        return {
            "rng": ckpt.rng_state(self.generators),
            "streams": {k: s.state_dict() for k, s in self.streams.items()},
            # What else decides the float rounding: a resume that changes either cannot
            # continue bit-for-bit, and says so (:meth:`_warn_if_other_arithmetic`).
            "arithmetic": _arithmetic(self.dist),
        }

    def save_checkpoint(self, elapsed: float) -> None:
        per_rank = gather_objects(self._local_state(), self.dist)
        if self.dist.is_main:
            state = {
                "step": self.step,
                "models": {k: unwrap(m).state_dict() for k, m in self.modules.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "ranks": per_rank,
                "config": self.config,
                "elapsed_s": elapsed,
                "last_val": self.last_val,
                "best": self.best,
                "grid_best": self.grid_best,
                "validated_at": self.validated_at,
                "world_size": self.dist.world_size,
            }
            ckpt.save_atomic(state, self.checkpoint_path)
        barrier(self.dist)

    def _restore(self) -> bool:
        if not self.checkpoint_path.is_file():
            return False
        state = ckpt.load(self.checkpoint_path)
        if state.get("world_size", 1) != self.dist.world_size:
            raise ValueError(
                f"{self.checkpoint_path} was written by {state.get('world_size')} process(es); "
                f"resume it with the same number, not {self.dist.world_size}"
            )
        old = state["config"]  # an object: checked by ckpt.load
        changed = sorted(
            k
            for k in set(old) | set(self.config)
            if k not in _RESUMABLE_CHANGES and old.get(k) != self.config.get(k)
        )
        if changed:
            diffs = ", ".join(f"{k}: {old.get(k)!r} -> {self.config.get(k)!r}" for k in changed)
            raise ValueError(f"cannot resume {self.checkpoint_path} with other settings ({diffs})")
        self._check_fits(state)
        # Everything is checked; what still fails here is a damaged file torch noticed first.
        try:
            for k, m in self.modules.items():
                unwrap(m).load_state_dict(state["models"][k], strict=True)
            for k, o in self.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            mine = state["ranks"][self.dist.rank]
            ckpt.set_rng_state(mine["rng"], self.generators)
            if int(state["step"]) < self.steps:  # (a finished run is only exported again)
                self._warn_if_other_arithmetic(mine.get("arithmetic"))
            for k, s in self.streams.items():
                s.load_state_dict(mine["streams"][k])
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            raise CorruptCheckpointError(
                f"training checkpoint {self.checkpoint_path} does not fit this run: {err}"
            ) from err
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed_s"])
        self.last_val = dict(state.get("last_val", {}))
        self.best = dict(state.get("best", {}))
        # checkpoints of 0.2.0 and before record neither: their runs keep the old behaviour
        self.grid_best = dict(state.get("grid_best", self.best))
        self.validated_at = int(state.get("validated_at", self.step))
        return True

    def _warn_if_other_arithmetic(self, saved: Any) -> None:
        """Warn when this process's CPU thread count or device type differs from the one that
        wrote the checkpoint (checkpoints from before they were recorded: no warning).

        Why: torch splits reductions and matrix products by thread count, so the same step on
        1 and on 2 threads rounds differently and the runs drift apart; resuming a
        ``--threads 1`` run without ``--threads 1`` (or on another device) silently gave other
        weights than the uninterrupted run, which ``--resume`` is documented to reproduce."""
        if not isinstance(saved, dict):
            return
        now = _arithmetic(self.dist)
        changed = [
            f"{key} {saved[key]!r} -> {now[key]!r}"
            for key in now
            if key in saved and saved[key] != now[key]
        ]
        if changed:
            warnings.warn(
                f"{self.checkpoint_path} was written with other arithmetic settings "
                f"({', '.join(changed)}): the resumed run is not bit-for-bit the run it "
                "continues (float rounding differs); resume with the original --threads and "
                "--device for that",
                RuntimeWarning,
                stacklevel=3,
            )

    def _check_fits(self, state: dict[str, Any]) -> None:
        """Refuse a checkpoint (structurally valid, see ``ckpt.check_structure``) that lacks a
        name this run needs or whose tensors do not fit its models and optimisers, before any
        of it is applied."""
        path = self.checkpoint_path

        def bad(key: str, problem: str) -> CorruptCheckpointError:
            return CorruptCheckpointError(
                f"training checkpoint {path} does not fit this run: {key} {problem}"
            )

        def same_tensors(want: dict[str, torch.Tensor], got: dict[str, Any], key: str) -> None:
            missing = sorted(set(want) - set(got))
            unexpected = sorted(set(got) - set(want))
            if missing or unexpected:
                raise bad(key, f"has missing tensors {missing[:5]}, unexpected {unexpected[:5]}")
            for name, t in want.items():
                if tuple(got[name].shape) != tuple(t.shape):
                    raise bad(
                        f"{key}[{name!r}]",
                        f"has shape {tuple(got[name].shape)}, the model {tuple(t.shape)}",
                    )

        for k, m in self.modules.items():
            if k not in state["models"]:
                raise bad(f"models[{k!r}]", "is missing")
            same_tensors(unwrap(m).state_dict(), state["models"][k], f"models[{k!r}]")
        for k, o in self.optimizers.items():
            saved = state["optimizers"].get(k)
            if saved is None:
                raise bad(f"optimizers[{k!r}]", "is missing")
            groups = saved["param_groups"]
            if [len(g["params"]) for g in groups] != [len(g["params"]) for g in o.param_groups]:
                raise bad(f"optimizers[{k!r}]", "has other parameter groups than the model")
            params = {}
            for g_saved, g_now in zip(groups, o.param_groups, strict=True):
                params.update(zip(g_saved["params"], g_now["params"], strict=True))
            for pid, per_param in saved["state"].items():
                if pid not in params or not isinstance(per_param, dict):
                    raise bad(f"optimizers[{k!r}]['state'][{pid!r}]", "names no parameter")
                for name, value in per_param.items():
                    if not isinstance(value, torch.Tensor) or value.ndim == 0:
                        continue  # step counters
                    if tuple(value.shape) != tuple(params[pid].shape):
                        raise bad(
                            f"optimizers[{k!r}]['state'][{pid!r}][{name!r}]",
                            f"has shape {tuple(value.shape)}, the parameter "
                            f"{tuple(params[pid].shape)}",
                        )
        mine = state["ranks"][self.dist.rank]
        rng = mine["rng"]
        if rng["torch"].numel() != torch.get_rng_state().numel():
            raise bad(f"ranks[{self.dist.rank}]['rng']['torch']", "has the wrong size")
        for k, g in self.generators.items():
            saved = rng["named"].get(k)
            if saved is None:
                raise bad(f"ranks[{self.dist.rank}]['rng']['named'][{k!r}]", "is missing")
            if saved.numel() != g.get_state().numel():
                raise bad(f"ranks[{self.dist.rank}]['rng']['named'][{k!r}]", "has the wrong size")
        for k in self.streams:
            if k not in mine["streams"]:
                raise bad(f"ranks[{self.dist.rank}]['streams'][{k!r}]", "is missing")
        for key in ("best", "grid_best"):
            best = state.get(key) or {}
            if best and self.select is not None:
                selected = unwrap(self.modules[self.select]).state_dict()
                same_tensors(selected, best["state"], f"{key}['state']")

    # -- the loop ------------------------------------------------------------------------------

    def run(
        self,
        step_fn: Callable[[int], dict[str, float]],
        validate_fn: Callable[[], dict[str, float]] | None = None,
    ) -> TrainResult:
        resumed = self.resume and self._restore()
        unvalidated_end = (
            self.step == self.steps and self.validated_at != self.step and validate_fn is not None
        )
        if resumed and self.step < self.steps and self.validated_at == self.step:
            if not (self.val_every and self.step % self.val_every == 0):
                # the last validation was the earlier run's end-of-run one: one longer run
                # would not have made it, so it does not take part in the selection
                self.best = dict(self.grid_best)
        if resumed and self.step >= self.steps and not unvalidated_end:
            # Already finished: nothing to train, log or save (re-export only).
            if self.step > self.steps and self.dist.is_main:
                warnings.warn(
                    f"{self.out}: the checkpoint is at step {self.step}, beyond "
                    f"steps={self.steps}; nothing to train, its selected model is exported "
                    "again as it is",
                    stacklevel=2,
                )
            return self._result(False, self.elapsed)
        logger = TrainLogger(
            self.out,
            self.steps,
            self.step,
            enabled=self.dist.is_main,
            progress=self.progress,
            tensorboard=self.tensorboard,
            resume=resumed,
        )
        t0 = time.perf_counter()
        interrupted = False

        def validate(on_grid: bool = True) -> None:
            if validate_fn is not None and self.dist.is_main:
                self.last_val = validate_fn()
                logger.val(self.step, self.last_val)
                self._track_best(on_grid)
            self.validated_at = self.step

        try:
            if self.step == 0 and self.val_every:
                validate()  # the untrained model's numbers, for comparison
            with _StopFlag() as stop:
                while self.step < self.steps:
                    values = step_fn(self.step)
                    self.step += 1
                    values["time_s"] = self.elapsed + time.perf_counter() - t0
                    logger.train(self.step, values)
                    if self.callback is not None:
                        self.callback(self.step, values)
                    if self.val_every and self.step % self.val_every == 0:
                        validate()
                    stop_now = broadcast_flag(stop.requested, self.dist)
                    if stop_now or (self.ckpt_every and self.step % self.ckpt_every == 0):
                        self.save_checkpoint(self.elapsed + time.perf_counter() - t0)
                    if stop_now:
                        interrupted = True
                        break
            if not interrupted:
                # (a run resumed after an interrupt at its last step arrives here directly)
                if self.validated_at != self.step and validate_fn is not None:
                    validate(on_grid=False)
                self.save_checkpoint(self.elapsed + time.perf_counter() - t0)
        finally:
            logger.close()
        return self._result(interrupted, self.elapsed + time.perf_counter() - t0)

    def _track_best(self, on_grid: bool) -> None:
        if self.select is None or self.step < 1:
            return
        score = self.last_val["recall_mean_mm"] + self.last_val["precision_mean_mm"]
        better = not self.best or score < self.best["score"]
        better_on_grid = on_grid and (not self.grid_best or score < self.grid_best["score"])
        if better or better_on_grid:
            state = unwrap(self.modules[self.select]).state_dict()
            entry = {
                "step": self.step,
                "score": score,
                "val": dict(self.last_val),
                "state": {k: v.detach().cpu().clone() for k, v in state.items()},
            }
            if better:
                self.best = entry
            if better_on_grid:
                self.grid_best = entry

    def _result(self, interrupted: bool, wall: float) -> TrainResult:
        return TrainResult(
            out=self.out,
            step=self.step,
            steps=self.steps,
            interrupted=interrupted,
            wall_time_s=wall,
            val=dict(self.last_val),
            best_step=self.best.get("step"),
            best_val=dict(self.best.get("val", {})),
            best_state=self.best.get("state"),
        )
