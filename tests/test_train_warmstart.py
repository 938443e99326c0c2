"""Starting the GAN generator from a same-data VAE decoder (``init_from``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from test_train_runs import FAST, _read_csv, _write_dataset

from advprior.baselines import VPoserVAE
from advprior.hub import sha256_file
from advprior.prior import PosePrior
from advprior.train import checkpoint as ckpt
from advprior.train.gan import train_gan
from advprior.train.vae import train_vae
from advprior.train.warmstart import distil_decoder, load_teacher, teacher_scale


@pytest.mark.parametrize(
    ("dim", "expected"),
    # mean norms of N(0, I_d) in closed form: half-normal, Rayleigh, Maxwell-Boltzmann
    [(1, math.sqrt(2 / math.pi)), (2, math.sqrt(math.pi / 2)), (3, 2 * math.sqrt(2 / math.pi))],
)
def test_sphere_scale_is_the_mean_gaussian_norm_in_closed_form(dim, expected):
    assert teacher_scale("sphere", dim) == pytest.approx(expected, rel=1e-12)


def test_scales_put_gan_latents_where_the_vaes_are():
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    norms = torch.randn(n, 32, generator=gen, dtype=torch.float64).norm(dim=-1)
    # the norm's spread is about 1/sqrt(2); five standard errors of the mean
    assert teacher_scale("sphere", 32) == pytest.approx(norms.mean().item(), abs=5 * 0.71 / n**0.5)
    u = torch.rand(n, 32, generator=gen, dtype=torch.float64) * 2 - 1
    # Var(sqrt(3) U(-1, 1)) = 1; its sample variance has standard error sqrt((9/5 - 1) / n)
    scaled = teacher_scale("uniform", 32) * u
    assert scaled.var().item() == pytest.approx(1.0, abs=5 * 0.9 / n**0.5)
    assert teacher_scale("normal", 32) == 1.0
    with pytest.raises(ValueError, match="cube"):
        teacher_scale("cube", 32)


@pytest.mark.parametrize("latent", ["sphere", "uniform", "normal"])
def test_distillation_makes_the_generator_decode_like_the_teacher(latent):
    torch.manual_seed(0)
    # a random decoder of 4 latents: rough enough to need learning, smooth enough for 400 steps
    teacher = VPoserVAE(latent_dim=4, hidden_dim=64).eval().requires_grad_(False)
    student = PosePrior(latent=latent, latent_dim=4, hidden_dim=64)
    scale = teacher_scale(latent, 4)
    z = student.sample_latent(256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = teacher.decode(scale * z, output="rotmat")

    def error() -> float:
        student.eval()
        with torch.no_grad():
            out = student.decode(z, output="rotmat")
        return ((out - target) ** 2).sum((-3, -2, -1)).mean().item()

    before = error()
    record = distil_decoder(student, teacher, steps=400, generator=torch.Generator().manual_seed(2))
    after = error()
    assert student.training is False  # the mode it was in is restored
    assert record["steps"] == 400 and record["scale"] == scale
    assert record["final_loss"] < 0.1 * record["first_loss"]
    # On latents the distillation never drew: the student explains most of the teacher's
    # variation (the error of the best constant generator is the spread around its mean).
    spread = ((target - target.mean(0)) ** 2).sum((-3, -2, -1)).mean().item()
    assert after < 0.1 * before and after < 0.35 * spread


def test_teacher_must_come_from_the_same_data(tmp_path):
    vae = VPoserVAE(latent_dim=8, hidden_dim=16)
    vae.save_pretrained(tmp_path / "same", training={"config": {"data_sha256": "a" * 64}})
    vae.save_pretrained(tmp_path / "other", training={"config": {"data_sha256": "b" * 64}})
    VPoserVAE(latent_dim=8, hidden_dim=16).save_pretrained(tmp_path / "unknown")
    same, sha = load_teacher(tmp_path / "same", data_sha256="a" * 64, latent_dim=8)
    assert isinstance(same, VPoserVAE) and not same.training
    assert sha == sha256_file(tmp_path / "same" / "model.safetensors")
    # a GAN has no decoder of Gaussian latents: named as such, not as a loading error
    PosePrior(latent_dim=8, hidden_dim=16).save_pretrained(tmp_path / "gan")
    with pytest.raises(ValueError, match="is a 'gan' checkpoint; it takes a VAE"):
        load_teacher(tmp_path / "gan", data_sha256="a" * 64, latent_dim=8)
    with pytest.raises(ValueError, match=r"bbbbbbbbbbbb.*aaaaaaaaaaaa.*validation or test"):
        load_teacher(tmp_path / "other", data_sha256="a" * 64, latent_dim=8)
    with pytest.raises(ValueError, match="does not record the data"):
        load_teacher(tmp_path / "unknown", data_sha256="a" * 64, latent_dim=8)
    with pytest.raises(ValueError, match="8 latent dimensions, this run 32"):
        load_teacher(tmp_path / "same", data_sha256="a" * 64, latent_dim=32)


@pytest.fixture(scope="module")
def data_and_vae(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("warm")
    data = _write_dataset(root / "synthetic.npz")
    result = train_vae(
        data, root / "vae", steps=30, batch_size=32, val_every=0, ckpt_every=0, **FAST
    )
    return data, result.model_dir


def test_gan_run_starts_from_the_distilled_decoder_and_resumes(data_and_vae, tmp_path):
    data, vae_dir = data_and_vae
    kw = dict(
        steps=2,
        batch_size=16,
        d_steps=1,
        disc_hidden_dim=16,
        val_every=1,
        ckpt_every=0,
        init_from=str(vae_dir),
        init_steps=200,
        **FAST,
    )
    first = train_gan(data, tmp_path / "run", **kw)
    record = ckpt.load(tmp_path / "run" / "checkpoint.pt")["config"]
    assert record["init_from"] == str(vae_dir) and record["init_steps"] == 200
    distil = record["init_distillation"]
    assert distil["final_loss"] < 0.2 * distil["first_loss"]
    # the record names the VAE's weights, not only a path that may later hold others
    assert distil["teacher_weights_sha256"] == sha256_file(vae_dir / "model.safetensors")
    # step 0's validation is the distilled generator: closer to the data than a random one
    random_run = train_gan(data, tmp_path / "random", **{**kw, "init_from": None})
    assert first.step == 2 and random_run.step == 2

    def step0(run: str) -> float:
        rows = _read_csv(tmp_path / run / "val_log.csv")
        assert rows[0]["step"] == "0"
        return float(rows[0]["recall_mean_mm"])

    assert step0("run") < step0("random")
    # resuming keeps the record (no second distillation) and continues the same run
    resumed = train_gan(data, tmp_path / "run", resume=True, **{**kw, "steps": 3})
    assert resumed.step == 3
    assert ckpt.load(tmp_path / "run" / "checkpoint.pt")["config"]["init_distillation"] == distil
    card = PosePrior.from_pretrained(resumed.model_dir).training_metadata["config"]
    assert card["init_distillation"] == distil
    # a plain run's record has no init fields, so checkpoints from before them still resume
    assert "init_from" not in ckpt.load(tmp_path / "random" / "checkpoint.pt")["config"]


def test_a_warm_started_run_resumes_after_its_vae_moved(data_and_vae, tmp_path):
    """The checkpoint holds the distilled generator, yet ``--resume`` loaded the VAE again and
    compared its path: after moving (or deleting) the VAE folder the run could never be resumed
    (a missing path failed, the new path was "other settings"). The record keeps the path the
    VAE was distilled from."""
    import shutil

    data, vae_dir = data_and_vae
    vae = tmp_path / "vae"
    shutil.copytree(vae_dir, vae)
    kw = dict(steps=1, batch_size=16, d_steps=1, disc_hidden_dim=16, val_every=0,
              ckpt_every=0, init_steps=20, export=False, **FAST)  # fmt: skip
    train_gan(data, tmp_path / "run", init_from=str(vae), **kw)
    record = ckpt.load(tmp_path / "run" / "checkpoint.pt")["config"]
    moved = tmp_path / "moved"
    vae.rename(moved)
    for where in (vae, moved):  # the old path (gone) and the new one both resume
        kw["steps"] += 1
        resumed = train_gan(data, tmp_path / "run", init_from=str(where), resume=True, **kw)
        assert resumed.step == kw["steps"]
    again = ckpt.load(tmp_path / "run" / "checkpoint.pt")["config"]
    assert again["init_from"] == str(vae)
    assert again["init_distillation"] == record["init_distillation"]
    with pytest.raises(ValueError, match="init_from"):  # still one of the run's settings
        train_gan(data, tmp_path / "run", resume=True, **{**kw, "steps": 9})


def test_a_vae_of_other_data_is_refused(data_and_vae, tmp_path):
    data, vae_dir = data_and_vae
    other = _write_dataset(tmp_path / "other.npz", seed=1)
    with pytest.raises(ValueError, match="validation or test poses"):
        train_gan(other, tmp_path / "run", steps=1, batch_size=16, init_from=str(vae_dir), **FAST)
    with pytest.raises(ValueError, match="init_steps"):
        train_gan(data, tmp_path / "run2", steps=1, init_from=str(vae_dir), init_steps=0, **FAST)


def test_generator_lr_and_critic_warmup_change_what_they_say(data_and_vae, tmp_path):
    data, _ = data_and_vae
    kw = dict(steps=1, batch_size=16, d_steps=1, disc_hidden_dim=16, val_every=0, **FAST)
    kw.update(ckpt_every=0, export=False)
    train_gan(data, tmp_path / "base", **kw)
    train_gan(data, tmp_path / "slow", generator_lr=1e-6, **kw)
    train_gan(data, tmp_path / "warm", disc_warmup=5, **kw)
    torch.manual_seed(0)  # the initial generator every run starts from (seed 0)
    initial = PosePrior().state_dict()

    def models(run: str) -> dict:
        return ckpt.load(tmp_path / run / "checkpoint.pt")["models"]

    def moved(run: str) -> float:
        g = models(run)["generator"]
        return max((g[k] - initial[k]).abs().max().item() for k in initial)

    # Adam's first step moves every weight by about the learning rate
    assert moved("base") == pytest.approx(2e-4, rel=0.5) and moved("slow") < 1e-5
    base, warm = models("base")["discriminator"], models("warm")["discriminator"]
    assert any(not torch.equal(base[k], warm[k]) for k in base)
    rows = _read_csv(tmp_path / "warm" / "train_log.csv")
    assert len(rows) == 1  # the warm-up is inside step 0, not extra steps
    for bad, match in (({"generator_lr": 0.0}, "generator_lr"), ({"disc_warmup": -1}, "disc_warm")):
        with pytest.raises(ValueError, match=match):
            train_gan(data, tmp_path / "bad", **{**kw, **bad})


def test_cli_starts_from_a_vae(data_and_vae, tmp_path, capsys):
    from advprior.cli import main

    data, vae_dir = data_and_vae
    argv = ["train", "--data", str(data), "--model", "gan", "--steps", "1", "--batch-size", "16"]
    argv += ["--d-steps", "1", "--disc-hidden", "16", "--val-every", "0", "--no-progress"]
    argv += ["--init-from", str(vae_dir), "--init-steps", "20"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    recorded = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert recorded["training"]["config"]["init_distillation"]["steps"] == 20
    capsys.readouterr()
    # a VAE of other data: one line naming the reason
    other = _write_dataset(tmp_path / "other.npz", seed=1)
    argv[2] = str(other)
    assert main([*argv, "--out", str(tmp_path / "refused")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "validation or test poses" in err
