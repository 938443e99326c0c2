"""Hostile files: loading a body model never runs code from it, whatever the entry point.

Each payload, if unpickled by an unrestricted unpickler, creates a marker file. Every test
asserts the marker never appears and the error names the refused ``module.name``.
"""

from __future__ import annotations

import builtins
import io
import json
import math
import os
import pickle
import re
import resource
import signal
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from advprior import cli
from advprior.body import load_body_model
from advprior.body.files import read_model_file, safe_unpickle
from advprior.body.standin import build_standin, standin_path
from advprior.errors import CorruptCheckpointError, MotionFormatError, UnsafeFileError

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
    # well-formed keypoints, so that the body model is what the command refuses
    kp.write_text(
        json.dumps(
            {
                "keypoints": [[[100.0 + 10 * j, 200.0 + 20 * j] for j in range(24)]],
                "format": "smpl24",
            }
        )
    )
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


# ------------------------------------------------ files that crash numpy or exhaust memory
# Raw pickle opcodes, to write what no pickler would: each fragment pushes one object.


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _u(text: str) -> bytes:
    return b"X" + struct.pack("<I", len(text.encode())) + text.encode()


def _i(n: int) -> bytes:
    return b"J" + struct.pack("<i", n)


def _t(*parts: bytes) -> bytes:
    return b"(" + b"".join(parts) + b"t"


def _d(**items: bytes) -> bytes:
    return b"}(" + b"".join(_u(k) + v for k, v in items.items()) + b"u"


_REDUCE, _BUILD = b"R", b"b"
_DTYPE_O = _g("numpy", "dtype") + _u("O") + b"\x85" + _REDUCE
# numpy's own opening of a pickled array: _reconstruct(ndarray, (0,), b"b")
_EMPTY = (
    _g("numpy.core.multiarray", "_reconstruct")
    + _g("numpy", "ndarray")
    + _t(_i(0))
    + _g("_codecs", "encode")
    + _u("b")
    + _u("latin1")
    + b"\x86"
    + _REDUCE
    + b"\x87"
    + _REDUCE
)
# an object array of shape (4,) whose BUILD state lists no element (numpy reads past the list)
_SHORT_OBJECT_ARRAY = _EMPTY + _t(_i(1), _t(_i(4)), _DTYPE_O, b"\x89", b"]") + _BUILD


def _list_dag(depth: int) -> bytes:
    """[[...[1.0, 1.0]...], [...]]: each level holds the one below twice, through the memo
    (2**depth numbers from a file of a few hundred bytes)."""
    leaf = b"G" + struct.pack(">d", 1.0)
    out = b"(" + leaf + leaf + b"l" + b"r" + struct.pack("<I", 0)
    for k in range(1, depth + 1):
        get = b"j" + struct.pack("<I", k - 1)
        out += b"0(" + get + get + b"l" + b"r" + struct.pack("<I", k)
    return out


def _ch(state: bytes) -> bytes:
    return _g("chumpy.ch", "Ch") + b")" + _REDUCE + state + _BUILD


def _csc(**state: bytes) -> bytes:
    return _g("scipy.sparse.csc", "csc_matrix") + b")" + _REDUCE + _d(**state) + _BUILD


def _model_pickle(key: str, fragment: bytes) -> bytes:
    return b"\x80\x02}" + _u(key) + fragment + b"s."


def _in_child(
    path: Path, memory: int = 1 << 30, seconds: int = 20, read=read_model_file
) -> tuple[int, str]:
    """``read(path)`` (default ``read_model_file``) in a forked child with ``memory`` bytes of
    address space more than pytest holds: ``(exit code, outcome)``; a crash or a memory bomb
    kills only the child."""
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            signal.alarm(seconds)
            vm = next(
                int(line.split()[1]) * 1024
                for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmSize:")
            )
            resource.setrlimit(resource.RLIMIT_AS, (vm + memory, vm + memory))
            try:
                read(path)
                text = "loaded"
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                text = f"{type(exc).__name__}: {exc}"
            os.write(w, text.encode()[:8000])
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        text = fh.read().decode()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), text


_fork_only = pytest.mark.skipif(
    not hasattr(os, "fork") or not Path("/proc/self/status").exists(), reason="Linux fork"
)


@_fork_only
@pytest.mark.parametrize("layout", ["pkl", "npz"])
def test_object_array_shorter_than_its_shape_is_refused_not_a_crash(
    layout: str, tmp_path: Path
) -> None:
    """numpy's ``ndarray.__setstate__`` trusts the element count of an object array (SIGSEGV
    from a 200-byte file); every array state is now checked before numpy sees it."""
    if layout == "pkl":
        path = tmp_path / "SMPL_NEUTRAL.pkl"
        path.write_bytes(_model_pickle("v_template", _SHORT_OBJECT_ARRAY))
    else:  # an npz member holding objects goes through the same unpickler
        path = tmp_path / "SMPL_NEUTRAL.npz"
        header = b"{'descr': '|O', 'fortran_order': False, 'shape': (), }".ljust(117) + b"\n"
        npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("vertex_ids.npy", npy + b"\x80\x02" + _SHORT_OBJECT_ARRAY + b".")
    code, text = _in_child(path)
    assert code == 0, f"the reader crashed (exit {code})"
    assert text.startswith("CorruptCheckpointError: ") and str(path) in text
    assert "object array of shape (4,) pickled with 0 items" in text


@_fork_only
@pytest.mark.parametrize(
    ("key", "fragment", "match"),
    [
        ("v_template", _ch(b"}" + _u("x") + _list_dag(30) + b"s"), "nests one list more than"),
        (
            "J_regressor",
            _csc(_shape=_t(_i(24), _i(10)), data=_list_dag(30), indices=b"]", indptr=b"]"),
            "nests one list more than",
        ),
        (
            "J_regressor",
            _csc(_shape=_t(_i(30000), _i(30000)), data=b"(Nl", indices=b"]", indptr=b"]"),
            r"shape \(30000, 30000\)",
        ),
        (
            "J_regressor",
            _csc(
                _shape=_t(_i(24), _i(1)),
                data=b"(G" + struct.pack(">d", 1.0) + b"l",
                indices=b"(" + _i(0) + b"l",
                indptr=b"(" + _i(0) + b"\x8a\x05" + (10**10).to_bytes(5, "little") + b"l",
            ),
            "indptr holds 0..10000000000, outside 0..1",
        ),
        (
            "J_regressor",
            _csc(
                _shape=_t(_i(1), _i(24)),
                data=b"(G" + struct.pack(">d", 1.0) + b"l",
                indices=b"(" + _i(0) + b"l",
                indptr=b"(" + _i(0) + b"\x8a\x05" + (10**10).to_bytes(5, "little") + b"l",
            ),
            "sparse indptr has 2 entries, expected 25",
        ),
        (
            "v_template",
            (_g("chumpy.ch", "Ch") + b")" + _REDUCE + b"}" + _u("x")) * 20000
            + _EMPTY
            # a (0, 3) float array: its data, an empty bytes object
            + _t(
                _i(1),
                _t(_i(0), _i(3)),
                _g("numpy", "dtype") + _u("f8") + b"\x85R",
                b"\x89",
                b"C\x00",
            )
            + _BUILD
            + (b"s" + _BUILD) * 20000,
            "nests chumpy arrays deeper than",
        ),
        (
            "J",
            _g("numpy.core.multiarray", "_reconstruct")
            + _g("numpy", "ndarray")
            + _t(_i(600_000_000))
            + _DTYPE_O
            + b"\x87"
            + _REDUCE,
            r"shape \(600000000,\)",
        ),
    ],
    ids=["list-dag", "sparse-data-dag", "sparse-shape", "indptr", "indptr-length", "deep", "empty"],
)
def test_tiny_files_that_would_expand_to_gigabytes_are_refused(
    key: str, fragment: bytes, match: str, tmp_path: Path
) -> None:
    """Each file is under 2 MB and asked for GBs (a shared list converted 2**30 times, a dense
    matrix of the sparse shape it states, an indptr reaching 10**10) or recursed 20000 deep."""
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(_model_pickle(key, fragment))
    code, text = _in_child(path, memory=256 << 20)
    assert code == 0, f"the reader crashed (exit {code})"
    assert text.startswith("CorruptCheckpointError: ") and str(path) in text, text
    assert re.search(match, text), text


def test_declared_length_past_memory_is_a_corrupt_file(tmp_path: Path) -> None:
    """A BINBYTES8 of 2**62 bytes: a bare MemoryError before, now the reader's own error."""
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b"abc")
    with pytest.raises(CorruptCheckpointError, match=f"{re.escape(str(path))}.*MemoryError"):
        read_model_file(path)


def test_structured_dtype_state_is_refused() -> None:
    """numpy does not check a dtype state's field offsets against its item size: a field at
    offset 10**6 of an 8-byte item reads outside the array."""
    state = _t(
        _i(3),
        _u("|"),
        b"N",
        _t(_u("a")),
        _d(a=_t(_g("numpy", "dtype") + _u("f8") + b"\x85R", _i(10**6))),
        _i(8),
        _i(1),
        _i(16),
    )
    blob = b"\x80\x02" + _g("numpy", "dtype") + _u("V8") + b"\x85" + _REDUCE + state + _BUILD
    with pytest.raises(ValueError, match="structured numpy dtypes"):
        safe_unpickle(io.BytesIO(blob + b"."))
    plain = pickle.dumps(np.dtype("V8"), protocol=2)  # numpy's own dtype pickles still read
    assert safe_unpickle(io.BytesIO(plain)) == np.dtype("V8")


def test_ndarray_is_only_a_reconstruct_argument() -> None:
    """``numpy.ndarray(shape)`` itself would allocate whatever the file asks, uninitialised."""
    for blob in (
        _g("numpy", "ndarray") + _t(_t(_i(10**9))) + _REDUCE,
        _g("copyreg", "_reconstructor")
        + _g("numpy", "ndarray")
        + _g("numpy", "ndarray")
        + _t(_i(10**9))
        + b"\x87"
        + _REDUCE,
    ):
        with pytest.raises((TypeError, ValueError)):
            safe_unpickle(io.BytesIO(b"\x80\x02" + blob + b"."))


# --- round 18: crafted structures that crash, hang or exhaust instead of running code ----------


def _pickle_with_key(key_ops: bytes) -> bytes:
    """A protocol-2 pickle ``{KEY: None}`` whose key is built by ``key_ops``."""
    return b"\x80\x02}" + key_ops + b"Ns."


DEEP_TUPLE = b")" + b"\x85" * 200_000  # () wrapped 200,000 times: hashing it crashes CPython
SHARED_TUPLE = b")" + b"2\x86" * 64  # t = (t, t) 64 times: 2**64 nodes to hash, 130 bytes


@pytest.mark.parametrize("key", [DEEP_TUPLE, SHARED_TUPLE], ids=["deep", "shared"])
def test_a_crafted_dict_key_is_refused_before_it_is_hashed(tmp_path: Path, key: bytes) -> None:
    from advprior.data import load_motion

    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(_pickle_with_key(key))
    with pytest.raises(CorruptCheckpointError, match="dict key or set item must be"):
        read_model_file(path)
    motion = tmp_path / "seq" / "clip.pkl"  # the same through the motion-pickle reader
    motion.parent.mkdir()
    motion.write_bytes(_pickle_with_key(key))
    with pytest.raises(MotionFormatError, match="dict key or set item must be"):
        load_motion(motion)


def test_build_on_an_allow_listed_class_is_refused(tmp_path: Path) -> None:
    """BUILD sets attributes: on the resolved ``numpy.ndarray`` (a module-level object) it
    changed it for the whole process."""
    path = tmp_path / "m.pkl"
    path.write_bytes(b"\x80\x02cnumpy\nndarray\n}(U\x05pwnedK\x01ub.")
    with pytest.raises(CorruptCheckpointError, match="refused to set the state"):
        read_model_file(path)


@pytest.mark.parametrize(
    "ops, match",
    [(DEEP_TUPLE, "nested deeper than"), (SHARED_TUPLE, "expand to more than")],
    ids=["deep", "shared"],
)
def test_a_checkpoint_pickle_bomb_is_refused_before_torch_reads_it(tmp_path, ops, match) -> None:
    """torch's own weights_only unpickler crashes (deep) or hangs (shared) on these keys."""
    import zipfile

    from advprior.train import checkpoint

    path = tmp_path / "checkpoint.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", _pickle_with_key(ops))
    with pytest.raises(CorruptCheckpointError, match=match):
        checkpoint.load(path)


def test_a_model_npz_of_many_small_bombs_is_refused(tmp_path: Path) -> None:
    """Each member just under the per-member limit, together gigabytes from a few MB."""
    path = tmp_path / "SMPL_NEUTRAL.npz"
    zeros = np.zeros(5 * 2**20 // 8)  # 5 MiB each, about 5 KiB compressed
    np.savez_compressed(path, **{f"a{i}": zeros for i in range(16)})
    with pytest.raises(CorruptCheckpointError, match=r"16 members would decompress to 80 MiB"):
        read_model_file(path)


def test_a_small_motion_file_cannot_ask_for_gigabytes(tmp_path: Path) -> None:
    """End Sites take no bytes per frame but a rotation each: 130 KB asked for 1.1 GiB."""
    from advprior.data import load_motion

    n = 4000
    lines = ["HIERARCHY", "ROOT Hips", "{", "OFFSET 0 0 0", "CHANNELS 1 Xrotation"]
    lines += ["End Site", "{", "OFFSET 0 0 0", "}"] * n
    lines += ["}", "MOTION", f"Frames: {n}", "Frame Time: 0.0333333"] + ["0"] * n
    path = tmp_path / "wide.bvh"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(MotionFormatError, match="would need 1.1 GiB of rotations from a"):
        load_motion(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are a POSIX feature")
def test_pipes_and_devices_beside_a_motion_or_as_a_json_never_block(tmp_path: Path) -> None:
    """A FIFO named like a companion file (an AMC's ASF, a DeepMimic character) or passed as a
    keypoint JSON blocked for ever in open(); a link to /dev/zero filled the memory."""
    import signal

    from advprior.fileio import read_json

    os.mkfifo(tmp_path / "kp.json")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    old = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("a reader blocked on a pipe"))
    signal.alarm(20)
    try:
        for name in ("kp.json", "zero.json"):
            with pytest.raises(ValueError, match=rf"{name} is not a regular file"):
                read_json(tmp_path / name)
        from advprior.data.deepmimic import find_character

        os.mkfifo(tmp_path / "humanoid_character.txt")
        assert find_character(tmp_path / "motion.txt") is None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _stored_zip(members: dict[str, bytes], declared: dict[str, int]) -> bytes:
    """A zip storing ``members`` (name -> bytes) whose central directory (zip64) declares
    ``declared[name]`` bytes, stored and uncompressed, for the names it holds: the ratio is 1,
    as np.savez's own members."""
    out, central = b"", b""
    for name, data in members.items():
        n = name.encode()
        size = declared.get(name, len(data))
        at = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, 0, 0, 0, len(n), 0)
        out += n + data
        extra = struct.pack("<HHQQQ", 1, 24, size, size, at)
        fields = (0x02014B50, 45, 45, 0, 0, 0, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, len(n), len(extra))
        central += struct.pack("<IHHHHHHIIIHHHHHII", *fields, 0, 0, 0, 0, 0xFFFFFFFF) + n + extra
    count = len(members)
    return (
        out
        + central
        + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), len(out), 0)
    )


def _npy_bytes(value: np.ndarray) -> bytes:
    fh = io.BytesIO()
    np.lib.format.write_array(fh, value, allow_pickle=False)
    return fh.getvalue()


def _read_init(path: Path) -> None:
    from advprior.commands.fit import read_init

    read_init(path)


def _load_dataset(path: Path) -> None:
    from advprior.data import load_dataset

    load_dataset(path)


def _load_motion(path: Path) -> None:
    from advprior.data import load_motion

    load_motion(path)


@_fork_only
@pytest.mark.parametrize(
    ("read", "key"),
    [
        (read_model_file, "v_template"),
        (_load_motion, "poses"),
        (_load_dataset, "body_pose"),
        (_read_init, "body_pose"),
    ],
    ids=["model", "amass", "dataset", "init"],
)
def test_an_npz_member_declaring_more_bytes_than_the_file_is_refused(
    tmp_path: Path, read, key: str
) -> None:
    """A 1 KB .npz whose stored member declares 64 TiB (ratio 1, so no bomb by ratio) and
    whose .npy header claims that much: numpy allocated the declared size before zipfile found
    the data missing (a MemoryError naming no file)."""
    from advprior.data.dataset import KEYS

    width = 63 if key != "poses" else 156
    header = {"descr": "<f8", "fortran_order": False, "shape": (2**46 // 8 // width, width)}
    text = repr(header).encode()
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text
    declared = len(npy) + 8 * math.prod(header["shape"])  # what numpy reads after the header
    # the dataset reader wants its other keys present before it reads body_pose
    members = {f"{k}.npy": _npy_bytes(np.zeros(1)) for k in KEYS if read is _load_dataset}
    members[f"{key}.npy"] = npy + bytes(256)
    path = tmp_path / "crafted.npz"
    path.write_bytes(_stored_zip(members, {f"{key}.npy": declared}))
    code, text = _in_child(path, memory=512 << 20, read=read)
    assert code == 0, f"the reader crashed (exit {code})"
    assert str(path) in text and f"declares {declared} stored bytes in a file of" in text, text


@_fork_only
@pytest.mark.parametrize("version", [2, 3])
def test_an_npy_header_longer_than_the_file_is_refused_before_it_is_read(
    tmp_path: Path, version: int
) -> None:
    """numpy reads the header length an .npy declares into one buffer: a 13-byte file
    declaring a 4 GiB header was a bare MemoryError under a memory limit."""
    path = tmp_path / "poses.npy"
    path.write_bytes(b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", 2**32 - 1) + b"{")
    code, text = _in_child(path, memory=512 << 20, read=_load_motion)
    assert code == 0, f"the reader crashed (exit {code})"
    assert text.startswith("MotionFormatError: ") and str(path) in text, text
    assert "header declares 4294967295 bytes, more than the 13" in text, text
