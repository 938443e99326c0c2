"""The protocol's metrics against independent float64 references (numpy / scipy, brute force).

Every reference here is written from the definition (Umeyama's SVD solution, scipy's
``procrustes`` and ``cdist``, a numpy bootstrap with its own random numbers), not from the code
under test. Tolerances come from a float analysis stated next to each, not from one run.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial import procrustes as scipy_procrustes
from scipy.spatial.distance import cdist

from advprior.eval.benchmark import joint_errors_mm
from advprior.eval.metrics import (
    mpjpe,
    nn_distances,
    p_mpjpe,
    paired_difference_interval,
    paired_ratio_interval,
    per_step_deformation,
    procrustes_align,
    recall_precision,
    smoothness_ratio,
)

EPS32 = float(np.finfo(np.float32).eps)  # 2^-23
EPS64 = float(np.finfo(np.float64).eps)


def _umeyama(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Float64 similarity alignment of ``x (J, 3)`` to ``y`` by SVD, rotations only (det +1)."""
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    u, s, vt = np.linalg.svd(yc.T @ xc)
    d = np.array([1.0, 1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    var = (xc**2).sum()
    scale = (s * d).sum() / var if var > 0 else 0.0
    return scale * xc @ (u @ np.diag(d) @ vt).T + my


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def _posed(rng: np.random.Generator, n: int, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``n`` body-sized (about 0.4 m spread) target sets around ``centre`` and predictions: a
    rotated, scaled, noisy copy somewhere else in front of the camera."""
    target = 0.4 * rng.normal(size=(n, 24, 3)) + centre
    pred = np.stack(
        [
            (1.1 * t @ _rotation(rng).T) + 0.05 * rng.normal(size=(24, 3)) - 0.5 * centre
            for t in target
        ]
    )
    return pred, target


@pytest.mark.parametrize("distance", [5.0, 100.0])
def test_procrustes_far_from_the_origin_in_float32(distance: float) -> None:
    """The fitting benchmark aligns float32 camera-frame joints 3-6 m from the camera. Rounding
    float32 inputs costs eps/2 * |x| per coordinate and every step after centring works on
    body-sized numbers, so the result is within a few eps * max|x| of the float64 solution
    (16 eps * |x|: 12 um at 5 m, 0.2 mm at 100 m). An SVD of the uncentred cross-covariance
    loses eps * |x|^2 / spread^2 relative in the rotation: at 100 m about 7e-3 rad, ~3 mm on a
    0.4 m body, which this tolerance rejects."""
    rng = np.random.default_rng(int(distance))
    pred, target = _posed(rng, 64, np.array([0.3, -0.2, distance]))
    p32, t32 = torch.tensor(pred, dtype=torch.float32), torch.tensor(target, dtype=torch.float32)
    # the reference sees the same (float32-rounded) inputs
    x, y = p32.double().numpy(), t32.double().numpy()
    want = np.stack([_umeyama(a, b) for a, b in zip(x, y, strict=True)])
    got = procrustes_align(p32, t32)
    assert got.dtype == torch.float32
    scale = max(np.abs(x).max(), np.abs(y).max())
    np.testing.assert_allclose(got.double().numpy(), want, rtol=0, atol=16 * EPS32 * scale)
    want_err = np.linalg.norm(want - y, axis=-1).mean(-1)
    np.testing.assert_allclose(
        p_mpjpe(p32, t32).double().numpy(), want_err, rtol=0, atol=16 * EPS32 * scale
    )


def test_procrustes_error_equals_scipy_procrustes_disparity() -> None:
    """scipy.spatial.procrustes scales both sets to unit norm and allows reflections; its
    disparity is the residual ``1 - tr(S)^2 / (|Xc|^2 |Yc|^2)``. Where scipy's best orthogonal
    map is a rotation, our squared residual is exactly ``|Yc|^2`` times it; where it is a
    reflection (a mirrored body), ours must be strictly larger: no reflection is used."""
    rng = np.random.default_rng(3)
    target = rng.normal(size=(12, 24, 3))
    pred = np.stack([2.0 * t @ _rotation(rng).T + 0.3 * rng.normal(size=(24, 3)) for t in target])
    pred[6:] = pred[6:] * np.array([1.0, -1.0, 1.0])  # mirrored: scipy may reflect them back
    aligned = procrustes_align(torch.tensor(pred), torch.tensor(target)).numpy()
    sse = ((aligned - target) ** 2).sum((-1, -2))
    reflected = 0
    for i in range(len(target)):
        yc = target[i] - target[i].mean(0)
        _, _, disparity = scipy_procrustes(target[i], pred[i])
        xc = pred[i] - pred[i].mean(0)
        r, _ = orthogonal_procrustes(xc, yc)  # xc @ r ~ yc, any orthogonal r
        scipy_sse = (yc**2).sum() * disparity
        if np.linalg.det(r) > 0:
            # both sums of 72 squares of O(1) numbers: a few eps * |Yc|^2 (~24) from the exact
            # minimum (under 0.3 eps * |Yc|^2 on 600 such sets)
            assert sse[i] == pytest.approx(scipy_sse, rel=0, abs=16 * EPS64 * (yc**2).sum())
        else:
            reflected += 1
            assert sse[i] > scipy_sse + 1e-3
    assert reflected == 6


def test_procrustes_batched_and_degenerate_sets_against_the_svd_reference() -> None:
    """Any batch shape, tiny sets (1-3 points), collinear and coinciding sets on either side,
    and a NaN that spoils only its own set. Float64 SVD solutions of O(1) sets agree to ~10 eps
    per coordinate; 1e-12 leaves room for the collinear sets' arbitrary rotation about the
    line (the aligned points do not depend on it)."""
    rng = np.random.default_rng(4)
    for joints in (1, 2, 3, 17):
        x = rng.normal(size=(2, 3, joints, 3))
        y = rng.normal(size=(2, 3, joints, 3))
        want = np.stack(
            [
                [_umeyama(a, b) for a, b in zip(xa, ya, strict=True)]
                for xa, ya in zip(x, y, strict=True)
            ]
        )
        got = procrustes_align(torch.tensor(x), torch.tensor(y)).numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    line = rng.normal(size=(24, 1))
    x = rng.normal(size=(5, 24, 3))
    y = rng.normal(size=(5, 24, 3))
    x[0] = line * [1.0, 2.0, 3.0]  # collinear prediction
    y[1] = line * [0.0, 1.0, 0.0] + 3.0  # collinear target
    x[2], y[2] = line * [1.0, 0.0, 1.0], 2 * line * [0.0, 1.0, 1.0]  # both
    y[3] = y[3, :1]  # target collapsed to a point: scale 0, the prediction maps onto it
    x[4] = x[4, :1]  # prediction collapsed to a point: maps to the target's centroid
    want = np.stack([_umeyama(a, b) for a, b in zip(x, y, strict=True)])
    got = procrustes_align(torch.tensor(x), torch.tensor(y)).numpy()
    unique = [0, 2, 3, 4]
    np.testing.assert_allclose(got[unique], want[unique], rtol=0, atol=1e-12)
    # A collinear target leaves the turn about its line free (only R v1 = u1 is fixed), so only
    # the squared residual is unique there (and P-MPJPE, a mean of norms, is not).
    sse = ((got[1] - y[1]) ** 2).sum()
    assert sse == pytest.approx(((want[1] - y[1]) ** 2).sum(), rel=1e-12)
    # the same in float32 for the collapsed prediction, 5 m in front of the camera
    far = torch.tensor([0.3, 0.2, 5.0]).expand(24, 3).clone()
    t32 = torch.tensor(y[4], dtype=torch.float32)
    torch.testing.assert_close(procrustes_align(far, t32), t32.mean(0).expand(24, 3))
    # a NaN (a missing joint) in the target makes that set's error NaN and no other
    y[1, 7, 2] = np.nan
    err = p_mpjpe(torch.tensor(x), torch.tensor(y)).numpy()
    assert np.isnan(err[1]) and np.isfinite(np.delete(err, 1)).all()


def test_benchmark_errors_are_pelvis_aligned_mpjpe_and_procrustes_in_mm() -> None:
    """``joint_errors_mm``: MPJPE after subtracting joint 0 (SMPL's pelvis) from both sets, and
    P-MPJPE of the raw sets, in mm for inputs in metres (docs/fitting.md, docs/eval.md)."""
    rng = np.random.default_rng(5)
    target = 0.4 * rng.normal(size=(6, 24, 3)) + [0.0, 0.0, 4.0]
    pred = target + 0.03 * rng.normal(size=(6, 24, 3)) + [0.2, -0.1, 0.5]
    got = joint_errors_mm(torch.tensor(pred), torch.tensor(target))
    rel = (pred - pred[:, :1]) - (target - target[:, :1])
    np.testing.assert_allclose(got["mpjpe"].numpy(), 1000 * np.linalg.norm(rel, axis=-1).mean(-1))
    want_p = [
        np.linalg.norm(_umeyama(a, b) - b, axis=-1).mean()
        for a, b in zip(pred, target, strict=True)
    ]
    np.testing.assert_allclose(got["p_mpjpe"].numpy(), 1000 * np.array(want_p), rtol=1e-12)
    # a pure translation: 0 after pelvis alignment, and mpjpe itself applies none
    shifted = joint_errors_mm(torch.tensor(target + [1.0, 2.0, 2.0]), torch.tensor(target))
    assert float(shifted["mpjpe"].abs().max()) < 1e-9
    assert float(mpjpe(torch.tensor(target + [1.0, 2.0, 2.0]), torch.tensor(target)).min()) == (
        pytest.approx(3.0)
    )


def _reference_nn(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 4 by brute force: ``mean_k ||q_k - r_k||`` from scipy's per-point distance matrices;
    the first of equal minima (numpy's argmin)."""
    dist = sum(cdist(query[:, k], reference[:, k]) for k in range(query.shape[1]))
    dist = dist / query.shape[1]
    return dist.min(1), dist.argmin(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nn_distances_against_scipy_far_apart_in_chunks_that_do_not_divide(
    dtype: torch.dtype,
) -> None:
    """Queries 50 m from every reference (the expanded form's rounding grows with |x|^2, the
    search centres on the references' mean), chunk sizes that divide neither 37 nor 101.
    Each returned distance is a direct mean of norms of differences: a few eps relative."""
    rng = np.random.default_rng(6)
    q = torch.tensor(0.3 * rng.normal(size=(37, 24, 3)) + 50.0, dtype=dtype)
    r = torch.tensor(0.3 * rng.normal(size=(101, 24, 3)), dtype=dtype)
    want, want_idx = _reference_nn(q.double().numpy(), r.double().numpy())
    eps = float(torch.finfo(dtype).eps)
    for chunk in (1, 10, 37, 100, 512):
        dist, idx = nn_distances(q, r, chunk_size=chunk, return_index=True)
        np.testing.assert_allclose(dist.double().numpy(), want, rtol=8 * eps, atol=0)
        np.testing.assert_array_equal(idx.numpy(), want_idx)


def test_recall_precision_against_scipy() -> None:
    """Recall: each real set's nearest generated one; precision: each generated set's nearest
    in the precision reference; means and (lower) medians of those."""
    rng = np.random.default_rng(7)
    real = rng.normal(size=(30, 24, 3))
    generated = rng.normal(size=(45, 24, 3))
    train = rng.normal(size=(60, 24, 3))
    out = recall_precision(
        torch.tensor(real),
        torch.tensor(generated),
        precision_reference=torch.tensor(train),
        chunk_size=16,
    )
    recall = _reference_nn(real, generated)[0]
    precision = _reference_nn(generated, train)[0]
    np.testing.assert_allclose(out["recall_dists"].numpy(), recall, rtol=1e-13)
    np.testing.assert_allclose(out["precision_dists"].numpy(), precision, rtol=1e-13)
    assert out["recall_mean"] == pytest.approx(recall.mean(), rel=1e-13)
    assert out["precision_mean"] == pytest.approx(precision.mean(), rel=1e-13)
    # torch.median of an even count is the lower middle value (docs/eval.md, "Medians")
    assert out["recall_median"] == pytest.approx(np.sort(recall)[14], rel=1e-13)
    assert out["precision_median"] == pytest.approx(np.sort(precision)[22], rel=1e-13)


def test_smoothness_against_numpy_and_its_zero_steps() -> None:
    """R = max / min over a path of the mean per-vertex step; a zero step gives inf and an
    all-zero path NaN (documented in ``smoothness_ratio``)."""
    rng = np.random.default_rng(8)
    paths = np.cumsum(rng.exponential(size=(2, 3, 9, 1, 1)) * rng.normal(size=(2, 3, 9, 40, 3)), 2)
    deltas = np.linalg.norm(np.diff(paths, axis=2), axis=-1).mean(-1)  # (2, 3, 8)
    t = torch.tensor(paths)
    np.testing.assert_allclose(per_step_deformation(t).numpy(), deltas, rtol=1e-13)
    np.testing.assert_allclose(
        per_step_deformation(t, normalize=True).numpy(),
        deltas / deltas.mean(-1, keepdims=True),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        smoothness_ratio(t).numpy(), deltas.max(-1) / deltas.min(-1), rtol=1e-13
    )
    stall = t[0, 0].clone()
    stall[4] = stall[3]  # one repeated pose
    assert torch.isinf(smoothness_ratio(stall))
    assert torch.isnan(smoothness_ratio(torch.zeros(5, 40, 3)))


def test_path_ratio_against_numpy(body) -> None:  # noqa: ANN001
    """Path length (sum of consecutive mean joint displacements) over the mean joint distance of
    the two ends, on the joints of ``pose_joints`` (zero orientation, pelvis at the origin)."""
    from advprior.eval.metrics import pose_joints
    from advprior.eval.protocol import path_ratio

    gen = torch.Generator().manual_seed(9)
    paths = 0.3 * torch.randn(3, 6, 63, generator=gen, dtype=torch.float64)
    joints = pose_joints(paths.reshape(18, 63), body).reshape(3, 6, 24, 3).numpy()
    assert np.abs(joints[:, :, 0]).max() == 0.0
    length = np.linalg.norm(np.diff(joints, axis=1), axis=-1).mean(-1).sum(-1)
    direct = np.linalg.norm(joints[:, -1] - joints[:, 0], axis=-1).mean(-1)
    np.testing.assert_allclose(path_ratio(paths, body).numpy(), length / direct, rtol=1e-12)
    # the triangle inequality, joint by joint: never below 1
    assert (length / direct >= 1.0).all()


def _numpy_bootstrap(
    a: np.ndarray, b: np.ndarray, statistic, level: float, resamples: int, seed: int
) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(resamples, len(a)))
    values = statistic(a[idx].mean(1), b[idx].mean(1))
    tail = (1 - level) / 2
    return np.quantile(values, [tail, 1 - tail]), float(values.std())


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_paired_intervals_against_an_independent_bootstrap(level: float) -> None:
    """Percentile bootstrap over frames, pairs kept together, 10,000 resamples (docs/eval.md).
    The reference draws its own 40,000 resamples with numpy's generator, so the two endpoints
    differ only by Monte Carlo error: a 2.5% quantile of R resamples is off by about
    sqrt(p (1 - p) / R) / phi(1.96) = 0.027 standard deviations of the statistic for R = 10^4
    (0.013 for 4 * 10^4), so 0.15 sd is five of the difference's standard deviations. A
    normal interval (bootstrap sd or the delta method's) would differ from it by more on
    these skewed, heavy-tailed errors (about 0.2-0.3 sd at either end), and only its width is
    checked, to within a quarter."""
    rng = np.random.default_rng(10)
    b = rng.lognormal(4.0, 0.5, size=96)  # per-frame P-MPJPE-like errors, mm
    a = b * rng.lognormal(0.0, 0.15, size=96)
    a[:4] *= 4.0  # four frames in a wrong basin: a skewed ratio (a normal interval is 0.2 sd off)
    lo, hi = paired_ratio_interval(torch.tensor(a), torch.tensor(b), level=level)
    ref, sd = _numpy_bootstrap(a, b, lambda x, y: x / y - 1, level, 40_000, 1)
    assert abs(lo - ref[0]) < 0.15 * sd and abs(hi - ref[1]) < 0.15 * sd
    r = a.mean() / b.mean()
    z = {0.95: 1.959964, 0.8: 1.281552}[level]
    se = ((a - r * b) / b.mean()).std(ddof=1) / np.sqrt(len(a))  # delta method
    assert abs((hi - lo) / (2 * z * se) - 1) < 0.25
    lo, hi = paired_difference_interval(torch.tensor(a), torch.tensor(b), level=level)
    ref, sd = _numpy_bootstrap(a, b, lambda x, y: x - y, level, 40_000, 2)
    assert abs(lo - ref[0]) < 0.15 * sd and abs(hi - ref[1]) < 0.15 * sd
