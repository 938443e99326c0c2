"""Every ``advprior`` sub-command answers bad input with one stderr line and the right exit code:
``advprior <cmd>: error: <message>``; 2 for usage, 1 for failures, 130 for an interrupt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from advprior import cli
from advprior.version import __version__ as advprior_version

REPO = Path(__file__).resolve().parents[1]


def _one_error_line(err: str, command: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"advprior {command}: error: "), err
    for needle in needles:
        assert needle in lines[0], err
    assert "Traceback" not in err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file")
    notjson = tmp_path / "kp.json"
    notjson.write_text("{not json")
    kp = tmp_path / "ok.json"
    # well-formed keypoints (spread over 230 x 460 px) for the cases whose error is elsewhere
    kp.write_text(
        json.dumps({"keypoints": [[[100.0 + 10 * j, 200.0 + 20 * j] for j in range(24)]]})
    )
    nan_init = tmp_path / "naninit.npz"
    np.savez(nan_init, body_pose=np.zeros((1, 63)), transl=np.array([[0.0, 0.0, np.nan]]))
    return {
        "junk": junk,
        "nan_init": nan_init,
        "notjson": notjson,
        "kp": kp,
        "missing": tmp_path / "nope.npz",
        "tmp": tmp_path,
    }


# (argv builder, command, exit code, words the message must contain)
def _fit_init(f: dict[str, Path], init: str) -> list[str]:
    """``advprior fit`` of the keypoints file with ``--init`` the file ``f[init]``."""
    out = str(f["tmp"] / "f.npz")
    return ["fit", str(f["kp"]), "--camera", "1000,500,500", "--prior", "none", "--init",
            str(f[init]), "--out", out]  # fmt: skip


CASES = {
    "sample-unknown-model": (
        lambda f: ["sample", "--model", "gan-zzz", "--out", str(f["tmp"] / "s.npz")],
        "sample",
        1,
        ["gan-zzz"],
    ),
    "sample-negative-n": (lambda f: ["sample", "-n", "-1"], "sample", 2, ["-n must be >= 0"]),
    "export-meta-device": (
        lambda f: ["export", "--output", str(f["tmp"] / "x.pt"), "--device", "meta"],
        "export",
        2,
        ["--device meta"],
    ),
    "sample-png-of-nothing": (
        lambda f: ["sample", "-n", "0", "--png", str(f["tmp"] / "x.png")],
        "sample",
        2,
        ["-n 0 draws none"],
    ),
    "sample-huge-seed": (
        lambda f: ["sample", "--seed", str(2**64), "--out", str(f["tmp"] / "s.npz")],
        "sample",
        2,
        ["--seed must be in [0, 2**63)"],
    ),
    "sample-out-under-a-file": (
        lambda f: ["sample", "-n", "1", "--out", str(f["junk"] / "s.npz")],
        "sample",
        1,
        ["cannot write", "junk.npz is a file, not a folder"],
    ),
    "sample-missing-dir": (
        lambda f: ["sample", "--model", str(f["tmp"] / "no" / "dir")],
        "sample",
        1,
        ["no"],
    ),
    "data-build-missing-input": (
        lambda f: ["data", "build", str(f["missing"]), "--out", str(f["tmp"] / "d.npz")],
        "data build",
        1,
        ["nope.npz"],
    ),
    "data-build-bad-split": (
        lambda f: [
            "data",
            "build",
            str(f["tmp"]),
            "--out",
            str(f["tmp"] / "d.npz"),
            "--split",
            "a,b",
        ],
        "data build",
        2,
        ["--split"],
    ),
    "data-info-missing": (
        lambda f: ["data", "info", str(f["missing"])],
        "data info",
        1,
        ["nope.npz"],
    ),
    "data-info-junk": (
        lambda f: ["data", "info", str(f["junk"])],
        "data info",
        1,
        ["junk.npz", "not a zip archive"],
    ),
    "train-missing-data": (
        lambda f: [
            "train",
            "--data",
            str(f["missing"]),
            "--out",
            str(f["tmp"] / "run"),
            "--model",
            "gmm",
        ],
        "train",
        1,
        ["nope.npz"],
    ),
    "train-junk-data": (
        lambda f: [
            "train",
            "--data",
            str(f["junk"]),
            "--out",
            str(f["tmp"] / "run"),
            "--model",
            "vae",
        ],
        "train",
        1,
        ["junk.npz"],
    ),
    "fit-missing-keypoints": (
        lambda f: ["fit", str(f["missing"]), "--camera", "1000,500,500"],
        "fit",
        1,
        ["no such keypoints file", "nope.npz"],
    ),
    "fit-not-json": (
        lambda f: ["fit", str(f["notjson"]), "--camera", "1000,500,500"],
        "fit",
        1,
        ["kp.json", "JSON"],
    ),
    "fit-init-missing": (
        lambda f: _fit_init(f, "missing"),
        "fit",
        1,
        ["no such --init file: ", "nope.npz"],
    ),
    # numpy's "pickled (object) data ... allow_pickle=" advice, for a tool that never unpickles
    "fit-init-junk": (
        lambda f: _fit_init(f, "junk"),
        "fit",
        1,
        ["--init ", "junk.npz: not a .npz (not a zip archive"],
    ),
    # the fit's own check said "init_transl contains NaN or Inf values": no file, no key
    "fit-init-nan": (
        lambda f: _fit_init(f, "nan_init"),
        "fit",
        1,
        ["--init ", "naninit.npz: init_transl contains NaN", "the file's transl"],
    ),
    "sample-alias-typo": (
        lambda f: ["sample", "--model", "GAN_S", "--out", str(f["tmp"] / "s.npz")],
        "sample",
        1,
        ["'GAN_S'", "did you mean 'gan-s'?"],
    ),
    "fit-bad-camera": (lambda f: ["fit", str(f["kp"]), "--camera", "x,y"], "fit", 2, ["--camera"]),
    **{
        f"train-threads-{n}": (
            lambda f, n=n: [
                "train",
                "--data",
                str(f["junk"]),
                "--out",
                str(f["tmp"]),
                f"--threads={n}",
            ],
            "train",
            2,
            [f"--threads must be at least 1, got {n}"],
        )
        for n in (0, -1)
    },
    "fit-missing-body-model": (
        lambda f: [
            "fit",
            str(f["kp"]),
            "--camera",
            "1000,500,500",
            "--prior",
            "none",
            "--body-model",
            str(f["tmp"] / "nobody.pkl"),
        ],
        "fit",
        1,
        ["nobody.pkl"],
    ),
    "eval-missing-data": (
        lambda f: [
            "eval",
            "--models",
            "gmm",
            "--data",
            str(f["missing"]),
            "--out",
            str(f["tmp"] / "ev"),
        ],
        "eval",
        1,
        ["nope.npz"],
    ),
    "eval-unknown-model": (
        lambda f: [
            "eval",
            "--models",
            "gan-zzz",
            "--data",
            str(f["junk"]),
            "--out",
            str(f["tmp"] / "ev"),
        ],
        "eval",
        1,
        [],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line(case: str, files, capsys) -> None:
    argv, command, code, needles = CASES[case]
    assert cli.main(argv(files)) == code
    captured = capsys.readouterr()
    _one_error_line(captured.err, command, *needles)


def test_usage_errors_from_argparse_exit_2(capsys) -> None:
    for argv in (["sample", "-n", "many"], ["nosuchcommand"], ["fit"], ["data"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
        assert "error:" in capsys.readouterr().err


def test_sample_writes_nothing_when_its_png_cannot_be_written(files, capsys) -> None:
    """The .npz was written before the PNG failed: exit 1, yet a new file (or an old one
    replaced) at --out."""
    out = files["tmp"] / "s.npz"
    argv = ["sample", "-n", "1", "--out", str(out), "--png", str(files["junk"] / "x.png")]
    assert cli.main(argv) == 1
    _one_error_line(capsys.readouterr().err, "sample", "junk.npz is a file, not a folder")
    assert not out.exists()


@pytest.mark.parametrize("sequence", [False, True])
def test_fit_checks_its_outputs_before_fitting(files, monkeypatch, capsys, sequence) -> None:
    """--out and --amass were written only after the whole fit, --amass after --out: a bad
    --amass failed (exit 1) after minutes of fitting, with --out already written or replaced."""
    import advprior.fitting

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted although an output cannot be written")

    monkeypatch.setattr(advprior.fitting, "fit_keypoints", no_fit)
    monkeypatch.setattr(advprior.fitting, "fit_sequence", no_fit)
    blocked = files["tmp"] / "afile"
    blocked.write_text("")
    out = files["tmp"] / "ok.npz"
    out.write_bytes(b"the previous fit")
    argv = ["fit", str(files["kp"]), "--camera", "1000,500,500", "--prior", "none"]
    if sequence:
        argv += ["--sequence", "--fps", "30", "--amass", str(blocked / "a.npz")]
        argv += ["--out", str(out)]
    else:
        argv += ["--out", str(blocked / "x.npz")]
    assert cli.main(argv) == 1
    _one_error_line(capsys.readouterr().err, "fit", "cannot write", "afile is a file, not a folder")
    assert out.read_bytes() == b"the previous fit"


def test_interrupt_exits_130(monkeypatch, capsys) -> None:
    import advprior.commands.sample as sample

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(sample, "run", interrupted)
    assert cli.main(["sample"]) == 130
    _one_error_line(capsys.readouterr().err, "sample", "interrupted")


def test_an_unexpected_error_is_still_one_line(monkeypatch, capsys) -> None:
    import advprior.commands.sample as sample

    def broken(args):
        raise TypeError("something nobody foresaw")

    monkeypatch.setattr(sample, "run", broken)
    monkeypatch.delenv("ADVPRIOR_DEBUG", raising=False)
    assert cli.main(["sample"]) == 1
    _one_error_line(capsys.readouterr().err, "sample", "TypeError: something nobody", "--debug")
    assert cli.main(["sample", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(
    "camera",
    [
        {"focal": "a", "center": [500, 500]},
        {"K": "abc"},
        {"focal": 1000, "center": [500, 500], "rotation": {"a": 1}},
        {"focal": {"x": 1}, "center": [500, 500]},
    ],
)
def test_wrong_types_in_a_camera_file_name_the_file(tmp_path: Path, camera, capsys) -> None:
    kp = [[[400 + 10 * j, 300 + 15 * j] for j in range(24)]]
    for where in ("file", "keypoints"):
        data = {"format": "smpl24", "keypoints": kp}
        if where == "keypoints":
            data["camera"] = camera
        (tmp_path / "kp.json").write_text(json.dumps(data))
        (tmp_path / "cam.json").write_text(json.dumps(camera))
        argv = ["fit", str(tmp_path / "kp.json"), "--out", str(tmp_path / "f.npz")]
        argv += ["--camera", str(tmp_path / "cam.json")] if where == "file" else []
        assert cli.main(argv) == 1
        name = "cam.json" if where == "file" else "kp.json"
        _one_error_line(capsys.readouterr().err, "fit", f"{name}: camera: ")
        assert not (tmp_path / "f.npz").exists()


def test_debug_flag_and_environment_show_the_traceback(files, monkeypatch, capsys) -> None:
    argv = ["data", "info", str(files["missing"])]
    monkeypatch.delenv("ADVPRIOR_DEBUG", raising=False)
    for extra, env in ((["--debug"], None), ([], "1")):
        if env is not None:
            monkeypatch.setenv("ADVPRIOR_DEBUG", env)
        assert cli.main([*extra, *argv]) == 1
        err = capsys.readouterr().err
        assert "Traceback" in err and err.strip().splitlines()[-1].startswith(
            "advprior data info: error: "
        )
    monkeypatch.setenv("ADVPRIOR_DEBUG", "1")
    assert cli.main([*argv, "--debug"]) == 1  # after the sub-command too
    assert "Traceback" in capsys.readouterr().err


def test_real_entry_point_in_a_subprocess(files) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ADVPRIOR_DEBUG", None)
    base = [sys.executable, "-m", "advprior.cli"]
    res = subprocess.run(
        [*base, "data", "info", str(files["junk"])],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert res.returncode == 1
    _one_error_line(res.stderr, "data info", "junk.npz")
    res = subprocess.run([*base, "sample", "-n", "x"], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "advprior sample: error:" in res.stderr


def test_unwritable_output_is_one_line(files, capsys) -> None:
    blocked = files["tmp"] / "file-not-folder"
    blocked.write_text("")
    assert cli.main(["sample", "-n", "1", "--out", str(blocked / "s.npz")]) == 1
    _one_error_line(capsys.readouterr().err, "sample")
    assert not (blocked / "s.npz").exists()


def test_hostile_json_and_npz_inputs_are_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    """Nesting too deep for Python's JSON reader, and a pickled member in a dataset npz."""
    import numpy as np

    from advprior import PosePrior

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"keypoints": [[[1.0, 2.0]] * 24]}))
    PosePrior(latent_dim=8, hidden_dim=16).save_pretrained(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text(deep.read_text())
    pickled = tmp_path / "ds.npz"
    arrays = {k: np.zeros((2, n)) for k, n in (("body_pose", 63), ("global_orient", 3),
                                               ("transl", 3))}  # fmt: skip
    np.savez(pickled, **arrays, sequence=np.zeros(2), subject=np.zeros(2), split=np.zeros(2),
             sequence_names=np.array(["a"]), subject_names=np.array(["a"]),
             split_names=np.array(["train", "val", "test"]), fps=np.array(30.0),
             meta=np.array({"x": 1}, dtype=object))  # fmt: skip
    cases = [
        (["fit", str(deep), "--camera", "1000,500,500"], "fit", "deep.json"),
        (["fit", str(ok), "--camera", str(deep)], "fit", "deep.json"),
        (["sample", "--model", str(tmp_path / "ck"), "--out", str(tmp_path / "s.npz")],
         "sample", "config.json"),
        (["data", "info", str(pickled)], "data info", "ds.npz"),
    ]  # fmt: skip
    for argv, command, name in cases:
        assert cli.main(argv) == 1
        _one_error_line(capsys.readouterr().err, command, name)
    monkeypatch.setenv("ADVPRIOR_MANIFEST", str(deep))
    assert cli.main(["sample", "--out", str(tmp_path / "s.npz")]) == 1
    _one_error_line(capsys.readouterr().err, "sample", "manifest")


@pytest.mark.parametrize(
    "command", [[], ["sample"], ["fit"], ["export"], ["train"], ["eval"], ["data", "build"]]
)
def test_help_is_plain_text(command: list[str], capsys: pytest.CaptureFixture) -> None:
    """The help texts come from docstrings; Sphinx markup (``code``, :class:`~x.Y`, ``::``)
    reads as plain words in a terminal."""
    with pytest.raises(SystemExit) as stop:
        cli.main([*command, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: advprior")
    for markup in ("``", ":class:`", ":func:`", ":meth:`", ":mod:`", ":data:`", "::\n"):
        assert markup not in text, (markup, text)


def test_plain_text_keeps_the_words() -> None:
    text = ":class:`~advprior.errors.UsageError` or :func:`advprior.fit` (``x``), layout::"
    assert cli.plain_text(text) == "UsageError or advprior.fit (x), layout:"


def test_an_unreachable_hub_does_not_add_lines_to_the_answer(tmp_path: Path) -> None:
    """huggingface_hub logs a warning per retry when the Hub is unreachable; the CLI silences
    them so its error stays one line (``--debug`` keeps them). Checked on the logger's level,
    since waiting out the real retries takes ~25 s."""
    import logging

    hub = logging.getLogger("huggingface_hub")
    before = hub.level
    try:
        hub.setLevel(logging.WARNING)
        assert cli.main(["sample", "-n", "1", "--out", str(tmp_path / "s.npz")]) == 0
        assert hub.getEffectiveLevel() >= logging.ERROR
        hub.setLevel(logging.WARNING)
        cli.main(["sample", "-n", "1", "--out", str(tmp_path / "s.npz"), "--debug"])
        assert hub.getEffectiveLevel() == logging.WARNING
    finally:
        hub.setLevel(before)


def test_interrupt_while_the_parser_imports_exits_130(monkeypatch, capsys) -> None:
    """Building the parser imports torch (seconds); a Ctrl-C then used to print a traceback."""

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.delenv("ADVPRIOR_DEBUG", raising=False)
    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["sample"]) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["advprior: error: interrupted"], err


def test_python_dash_m_advprior_runs_the_cli(tmp_path: Path) -> None:
    """``python -m advprior``: the usual way in when the console script is not on PATH (a venv
    that is not activated, ``pip install --user`` on Windows)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("ADVPRIOR_DEBUG", None)
    base = [sys.executable, "-m", "advprior"]
    res = subprocess.run(
        [*base, "--version"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"advprior {advprior_version}"
    res = subprocess.run([*base, "sample", "-n", "x"], capture_output=True, text=True, env=env)
    assert res.returncode == 2 and "advprior sample: error:" in res.stderr
