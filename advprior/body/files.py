"""Reading SMPL-family model files without chumpy, and finding them in a folder.

SMPL's original ``.pkl`` files (2015, Python 2) pickle some arrays as ``chumpy.Ch`` objects and
``J_regressor`` as a ``scipy.sparse`` matrix. :func:`read_model_file` unpickles them with stub
classes that keep the pickled state and turns each into a plain ``numpy`` array, so neither
chumpy nor scipy is needed. ``.npz`` files (SMPL-X, AMASS's SMPL-H, converted SMPL) load as is.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from advprior.errors import CorruptCheckpointError, ModelNotFoundError

__all__ = ["MODEL_TYPES", "GENDERS", "read_model_file", "find_model_file", "infer_model_type"]

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
    """Replace stubs by numpy arrays (recursively through chumpy's wrapped ``x``)."""
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


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyStub,), {"chumpy_name": f"{module}.{name}"})
        if module.startswith("scipy.sparse") and name.endswith("_matrix"):
            return type(name, (_SparseStub,), {"sparse_name": name})
        if module.startswith("numpy.core") and hasattr(np, "_core"):
            # numpy 2 renamed numpy.core; the old path still imports but warns
            module = "numpy._core" + module[len("numpy.core") :]
        return super().find_class(module, name)


def read_model_file(path: str | Path) -> dict[str, Any]:
    """Load an SMPL/SMPL-H/SMPL-X model file (``.pkl`` of any age, or ``.npz``) into a dict of
    numpy arrays (chumpy arrays and sparse matrices made dense numpy).

    Raises:
        ModelNotFoundError: ``path`` is not a file.
        CorruptCheckpointError: unreadable, or lacking one of SMPL's keys.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"body model file not found: {path}")
    try:
        if zipfile.is_zipfile(path):
            with np.load(path, allow_pickle=True) as npz:
                data = {k: npz[k] for k in npz.files}
        else:
            with open(path, "rb") as fh:
                data = _Unpickler(fh, encoding="latin1").load()
            if not isinstance(data, dict):
                raise ValueError(f"expected a pickled dict, found {type(data).__name__}")
            data = _plain_dict(data)
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
    return data


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
    ``basicmodel_{neutral,m,f}_lbs_10_207_0_v1.*.pkl`` (also under ``models/``).
    """
    folder = Path(folder)
    prefix, g = _PREFIX[model_type], gender.lower()
    short = {"neutral": "neutral", "male": "m", "female": "f"}[g]
    places = [folder / model_type, folder, folder / model_type / "models", folder / "models"]
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
