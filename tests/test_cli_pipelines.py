"""``advprior`` inside scripts and pipelines: stdout carries only each command's answer (progress
and validation lines go to stderr), a log file gets whole lines rather than a carriage-return
progress bar, and a reader that closes stdout early (``| head -1``) stops a command quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_runs import _write_dataset

from advprior import cli
from advprior.train.logs import LineProgress

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_dataset(tmp_path_factory.mktemp("data") / "d.npz", n=200)


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("ADVPRIOR_DEBUG", None)
    return env


def test_a_reader_that_closes_stdout_early_stops_the_command_quietly(data: Path) -> None:
    """``advprior data info F | head -1``: no "[Errno 32] Broken pipe" error line (it read as a
    failure of the command), and 141 as for any Unix tool whose reader went away."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes its first line
    try:
        res = subprocess.run(
            [sys.executable, "-m", "advprior", "data", "info", str(data)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert res.stderr == ""
    assert res.returncode == cli.EXIT_BROKEN_PIPE == 141


def test_a_broken_pipe_that_is_not_stdout_is_still_an_error(monkeypatch, capsys) -> None:
    """Only a closed stdout is quiet: the same error from another pipe is reported."""
    from advprior.commands import sample

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sample, "run", broken)
    assert cli.main(["sample", "-n", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("advprior sample: error: ") and "Broken pipe" in err


def test_train_stdout_is_its_json_line_and_its_log_has_no_carriage_returns(
    data: Path, tmp_path: Path, capsys
) -> None:
    """``advprior train ... > result.json`` (stderr a log file, as in a batch job): stdout is the
    closing JSON line only, the validation lines and progress are whole lines on stderr."""
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "2"]
    args += ["--batch-size", "16", "--d-steps", "1", "--hidden", "16", "--disc-hidden", "16"]
    args += ["--val-every", "1", "--val-samples", "50", "--ckpt-every", "0", "--device", "cpu"]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)  # the whole of stdout: one JSON document
    assert result["steps"] == 2
    assert "\r" not in err
    for step in (0, 1, 2):
        assert f"step {step}: recall_mean_mm=" in err
    assert "train: step 2/2 (100%)" in err


def test_line_progress_writes_a_line_per_interval_and_one_at_the_end(capsys) -> None:
    bar = LineProgress(total=10, initial=2, interval=3600.0)
    for _ in range(8):
        bar.update(1)
        bar.set_postfix({"loss": "0.5"})
    assert capsys.readouterr().err == ""  # within the interval: nothing yet
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("train: step 10/10 (100%), ")
    assert lines[0].endswith(", loss=0.5")
    every = LineProgress(total=3, interval=0.0)
    for _ in range(3):
        every.update(1)
    every.close()  # the last step was shown already
    err = capsys.readouterr().err
    assert [line.split(",")[0] for line in err.splitlines()] == [
        "train: step 1/3 (33%)",
        "train: step 2/3 (67%)",
        "train: step 3/3 (100%)",
    ]


def test_eval_answers_in_one_stdout_line_with_progress_on_stderr(
    data: Path, tmp_path: Path, capsys
) -> None:
    """``advprior eval`` printed its progress on stdout (``eval --tasks`` on stderr), so
    ``advprior eval ... | head -1`` stopped the evaluation at its second line."""
    out = tmp_path / "ev"
    args = ["eval", "--models", "gmm", "--data", str(data), "--out", str(out), "--quick"]
    args += ["--samples", "50", "--vertex-samples", "10", "--queries", "10", "--reference"]
    args += ["50", "--vertices", "16", "--pairs", "1", "--steps", "3", "--fit-frames", "0"]
    assert cli.main(args) == 0
    stdout, err = capsys.readouterr()
    assert stdout.splitlines() == [
        f"evaluated gmm on the test split -> {tmp_path / 'ev.md'}, {out / 'results.json'}"
    ]
    assert "[eval " in err and "gmm: recall" in err
    assert (out / "results.json").is_file()


# (command, flag, bad value, words of the message): each is a usage error (exit 2) naming the
# flag, raised before any file is read; before, most were exit 1 in the library's words
# ("max_iter", "hidden_dim", "smoothness.latent ... -100000.0"), some trained on or misled.
TRAIN = ["train", "--out", "{tmp}/run", "--data", "{tmp}/no-such.npz"]
FIT = ["fit", "{tmp}/no-such.json", "--camera", "1000,500,500"]
BUILD = ["data", "build", "{tmp}/no-such-folder", "--out", "{tmp}/d.npz"]
BAD_NUMBERS = [
    (TRAIN, "--steps", "0", "--steps must be at least 1, got 0"),
    (TRAIN + ["--model", "gmm"], "--steps", "-1", "--steps must be at least 1, got -1"),
    (TRAIN, "--batch-size", "0", "--batch-size must be at least 1"),
    (TRAIN, "--hidden", "0", "--hidden must be at least 1"),
    (TRAIN, "--val-every", "-1", "--val-every must be at least 0"),
    (TRAIN, "--val-samples", "0", "--val-samples must be at least 1"),
    (TRAIN, "--ckpt-every", "-1", "--ckpt-every must be at least 0"),
    (TRAIN, "--d-steps", "0", "--d-steps must be at least 1"),
    (TRAIN, "--disc-hidden", "0", "--disc-hidden must be at least 1"),
    (TRAIN, "--disc-pack", "0", "--disc-pack must be at least 1"),
    (TRAIN, "--ema", "1", "--ema must be a number in [0, 1), got 1"),
    (TRAIN, "--r1", "nan", "--r1 must be a finite number >= 0, got nan"),
    (TRAIN, "--cycle", "-1", "--cycle must be a finite number >= 0"),
    (TRAIN, "--coverage", "inf", "--coverage must be a finite number >= 0"),
    (TRAIN, "--pose-mix", "2", "--pose-mix must be a number in [0, 1], got 2"),
    (TRAIN, "--leg-mix", "nan", "--leg-mix must be a number in [0, 1]"),
    (TRAIN, "--generator-lr", "0", "--generator-lr must be a finite number > 0"),
    (FIT, "--iterations", "0", "--iterations must be at least 1, got 0"),
    (FIT, "--window", "1", "--window must be at least 2, got 1"),
    (FIT, "--sigma", "nan", "--sigma must be a finite number > 0, got nan"),
    (FIT, "--pose-weight", "-1", "--pose-weight must be a finite number >= 0, got -1"),
    (FIT, "--smoothness", "-1", "--smoothness must be a finite number >= 0, got -1"),
    (BUILD, "--fps", "nan", "--fps must be a finite number > 0, got nan"),
    (BUILD, "--fps", "0", "--fps must be a finite number > 0, got 0"),
    (BUILD, "--source-fps", "*.bvh=0", "--source-fps *.bvh= must be a finite number > 0"),
    (BUILD, "--split", "0.8,0.1,nan", "--split takes three numbers >= 0"),
]


@pytest.mark.parametrize(("base", "flag", "value", "message"), BAD_NUMBERS)
def test_a_bad_number_is_a_usage_error_naming_its_flag(
    base: list[str], flag: str, value: str, message: str, tmp_path: Path, capsys
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in base] + [f"{flag}={value}"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert list(tmp_path.iterdir()) == []  # nothing made: no run folder, no output


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"disc_hidden_dim": 0}, "disc_hidden_dim must be an int >= 1"),
        ({"r1_gamma": float("nan")}, "r1_gamma must be a finite number >= 0"),
        ({"coverage_weight": float("inf")}, "coverage_weight must be a finite number >= 0"),
    ],
)
def test_gan_settings_refuse_an_empty_critic_and_nan_weights(settings, message) -> None:
    """``train_gan(disc_hidden_dim=0)`` trained an empty critic; a NaN weight trained on NaN
    losses and failed only when exporting."""
    from advprior.train.config import GANConfig

    with pytest.raises(ValueError, match=message):
        GANConfig(**settings)


# SIGTERM arrives while sample's .npz is half written (its temporary file exists); the script
# runs in a child process, which the default SIGTERM handler would end.
SIGTERM_MID_WRITE = """
import os, signal, sys, time
import numpy as np
from advprior import cli

real = np.savez

def savez_then_terminated(f, **arrays):
    real(f, **arrays)
    os.kill(os.getpid(), signal.SIGTERM)  # `timeout`, `kill`, a workflow manager
    time.sleep(60)

np.savez = savez_then_terminated
before = signal.getsignal(signal.SIGTERM)
code = cli.main(["sample", "-n", "2", "--model", "gmm", "--out", sys.argv[1]])
assert signal.getsignal(signal.SIGTERM) is before  # main's caller gets its handler back
sys.exit(code)
"""


def test_sigterm_is_one_line_143_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    out = tmp_path / "out" / "s.npz"
    res = subprocess.run(
        [sys.executable, "-c", SIGTERM_MID_WRITE, str(out)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert res.returncode == cli.EXIT_TERMINATED == 143, res.stderr
    assert res.stderr == "advprior sample: error: terminated (SIGTERM)\n"
    assert list(out.parent.iterdir()) == []  # neither s.npz nor its .s.npz.<pid>.<hex>.tmp


READ_FIFO = (
    "import shutil, sys; shutil.copyfileobj(open(sys.argv[1], 'rb'), open(sys.argv[2], 'wb'))"
)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_an_output_that_is_a_named_pipe_is_written_into_not_replaced(
    tmp_path: Path, capsys
) -> None:
    """``--out /dev/null``, ``--out /dev/stdout`` or a FIFO a pipeline reads: the file was
    written beside it and renamed over it, so a reader got nothing and the device or pipe was
    replaced by a regular file (as root, in a container: /dev/null itself). A FIFO stands in for
    the devices, which a test must not touch."""
    import numpy as np

    fifo = tmp_path / "poses.npz"
    os.mkfifo(fifo)
    received = tmp_path / "received.npz"
    reader = subprocess.Popen([sys.executable, "-c", READ_FIFO, str(fifo), str(received)])
    try:
        assert cli.main(["sample", "-n", "3", "--model", "gmm", "--out", str(fifo)]) == 0
        reader.wait(timeout=30)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert fifo.is_fifo()
    with np.load(received) as f:
        assert f["body_pose"].shape == (3, 63)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["poses.npz", "received.npz"]
    capsys.readouterr()


def test_streams_are_told_from_files(tmp_path: Path) -> None:
    from advprior.fileio import check_writable, is_stream

    (tmp_path / "f.npz").write_bytes(b"")
    assert not is_stream(tmp_path / "f.npz") and not is_stream(tmp_path)
    assert not is_stream(tmp_path / "missing.npz")
    assert is_stream(os.devnull)
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "p")
        (tmp_path / "link").symlink_to(tmp_path / "p")
        assert is_stream(tmp_path / "link")  # as /dev/stdout -> /proc/self/fd/1
        # no probe file is made beside a stream (in /dev it failed for a user who is not root)
        assert check_writable(tmp_path / "link") == tmp_path / "link"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npz", "link", "p"]


@pytest.mark.skipif(not Path("/proc/self/fd/1").exists(), reason="Linux's /proc/self/fd")
def test_out_dev_stdout_redirected_to_a_file_gets_the_file_and_the_answer_goes_to_stderr(
    tmp_path: Path,
) -> None:
    """``advprior sample --out /dev/stdout > poses.npz``: the /dev/stdout symlink was replaced
    by a regular file (as root) and poses.npz got only the answer line. A symlink to
    /proc/self/fd/1, which is what /dev/stdout is, stands in for it."""
    import numpy as np

    stdout_link = tmp_path / "stdout"
    stdout_link.symlink_to("/proc/self/fd/1")
    redirected = tmp_path / "poses.npz"
    with open(redirected, "wb") as fh:
        res = subprocess.run(
            [sys.executable, "-m", "advprior", "sample", "-n", "2", "--model", "gmm"]
            + ["--out", str(stdout_link)],
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            timeout=120,
        )
    assert res.returncode == 0, res.stderr
    assert stdout_link.is_symlink()
    with np.load(redirected) as f:
        assert f["body_pose"].shape == (2, 63)
    assert res.stderr.startswith("2 samples from gmm ")


def test_the_bar_is_tqdm_on_a_terminal_or_in_a_notebook_and_lines_elsewhere(
    tmp_path: Path, monkeypatch
) -> None:
    import io
    import types

    from advprior.train.logs import TrainLogger

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: no terminal
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    logger = TrainLogger(tmp_path / "a", 10, 0, tensorboard=False)
    assert isinstance(logger.bar, LineProgress)
    logger.close()
    # a Jupyter kernel's streams are no terminals either, but tqdm.auto draws a widget there
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    logger = TrainLogger(tmp_path / "b", 10, 0, tensorboard=False)
    assert logger.bar is not None and not isinstance(logger.bar, LineProgress)
    logger.close()


def test_a_wrong_data_path_is_named_for_what_it_is_and_makes_no_run_folder(
    tmp_path: Path, capsys
) -> None:
    """``advprior train --data nope.npz`` left an empty run folder (a Makefile's or workflow's
    output then looked made); a folder or a pipe given as the dataset was "no such dataset
    file" although it exists."""
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--model", "gmm", "--data"]
    assert cli.main([*argv, str(tmp_path / "nope.npz")]) == 1
    assert "no such dataset file" in capsys.readouterr().err
    assert not run.exists()
    assert cli.main(["data", "info", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"advprior data info: error: {tmp_path} is a folder, not a dataset file"
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe.npz")  # as `<(cat d.npz)` or /dev/stdin; never opened here
        assert cli.main([*argv, str(tmp_path / "pipe.npz")]) == 1
        assert "is a pipe or device (an .npz is read by seeking)" in capsys.readouterr().err
        assert not run.exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_camera_given_as_a_pipe_is_refused_as_one(tmp_path: Path, capsys) -> None:
    """``--camera <(jq ...)`` was "--camera must be "fx,fy,cx,cy" ... or a JSON file" (exit
    2): it is a file, and the reader's refusal of pipes names it (exit 1)."""
    kp = tmp_path / "kp.json"
    points = [[100.0 + 10 * j, 200.0 + 20 * j] for j in range(24)]
    kp.write_text(json.dumps({"keypoints": [points]}))
    os.mkfifo(tmp_path / "cam")
    assert cli.main(["fit", str(kp), "--camera", str(tmp_path / "cam")]) == 1
    err = capsys.readouterr().err
    assert f"camera file {tmp_path / 'cam'} is not a regular file" in err


def test_a_command_started_with_stdout_closed_still_succeeds(data: Path, monkeypatch) -> None:
    """``advprior data info F >&-`` (cron jobs, daemons): Python then has no ``sys.stdout``."""
    monkeypatch.setattr(sys, "stdout", None)
    assert cli.main(["data", "info", str(data)]) == 0


def test_data_info_counts_the_frames_the_file_holds(tmp_path: Path, write_dataset, capsys) -> None:
    """``data info`` printed the build's record of frames per split (meta), stale for a file
    filtered after its build (here: it records 999 training frames, the file holds 2) and
    empty for one written without advprior's meta, beside the file's true frame count."""
    import numpy as np

    meta = {
        "frames_per_split": {"train": 999, "val": 0, "test": 0},
        "subject_split": {"gone": "train"},
    }
    path = write_dataset(
        tmp_path / "filtered.npz",
        np.zeros((4, 63)),
        np.array([0, 0, 1, 2]),
        subject=np.array([0, 1, 2, 3]),
        subject_names=np.array(["a", "b", "c"]),  # the file carries fewer names than codes
        meta=np.array(json.dumps(meta)),
    )
    assert cli.main(["data", "info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    split_lines = lines[lines.index("frames per split:") + 1 :]
    assert split_lines == [
        "  train         2  (2 subjects: a, b)",
        "  val           1  (1 subject: c)",
        "  test          1  (1 subject: #3)",
    ]
