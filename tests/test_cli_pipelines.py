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
