"""Figures of the evaluation report (needs the ``eval`` extra: matplotlib).

Every function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advprior.fileio import write_atomic


def _subplots(
    nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **kwargs: Any
) -> tuple[Any, Any]:
    """pyplot's ``subplots`` without pyplot: a figure of its own on an Agg canvas. pyplot keeps
    figures in a process-wide registry (not thread-safe: two evaluations in threads shared
    it), and ``matplotlib.use("Agg")`` switched the backend of the caller's whole process (a
    notebook's inline or GUI backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save(fig: object, path: Path) -> Path:
    return write_atomic(
        path, lambda fh: fig.savefig(fh, format="png", dpi=110, bbox_inches="tight")
    )


def cumulative_curves(dists: dict[str, dict[str, dict[str, np.ndarray]]], path: Path) -> Path:
    """``P(d < eps)`` against eps (mm) for recall and precision, per joint and per vertex.

    ``dists[model]["recall" | "precision"][kind]`` holds distances in mm.
    """
    fig, axes = _subplots(2, 2, figsize=(10, 7.5), sharey=True)
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
    fig.subplots_adjust(hspace=0.35)
    fig.suptitle("Cumulative nearest-neighbour distances (higher and further left is better)")
    return _save(fig, path)


def deformation_curves(curves: dict[str, np.ndarray], path: Path) -> Path:
    """Normalised per-step deformation along interpolation paths (paper Fig. 5).

    ``curves[model]`` is ``(pairs, T-1)``; drawn as the mean over pairs with a faint band
    between the 25th and 75th percentiles.
    """
    fig, ax = _subplots(figsize=(7, 4.2))
    for name, c in curves.items():
        c = np.asarray(c)
        steps = np.arange(1, c.shape[1] + 1)
        mean = np.nanmean(c, axis=0)
        lo, hi = np.nanpercentile(c, 25, axis=0), np.nanpercentile(c, 75, axis=0)
        (line,) = ax.plot(steps, mean, marker="o", ms=3, label=name)
        ax.fill_between(steps, lo, hi, alpha=0.08, color=line.get_color())
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("interpolation step")
    ax.set_ylabel("mesh delta / mean delta of the path\n(mean over pairs; band: quartiles)")
    ax.set_title("Per-step deformation along interpolations (1 everywhere = perfectly even)")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def pca_scatter(real: np.ndarray, generated: dict[str, np.ndarray], path: Path) -> Path:
    """Real versus generated poses on the first two principal axes of the real joints.

    ``real (N, F)`` and ``generated[model] (M, F)``: flattened pelvis-centred joint positions.
    """
    mean = real.mean(axis=0)
    _, _, vt = np.linalg.svd(real - mean, full_matrices=False)
    axes2 = vt[:2].T
    r2 = (real - mean) @ axes2
    n = len(generated)
    fig, axes = _subplots(1, n, figsize=(3.3 * n, 3.4), sharex=True, sharey=True, squeeze=False)
    for ax, (name, g) in zip(axes[0], generated.items(), strict=True):
        g2 = (g - mean) @ axes2
        ax.scatter(r2[:, 0], r2[:, 1], s=2, c="0.6", alpha=0.5, label="real (test)")
        ax.scatter(g2[:, 0], g2[:, 1], s=2, c="tab:red", alpha=0.35, label="generated")
        ax.set_title(name)
        ax.set_xlabel("PC 1")
    axes[0, 0].set_ylabel("PC 2")
    axes[0, 0].legend(markerscale=4, loc="best", fontsize=7)
    fig.suptitle("PCA of joint positions (axes fitted on the real poses)", y=1.04)
    return _save(fig, path)


def interpolation_strip(paths: dict[str, np.ndarray], faces: np.ndarray, path: Path) -> Path:
    """A strip of bodies along one interpolation per model (rows: models, columns: steps),
    drawn with ``advprior.body.plot.plot_bodies``.

    ``paths[model]`` is ``(S, V, 3)`` vertices (metres, y up) of the S shown steps; every
    model shows the same number of steps.
    """
    from advprior.body.plot import plot_bodies

    cols = {v.shape[0] for v in paths.values()}
    if len(cols) != 1:
        raise ValueError(f"every model must show the same number of steps, got {sorted(cols)}")
    steps = cols.pop()
    titles = [name if i == 0 else f"{i}/{steps - 1}" for name in paths for i in range(steps)]
    verts = np.concatenate(list(paths.values()))
    return plot_bodies(verts, faces, None, path, titles=titles, ncols=steps, panel_size=1.7)
