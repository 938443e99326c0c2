"""Figures of the evaluation report (needs the ``eval`` extra: matplotlib).

Every function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: object, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _pyplot().close(fig)
    return path


def cumulative_curves(dists: dict[str, dict[str, dict[str, np.ndarray]]], path: Path) -> Path:
    """``P(d < eps)`` against eps (mm) for recall and precision, per joint and per vertex.

    ``dists[model]["recall" | "precision"][kind]`` holds distances in mm.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5), sharey=True)
    for row, which in enumerate(("recall", "precision")):
        for col, kind in enumerate(("joints", "vertices")):
            ax = axes[row, col]
            top = 0.0
            for name, d in dists.items():
                values = np.sort(np.asarray(d[which][kind]))
                if values.size == 0:
                    continue
                ax.plot(values, np.arange(1, values.size + 1) / values.size, label=name)
                top = max(top, float(np.quantile(values, 0.99)))
            ax.set_xlim(0, top * 1.05 if top > 0 else 1)
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            ax.set_title(f"{which}, per {kind[:-1] if kind == 'joints' else 'vertex'} (Eq. 4)")
            ax.set_xlabel("eps (mm)")
            if col == 0:
                ax.set_ylabel("P(d < eps)")
    axes[0, 0].legend()
    fig.suptitle("Cumulative nearest-neighbour distances (higher and further left is better)")
    return _save(fig, path)


def deformation_curves(curves: dict[str, np.ndarray], path: Path) -> Path:
    """Normalised per-step deformation along interpolation paths (paper Fig. 5).

    ``curves[model]`` is ``(pairs, T-1)``; drawn as the mean over pairs with a +-1 std band.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, c in curves.items():
        c = np.asarray(c)
        steps = np.arange(1, c.shape[1] + 1)
        mean, std = np.nanmean(c, axis=0), np.nanstd(c, axis=0)
        ax.plot(steps, mean, marker="o", ms=3, label=name)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("interpolation step")
    ax.set_ylabel("mesh delta / mean delta of the path")
    ax.set_title("Per-step deformation along interpolations (1 everywhere = perfectly even)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def pca_scatter(real: np.ndarray, generated: dict[str, np.ndarray], path: Path) -> Path:
    """Real versus generated poses on the first two principal axes of the real joints.

    ``real (N, F)`` and ``generated[model] (M, F)``: flattened pelvis-centred joint positions.
    """
    plt = _pyplot()
    mean = real.mean(axis=0)
    _, _, vt = np.linalg.svd(real - mean, full_matrices=False)
    axes2 = vt[:2].T
    r2 = (real - mean) @ axes2
    n = len(generated)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.4), sharex=True, sharey=True,
                             squeeze=False)
    for ax, (name, g) in zip(axes[0], generated.items(), strict=True):
        g2 = (g - mean) @ axes2
        ax.scatter(r2[:, 0], r2[:, 1], s=2, c="0.6", alpha=0.5, label="real (test)")
        ax.scatter(g2[:, 0], g2[:, 1], s=2, c="tab:red", alpha=0.35, label="generated")
        ax.set_title(name)
        ax.set_xlabel("PC 1")
    axes[0, 0].set_ylabel("PC 2")
    axes[0, 0].legend(markerscale=4, loc="best", fontsize=7)
    fig.suptitle("PCA of joint positions (axes fitted on the real poses)")
    return _save(fig, path)


def interpolation_strip(paths: dict[str, np.ndarray], faces: np.ndarray, path: Path) -> Path:
    """A strip of bodies along one interpolation per model (rows: models, columns: steps).

    ``paths[model]`` is ``(S, V, 3)`` vertices (metres, y up) of the S shown steps.
    """
    plt = _pyplot()
    rows = len(paths)
    cols = max(v.shape[0] for v in paths.values())
    fig = plt.figure(figsize=(1.5 * cols, 2.6 * rows))
    for r, (name, verts) in enumerate(paths.items()):
        for c in range(verts.shape[0]):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1)
            _draw_mesh(ax, verts[c], faces)
            if c == 0:
                ax.set_title(name, loc="left", fontsize=9)
    fig.suptitle("Interpolation between two held-out poses (left: start, right: end)")
    return _save(fig, path)


def _draw_mesh(ax: object, verts: np.ndarray, faces: np.ndarray) -> None:
    """Front view (x right, y up) of a mesh as flat-shaded triangles, far ones drawn first."""
    from matplotlib.collections import PolyCollection

    tri = verts[faces]  # (F, 3, 3)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    # The body faces +z: looking from +z, so nearer triangles have larger z.
    order = np.argsort(tri[:, :, 2].mean(axis=1))
    shade = 0.35 + 0.6 * np.clip(normal[order] @ np.array([0.3, 0.4, 0.87]), 0, 1)
    colours = np.stack([shade * 0.55, shade * 0.7, shade * 0.95], axis=1)
    polys = PolyCollection(tri[order][:, :, :2], facecolors=colours, edgecolors="none")
    ax.add_collection(polys)
    lo, hi = verts[:, :2].min(axis=0), verts[:, :2].max(axis=0)
    mid, half = (lo + hi) / 2, max(hi - lo) / 2 + 0.05
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_aspect("equal")
    ax.axis("off")
