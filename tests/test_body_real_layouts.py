"""The SMPL-family files users bring, rebuilt in each real layout from the open stand-in.

The licensed files are never here, so each layout is written from the stand-in's arrays exactly
as the real files store them (keys, containers, dtypes, pickle protocol and string opcodes),
after their public descriptions and smplx's loader: SMPL v1.0.0 / v1.1.0 Python 2 chumpy
pickles (``basicModel_*_lbs_10_207_0_v1.*.pkl``), a chumpy-free SMPL pickle and ``.npz``,
AMASS's SMPL-H ``<gender>/model.npz`` (16 betas), the MANO-merged ``SMPLH_*.pkl``, SMPL-X
``.npz`` (2019: 10 betas + 10 expressions; v1.1: 300 + 100, dynamic landmarks) and ``.pkl``.
Unlike the stand-in, these carry pose blend shapes (random, of SMPL's size), so posing is
checked against an independent float64 LBS written here, and against smplx itself on the same
file where smplx can read it.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import pickletools
import struct
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import smplx
import torch
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from advprior.body import forward_kinematics, load_body_model
from advprior.body.standin import build_standin, smpl_layout
from advprior.errors import CorruptCheckpointError, UnsafeFileError
from advprior.skeleton import PARENTS
from advprior.version import torch_has_wide_unsigned

SMPL_V, SMPLX_V = 6890, 10475


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVPRIOR_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


# ------------------------------------------------------------------ building the arrays


def _hand_tree(wrist: int, first: int) -> list[int]:
    """SMPL-H/X finger parents (index, middle, pinky, ring, thumb; three joints each)."""
    return [p for f in range(5) for p in (wrist, first + 3 * f, first + 3 * f + 1)]


def _family(model_type: str, *, standard: bool = False, betas: int = 10, expr: int = 0) -> dict:
    """Plain float64 arrays of an SMPL / SMPL-H / SMPL-X model on the stand-in's surface: the
    compact mesh, or (``standard``) renumbered to the real mesh's vertex count with the landmark
    vertices at smplx's default indices. Fingers sit on SMPL's hand joints, jaw and eyes on the
    head; shape directions beyond the stand-in's 10, expressions and pose blend shapes are
    random (a few millimetres per unit, as SMPL's)."""
    data = build_standin()
    if standard:
        n = SMPLX_V if model_type == "smplx" else SMPL_V
        table = SMPLX_VERTEX_IDS["smplx" if model_type == "smplx" else "smplh"]
        data = smpl_layout(data, num_vertices=n, vertex_ids=table)
    rng = np.random.default_rng(["smpl", "smplh", "smplx"].index(model_type))
    v = len(data["v_template"])
    face = [15, 15, 15] if model_type == "smplx" else []
    hands = model_type != "smpl"
    left, right = 22 + len(face), 37 + len(face)
    if hands:
        parents = [-1, *PARENTS[1:22], *face, *_hand_tree(20, left), *_hand_tree(21, right)]
        source = list(range(22)) + face + [22] * 15 + [23] * 15
    else:
        parents, source = [-1, *PARENTS[1:]], list(range(24))
    n = len(parents)
    weights = np.asarray(data["weights"], dtype=np.float64)
    if hands:
        wide = np.zeros((v, n))
        wide[:, :22] = weights[:, :22]
        wide[:, left + 3], wide[:, right + 3] = weights[:, 22], weights[:, 23]  # middle1
        weights = wide
    dirs = np.asarray(data["shapedirs"], dtype=np.float64)
    extra = rng.normal(scale=0.003, size=(v, 3, betas - 10 + expr))
    out = {
        "v_template": np.asarray(data["v_template"], dtype=np.float64),
        "f": np.asarray(data["f"]).astype(np.uint32),
        "weights": weights,
        "J_regressor": np.asarray(data["J_regressor"], dtype=np.float64)[source],
        "kintree_table": np.array([parents, list(range(n))], dtype=np.int64),
        "shapedirs": np.concatenate([dirs, extra], -1),
        "posedirs": rng.normal(scale=0.003, size=(v, 3, 9 * (n - 1))),
    }
    if hands:
        for side in "lr":
            out[f"hands_components{side}"] = np.linalg.qr(rng.normal(size=(45, 45)))[0]
            out[f"hands_mean{side}"] = rng.normal(scale=0.1, size=45)
    if model_type == "smplx":
        out["lmk_faces_idx"] = (np.arange(51) * 97 % len(out["f"])).astype(np.int64)
        out["lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=51)
        out["dynamic_lmk_faces_idx"] = rng.integers(0, len(out["f"]), size=(79, 17))
        out["dynamic_lmk_bary_coords"] = rng.dirichlet(np.ones(3), size=(79, 17))
    return out


# --------------------------------------------------------------- writing the real layouts


class _Py2Pickler(pickle._Pickler):
    """Writes every ``str`` and ``bytes`` as a Python 2 ``str`` (``SHORT_BINSTRING`` /
    ``BINSTRING``), as the 2015 SMPL files hold their keys, strings and array bytes."""

    def _py2_str(self, obj: str | bytes, raw: bytes) -> None:
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    def save_bytes(self, obj: bytes) -> None:
        self._py2_str(obj, obj)

    def save_str(self, obj: str) -> None:
        self._py2_str(obj, obj.encode("latin1"))

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def _py2_dumps(obj: object) -> bytes:
    fh = io.BytesIO()
    _Py2Pickler(fh, protocol=2).dump(obj)
    blob = fh.getvalue()
    ops = {op.name for op, _, _ in pickletools.genops(blob)}
    assert not ops & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}, ops
    return blob


class _Ch:
    """A stand-in for ``chumpy.ch.Ch`` that pickles as the real one (its state holds ``x``)."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.asarray(x)
        self._dirty_vars: set = set()


_Ch.__module__, _Ch.__qualname__, _Ch.__name__ = "chumpy.ch", "Ch", "Ch"


@contextlib.contextmanager
def _chumpy() -> Iterator[type]:
    """``chumpy.ch.Ch`` importable (to pickle it) while inside; chumpy is not installed."""
    pkg, sub = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    sub.Ch, pkg.ch = _Ch, sub
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": pkg, "chumpy.ch": sub})
    try:
        yield _Ch
    finally:
        for k, mod in saved.items():
            if mod is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = mod


def _smpl_original(a: dict, *, chumpy: bool = True) -> dict:
    """SMPL's 2015 pickle dict: chumpy arrays, sparse regressors, uint32 tree, extra keys."""
    with _chumpy() as ch:
        wrap = ch if chumpy else np.asarray
        return {
            "v_template": wrap(a["v_template"]),
            "shapedirs": wrap(a["shapedirs"]),
            "posedirs": wrap(a["posedirs"]),
            "weights": wrap(a["weights"]),
            "J": wrap(a["J_regressor"] @ a["v_template"]),
            "J_regressor": scipy.sparse.csc_matrix(a["J_regressor"]),
            "J_regressor_prior": scipy.sparse.csc_matrix(a["J_regressor"]),
            "weights_prior": a["weights"],
            "kintree_table": np.where(a["kintree_table"] < 0, 2**32 - 1, a["kintree_table"]).astype(
                np.uint32
            ),
            "f": a["f"],
            "vert_sym_idxs": np.arange(len(a["v_template"])),
            "bs_style": "lbs",
            "bs_type": "lrotmin",
            "pose_training_info": {"nSubjects": 10, "nPoses": 1786},
        }


def _pickled(obj: dict, py2: bool) -> bytes:
    with _chumpy():  # pickling a Ch needs its class importable
        return _py2_dumps(obj) if py2 else pickle.dumps(obj, protocol=4)


def _write(path: Path, blob: bytes | dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(blob, dict):
        with open(path, "wb") as fh:
            np.savez(fh, **blob)
    else:
        path.write_bytes(blob)
    return path


def _smpl_v100(root: Path, a: dict) -> Path:
    name = "smpl/models/basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    return _write(root / name, _pickled(_smpl_original(a), py2=True))


def _smpl_v110(root: Path, a: dict) -> Path:
    """As v1.0.0, 300 betas; arrays Fortran-ordered (pickled with numpy's Fortran flag)."""
    name = "smpl/models/basicmodel_m_lbs_10_207_0_v1.1.0.pkl"
    fortran = {k: np.asfortranarray(v) for k, v in a.items()}
    return _write(root / name, _pickled(_smpl_original(fortran), py2=True))


def _smpl_clean_pkl(root: Path, a: dict) -> Path:
    """A chumpy-free SMPL pickle (smplx's clean-up tool's output): numpy arrays, Python 3."""
    return _write(
        root / "smpl" / "SMPL_NEUTRAL.pkl", _pickled(_smpl_original(a, chumpy=False), False)
    )


def _smpl_npz_f32_fortran(root: Path, a: dict) -> Path:
    arrays = {
        k: np.asfortranarray(v.astype(np.float32) if v.dtype == np.float64 else v)
        for k, v in a.items()
    }
    return _write(root / "SMPL_FEMALE.npz", arrays)


def _smplh_amass(root: Path, a: dict) -> Path:
    """AMASS's ``smplh/<gender>/model.npz``: 16 betas, the tree as int64 with SMPL's uint32
    root marker, strings, and the sparse prior regressor pickled as an object member."""
    arrays = dict(a)
    arrays["kintree_table"] = np.where(a["kintree_table"] < 0, 2**32 - 1, a["kintree_table"])
    boxed = np.empty((), dtype=object)
    boxed[()] = scipy.sparse.csc_matrix(a["J_regressor"])
    arrays.update(
        J=a["J_regressor"] @ a["v_template"],
        J_regressor_prior=boxed,
        weights_prior=a["weights"],
        bs_style=np.array("lbs"),
        bs_type=np.array("lrotmin"),
    )
    return _write(root / "smplh" / "male" / "model.npz", arrays)


def _smplh_mano_merged(root: Path, a: dict) -> Path:
    """MANO's SMPLH_female.pkl merged with its hand PCA: a Python 2 chumpy pickle."""
    merged = _smpl_original(a)
    with _chumpy() as ch:
        for side in "lr":
            merged[f"hands_components{side}"] = ch(a[f"hands_components{side}"])
            merged[f"hands_mean{side}"] = a[f"hands_mean{side}"]
            merged[f"hands_coeffs{side}"] = np.zeros((1554, 45))
    return _write(root / "smplh" / "SMPLH_FEMALE.pkl", _pickled(merged, py2=True))


def _smplx_extras(a: dict) -> dict:
    """What SMPL-X's files carry besides the arrays smplx reads."""
    j2n = np.empty((), dtype=object)
    j2n[()] = {"pelvis": 0, "jaw": 22}
    p2n = np.empty((), dtype=object)
    p2n[()] = {"global": 0}
    return {
        **a,
        "joint2num": j2n,
        "part2num": p2n,
        "vt": np.zeros((12, 2)),
        "ft": np.zeros((4, 3), dtype=np.uint32),
        "hands_coeffsl": np.zeros((10, 45)),
        "hands_coeffsr": np.zeros((10, 45)),
        "lmk_faces_idx": a["lmk_faces_idx"].astype(np.uint32),
    }


def _smplx_npz_2019(root: Path, a: dict) -> Path:
    arrays = _smplx_extras(a)
    for k in ("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"):
        arrays.pop(k)  # added in the later release
    return _write(root / "smplx" / "SMPLX_NEUTRAL.npz", arrays)


def _smplx_npz_v11(root: Path, a: dict) -> Path:
    arrays = {
        k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in _smplx_extras(a).items()
    }
    return _write(root / "models" / "smplx" / "SMPLX_MALE.npz", arrays)


def _smplx_pkl(root: Path, a: dict) -> Path:
    data = {k: v.item() if v.dtype == object else v for k, v in _smplx_extras(a).items()}
    data["J_regressor"] = scipy.sparse.csc_matrix(a["J_regressor"])
    return _write(root / "SMPLX_NEUTRAL.pkl", pickle.dumps(data, protocol=4))


# name: (writer, model type, family arguments, load_body_model arguments, gender)
LAYOUTS = {
    "smpl-v1.0.0-py2-chumpy": (_smpl_v100, "smpl", {}, {}),
    "smpl-v1.1.0-py2-chumpy-300-betas": (_smpl_v110, "smpl", {"betas": 300}, {"gender": "male"}),
    "smpl-chumpy-free-pkl": (_smpl_clean_pkl, "smpl", {}, {}),
    "smpl-npz-float32-fortran": (_smpl_npz_f32_fortran, "smpl", {}, {"gender": "female"}),
    "smplh-amass-npz-16-betas": (_smplh_amass, "smplh", {"betas": 16}, {"gender": "male"}),
    "smplh-mano-merged-py2-chumpy-pkl": (_smplh_mano_merged, "smplh", {}, {"gender": "female"}),
    "smplx-2019-npz": (_smplx_npz_2019, "smplx", {"expr": 10}, {}),
    "smplx-v1.1-npz-float32": (
        _smplx_npz_v11,
        "smplx",
        {"betas": 300, "expr": 100},
        {"gender": "male"},
    ),
    "smplx-pkl-sparse-regressor": (_smplx_pkl, "smplx", {"betas": 300, "expr": 100}, {}),
}


# ------------------------------------------------------------------ an independent LBS


def _rodrigues(aa: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of axis-angle ``(..., 3)`` (float64)."""
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)[..., None]
    axis = aa / np.maximum(np.linalg.norm(aa, axis=-1, keepdims=True), 1e-300)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*aa.shape[:-1], 3, 3)
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def _lbs(a: dict, go: np.ndarray, pose: np.ndarray, betas: np.ndarray) -> tuple:
    """SMPL's linear blend skinning in float64 from the file's arrays: ``(vertices (n, V, 3),
    posed joints (n, J, 3))`` for ``go (n, 3)``, every joint's ``pose (n, J - 1, 3)``."""
    parents = a["kintree_table"][0].astype(np.int64)
    k = betas.shape[-1]
    shaped = a["v_template"] + np.einsum("vck,nk->nvc", a["shapedirs"][..., :k], betas)
    rest = np.einsum("jv,nvc->njc", a["J_regressor"], shaped)
    rot = _rodrigues(np.concatenate([go[:, None], pose], 1))
    features = (rot[:, 1:] - np.eye(3)).reshape(len(go), -1)
    posed = shaped + np.einsum("np,vcp->nvc", features, a["posedirs"])
    world = np.zeros((*rot.shape[:2], 4, 4))
    world[..., 3, 3] = 1.0
    for j in range(rot.shape[1]):
        local = np.zeros((len(go), 4, 4))
        local[:, :3, :3], local[:, 3, 3] = rot[:, j], 1.0
        local[:, :3, 3] = rest[:, j] - (rest[:, parents[j]] if j else 0.0)
        world[:, j] = local if j == 0 else world[:, parents[j]] @ local
    joints = world[..., :3, 3].copy()
    world[..., :3, 3] -= np.einsum("njab,njb->nja", world[..., :3, :3], rest)
    skin = np.einsum("vj,njab->nvab", a["weights"], world)
    verts = np.einsum("nvab,nvb->nva", skin[..., :3, :3], posed) + skin[..., :3, 3]
    return verts, joints


def _depth(parents: np.ndarray) -> int:
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    return max(depth) + 1


def _atol(a: dict, dtype: torch.dtype, betas: np.ndarray) -> float:
    """Bound on one floating route's error for the LBS above, metres: each of the chain's
    ``depth`` levels composes a rotation and a translation (~4 roundings of eps |x| per
    coordinate, twice over for the skinning transform and its rest-joint correction), bodies
    span ``|x| <= 2`` m; the blend shapes add one rounding per term of their P pose and K shape
    products (eps times the largest term)."""
    eps = torch.finfo(dtype).eps
    parents = a["kintree_table"][0].astype(np.int64)
    chain = 8 * _depth(parents) * 2.0
    pose_terms = a["posedirs"].shape[-1] * 2 * np.abs(a["posedirs"]).max()
    k = betas.shape[-1]
    shape_terms = k * np.abs(a["shapedirs"][..., :k]).max() * np.abs(betas).max()
    return float(eps * (chain + pose_terms + shape_terms))


def _inputs(n: int, num_betas: int, seed: int = 0) -> tuple:
    gen = np.random.default_rng(seed)
    return (
        gen.normal(scale=0.5, size=(n, 3)),
        gen.normal(scale=0.4, size=(n, 23, 3)),
        gen.normal(size=(n, num_betas)),
    )


# ----------------------------------------------------------------------------- the tests

SKELETON = {"smpl": list(range(24)), "smplh": [*range(22), 25, 40], "smplx": [*range(22), 28, 43]}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_real_layout_loads_and_poses_as_lbs(layout: str, tmp_path: Path) -> None:
    """Right joint and vertex counts, 69- and 63-d body poses, and posed vertices and joints
    equal to an independent LBS of the file's arrays, in float32 and (exact: the file's own
    float64 numbers, where smplx rounded them through float32) float64."""
    write, model_type, family, kwargs = LAYOUTS[layout]
    a = _family(model_type, **family)
    path = write(tmp_path, a)
    n_joints = a["kintree_table"].shape[1]
    # the arrays as stored: float32 layouts are posed from their float32 numbers
    stored = (
        {k: v.astype(np.float32).astype(np.float64) for k, v in a.items()}
        if ("float32" in layout)
        else a
    )
    go, raw, betas = _inputs(3, min(family.get("betas", 10), 20))  # more than 10 where stored
    pose = raw
    if model_type != "smpl":  # SMPL's hand joints (22, 23) do not exist: fingers stay flat
        pose = np.concatenate([raw[:, :21], np.zeros((3, n_joints - 22, 3))], 1)
    ref_verts, ref_joints = _lbs(stored, go, pose, betas)
    # the file in both precisions, and the folder it was written into
    for where, dtype in ((path, torch.float32), (path, torch.float64), (tmp_path, torch.float32)):
        body = load_body_model(where, model_type, num_betas=betas.shape[-1], dtype=dtype, **kwargs)
        assert body.model_type == model_type and body.source == path
        assert body.num_vertices == len(a["v_template"]) and body.num_betas == betas.shape[-1]
        assert body.layer.J_regressor.shape[0] == n_joints and body.faces.shape == a["f"].shape
        args = [torch.as_tensor(x, dtype=dtype) for x in (go, raw.reshape(3, 69))]
        out = body(args[0], args[1], betas=torch.as_tensor(betas, dtype=dtype))
        tol = _atol(stored, dtype, betas)
        np.testing.assert_allclose(out.vertices.numpy(), ref_verts, atol=tol, rtol=0)
        np.testing.assert_allclose(
            out.model_joints[:, :n_joints].numpy(), ref_joints, atol=tol, rtol=0
        )
        np.testing.assert_allclose(
            out.joints.numpy(), ref_joints[:, SKELETON[model_type]], atol=tol, rtol=0
        )
        fk = forward_kinematics(*args, torch.as_tensor(betas, dtype=dtype), body_model=body)
        np.testing.assert_allclose(
            fk.numpy(), ref_joints[:, SKELETON[model_type]], atol=tol, rtol=0
        )
        short = body(args[0], args[1][:, :63], betas=torch.as_tensor(betas, dtype=dtype))
        if model_type != "smpl":  # the same body: a 69-d pose's last 6 values are dropped
            torch.testing.assert_close(short.vertices, out.vertices, atol=0, rtol=0)
        else:  # a 63-d pose leaves SMPL's hand joints at identity
            assert (short.vertices - out.vertices).abs().max() > 100 * tol


# smplx reads neither chumpy nor SMPL from .npz
@pytest.mark.parametrize(
    "layout", [k for k in LAYOUTS if "chumpy" not in k and "smpl-npz" not in k]
)
def test_the_same_file_posed_by_smplx_itself(layout: str, tmp_path: Path) -> None:
    """On the real vertex count, smplx reading the file itself poses the same vertices and
    joints, landmarks and vertex joints included."""
    write, model_type, family, kwargs = LAYOUTS[layout]
    if model_type == "smplx" and not torch_has_wide_unsigned():
        pytest.skip("smplx itself cannot read SMPL-X's uint32 lmk_faces_idx on torch < 2.3")
    a = _family(model_type, standard=True, **family)
    path = write(tmp_path, a)
    ext = path.suffix[1:]
    if path.name == "model.npz":  # smplx finds files only by its own names
        path = _write(tmp_path / "SMPLH_MALE.npz", dict(np.load(path, allow_pickle=True)))
    theirs = smplx.create(
        str(path), model_type=model_type, ext=ext, use_pca=False, flat_hand_mean=True,
        num_betas=10, batch_size=2,
    )  # fmt: skip
    ours = load_body_model(path, **kwargs)
    go, pose, betas = _inputs(2, 10, seed=1)
    n_body = 23 if model_type == "smpl" else 21
    t = {
        "global_orient": torch.as_tensor(go, dtype=torch.float32),
        "body_pose": torch.as_tensor(pose[:, :n_body].reshape(2, -1), dtype=torch.float32),
        "betas": torch.as_tensor(betas, dtype=torch.float32),
    }
    want = theirs(**t)
    got = ours(t["global_orient"], t["body_pose"], betas=t["betas"])
    stored = {k: v.astype(np.float32).astype(np.float64) for k, v in a.items()}
    tol = 2 * _atol(stored, torch.float32, betas)  # two float32 routes
    torch.testing.assert_close(got.vertices, want.vertices, atol=tol, rtol=0)
    torch.testing.assert_close(got.model_joints, want.joints, atol=tol, rtol=0)


def test_float64_model_keeps_the_files_float64_numbers(tmp_path: Path) -> None:
    """smplx rounds every array through float32 whatever dtype it builds in: a float64 model
    (ours, and the plain smplx one of as_smplx) now holds the file's own numbers."""
    a = _family("smplx", expr=10)
    path = _smplx_npz_2019(tmp_path, a)
    for model in (
        load_body_model(path, dtype=torch.float64).layer,
        load_body_model(path, dtype=torch.float64, as_smplx=True),
    ):
        for name, key in (("v_template", "v_template"), ("J_regressor", "J_regressor")):
            np.testing.assert_array_equal(getattr(model, name).numpy(), a[key])
        np.testing.assert_array_equal(model.lbs_weights.numpy(), a["weights"])
        np.testing.assert_array_equal(model.shapedirs.numpy(), a["shapedirs"][..., :10])
        np.testing.assert_array_equal(model.expr_dirs.numpy(), a["shapedirs"][..., 10:20])
        np.testing.assert_array_equal(
            model.posedirs.numpy(), a["posedirs"].reshape(-1, a["posedirs"].shape[-1]).T
        )
    # what the caller hands smplx instead is kept
    own = torch.zeros(len(a["v_template"]), 3, dtype=torch.float64)
    plain = load_body_model(path, dtype=torch.float64, as_smplx=True, v_template=own)
    assert plain.v_template.abs().max() == 0


def test_scipy_sparse_arrays_and_new_coo_pickles_read(tmp_path: Path) -> None:
    """A regressor re-saved with scipy >= 1.8's sparse arrays (``csc_array``), or a COO
    matrix pickled by scipy >= 1.13 (indices in ``coords``), was refused or unreadable."""
    a = _family("smpl")
    want = load_body_model(_smpl_clean_pkl(tmp_path / "ref", a)).layer.J_regressor
    for i, sparse in enumerate((scipy.sparse.csc_array, scipy.sparse.coo_matrix)):
        data = _smpl_original(a, chumpy=False)
        data["J_regressor"] = sparse(a["J_regressor"])
        path = _write(tmp_path / f"SMPL_{i}.pkl", pickle.dumps(data, protocol=4))
        torch.testing.assert_close(load_body_model(path).layer.J_regressor, want, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda a: a.pop("lmk_faces_idx"), r"SMPL-X model file \(55 joints\) needs \['lmk_faces"),
        (lambda a: a.pop("lmk_bary_coords"), r"needs \['lmk_bary_coords'\]"),
        (lambda a: a.update(lmk_faces_idx=a["lmk_faces_idx"] + 10**6), "lmk_faces_idx indexes"),
        (lambda a: a.update(lmk_bary_coords=np.ones((50, 3))), r"lmk_bary_coords must be \(51, 3"),
        (lambda a: a.pop("dynamic_lmk_bary_coords"), "dynamic_lmk_faces_idx without dynamic_lmk_b"),
        (lambda a: a.update(dynamic_lmk_faces_idx=np.zeros(79)), "must be a 2-d array of triangle"),
        (lambda a: a.update(hands_meanl=np.zeros(6)), r"hands_meanl must be \(45,\)"),
        (lambda a: a.update(hands_componentsr=np.eye(6)), r"hands_componentsr must be \(K, 45\)"),
    ],
)
def test_smplx_arrays_beyond_smpls_are_checked_when_read(tmp_path: Path, change, match) -> None:
    """A missing or misshaped face-landmark or hand array failed inside smplx (an
    AttributeError while building, an IndexError at the first forward pass)."""
    a = _family("smplx", expr=10)
    change(a)
    path = _write(tmp_path / "SMPLX_NEUTRAL.npz", a)
    with pytest.raises(CorruptCheckpointError, match=f"^{path}: .*{match}"):
        load_body_model(path)


def test_smplx_file_without_hand_pca_loads(tmp_path: Path) -> None:
    """The hands are posed without PCA: an SMPL-X file lacking it loads, as SMPL-H's does."""
    a = _family("smplx", expr=10)
    for key in [k for k in a if k.startswith("hands_")]:
        del a[key]
    path = _write(tmp_path / "SMPLX_NEUTRAL.npz", a)
    assert type(load_body_model(path, as_smplx=True, use_pca=False)).__name__ == "SMPLX"
    # smplx's default hand PCA would read a made-up identity: refused, naming the way out
    with pytest.raises(ValueError, match=r"no hand PCA .*pass use_pca=False"):
        load_body_model(path, as_smplx=True)
    go, pose, betas = _inputs(1, 10, seed=3)
    pose = np.concatenate([pose[:, :21], np.zeros((1, 33, 3))], 1)
    out = load_body_model(path, dtype=torch.float64)(
        torch.as_tensor(go), torch.as_tensor(pose[:, :21].reshape(1, 63)), torch.as_tensor(betas)
    )
    np.testing.assert_allclose(out.vertices.numpy(), _lbs(a, go, pose, betas)[0], atol=1e-12)


# ------------------------------------------------------------ fitting on each family's file


def _standard_file(model_type: str, root: Path) -> tuple[Path, dict]:
    """A file of each family on the real vertex count (smplx's default landmark indices), and
    its arrays."""
    family = {"smpl": {}, "smplh": {"betas": 16}, "smplx": {"expr": 10}}[model_type]
    writer = {"smpl": _smpl_v100, "smplh": _smplh_amass, "smplx": _smplx_npz_2019}[model_type]
    a = _family(model_type, standard=True, **family)
    return writer(root, a), a


@pytest.mark.parametrize("model_type", ["smpl", "smplh", "smplx"])
def test_surface_keypoints_are_the_files_landmark_vertices(model_type: str, tmp_path) -> None:
    """coco17 / openpose25 keypoints on each family's model are its skeleton joints and the
    vertices smplx's table names (after 24, 52 or 55 skeleton joints; SMPL's route skins only
    those vertices, with the file's pose blend shapes)."""
    from advprior.fitting import KEYPOINT_FORMATS
    from advprior.fitting.smplify import body_keypoints

    path, a = _standard_file(model_type, tmp_path)
    body = load_body_model(path)
    table = SMPLX_VERTEX_IDS["smplx" if model_type == "smplx" else "smplh"]
    go, pose, betas = (torch.as_tensor(x, dtype=torch.float32) for x in _inputs(2, 10, seed=5))
    pose = pose[:, :21].reshape(2, 63)
    out = body(go, pose, betas=betas)
    for name in ("coco17", "openpose25"):
        fmt = KEYPOINT_FORMATS[name]
        points, joints = body_keypoints(go, pose, betas, body_model=body, keypoint_format=name)
        want = torch.stack(
            [
                out.vertices[:, table[s]] if isinstance(s, str) else out.joints[:, s]
                for s in fmt.sources
            ],
            1,
        )
        # SMPL: two float32 routes (skinning a few vertices, and smplx's whole mesh)
        tol = 2 * _atol(a, torch.float32, betas.numpy())
        torch.testing.assert_close(points, want, atol=tol, rtol=0)
        torch.testing.assert_close(joints, out.joints, atol=tol, rtol=0)


@pytest.mark.parametrize(
    ("model_type", "fmt"), [("smpl", "coco17"), ("smplh", "openpose25"), ("smplx", "coco17")]
)
def test_fit_keypoints_and_decode_on_each_family(model_type: str, fmt: str, tmp_path) -> None:
    """fit_keypoints(body_model=...) with a pose prior on each family's file: a 63-d body
    pose, the file's own betas, the keypoints reproduced; the prior's decodings pose the model
    at 63 (and, for SMPL, 69) values."""
    from advprior.fitting import PinholeCamera, fit_keypoints
    from advprior.fitting.smplify import body_keypoints
    from advprior.prior import PosePrior
    from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

    body = load_body_model(_standard_file(model_type, tmp_path)[0], num_betas=16)
    torch.manual_seed(0)
    prior = PosePrior()
    with torch.no_grad():  # an untrained generator's poses are wild: centre them on identity
        prior.generator[-1].weight.mul_(4.0)
        prior.generator[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(21))
    prior.eval()
    n = 2
    truth = prior.decode(prior.sample_latent(n, generator=torch.Generator().manual_seed(1)))
    assert truth.shape == (n, 63)
    smpl_pose = prior.decode(prior.sample_latent(n), body="smpl")
    assert smpl_pose.shape == (n, 69) and body(torch.zeros(n, 3), smpl_pose).joints.shape[1] == 24
    camera = PinholeCamera(focal=(1000.0, 1000.0), center=(500.0, 500.0))
    upright = rotmat_to_axis_angle(axis_angle_to_rotmat(torch.tensor([torch.pi, 0.0, 0.0])))
    transl = torch.tensor([[0.1, 0.2, 4.0], [-0.2, 0.0, 4.5]])
    with torch.no_grad():
        points, _ = body_keypoints(
            upright.expand(n, 3), truth, None, transl, body_model=body, keypoint_format=fmt
        )
    kp = camera.project(points)
    result = fit_keypoints(
        kp, None, camera, body_model=body, prior=prior, keypoint_format=fmt, iterations=10
    )
    assert result.body_pose.shape == (n, 63) and result.betas.shape == (n, body.num_betas)
    assert torch.allclose(result.body_pose, prior.decode(result.latent), atol=1e-5)
    px = (result.projected - kp).norm(dim=-1).mean()
    assert px < 5.0, px


# ------------------------------------------------------------------- hostile files, per family


class _Evil:
    """Pickles as ``os.system(command)``: an unrestricted unpickler runs it while loading."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def _evil_files(root: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """The payload where each family's real files keep Python objects: a chumpy array of SMPL's
    Python 2 pickle, a hand array of MANO's SMPL-H pickle, SMPL-X's ``joint2num`` dict (an
    object member of its ``.npz``), and a Python 2 protocol-0 pickle naming ``posix.system``."""
    evil = _Evil(f"touch {marker}")
    smpl = _smpl_original(_family("smpl"))
    smpl["J"] = evil
    smplh = _smpl_original(_family("smplh"))
    smplh["hands_componentsl"] = evil
    smplx_npz = _smplx_extras(_family("smplx", expr=10))
    boxed = np.empty((), dtype=object)
    boxed[()] = {"pelvis": evil}
    smplx_npz["joint2num"] = boxed
    protocol0 = b"(dp0\nS'v_template'\np1\ncposix\nsystem\np2\n(S'touch " + str(marker).encode()
    protocol0 += b"'\np3\ntp4\nRp5\ns."
    return {
        "smpl": (_write(root / "smpl" / "SMPL_NEUTRAL.pkl", _pickled(smpl, py2=True)), "smpl"),
        "smplh": (_write(root / "smplh" / "SMPLH_NEUTRAL.pkl", _pickled(smplh, py2=True)), "smplh"),
        "smplx": (_write(root / "smplx" / "SMPLX_NEUTRAL.npz", smplx_npz), "smplx"),
        "protocol0": (_write(root / "p0" / "SMPL_NEUTRAL.pkl", protocol0), "smpl"),
    }


@pytest.mark.parametrize("family", ["smpl", "smplh", "smplx", "protocol0"])
def test_hostile_file_of_each_family_never_runs_code(family: str, tmp_path: Path) -> None:
    """Every entry point (a file, its folder, the plain smplx model of ``as_smplx``) refuses
    the payload by name before anything runs."""
    marker = tmp_path / "PWNED"
    path, model_type = _evil_files(tmp_path / "m", marker)[family]
    for where, kwargs in (
        (path, {}),
        (path.parent.parent if family != "protocol0" else path.parent, {"model_type": model_type}),
        (path, {"as_smplx": True}),
    ):
        with pytest.raises(UnsafeFileError, match=r"refused to unpickle (posix|os)\.system"):
            load_body_model(where, **kwargs)
        assert not marker.exists(), "the file's code ran"


def test_standin_folder_holds_smpl_only_and_says_so() -> None:
    """The stand-in folder claims SMPL alone (a 24-joint body: no hands or face to fake): smplx
    loads it as SMPL, and asking either loader for SMPL-H / SMPL-X there names what is missing."""
    from advprior.body import standin_folder
    from advprior.errors import ModelNotFoundError

    folder = standin_folder()
    assert sorted(p.name for p in (folder / "smpl").iterdir()) == [
        "SMPL_FEMALE.pkl",
        "SMPL_MALE.pkl",
        "SMPL_NEUTRAL.pkl",
    ]
    assert type(smplx.create(str(folder), model_type="smpl")).__name__ == "SMPL"
    for model_type in ("smplh", "smplx"):
        with pytest.raises(AssertionError, match=f"{model_type} does not exist"):
            smplx.create(str(folder), model_type=model_type)
        with pytest.raises(ModelNotFoundError, match=f"no {model_type.upper()} neutral model"):
            load_body_model(folder, model_type)
        # smplx's object for the stand-in: SMPL-X's arguments used to be dropped and smplx.SMPL
        # returned, which failed at the first 63-d pose deep inside smplx
        with pytest.raises(ValueError, match=r"stand-in is an SMPL body only.*model_type='smpl'"):
            load_body_model(model_type=model_type, as_smplx=True, use_pca=False)
        # advprior's own BodyModel takes the same poses for every family: still the stand-in
        assert load_body_model(model_type=model_type).model_type == "smpl"
