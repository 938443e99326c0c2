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

A hostile file cannot crash the interpreter or exhaust memory either: every array state the
pickle hands numpy is checked first (numpy trusts it: an object array whose element list is
shorter than its shape is a segmentation fault), and sizes are bounded by what a body model can
hold (:data:`_MAX_ELEMENTS`) before anything is allocated; what a tiny file would expand into
(a list shared through the pickle's memo, a sparse matrix's declared shape) is refused.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import copyreg
import math
import pickle
import reprlib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from advprior.errors import CorruptCheckpointError, ModelNotFoundError, UnsafeFileError
from advprior.fileio import check_zip_members

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
#: Most elements one array of a body model file may have. The largest real ones are SMPL-X's
#: posedirs (10475 x 3 x 486, 15 M) and shapedirs with 400 components (12.6 M); a sparse matrix
#: is made dense within the same bound (a few hundred joints x a few hundred thousand vertices).
_MAX_ELEMENTS = 1 << 26
#: numpy's own limit on dimensions (1.x); deeper nesting is never an array of a model file.
_MAX_NDIM = 32
#: A chumpy array wrapping a chumpy array ...: one level in real files.
_MAX_CHUMPY_DEPTH = 32


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


def _index_array(value: Any, what: str, length: int | None, bound: int) -> np.ndarray:
    """A 1-d integer array of ``length`` entries (None: any), each in ``[0, bound]``."""
    arr = _to_array(value, what)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what} must be a 1-d integer array, got {arr.dtype} {arr.shape}")
    if length is not None and arr.size != length:
        raise ValueError(f"{what} has {arr.size} entries, expected {length}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > bound):
        raise ValueError(f"{what} holds {int(arr.min())}..{int(arr.max())}, outside 0..{bound}")
    return arr.astype(np.int64)


def _dense(stub: _SparseStub) -> np.ndarray:
    """The matrix, after checking its stored arrays against each other and its shape against
    :data:`_MAX_ELEMENTS` (the shape, ``indptr`` and ``nnz`` are the file's word: trusted,
    they would allocate whatever they claim)."""
    st = stub.state
    if not isinstance(st, dict):
        raise ValueError(f"unexpected pickled state of scipy.sparse.{stub.sparse_name}")
    fmt = stub.sparse_name[:3]
    if fmt not in ("csc", "csr", "coo"):
        raise ValueError(f"scipy.sparse.{stub.sparse_name} is not supported (csc, csr, coo are)")
    shape = st.get("_shape", st.get("shape"))
    if (
        not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(isinstance(n, (int, np.integer)) and 0 <= n for n in shape)
        or math.prod(int(n) for n in shape) > _MAX_ELEMENTS
    ):
        raise ValueError(
            f"scipy.sparse.{stub.sparse_name} has shape {_brief(shape)}; a body model's is (rows, "
            f"columns) with at most {_MAX_ELEMENTS} entries"
        )
    n_rows, n_cols = (int(n) for n in shape)
    data = _to_array(st.get("data"), "sparse data")
    if data.ndim != 1 or not (data.dtype == bool or np.issubdtype(data.dtype, np.number)):
        raise ValueError(f"sparse data must be a 1-d numeric array, got {data.dtype} {data.shape}")
    nnz = data.size
    if fmt in ("csc", "csr"):
        n_major, n_minor = (n_cols, n_rows) if fmt == "csc" else (n_rows, n_cols)
        indptr = _index_array(st.get("indptr"), "sparse indptr", n_major + 1, nnz)
        if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0):
            raise ValueError(f"sparse indptr does not run from 0 up to nnz={nnz}")
        indices = _index_array(st.get("indices"), "sparse indices", nnz, n_minor - 1)
        major = np.repeat(np.arange(n_major), np.diff(indptr))
        rows, cols = (indices, major) if fmt == "csc" else (major, indices)
    else:
        # scipy < 1.13 pickles a COO matrix's indices as ``row``/``col``, later ones as ``coords``
        coords = st.get("coords")
        if coords is not None:
            if not isinstance(coords, tuple) or len(coords) != 2:
                raise ValueError("sparse coords must be a (row, col) pair of index arrays")
            st = {"row": coords[0], "col": coords[1]}
        rows = _index_array(st.get("row"), "sparse row", nnz, n_rows - 1)
        cols = _index_array(st.get("col"), "sparse col", nnz, n_cols - 1)
    out = np.zeros((n_rows, n_cols), dtype=data.dtype)
    np.add.at(out, (rows, cols), data)
    return out


def _to_array(value: Any, key: str) -> np.ndarray:
    """``np.asarray(value)``, refusing first what would expand past :data:`_MAX_ELEMENTS`:
    nested lists are walked once (iteratively), and a list or tuple met twice (the pickle's
    memo lets a tiny file nest one list in itself 2**30 times) is refused."""
    if isinstance(value, np.ndarray):
        return value
    total, seen, todo = 0, set(), [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (list, tuple)):
            if id(item) in seen:
                raise ValueError(f"{key} nests one list more than once (a memory bomb)")
            if depth >= _MAX_NDIM:
                raise ValueError(f"{key} nests lists deeper than {_MAX_NDIM}")
            seen.add(id(item))
            total += 1
            todo.extend((x, depth + 1) for x in item)
        else:
            total += item.size if isinstance(item, np.ndarray) else 1
        if total > _MAX_ELEMENTS:
            raise ValueError(f"{key} would have more than {_MAX_ELEMENTS} elements")
    return np.asarray(value)


def _plain(value: Any, key: str) -> Any:
    """Replace stubs by numpy arrays (through chumpy's wrapped ``x``, and through the 0-d
    object array ``np.savez`` wraps a sparse matrix or chumpy array in)."""
    for _ in range(_MAX_CHUMPY_DEPTH):
        if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
            inner = value.item()
            if isinstance(inner, (_SparseStub, _ChumpyStub)):
                value = inner
        if isinstance(value, _SparseStub):
            return _dense(value)
        if not isinstance(value, _ChumpyStub):
            return value
        state = value.state if isinstance(getattr(value, "state", None), dict) else {}
        if "x" not in state:
            raise ValueError(
                f"key {key!r} holds a chumpy expression ({value.chumpy_name}) that cannot be "
                "evaluated without chumpy; re-save the model with plain numpy arrays"
            )
        value = state["x"]
        if not isinstance(value, (_SparseStub, _ChumpyStub, np.ndarray)):
            return _to_array(value, key)
    raise ValueError(f"key {key!r} nests chumpy arrays deeper than {_MAX_CHUMPY_DEPTH}")


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


class _NdarrayName:
    """What a pickle's ``numpy.ndarray`` resolves to: the class argument of numpy's
    ``_reconstruct`` (the only use numpy's own pickles make of it). Calling ``ndarray`` itself
    would allocate any shape the file names, so this stand-in is not callable."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayName()


def _count(shape: Any, what: str) -> int:
    """Element count of a pickled shape (an int or a tuple of them), bounded."""
    dims = shape if isinstance(shape, tuple) else (shape,)
    if len(dims) > _MAX_NDIM or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in dims
    ):
        raise ValueError(f"{what}: {_brief(shape)} is not an array shape")
    count = math.prod(int(n) for n in dims)
    if count > _MAX_ELEMENTS:
        raise ValueError(f"{what}: shape {_brief(shape)} exceeds {_MAX_ELEMENTS} elements")
    return count


def _core() -> Any:
    return np._core if hasattr(np, "_core") else np.core


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` (the empty array a pickled array's BUILD then fills), for an
    empty plain ``ndarray`` only."""
    if subtype is not _NDARRAY:
        raise ValueError(f"numpy _reconstruct of {_brief(subtype)}, not numpy.ndarray")
    # numpy pickles (0,) here, then the real shape with its data; a larger empty array is
    # memory the file need not hold (an object one is even filled)
    if _count(shape, "numpy _reconstruct") != 0:
        raise ValueError(f"numpy _reconstruct of shape {_brief(shape)}; numpy's pickles use (0,)")
    return _core().multiarray._reconstruct(np.ndarray, shape, dtype)


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    """``copyreg._reconstructor`` as Python 2 pickles objects (chumpy's, scipy's): only for the
    inert stubs, based on ``object`` (numpy's classes would allocate unchecked)."""
    if not (isinstance(cls, type) and issubclass(cls, (_ChumpyStub, _SparseStub))):
        raise ValueError(f"copyreg._reconstructor of {_brief(cls)}: only chumpy/scipy objects")
    if base is not object:
        raise ValueError(f"copyreg._reconstructor based on {_brief(base)}, not object")
    return copyreg._reconstructor(cls, base, state)


def _check_array_state(state: Any) -> None:
    """Refuse an ``ndarray.__setstate__`` state that numpy would not check itself: it reads an
    object array's elements from the list for as many as the shape says (past the list's end:
    a segmentation fault)."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise ValueError("numpy array state is not a (version, shape, dtype, fortran, data)")
    shape, dtype, _, raw = state[-4:]
    if not isinstance(shape, tuple):
        raise ValueError(f"numpy array state: shape {_brief(shape)} is not a tuple")
    count = _count(shape, "numpy array state")
    if not isinstance(dtype, np.dtype):
        raise ValueError(f"numpy array state: {_brief(dtype)} is not a numpy dtype")
    if dtype.hasobject:
        if dtype != np.dtype(object):
            raise ValueError(f"numpy array state: dtype {dtype} holds objects in fields")
        if not isinstance(raw, list) or len(raw) != count:
            got = f"{len(raw)} items" if isinstance(raw, list) else type(raw).__name__
            raise ValueError(f"numpy object array of shape {_brief(shape)} pickled with {got}")
    else:
        if not isinstance(raw, (bytes, bytearray, str)):
            raise ValueError(f"numpy array state: data is {type(raw).__name__}, not bytes")
        if len(raw) != count * dtype.itemsize:
            raise ValueError(
                f"numpy array state: {len(raw)} bytes for shape {_brief(shape)} of {_brief(dtype)} "
                f"({count * dtype.itemsize} needed)"
            )


def _check_dtype_state(dtype: np.dtype, state: Any) -> None:
    """Only a plain (unstructured) dtype's byte order and flags may be set from a file: the
    fields of a structured state are not checked by numpy (an offset past the item size reads
    outside the array), nor is an item size other than the dtype's own."""
    if not isinstance(state, tuple) or len(state) not in (8, 9):
        raise ValueError("numpy dtype state is not numpy's (version, byteorder, ...)")
    subarray, names, fields, elsize = state[2:6]
    if subarray is not None or names is not None or fields is not None:
        raise ValueError("structured numpy dtypes are not part of a body model file")
    if elsize not in (-1, dtype.itemsize):
        raise ValueError(f"numpy dtype state: item size {_brief(elsize)} for {_brief(dtype)}")


#: ``(module, name)`` -> object: everything a pickle may name besides the stand-in stubs.
_BRIEF = reprlib.Repr()
_BRIEF.maxlevel, _BRIEF.maxtuple, _BRIEF.maxlist, _BRIEF.maxstring, _BRIEF.maxother = (
    3,
    6,
    6,
    40,
    40,
)


def _brief(value: Any) -> str:
    """A bounded description of a value read from a file, for messages: a full repr of a
    crafted, deeply shared structure takes exponential time and memory."""
    return _BRIEF.repr(value)


#: What a dict key or set item read from a file may be. Hashing a key walks it recursively in
#: C: a tuple nested a million deep crashes the interpreter, one shared 64 levels deep (327
#: bytes) hashes 2**64 nodes. Real files key their dicts by strings.
_PLAIN_KEYS = (str, bytes, int, float, type(None), np.number, np.bool_)


def _check_key(key: Any) -> Any:
    if isinstance(key, _PLAIN_KEYS):
        return key
    if isinstance(key, tuple) and len(key) <= 64 and all(isinstance(k, _PLAIN_KEYS) for k in key):
        return key
    raise ValueError(
        f"a dict key or set item must be a number, a string or a flat tuple of them, got "
        f"{type(key).__name__}"
    )


def _checked_set(items: Any = ()) -> set:
    return {_check_key(k) for k in _checked_items(items)}


def _checked_frozenset(items: Any = ()) -> frozenset:
    return frozenset(_checked_set(items))


def _checked_items(items: Any) -> list:
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise ValueError(f"a set is built from a list or tuple, got {type(items).__name__}")
    return list(items)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "object"): object,
    ("builtins", "set"): _checked_set,
    ("builtins", "frozenset"): _checked_frozenset,
    # protocol 0/1 pickles (Python 2's) build objects this way; its class arguments are
    # themselves resolved through this allow-list
    ("copyreg", "_reconstructor"): _reconstructor,
    ("_codecs", "encode"): _latin1_encode,
}
for _prefix in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_prefix}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_prefix}.multiarray", "scalar")] = _core().multiarray.scalar
    # protocol-5 pickles of contiguous arrays: a view of bytes already read, BUILD is checked
    _ALLOWED[(f"{_prefix}.numeric", "_frombuffer")] = _core().numeric._frombuffer


# The pure-Python unpickler, so that BUILD (``inst.__setstate__(state)``) can be checked before
# numpy trusts the state; the C one offers no such hook. Model files are a few large binary
# strings, so it is as fast here.
class SafeUnpickler(pickle._Unpickler):
    """An unpickler that resolves only :data:`_ALLOWED` globals, chumpy classes (as inert stubs
    holding their state) and ``scipy.sparse`` matrices (stubs rebuilt densely); everything else
    raises :class:`UnsafeFileError` naming ``module.name``. The state of every numpy array and
    dtype is checked before numpy sees it (ValueError when numpy would crash or over-allocate).
    Subclasses may say what their files hold in :attr:`holds` (the refusal quotes it)."""

    #: What a file read by this unpickler may hold, for the refusal message.
    holds = "a model file may hold only numpy arrays, scipy.sparse matrices and chumpy arrays"

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (``__builtin__``, ``copy_reg``) as the standard unpickler maps them
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStub,), {"chumpy_name": f"{module}.{name}"})
        # ``*_matrix`` and, from scipy 1.8, the ``*_array`` classes pickle the same state
        if (module == "scipy.sparse" or module.startswith("scipy.sparse.")) and name.endswith(
            ("_matrix", "_array")
        ):
            return type(name, (_SparseStub,), {"sparse_name": name})
        found = _ALLOWED.get((module, name))
        if found is None:
            raise UnsafeFileError(
                f"refused to unpickle {module}.{name}: {self.holds} (nothing from a file is "
                "ever run)"
            )
        return found

    def load_build(self) -> None:
        inst, state = self.stack[-2], self.stack[-1]
        if isinstance(inst, np.ndarray):
            _check_array_state(state)
        elif isinstance(inst, np.dtype):
            _check_dtype_state(inst, state)
        elif isinstance(inst, np.generic):
            raise ValueError("a numpy scalar has no state to set")
        elif not isinstance(inst, (_ChumpyStub, _SparseStub)):
            # BUILD sets attributes: on an allow-listed class or function (the ndarray
            # sentinel, numpy's _frombuffer) it would change them for the whole process
            raise ValueError(f"refused to set the state of {type(inst).__name__} {_brief(inst)}")
        super().load_build()

    def load_setitem(self) -> None:
        _check_key(self.stack[-2])
        super().load_setitem()

    def load_setitems(self) -> None:
        for key in self._after_mark()[::2]:
            _check_key(key)
        super().load_setitems()

    def load_dict(self) -> None:
        for key in self._after_mark()[::2]:
            _check_key(key)
        super().load_dict()

    def load_additems(self) -> None:
        for item in self._after_mark():
            _check_key(item)
        super().load_additems()

    def load_frozenset(self) -> None:
        for item in self._after_mark():
            _check_key(item)
        super().load_frozenset()

    def _after_mark(self) -> list:
        # pickle._Unpickler keeps the items since the last MARK in self.stack (the outer
        # stack is in self.metastack), so they can be checked before it builds anything
        return list(self.stack)

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.DICT[0]] = load_dict
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.FROZENSET[0]] = load_frozenset


def safe_unpickle(fh: Any) -> Any:
    """Unpickle ``fh`` (a binary file) through :class:`SafeUnpickler` (latin-1 for Python 2)."""
    return SafeUnpickler(fh, encoding="latin1").load()


def read_npz(path: str | Path) -> dict[str, Any]:
    """Every array of an ``.npz`` file, read with ``allow_pickle=False``; an object member (a
    pickled array of dicts or strings) is unpickled through :class:`SafeUnpickler`."""
    out: dict[str, Any] = {}
    check_zip_members(path, "model")  # a zip bomb: ValueError naming the file and member
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
        # what a hostile file's sizes or nesting could still cause despite the bounds above
        MemoryError,
        RecursionError,
        OverflowError,
        RuntimeError,  # numpy's own refusals of a crafted scalar or array state
    ) as exc:
        raise CorruptCheckpointError(
            f"{path}: not a readable SMPL-family model file ({type(exc).__name__}: "
            f"{str(exc)[:300]})"
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
    _check_tree(data["kintree_table"], path)
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
    _check_family_arrays(data, path, n_joints, len(faces))


def _check_family_arrays(data: dict[str, Any], path: Path, n_joints: int, n_faces: int) -> None:
    """SMPL-H's and SMPL-X's arrays beyond SMPL's, as smplx reads them: a missing or misshaped
    one failed inside smplx, as an ``AttributeError`` while building the model or an
    ``IndexError`` at the first forward pass. Hand PCA arrays may be absent (the hands are posed
    without them); SMPL-X's face landmarks may not."""

    def numeric(key: str) -> np.ndarray:
        value = data[key]
        if not isinstance(value, np.ndarray) or not np.issubdtype(value.dtype, np.number):
            raise CorruptCheckpointError(f"{path}: {key} is not a numeric array")
        return value

    def face_indices(key: str, ndim: int) -> np.ndarray:
        idx = numeric(key)
        # smplx casts these to int64: integer-valued floats are read as well
        if idx.ndim != ndim or (idx.size and not np.array_equal(idx, np.round(idx))):
            raise CorruptCheckpointError(
                f"{path}: {key} must be a {ndim}-d array of triangle indices, got {idx.dtype} "
                f"{idx.shape}"
            )
        if idx.size and (idx.min() < 0 or idx.max() >= n_faces):
            raise CorruptCheckpointError(
                f"{path}: {key} indexes triangles {int(idx.min())}..{int(idx.max())}, but f has "
                f"{n_faces}"
            )
        return idx

    def bary(key: str, idx: np.ndarray) -> None:
        got = numeric(key).shape
        if got != (*idx.shape, 3):
            raise CorruptCheckpointError(
                f"{path}: {key} must be {(*idx.shape, 3)} (3 barycentric coordinates per "
                f"landmark), got {got}"
            )

    if n_joints in (52, 55):
        for side in "lr":
            if f"hands_mean{side}" in data and numeric(f"hands_mean{side}").shape != (45,):
                raise CorruptCheckpointError(
                    f"{path}: hands_mean{side} must be (45,) (15 finger joints x 3), got "
                    f"{data[f'hands_mean{side}'].shape}"
                )
            comps = f"hands_components{side}"
            if comps in data and (numeric(comps).ndim != 2 or data[comps].shape[1] != 45):
                raise CorruptCheckpointError(
                    f"{path}: {comps} must be (K, 45), got {data[comps].shape}"
                )
    if n_joints != 55:
        return
    missing = [k for k in ("lmk_faces_idx", "lmk_bary_coords") if k not in data]
    if missing:
        raise CorruptCheckpointError(
            f"{path}: an SMPL-X model file (55 joints) needs {missing} (its face landmarks)"
        )
    bary("lmk_bary_coords", face_indices("lmk_faces_idx", 1))
    dynamic = ("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords")
    present = [k for k in dynamic if k in data]
    if len(present) == 1:
        other = dynamic[1 - dynamic.index(present[0])]
        raise CorruptCheckpointError(f"{path}: {present[0]} without {other}")
    if present:
        bary(dynamic[1], face_indices(dynamic[0], 2))


def _check_tree(table: np.ndarray, path: Path) -> None:
    """``kintree_table[0]`` are the joints' parents: joint 0's is the root marker (-1, or the
    largest value of an unsigned type: SMPL's uint32 4294967295), every other joint's an
    earlier joint, so that they form the tree smplx walks (a parent out of range, or a cycle,
    failed only at the first forward pass)."""
    if table.shape[1] < 1 or table.dtype.kind not in "iu":
        raise CorruptCheckpointError(
            f"{path}: kintree_table must hold integer joint indices, got {table.dtype} "
            f"{table.shape}"
        )
    root = int(table[0, 0])
    markers = {-1, 2**32 - 1}  # SMPL's uint32 -1, also once converted to a wider type
    if table.dtype.kind == "u":
        markers.add(int(np.iinfo(table.dtype).max))
    if root not in markers:
        raise CorruptCheckpointError(
            f"{path}: kintree_table's root (joint 0) must have parent -1, got {root}"
        )
    parents = table[0, 1:].astype(np.int64)
    bad = np.flatnonzero((parents < 0) | (parents > np.arange(parents.size)))
    if bad.size:
        j = int(bad[0]) + 1
        raise CorruptCheckpointError(
            f"{path}: kintree_table gives joint {j} the parent {int(table[0, j])}; each joint's "
            f"parent must be an earlier joint (0..{j - 1}) so that the joints form a tree"
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
