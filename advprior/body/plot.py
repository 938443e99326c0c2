"""Pictures of bodies and skeletons (needs matplotlib: ``pip install advprior[viz]``).

Meshes are drawn as flat-shaded triangles by a painter's algorithm in an orthographic camera
(back faces culled, far faces first): unlike matplotlib's 3D axes this is fast and sorts
correctly for thousands of faces. Input in SMPL's frame: y up, the body faces +z; ``yaw_deg``
turns the camera about y (0 = seen from the front, 90 = seen from the body's left).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advprior.fileio import write_atomic
from advprior.skeleton import PARENTS

__all__ = ["plot_bodies", "plot_skeleton_pairs", "standin_overview"]

_MESH_RGB = np.array([0.62, 0.70, 0.84])
_SKELETON_COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd")


def _matplotlib() -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection, PolyCollection
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("advprior.body.plot needs matplotlib: pip install advprior[viz]") from exc
    return Figure, FigureCanvasAgg, PolyCollection, LineCollection


@dataclass
class _Panel:
    vertices: np.ndarray | None = None
    joints: list[tuple[np.ndarray, Sequence[int], str]] | None = None
    title: str | None = None


def _as_array(x: Any, name: str, last: int | None = 3) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3 or (last is not None and arr.shape[-1] != last):
        raise ValueError(f"{name} must have shape (N, K, 3), got {arr.shape}")
    return arr


def _view(points: np.ndarray, yaw_deg: float) -> np.ndarray:
    """World points ``(..., 3)`` -> camera ``(..., 3)``: screen x, screen y, depth (toward the
    viewer). The camera sits on the body's +z side for yaw 0."""
    a = math.radians(yaw_deg)
    c, s = math.cos(a), math.sin(a)
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    # rotating the body by -yaw about y is the same as moving the camera by +yaw
    xr, zr = c * x - s * z, s * x + c * z
    return np.stack([-xr, y, zr], -1)


def _draw_mesh(ax: Any, poly_cls: Any, verts: np.ndarray, faces: np.ndarray, yaw: float) -> None:
    cam = _view(verts, yaw)
    tri = cam[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    # screen x is mirrored (-x), so outward faces have negative z in this handedness
    normal = -normal
    norm = np.linalg.norm(normal, axis=1)
    keep = (normal[:, 2] > 0) & (norm > 0)
    tri, normal = tri[keep], normal[keep] / norm[keep, None]
    light = np.array([0.35, 0.30, 0.89])
    light /= np.linalg.norm(light)
    shade = 0.30 + 0.70 * np.clip(normal @ light, 0.0, 1.0)
    order = np.argsort(tri[:, :, 2].mean(1))
    colors = np.clip(shade[order, None] * _MESH_RGB, 0, 1)
    ax.add_collection(
        poly_cls(tri[order, :, :2], facecolors=colors, edgecolors=colors, linewidths=0.2)
    )


def _draw_skeleton(
    ax: Any,
    line_cls: Any,
    joints: np.ndarray,
    parents: Sequence[int],
    color: str,
    yaw: float,
    on_mesh: bool,
) -> None:
    cam = _view(joints, yaw)
    ok = np.isfinite(cam).all(-1)
    segs = [cam[[p, j], :2] for j, p in enumerate(parents) if p >= 0 and ok[j] and ok[p]]
    ax.add_collection(line_cls(segs, colors=color, linewidths=2.0, zorder=3))
    ax.scatter(cam[ok, 0], cam[ok, 1], s=8 if on_mesh else 12, c=color, zorder=4)


def _render(
    panels: list[_Panel],
    faces: np.ndarray | None,
    path: str | Path,
    *,
    ncols: int | None,
    yaw_deg: float | Sequence[float],
    panel_size: float,
    dpi: int,
) -> Path:
    figure_cls, canvas_cls, poly_cls, line_cls = _matplotlib()
    n = len(panels)
    yaws = [float(yaw_deg)] * n if np.ndim(yaw_deg) == 0 else [float(y) for y in yaw_deg]
    if len(yaws) != n:
        raise ValueError(f"{len(yaws)} yaw angles for {n} panels")

    def points(p: _Panel, yaw: float) -> np.ndarray:
        pts = [p.vertices] if p.vertices is not None else []
        pts += [j for j, _, _ in p.joints or []]
        cam = _view(np.concatenate(pts), yaw)
        return cam[np.isfinite(cam).all(-1)]

    cams = [points(p, y) for p, y in zip(panels, yaws, strict=True)]
    # one scale for every panel, so bodies of different size and pose compare by eye
    half_x = max([0.5 * float(np.ptp(c[:, 0])) for c in cams if len(c)] or [0.5]) * 1.06
    half_y = max([0.5 * float(np.ptp(c[:, 1])) for c in cams if len(c)] or [1.0]) * 1.06
    aspect = float(np.clip(half_x / half_y, 0.45, 1.6))
    half_x = aspect * half_y
    ncols = min(n, ncols or min(n, 6))
    nrows = math.ceil(n / ncols)
    fig = figure_cls(figsize=(panel_size * aspect * ncols, panel_size * nrows), dpi=dpi)
    canvas_cls(fig)
    for i, (panel, cam, yaw) in enumerate(zip(panels, cams, yaws, strict=True)):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if panel.vertices is not None:
            _draw_mesh(ax, poly_cls, panel.vertices, faces, yaw)
        for joints, parents, color in panel.joints or []:
            on_mesh = panel.vertices is not None
            _draw_skeleton(ax, line_cls, joints, parents, color, yaw, on_mesh)
        centre = 0.5 * (cam.min(0) + cam.max(0)) if len(cam) else np.zeros(3)
        ax.set_xlim(centre[0] - half_x, centre[0] + half_x)
        ax.set_ylim(centre[1] - half_y, centre[1] + half_y)
        ax.set_aspect("equal")
        ax.set_axis_off()
        if panel.title:
            ax.set_title(panel.title, fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.94, wspace=0.02, hspace=0.1)
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    return write_atomic(path, lambda fh: fig.savefig(fh, format="png"))


def _faces(faces: Any, num_vertices: int) -> np.ndarray:
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must be an integer array of shape (F, 3), got {f.shape} {f.dtype}")
    if f.size and (f.min() < 0 or f.max() >= num_vertices):
        raise ValueError(f"faces index outside the {num_vertices} vertices")
    return f.astype(np.int64)


def _parents(skeleton: Sequence[int] | None, num_joints: int) -> list[int]:
    parents = list(PARENTS if skeleton is None else skeleton)
    if len(parents) != num_joints:
        raise ValueError(f"skeleton has {len(parents)} parents but joints have {num_joints}")
    if any(not -1 <= p < num_joints or p == j for j, p in enumerate(parents)):
        raise ValueError("skeleton must list each joint's parent index (-1 for a root)")
    return parents


def plot_bodies(
    vertices: Any | None,
    faces: Any | None,
    joints: Any | None,
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    skeleton: Sequence[int] | None = None,
    yaw_deg: float | Sequence[float] = 0.0,
    panel_size: float = 3.2,
    dpi: int = 110,
) -> Path:
    """Draw a grid of N bodies and save it as a PNG (atomically).

    Args:
        vertices: ``(N, V, 3)`` meshes (metres, y up) or None for stick figures only.
        faces: ``(F, 3)`` int triangles of the mesh (e.g. ``BodyModel.faces``); needed with
            ``vertices``.
        joints: ``(N, J, 3)`` joints drawn as a skeleton (over the mesh, if any), or None.
        path: output ``.png``.
        titles: N panel titles.
        ncols: panels per row (default up to 6).
        skeleton: parent index of each of the J joints (-1 for roots); default SMPL's
            :data:`~advprior.skeleton.PARENTS`. NaN joints are skipped.
        yaw_deg: camera turn about y in degrees (0 = front view, 90 = from the body's left),
            one for all panels or one per panel.

    Returns the written path. Raises ImportError naming ``advprior[viz]`` without matplotlib.
    """
    _matplotlib()
    verts = None if vertices is None else _as_array(vertices, "vertices")
    jts = None if joints is None else _as_array(joints, "joints")
    if verts is None and jts is None:
        raise ValueError("give vertices, joints or both")
    f = None
    if verts is not None:
        if faces is None:
            raise ValueError("faces are needed to draw vertices as a mesh")
        f = _faces(faces, verts.shape[1])
    n = len(verts) if verts is not None else len(jts)
    if verts is not None and jts is not None and len(jts) != n:
        raise ValueError(f"{n} meshes but {len(jts)} joint sets")
    parents = _parents(skeleton, jts.shape[1]) if jts is not None else None
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} bodies")
    panels = [
        _Panel(
            vertices=None if verts is None else verts[i],
            joints=None if jts is None else [(jts[i], parents, _SKELETON_COLORS[0])],
            title=None if titles is None else str(titles[i]),
        )
        for i in range(n)
    ]
    return _render(panels, f, path, ncols=ncols, yaw_deg=yaw_deg, panel_size=panel_size, dpi=dpi)


def plot_skeleton_pairs(
    source_joints: Any,
    source_parents: Sequence[int],
    path: str | Path,
    *,
    vertices: Any | None = None,
    faces: Any | None = None,
    joints: Any | None = None,
    skeleton: Sequence[int] | None = None,
    titles: Sequence[str] | None = None,
    overlay: bool = False,
    yaw_deg: float | Sequence[float] = 0.0,
    panel_size: float = 3.2,
    dpi: int = 110,
) -> Path:
    """Draw N source skeletons next to N target bodies (e.g. mocap and its SMPL retargeting).

    Each row holds pairs ``[source | target]``; with ``overlay`` the source skeleton is drawn
    over the target instead, in one panel.

    Args:
        source_joints: ``(N, Js, 3)`` source joints in SMPL's frame (metres, y up); NaN rows are
            skipped.
        source_parents: ``Js`` parent indices of the source skeleton (-1 for roots).
        path: output ``.png``.
        vertices, faces: optional target meshes ``(N, V, 3)`` and ``(F, 3)``.
        joints, skeleton: optional target joints ``(N, J, 3)`` and their parents (default
            SMPL's).
        titles: N titles, one per pair.
    """
    _matplotlib()
    src = _as_array(source_joints, "source_joints")
    sp = _parents(source_parents, src.shape[1])
    n = len(src)
    verts = None if vertices is None else _as_array(vertices, "vertices")
    jts = None if joints is None else _as_array(joints, "joints")
    if verts is None and jts is None:
        raise ValueError("give the target as vertices (with faces), joints, or both")
    for name, arr in (("vertices", verts), ("joints", jts)):
        if arr is not None and len(arr) != n:
            raise ValueError(f"{n} source skeletons but {len(arr)} target {name}")
    f = None
    if verts is not None:
        if faces is None:
            raise ValueError("faces are needed to draw vertices as a mesh")
        f = _faces(faces, verts.shape[1])
    tp = _parents(skeleton, jts.shape[1]) if jts is not None else None
    if titles is not None and len(titles) != n:
        raise ValueError(f"{len(titles)} titles for {n} pairs")
    panels: list[_Panel] = []
    for i in range(n):
        title = None if titles is None else str(titles[i])
        target = [] if jts is None else [(jts[i], tp, _SKELETON_COLORS[1])]
        source = [(src[i], sp, _SKELETON_COLORS[0])]
        tv = None if verts is None else verts[i]
        if overlay:
            panels.append(_Panel(tv, target + source, title))
        else:
            panels.append(_Panel(None, source, None if title is None else f"{title}: source"))
            panels.append(_Panel(tv, target, None if title is None else f"{title}: SMPL"))
    if np.ndim(yaw_deg) and not overlay:
        yaw_deg = [float(y) for y in yaw_deg for _ in range(2)]
    ncols = 4 if overlay else 6
    return _render(
        panels,
        f,
        path,
        ncols=min(ncols, len(panels)),
        yaw_deg=yaw_deg,
        panel_size=panel_size,
        dpi=dpi,
    )


def standin_overview(path: str | Path) -> Path:
    """The stand-in body in a few poses and shapes (the picture in ``docs/body.md``)."""
    import torch

    from advprior.body import load_body_model

    model = load_body_model()
    n = 6
    pose = torch.zeros(n, 69)

    def turn(b: int, joint: int, aa: tuple[float, float, float]) -> None:
        pose[b, 3 * (joint - 1) : 3 * joint] = torch.tensor(aa)

    for side in (1, -1):  # A-pose for panels 1, 2 and 5
        for b in (1, 2, 5):
            turn(b, 16 if side > 0 else 17, (0.0, 0.0, -1.15 * side))
    turn(2, 1, (-0.5, 0.0, 0.0)), turn(2, 2, (0.35, 0.0, 0.0)), turn(2, 4, (0.4, 0.0, 0.0))
    turn(2, 5, (0.6, 0.0, 0.0)), turn(2, 18, (0.0, -0.5, 0.0)), turn(2, 19, (0.0, 0.5, 0.0))
    turn(3, 1, (-1.5, 0.0, 0.1)), turn(3, 2, (-1.5, 0.0, -0.1)), turn(3, 4, (1.6, 0.0, 0.0))
    turn(3, 5, (1.6, 0.0, 0.0)), turn(3, 16, (0.0, 0.4, -0.9)), turn(3, 17, (0.0, -0.4, 0.9))
    turn(3, 18, (0.0, -1.3, 0.0)), turn(3, 19, (0.0, 1.3, 0.0))
    betas = torch.zeros(n, 10)
    betas[4, :2] = torch.tensor([2.0, 2.0])
    betas[5, :2] = torch.tensor([-2.0, -1.5])
    out = model(torch.zeros(n, 3), pose, betas=betas)
    titles = [
        "T-pose",
        "A-pose, side",
        "walking, 3/4",
        "sitting, side",
        "+2 stature, +2 weight",
        "-2 stature, -1.5 weight",
    ]
    return plot_bodies(
        out.vertices, model.faces, None, path, titles=titles, yaw_deg=[0, 90, 35, 90, 0, 0], ncols=3
    )


if __name__ == "__main__":
    import sys

    print(standin_overview(sys.argv[1] if len(sys.argv) > 1 else "standin.png"))
