"""Hostile files: loading a body model never runs code from it, whatever the entry point.

Each payload, if unpickled by an unrestricted unpickler, creates a marker file. Every test
asserts the marker never appears and the error names the refused ``module.name``.
"""

from __future__ import annotations

import builtins
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from advprior import cli
from advprior.body import load_body_model
from advprior.body.files import read_model_file, safe_unpickle
from advprior.body.standin import build_standin, standin_path
from advprior.errors import UnsafeFileError

# (callable, argument builder, the name the pickle gives the callable)
PAYLOADS = {
    "os.system": (os.system, lambda m: (f"touch {m}",), f"{os.system.__module__}.system"),
    "builtins.exec": (
        builtins.exec,
        lambda m: (f"open({str(m)!r}, 'w').close()",),
        "builtins.exec",
    ),
}


class _Evil:
    """Pickles as ``func(*args)``: an unrestricted unpickler calls it while loading."""

    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.fixture(params=sorted(PAYLOADS))
def payload(request, tmp_path: Path):
    func, args, name = PAYLOADS[request.param]
    marker = tmp_path / "PWNED"
    return _Evil(func, args(marker)), marker, name


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVPRIOR_CACHE", str(tmp_path / "cache"))


def _model_dict(evil: object) -> dict:
    data = build_standin()
    data["v_template"] = evil  # a required key: the loader must read it
    return data


def _write_bare(path: Path, evil: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(evil, protocol=2))
    return path


def _write_dict(path: Path, evil: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_model_dict(evil), protocol=4))
    return path


def _write_npz(path: Path, evil: object) -> Path:
    """An npz whose ``vertex_ids`` member is an object array holding the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = build_standin()
    arrays = {k: np.asarray(v) for k, v in data.items() if k != "vertex_ids"}
    boxed = np.empty((), dtype=object)
    boxed[()] = evil
    arrays["vertex_ids"] = boxed
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


LAYOUTS = {
    "bare-pickle": (_write_bare, "SMPL_NEUTRAL.pkl"),
    "dict-pickle": (_write_dict, "SMPL_NEUTRAL.pkl"),
    "npz": (_write_npz, "SMPL_NEUTRAL.npz"),
}


def _assert_refused(err: BaseException | str, marker: Path, name: str) -> None:
    assert not marker.exists(), "the file's code ran"
    assert f"refused to unpickle {name}" in str(err)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_load_body_model_file_and_folder_never_run_code(payload, layout, tmp_path: Path) -> None:
    evil, marker, name = payload
    write, filename = LAYOUTS[layout]
    path = write(tmp_path / "models" / "smpl" / filename, evil)
    for where in (path, tmp_path / "models"):  # a file, and smplx's folder layout
        with pytest.raises(UnsafeFileError) as err:
            load_body_model(where)
        _assert_refused(err.value, marker, name)
        assert str(path) in str(err.value)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_cli_fit_body_model_never_runs_code(payload, layout, tmp_path: Path, capsys) -> None:
    evil, marker, name = payload
    write, filename = LAYOUTS[layout]
    path = write(tmp_path / "m" / filename, evil)
    kp = tmp_path / "kp.json"
    kp.write_text('{"keypoints": [[[1.0, 2.0]]], "format": "smpl24"}')
    for where in (path, path.parent):
        code = cli.main(
            [
                "fit",
                str(kp),
                "--camera",
                "500,100,100",
                "--body-model",
                str(where),
                "--iterations",
                "1",
                "--out",
                str(tmp_path / "fit.npz"),
            ]
        )
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("advprior fit: error: ")
        _assert_refused(err, marker, name)
    assert not (tmp_path / "fit.npz").exists()


def test_tampered_standin_cache_is_never_unpickled(payload) -> None:
    evil, marker, name = payload
    path = standin_path()
    genuine = path.read_bytes()
    path.write_bytes(pickle.dumps(_model_dict(evil), protocol=4))
    model = load_body_model()
    assert model.is_standin and not marker.exists()
    # the cache file a user hands to smplx is checked and replaced
    assert standin_path() == path and path.read_bytes() == genuine
    assert not marker.exists()


def test_allow_list_still_reads_numpy_pickles_of_every_protocol() -> None:
    data = {
        "a": np.arange(6, dtype=np.float32).reshape(2, 3),
        "s": np.float64(2.5),
        "ids": {"nose": 3},
        "t": (1, "x"),
        "set": {1, 2},
    }
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        back = safe_unpickle(io.BytesIO(pickle.dumps(data, protocol=protocol)))
        np.testing.assert_array_equal(back["a"], data["a"])
        assert back["s"] == 2.5 and back["ids"] == {"nose": 3} and back["set"] == {1, 2}


def test_codec_other_than_latin1_is_refused() -> None:
    # protocol-2 bytes are `_codecs.encode(text, "latin1")`; other codecs are not needed
    blob = pickle.dumps(b"\x00\xff", protocol=2)
    assert b"latin1" in blob
    with pytest.raises(UnsafeFileError, match="rot_13"):
        safe_unpickle(io.BytesIO(blob.replace(b"latin1", b"rot_13")))
    with pytest.raises(UnsafeFileError, match="nosuch"):
        safe_unpickle(io.BytesIO(blob.replace(b"latin1", b"nosuch")))


def test_npz_without_objects_reads_with_allow_pickle_false(tmp_path: Path) -> None:
    path = _write_npz(tmp_path / "SMPL_NEUTRAL.npz", {"nose": 1})
    data = read_model_file(path)
    assert data["vertex_ids"].item() == {"nose": 1}
    with zipfile.ZipFile(path) as zf:
        assert "vertex_ids.npy" in zf.namelist()
