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
