"""The generated stand-in body: SMPL format, closed mesh, exact joint regressor, sane shapes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import smplx
import torch

from advprior.body.standin import (
    SHAPE_NAMES,
    STANDIN_VERSION,
    build_standin,
    cache_dir,
    standin_path,
)
from advprior.skeleton import PARENTS, REST_JOINTS


@pytest.fixture(scope="module")
def data() -> dict:
    return build_standin()


def test_deterministic(data: dict) -> None:
    again = build_standin()
    for key in ("v_template", "f", "weights", "J_regressor", "shapedirs"):
        np.testing.assert_array_equal(again[key], data[key])
    assert again["vertex_ids"] == data["vertex_ids"]


def test_smpl_format(data: dict) -> None:
    v = data["v_template"]
    n = len(v)
    assert 2000 <= n <= 8000
    assert data["f"].dtype == np.uint32 and data["f"].shape[1] == 3
    assert data["weights"].shape == (n, 24)
    assert data["J_regressor"].shape == (24, n)
    assert data["shapedirs"].shape == (n, 3, 10) and len(SHAPE_NAMES) == 10
    assert data["posedirs"].shape == (n, 3, 207) and not data["posedirs"].any()
    assert list(data["kintree_table"][0][1:]) == list(PARENTS[1:])
    assert list(data["kintree_table"][1]) == list(range(24))
    assert data["advprior_standin_version"] == STANDIN_VERSION


def test_regressor_reproduces_rest_joints(data: dict) -> None:
    reg = data["J_regressor"]
    assert (reg >= 0).all()
    np.testing.assert_allclose(reg.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(reg @ data["v_template"], REST_JOINTS, atol=1e-6, rtol=0)
    np.testing.assert_allclose(data["J"], REST_JOINTS, atol=1e-6, rtol=0)


def test_mesh_is_closed_and_outward(data: dict) -> None:
    f = data["f"].astype(np.int64)
    v = data["v_template"]
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert max(Counter(map(tuple, directed)).values()) == 1  # consistently oriented
    undirected = Counter(map(tuple, np.sort(directed, axis=1)))
    assert set(undirected.values()) == {2}  # every edge has two faces: closed
    assert not ((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 0] == f[:, 2])).any()
    # outward: each part (a closed component) encloses positive signed volume
    parts = data["advprior_parts"]
    for name in np.unique(parts):
        tri = v[f[parts[f[:, 0]] == name]]
        volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
        assert volume > 0, name
    assert len(set(parts)) == 12  # torso, neck, head, nose + 2 x (arm, thumb, leg, foot)


def test_proportions(data: dict) -> None:
    v = data["v_template"]
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < height < 1.85
    assert v[:, 1].min() < REST_JOINTS[[7, 8, 10, 11], 1].min()  # soles below ankles/toes
    assert v[:, 0].max() > REST_JOINTS[22, 0] + 0.05  # fingers past the hand joint
    hip_width = np.ptp(v[np.abs(v[:, 1] - REST_JOINTS[0, 1]) < 0.01, 0])
    assert 0.28 < hip_width < 0.42


def test_skinning_weights(data: dict) -> None:
    w = data["weights"]
    v = data["v_template"]
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
    # smooth near joints: vertices around the left knee blend thigh (1) and shin (4)
    near = np.linalg.norm(v - REST_JOINTS[4], axis=1) < 0.06
    blended = near & (w[:, 1] > 0.05) & (w[:, 4] > 0.05)
    assert blended.sum() >= 16
    # and far from joints they are rigid
    far = (np.abs(v[:, 1] - 0.5 * (REST_JOINTS[1, 1] + REST_JOINTS[4, 1])) < 0.02) & (
        v[:, 0] > 0.03
    )
    assert far.any() and np.allclose(w[far, 1], 1.0)


def _shaped_joints(data: dict, k: int, amount: float = 1.0) -> np.ndarray:
    return data["J_regressor"] @ (data["v_template"] + amount * data["shapedirs"][:, :, k])


def _bone(j: np.ndarray, a: int, b: int) -> float:
    return float(np.linalg.norm(j[a] - j[b]))


def test_shape_directions(data: dict) -> None:
    v, sd = data["v_template"], data["shapedirs"]
    height = lambda x: np.ptp(x[:, 1])  # noqa: E731
    assert height(v + sd[..., 0]) > height(v) + 0.05  # stature
    rest = REST_JOINTS
    legs = _shaped_joints(data, 2)
    assert _bone(legs, 1, 4) > _bone(rest, 1, 4) * 1.05
    assert _bone(legs, 18, 20) == pytest.approx(_bone(rest, 18, 20), abs=1e-9)
    arms = _shaped_joints(data, 3)
    assert _bone(arms, 18, 20) > _bone(rest, 18, 20) * 1.05
    torso = _shaped_joints(data, 4)
    assert _bone(torso, 0, 12) > _bone(rest, 0, 12) * 1.03
    shoulders = _shaped_joints(data, 5)
    assert _bone(shoulders, 16, 17) > _bone(rest, 16, 17) * 1.05
    hips = _shaped_joints(data, 6)
    assert _bone(hips, 1, 2) > _bone(rest, 1, 2) * 1.1
    # weight: more girth, spine where it was
    waist = np.abs(v[:, 1] - rest[3, 1]) < 0.01
    heavy = v + sd[..., 1]
    assert np.ptp(heavy[waist, 0]) > np.ptp(v[waist, 0]) * 1.08
    np.testing.assert_allclose(
        _shaped_joints(data, 1)[[0, 3, 6, 9, 12]], rest[[0, 3, 6, 9, 12]], atol=5e-3
    )
    # every direction does something; none is a copy of another
    flat = sd.reshape(-1, 10)
    assert (np.linalg.norm(flat, axis=0) > 0.05).all()
    assert np.linalg.matrix_rank(flat) == 10


def test_vertex_ids_are_meaningful(data: dict) -> None:
    v, ids = data["v_template"], data["vertex_ids"]
    assert len(set(ids.values())) == len(ids) == 21
    nose, leye, reye = v[ids["nose"]], v[ids["leye"]], v[ids["reye"]]
    assert nose[2] > max(leye[2], reye[2]) > REST_JOINTS[15, 2] + 0.05
    assert leye[0] > 0 > reye[0] and v[ids["lear"]][0] > 0.06 > -0.06 > v[ids["rear"]][0]
    for side, hand, sign in (("l", 22, 1), ("r", 23, -1)):
        tips = [v[ids[f"{side}{f}"]] for f in ("index", "middle", "ring", "pinky")]
        assert all(sign * (t[0] - REST_JOINTS[hand, 0]) > 0.05 for t in tips)
        assert [t[2] for t in tips] == sorted((t[2] for t in tips), reverse=True)
        assert v[ids[f"{side}thumb"]][2] > tips[0][2]  # thumbs point forward in the T-pose
    for side, sign in (("L", 1), ("R", -1)):
        big, small, heel = (v[ids[f"{side}{k}"]] for k in ("BigToe", "SmallToe", "Heel"))
        assert sign * small[0] > sign * big[0]  # big toe on the inside
        assert min(big[2], small[2]) > heel[2] + 0.15


def test_cache_folder_from_the_environment_expands_home_and_survives_unknown_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~/x`` is the home folder; an unknown ``~user`` (a Windows-style ``~\\cache``) is a
    folder of that name, as os.path.expanduser leaves it, not Path.expanduser's RuntimeError."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ADVPRIOR_CACHE", "~/advprior-cache")
    assert cache_dir() == tmp_path / "advprior-cache"
    monkeypatch.setenv("ADVPRIOR_CACHE", "~no-such-user-advprior/cache")
    assert cache_dir() == Path("~no-such-user-advprior/cache")


def test_cache_file_loads_through_smplx(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADVPRIOR_CACHE", str(tmp_path))
    path = standin_path()
    assert path.is_relative_to(tmp_path) and path.name == "SMPL_NEUTRAL.pkl"
    assert not list(path.parent.glob(".*.tmp"))
    mtime = path.stat().st_mtime_ns
    assert standin_path() == path and path.stat().st_mtime_ns == mtime  # written once
    model = smplx.create(str(path), model_type="smpl", vertex_ids=build_standin()["vertex_ids"])
    out = model(return_verts=True)
    np.testing.assert_allclose(out.joints[0, :24].detach().numpy(), REST_JOINTS, atol=1e-6)
    assert out.vertices.shape == (1, len(build_standin()["v_template"]), 3)
    assert torch.isfinite(out.vertices).all()
