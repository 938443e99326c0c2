"""Metrics of the paper's protocol on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advprior.eval.metrics import (
    mpjpe,
    nn_distances,
    p_mpjpe,
    per_step_deformation,
    procrustes_align,
    recall_precision,
    smoothness_ratio,
)


def _brute_force(query: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    full = (query[:, None] - reference[None]).norm(dim=-1).mean(dim=-1)
    return full.min(dim=1)


def _rotation(seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=dtype))
    return q * torch.sign(torch.linalg.det(q))


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 4096])
def test_nn_distances_matches_brute_force(chunk_size: int) -> None:
    g = torch.Generator().manual_seed(0)
    query = torch.randn(53, 24, 3, generator=g)
    reference = torch.randn(71, 24, 3, generator=g)
    dist, idx = nn_distances(query, reference, chunk_size=chunk_size, return_index=True)
    want, want_idx = _brute_force(query, reference)
    torch.testing.assert_close(dist, want, rtol=1e-5, atol=1e-6)
    assert torch.equal(idx, want_idx)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nn_distances_pruned_search_is_exact(dtype: torch.dtype) -> None:
    # Near copies of the queries early on make most later pairs prunable (the sparse path);
    # far sets first keep the first tiles dense.
    g = torch.Generator().manual_seed(7)
    query = torch.randn(40, 30, 3, generator=g, dtype=dtype)
    near = query + 0.01 * torch.randn(40, 30, 3, generator=g, dtype=dtype)
    reference = torch.cat(
        [
            3 * torch.randn(50, 30, 3, generator=g, dtype=dtype),
            near[:20],
            3 * torch.randn(400, 30, 3, generator=g, dtype=dtype),
            near[20:],
        ]
    )
    dist, idx = nn_distances(query, reference, chunk_size=16, return_index=True)
    want, want_idx = _brute_force(query, reference)
    torch.testing.assert_close(dist, want)
    assert torch.equal(idx, want_idx)


def test_nn_distances_bound_streams_exactly() -> None:
    g = torch.Generator().manual_seed(8)
    query = torch.randn(60, 24, 3, generator=g)
    reference = torch.randn(500, 24, 3, generator=g)
    running = torch.full((60,), float("inf"))
    for start in range(0, 500, 64):
        running = torch.minimum(
            running,
            nn_distances(query, reference[start : start + 64], bound=running, chunk_size=32),
        )
    torch.testing.assert_close(running, _brute_force(query, reference)[0])
    # Nothing is closer than a zero bound: every query reports inf and index -1.
    dist, idx = nn_distances(query, reference, bound=torch.zeros(60), return_index=True)
    assert torch.isinf(dist).all() and (idx == -1).all()
    with pytest.raises(ValueError, match="bound"):
        nn_distances(query, reference, bound=torch.zeros(3))


def test_nn_distances_identical_sets_are_zero() -> None:
    pts = torch.randn(40, 100, 3, generator=torch.Generator().manual_seed(1)) + 5.0
    assert torch.count_nonzero(nn_distances(pts, pts, chunk_size=16)) == 0


def test_nn_distances_shift_gives_shift() -> None:
    pts = torch.randn(30, 24, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    # Spread the sets far apart so each shifted set's nearest reference is its own original.
    pts = pts * 10.0
    shift = torch.tensor([0.003, -0.004, 0.0], dtype=torch.float64)  # norm 0.005
    dist, idx = nn_distances(pts + shift, pts, return_index=True)
    torch.testing.assert_close(dist, torch.full_like(dist, 0.005))
    assert torch.equal(idx, torch.arange(30))


def test_nn_distances_is_mean_of_norms_not_l2() -> None:
    # Two candidates with equal L2 but different mean-of-norms: the metric must pick by Eq. 4.
    query = torch.zeros(1, 2, 3)
    spread = torch.tensor([[[1.0, 0, 0], [1.0, 0, 0]]])  # mean norm 1, L2 sqrt(2)
    concentrated = torch.tensor([[[math.sqrt(2.0), 0, 0], [0, 0, 0]]])  # mean 0.707, L2 sqrt(2)
    dist, idx = nn_distances(query, torch.cat([spread, concentrated]), return_index=True)
    assert idx.item() == 1
    torch.testing.assert_close(dist, torch.tensor([math.sqrt(2.0) / 2]))


def test_nn_distances_bad_input() -> None:
    pts = torch.zeros(4, 24, 3)
    with pytest.raises(ValueError, match=r"\(N, K, 3\)"):
        nn_distances(torch.zeros(4, 24, 2), pts)
    with pytest.raises(ValueError, match="same number of points"):
        nn_distances(torch.zeros(4, 23, 3), pts)
    with pytest.raises(TypeError, match="floating-point"):
        nn_distances(torch.zeros(4, 24, 3, dtype=torch.int64), pts)
    with pytest.raises(ValueError, match="at least one"):
        nn_distances(pts, torch.zeros(0, 24, 3))
    with pytest.raises(ValueError, match="chunk_size"):
        nn_distances(pts, pts, chunk_size=0)
    assert nn_distances(torch.zeros(0, 24, 3), pts).shape == (0,)


def test_recall_precision_directions() -> None:
    real = torch.zeros(10, 24, 3)
    # One generated pose matches the real ones, one is 2 away: recall 0, precision mean 1.
    generated = torch.stack([torch.zeros(24, 3), torch.full((24, 3), 2.0 / math.sqrt(3.0))])
    out = recall_precision(real, generated)
    assert out["recall_mean"] == pytest.approx(0.0, abs=1e-6)
    assert out["precision_mean"] == pytest.approx(1.0, rel=1e-5)
    assert out["recall_dists"].shape == (10,)
    assert out["precision_dists"].shape == (2,)
    other = recall_precision(real, generated, precision_reference=generated)
    assert other["precision_mean"] == pytest.approx(0.0, abs=1e-6)


def test_smoothness_of_evenly_spaced_path_is_one() -> None:
    start = torch.randn(3, 1, 50, 3, generator=torch.Generator().manual_seed(3))
    direction = torch.randn(3, 1, 50, 3, generator=torch.Generator().manual_seed(4))
    steps = torch.linspace(0, 1, 12).view(1, 12, 1, 1)
    path = start + steps * direction  # (3, 12, 50, 3)
    torch.testing.assert_close(smoothness_ratio(path), torch.ones(3))
    torch.testing.assert_close(per_step_deformation(path, normalize=True), torch.ones(3, 11))


def test_smoothness_of_uneven_path() -> None:
    # Steps of 1, 1, 3 along x for every vertex: R = 3, mean delta 5/3.
    xs = torch.tensor([0.0, 1.0, 2.0, 5.0])
    path = torch.zeros(4, 10, 3)
    path[..., 0] = xs[:, None]
    assert smoothness_ratio(path).item() == pytest.approx(3.0)
    torch.testing.assert_close(per_step_deformation(path), torch.tensor([1.0, 1.0, 3.0]))
    torch.testing.assert_close(
        per_step_deformation(path, normalize=True), torch.tensor([0.6, 0.6, 1.8])
    )
    with pytest.raises(ValueError, match="T >= 2"):
        smoothness_ratio(path[:1])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.floats(0.1, 10.0),
    shift=st.lists(st.floats(-5, 5), min_size=3, max_size=3),
)
def test_procrustes_recovers_similarity(seed: int, scale: float, shift: list[float]) -> None:
    target = torch.randn(24, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    pred = scale * target @ _rotation(seed + 1).T + torch.tensor(shift, dtype=torch.float64)
    torch.testing.assert_close(procrustes_align(pred, target), target)
    assert p_mpjpe(pred, target).item() == pytest.approx(0.0, abs=1e-9)


def test_procrustes_never_reflects() -> None:
    target = torch.randn(2, 24, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    mirrored = target * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    aligned = procrustes_align(mirrored, target)
    # A proper rotation cannot undo a mirror of an asymmetric set.
    assert (p_mpjpe(mirrored, target) > 1e-3).all()
    pa = aligned - aligned.mean(-2, keepdim=True)
    ma = mirrored - mirrored.mean(-2, keepdim=True)
    rot = torch.linalg.lstsq(ma, pa).solution
    assert (torch.linalg.det(rot) > 0).all()


def test_mpjpe_known_value_and_shapes() -> None:
    target = torch.zeros(5, 7, 24, 3)
    pred = target.clone()
    pred[..., 1] = 0.02
    torch.testing.assert_close(mpjpe(pred, target), torch.full((5, 7), 0.02))
    # A pure translation is removed by Procrustes.
    joints = torch.randn(5, 24, 3, generator=torch.Generator().manual_seed(6))
    assert p_mpjpe(joints + 0.3, joints).abs().max().item() < 1e-5
    assert mpjpe(joints + 0.3, joints).min().item() == pytest.approx(0.3 * math.sqrt(3.0))
    with pytest.raises(ValueError, match="same shape"):
        mpjpe(pred, target[..., :23, :])


def test_paired_ratio_interval() -> None:
    from advprior.eval.metrics import paired_ratio_interval

    gen = torch.Generator().manual_seed(0)
    b = torch.rand(96, generator=gen, dtype=torch.float64) * 100 + 20
    # A constant relative difference survives every resample exactly.
    low, high = paired_ratio_interval(1.1 * b, b)
    assert low == pytest.approx(0.1, abs=1e-12) and high == pytest.approx(0.1, abs=1e-12)
    # Independent noise: the interval holds the point estimate, and pairing narrows it (a shared
    # per-frame difficulty cancels) compared with resampling the two methods separately.
    a = b + torch.randn(96, generator=gen, dtype=torch.float64) * 10
    low, high = paired_ratio_interval(a, b)
    point = float(a.mean() / b.mean() - 1)
    assert low < point < high
    idx = torch.randint(96, (10_000, 2, 96), generator=gen)
    unpaired = a[idx[:, 0]].mean(-1) / b[idx[:, 1]].mean(-1) - 1
    wide = torch.quantile(unpaired, torch.tensor([0.025, 0.975], dtype=torch.float64))
    assert high - low < 0.5 * float(wide[1] - wide[0])
    assert paired_ratio_interval(a, b) == (low, high)  # seeded
    with pytest.raises(ValueError, match="paired"):
        paired_ratio_interval(a, b[:10])
    with pytest.raises(ValueError, match="level"):
        paired_ratio_interval(a, b, level=1.0)
    for resamples in (0, -5, 2.5):
        with pytest.raises(ValueError, match="resamples must be a positive int"):
            paired_ratio_interval(a, b, resamples=resamples)


def test_paired_intervals_resample_in_blocks_with_the_same_bits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """All 10,000 resamples at once held ~24 bytes per resample and item (15 GB for the errors
    of 10^5 frames). Blocks of ``_BOOTSTRAP_BLOCK`` entries, drawn one after the other from the
    one generator, give the same draws and means: the interval is bitwise the one-draw one."""
    import advprior.eval.metrics as metrics

    gen = torch.Generator().manual_seed(2)
    a, b = torch.rand(2, 97, generator=gen, dtype=torch.float64) + 0.5
    draws = torch.randint(97, (1000, 97), generator=torch.Generator().manual_seed(3))
    values = a[draws].mean(-1) / b[draws].mean(-1) - 1
    tail = (1.0 - 0.9) / 2.0  # as the function computes it (not 0.05 in floats)
    q = torch.tensor([tail, 1.0 - tail], dtype=torch.float64)
    expected = tuple(float(v) for v in torch.quantile(values, q))
    shapes: list[tuple[int, ...]] = []
    randint = torch.randint

    def counted(*args, **kwargs):
        shapes.append(tuple(args[1]))
        return randint(*args, **kwargs)

    monkeypatch.setattr(metrics, "_BOOTSTRAP_BLOCK", 97 * 300)
    monkeypatch.setattr(torch, "randint", counted)
    got = metrics.paired_ratio_interval(a, b, level=0.9, resamples=1000, seed=3)
    assert shapes == [(300, 97)] * 3 + [(100, 97)]
    assert got == expected


def test_paired_difference_interval() -> None:
    from advprior.eval.metrics import paired_difference_interval

    gen = torch.Generator().manual_seed(1)
    b = torch.rand(96, generator=gen, dtype=torch.float64) * 100 + 20
    # A constant shift survives every resample; float64 sums of ~1e2 keep it to ~1e-12.
    low, high = paired_difference_interval(b - 2.5, b)
    assert low == pytest.approx(-2.5, abs=1e-9) and high == pytest.approx(-2.5, abs=1e-9)
    a = b + torch.randn(96, generator=gen, dtype=torch.float64) * 5 + 1.0
    low, high = paired_difference_interval(a, b)
    assert low < float((a - b).mean()) < high
    # the normal approximation of the mean difference's spread: the percentile interval is
    # close to +-1.96 standard errors (within a quarter, for 10,000 resamples of 96 pairs)
    se = float((a - b).std() / 96**0.5)
    assert abs((high - low) / (2 * 1.96 * se) - 1) < 0.25
    with pytest.raises(ValueError, match="paired"):
        paired_difference_interval(a, b[:10])


def _umeyama(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Independent float64 similarity alignment of ``x (J, 3)`` to ``y`` (det R = +1)."""
    mx, my = x.mean(0), y.mean(0)
    u, s, vt = np.linalg.svd((y - my).T @ (x - mx) / len(x))
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    var = ((x - mx) ** 2).sum() / len(x)
    scale = (s * d).sum() / var if var > 0 else 0.0
    rot = u @ np.diag(d) @ vt
    return scale * (x - mx) @ rot.T + my


def test_procrustes_matches_an_independent_umeyama() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6, 24, 3))
    y = rng.normal(size=(6, 24, 3))
    y[0] = x[0] * [1, 1, -1] + 0.05 * rng.normal(size=(24, 3))  # a mirror: no reflection allowed
    x[1] = np.outer(rng.normal(size=24), [1.0, 2.0, 3.0])  # collinear
    x[2, :, 2] = 0.0  # planar
    want = np.stack([_umeyama(a, b) for a, b in zip(x, y, strict=True)])
    got = procrustes_align(torch.tensor(x), torch.tensor(y)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-12)
    # float32 inputs: the same up to float32 rounding of O(1) coordinates
    got32 = procrustes_align(torch.tensor(x).float(), torch.tensor(y).float()).double().numpy()
    np.testing.assert_allclose(got32, want, atol=1e-5)


def test_procrustes_of_coinciding_float32_points_is_the_centroid() -> None:
    # One point repeated: its float32 mean is off by an ulp, so the set looked spread (no
    # s = 0 fallback) while roma's centring gave exact zeros and a 0/0 scale: NaN P-MPJPE for a
    # collapsed prediction, which made a batch mean NaN.
    point = torch.tensor([1.24344242, -0.59403995, -0.57859124], dtype=torch.float32)
    target = torch.randn(24, 3, generator=torch.Generator().manual_seed(21))
    aligned = procrustes_align(point.expand(24, 3).clone(), target)
    torch.testing.assert_close(aligned, target.mean(0, keepdim=True).expand(24, 3))
    # any coinciding set, any size: exactly the centroid (before: 105 and 145 of 300 were not)
    g = torch.Generator().manual_seed(22)
    for j in (24, 6890):
        for _ in range(100):
            c = torch.randn(1, 3, generator=g) * 10.0 ** torch.randint(-3, 3, (1,), generator=g)
            t = torch.randn(j, 3, generator=g)
            got = procrustes_align(c.expand(j, 3).clone(), t)
            assert torch.equal(got, t.mean(0, keepdim=True).expand(j, 3))
    # a NaN point still makes its own set NaN and no other
    batch = torch.stack([point.expand(24, 3), point.expand(24, 3)]).clone()
    batch[1, 5, 0] = float("nan")
    err = p_mpjpe(batch, torch.stack([target, target]))
    assert torch.isfinite(err[0]) and torch.isnan(err[1])


def test_metrics_reject_what_they_cannot_measure() -> None:
    pts = torch.randn(5, 24, 3, generator=torch.Generator().manual_seed(12))
    # NaN used to read as "no neighbour" (inf); one NaN reference made every query inf
    bad = pts.clone()
    bad[2, 3, 1] = float("nan")
    with pytest.raises(ValueError, match="query contains NaN"):
        nn_distances(bad, pts)
    with pytest.raises(ValueError, match="reference contains NaN"):
        nn_distances(pts, bad)
    with pytest.raises(ValueError, match="bound contains NaN"):
        nn_distances(pts, pts, bound=torch.full((5,), float("nan")))
    with pytest.raises(ValueError, match="bound must be a torch.Tensor of shape"):
        nn_distances(pts, pts, bound=np.zeros(5))
    with pytest.raises(ValueError, match="chunk_size"):
        nn_distances(pts, pts, chunk_size=True)
    # recall_precision names its own arguments
    with pytest.raises(ValueError, match="generated contains NaN"):
        recall_precision(pts, bad)
    with pytest.raises(ValueError, match="real must hold at least one"):
        recall_precision(pts[:0], pts)
    with pytest.raises(ValueError, match="generated must hold at least one"):
        recall_precision(pts, pts[:0])
    with pytest.raises(ValueError, match="generated and precision_reference"):
        recall_precision(pts, pts, precision_reference=pts[:, :23])
    with pytest.raises(TypeError, match="generated must be a torch.Tensor"):
        recall_precision(pts, pts.numpy())
    # no points at all: a ValueError, not ZeroDivisionError / NaN / a torch reduction error
    empty = torch.zeros(5, 0, 3)
    for fn in (mpjpe, p_mpjpe, procrustes_align):
        with pytest.raises(ValueError, match="at least one point"):
            fn(empty, empty)
    with pytest.raises(ValueError, match="at least one point"):
        nn_distances(empty, empty)
    with pytest.raises(ValueError, match="at least one point"):
        smoothness_ratio(torch.zeros(2, 4, 0, 3))


def test_pair_metrics_take_mixed_dtypes() -> None:
    g = torch.Generator().manual_seed(13)
    pred, target = torch.randn(4, 24, 3, generator=g), torch.randn(4, 24, 3, generator=g)
    want = p_mpjpe(pred.double(), target.double())
    got = p_mpjpe(pred, target.double())
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert procrustes_align(pred.double(), target).dtype == torch.float64


def test_nn_distances_on_real_poses_with_duplicates(body, fixture_mocap) -> None:  # noqa: ANN001
    from advprior.data import load_motion
    from advprior.eval.metrics import pose_joints

    # A real clip at 120 fps: consecutive frames are near duplicates (ties within rounding),
    # and exact copies are placed across a chunk border.
    clip = load_motion(fixture_mocap / "cmu_asfamc/02/02_03.amc").to_smpl(120)
    joints = pose_joints(torch.as_tensor(clip.body_pose, dtype=torch.float32), body)
    reference = torch.cat([joints[:90], joints[60:100], joints[90:]])
    g = torch.Generator().manual_seed(14)
    query = joints[::5] + 1e-4 * torch.randn(joints[::5].shape, generator=g)
    for chunk in (13, 64, 512):
        for dtype in (torch.float32, torch.float64):
            q, r = query.to(dtype), reference.to(dtype)
            dist, idx = nn_distances(q, r, chunk_size=chunk, return_index=True)
            want, _ = _brute_force(q, r)
            # float32: the direct recomputation rounds at ~eps * |x| ~ 1e-7 m per point
            tol = 1e-6 if dtype == torch.float32 else 1e-12
            torch.testing.assert_close(dist, want, atol=tol, rtol=0)
            # among ties (the duplicated frames) any of the equal references is the answer
            chosen = (q - r[idx]).norm(dim=-1).mean(-1)
            torch.testing.assert_close(chosen, want, atol=tol, rtol=0)


def test_nn_distances_settles_near_ties_below_the_expanded_form_rounding() -> None:
    # float32 sets at metre scale whose candidates differ by ~10 micrometres: the expanded form
    # |q|^2 + |r|^2 - 2 q.r rounds at ~sqrt(eps) * 1 m ~ 0.3 mm per point and used to pick the
    # wrong one of them (returned distances up to 80% too large at this scale).
    g = torch.Generator().manual_seed(15)
    query = torch.randn(100, 256, 3, generator=g)
    near = [query + 1e-5 * f * torch.randn(100, 256, 3, generator=g) for f in (1.0, 1.3, 1.6)]
    reference = torch.cat([*near, torch.randn(100, 256, 3, generator=g)])
    dist, idx = nn_distances(query, reference, return_index=True)
    want, want_idx = _brute_force(query.double(), reference.double())
    # the direct mean of 256 norms in float32: a few eps relative
    torch.testing.assert_close(dist.double(), want, rtol=1e-6, atol=0)
    assert torch.equal(idx, want_idx)
    # a bound just above the true distance still finds the reference (it used to give inf)
    again = nn_distances(query, reference, bound=dist * (1 + 1e-6))
    torch.testing.assert_close(again, dist)
    # exact duplicates across a chunk border: the first copy, as a brute-force argmin picks
    dup = torch.cat([reference[:150], query[:40], reference[150:], query[:40]])
    _, idx = nn_distances(query[:40], dup, return_index=True, chunk_size=64)
    assert torch.equal(idx, torch.arange(150, 190))
