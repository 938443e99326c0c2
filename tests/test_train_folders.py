"""Protected run folders: a checkpoint is never overwritten by accident, one process per folder
(stale locks taken over), and stale checkpoint temp files are removed on resume."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from test_train_runs import FAST, _write_dataset

from advprior import cli
from advprior.errors import RunFolderError
from advprior.train import checkpoint as ckpt
from advprior.train.gan import train_gan
from advprior.train.runfolder import LOCK_NAME, claim_run_folder
from advprior.train.vae import train_vae

KW = dict(steps=1, batch_size=16, d_steps=1, disc_hidden_dim=16, val_every=0, ckpt_every=0,
          export=False, **FAST)  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("data") / "d.npz")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _lock(out: Path, pid: int, host: str | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lock = out / LOCK_NAME
    lock.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname()}))
    return lock


def test_checkpoint_folder_needs_resume_or_overwrite(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_gan(data, out, **KW)
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(RunFolderError, match="--resume .* --overwrite"):
        train_gan(data, out, **KW)
    with pytest.raises(RunFolderError, match="checkpoint"):
        train_vae(data, out, steps=1, batch_size=16, val_every=0, export=False, **FAST)
    assert (out / "checkpoint.pt").read_bytes() == before  # untouched
    assert train_gan(data, out, resume=True, **{**KW, "steps": 2}).step == 2
    assert train_gan(data, out, overwrite=True, **KW).step == 1
    assert ckpt.load(out / "checkpoint.pt")["step"] == 1
    with pytest.raises(ValueError, match="exclude"):
        train_gan(data, out, resume=True, overwrite=True, **KW)
    assert not (out / LOCK_NAME).exists()  # released after every run


def test_cli_refuses_checkpoint_folder_in_one_line(data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--model",
        "vae",
        "--steps",
        "1",
        "--batch-size",
        "16",
        "--val-every",
        "0",
        "--val-samples",
        "50",
        "--no-progress",
    ]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("advprior train: error: ") and "--overwrite" in err
    assert len(err.strip().splitlines()) == 1
    assert cli.main([*args, "--overwrite"]) == 0
    with pytest.raises(SystemExit) as exc:  # argparse: the two exclude each other
        cli.main([*args, "--overwrite", "--resume"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("blocked", "model", "what"),
    [
        ("torch.utils.tensorboard", "vae", "TensorBoard logging"),
        ("tqdm.auto", "vae", "progress bar"),
        ("sklearn.mixture", "gmm", "fitting the GMM"),
    ],
)
def test_a_missing_training_extra_is_one_line_naming_it(
    data: Path, tmp_path: Path, capsys, monkeypatch, blocked: str, model: str, what: str
) -> None:
    """Installed without ``[train]``, ``advprior train`` says which package and extra it needs
    (it ended in a traceback from deep inside the trainer)."""
    monkeypatch.setitem(sys.modules, blocked, None)  # makes ``import blocked`` fail
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--model", model]
    args += ["--steps", "1", "--batch-size", "16", "--val-every", "0", "--val-samples", "50"]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert what in err and 'pip install "advprior[train]"' in err
    package = {"torch.utils.tensorboard": "tensorboard", "tqdm.auto": "tqdm"}.get(
        blocked, "sklearn"
    )
    assert f"optional package {package!r}" in err


def test_live_lock_is_refused_and_stale_lock_taken_over(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = _lock(out, sleeper.pid)
        with pytest.raises(RunFolderError, match=rf"pid {sleeper.pid}"):
            train_gan(data, out, **KW)
        assert json.loads(lock.read_text())["pid"] == sleeper.pid  # not stolen
    finally:
        sleeper.kill()
        sleeper.wait()
    _lock(out, _dead_pid())
    with pytest.warns(UserWarning, match="stale lock"):
        assert train_gan(data, out, **KW).step == 1
    assert not (out / LOCK_NAME).exists()
    _lock(out, 1, host="some-other-machine")
    # a requeued job lands on another host: the message says what to do
    with pytest.raises(RunFolderError, match=r"some-other-machine.*remove the lock.*--resume"):
        train_gan(data, out, resume=True, **KW)


def test_a_full_disk_while_logging_names_the_log_and_the_way_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC while appending to train_log.csv was a bare "[Errno 28] No space left on device"."""
    import csv
    import errno

    from advprior.train.logs import CSVLog

    log = CSVLog(tmp_path / "train_log.csv")
    log.write({"step": 1, "loss": 0.5})

    def full(self, row):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerow", full)
    with pytest.raises(OSError, match=r"train_log\.csv: No space left.*--resume") as info:
        log.write({"step": 2, "loss": 0.4})
    assert info.value.errno == errno.ENOSPC


def test_a_log_row_cut_short_by_a_kill_is_dropped_on_resume(tmp_path: Path) -> None:
    """A run killed while appending a row leaves part of a line; its step may read as an
    earlier one ("1" of "12,..."), and the resumed log kept it as a row of step 1 with the
    other values empty, or stopped on a step that is no number."""
    from advprior.train.logs import CSVLog

    path = tmp_path / "train_log.csv"
    for cut in ("1", "1e", "12,0."):
        path.write_text("step,loss\n1,0.5\n2,0.4\n" + cut, encoding="utf-8")
        log = CSVLog(path, resume_step=2)
        log.write({"step": 3, "loss": 0.3})
        assert path.read_text(encoding="utf-8").splitlines() == [
            "step,loss",
            "1,0.5",
            "2,0.4",
            "3,0.3",
        ], cut


def test_a_run_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    """``advprior train --out a/run`` with ``a`` a file said only "[Errno 20] Not a directory:
    'a/run'"; every other command's output path names the file in the way."""
    (tmp_path / "a").write_text("a file")
    with pytest.raises(NotADirectoryError, match=r"cannot write .*run: .*a is a file, not a"):
        claim_run_folder(tmp_path / "a" / "run", resume=False, overwrite=False)


def test_second_claim_in_the_same_folder_is_refused(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from advprior.train.runfolder import claim_run_folder\n"
        "with claim_run_folder(sys.argv[1], resume=False, overwrite=False):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    other = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert other.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderError, match=rf"pid {other.pid}"):
            claim_run_folder(tmp_path, resume=True, overwrite=False)
    finally:
        other.kill()
        other.wait()


def test_stale_checkpoint_temp_files_are_removed_on_resume(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train_gan(data, out, **KW)
    # a checkpoint write killed midway; the pid may even be alive again (reused): the lock
    # owner is the only writer, so every temp file of another pid is stale
    stale = [out / f".checkpoint.pt.{pid}.0123abcd.tmp" for pid in (_dead_pid(), 1)]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    with pytest.warns(UserWarning, match="interrupted checkpoint write"):
        assert train_gan(data, out, resume=True, **{**KW, "steps": 2}).step == 2
    assert not any(p.exists() for p in stale)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


# --- round 9: what a user hit (the GMM's folder, --overwrite, devices, damaged files) ---------


def test_a_gmm_fit_claims_its_folder_like_the_trainers(data: Path, tmp_path: Path) -> None:
    """``--model gmm`` into a GAN's run folder silently replaced its ``model/``; a finished GMM
    fit (``model/``, no checkpoint) is protected too."""
    from advprior.train.gmm import fit_gmm

    gan = tmp_path / "gan"
    train_gan(data, gan, **{**KW, "export": True})
    exported = (gan / "model" / "model.safetensors").read_bytes()
    with pytest.raises(RunFolderError, match="--overwrite"):
        fit_gmm(data, gan, max_iter=2, val_samples=50)
    assert (gan / "model" / "model.safetensors").read_bytes() == exported
    out = tmp_path / "gmm"
    fit_gmm(data, out, max_iter=2, val_samples=50)
    fit_gmm(data, out, max_iter=2, val_samples=50, resume=True)
    with pytest.raises(RunFolderError, match=r"exported model \(model/\)"):
        fit_gmm(data, out, max_iter=2, val_samples=50)
    assert fit_gmm(data, out, max_iter=2, val_samples=50, overwrite=True).model_dir is not None
    # a GMM has no checkpoint: resuming refits (train_release.sh reruns every model so)
    assert fit_gmm(data, out, max_iter=2, val_samples=50, resume=True).model_dir is not None
    assert not (out / LOCK_NAME).exists()


def test_resume_never_trains_another_model_type_or_settings_over_a_run(
    data: Path, tmp_path: Path
) -> None:
    """``--resume`` continues the run that is there: another model type trained into the
    folder replaced its exported model (data loss), and a GMM refit with another seed or
    other data replaced it without a word."""
    from advprior.train.gmm import fit_gmm

    gan, gmm = tmp_path / "gan", tmp_path / "gmm"
    train_gan(data, gan, **{**KW, "export": True})
    fit_gmm(data, gmm, max_iter=2, val_samples=50)
    kept = {p: (p / "model" / "model.safetensors").read_bytes() for p in (gan, gmm)}
    with pytest.raises(RunFolderError, match="holds a gan run, not a gmm one"):
        fit_gmm(data, gan, max_iter=2, val_samples=50, resume=True)
    with pytest.raises(RunFolderError, match="holds a gmm run, not a gan one"):
        train_gan(data, gmm, resume=True, **{**KW, "export": True})
    with pytest.raises(RunFolderError, match="holds a gan run, not a vae one"):
        train_vae(data, gan, resume=True, steps=1, batch_size=16, val_every=0, **FAST)
    with pytest.raises(RunFolderError, match=r"seed 0 -> 3; pass --overwrite"):
        fit_gmm(data, gmm, max_iter=2, val_samples=50, seed=3, resume=True)
    other = _write_dataset(tmp_path / "other.npz", seed=5)
    with pytest.raises(RunFolderError, match="data_sha256"):
        fit_gmm(other, gmm, max_iter=2, val_samples=50, resume=True)
    assert all((p / "model" / "model.safetensors").read_bytes() == b for p, b in kept.items())
    assert not any((p / LOCK_NAME).exists() for p in (gan, gmm))
    # the GMM's own iteration budget may change on a refit, as a network's steps may
    assert fit_gmm(data, gmm, max_iter=3, val_samples=50, resume=True).model_dir is not None


def test_overwrite_clears_the_earlier_runs_checkpoint_model_and_events(
    data: Path, tmp_path: Path
) -> None:
    """An interrupted ``--overwrite`` run must not leave the old checkpoint (``--resume`` would
    continue the old run), model or TensorBoard events beside its own."""
    out = tmp_path / "run"
    train_gan(data, out, **{**KW, "export": True})
    (out / "tb").mkdir(exist_ok=True)
    (out / "tb" / "events.out.tfevents.1.old.1.0").write_text("x")  # SummaryWriter's naming
    folder = claim_run_folder(out, resume=False, overwrite=True)
    assert (out / ckpt.CHECKPOINT_NAME).exists()  # kept until the new run can start
    folder.start_over()  # what the trainers call once data and models are ready
    folder.release()
    assert not (out / ckpt.CHECKPOINT_NAME).exists()
    assert not (out / "model").exists() and not (out / "tb").exists()
    assert not (out / "train_log.csv").exists()


def test_a_folder_of_the_users_own_logs_is_never_written_over(
    data: Path, tmp_path: Path, capsys
) -> None:
    """``--out`` at a folder that is not a run (no checkpoint, no ``model/``) but holds a file
    named ``train_log.csv`` or ``val_log.csv`` had it replaced by the new run's log, with or
    without ``--overwrite``; a run's own log (of a run killed before its first checkpoint) is
    still replaced."""
    from advprior.train.gmm import fit_gmm

    out = tmp_path / "mine"
    out.mkdir()
    mine = {"train_log.csv": b"date,kg\n2026-01-01,70.5\n", "val_log.csv": b"\x89PNG\r\n\x1a\n"}
    for name, text in mine.items():
        (out / name).write_bytes(text)
        # --resume without a checkpoint starts a new run too (train_release.sh relies on it)
        for flag in ({}, {"overwrite": True}, {"resume": True}):
            with pytest.raises(RunFolderError, match=f"{name} is not a log of an advprior run"):
                train_gan(data, out, **flag, **KW)
            with pytest.raises(RunFolderError, match=name):
                train_vae(data, out, **flag, steps=1, batch_size=16, **FAST)
        args = ["train", "--data", str(data), "--out", str(out), "--steps", "1", "--no-progress"]
        for flag in ([], ["--resume"]):
            assert cli.main([*args, *flag]) == 1
            err = capsys.readouterr().err
            assert err.startswith("advprior train: error: ") and len(err.strip().splitlines()) == 1
        assert (out / name).read_bytes() == text
        assert sorted(p.name for p in out.iterdir()) == [name]  # nothing else written
        (out / name).unlink()
    # a GMM fit writes no CSV log, so it may share the folder (but not replace it)
    (out / "train_log.csv").write_bytes(mine["train_log.csv"])
    fit_gmm(data, out, max_iter=2, val_samples=50)
    with pytest.raises(RunFolderError, match="is not a log"):
        fit_gmm(data, out, max_iter=2, val_samples=50, overwrite=True)
    assert (out / "train_log.csv").read_bytes() == mine["train_log.csv"]
    # a run killed before its first checkpoint leaves its own logs: a new run replaces them
    run = tmp_path / "run"
    train_gan(data, run, **KW)
    (run / ckpt.CHECKPOINT_NAME).unlink()
    (run / "val_log.csv").write_text("")  # killed as it opened the file
    assert train_gan(data, run, **KW).step == 1
    assert train_gan(data, run, resume=True, **{**KW, "steps": 2}).step == 2


def test_overwrite_removes_only_event_files_from_a_tb_folder(data: Path, tmp_path: Path) -> None:
    """``--overwrite`` into a folder that was not a run deleted a ``tb/`` of the user's own,
    whatever it held; a run writes only event files there, so only those go."""
    out = tmp_path / "mine"
    (out / "tb" / "plots").mkdir(parents=True)
    (out / "tb" / "plots" / "loss.png").write_bytes(b"png")
    (out / "tb" / "README.md").write_text("my notes")
    (out / "tb" / "events.out.tfevents.1.old.1.0").write_text("x")
    train_gan(data, out, overwrite=True, **KW)
    assert sorted(p.name for p in (out / "tb").iterdir()) == ["README.md", "plots"]
    assert (out / "tb" / "plots" / "loss.png").read_bytes() == b"png"


def test_a_model_folder_of_the_users_own_is_never_deleted(
    data: Path, tmp_path: Path, capsys
) -> None:
    """A ``model/`` was taken for an earlier run's export whatever it held, and the refusal
    advised ``--overwrite``, which deleted it (a project's body model files, say). Only a
    folder of an export's own files is an earlier run's."""
    from advprior.train.gmm import fit_gmm

    out = tmp_path / "project"
    (out / "model" / "smpl").mkdir(parents=True)
    (out / "model" / "smpl" / "SMPL_NEUTRAL.npz").write_bytes(b"body model")
    (out / "model" / "config.json").write_text("{}")
    for flag in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(RunFolderError, match=r"not an exported advprior model \(smpl\)"):
            train_gan(data, out, **flag, **KW)
        with pytest.raises(RunFolderError, match="not an exported"):
            fit_gmm(data, out, max_iter=2, val_samples=50, **flag)
    args = ["train", "--data", str(data), "--out", str(out), "--steps", "1", "--no-progress"]
    assert cli.main([*args, "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("advprior train: error: ") and len(err.strip().splitlines()) == 1
    assert "--overwrite" not in err  # the advice that deleted it
    assert (out / "model" / "smpl" / "SMPL_NEUTRAL.npz").read_bytes() == b"body model"
    assert sorted(p.name for p in out.iterdir()) == ["model"]
    # a file named model is not an export either; a run's own export is still replaced
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "model").write_text("x")
    with pytest.raises(RunFolderError, match="not an exported"):
        train_gan(data, tmp_path / "f", **KW)
    run = tmp_path / "run"
    train_gan(data, run, **{**KW, "export": True})
    (run / "model" / ".DS_Store").write_bytes(b"")  # a file browser's, not the user's work
    (run / "model" / ".ipynb_checkpoints").mkdir()
    assert train_gan(data, run, resume=True, **{**KW, "steps": 2, "export": True}).step == 2
    assert train_gan(data, run, overwrite=True, **{**KW, "export": True}).model_dir is not None


def test_train_device_errors_are_one_line(data: Path, tmp_path: Path, capsys) -> None:
    import torch

    if torch.cuda.is_available():
        device = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU
    else:
        device = "cuda"
    args = ["train", "--data", str(data), "--out", str(tmp_path / "r"), "--steps", "1"]
    assert cli.main([*args, "--device", device]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--device" in err
    assert cli.main([*args, "--device", "bogus"]) == 2
    assert "is not a torch device" in capsys.readouterr().err
    # well-formed names that cannot train here: one line, exit 2, nothing written (they were
    # "unexpected" errors, exit 1, after the run folder and its tb/ were made)
    for device, says in (("meta", "holds no values"), ("ipu", "cannot make tensors on 'ipu'")):
        assert cli.main([*args, "--device", device]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and says in err, err
        assert not (tmp_path / "r").exists()
    # the Python API refuses meta before claiming the folder
    from advprior.train.gan import train_gan

    with pytest.raises(ValueError, match="meta"):
        train_gan(data, tmp_path / "api", steps=1, device="meta")
    assert not (tmp_path / "api").exists()


def test_damaged_or_unsplit_dataset_files(data: Path, tmp_path: Path) -> None:
    import numpy as np

    from advprior.data.dataset import load_dataset
    from advprior.train.poses import load_training_poses

    cut = tmp_path / "cut.npz"
    cut.write_bytes(data.read_bytes()[: len(data.read_bytes()) // 2])
    with pytest.raises(ValueError, match="not a dataset .npz"):
        load_dataset(cut)
    with np.load(data) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["split"] = np.zeros_like(arrays["split"])  # no validation rows
    np.savez(tmp_path / "unsplit.npz", **arrays)
    with pytest.warns(UserWarning, match="no validation split.*optimistic"):
        poses = load_training_poses(tmp_path / "unsplit.npz")
    assert "every 20th" in poses.description["validation"]


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        ("GANConfig", {"steps": -1}, "steps must be an int >= 1"),
        ("GANConfig", {"batch_size": 0}, "batch_size"),
        ("GANConfig", {"latent": "foo"}, "latent must be one of"),
        ("GANConfig", {"betas": (0.5,)}, "betas must be two numbers"),
        ("GANConfig", {"val_every": -5}, "val_every must be an int >= 0"),
        ("VAEConfig", {"lr": 0.0}, "lr must be > 0"),
        ("VAEConfig", {"val_samples": 0}, "val_samples"),
        ("GMMConfig", {"num_components": 0}, "num_components"),
    ],
)
def test_bad_settings_fail_before_a_folder_is_claimed(
    data: Path, tmp_path: Path, cls: str, kwargs: dict, match: str
) -> None:
    """Settings are checked when made: nothing is created (they used to fail after the run
    folder was claimed and the data read, leaving an empty run folder, or as a bare
    IndexError)."""
    import advprior.train.config as config

    with pytest.raises(ValueError, match=match):
        getattr(config, cls)(**kwargs)
    out = tmp_path / "run"
    train = {"GANConfig": train_gan, "VAEConfig": train_vae}.get(cls)
    if train is not None:
        with pytest.raises(ValueError, match=match):
            train(data, out, **kwargs)
        assert not out.exists()


# --- round 11 audit: a researcher's own data ------------------------------------------------


def test_overwrite_that_fails_to_start_keeps_the_earlier_run(data: Path, tmp_path: Path) -> None:
    """``--overwrite`` with a setting the data refuses (a batch larger than the training split,
    a missing data file) deleted the earlier run's checkpoint and model, then failed: the old
    run was lost to a typo. The earlier run is removed only once the new run can start."""
    from advprior.train.gmm import fit_gmm

    out = tmp_path / "run"
    train_gan(data, out, **{**KW, "export": True})
    saved = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="lower --batch-size"):
        train_gan(data, out, overwrite=True, **{**KW, "batch_size": 100_000})
    with pytest.raises(ValueError, match="lower --batch-size"):
        train_vae(data, out, overwrite=True, steps=1, batch_size=100_000, val_every=0, **FAST)
    with pytest.raises(FileNotFoundError):
        fit_gmm(tmp_path / "missing.npz", out, max_iter=2, val_samples=50, overwrite=True)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == saved
    # a GMM over the GAN's folder: none of the GAN's files (its logs included) stay beside it
    fit_gmm(data, out, max_iter=2, val_samples=50, overwrite=True)
    assert not (out / ckpt.CHECKPOINT_NAME).exists()
    assert not (out / "train_log.csv").exists() and not (out / "val_log.csv").exists()


def test_a_full_disk_during_a_checkpoint_says_so_and_keeps_the_last_one(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's zip writer reported a failed write as "RuntimeError: unexpected pos ..."."""
    import errno

    import advprior.train.checkpoint as checkpoint_module

    out = tmp_path / "run"
    train_gan(data, out, **KW)
    before = (out / "checkpoint.pt").read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module.os, "fsync", full)
    with pytest.raises(OSError, match=r"cannot write .*checkpoint\.pt: No space"):
        train_gan(data, out, resume=True, **{**KW, "steps": 2})
    monkeypatch.undo()
    assert (out / "checkpoint.pt").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert not (out / LOCK_NAME).exists()


@pytest.mark.parametrize(
    "log, match",
    [
        (b"step,loss\nabc,1\n", r"train_log\.csv line 2: could not convert string to float"),
        (b"step,loss\ninf,1\n", r"train_log\.csv line 2: cannot convert float infinity"),
        (b"loss\n1\n", r"train_log\.csv line 2: no 'step' column"),
        (b"step,loss\n1,\xe9\n", r"train_log\.csv: 'utf-8' codec can't decode"),
    ],
    ids=["text", "inf", "no-step", "latin-1"],
)
def test_resuming_with_a_damaged_log_names_it_and_writes_nothing(
    data: Path, tmp_path: Path, log: bytes, match: str
) -> None:
    """Resuming read the log's steps unguarded: a bare 'could not convert string to float'
    (or KeyError, OverflowError, UnicodeDecodeError) naming neither the file nor the way out."""
    out = tmp_path / "run"
    train_gan(data, out, **KW)
    (out / "train_log.csv").write_bytes(log)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RunFolderError, match=match):
        train_gan(data, out, resume=True, **{**KW, "steps": 2})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_gmm_refit_over_a_damaged_fit_record_is_not_a_crash(data: Path, tmp_path: Path) -> None:
    """gmm_fit.json is compared on --resume and skipped when unreadable, but JSON nested too
    deep (a RecursionError) or a list holding "seed" (indexed by it: TypeError) escaped."""
    from advprior.train.gmm import fit_gmm

    out = tmp_path / "gmm"
    fit_gmm(data, out, max_iter=2, val_samples=50)
    for text in ("[" * 100_000 + "]" * 100_000, '["seed"]'):
        (out / "gmm_fit.json").write_text(text)
        assert fit_gmm(data, out, max_iter=2, val_samples=50, resume=True).model_dir is not None


@pytest.mark.parametrize("name", [LOCK_NAME, "model/config.json"])
def test_run_folder_json_nested_too_deep_is_unreadable_not_a_crash(
    data: Path, tmp_path: Path, name: str
) -> None:
    """The run's lock and its model/config.json are read where an unreadable one is expected
    (a lock taken over, no model type to compare), but JSON nested too deep raised json's
    RecursionError, which those readers did not catch."""
    out = tmp_path / "run"
    train_gan(data, out, **KW)
    (out / name).parent.mkdir(exist_ok=True)
    (out / name).write_text("[" * 100_000 + "]" * 100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a lock without an owner is taken over with a warning
        assert train_gan(data, out, resume=True, **{**KW, "steps": 2}).step == 2
