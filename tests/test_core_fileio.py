from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from advprior.fileio import atomic_path, save_npz_atomic, write_atomic, write_text_atomic


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def boom(fh) -> None:
        fh.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, boom)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_writes_create_folders_and_replace_content(tmp_path: Path) -> None:
    text = tmp_path / "a" / "b" / "note.txt"
    write_text_atomic(text, "first")
    write_text_atomic(text, "second")
    assert text.read_text() == "second"
    arrays = tmp_path / "x" / "data.npz"
    save_npz_atomic(arrays, {"pose": np.arange(6, dtype=np.float32).reshape(2, 3)})
    with np.load(arrays) as f:
        assert f["pose"].shape == (2, 3)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


def test_files_honour_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_portable_pickle_uses_numpy1_names_and_round_trips() -> None:
    import pickle
    import pickletools

    from advprior.fileio import portable_pickle

    obj = {
        "a": np.arange(6.0).reshape(2, 3),
        "f": np.zeros((0, 3), np.uint32),
        "s": np.float64(3.5),
        "v": np.asarray(3, dtype=np.int64),
        "nested": {"k": [1, 2]},
    }
    blob = portable_pickle(obj)
    names = [arg for op, arg, _ in pickletools.genops(blob) if op.name == "GLOBAL"]
    assert "numpy.core.multiarray _reconstruct" in names
    assert "numpy.core.multiarray scalar" in names
    assert not [n for n in names if n.startswith("numpy._core")]  # numpy < 1.26 lacks it
    back = pickle.loads(blob, encoding="latin1")
    assert back.keys() == obj.keys() and back["nested"] == obj["nested"]
    for key in ("a", "f", "s", "v"):
        assert np.array_equal(back[key], obj[key]) and back[key].dtype == obj[key].dtype
    # strings as Python 2 wrote them (SMPL's and SMPLify's own files): str by default and with
    # latin-1, bytes with encoding="bytes" (code written for those files indexes gmm[b"covars"])
    named = {"bs_type": "lrotmin", "t": ("x", ["y"]), "u": "\u00e9"}
    assert pickle.loads(portable_pickle(named)) == named
    assert pickle.loads(portable_pickle(named), encoding="latin1") == named
    as_bytes = pickle.loads(portable_pickle(named), encoding="bytes")
    # a non-ASCII str stays a unicode string (Python 2 would have needed unicode for it too)
    assert as_bytes == {b"bs_type": b"lrotmin", b"t": (b"x", [b"y"]), b"u": "\u00e9"}
    long_key = "k" * 300  # BINSTRING, over SHORT_BINSTRING's 255 bytes
    assert pickle.loads(portable_pickle({long_key: 1}), encoding="bytes") == {long_key.encode(): 1}
    assert np.array_equal(pickle.loads(blob, encoding="bytes")[b"a"], obj["a"])


def test_check_zip_members_refuses_a_bomb(tmp_path: Path, monkeypatch) -> None:
    import advprior.fileio as fileio

    monkeypatch.setattr(fileio, "ZIP_CHECK_ABOVE", 1000)  # the real threshold is 64 MiB
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, a=np.zeros(1_000_000, np.uint8))  # ~1 MB of zeros, ~1 KB stored
    with pytest.raises(ValueError, match=r"bomb\.npz: dataset member 'a\.npy' would decompress"):
        fileio.check_zip_members(bomb, "dataset")
    data = np.random.default_rng(0).normal(size=100_000)  # real numbers barely compress
    np.savez_compressed(tmp_path / "real.npz", a=data)
    np.savez(tmp_path / "plain.npz", a=np.zeros(1_000_000, np.uint8))  # stored: ratio 1
    fileio.check_zip_members(tmp_path / "real.npz")
    fileio.check_zip_members(tmp_path / "plain.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    fileio.check_zip_members(tmp_path / "text.npz")  # the reader reports that, not this check


def test_npz_refuses_object_arrays_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "d.npz"
    save_npz_atomic(target, {"x": np.zeros(2)})
    before = target.read_bytes()
    with pytest.raises(ValueError, match="[Oo]bject arrays"):
        save_npz_atomic(target, {"x": np.zeros(2), "bad": np.array([{"a": 1}], dtype=object)})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_a_write_that_fails_partway_names_the_file(tmp_path) -> None:
    """A full disk while writing said only "[Errno 28] No space left on device"; the old file
    stays and no temporary file is left. Other errors of the caller's block pass unchanged."""
    import errno as errnos

    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def full(fh) -> None:
        fh.write(b"partial")
        raise OSError(errnos.ENOSPC, os.strerror(errnos.ENOSPC))

    with pytest.raises(OSError, match=r"cannot write .*out\.bin: No space left") as err:
        write_atomic(path, full)
    assert err.value.errno == errnos.ENOSPC
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]

    def reads_a_missing_file(fh) -> None:
        open(tmp_path / "absent.txt").close()

    with pytest.raises(FileNotFoundError, match="absent.txt"):
        write_atomic(path, reads_a_missing_file)
