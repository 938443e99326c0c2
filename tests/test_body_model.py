"""load_body_model / BodyModel: the stand-in and fake "real" SMPL, SMPL-H and SMPL-X files."""

from __future__ import annotations

import pickle
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import torch
from conftest import FK32_ATOL

from advprior.body import BodyModel, forward_kinematics, load_body_model, rest_joints
from advprior.body.model import EXTRA_JOINT_NAMES
from advprior.body.standin import build_standin
from advprior.errors import CorruptCheckpointError, ModelNotFoundError
from advprior.skeleton import PARENTS, REST_JOINTS


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVPRIOR_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def standin(cache) -> BodyModel:
    return load_body_model()


@pytest.fixture(scope="module")
def data() -> dict:
    return build_standin()


def _pose(n: int, dim: int = 63, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    go = (torch.randn(n, 3, generator=g) * 0.5).to(dtype)
    bp = (torch.randn(n, dim, generator=g) * 0.4).to(dtype)
    return go, bp


# ----------------------------------------------------------------------------- stand-in


def test_standin_attributes(standin: BodyModel, data: dict) -> None:
    assert standin.is_standin and standin.model_type == "smpl"
    assert standin.num_betas == 10
    assert standin.num_vertices == len(data["v_template"])
    assert standin.faces.dtype == np.int64 and standin.faces.shape[1] == 3
    assert standin.parents == PARENTS
    assert standin.extra_joint_names == EXTRA_JOINT_NAMES
    np.testing.assert_allclose(standin.rest_joints().numpy(), REST_JOINTS, atol=1e-6)


@pytest.mark.parametrize("batch", [1, 7])
def test_forward_shapes(standin: BodyModel, batch: int) -> None:
    go, bp = _pose(batch)
    out = standin(go, bp)
    v = standin.num_vertices
    assert out.vertices.shape == (batch, v, 3)
    assert out.joints.shape == (batch, 24, 3)
    assert out.model_joints.shape == (batch, 24 + len(EXTRA_JOINT_NAMES), 3)


def test_any_leading_shape_and_shared_betas(standin: BodyModel) -> None:
    go, bp = _pose(6)
    betas = torch.randn(10)
    out = standin(go.reshape(2, 3, 3), bp.reshape(2, 3, 63), betas=betas)
    assert out.joints.shape == (2, 3, 24, 3)
    flat = standin(go, bp, betas=betas.expand(6, 10))
    torch.testing.assert_close(out.joints.reshape(6, 24, 3), flat.joints)
    single = standin(go[0], bp[0])
    assert single.vertices.shape == (standin.num_vertices, 3)


@pytest.mark.parametrize("dim", [63, 69])
def test_joints_equal_forward_kinematics(standin: BodyModel, dim: int) -> None:
    go, bp = _pose(5, dim, seed=3)
    betas = torch.randn(5, 10) * 1.5
    transl = torch.randn(5, 3)
    out = standin(go, bp, betas=betas, transl=transl)
    fk = forward_kinematics(go, bp, betas=betas, transl=transl, body_model=standin)
    torch.testing.assert_close(out.joints, fk, atol=FK32_ATOL, rtol=0)
    # without a model, FK with betas uses the stand-in too
    fk_default = forward_kinematics(go, bp, betas=betas, transl=transl)
    torch.testing.assert_close(out.joints, fk_default, atol=FK32_ATOL, rtol=0)
    # shape really moves the joints
    assert (rest_joints(standin, betas) - torch.as_tensor(REST_JOINTS).float()).abs().max() > 0.01


def test_smpl_hands_default_to_identity(standin: BodyModel) -> None:
    go, bp = _pose(3, 63, seed=4)
    padded = torch.cat([bp, torch.zeros(3, 6)], -1)
    torch.testing.assert_close(standin(go, bp).vertices, standin(go, padded).vertices)


def test_extra_joints_are_their_vertices(standin: BodyModel, data: dict) -> None:
    go, bp = _pose(2, seed=5)
    out = standin(go, bp, transl=torch.ones(2, 3))
    ids = [data["vertex_ids"][name] for name in EXTRA_JOINT_NAMES]
    torch.testing.assert_close(out.model_joints[:, 24:], out.vertices[:, ids])


def test_gradients_reach_pose_and_shape(standin: BodyModel) -> None:
    go, bp = _pose(2, seed=6)
    bp.requires_grad_()
    betas = torch.zeros(2, 10, requires_grad=True)
    standin(go, bp, betas=betas).vertices.square().sum().backward()
    assert bp.grad.abs().sum() > 0 and betas.grad.abs().sum() > 0


def _layer_batches(model: BodyModel, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batch sizes smplx's layer of ``model`` is called with, from now on."""
    sizes: list[int] = []
    call = type(model.layer).forward

    def counted(layer, *args, **kwargs):
        sizes.append(int(kwargs["body_pose"].shape[0]))
        return call(layer, *args, **kwargs)

    monkeypatch.setattr(type(model.layer), "forward", counted)
    return sizes


@pytest.mark.parametrize("grad", [False, True])
def test_large_batches_are_posed_in_chunks_with_the_same_bits(
    standin: BodyModel, monkeypatch: pytest.MonkeyPatch, grad: bool
) -> None:
    """smplx's skinning holds ~12x the vertices it returns per body: one call on 10^5 stand-in
    bodies needed ~70 GB. Chunks of ``chunk_size`` bodies go through the same kernels, so the
    result is bitwise that of one call, with and without gradients."""
    go, bp = _pose(45, seed=11)
    g = torch.Generator().manual_seed(12)
    betas, transl = torch.randn(45, 10, generator=g), torch.randn(45, 3, generator=g)
    whole = standin(go, bp, betas, transl)
    sizes = _layer_batches(standin, monkeypatch)
    monkeypatch.setattr(standin, "chunk_size", 16, raising=False)
    bp_in = bp.clone().requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        out = standin(go, bp_in, betas, transl)
    assert sizes == [16, 16, 13]
    for name in ("vertices", "joints", "model_joints"):
        assert torch.equal(getattr(out, name), getattr(whole, name)), name
    assert out.vertices.requires_grad is grad
    if grad:  # the gradient is that of one call too
        out.vertices.square().sum().backward()
        ref = bp.clone().requires_grad_()
        monkeypatch.setattr(standin, "chunk_size", 64)
        standin(go, ref, betas, transl).vertices.square().sum().backward()
        assert sizes[-1] == 45
        assert torch.equal(bp_in.grad, ref.grad)


def test_dtype_and_fewer_betas(cache) -> None:
    model = load_body_model(dtype=torch.float64)
    go, bp = _pose(2, seed=7, dtype=torch.float64)
    out = model(go, bp, betas=torch.ones(2, 4, dtype=torch.float64))
    assert out.vertices.dtype == torch.float64
    full = torch.cat([torch.ones(2, 4), torch.zeros(2, 6)], -1).double()
    torch.testing.assert_close(out.vertices, model(go, bp, betas=full).vertices)


def test_loading_is_quiet(cache, capsys: pytest.CaptureFixture) -> None:
    load_body_model()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_model_type_and_gender_for_standin(cache) -> None:
    model = load_body_model(model_type="smplx", gender="female")
    assert model.is_standin and model.model_type == "smpl"


@pytest.mark.parametrize(
    ("args", "err", "match"),
    [
        ((torch.zeros(2, 3), torch.zeros(2, 62)), ValueError, r"\(\.\.\., 63\)"),
        ((torch.zeros(2, 2), torch.zeros(2, 63)), ValueError, r"\(\.\.\., 3\)"),
        ((torch.zeros(2, 3), torch.zeros(3, 63)), ValueError, "broadcast"),
        ((np.zeros((2, 3)).tolist(), torch.zeros(2, 63)), TypeError, "torch.Tensor"),
        ((torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, 63)), TypeError, "floating"),
    ],
)
def test_bad_pose(standin: BodyModel, args, err, match) -> None:
    with pytest.raises(err, match=match):
        standin(*args)


def test_bad_betas_and_transl(standin: BodyModel) -> None:
    go, bp = _pose(2)
    with pytest.raises(ValueError, match="num_betas=10"):
        standin(go, bp, betas=torch.zeros(2, 16))
    with pytest.raises(TypeError, match="betas"):
        standin(go, bp, betas=torch.zeros(2, 10, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"transl must have shape \(\.\.\., 3\)"):
        standin(go, bp, transl=torch.zeros(2, 2))


def test_bad_arguments(cache, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model_type"):
        load_body_model(model_type="smal")
    with pytest.raises(ValueError, match="gender"):
        load_body_model(gender="other")
    with pytest.raises(ValueError, match="num_betas"):
        load_body_model(num_betas=0)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_body_model(tmp_path / "nope.pkl")
    # an unknown ~user (or Windows' ~\\models) was Path.expanduser's RuntimeError
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_body_model("~no-such-user-advprior/SMPL_NEUTRAL.pkl")
    with pytest.raises(ModelNotFoundError, match="looked for"):
        load_body_model(tmp_path, model_type="smplh")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(CorruptCheckpointError, match="junk.pkl"):
        load_body_model(junk)
    notmodel = tmp_path / "dict.pkl"
    notmodel.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}))
    with pytest.raises(CorruptCheckpointError, match="missing"):
        load_body_model(notmodel)


def test_corrupt_cache_is_regenerated(cache) -> None:
    from advprior.body.standin import standin_path

    path = standin_path()
    path.write_bytes(b"\x80\x04truncated")
    model = load_body_model()
    assert model.is_standin
    assert not list(path.parent.glob(".*.tmp"))


def test_a_cache_that_cannot_be_written_costs_only_the_smplx_files(tmp_path, monkeypatch) -> None:
    """A read-only container or compute node: the stand-in is made in memory, so loading and
    fitting work; only the SMPL files for smplx users need the cache, and say how to get one."""
    from advprior.body import standin_folder

    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("ADVPRIOR_CACHE", str(blocked / "cache"))  # below a file: never writable
    model = load_body_model()
    assert model.is_standin and not model.source.exists()
    go, bp = _pose(2)
    torch.testing.assert_close(
        model(go, bp).joints, forward_kinematics(go, bp), atol=FK32_ATOL, rtol=0
    )
    with pytest.raises(OSError, match="set ADVPRIOR_CACHE to a writable folder"):
        standin_folder()


# ------------------------------------------------------------ fake licensed model files


def _fake_chumpy(monkeypatch: pytest.MonkeyPatch) -> type:
    """A throwaway ``chumpy`` whose Ch pickles like the real one (its __dict__ holds ``x``)."""
    pkg, sub = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()

    class Select(Ch):
        def __init__(self, a):
            self.a = a

    for cls in (Ch, Select):
        cls.__module__, cls.__qualname__ = "chumpy.ch", cls.__name__
        setattr(sub, cls.__name__, cls)
    pkg.ch = sub
    monkeypatch.setitem(sys.modules, "chumpy", pkg)
    monkeypatch.setitem(sys.modules, "chumpy.ch", sub)
    return sub


def _write_smpl_pickle(
    data: dict, path: Path, monkeypatch: pytest.MonkeyPatch, protocol: int = 2
) -> None:
    """SMPL's original layout: chumpy arrays, sparse J_regressor, uint32 tree, extra keys."""
    ch = _fake_chumpy(monkeypatch)
    real = {
        "v_template": ch.Ch(data["v_template"]),
        "shapedirs": ch.Ch(data["shapedirs"]),
        "posedirs": data["posedirs"].astype(np.float64),
        "J_regressor": scipy.sparse.csc_matrix(data["J_regressor"]),
        "J": ch.Ch(data["J"]),
        "weights": ch.Ch(data["weights"]),
        "kintree_table": np.where(
            data["kintree_table"] < 0, 4294967295, data["kintree_table"]
        ).astype(np.uint32),
        "f": data["f"],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(real, protocol=protocol))
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")


@pytest.mark.parametrize("protocol", [1, 2])  # 1: objects via copy_reg, as Python 2 pickled
def test_chumpy_smpl_pickle_loads_without_chumpy(
    cache,
    data: dict,
    standin: BodyModel,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    protocol: int,
) -> None:
    path = tmp_path / "models" / "smpl" / "SMPL_NEUTRAL.pkl"
    _write_smpl_pickle(data, path, monkeypatch, protocol)
    with pytest.raises(ImportError):
        __import__("chumpy")
    for where in (path, tmp_path / "models"):
        model = load_body_model(where)
        assert not model.is_standin and model.model_type == "smpl"
        np.testing.assert_allclose(model.rest_joints().numpy(), REST_JOINTS, atol=1e-6)
        go, bp = _pose(3, 69, seed=8)
        betas = torch.randn(3, 10)
        out = model(go, bp, betas=betas)
        torch.testing.assert_close(out.vertices, standin(go, bp, betas=betas).vertices)
        torch.testing.assert_close(
            out.joints, forward_kinematics(go, bp, betas, body_model=model), atol=FK32_ATOL, rtol=0
        )
        # a non-standard mesh without its own selectors gets no vertex joints
        assert model.extra_joint_names == () and out.model_joints.shape[1] == 24
    with_ids = load_body_model(path, vertex_ids=data["vertex_ids"])
    assert with_ids(go, bp).model_joints.shape[1] == 24 + len(EXTRA_JOINT_NAMES)
    bad_ids = dict(data["vertex_ids"], nose=10**6)
    with pytest.raises(ValueError, match="nose"):
        load_body_model(path, vertex_ids=bad_ids)


def test_original_smpl_file_name_in_folder(
    cache, data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_smpl_pickle(data, tmp_path / "basicmodel_f_lbs_10_207_0_v1.1.0.pkl", monkeypatch)
    assert load_body_model(tmp_path, gender="female").source.name.startswith("basicmodel_f")
    with pytest.raises(ModelNotFoundError):
        load_body_model(tmp_path, gender="male")


def test_unevaluable_chumpy_expression_is_reported(
    cache, data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ch = _fake_chumpy(monkeypatch)
    broken = dict(data, shapedirs=ch.Select(ch.Ch(data["shapedirs"])))
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(broken, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    with pytest.raises(CorruptCheckpointError, match="chumpy expression"):
        load_body_model(path)


def test_chumpy_expression_in_unused_key_is_dropped(
    cache, data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ch = _fake_chumpy(monkeypatch)
    extra = dict(data, J=ch.Select(ch.Ch(data["J"])), pose_training_info={"n": ch.Ch([1.0])})
    del extra["vertex_ids"]
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(extra, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    model = load_body_model(path)
    np.testing.assert_allclose(model.rest_joints().numpy(), REST_JOINTS, atol=1e-6)


def test_smpl_npz(cache, data: dict, standin: BodyModel, tmp_path: Path) -> None:
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, **{k: np.asarray(v) for k, v in data.items()})
    model = load_body_model(path, model_type="smpl")
    go, bp = _pose(2, seed=9)
    torch.testing.assert_close(model(go, bp).vertices, standin(go, bp).vertices)
    assert model.extra_joint_names == EXTRA_JOINT_NAMES  # the file's own vertex_ids
    with pytest.raises(ValueError, match="smpl model, not smplx"):
        load_body_model(path, model_type="smplx")


def _hand_tree(wrist: int, first: int) -> list[int]:
    """SMPL-H/X finger parents: index, middle, pinky, ring, thumb; three joints each."""
    out = []
    for finger in range(5):
        base = first + 3 * finger
        out += [wrist, base, base + 1]
    return out


def _fake_family(data: dict, model_type: str) -> dict:
    """An SMPL-H or SMPL-X model built on the stand-in mesh (fingers sit on SMPL's hand joints,
    jaw and eyes on the head), enough for smplx to load and pose it."""
    face = [15, 15, 15] if model_type == "smplx" else []
    n_body = 22 + len(face)
    left, right = n_body, n_body + 15
    parents = [-1, *PARENTS[1:22], *face, *_hand_tree(20, left), *_hand_tree(21, right)]
    n = len(parents)
    source = list(range(22)) + face + [22] * 15 + [23] * 15
    weights = np.zeros((len(data["v_template"]), n))
    weights[:, :22] = data["weights"][:, :22]
    weights[:, left + 3] = data["weights"][:, 22]  # middle1 carries SMPL's hand
    weights[:, right + 3] = data["weights"][:, 23]
    shapedirs = data["shapedirs"]
    out = {
        "v_template": data["v_template"],
        "f": data["f"],
        "weights": weights,
        "J_regressor": data["J_regressor"][source],
        "kintree_table": np.array([parents, list(range(n))]),
        "shapedirs": shapedirs,
        "posedirs": np.zeros((len(weights), 3, 9 * (n - 1))),
        "hands_componentsl": np.eye(45),
        "hands_componentsr": np.eye(45),
        "hands_meanl": np.zeros(45),
        "hands_meanr": np.zeros(45),
        "vertex_ids": data["vertex_ids"],
    }
    if model_type == "smplx":
        out["shapedirs"] = np.concatenate([shapedirs, np.zeros_like(shapedirs)], -1)
        out["lmk_faces_idx"] = np.arange(51) * 7
        out["lmk_bary_coords"] = np.full((51, 3), 1.0 / 3.0)
    return out


@pytest.mark.parametrize("model_type", ["smplh", "smplx"])
def test_smplh_and_smplx_files(
    cache, data: dict, standin: BodyModel, tmp_path: Path, model_type: str
) -> None:
    fake = _fake_family(data, model_type)
    prefix = model_type.upper()
    path = tmp_path / model_type / f"{prefix}_MALE.npz"
    path.parent.mkdir()
    np.savez(path, **fake)
    model = load_body_model(tmp_path, model_type=model_type, gender="male")
    assert model.model_type == model_type and not model.is_standin
    assert model.parents == PARENTS
    go, bp = _pose(4, 69, seed=10)
    betas = torch.randn(4, 10)
    out = model(go, bp, betas=betas)
    # hands dropped from a 69-d pose; SMPL's hand joints come from the middle-finger bases
    ref = standin(go, torch.cat([bp[:, :63], torch.zeros(4, 6)], -1), betas=betas)
    torch.testing.assert_close(out.joints, ref.joints, atol=FK32_ATOL, rtol=0)
    torch.testing.assert_close(out.vertices, ref.vertices, atol=FK32_ATOL, rtol=0)
    torch.testing.assert_close(
        out.joints, forward_kinematics(go, bp, betas, body_model=model), atol=FK32_ATOL, rtol=0
    )
    torch.testing.assert_close(model(go, bp[:, :63], betas=betas).vertices, out.vertices)
    n_skel = len(fake["kintree_table"][0])
    landmarks = 51 if model_type == "smplx" else 0
    assert out.model_joints.shape[1] == n_skel + len(EXTRA_JOINT_NAMES) + landmarks


def test_smplx_chumpy_pickle_gets_clean_copy(
    cache, data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_family(data, "smplx")
    ch = _fake_chumpy(monkeypatch)
    fake["shapedirs"] = ch.Ch(fake["shapedirs"])
    path = tmp_path / "SMPLX_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(fake, protocol=2))
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    model = load_body_model(path)
    assert model.model_type == "smplx"
    # smplx read a plain-arrays copy in a private temporary folder, gone afterwards
    assert model.source == path and not (cache / "body" / "converted").exists()
    go, bp = _pose(2, seed=11)
    assert torch.isfinite(model(go, bp).vertices).all()


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_device_placement(cache, device: str) -> None:
    model = load_body_model(device=device)
    go, bp = (x.to(device) for x in _pose(3, 69, seed=12))
    betas = torch.randn(3, 10, device=device)
    out = model(go, bp, betas=betas, transl=torch.zeros(3, 3, device=device))
    assert out.vertices.device.type == device and out.joints.device.type == device
    fk = forward_kinematics(go, bp, betas, torch.zeros(3, 3, device=device), body_model=model)
    torch.testing.assert_close(out.joints, fk, atol=FK32_ATOL, rtol=0)
    if device != "cpu":
        with pytest.raises(ValueError, match="device|on"):
            model(go.cpu(), bp.cpu())


def test_amass_style_smplh_with_16_betas(cache, data: dict, tmp_path: Path) -> None:
    fake = _fake_family(data, "smplh")
    for key in ("hands_componentsl", "hands_componentsr", "hands_meanl", "hands_meanr"):
        del fake[key]  # AMASS's SMPL-H files have no hand PCA
    extra = np.random.default_rng(0).normal(scale=0.01, size=fake["shapedirs"].shape[:2] + (6,))
    fake["shapedirs"] = np.concatenate([fake["shapedirs"], extra], -1)
    path = tmp_path / "smplh" / "neutral" / "model.npz"
    path.parent.mkdir(parents=True)
    np.savez(path, **fake)
    model = load_body_model(tmp_path, model_type="smplh", num_betas=16)
    assert model.num_betas == 16
    betas = torch.zeros(1, 16)
    betas[0, 13] = 2.0
    go, bp = torch.zeros(1, 3), torch.zeros(1, 63)
    moved = model(go, bp, betas=betas).vertices[0] - model(go, bp).vertices[0]
    expect = torch.as_tensor(2.0 * extra[:, :, 3], dtype=torch.float32)
    torch.testing.assert_close(moved, expect, atol=1e-6, rtol=0)
    assert load_body_model(path, num_betas=12).num_betas == 12
    assert load_body_model(path, num_betas=40).num_betas == 16
    # the plain smplx model keeps them too (smplx alone keeps 10 of a file's < 300)
    ids = {name: int(i) for name, i in data["vertex_ids"].items()}  # the stand-in's mesh
    with pytest.raises(ValueError, match=r"no hand PCA \(hands_componentsl, .*use_pca=False"):
        load_body_model(path, num_betas=16, as_smplx=True, ext="npz", vertex_ids=ids)
    plain = load_body_model(
        path, num_betas=16, as_smplx=True, ext="npz", vertex_ids=ids, use_pca=False
    )
    assert plain.num_betas == 16 and plain.shapedirs.shape[-1] == 16
    out = plain(betas=betas).vertices[0] - plain().vertices[0]
    torch.testing.assert_close(out, expect, atol=1e-6, rtol=0)


def test_posed_points_match_the_full_mesh() -> None:
    # Skinning a handful of vertices must give the same points as posing the whole mesh: two
    # float32 routes through the same kinematic chain (FK32_ATOL's error analysis), the skinning
    # sum over 24 weights adding a few ulps more.
    body = load_body_model()
    gen = torch.Generator().manual_seed(3)
    n = 6
    go = 0.5 * torch.randn(n, 3, generator=gen)
    pose = 0.4 * torch.randn(n, 69, generator=gen)
    betas = torch.randn(n, body.num_betas, generator=gen)
    transl = torch.randn(n, 3, generator=gen)
    ids = [0, 17, body.num_vertices - 1, 1291, 17]
    points, joints = body.posed_points(go, pose, ids, betas=betas, transl=transl)
    full = body(go, pose, betas=betas, transl=transl)
    assert points.shape == (n, len(ids), 3) and joints.shape == (n, 24, 3)
    assert torch.allclose(points, full.vertices[:, ids], atol=2 * FK32_ATOL, rtol=0)
    assert torch.allclose(joints, full.joints, atol=FK32_ATOL, rtol=0)
    # broadcasting leading dimensions and defaults, as forward
    p2, j2 = body.posed_points(go[:2, None], pose[:2, None], ids)
    assert p2.shape == (2, 1, len(ids), 3) and j2.shape == (2, 1, 24, 3)
    # gradients reach the pose through the points
    grad_pose = pose.clone().requires_grad_(True)
    body.posed_points(go, grad_pose, ids)[0].sum().backward()
    assert grad_pose.grad is not None and grad_pose.grad[:, :63].abs().sum() > 0
    for bad in ([-1], [body.num_vertices], [[1, 2]]):
        with pytest.raises(ValueError, match="vertex_ids"):
            body.posed_points(go, pose, bad)


# --- round 9: file variants users bring ----------------------------------------------------


def test_as_smplx_on_the_official_file_names(
    cache, data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """smplx.create takes a file's model type from its name (``basicModel_...`` ->
    "basicmodel"); the plain smplx object is built from the type in the file instead."""
    official = tmp_path / "SMPL_python_v.1.0.0" / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"
    _write_smpl_pickle(data, official, monkeypatch)
    smpl = load_body_model(official, as_smplx=True)
    assert type(smpl).__name__ == "SMPL" and smpl.faces_tensor.shape[-1] == 3
    amass = tmp_path / "smplh" / "male" / "model.npz"
    amass.parent.mkdir(parents=True)
    np.savez(amass, **_fake_family(data, "smplh"))
    assert type(load_body_model(amass, as_smplx=True)).__name__ == "SMPLH"


def test_models_subfolder_of_smplify_style_repositories(
    cache, data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_smpl_pickle(data, tmp_path / "models" / "smpl" / "SMPL_NEUTRAL.pkl", monkeypatch)
    assert load_body_model(tmp_path).source == tmp_path / "models" / "smpl" / "SMPL_NEUTRAL.pkl"


def test_npz_saved_from_an_smpl_pickle_dict(cache, data: dict, standin: BodyModel, tmp_path: Path):
    """``np.savez(**pkl_dict)`` keeps the sparse J_regressor as a pickled object member: it is
    read through the safe reader and made dense, as in the pickle."""
    arrays = {k: np.asarray(v) for k, v in data.items() if k != "J_regressor"}
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, J_regressor=scipy.sparse.csc_matrix(data["J_regressor"]), **arrays)
    go, bp = _pose(2, seed=4)
    model = load_body_model(path)
    torch.testing.assert_close(model(go, bp).vertices, standin(go, bp).vertices)


@pytest.mark.parametrize(
    ("key", "change", "match"),
    [
        ("posedirs", lambda a: a[..., :200], r"posedirs must be \(\d+, 3, 207\)"),
        ("weights", lambda a: a[:, :23], r"weights must be \(\d+, 24\)"),
        ("J_regressor", lambda a: a[:, :100], r"J_regressor must be \(24, \d+\)"),
        ("shapedirs", lambda a: a[..., 0], r"shapedirs must be \(\d+, 3, K\)"),
        ("f", lambda a: a + 100_000, "f indexes vertices"),
        ("__class__", None, r"\['__class__'\] are not model array names"),
        # a parent out of range, negative, or later than its joint (a cycle) failed only at the
        # first forward pass, inside smplx
        ("kintree_table", lambda a: _parent(a, 5, 10**9), "gives joint 5 the parent 1000000000"),
        ("kintree_table", lambda a: _parent(a, 3, -7), "gives joint 3 the parent -7"),
        ("kintree_table", lambda a: _parent(a, 1, 2), r"joint 1 the parent 2; .* earlier joint"),
        ("kintree_table", lambda a: _parent(a, 0, 7), "root .* must have parent -1, got 7"),
        ("kintree_table", lambda a: a.astype(np.float64), "must hold integer joint indices"),
        ("vertex_ids", lambda a: np.asarray(5), "vertex_ids must map joint names"),
        (
            "vertex_ids",
            lambda a: np.asarray(dict.fromkeys(EXTRA_JOINT_NAMES, "x")),
            "vertex_ids holds entries that are not vertex indices",
        ),
    ],
)
def test_inconsistent_arrays_are_named_when_read(
    cache, data: dict, tmp_path: Path, key: str, change, match: str
) -> None:
    """A damaged file fails when read, naming the array (it failed as a traceback inside a
    forward pass, or, for posedirs and weights, only when vertices were posed)."""
    arrays = {k: np.asarray(v) for k, v in data.items()}
    arrays[key] = arrays["v_template"] if change is None else change(arrays[key])
    path = tmp_path / "SMPL_NEUTRAL.npz"
    np.savez(path, **arrays)
    with pytest.raises(CorruptCheckpointError, match=f"^{re.escape(str(path))}: .*{match}"):
        load_body_model(path)


def _parent(table: np.ndarray, joint: int, parent: int) -> np.ndarray:
    out = table.astype(np.int64)
    out[0, joint] = parent
    return out


def test_smpl_uint32_root_marker_reads(cache, data: dict, tmp_path: Path) -> None:
    """SMPL's pickles mark the root's parent 4294967295 (uint32 -1), also once widened."""
    for table in (
        data["kintree_table"].astype(np.uint32),
        np.where(data["kintree_table"] < 0, 2**32 - 1, data["kintree_table"]),
    ):
        path = tmp_path / "SMPL_NEUTRAL.npz"
        np.savez(path, **{**{k: np.asarray(v) for k, v in data.items()}, "kintree_table": table})
        assert load_body_model(path).num_vertices == data["v_template"].shape[0]


def test_empty_batches_and_plain_smplx_models_as_body_model(
    cache, data: dict, standin: BodyModel, tmp_path: Path
) -> None:
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(path, **_fake_family(data, "smplx"))
    for model in (standin, load_body_model(path)):
        out = model(torch.zeros(2, 0, 3), torch.zeros(2, 0, 63))
        assert out.vertices.shape == (2, 0, model.num_vertices, 3)
        assert out.joints.shape == (2, 0, 24, 3)
        assert out.model_joints.shape[:2] == (2, 0)
        points, joints = model.posed_points(torch.zeros(0, 3), torch.zeros(0, 63), [0, 1])
        assert points.shape == (0, 2, 3) and joints.shape == (0, 24, 3)
    # a plain smplx model takes other inputs: named as the problem, with the way out
    plain = load_body_model(path, as_smplx=True, ext="pkl")  # ext: smplx.create's own argument
    with pytest.raises(TypeError, match=r"BodyModel from load_body_model\(\).*got smplx\."):
        forward_kinematics(torch.zeros(1, 3), torch.zeros(1, 63), body_model=plain)
    from advprior.fitting import PinholeCamera, fit_keypoints

    with pytest.raises(TypeError, match="load_body_model"):
        fit_keypoints(
            500.0 + 10.0 * torch.arange(48.0).view(1, 24, 2),  # keypoints on one pixel: refused
            torch.ones(1, 24),
            PinholeCamera(1000.0, (500.0, 500.0)),
            prior=None,
            body_model=plain,
            iterations=1,
        )


def test_as_smplx_smplx_file_with_own_vertex_ids(cache, data: dict, tmp_path: Path) -> None:
    """smplx's SMPL-X layer fixes its vertex table (passing one was a TypeError): the given
    table selects the extra joints."""
    path = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(path, **_fake_family(data, "smplx"))
    ids = {name: int(i) for name, i in data["vertex_ids"].items()}
    model = load_body_model(path, as_smplx=True, vertex_ids=ids)
    chosen = model.vertex_joint_selector.extra_joints_idxs.tolist()
    assert ids["nose"] in chosen and ids["LHeel"] in chosen
