"""plot_bodies / plot_skeleton_pairs write real PNGs and reject bad input."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest
import torch

from advprior.body import load_body_model
from advprior.body.plot import plot_bodies, plot_skeleton_pairs, standin_overview

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def posed(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ADVPRIOR_CACHE", str(tmp_path_factory.mktemp("cache")))
        model = load_body_model()
    go = torch.zeros(2, 3)
    bp = torch.zeros(2, 63)
    bp[1, 45:48] = torch.tensor([0.0, 0.0, -1.2])  # left shoulder down
    return model, model(go, bp)


def _image(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG
    return matplotlib.image.imread(path)


def test_mesh_and_skeleton_grid(posed, tmp_path: Path) -> None:
    model, out = posed
    path = plot_bodies(
        out.vertices,
        model.faces,
        out.joints,
        tmp_path / "sub" / "grid.png",
        titles=["rest", "arm down"],
    )
    img = _image(path)
    assert img.shape[1] > img.shape[0]  # two panels side by side
    ink = (img[..., :3] < 0.9).any(-1)
    assert 0.03 < ink.mean() < 0.6  # a body is drawn, not a blank or a filled frame
    assert not list(path.parent.glob(".*.tmp"))


def test_mesh_differs_with_pose_and_view(posed, tmp_path: Path) -> None:
    model, out = posed
    a = _image(plot_bodies(out.vertices[:1], model.faces, None, tmp_path / "a.png"))
    b = _image(plot_bodies(out.vertices[1:], model.faces, None, tmp_path / "b.png"))
    c = _image(plot_bodies(out.vertices[:1], model.faces, None, tmp_path / "c.png", yaw_deg=90))
    for other in (b, c):
        assert a.shape != other.shape or np.abs(a - other).mean() > 1e-3


def test_any_skeleton_pairs(posed, tmp_path: Path) -> None:
    model, out = posed
    # a 5-joint source skeleton with a missing (NaN) joint
    src = np.zeros((2, 5, 3))
    src[:, :, 1] = np.linspace(-1.0, 0.5, 5)
    src[:, 4] = np.nan
    path = plot_skeleton_pairs(
        src,
        [-1, 0, 1, 2, 3],
        tmp_path / "pairs.png",
        vertices=out.vertices,
        faces=model.faces,
        joints=out.joints,
        titles=["one", "two"],
    )
    assert _image(path).shape[1] > _image(path).shape[0]
    overlay = plot_skeleton_pairs(
        src, [-1, 0, 1, 2, 3], tmp_path / "overlay.png", joints=out.joints.numpy(), overlay=True
    )
    _image(overlay)


def test_bad_input(posed, tmp_path: Path) -> None:
    model, out = posed
    with pytest.raises(ValueError, match="vertices, joints or both"):
        plot_bodies(None, None, None, tmp_path / "x.png")
    with pytest.raises(ValueError, match="faces"):
        plot_bodies(out.vertices, None, None, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\(N, K, 3\)"):
        plot_bodies(out.vertices[0], model.faces, None, tmp_path / "x.png")
    with pytest.raises(ValueError, match="parents"):
        plot_bodies(None, None, out.joints, tmp_path / "x.png", skeleton=[-1, 0])
    with pytest.raises(ValueError, match="titles"):
        plot_bodies(None, None, out.joints, tmp_path / "x.png", titles=["a"])
    with pytest.raises(ValueError, match="outside"):
        plot_bodies(out.vertices, model.faces + 10**6, None, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_missing_matplotlib_names_the_extra(posed, tmp_path: Path, monkeypatch) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    _, out = posed
    with pytest.raises(ImportError, match=r"pip install advprior\[viz\]"):
        plot_bodies(None, None, out.joints, tmp_path / "x.png")


def test_per_panel_yaw_and_overview(posed, tmp_path: Path, monkeypatch) -> None:
    model, out = posed
    with pytest.raises(ValueError, match="yaw"):
        plot_bodies(out.vertices, model.faces, None, tmp_path / "x.png", yaw_deg=[0, 90, 180])
    monkeypatch.setenv("ADVPRIOR_CACHE", str(tmp_path / "cache"))
    img = _image(standin_overview(tmp_path / "overview.png"))
    assert img.shape[1] > img.shape[0]
