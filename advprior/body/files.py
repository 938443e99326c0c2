"""Reading SMPL-family model files without chumpy, and finding them in a folder.

SMPL's original ``.pkl`` files (2015, Python 2) pickle some arrays as ``chumpy.Ch`` objects and
``J_regressor`` as a ``scipy.sparse`` matrix. :func:`read_model_file` unpickles them with stub
classes that keep the pickled state and turns each into a plain ``numpy`` array, so neither
chumpy nor scipy is needed. ``.npz`` files (SMPL-X, AMASS's SMPL-H, converted SMPL) load as is.

Loading never runs code from the file: the unpickler resolves only an allow-list of harmless
constructors (numpy's array/dtype/scalar reconstruction, ``set``/``frozenset``/``object``, the
latin-1 bytes codec, and inert stand-ins for chumpy and ``scipy.sparse`` classes); any other
global a pickle names (``os.system``, ``builtins.eval``, ...) is refused with
:class:`~advprior.errors.UnsafeFileError` naming it. ``.npz`` members are read with
``allow_pickle=False``; a member holding Python objects (SMPL-X's ``joint2num``, a saved
``vertex_ids`` dict) goes through the same allow-list unpickler.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import copyreg
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from advprior.errors import CorruptCheckpointError, ModelNotFoundError, UnsafeFileError

__all__ = [
    "MODEL_TYPES",
    "GENDERS",
    "SafeUnpickler",
    "find_model_file",
    "infer_model_type",
    "read_model_file",
    "read_npz",
    "safe_unpickle",
]

MODEL_TYPES: tuple[str, ...] = ("smpl", "smplh", "smplx")
GENDERS: tuple[str, ...] = ("neutral", "male", "female")
_PREFIX = {"smpl": "SMPL", "smplh": "SMPLH", "smplx": "SMPLX"}
#: Joint count of each family's kinematic tree (``kintree_table`` columns).
_JOINTS_OF = {24: "smpl", 52: "smplh", 55: "smplx"}
_REQUIRED = ("v_template", "f", "weights", "J_regressor", "kintree_table", "shapedirs", "posedirs")
#: Further keys smplx reads for SMPL-H / SMPL-X.
_NEEDED_PREFIXES = ("hands_", "lmk_", "dynamic_lmk_")


class _ChumpyStub:
    """Any chumpy class met while unpickling: keeps the state so the array can be recovered."""

    chumpy_name = "chumpy object"

    def __new__(cls, *args: Any, **kwargs: Any) -> _ChumpyStub:
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _SparseStub:
    """A pickled ``scipy.sparse`` matrix, rebuilt densely from its stored index arrays."""

    sparse_name = "csc_matrix"

    def __new__(cls, *args: Any, **kwargs: Any) -> _SparseStub:
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _dense(stub: _SparseStub) -> np.ndarray:
    st = stub.state
    if not isinstance(st, dict):
        raise ValueError(f"unexpected pickled state of scipy.sparse.{stub.sparse_name}")
    shape = tuple(int(x) for x in st.get("_shape", st.get("shape")))
    out = np.zeros(shape, dtype=np.asarray(st["data"]).dtype)
    fmt = stub.sparse_name[:3]
    if fmt in ("csc", "csr"):
        indptr, indices = np.asarray(st["indptr"]), np.asarray(st["indices"])
        major = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        rows, cols = (indices, major) if fmt == "csc" else (major, indices)
    elif fmt == "coo":
        rows, cols = np.asarray(st["row"]), np.asarray(st["col"])
    else:
        raise ValueError(f"scipy.sparse.{stub.sparse_name} is not supported (csc, csr, coo are)")
    np.add.at(out, (rows, cols), np.asarray(st["data"]))
    return out


def _plain(value: Any, key: str) -> Any:
    """Replace stubs by numpy arrays (recursively through chumpy's wrapped ``x``, and through
    the 0-d object array ``np.savez`` wraps a sparse matrix or chumpy array in)."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        inner = value.item()
        if isinstance(inner, (_SparseStub, _ChumpyStub)):
            return _plain(inner, key)
    if isinstance(value, _SparseStub):
        return _dense(value)
    if isinstance(value, _ChumpyStub):
        state = value.state if isinstance(getattr(value, "state", None), dict) else {}
        if "x" not in state:
            raise ValueError(
                f"key {key!r} holds a chumpy expression ({value.chumpy_name}) that cannot be "
                "evaluated without chumpy; re-save the model with plain numpy arrays"
            )
        return np.asarray(_plain(state["x"], key))
    return value


def _plain_dict(raw: dict) -> dict[str, Any]:
    """Stubs made numpy. A chumpy expression that cannot be evaluated without chumpy is an error
    in a key smplx reads, and dropped elsewhere (SMPL's pickles carry extras such as ``J``)."""
    out = {}
    for k, v in raw.items():
        key = str(k)
        try:
            out[key] = _plain(v, key)
        except ValueError:
            if key in _REQUIRED or key.startswith(_NEEDED_PREFIXES):
                raise
    return out


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes at protocol < 3, limited to latin-1."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        name = None
    if name != "iso8859-1":
        raise UnsafeFileError(f"refused _codecs.encode with codec {encoding!r} (only latin-1)")
    return codecs.encode(text, "latin-1", errors)


def _numpy_global(name: str) -> Any:
    """numpy's array/scalar reconstruction functions, under numpy 1 or 2 module paths."""
    core = np._core if hasattr(np, "_core") else np.core
    if name in ("_reconstruct", "scalar"):
        return getattr(core.multiarray, name)
    return core.numeric._frombuffer  # protocol-5 pickles of contiguous arrays


#: ``(module, name)`` -> object: everything a pickle may name besides the stand-in stubs.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "object"): object,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    # protocol 0/1 pickles (Python 2's) build objects this way; its class arguments are
    # themselves resolved through this allow-list
    ("copyreg", "_reconstructor"): copyreg._reconstructor,
    ("_codecs", "encode"): _latin1_encode,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = "_reconstruct"
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = "scalar"
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = "_frombuffer"


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_ALLOWED` globals, chumpy classes (as inert stubs
    holding their state) and ``scipy.sparse`` matrices (stubs rebuilt densely); everything else
    raises :class:`UnsafeFileError` naming ``module.name``."""

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (``__builtin__``, ``copy_reg``) as the standard unpickler maps them
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStub,), {"chumpy_name": f"{module}.{name}"})
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name.endswith(
            "_matrix"
        ):
            return type(name, (_SparseStub,), {"sparse_name": name})
        found = _ALLOWED.get((module, name))
        if found is None:
            raise UnsafeFileError(
                f"refused to unpickle {module}.{name}: a model file may hold only numpy arrays, "
                "scipy.sparse matrices and chumpy arrays (nothing from a file is ever run)"
            )
        return _numpy_global(found) if isinstance(found, str) else found


def safe_unpickle(fh: Any) -> Any:
    """Unpickle ``fh`` (a binary file) through :class:`SafeUnpickler` (latin-1 for Python 2)."""
    return SafeUnpickler(fh, encoding="latin1").load()


def read_npz(path: str | Path) -> dict[str, Any]:
    """Every array of an ``.npz`` file, read with ``allow_pickle=False``; an object member (a
    pickled array of dicts or strings) is unpickled through :class:`SafeUnpickler`."""
    out: dict[str, Any] = {}
    with np.load(path, allow_pickle=False) as npz, zipfile.ZipFile(path) as zf:
        for key in npz.files:
            try:
                out[key] = npz[key]
            except ValueError as exc:
                if "allow_pickle" not in str(exc):
                    raise
                out[key] = _object_member(zf, key)
    return out


def _object_member(zf: zipfile.ZipFile, key: str) -> np.ndarray:
    with zf.open(f"{key}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(fh)
        else:
            np.lib.format.read_array_header_2_0(fh)
        value = safe_unpickle(fh)
    if not isinstance(value, np.ndarray):
        raise ValueError(f"npz member {key!r} unpickles to {type(value).__name__}, not an array")
    return value


def read_model_file(path: str | Path) -> dict[str, Any]:
    """Load an SMPL/SMPL-H/SMPL-X model file (``.pkl`` of any age, or ``.npz``) into a dict of
    numpy arrays (chumpy arrays and sparse matrices made dense numpy).

    Nothing in the file is executed (see the module docstring).

    Raises:
        ModelNotFoundError: ``path`` is not a file.
        UnsafeFileError: the pickle names a class or function outside the allow-list.
        CorruptCheckpointError: unreadable, or lacking one of SMPL's keys.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"body model file not found: {path}")
    try:
        if zipfile.is_zipfile(path):
            # an npz saved from an SMPL pickle's dict keeps its sparse J_regressor as an object
            data = _plain_dict(read_npz(path))
        elif path.suffix.lower() == ".npz":
            raise ValueError("not a zip archive, as an .npz is (truncated, or another format)")
        else:
            with open(path, "rb") as fh:
                data = safe_unpickle(fh)
            if not isinstance(data, dict):
                raise ValueError(f"expected a pickled dict, found {type(data).__name__}")
            data = _plain_dict(data)
    except UnsafeFileError as exc:
        raise UnsafeFileError(f"{path}: {exc}") from None
    except (
        OSError,
        EOFError,
        ValueError,
        pickle.UnpicklingError,
        KeyError,
        TypeError,
        AttributeError,
        ImportError,
        IndexError,
        zipfile.BadZipFile,
    ) as exc:
        raise CorruptCheckpointError(
            f"{path}: not a readable SMPL-family model file ({type(exc).__name__}: {exc})"
        ) from exc
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CorruptCheckpointError(f"{path}: not an SMPL-family model file (missing {missing})")
    _check_shapes(data, path)
    return data


def _check_shapes(data: dict[str, Any], path: Path) -> None:
    """The arrays agree with each other (V vertices, J joints), so that a damaged or mixed-up
    file fails here, naming the array, and not as a traceback deep inside a forward pass (or,
    for ``posedirs``/``weights``, only once vertices are posed)."""
    dunder = sorted(k for k in data if k.startswith("__"))
    if dunder:  # smplx turns keys into attributes: "__class__" would replace the object's class
        raise CorruptCheckpointError(f"{path}: {dunder} are not model array names")

    def shape(key: str) -> tuple[int, ...]:
        value = data[key]
        if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
            raise CorruptCheckpointError(f"{path}: {key} is not a numeric array")
        return value.shape

    tree = shape("kintree_table")
    if len(tree) != 2 or tree[0] != 2:
        raise CorruptCheckpointError(f"{path}: kintree_table must be (2, J), got {tree}")
    n_joints = tree[1]
    vertices = shape("v_template")
    if len(vertices) != 2 or vertices[1] != 3:
        raise CorruptCheckpointError(f"{path}: v_template must be (V, 3), got {vertices}")
    v = vertices[0]
    want = {
        "shapedirs": (v, 3, None),
        "weights": (v, n_joints),
        "J_regressor": (n_joints, v),
        "f": (None, 3),
    }
    for key, expected in want.items():
        got = shape(key)
        fits = len(got) == len(expected) and all(
            e is None or g == e for g, e in zip(got, expected, strict=True)
        )
        if not fits:
            text = ", ".join("K" if e is None else str(e) for e in expected)
            raise CorruptCheckpointError(f"{path}: {key} must be ({text}), got {got}")
    basis = 9 * (n_joints - 1)  # one 3x3 rotation (minus identity) per non-root joint
    posedirs = shape("posedirs")
    if posedirs[-1] != basis or int(np.prod(posedirs)) != v * 3 * basis:
        raise CorruptCheckpointError(
            f"{path}: posedirs must be ({v}, 3, {basis}) for {n_joints} joints, got {posedirs}"
        )
    faces = np.asarray(data["f"])
    if faces.size and (faces.min() < 0 or faces.max() >= v):
        raise CorruptCheckpointError(
            f"{path}: f indexes vertices {int(faces.min())}..{int(faces.max())}, but there are {v}"
        )


def infer_model_type(data: dict[str, Any]) -> str:
    """``"smpl"``, ``"smplh"`` or ``"smplx"`` from the size of the kinematic tree."""
    n = int(np.asarray(data["kintree_table"]).shape[-1])
    if n not in _JOINTS_OF:
        raise CorruptCheckpointError(
            f"kinematic tree has {n} joints; expected 24 (SMPL), 52 (SMPL-H) or 55 (SMPL-X)"
        )
    return _JOINTS_OF[n]


def _listing(folder: Path) -> dict[str, Path]:
    try:
        return {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    except OSError:
        return {}


def find_model_file(folder: str | Path, model_type: str, gender: str) -> Path:
    """The model file for ``model_type``/``gender`` inside ``folder``.

    Looks (case-insensitively) where smplx and the official downloads put it:
    ``folder[/<model_type>]/<PREFIX>_<GENDER>.{pkl,npz}``, AMASS's
    ``folder[/<model_type>]/<gender>/model.npz``, and SMPL's original names
    ``basicmodel_{neutral,m,f}_lbs_10_207_0_v1.*.pkl`` (also under ``models/``), and
    SMPLify-X/SPIN-style repositories' ``folder/models/<model_type>/``.
    """
    folder = Path(folder)
    prefix, g = _PREFIX[model_type], gender.lower()
    short = {"neutral": "neutral", "male": "m", "female": "f"}[g]
    places = [
        folder / model_type,
        folder,
        folder / model_type / "models",
        folder / "models",
        folder / "models" / model_type,
    ]
    tried = []
    for place in places:
        files = _listing(place)
        for ext in ("pkl", "npz"):
            name = f"{prefix}_{g.upper()}.{ext}".lower()
            tried.append(str(place / f"{prefix}_{g.upper()}.{ext}"))
            if name in files:
                return files[name]
        sub = _listing(place / g)
        tried.append(str(place / g / "model.npz"))
        if "model.npz" in sub:
            return sub["model.npz"]
        if model_type == "smpl":
            tried.append(str(place / f"basicmodel_{short}_lbs_10_207_0_v1.*.pkl"))
            hits = sorted(n for n in files if n.startswith(f"basicmodel_{short}_lbs_"))
            if hits:
                return files[hits[-1]]
    raise ModelNotFoundError(
        f"no {prefix} {gender} model under {folder}; looked for:\n  " + "\n  ".join(tried)
    )
