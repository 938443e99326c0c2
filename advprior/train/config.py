"""Training settings as dataclasses: what a run is asked to do, and what it records.

:func:`~advprior.train.train_gan`, :func:`~advprior.train.train_vae` and
:func:`~advprior.train.fit_gmm` take one of these (or the same names as keywords, 0.1.0's
signatures). :meth:`TrainSettings.record` is the dict the checkpoint stores (a resumed run must
match it, see :mod:`advprior.train.loop`) and the model card shows under ``config``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from advprior.latent import LATENT_KINDS

if TYPE_CHECKING:
    import torch

S = TypeVar("S", bound="TrainSettings")

SELECTIONS = ("best", "last")


def _at_least(settings: object, name: str, low: int) -> None:
    value = getattr(settings, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


@dataclass(kw_only=True)
class RunOptions:
    """How a training call runs; not recorded, since none of them changes the weights.

    ``resume``: continue from ``out/checkpoint.pt`` if it exists (bit-for-bit on the same
    machine and thread count; the recorded settings other than ``steps`` and the periods must
    match). ``overwrite``: start afresh in a folder that holds a checkpoint (without ``resume``
    or ``overwrite`` such a folder raises :class:`~advprior.errors.RunFolderError`; see
    :mod:`advprior.train.runfolder`). ``progress``: a tqdm bar. ``tensorboard``: logs in
    ``out/tb``. ``device``: default CUDA under torchrun if available, else CPU. ``export``:
    save the selected weights to ``out/model`` when the run finishes. ``callback``: called as
    ``callback(step, losses)`` after every step (on every process).
    """

    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    tensorboard: bool = True
    device: str | torch.device | None = None
    export: bool = True
    callback: Callable[[int, dict[str, float]], None] | None = None

    def trainer_options(self) -> dict[str, Any]:
        """The keywords :class:`advprior.train.loop.Trainer` takes from these options."""
        return {
            "resume": self.resume,
            "progress": self.progress,
            "tensorboard": self.tensorboard,
            "callback": self.callback,
        }


@dataclass(kw_only=True)
class TrainSettings:
    """Settings every model's training shares. ``model`` (class attribute) names the model in
    the record."""

    model: ClassVar[str]
    #: Recorded only when not at their default, so that checkpoints of runs from before a
    #: setting existed (when it implicitly had its default) still resume.
    omit_when_default: ClassVar[tuple[str, ...]] = ()

    seed: int = 0
    mirror: bool = True
    val_samples: int = 5000
    max_val_poses: int = 2000

    def __post_init__(self) -> None:
        # checked when the settings are made, before a run folder is claimed or data read
        _at_least(self, "val_samples", 1)
        _at_least(self, "max_val_poses", 0)

    @classmethod
    def build(cls: type[S], config: S | None, overrides: dict[str, Any]) -> S:
        """``config`` (default: all defaults) with ``overrides`` applied; unknown names raise
        ``TypeError`` as a function signature would."""
        if config is not None and not isinstance(config, cls):
            raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(f"unexpected {cls.__name__} settings {unknown}; known: {sorted(names)}")
        return replace(config, **overrides) if config is not None else cls(**overrides)

    @classmethod
    def split(cls: type[S], config: S | None, keywords: dict[str, Any]) -> tuple[S, RunOptions]:
        """Settings (:meth:`build` from ``config`` and the keywords naming its fields) and the
        :class:`RunOptions` among ``keywords``: 0.1.0's flat keyword signature, sorted."""
        run_names = {f.name for f in fields(RunOptions)}
        run = RunOptions(**{k: v for k, v in keywords.items() if k in run_names})
        settings = {k: v for k, v in keywords.items() if k not in run_names}
        return cls.build(config, settings), run

    def record(self, data: str | os.PathLike, out: str | os.PathLike | None = None) -> dict:
        """The JSON dict the checkpoint and the model card hold: ``model``, the resolved
        ``data`` (and ``out``) paths, then every setting (tuples as lists)."""
        paths = {"data": str(Path(data).resolve())}
        if out is not None:
            paths["out"] = str(Path(out).resolve())
        defaults = {f.name: f.default for f in fields(self)}
        settings = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in asdict(self).items()
            if not (k in self.omit_when_default and v == defaults[k])
        }
        return {"model": self.model, **paths, **settings}


@dataclass(kw_only=True)
class LoopSettings(TrainSettings):
    """Settings of a run of :class:`advprior.train.loop.Trainer` (GAN, VAE)."""

    steps: int
    batch_size: int = 128
    lr: float
    latent_dim: int = 32
    hidden_dim: int = 512
    val_every: int
    ckpt_every: int
    select: str = "best"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be 'best' or 'last', got {self.select!r}")
        for name in ("steps", "batch_size", "latent_dim", "hidden_dim"):
            _at_least(self, name, 1)
        for name in ("val_every", "ckpt_every"):  # 0: never
            _at_least(self, name, 0)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


@dataclass(kw_only=True)
class GANConfig(LoopSettings):
    """The adversarial prior (see :func:`advprior.train.train_gan` for every field)."""

    model = "gan"
    omit_when_default = (
        "ema_decay",
        "r1_gamma",
        "cycle_weight",
        "latent_cycle_weight",
        "path_length_weight",
        "coverage_weight",
        "coverage_pool",
        "leg_mix",
        "pose_mix",
        "rebalance",
        "rebalance_clusters",
        "disc_positions",
        "disc_pack",
        "init_from",
        "init_steps",
        "generator_lr",
        "disc_warmup",
    )

    latent: str = "sphere"
    steps: int = 5000
    d_steps: int = 10
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    disc_hidden_dim: int = 1024
    disc_positions: bool = False
    disc_pack: int = 1
    ema_decay: float = 0.0
    r1_gamma: float = 0.0
    cycle_weight: float = 0.0
    latent_cycle_weight: float = 0.0
    path_length_weight: float = 0.0
    coverage_weight: float = 0.0
    coverage_pool: int = 512
    leg_mix: float = 0.0
    pose_mix: float = 0.0
    rebalance: float = 0.0
    rebalance_clusters: int = 256
    init_from: str | None = None
    init_steps: int = 3000
    generator_lr: float | None = None
    disc_warmup: int = 0
    val_every: int = 500
    ckpt_every: int = 250

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latent not in LATENT_KINDS:
            raise ValueError(f"latent must be one of {LATENT_KINDS}, got {self.latent!r}")
        self.betas = tuple(self.betas)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")
        if self.d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {self.d_steps}")
        _at_least(self, "disc_hidden_dim", 1)  # 0 built an empty critic and trained on
        if self.disc_pack < 1 or self.batch_size % self.disc_pack:
            raise ValueError(
                f"disc_pack must be >= 1 and divide batch_size ({self.batch_size}), "
                f"got {self.disc_pack}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        for name in (
            "r1_gamma",
            "cycle_weight",
            "latent_cycle_weight",
            "path_length_weight",
            "coverage_weight",
        ):
            # NaN passed a "< 0" test, trained on NaN losses and failed at the export
            if not 0.0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        if self.init_from is not None:
            # a path object would not survive the JSON record that resume compares
            self.init_from = os.fspath(self.init_from)
        _at_least(self, "coverage_pool", 1)
        _at_least(self, "rebalance_clusters", 1)
        if not 0.0 <= self.rebalance <= 1.0:
            raise ValueError(f"rebalance must be in [0, 1], got {self.rebalance}")
        for name in ("leg_mix", "pose_mix"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        _at_least(self, "init_steps", 1)
        _at_least(self, "disc_warmup", 0)
        if self.generator_lr is not None and not self.generator_lr > 0:
            raise ValueError(f"generator_lr must be > 0, got {self.generator_lr}")


@dataclass(kw_only=True)
class VAEConfig(LoopSettings):
    """The VPoser-style baseline (see :func:`advprior.train.train_vae`)."""

    model = "vae"

    steps: int = 10000
    lr: float = 1e-3
    weight_decay: float = 1e-5
    val_every: int = 1000
    ckpt_every: int = 500


@dataclass(kw_only=True)
class GMMConfig(TrainSettings):
    """The SMPLify-style mixture (see :func:`advprior.train.fit_gmm`)."""

    model = "gmm"

    num_components: int = 8
    max_iter: int = 200
    reg_covar: float = 1e-5
    max_samples: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least(self, "num_components", 1)
        _at_least(self, "max_iter", 1)
        _at_least(self, "max_samples", 0)
        if not self.reg_covar >= 0:
            raise ValueError(f"reg_covar must be >= 0, got {self.reg_covar}")
