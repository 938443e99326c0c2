"""Training runs: a short real GAN run, resume bit-for-bit, signals, DDP (gloo, 2 processes),
the VAE and GMM trainers and the ``advprior train`` CLI."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from advprior.baselines import GMMPrior, VPoserVAE
from advprior.data import load_dataset
from advprior.errors import CorruptCheckpointError
from advprior.hub import load_pretrained
from advprior.prior import PosePrior
from advprior.rotations import axis_angle_to_rotmat
from advprior.train import checkpoint as ckpt
from advprior.train.gan import train_gan
from advprior.train.gmm import fit_gmm
from advprior.train.release import _training_data
from advprior.train.vae import train_vae

REPO = Path(__file__).resolve().parents[1]
FAST = dict(progress=False, tensorboard=False, val_samples=200, max_val_poses=100)
# The paper's GAN, and the same with the optional extras (EMA generator, R1 penalty, jointly
# trained encoder, path-length penalty, joint positions for the critic, packed critic).
EXTRAS = pytest.mark.parametrize(
    "extras",
    [
        {},
        {
            "ema_decay": 0.9,
            "r1_gamma": 1.0,
            "cycle_weight": 1.0,
            "latent_cycle_weight": 1.0,
            "path_length_weight": 1.0,
            "coverage_weight": 1.0,
            "coverage_pool": 32,
            "leg_mix": 0.5,
            "pose_mix": 0.5,
            "rebalance": 0.5,
            "rebalance_clusters": 4,
            "disc_positions": True,
            "disc_pack": 2,
        },
    ],
    ids=["paper", "ema-r1-cycle-pl-cov-mix-rebal-pos-pack"],
)


def _write_dataset(path: Path, n: int = 400, seed: int = 0) -> Path:
    """A dataset file in the documented layout (docs/design.md) with clustered random poses."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 0.3, (6, 63))
    body_pose = centres[rng.integers(0, 6, n)] + rng.normal(0.0, 0.05, (n, 63))
    subject = np.arange(n, dtype=np.int32) % 5
    split = np.select([subject == 3, subject == 4], [1, 2], 0).astype(np.int8)
    np.savez(
        path,
        body_pose=body_pose.astype(np.float32),
        global_orient=np.zeros((n, 3), np.float32),
        transl=np.zeros((n, 3), np.float32),
        sequence=subject.copy(),
        subject=subject,
        split=split,
        sequence_names=np.array([f"seq{i}" for i in range(5)]),
        subject_names=np.array([f"s{i}" for i in range(5)]),
        split_names=np.array(["train", "val", "test"]),
        fps=np.array(30.0, np.float32),
        meta=np.array(json.dumps({"sources": {"synthetic": n}})),
    )
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("data") / "synthetic.npz")


@pytest.fixture(scope="module")
def real_subset(tmp_path_factory, shared_mocap) -> Path:
    """A small dataset built with ``advprior.data`` from real HDM05 clips of 4 actors."""
    from advprior.data import build_dataset

    amc = sorted((shared_mocap / "hdm05_asfamc" / "amc").glob("*.amc"))
    picked: list[Path] = []
    for actor in ("bd", "bk", "dg", "mm"):
        picked += [p for p in amc if p.name.startswith(f"HDM_{actor}_")][:3]
    out = tmp_path_factory.mktemp("real") / "hdm05_small.npz"
    build_dataset(picked, out, fps=30)
    return out


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# -- a short but real training run -------------------------------------------------------------


@pytest.mark.slow
def test_gan_short_run_on_real_mocap_improves_recall(real_subset, tmp_path):
    result = train_gan(
        real_subset,
        tmp_path / "run",
        steps=40,
        batch_size=32,
        val_every=20,
        ckpt_every=20,
        **FAST,
    )
    assert result.step == 40 and not result.interrupted
    rows = _read_csv(tmp_path / "run" / "train_log.csv")
    assert len(rows) == 40
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("loss_d", "loss_g"))
    val = _read_csv(tmp_path / "run" / "val_log.csv")
    assert [int(r["step"]) for r in val] == [0, 20, 40]
    first, last = float(val[0]["recall_mean_mm"]), float(val[-1]["recall_mean_mm"])
    assert last < 0.8 * first, (first, last)
    prior = PosePrior.from_pretrained(result.model_dir)
    assert prior.latent == "sphere" and not prior.training
    card = (result.model_dir / "README.md").read_text()
    # Files passed one by one have the source "amc" (their folder): advprior cannot tell their
    # terms, so the card says so instead of quoting the open data's licence.
    assert "license: other" in card and "sources: amc" in card
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["training"]["steps"] == 40
    # model selection: the exported generator is the validated step (>= 1) with the lowest
    # recall + precision, and its validation numbers are the ones recorded
    rows = {int(r["step"]): r for r in val if int(r["step"]) >= 1}
    best = min(
        rows, key=lambda k: float(rows[k]["recall_mean_mm"]) + float(rows[k]["precision_mean_mm"])
    )
    assert config["training"]["selected_step"] == best == result.best_step
    assert config["training"]["metrics_val_mm"]["recall_mean_mm"] == pytest.approx(
        float(rows[best]["recall_mean_mm"])
    )
    if best == 40:  # the last step won: the export is the final generator
        final = ckpt.load(tmp_path / "run" / "checkpoint.pt")["models"]["generator"]
        assert all(torch.equal(prior.state_dict()[k], v) for k, v in final.items())
    assert config["training"]["data"]["train_frames"] > 0
    # the data's identity that survives a rebuild by another advprior version
    content = load_dataset(real_subset).content_sha256()
    assert config["training"]["data"]["content_sha256"] == content
    assert f"content sha256 {content[:12]}..." in _training_data(config)
    assert (tmp_path / "run" / "tb").is_dir() is False  # tensorboard off here


# -- resume, signals, checkpoints --------------------------------------------------------------


def _weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    return ckpt.load(path / "checkpoint.pt")["models"]


@pytest.mark.slow
@EXTRAS
def test_resume_after_sigint_is_bit_for_bit(synthetic, tmp_path, extras):
    kw = dict(
        steps=6,
        batch_size=16,
        d_steps=3,
        disc_hidden_dim=64,
        val_every=2,
        ckpt_every=0,
        **FAST,
        **extras,
    )
    straight = train_gan(synthetic, tmp_path / "a", **kw)

    def interrupt(step: int, values: dict) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    stopped = train_gan(synthetic, tmp_path / "b", callback=interrupt, **kw)
    assert stopped.interrupted and stopped.step == 3 and stopped.model_dir is None
    assert ckpt.load(tmp_path / "b" / "checkpoint.pt")["step"] == 3
    resumed = train_gan(synthetic, tmp_path / "b", resume=True, **kw)
    assert resumed.step == 6 and not resumed.interrupted
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys()
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)
    la = _read_csv(tmp_path / "a" / "train_log.csv")
    lb = _read_csv(tmp_path / "b" / "train_log.csv")
    assert [r["loss_g"] for r in la] == [r["loss_g"] for r in lb]
    assert straight.val == resumed.val
    assert straight.best_step == resumed.best_step and straight.best_val == resumed.best_val
    za = PosePrior.from_pretrained(straight.model_dir).sample(4, generator=torch.Generator())
    zb = PosePrior.from_pretrained(resumed.model_dir).sample(4, generator=torch.Generator())
    assert torch.equal(za, zb)


def _exported(result) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(result.model_dir / "model.safetensors")


@pytest.mark.parametrize("case", ["interrupted_at_the_last_step", "extended_past_its_end"])
def test_selection_equals_one_straight_run(synthetic, tmp_path, case):
    """Model selection (``select="best"``) after a resume equals one uninterrupted run's: an
    interrupt at the last step skipped the end-of-run validation for good, and a run extended
    from k steps to N let its step-k end-of-run validation (off the validation grid, which one
    N-step run never makes) compete. Steps 5 / 7 of 7 with validation every 4."""
    kw = dict(steps=7, batch_size=16, d_steps=2, disc_hidden_dim=32, val_every=4, **FAST)
    straight = train_gan(synthetic, tmp_path / "a", **kw)
    if case == "interrupted_at_the_last_step":

        def interrupt(step: int, values: dict) -> None:
            if step == kw["steps"]:
                os.kill(os.getpid(), signal.SIGINT)

        stopped = train_gan(synthetic, tmp_path / "b", callback=interrupt, **kw)
        assert stopped.interrupted and stopped.step == 7 and stopped.model_dir is None
    else:
        assert train_gan(synthetic, tmp_path / "b", **{**kw, "steps": 5}).best_step in (4, 5)
    resumed = train_gan(synthetic, tmp_path / "b", resume=True, **kw)
    assert (resumed.best_step, resumed.val) == (straight.best_step, straight.val)
    a, b = _exported(straight), _exported(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in _read_csv(tmp_path / "b" / "val_log.csv")]
    # the log keeps what was measured: the earlier run's own end-of-run validation stays in it
    assert steps == (["0", "4", "7"] if case.startswith("interrupted") else ["0", "4", "5", "7"])


def test_an_extension_never_selects_the_earlier_runs_end_of_run_validation(tmp_path):
    """The selection rule itself, with scripted scores: the 5-step run's end-of-run validation
    scores best of all, but one 8-step run (validation every 4) never measures step 5."""
    from advprior.train.distributed import DistInfo
    from advprior.train.loop import Trainer

    score = {0: 9.0, 4: 5.0, 5: 1.0, 8: 3.0}

    def run(out: Path, steps: int, resume: bool) -> Trainer:
        weight = torch.nn.Parameter(torch.zeros(1))
        trainer = Trainer(out, steps=steps, config={"x": 1}, dist=DistInfo(), val_every=4,
                          resume=resume, progress=False, tensorboard=False, select="m")  # fmt: skip
        trainer.add_module("m", torch.nn.ParameterList([weight]))

        def step_fn(step: int) -> dict[str, float]:
            with torch.no_grad():
                weight.fill_(step + 1)  # the weights say which step they are
            return {"loss": 0.0}

        def validate() -> dict[str, float]:
            return {"recall_mean_mm": score[trainer.step], "precision_mean_mm": 0.0}

        trainer.run(step_fn, validate)
        return trainer

    straight = run(tmp_path / "a", 8, False)
    assert straight.best["step"] == 8
    assert run(tmp_path / "b", 5, False).best["step"] == 5
    extended = run(tmp_path / "b", 8, True)
    assert extended.best["step"] == 8 and extended.best["state"]["0"].item() == 8.0


def test_resume_with_another_thread_count_warns(tmp_path):
    """Thread counts round differently (a 1-thread and a 2-thread GAN run differ by ~2e-3 after
    40 steps), so a ``--threads 1`` run resumed without it is not the run it continues: that
    is said, not silent. The same count, and a finished run only exported again, stay quiet."""
    import warnings

    from advprior.train.distributed import DistInfo
    from advprior.train.loop import Trainer

    def run(steps: int, resume: bool) -> list[str]:
        trainer = Trainer(tmp_path, steps=steps, config={"x": 1}, dist=DistInfo(),
                          resume=resume, progress=False, tensorboard=False)  # fmt: skip
        trainer.add_module("m", torch.nn.Linear(1, 1))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.run(lambda step: {"loss": 0.0})
        return [str(w.message) for w in caught if "arithmetic" in str(w.message)]

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert run(2, False) == []
        assert run(4, True) == []  # same thread count: quiet
        torch.set_num_threads(2)
        (message,) = run(6, True)
        assert "threads 1 -> 2" in message and "not bit-for-bit" in message
        assert run(6, True) == []  # finished: exported again only, nothing recomputed
    finally:
        torch.set_num_threads(before)


def test_resume_refuses_other_settings_and_bad_files(synthetic, tmp_path):
    kw = dict(
        steps=1,
        batch_size=16,
        d_steps=1,
        disc_hidden_dim=16,
        val_every=0,
        ckpt_every=0,
        export=False,
        **FAST,
    )
    train_gan(synthetic, tmp_path / "r", **kw)
    with pytest.raises(ValueError, match="batch_size"):
        train_gan(synthetic, tmp_path / "r", resume=True, **{**kw, "batch_size": 8})
    data = _write_dataset(tmp_path / "d.npz")
    train_gan(data, tmp_path / "d", **kw)
    _write_dataset(data, seed=1)  # the dataset file changed since the checkpoint
    with pytest.raises(ValueError, match="data_sha256"):
        train_gan(data, tmp_path / "d", resume=True, **kw)
    # resuming with fewer steps than the checkpoint holds trains nothing and says so
    train_gan(synthetic, tmp_path / "two", **{**kw, "steps": 2})
    with pytest.warns(UserWarning, match=r"at step 2, beyond steps=1; nothing to train"):
        assert train_gan(synthetic, tmp_path / "two", resume=True, **kw).step == 2
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptCheckpointError, match="checkpoint.pt") as err:
        train_gan(synthetic, tmp_path / "r", resume=True, **kw)
    # torch's advice to retry with weights_only=False (running code from the file) is not passed on
    assert "weights_only" not in str(err.value) and "never loaded" in str(err.value)
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(CorruptCheckpointError, match="is empty"):
        train_gan(synthetic, tmp_path / "r", resume=True, **kw)


def test_ema_generator_is_validated_and_exported(synthetic, tmp_path):
    kw = dict(
        steps=4,
        batch_size=16,
        d_steps=2,
        disc_hidden_dim=32,
        val_every=0,
        ckpt_every=0,
        select="last",
        **FAST,
    )
    result = train_gan(synthetic, tmp_path / "ema", ema_decay=0.5, r1_gamma=10.0, **kw)
    models = _weights(tmp_path / "ema")
    exported = PosePrior.from_pretrained(result.model_dir).state_dict()
    raw, avg = models["generator"], models["generator_ema"]
    assert all(torch.equal(exported[k], avg[k]) for k in avg)
    assert not all(torch.equal(raw[k], avg[k]) for k in raw)  # an average, not a copy
    plain = train_gan(synthetic, tmp_path / "plain", **kw)
    assert "generator_ema" not in _weights(tmp_path / "plain")
    with pytest.raises(ValueError, match="ema_decay"):  # a plain run cannot resume with EMA
        train_gan(synthetic, tmp_path / "plain", resume=True, ema_decay=0.5, **kw)
    # R1 changes the discriminator updates and so the generator the run ends with.
    no_r1 = train_gan(synthetic, tmp_path / "no_r1", ema_decay=0.5, **kw)
    other = _weights(tmp_path / "no_r1")["generator"]
    assert not all(torch.equal(raw[k], other[k]) for k in raw)
    assert plain.model_dir is not None and no_r1.model_dir is not None
    for bad in ({"ema_decay": 1.0}, {"ema_decay": -0.1}, {"r1_gamma": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            train_gan(synthetic, tmp_path / "bad", **{**kw, **bad})


def test_cycle_encoder_is_trained_with_the_generator(synthetic, tmp_path):
    kw = dict(steps=100, batch_size=32, d_steps=1, disc_hidden_dim=32, val_every=0, **FAST)
    train_gan(synthetic, tmp_path / "cycle", cycle_weight=5.0, latent_cycle_weight=5.0, **kw)
    rows = _read_csv(tmp_path / "cycle" / "train_log.csv")
    pose = [float(r["cycle_pose"]) for r in rows]
    zerr = [float(r["cycle_z"]) for r in rows]
    # both cycle errors fall while the generator also learns from the critic
    assert np.mean(pose[-5:]) < 0.7 * np.mean(pose[:5]), pose
    assert np.mean(zerr[-5:]) < 0.7 * np.mean(zerr[:5]), zerr
    models = _weights(tmp_path / "cycle")
    assert set(models) == {"generator", "discriminator", "encoder"}
    train_gan(synthetic, tmp_path / "plain", **kw)
    assert "encoder" not in _weights(tmp_path / "plain")
    assert "cycle_pose" not in _read_csv(tmp_path / "plain" / "train_log.csv")[0]
    config = json.loads((tmp_path / "cycle" / "model" / "config.json").read_text())
    assert config["training"]["config"]["cycle_weight"] == 5.0
    with pytest.raises(ValueError, match="cycle_weight"):  # a plain run cannot resume with one
        train_gan(synthetic, tmp_path / "plain", resume=True, cycle_weight=5.0, **kw)
    for name in ("cycle_weight", "latent_cycle_weight"):
        with pytest.raises(ValueError, match=name):
            train_gan(synthetic, tmp_path / "bad", **{**kw, name: -1.0})
    # the pose term alone still trains the encoder; the latent term then has no weight
    train_gan(synthetic, tmp_path / "pose_only", cycle_weight=5.0, **{**kw, "steps": 3})
    assert "encoder" in _weights(tmp_path / "pose_only")


def test_cli_passes_the_gan_options_through(synthetic, tmp_path):
    """`advprior train` flags reach the recorded config (a flag parsed but dropped would train
    the paper's GAN silently)."""
    from advprior.cli import main

    out = tmp_path / "run"
    argv = ["train", "--data", str(synthetic), "--out", str(out), "--model", "gan"]
    argv += ["--steps", "2", "--batch-size", "16", "--d-steps", "1", "--disc-hidden", "16"]
    argv += ["--val-every", "0", "--no-progress", "--threads", "1"]
    argv += ["--ema", "0.5", "--r1", "2", "--path-length", "0.25", "--disc-positions"]
    argv += ["--generator-lr", "1e-4", "--disc-warmup", "3", "--coverage", "0.5"]
    argv += ["--coverage-pool", "64", "--leg-mix", "0.25", "--pose-mix", "0.75"]
    argv += ["--rebalance", "0.5"]
    argv += ["--hidden", "24", "--rebalance-clusters", "3", "--disc-pack", "4"]
    assert main(argv) == 0
    # the generator's width is the model's (config.json's hidden_dim) and the run's
    assert load_pretrained(out / "model").generator[0].out_features == 24
    recorded = json.loads((out / "model" / "config.json").read_text())["training"]["config"]
    assert recorded["hidden_dim"] == 24
    assert recorded["ema_decay"] == 0.5 and recorded["r1_gamma"] == 2.0
    assert recorded["path_length_weight"] == 0.25 and recorded["disc_positions"] is True
    assert recorded["disc_hidden_dim"] == 16 and recorded["d_steps"] == 1
    assert recorded["disc_pack"] == 4 and recorded["generator_lr"] == 1e-4
    assert recorded["disc_warmup"] == 3
    assert recorded["coverage_weight"] == 0.5 and recorded["coverage_pool"] == 64
    assert recorded["leg_mix"] == 0.25 and recorded["pose_mix"] == 0.75
    assert recorded["rebalance"] == 0.5 and recorded["rebalance_clusters"] == 3
    # a pack that does not divide the batch is refused before anything is written
    bad = tmp_path / "bad"
    assert main([*argv[:4], str(bad), *argv[5:-1], "3"]) != 0
    assert not bad.exists()


def test_critic_energy_benchmark_reads_a_run(synthetic, tmp_path):
    """benchmarks/critic_energy.py: the critic of a run (with the position input, recognised
    from its weights) is loaded safely and its energy plugs into fit_keypoints."""
    import importlib.util

    run = tmp_path / "run"
    train_gan(
        synthetic,
        run,
        steps=3,
        batch_size=16,
        d_steps=1,
        disc_hidden_dim=16,
        val_every=0,
        disc_positions=True,
        **FAST,
    )
    spec = importlib.util.spec_from_file_location(
        "critic_energy", REPO / "benchmarks" / "critic_energy.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    critic = bench.load_critic(run)
    assert critic.positions and not any(p.requires_grad for p in critic.parameters())
    out = tmp_path / "energy.json"
    argv = ["--run", str(run), "--data", str(synthetic), "--frames", "3", "--weights", "0", "50"]
    assert bench.main([*argv, "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert [r["weight"] for r in saved["rows"]] == [0.0, 50.0]
    assert all(math.isfinite(r["p_mpjpe_mm"]) for r in saved["rows"])
    # the energy reaches the fit: weighting it changes the result
    assert saved["rows"][0]["p_mpjpe_mm"] != saved["rows"][1]["p_mpjpe_mm"]
    low, high = saved["energy"]["samples_p10_p90"]
    assert math.isfinite(low) and low <= high


def test_path_length_penalty_evens_out_the_pose_speed(synthetic, tmp_path):
    from advprior.train.gan import _RotmatGenerator

    kw = dict(steps=100, batch_size=32, d_steps=1, disc_hidden_dim=32, val_every=0, **FAST)
    for name, weight in (("plain", 0.0), ("pl", 100.0)):
        train_gan(synthetic, tmp_path / name, path_length_weight=weight, select="last", **kw)
    rows = _read_csv(tmp_path / "pl" / "train_log.csv")
    assert (
        "path_spread" in rows[0]
        and "path_spread" not in _read_csv(tmp_path / "plain" / "train_log.csv")[0]
    )
    config = json.loads((tmp_path / "pl" / "model" / "config.json").read_text())
    assert config["training"]["config"]["path_length_weight"] == 100.0
    # Measured on the exported generators with the same latents and directions: the squared
    # coefficient of variation of the pose speed is what the penalty lowers.
    gen = torch.Generator().manual_seed(5)
    spread = {}
    for name in ("plain", "pl"):
        prior = PosePrior.from_pretrained(tmp_path / name / "model")
        z = prior.sample_latent(2048, generator=torch.Generator().manual_seed(1))
        v = torch.randn(z.shape, generator=gen.manual_seed(2))
        with torch.no_grad():
            spread[name] = float(_RotmatGenerator(prior)(z, None, v)[1]["path_spread"])
    # Inside the adversarial game the effect is partial (0.0147 vs 0.0198 here); the penalty
    # alone, optimised on a random generator, halves it (next lines).
    assert spread["pl"] < spread["plain"], spread
    torch.manual_seed(0)
    prior = PosePrior()
    net = _RotmatGenerator(prior)
    opt = torch.optim.Adam(prior.parameters(), lr=1e-3)
    z = prior.sample_latent(256, generator=torch.Generator().manual_seed(1))
    v = torch.randn(z.shape, generator=torch.Generator().manual_seed(2))
    first = None
    for _ in range(50):
        loss = net(z, None, v)[1]["path_spread"]
        first = loss.detach().item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert net(z, None, v)[1]["path_spread"].item() < 0.5 * first
    with pytest.raises(ValueError, match="path_length_weight"):
        train_gan(synthetic, tmp_path / "bad", **{**kw, "path_length_weight": -1.0})


def test_coverage_term_is_the_nearest_sample_distance_and_pulls_only_it(synthetic, tmp_path):
    """The coverage term (implicit maximum likelihood) against a brute-force nearest-neighbour
    search, its gradient on the nearest samples only, and its effect: trained alone it brings
    a pool's nearest poses closer to held-out training poses."""
    from advprior.train.gan import _RotmatGenerator

    torch.manual_seed(0)
    prior = PosePrior().eval()  # no dropout: the brute force decodes the pool again
    net = _RotmatGenerator(prior)
    pool = prior.sample_latent(40, generator=torch.Generator().manual_seed(1))
    real = prior.decode(
        prior.sample_latent(6, generator=torch.Generator().manual_seed(2)), output="rotmat"
    ).detach()
    real = real + 0.01 * torch.randn(real.shape, generator=torch.Generator().manual_seed(3))
    gen = prior.decode(pool, output="rotmat").detach().flatten(1)
    expected = torch.stack([min(((g - r.flatten()) ** 2).sum() for g in gen) for r in real]).mean()
    pool.requires_grad_(True)
    value = net(prior.sample_latent(4), None, None, pool, real)[1]["coverage"]
    torch.testing.assert_close(value, expected)
    (grad,) = torch.autograd.grad(value, pool)
    nearest = torch.cdist(real.flatten(1), gen).argmin(dim=1)
    moved = grad.norm(dim=-1) > 0
    assert set(torch.nonzero(moved).flatten().tolist()) == set(nearest.tolist())

    kw = dict(steps=60, batch_size=32, d_steps=1, disc_hidden_dim=32, val_every=0, **FAST)
    for name, weight in (("plain", 0.0), ("cov", 10.0)):
        train_gan(synthetic, tmp_path / name, coverage_weight=weight, select="last", **kw)
    assert "coverage" in _read_csv(tmp_path / "cov" / "train_log.csv")[0]
    assert "coverage" not in _read_csv(tmp_path / "plain" / "train_log.csv")[0]
    record = json.loads((tmp_path / "cov" / "model" / "config.json").read_text())
    assert record["training"]["config"]["coverage_weight"] == 10.0
    plain_record = json.loads((tmp_path / "plain" / "model" / "config.json").read_text())
    assert "coverage_weight" not in plain_record["training"]["config"]  # old runs resume
    with np.load(synthetic) as data:
        poses = torch.from_numpy(data["body_pose"][data["split"] == 0]).double()
    target = axis_angle_to_rotmat(poses.reshape(-1, 21, 3)).float()
    dist = {}
    for name in ("plain", "cov"):
        model = PosePrior.from_pretrained(tmp_path / name / "model")
        z = model.sample_latent(512, generator=torch.Generator().manual_seed(4))
        with torch.no_grad():
            dist[name] = _RotmatGenerator(model)(z, None, None, z, target)[1]["coverage"].item()
    assert dist["cov"] < dist["plain"], dist
    with pytest.raises(ValueError, match="coverage_weight"):
        train_gan(synthetic, tmp_path / "bad", **{**kw, "coverage_weight": -1.0})
    with pytest.raises(ValueError, match="coverage_pool"):
        train_gan(synthetic, tmp_path / "bad", **{**kw, "coverage_pool": 0})


def test_more_rebalance_clusters_than_training_poses_is_an_error_naming_the_option(
    synthetic, tmp_path
):
    out = tmp_path / "run"
    kw = dict(steps=1, batch_size=16, d_steps=1, disc_hidden_dim=16, val_every=0, **FAST)
    with pytest.raises(ValueError, match=r"rebalance_clusters \(100000\) is more than"):
        train_gan(synthetic, out, rebalance=1.0, rebalance_clusters=100_000, **kw)
    assert not any(out.iterdir())  # nothing written, the lock released


# A damaged or hostile checkpoint.pt is refused when it is loaded, naming the file and the key,
# before anything is trained, logged or written: the run folder stays as it was.
_RESUME_KW = dict(batch_size=16, d_steps=1, disc_hidden_dim=16, ckpt_every=0, export=False, **FAST)


@pytest.fixture(scope="module")
def finished_run(synthetic, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "r"
    train_gan(synthetic, out, steps=2, val_every=1, **_RESUME_KW)
    return out


def _first_param_state(s: dict) -> dict:
    return next(iter(s["optimizers"]["generator"]["state"].values()))


def _damage(s: dict, case: str) -> dict:
    rank = s["ranks"][0]
    if case == "missing_optimizers":
        del s["optimizers"]
    elif case == "models_wrong_key":
        s["models"] = {"other": {}}
    elif case == "ranks_empty":
        s["ranks"] = []
    elif case == "ranks_no_rng":
        del rank["rng"]
    elif case == "rng_float":
        rank["rng"]["torch"] = torch.zeros(3)
    elif case == "rng_short":
        rank["rng"]["torch"] = torch.zeros(3, dtype=torch.uint8)
    elif case == "rng_named_missing":
        rank["rng"]["named"] = {}
    elif case == "streams_garbage":
        rank["streams"] = {"data": {"x": 1}}
    elif case == "optimizer_garbage":
        s["optimizers"]["generator"] = {"state": 5, "param_groups": "x"}
    elif case == "optimizer_state_shape":
        _first_param_state(s)["exp_avg"] = torch.zeros(2)
    elif case == "config_list":
        s["config"] = [1, 2]
    elif case == "model_tensor_shape":
        s["models"]["generator"] = {k: v[:1] for k, v in s["models"]["generator"].items()}
    elif case == "model_tensor_nan":
        next(iter(s["models"]["discriminator"].values())).fill_(float("nan"))
    elif case == "optimizer_nan":
        _first_param_state(s)["exp_avg_sq"].fill_(float("inf"))
    elif case == "elapsed_nan":
        s["elapsed_s"] = float("nan")
    elif case == "step_string":
        s["step"] = "abc"
    elif case == "step_huge":
        s["step"] = 10**30
    elif case == "last_val_nan":
        s["last_val"] = {"recall_mean_mm": float("nan")}
    elif case == "best_state_shape":
        s["best"]["state"] = {k: v[:1] for k, v in s["best"]["state"].items()}
    return s


@pytest.mark.parametrize(
    "case, key",
    [
        ("missing_optimizers", "'optimizers' must be an object (missing)"),
        ("models_wrong_key", "models['generator'] is missing"),
        ("ranks_empty", "'ranks' must be a non-empty list"),
        ("ranks_no_rng", "ranks[0]['rng'] must be an object"),
        ("rng_float", "ranks[0]['rng']['torch'] is not an RNG state"),
        ("rng_short", "ranks[0]['rng']['torch'] has the wrong size"),
        ("rng_named_missing", "ranks[0]['rng']['named']['latent'] is missing"),
        ("streams_garbage", "ranks[0]['streams']['data'] must hold non-negative integers"),
        ("optimizer_garbage", "optimizers['generator'] is not an optimiser state dict"),
        ("optimizer_state_shape", "['exp_avg'] has shape (2,), the parameter"),
        ("config_list", "'config' must be an object (list)"),
        ("model_tensor_shape", "has shape (1,"),
        ("model_tensor_nan", "models['discriminator']"),
        ("optimizer_nan", "['exp_avg_sq'] holds NaN or infinite values"),
        ("elapsed_nan", "'elapsed_s' must be a finite number >= 0, got nan"),
        ("step_string", "'step' must be an integer in [0, 2**63), got 'abc'"),
        ("step_huge", "'step' must be an integer in [0, 2**63)"),
        ("last_val_nan", "'last_val' must map metric names to finite numbers"),
        ("best_state_shape", "best['state']"),
    ],
)
def test_resume_refuses_a_damaged_checkpoint_before_writing(
    synthetic, finished_run, tmp_path, case, key
):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    path = run / "checkpoint.pt"
    torch.save(_damage(torch.load(path, weights_only=True), case), path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(CorruptCheckpointError) as err:
        train_gan(synthetic, run, steps=4, val_every=1, resume=True, **_RESUME_KW)
    assert str(path) in str(err.value) and key in str(err.value)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # nothing trained, logged or overwritten


def test_an_intact_checkpoint_still_resumes(synthetic, finished_run, tmp_path):
    import shutil

    shutil.copytree(finished_run, tmp_path / "run")
    result = train_gan(synthetic, tmp_path / "run", steps=3, val_every=1, resume=True, **_RESUME_KW)
    assert result.step == 3 and result.best_step is not None


def test_code_naming_checkpoint_is_refused_with_the_reason_not_the_advice(tmp_path):
    import pickle
    import zipfile

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo never run",))

    path = tmp_path / "checkpoint.pt"
    torch.save({"step": 1}, path)  # a real torch zip, whose data.pkl is then replaced
    with zipfile.ZipFile(path) as zin:
        items = [(i, zin.read(i.filename)) for i in zin.infolist()]
    with zipfile.ZipFile(path, "w") as zout:
        for info, data in items:
            evil = pickle.dumps({"step": 1, "models": Evil()}, protocol=2)
            zout.writestr(info, evil if info.filename.endswith("data.pkl") else data)
    with pytest.raises(CorruptCheckpointError, match="checkpoint.pt") as err:
        ckpt.load(path)
    text = str(err.value)
    assert "system" in text  # torch's reason: the refused global (torch 2.1 omits "GLOBAL")
    assert "weights_only" not in text and "will likely succeed" not in text


@pytest.mark.parametrize(
    "message",
    [
        # torch 2.6 - 2.12: the reason after "WeightsUnpickler error:"
        "Weights only load failed. This file can still be loaded, to do so you have two options"
        "\n\t(1) Re-running `torch.load` with `weights_only` set to `False` will likely succeed,"
        " but it can result in arbitrary code execution.\n\t(2) Alternatively, load with "
        "`torch.serialization.safe_globals`.\n WeightsUnpickler error: Unsupported global: "
        "GLOBAL posix.system was not an allowed global by default.\n\nCheck the documentation",
        # torch 2.13: the reason in its own paragraph after the advice
        "Weights only load failed. In PyTorch 2.6, we changed the default value of the "
        "`weights_only` argument in `torch.load` from `False` to `True`. Re-running `torch.load` "
        "with `weights_only` set to `False` will likely succeed, but it can result in arbitrary "
        "code execution. Do it only if you got the file from a trusted source.\n\n\nTrying to "
        "load unsupported GLOBAL posix.system whose module posix is blocked.\n\nCheck the "
        "documentation of torch.load to learn more about types accepted by default with "
        "weights_only https://pytorch.org/docs/stable/generated/torch.load.html.",
        # a global outside the allowlist, with advice to allowlist it
        "Weights only load failed. This file can still be loaded, to do so you have two options"
        "\n\t(1) In PyTorch 2.6, we changed the default value of the `weights_only` argument in "
        "`torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set to "
        "`False` will likely succeed, but it can result in arbitrary code execution.\n\t"
        "WeightsUnpickler error: Unsupported global: GLOBAL posix.system was not an allowed "
        "global by default. Please use `torch.serialization.add_safe_globals([system])` or the "
        "`torch.serialization.safe_globals([system])` context manager to allowlist this global "
        "if you trust this class/function.\n\nCheck the documentation of torch.load",
    ],
    ids=["torch-2.6", "torch-2.13", "allowlist-advice"],
)
def test_refusal_reason_drops_torchs_advice_in_both_forms(message):
    reason = ckpt._reason(RuntimeError(message))
    assert "GLOBAL posix.system" in reason
    assert "weights_only" not in reason and "trusted" not in reason
    assert "safe_globals" not in reason and "allowlist" not in reason


def test_moved_run_folder_and_data_file_still_resume(synthetic, tmp_path):
    kw = dict(
        batch_size=16,
        d_steps=1,
        disc_hidden_dim=16,
        val_every=0,
        ckpt_every=0,
        export=False,
        **FAST,
    )
    train_gan(synthetic, tmp_path / "a", steps=2, **kw)
    (tmp_path / "a").rename(tmp_path / "b")
    moved = tmp_path / "moved.npz"
    moved.write_bytes(synthetic.read_bytes())  # same content, other path: same sha256
    result = train_gan(moved, tmp_path / "b", resume=True, steps=3, **kw)
    assert result.step == 3 and not result.interrupted


def test_an_export_stopped_midway_keeps_the_earlier_model(synthetic, tmp_path, monkeypatch):
    """An extended run whose export fails between its files (a full disk here; Ctrl-C or a
    kill alike) keeps the earlier run's model/ whole and loadable. It left the new weights
    with the old config.json, which refused to load as "changed or damaged"; a killed
    export's staging folder is removed when the folder is next claimed."""
    import errno

    import advprior.hub.pretrained as pretrained  # save_pretrained looks write_text_atomic up there

    kw = dict(batch_size=16, d_steps=2, disc_hidden_dim=32, val_every=0, select="last", **FAST)
    out = tmp_path / "run"
    first = train_gan(synthetic, out, steps=2, **kw)
    before = (out / "model" / "model.safetensors").read_bytes()
    write_text = pretrained.write_text_atomic

    def full_disk(path, text):
        if Path(path).name == "config.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return write_text(path, text)

    monkeypatch.setattr(pretrained, "write_text_atomic", full_disk)
    with pytest.raises(OSError, match="No space left"):
        train_gan(synthetic, out, steps=4, resume=True, **kw)
    monkeypatch.setattr(pretrained, "write_text_atomic", write_text)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []
    assert (out / "model" / "model.safetensors").read_bytes() == before
    assert PosePrior.from_pretrained(out / "model").config["training"]["steps"] == first.step
    # a kill leaves the staging folder: the next claim removes it; --resume exports again
    (out / ".model.export.99999.tmp").mkdir()
    resumed = train_gan(synthetic, out, steps=4, resume=True, **kw)
    assert not (out / ".model.export.99999.tmp").exists()
    assert PosePrior.from_pretrained(resumed.model_dir).config["training"]["steps"] == 4


def test_trained_model_card_names_unknown_data_terms(synthetic, tmp_path):
    # The synthetic file's only source is "synthetic": no borrowed CMU/HDM05 licence.
    result = fit_gmm(synthetic, tmp_path / "gmm", max_iter=5, val_samples=100, max_val_poses=50)
    card = (result.model_dir / "README.md").read_text()
    assert "license: other" in card and "synthetic" in card
    assert "mocap.cs.cmu.edu" not in card and "HDM05" not in card


@pytest.mark.parametrize("kind", ["gan", "vae", "gmm"])
def test_the_model_card_records_what_besides_the_seed_decides_the_weights(
    synthetic, tmp_path, kind
):
    """A trained model's config.json held its settings and seed but not the software nor the
    arithmetic that trained it: the same seed gives other weights with another torch, thread
    count, device or number of processes (``--batch-size`` is per process), so nobody could
    tell from the model how to reproduce it. ``training["environment"]`` records them."""
    from advprior.version import software_versions

    if kind == "gmm":
        result = fit_gmm(synthetic, tmp_path / "m", max_iter=3, val_samples=100, max_val_poses=50)
    else:
        trainer = train_gan if kind == "gan" else train_vae
        extra = {"d_steps": 1, "disc_hidden_dim": 16} if kind == "gan" else {}
        result = trainer(
            synthetic, tmp_path / "m", steps=1, batch_size=16, val_every=0, **FAST, **extra
        )
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["training"]["environment"] == {
        **software_versions(),  # advprior, torch, numpy, Python
        "processes": 1,
        "threads_per_process": torch.get_num_threads(),  # 1: conftest pins it
        "device": "cpu",
    }
    assert "environment" in (result.model_dir / "README.md").read_text()


def _minimal_checkpoint(step: int) -> dict:
    """The smallest state ``ckpt.load`` accepts: no models, one process."""
    ranks = [{"rng": ckpt.rng_state({}), "streams": {}}]
    return dict(step=step, models={}, optimizers={}, config={}, ranks=ranks, elapsed_s=0.0)


def test_checkpoint_writes_are_atomic(tmp_path):
    target = tmp_path / "c.pt"
    ckpt.save_atomic(_minimal_checkpoint(1), target)
    assert ckpt.load(target)["step"] == 1

    class Boom:
        def __reduce__(self):
            raise RuntimeError("serialisation failed")

    with pytest.raises(RuntimeError, match="serialisation failed"):
        ckpt.save_atomic({**_minimal_checkpoint(2), "bad": Boom()}, target)
    assert ckpt.load(target)["step"] == 1  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp file left


def test_batch_too_large_for_data_is_a_clear_error(synthetic, tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        train_gan(synthetic, tmp_path / "x", steps=1, batch_size=10_000, **FAST)


# -- baselines ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_vae_training_improves_and_exports(synthetic, tmp_path):
    result = train_vae(
        synthetic, tmp_path / "vae", steps=80, batch_size=32, val_every=40, ckpt_every=40, **FAST
    )
    val = _read_csv(tmp_path / "vae" / "val_log.csv")
    assert float(val[-1]["recall_mean_mm"]) < 0.8 * float(val[0]["recall_mean_mm"])
    rows = _read_csv(tmp_path / "vae" / "train_log.csv")
    assert "loss_rot" in rows[0] and rows[-1]["loss_rot"] == ""  # early-epoch terms dropped
    vae = load_pretrained(result.model_dir)
    assert isinstance(vae, VPoserVAE) and vae.sample(3).shape == (3, 63)


def test_fit_gmm_exports_a_usable_prior(synthetic, tmp_path):
    result = fit_gmm(synthetic, tmp_path / "gmm", num_components=3, val_samples=200)
    gmm = load_pretrained(result.model_dir)
    assert isinstance(gmm, GMMPrior) and gmm.num_components == 3
    data = np.load(synthetic)
    train = torch.from_numpy(data["body_pose"][data["split"] == 0])
    noise = torch.randn(50, 63) * 0.3
    assert gmm.nll(train[:50]).mean() < gmm.nll(noise).mean()
    fit = json.loads((tmp_path / "gmm" / "gmm_fit.json").read_text())
    assert fit["val_mm"]["recall_mean_mm"] == pytest.approx(result.val["recall_mean_mm"])


# -- CLI and DDP ---------------------------------------------------------------------------------


def test_cli_train_smoke(synthetic, tmp_path, capsys):
    from advprior.cli import main

    for model in ("gan", "vae", "gmm"):
        out = tmp_path / model
        args = [
            "train",
            "--data",
            str(synthetic),
            "--out",
            str(out),
            "--model",
            model,
            "--steps",
            "2",
            "--batch-size",
            "16",
            "--val-every",
            "0",
            "--val-samples",
            "100",
            "--no-progress",
        ]
        if model == "gan":
            args += ["--latent", "uniform", "--d-steps", "2", "--select", "last"]
        if model == "vae":
            args += ["--hidden", "40"]
        assert main(args) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["model_dir"] == str(out / "model")
        model_obj = load_pretrained(out / "model")
        assert model_obj.sample(2).shape == (2, 63)
    assert load_pretrained(tmp_path / "gan" / "model").latent == "uniform"
    assert load_pretrained(tmp_path / "vae" / "model").config["hidden_dim"] == 40
    # GAN options with another model: a usage error before anything is read or written (they
    # were dropped silently: `--model gmm --latent uniform` trained the GMM as if not given)
    cases = (
        ("gmm", ["--latent", "uniform"]),
        ("vae", ["--ema", "0.9", "--r1", "1"]),
        ("vae", ["--coverage", "1", "--leg-mix", "0.5", "--rebalance", "0.5"]),
        ("gmm", ["--pose-mix", "0.5"]),
        ("gmm", ["--hidden", "64"]),
    )
    for model, extra in cases:
        out = tmp_path / f"{model}-gan-options"
        argv = ["train", "--data", str(synthetic), "--out", str(out), "--model", model, *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and not out.exists()
        assert " ".join(extra[::2]).replace(" ", ", ") in err and f"--model {model}" in err


def test_cli_summary_quotes_the_exported_models_numbers(synthetic, tmp_path, capsys):
    """The summary line's ``val_mm`` is what the model in ``model_dir`` scores (its card's
    ``metrics_val_mm``, the selected step's), with the last step's beside it. It quoted the
    last step's while ``--select best`` (the default) exported another step's weights, so the
    exported model's own validation never matched the summary."""
    from advprior.cli import main
    from advprior.train.export import make_validator
    from advprior.train.poses import load_training_poses

    out = tmp_path / "run"
    args = ["train", "--data", str(synthetic), "--out", str(out), "--steps", "6", "--batch-size",
            "16", "--d-steps", "2", "--disc-hidden", "32", "--val-every", "2", "--val-samples",
            "100", "--no-progress"]  # fmt: skip
    # scripted validation scores: step 4 is the best, so the selection is not the last step
    scores = iter([9.0, 5.0, 1.0, 3.0])  # steps 0, 2, 4, 6

    def scripted(*a, **k):
        validate = make_validator(*a, **k)

        def scored() -> dict[str, float]:
            return {**validate(), "recall_mean_mm": next(scores)}

        return scored

    import advprior.train.gan as gan_module

    original = gan_module.make_validator
    gan_module.make_validator = scripted
    try:
        assert main(args) == 0
    finally:
        gan_module.make_validator = original
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    card = json.loads((out / "model" / "config.json").read_text())["training"]
    assert summary["selected_step"] == card["selected_step"] == 4
    assert summary["val_mm"] == card["metrics_val_mm"]
    assert summary["final_step_val_mm"] == card["final_step_val_mm"]
    assert summary["val_mm"]["recall_mean_mm"] == 1.0
    assert summary["final_step_val_mm"]["recall_mean_mm"] == 3.0
    # and the exported model itself scores the quoted numbers (all but the scripted recall)
    poses = load_training_poses(synthetic, mirror=True, max_val=2000)
    model = PosePrior.from_pretrained(out / "model")
    again = make_validator(model, poses.val, num_samples=100, seed=0)()
    assert again["precision_mean_mm"] == summary["val_mm"]["precision_mean_mm"]


_DDP_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, os, sys, torch
    torch.set_num_threads(1)
    import advprior.prior
    import advprior.train.gan as gan_module

    # Keep hold of the trained networks to compare their weights across ranks afterwards.
    captured = []

    def capturing(base):
        class Captured(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                captured.append(self)
        Captured.__name__ = base.__name__
        return Captured

    gan_module.PoseDiscriminator = capturing(gan_module.PoseDiscriminator)
    advprior.prior.PosePrior = capturing(advprior.prior.PosePrior)

    data, out, extras = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    result = gan_module.train_gan(
        data, out, steps=4, batch_size=16, d_steps=2, disc_hidden_dim=32, val_every=2,
        ckpt_every=2, progress=False, tensorboard=False, val_samples=100, max_val_poses=50,
        **extras)
    digest = hashlib.sha256()
    for net in captured[:2]:
        for p in net.parameters():
            digest.update(p.detach().numpy().tobytes())
    with open(os.path.join(out, "rank" + os.environ["RANK"] + ".txt"), "w") as fh:
        fh.write(f"{result.step} {digest.hexdigest()}")
    """
)


@pytest.mark.slow
@EXTRAS
def test_ddp_gloo_two_processes(synthetic, tmp_path, extras):
    script = tmp_path / "ddp_train.py"
    script.write_text(_DDP_SCRIPT)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(synthetic),
        str(out),
        json.dumps(extras),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    step0, hash0 = (out / "rank0.txt").read_text().split()
    step1, hash1 = (out / "rank1.txt").read_text().split()
    assert step0 == step1 == "4"
    # DDP averaged the gradients: both ranks hold identical generator and discriminator weights
    assert hash0 == hash1
    state = ckpt.load(out / "checkpoint.pt")
    assert state["world_size"] == 2
    # each rank drew its own latents, from its own stream position on its own data shard
    r0, r1 = state["ranks"]
    assert not torch.equal(r0["rng"]["named"]["latent"], r1["rng"]["named"]["latent"])
    assert r0["streams"]["data"] == r1["streams"]["data"]
    if extras.get("leg_mix"):  # each rank swaps its own poses' legs
        legs0, legs1 = r0["rng"]["named"]["leg_mix"], r1["rng"]["named"]["leg_mix"]
        assert not torch.equal(legs0, legs1)
    else:  # registered only when used: older checkpoints hold no such generator
        assert "leg_mix" not in r0["rng"]["named"]
    if extras.get("pose_mix"):  # each rank blends its own poses
        assert not torch.equal(r0["rng"]["named"]["pose_mix"], r1["rng"]["named"]["pose_mix"])
    else:
        assert "pose_mix" not in r0["rng"]["named"]
    prior = PosePrior.from_pretrained(out / "model")
    assert prior.sample(3).shape == (3, 63)
    assert len(_read_csv(out / "train_log.csv")) == 4  # only rank 0 logs
    assert not (out / "run.lock").exists()  # rank 0 owned the lock and released it
    if not extras:
        # the folder now holds a checkpoint: without --resume/--overwrite every rank stops
        # (rank 0 refuses, the others learn it through a collective instead of hanging)
        again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180,
                               cwd=REPO)  # fmt: skip
        assert again.returncode != 0
        assert "already holds a training checkpoint" in again.stderr
        assert "rank 0 could not claim" in again.stderr
        assert ckpt.load(out / "checkpoint.pt")["step"] == 4


_DDP_REBALANCE_SCRIPT = textwrap.dedent(
    """
    import hashlib, os, sys, torch
    torch.set_num_threads(1)
    import advprior.train.gan as gan_module

    rank = int(os.environ["RANK"])
    kmeans, rebalance = gan_module.kmeans_labels, gan_module.rebalanced_rows

    def kmeans_per_rank(*args, **kwargs):
        # Stands in for k-means rounding differently on another CPU: rank 1 clusters otherwise.
        labels = kmeans(*args, **kwargs)
        return labels if rank == 0 else torch.zeros_like(labels)

    def recording(labels, power):
        with open(os.path.join(sys.argv[2], f"labels{rank}.txt"), "w") as fh:
            fh.write(hashlib.sha256(labels.numpy().tobytes()).hexdigest())
        return rebalance(labels, power)

    gan_module.kmeans_labels, gan_module.rebalanced_rows = kmeans_per_rank, recording
    os.makedirs(sys.argv[2], exist_ok=True)
    gan_module.train_gan(
        sys.argv[1], os.path.join(sys.argv[2], "run"), steps=2, batch_size=16, d_steps=1,
        disc_hidden_dim=32, val_every=0, ckpt_every=0, progress=False, tensorboard=False,
        val_samples=100, max_val_poses=50, rebalance=1.0, rebalance_clusters=4, export=False)
    """
)


@pytest.mark.slow
def test_ddp_rebalance_reads_rank0_table(synthetic, tmp_path):
    """Every rank must draw from one rebalanced table; k-means may round differently per
    machine, so the ranks use rank 0's cluster labels (a rank-dependent clustering is forced)."""
    script = tmp_path / "ddp_rebalance.py"
    script.write_text(_DDP_REBALANCE_SCRIPT)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(script), str(synthetic), str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "labels0.txt").read_text() == (out / "labels1.txt").read_text()


def test_broadcast_from_main_leaves_the_callers_tensor_alone(monkeypatch):
    """A non-main rank's own tensor must not be overwritten by the broadcast (it was, in place,
    whenever it already lay contiguous on the group's device: every gloo run)."""
    from advprior.train import distributed as ddp

    def fake_broadcast(buf, src):  # what rank 0 sends to this (non-main) rank
        assert src == 0 and buf.is_contiguous()
        buf.fill_(7)

    monkeypatch.setattr(ddp.dist, "broadcast", fake_broadcast)
    info = ddp.DistInfo(rank=1, world_size=2)
    mine = torch.arange(6, dtype=torch.int64)
    got = ddp.broadcast_from_main(mine, info)
    assert torch.equal(mine, torch.arange(6)) and torch.equal(got, torch.full((6,), 7))
    assert got.dtype == mine.dtype and got.device == mine.device
    # a strided view is sent as a contiguous copy, and comes back with the view's shape
    view = torch.arange(12.0).reshape(3, 4).T
    got = ddp.broadcast_from_main(view, info)
    assert got.shape == (4, 3) and torch.equal(got, torch.full((4, 3), 7.0))
    assert torch.equal(view, torch.arange(12.0).reshape(3, 4).T)
