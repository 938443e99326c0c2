"""Files as Windows and macOS tools write them, paths as users type them, and Windows' file and
process semantics (simulated here: the tests run on Linux).

Text variants are built from the committed fixtures in ``tests/data/mocap`` by rewriting their
bytes: the same poses must come back bitwise, or a clear error naming the file.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from advprior.data import load_motion

FIXTURES = Path(__file__).resolve().parent / "data" / "mocap"

# (name, files copied, index of the file whose bytes are rewritten); the first file is loaded
MOTIONS = {
    "amc": (["cmu_asfamc/02/02_03.amc", "cmu_asfamc/02/02.asf"], 0),
    "asf": (["cmu_asfamc/02/02_03.amc", "cmu_asfamc/02/02.asf"], 1),
    "bvh": (["cmu_bvh_daz_aclstm/martial/04_first60.bvh"], 0),
    "deepmimic": (
        [
            "cmu_deepmimic_retarget_jump/02/02_03.txt",
            "cmu_deepmimic_retarget_jump/humanoid3d_jumper60kg_character.txt",
        ],
        0,
    ),
    "deepmimic-character": (
        [
            "cmu_deepmimic_retarget_jump/02/02_03.txt",
            "cmu_deepmimic_retarget_jump/humanoid3d_jumper60kg_character.txt",
        ],
        1,
    ),
}


def _lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


def _mixed(data: bytes) -> bytes:
    lines = _lf(data).split(b"\n")
    ends = [b"\r\n" if i % 2 else b"\n" for i in range(len(lines) - 1)] + [b""]
    return b"".join(line + end for line, end in zip(lines, ends, strict=True))


# Windows tools: Notepad's UTF-8 with a byte-order mark, CRLF; `copy /a`'s Ctrl-Z; editors that
# keep whatever line end they meet (mixed); no final newline; classic Mac's lone CR.
VARIANTS: dict[str, Callable[[bytes], bytes]] = {
    "lf": _lf,
    "crlf": lambda b: _lf(b).replace(b"\n", b"\r\n"),
    "bom-crlf": lambda b: b"\xef\xbb\xbf" + _lf(b).replace(b"\n", b"\r\n"),
    "mixed": _mixed,
    "ctrl-z": lambda b: _lf(b).replace(b"\n", b"\r\n") + b"\x1a",
    "no-final-newline": lambda b: _lf(b).rstrip(b"\n"),
    "cr-only": lambda b: _lf(b).replace(b"\n", b"\r"),
    # Windows PowerShell 5's Out-File and ">": UTF-16 little-endian with its byte-order mark
    "utf-16": lambda b: b"\xff\xfe" + _lf(b).replace(b"\n", b"\r\n").decode().encode("utf-16-le"),
    "utf-16-be": lambda b: b"\xfe\xff" + _lf(b).decode("utf-8").encode("utf-16-be"),
}


def _copy(tmp_path: Path, files: list[str]) -> list[Path]:
    out = []
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(FIXTURES / rel, tmp_path / rel)
        out.append(tmp_path / rel)
    return out


def _same_motion(a, b) -> None:
    assert a.num_frames == b.num_frames and a.fps == b.fps
    assert a.skeleton.names == b.skeleton.names
    np.testing.assert_array_equal(a.skeleton.offsets, b.skeleton.offsets)
    np.testing.assert_array_equal(a.rotations, b.rotations)
    np.testing.assert_array_equal(a.root_position, b.root_position)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", MOTIONS)
def test_motion_text_as_windows_tools_write_it(tmp_path: Path, kind: str, variant: str) -> None:
    files, rewrite = MOTIONS[kind]
    reference = load_motion(FIXTURES / files[0])
    paths = _copy(tmp_path, files)
    paths[rewrite].write_bytes(VARIANTS[variant](paths[rewrite].read_bytes()))
    _same_motion(load_motion(paths[0]), reference)


# "Å" is c3 85 in UTF-8: read as latin-1, 0x85 is U+0085, a line break to str.splitlines and
# whitespace to str.split; cp1252's "…" is the byte 0x85 itself.
NAMES = ("José Müller Å", "José … Müller")


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", ["amc", "asf"])
def test_acclaim_comments_in_any_windows_encoding(
    tmp_path: Path, kind: str, name: str, encoding: str
) -> None:
    files, rewrite = MOTIONS[kind]
    if not all(ch.encode(encoding, errors="ignore") for ch in name):
        pytest.skip(f"{name!r} has no {encoding} encoding")
    reference = load_motion(FIXTURES / files[0])
    paths = _copy(tmp_path, files)
    comment = b"# actor " + name.encode(encoding) + b" 1 2 3\r\n"
    paths[rewrite].write_bytes(comment + paths[rewrite].read_bytes())
    _same_motion(load_motion(paths[0]), reference)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
@pytest.mark.parametrize("name", ["abdomen_José_Å", "abdomen_José_…"])
def test_bvh_joint_names_in_any_windows_encoding(tmp_path: Path, name: str, encoding: str) -> None:
    """A non-ASCII joint name reads as written (not as mojibake, not split into two words)."""
    if not all(ch.encode(encoding, errors="ignore") for ch in name):
        pytest.skip(f"{name!r} has no {encoding} encoding")
    (path,) = _copy(tmp_path, MOTIONS["bvh"][0])
    reference = load_motion(path)
    text = path.read_bytes().decode("ascii").replace("JOINT abdomen", f"JOINT {name}", 1)
    path.write_bytes(text.encode(encoding))
    motion = load_motion(path)
    assert motion.skeleton.names[1] == name
    np.testing.assert_array_equal(motion.rotations, reference.rotations)
    np.testing.assert_array_equal(motion.root_position, reference.root_position)


def test_deepmimic_in_an_ansi_encoding_is_a_clear_error(tmp_path: Path) -> None:
    from advprior.errors import MotionFormatError

    files, _ = MOTIONS["deepmimic"]
    paths = _copy(tmp_path, files)
    data = paths[0].read_bytes()
    paths[0].write_bytes(data.replace(b'"Loop"', '"Müller":1,"Loop"'.encode("cp1252"), 1))
    with pytest.raises(MotionFormatError, match=r"02_03\.txt.*not UTF-8"):
        load_motion(paths[0])


def test_frame_rate_readme_and_index_csv_from_windows_tools(tmp_path: Path) -> None:
    """A readme saved with a byte-order mark (and Ctrl-Z), and an index table saved by Excel as
    "CSV UTF-8" (which starts with one), still set the rates: the mark used to rename the first
    folder / column, so the rate was silently lost."""
    from advprior.data.dataset import cmu_index_rates, readme_rates

    (tmp_path / "salsa").mkdir()
    clip = tmp_path / "salsa" / "a.bvh"
    readme = b"\xef\xbb\xbfsalsa framerate 60\r\nwalk framerate 30\r\n\x1a"
    (tmp_path / "readme.txt").write_bytes(readme)
    assert readme_rates(clip) == {"salsa": 60.0, "walk": 30.0}
    table = tmp_path / "cmu-index.csv"
    table.write_bytes(b"\xef\xbb\xbfSubject,Trial #,framerate\r\n2,3,60\r\n")
    assert cmu_index_rates([table]) == {(2, 3): 60.0}


@pytest.mark.parametrize("variant", ["bom-crlf", "ctrl-z", "mixed", "cr-only", "utf-16"])
def test_json_files_as_windows_tools_write_them(tmp_path: Path, variant: str) -> None:
    """config.json, weights_manifest.json, camera and detector keypoint files all go through
    ``read_json``."""
    from advprior.fileio import read_json

    doc = {"name": "José", "keypoints": [1.5, 2.25, 0.75], "nested": {"a": [1, 2]}}
    text = json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    path = tmp_path / "données" / "kp.json"
    path.parent.mkdir()
    path.write_bytes(VARIANTS[variant](text))
    assert read_json(path) == doc


def test_json_in_an_ansi_encoding_is_a_clear_error(tmp_path: Path) -> None:
    from advprior.fileio import read_json

    path = tmp_path / "camera.json"
    path.write_bytes('{"name": "José"}'.encode("cp1252"))
    with pytest.raises(ValueError, match=r"camera\.json is not valid JSON.*utf-8"):
        read_json(path)


@pytest.fixture
def ansi_locale(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text files opened without an encoding get cp1252, as on a Windows machine set to a
    Western European locale (Python before 3.15 without UTF-8 mode)."""
    real_open, real_text_encoding = builtins.open, io.text_encoding

    def text_encoding(encoding, stacklevel=2):
        return "cp1252" if encoding is None else real_text_encoding(encoding)

    def ansi_open(file, mode="r", buffering=-1, encoding=None, *args, **kwargs):
        if "b" not in mode and encoding is None:
            encoding = "cp1252"
        return real_open(file, mode, buffering, encoding, *args, **kwargs)

    monkeypatch.setattr(io, "text_encoding", text_encoding)
    monkeypatch.setattr(io, "open", ansi_open)
    monkeypatch.setattr(builtins, "open", ansi_open)


def test_generated_block_keeps_a_utf8_document_under_an_ansi_locale(
    tmp_path: Path, ansi_locale: None
) -> None:
    """Regenerating a block inside a user's UTF-8 Markdown file must not re-encode the rest of
    it (read as cp1252 and written back as UTF-8, "—" became "â€”")."""
    from advprior.eval.benchmark import write_generated_block

    doc = tmp_path / "results.md"
    prose = "# Résultats — Müller ±1 °\n\nsome text\n"
    doc.write_bytes(prose.encode("utf-8"))
    write_generated_block(doc, "advprior eval --tasks", "| a | b |")
    write_generated_block(doc, "advprior eval --tasks", "| c | d |")
    text = doc.read_bytes().decode("utf-8")
    assert text.startswith(prose.rstrip("\n"))
    assert "| c | d |" in text and "| a | b |" not in text


# ------------------------------------------------------------------------------------------
# Paths: spaces, non-ASCII, relative, "~"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder of its own, and a working directory beside it."""
    home = tmp_path / "home Müller"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))  # what expanduser reads on Windows
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


def test_cli_expands_a_tilde_the_shell_left(home: Path, tmp_path: Path) -> None:
    """``--out=~/x.npz`` (bash leaves that ``~``; cmd.exe and PowerShell leave every one) lands
    in the home folder, not in a new folder named ``~``."""
    from advprior.cli import main

    assert main(["sample", "-n", "1", "--out=~/s.npz"]) == 0
    assert (home / "s.npz").is_file()
    assert main(["sample", "-n", "1", "--out", "~/données/s 2.npz"]) == 0
    assert (home / "données" / "s 2.npz").is_file()
    shutil.copyfile(FIXTURES / "cmu_bvh_daz_aclstm/martial/04_first60.bvh", home / "a b.bvh")
    assert main(["data", "build", "~/a b.bvh", "--out=~/d.npz", "--split", "1,0,0"]) == 0
    assert main(["data", "info", "~/d.npz"]) == 0
    assert not (tmp_path / "work" / "~").exists()


def test_save_pretrained_and_from_pretrained_agree_on_tilde(home: Path, tmp_path: Path) -> None:
    import torch

    from advprior import PosePrior

    torch.manual_seed(0)
    prior = PosePrior(latent="sphere")
    prior.save_pretrained("~/models/mine")
    assert (home / "models" / "mine" / "config.json").is_file()
    assert not (tmp_path / "work" / "~").exists()
    back = PosePrior.from_pretrained("~/models/mine")
    z = prior.sample_latent(3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(back.decode(z), prior.eval().decode(z), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:.*has no validation split")
def test_cli_relative_paths_with_spaces_and_non_ascii(home: Path, capsys) -> None:
    """Every command given relative paths with spaces and non-ASCII letters (as on a Windows
    desktop, "C:\\Users\\José\\Mes données")."""
    from advprior.cli import main

    src = Path("mo cap é")
    shutil.copytree(FIXTURES / "cmu_asfamc", src / "cmu")
    data = "données/Müller set.npz"
    assert main(["data", "build", str(src), "--out", data, "--split", "1,0,0"]) == 0
    assert main(["data", "info", data]) == 0
    assert main(["train", "--model", "gmm", "--data", data, "--out", "run ö", "--steps", "2"]) == 0
    assert Path("run ö/model/config.json").is_file()
    assert main(["sample", "-n", "2", "--model", "run ö/model", "--out", "s ü/x.npz"]) == 0
    assert np.load("s ü/x.npz")["body_pose"].shape == (2, 63)
    assert main(["export", "--output", "ex é/g.pt"]) == 0
    assert Path("ex é/g.pt").is_file()
    rng = np.random.default_rng(0)
    keypoints = (500 + 100 * rng.standard_normal((1, 24, 2))).tolist()
    camera = {"focal": [1000.0, 1000.0], "center": [500.0, 500.0]}
    Path("vidéo 1").mkdir()
    Path("vidéo 1/kp é.json").write_text(
        json.dumps({"format": "smpl24", "keypoints": keypoints, "camera": camera}),
        encoding="utf-8",
    )
    argv = ["fit", "vidéo 1/kp é.json", "--prior", "run ö/model", "--iterations", "2"]
    assert main([*argv, "--out", "fits ö/f.npz"]) == 0
    assert np.load("fits ö/f.npz")["body_pose"].shape == (1, 63)


def test_cli_output_survives_an_ansi_console(tmp_path: Path, monkeypatch) -> None:
    """On Windows, stdout redirected to a file or pipe encodes with the ANSI code page: a
    message naming a path outside it must not fail the command after its file is written."""
    from advprior.cli import main

    raw_out, raw_err = io.BytesIO(), io.BytesIO()
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(raw_out, encoding="cp1252"))
    monkeypatch.setattr("sys.stderr", io.TextIOWrapper(raw_err, encoding="cp1252"))
    out = tmp_path / "张" / "s.npz"
    assert main(["sample", "-n", "1", "--out", str(out)]) == 0
    assert out.is_file()
    sys.stdout.flush()
    assert b"\\u5f20" in raw_out.getvalue()


# ------------------------------------------------------------------------------------------
# Atomic writes under Windows semantics


def _writers(tmp_path: Path) -> dict[str, tuple[Path, Callable[[], object]]]:
    import torch

    from advprior import PosePrior
    from advprior.fileio import save_npz_atomic, write_atomic, write_text_atomic
    from advprior.train.checkpoint import save_atomic

    folder = tmp_path / "données é"
    folder.mkdir(exist_ok=True)
    prior = PosePrior(latent_dim=8, hidden_dim=16)
    return {
        "write_atomic": (folder / "a.bin", lambda: write_atomic(folder / "a.bin", lambda f: None)),
        "write_text_atomic": (folder / "a.txt", lambda: write_text_atomic(folder / "a.txt", "x")),
        "save_npz_atomic": (
            folder / "a.npz",
            lambda: save_npz_atomic(folder / "a.npz", {"x": np.zeros(2)}),
        ),
        "checkpoint": (
            folder / "checkpoint.pt",
            lambda: save_atomic({"w": torch.zeros(2)}, folder / "checkpoint.pt"),
        ),
        "save_pretrained": (
            folder / "m" / "model.safetensors",
            lambda: prior.save_pretrained(folder / "m"),
        ),
    }


def _refuse_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.replace`` as Windows answers it when another process holds the target open."""

    def replace(src, dst, **kwargs):
        raise PermissionError(13, "Access is denied", str(src), None, str(dst))

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize(
    "writer",
    ["write_atomic", "write_text_atomic", "save_npz_atomic", "checkpoint", "save_pretrained"],
)
def test_replace_refused_keeps_the_target_and_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    target, write = _writers(tmp_path)[writer]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"old content")
    _refuse_replace(monkeypatch)
    with pytest.raises(PermissionError) as info:
        write()
    assert str(target) in str(info.value) and info.value.errno == 13
    assert target.read_bytes() == b"old content"
    assert not [p.name for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_replace_refused_is_one_cli_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from advprior.cli import main

    out = tmp_path / "s.npz"
    out.write_bytes(b"old")
    _refuse_replace(monkeypatch)
    assert main(["sample", "-n", "1", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(out) in err and "denied" in err
    assert out.read_bytes() == b"old"


def test_windows_hint_names_the_likely_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On Windows a refused replace almost always means the file is open elsewhere (an
    editor, a viewer, a second Python session): the message says so."""
    from advprior.fileio import write_text_atomic

    monkeypatch.setattr(sys, "platform", "win32")
    _refuse_replace(monkeypatch)
    with pytest.raises(PermissionError, match=r"a\.txt: Access is denied \(is it open in"):
        write_text_atomic(tmp_path / "a.txt", "x")


def test_a_temporary_that_cannot_be_removed_does_not_hide_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A virus scanner may hold the fresh temporary open, so removing it fails too: the error
    is still the one about the target (not the temporary's), and a warning names the leftover."""
    from advprior.fileio import write_text_atomic

    target = tmp_path / "a.txt"
    target.write_text("old")
    _refuse_replace(monkeypatch)
    real_unlink = os.unlink

    def unlink(path, *args, **kwargs):
        if str(path).endswith(".tmp"):
            raise PermissionError(13, "Access is denied", str(path))
        return real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.warns(UserWarning, match=r"\.a\.txt\..*\.tmp"):
        with pytest.raises(PermissionError, match=r"cannot write .*a\.txt: Access is denied"):
            write_text_atomic(target, "new")
    assert target.read_text() == "old"


def test_read_only_folder_is_a_clear_error(tmp_path: Path, monkeypatch, capsys) -> None:
    """A read-only folder (simulated: the tests may run as root, whom chmod does not stop)."""
    from advprior.cli import main
    from advprior.fileio import write_text_atomic

    folder = tmp_path / "lecture seule"
    folder.mkdir()
    real_open = os.open

    def os_open(path, flags, *args, **kwargs):
        if Path(path).parent == folder and flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    with pytest.raises(PermissionError, match=r"cannot write .*lecture seule.a\.txt"):
        write_text_atomic(folder / "a.txt", "x")
    assert main(["sample", "-n", "1", "--out", str(folder / "s.npz")]) == 1
    err = capsys.readouterr().err
    assert "s.npz" in err and "Permission denied" in err and ".tmp" not in err
    assert list(folder.iterdir()) == []


def test_process_probe_never_signals_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.kill(pid, 0)`` on Windows is no probe: 0 is CTRL_C_EVENT (an interrupt sent to a
    console process group, ours when ``pid`` leads none) and any other signal terminates. The
    stale-temporary sweep and the run-folder lock must ask Windows itself."""
    from advprior import fileio

    def kill(pid, sig):
        raise AssertionError(f"os.kill({pid}, {sig}) on Windows")

    alive = {1234}
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(fileio, "_windows_process_alive", lambda pid: pid in alive, raising=False)
    target = tmp_path / "a.npz"
    live, dead = (tmp_path / f".a.npz.{pid}.0badc0de.tmp" for pid in (1234, 999_999))
    live.write_bytes(b"")
    dead.write_bytes(b"")
    assert fileio.remove_stale_temps(target) == [dead]
    assert live.exists() and not dead.exists()


def test_run_folder_lock_without_hard_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FAT/exFAT drives (a USB disk on Windows or macOS) have no hard links; the lock is then
    created exclusively, still refuses a second claim, and is released."""
    from advprior.errors import RunFolderError
    from advprior.train.runfolder import LOCK_NAME, claim_run_folder

    def link(src, dst, **kwargs):
        raise OSError(1, "Operation not permitted", str(src), None, str(dst))

    monkeypatch.setattr(os, "link", link)
    out = tmp_path / "run é"
    with claim_run_folder(out, resume=False, overwrite=False):
        owner = json.loads((out / LOCK_NAME).read_text(encoding="utf-8"))
        assert owner["pid"] == os.getpid()
        monkeypatch.setattr("advprior.train.runfolder.process_alive", lambda pid: True)
        monkeypatch.setattr(
            "advprior.train.runfolder._read_lock", lambda lock: {**owner, "pid": owner["pid"] + 1}
        )
        with pytest.raises(RunFolderError, match="in use by another training process"):
            claim_run_folder(out, resume=True, overwrite=False)
        monkeypatch.undo()
    assert not (out / LOCK_NAME).exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------
# The same outputs on every system


def test_data_build_orders_files_as_on_linux_whatever_the_path_flavour() -> None:
    """Windows paths sort case-insensitively; the build's order must not follow them."""
    from pathlib import PurePosixPath, PureWindowsPath

    from advprior.data.dataset import files_in_order

    names = ["b/x.bvh", "B.bvh", "a.bvh", "A/y.bvh", "a/Z.bvh", "a/z.bvh"]
    posix = [
        n for n in files_in_order(PurePosixPath("/d"), [PurePosixPath("/d", n) for n in names])
    ]
    win = files_in_order(PureWindowsPath("C:/d"), [PureWindowsPath("C:/d", n) for n in names])
    expected = ["A/y.bvh", "B.bvh", "a/Z.bvh", "a/z.bvh", "a.bvh", "b/x.bvh"]
    assert [p.relative_to("/d").as_posix() for p in posix] == expected
    assert [p.relative_to("C:/d").as_posix() for p in win] == expected


def test_eval_picture_links_use_forward_slashes() -> None:
    from pathlib import PureWindowsPath

    from advprior.eval.runner import picture_link

    base = PureWindowsPath(r"C:\Users\José\docs")
    assert picture_link(base / "results" / "pca.png", base) == "results/pca.png"


def test_training_stops_cleanly_on_windows_ctrl_break(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-Break, and closing the console window, reach Python on Windows as SIGBREAK: training
    must save its checkpoint then as on Ctrl-C (SIGUSR1 stands in for it here)."""
    import signal

    from advprior.train.loop import _StopFlag

    monkeypatch.setattr(signal, "SIGBREAK", signal.SIGUSR1, raising=False)

    def ignore(signum, frame) -> None:
        pass

    original = signal.signal(signal.SIGUSR1, ignore)  # unhandled, it would end pytest
    try:
        with _StopFlag() as flag:
            os.kill(os.getpid(), signal.SIGUSR1)
            assert flag.requested
        assert signal.getsignal(signal.SIGUSR1) is ignore
    finally:
        signal.signal(signal.SIGUSR1, original)


# ------------------------------------------------------------------------------------------
# A checkout made by Git for Windows

REPO = Path(__file__).resolve().parents[1]


def test_pinned_files_keep_their_bytes_in_a_windows_checkout() -> None:
    """Git for Windows checks text out with CRLF (core.autocrlf=true): the bundled config.json
    files, whose sha256 the manifest pins, must be exempt or every bundled model fails its
    checksum in a Windows clone."""
    import subprocess

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "advprior/weights", "weights_manifest.json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert any(name.endswith("config.json") for name in listed)
    attrs = subprocess.run(
        ["git", "check-attr", "text", "--", *listed],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert attrs and all(line.endswith(": text: unset") for line in attrs), attrs


def test_manifest_symlink_checked_out_as_a_placeholder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without symlink support Git writes the package's weights_manifest.json as a text file
    holding "../weights_manifest.json"; the bundled models must still load."""
    import torch

    from advprior import PosePrior, hub
    from advprior.hub import manifest

    top = tmp_path / "checkout é"
    (top / "advprior").mkdir(parents=True)
    shutil.copyfile(REPO / "weights_manifest.json", top / "weights_manifest.json")
    placeholder = top / "advprior" / "weights_manifest.json"
    placeholder.write_bytes(b"../weights_manifest.json")  # git writes no newline
    assert "gan-s" in hub.known_aliases(placeholder)
    # read by advprior.hub.manifest, where it is defined (advprior.hub only re-exports it)
    monkeypatch.setattr(manifest, "DEFAULT_MANIFEST", placeholder)
    monkeypatch.delenv("ADVPRIOR_MANIFEST", raising=False)
    prior = PosePrior.from_pretrained("gan-s")
    assert prior.sample(1, generator=torch.Generator().manual_seed(0)).shape == (1, 63)


def test_wildcards_the_shell_left_are_expanded(home: Path, capsys) -> None:
    """cmd.exe and PowerShell pass ``frames\\*_keypoints.json`` on as typed: ``fit`` and
    ``data build`` expand it (in name order, OpenPose's frame order), and a pattern that
    matches nothing is one line naming it."""
    from advprior.cli import main

    rng = np.random.default_rng(0)
    camera = {"focal": [1000.0, 1000.0], "center": [500.0, 500.0]}
    Path("frames é").mkdir()
    for frame in (1, 0, 2):
        keypoints = (500 + 100 * rng.standard_normal((1, 24, 2))).tolist()
        Path(f"frames é/v_{frame:012d}_keypoints.json").write_text(
            json.dumps({"format": "smpl24", "keypoints": keypoints, "camera": camera}),
            encoding="utf-8",
        )
    argv = ["fit", "frames é/*_keypoints.json", "--prior", "none", "--iterations", "1"]
    assert main([*argv, "--out", "fit.npz"]) == 0
    with np.load("fit.npz") as fit:
        inputs = json.loads(str(fit["info"]))["inputs"]
        assert fit["body_pose"].shape == (3, 63)
    assert [Path(p).name[:4] for p in inputs] == ["v_00", "v_00", "v_00"]
    assert inputs == sorted(inputs) and len(set(inputs)) == 3
    assert main(["fit", "nothing/*.json", "--prior", "none"]) == 1
    assert "no keypoints file matches nothing/*.json" in capsys.readouterr().err
    Path("mo cap").mkdir()
    shutil.copyfile(FIXTURES / "cmu_bvh_daz_aclstm/martial/04_first60.bvh", "mo cap/a.bvh")
    assert main(["data", "build", "mo cap/*.bvh", "--out", "d.npz", "--split", "1,0,0"]) == 0


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_export_to_a_non_ascii_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's C++ file writer takes a path through the ANSI API on Windows: a non-ASCII
    folder fails there (pytorch#75171, not to be fixed: TorchScript is deprecated). The export
    writes through a Python file object instead (simulated: a path argument must be ASCII)."""
    import torch

    from advprior.cli import main

    real_save = torch.jit.save

    def ansi_save(m, f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and not os.fspath(f).isascii():
            raise RuntimeError(f"Parent directory {Path(f).parent} does not exist.")
        return real_save(m, f, *args, **kwargs)

    monkeypatch.setattr(torch.jit, "save", ansi_save)
    out = tmp_path / "José" / "données" / "gan-s.pt"
    assert main(["export", "--output", str(out)]) == 0
    with open(out, "rb") as fh:
        module = torch.jit.load(fh)
    z = torch.nn.functional.normalize(torch.randn(2, 32, generator=torch.Generator()), dim=-1)
    assert module(z).shape == (2, 63)


def test_a_windows_model_path_on_posix_says_what_it_means(home: Path) -> None:
    """``run\\model`` typed on Windows and reused on Linux or macOS names one odd file name
    there: refused, with the folder it probably means."""
    from advprior import PosePrior
    from advprior.errors import ModelNotFoundError

    if os.sep != "/":
        pytest.skip("backslashes are separators here")
    PosePrior(latent_dim=8, hidden_dim=16).save_pretrained("run é/model")
    with pytest.raises(ModelNotFoundError, match=r"did you mean 'run é/model'"):
        PosePrior.from_pretrained("run é\\model")


# ------------------------------------------------------------------------------------------
# Several processes


def test_ddp_backend_where_torch_has_no_nccl(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's Windows (and macOS) wheels have no NCCL: GPUs there train over gloo."""
    import torch
    import torch.distributed as dist

    from advprior.train import distributed

    monkeypatch.setattr(dist, "is_nccl_available", lambda: False)
    assert distributed.backend_for(torch.device("cuda", 0)) == "gloo"
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    monkeypatch.setattr(dist, "is_nccl_available", lambda: True)
    assert distributed.backend_for(torch.device("cuda", 1)) == "nccl"


def _nfd_tree(root: Path, form: str) -> Path:
    """Six performers' folders, three of them with accented names spelled in Unicode form
    ``form`` (what a macOS HFS+ copy, NFD, or a Linux or Windows one, NFC, holds)."""
    import unicodedata

    from test_data_importers import random_pose, write_bvh

    src = root / form / "mocap"
    names = ["José", "Åsa", "Zoë", "adam", "bert", "carl"]
    for i, name in enumerate(names):
        folder = src / "dance" / unicodedata.normalize(form, name)
        folder.mkdir(parents=True)
        local, pelvis = random_pose(40, seed=i)
        write_bvh(folder / f"{unicodedata.normalize(form, 'pé')}{i}.bvh", "daz", local, pelvis)
    return src


def test_accented_names_give_the_same_dataset_from_a_macos_copy(tmp_path: Path) -> None:
    """A folder copied through macOS holds "José" as "Jose" + a combining accent (NFD). Its
    subjects, sequence names, order and split must be those of the same folder on Linux (NFC):
    read raw, the subject ids differ, sort elsewhere and land in other splits (old code:
    different subject_names and content)."""
    from advprior.data import build_dataset

    built = {}
    for form in ("NFC", "NFD"):
        out = tmp_path / f"{form}.npz"
        build_dataset(_nfd_tree(tmp_path, form), out)
        with np.load(out, allow_pickle=False) as d:
            built[form] = {
                k: d[k] for k in ("subject_names", "sequence_names", "split", "body_pose")
            }
    import unicodedata

    names = {f"dance:{unicodedata.normalize('NFC', n)}" for n in ("José", "Åsa", "Zoë")}
    assert names <= set(built["NFC"]["subject_names"].tolist())
    for key, value in built["NFC"].items():
        np.testing.assert_array_equal(built["NFD"][key], value, err_msg=key)


def test_a_readme_in_any_case_declares_frame_rates(tmp_path: Path) -> None:
    """Windows and macOS ignore a file name's case, so "ReadMe.TXT" is a readme there; a build on
    Linux must read its rates too (old code: only three exact spellings)."""
    from test_data_importers import random_pose, write_bvh

    from advprior.data import build_dataset
    from advprior.data.dataset import readme_rates

    folder = tmp_path / "src" / "aclstm" / "salsa"
    folder.mkdir(parents=True)
    (tmp_path / "src" / "aclstm" / "ReadMe.TXT").write_text("salsa framerate 60\n")
    local, pelvis = random_pose(61, seed=1)
    write_bvh(folder / "01.bvh", "daz", local, pelvis, scale=100.0, frame_time=1 / 120)
    assert readme_rates(folder / "01.bvh") == {"salsa": 60.0}
    report = build_dataset(tmp_path / "src", tmp_path / "s.npz")
    assert report.frames == 31  # 61 frames at 60 fps (not the header's 120) -> 30 fps
    reasons = {Path(f).name: why for f, why in report.skipped}
    assert reasons["ReadMe.TXT"].startswith("frame-rate readme")
