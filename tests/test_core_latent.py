"""LatentSpace: sampling, projection and interpolation (sphere slerp, cube and Gaussian lines)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advprior import LatentSpace
from advprior.latent import check_latent

KINDS = ("sphere", "uniform", "normal")
DIM = 8


def _vectors(draw_seed: int, n: int, dim: int = DIM, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(draw_seed), dtype=dtype)


# --- sampling -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_sample_shape_dtype_and_reproducible(kind: str) -> None:
    space = LatentSpace(kind, DIM)
    state = torch.random.get_rng_state()
    a = space.sample(64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    b = space.sample(64, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    assert a.shape == (64, DIM) and a.dtype == torch.float64
    assert torch.equal(a, b)
    assert bool(space.contains(a).all())
    assert space.sample(0).shape == (0, DIM)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", ["sphere", "uniform", "normal"])
def test_low_precision_samples_and_projections_are_contained(kind: str, dtype) -> None:
    # rounding a unit vector to float16 / bfloat16 moves its norm by up to ~0.7 eps (1e-3 /
    # 8e-3), far beyond the fixed 1e-5 that rejected a fifth of them
    space = LatentSpace(kind, 32)
    z = space.sample(2000, generator=torch.Generator().manual_seed(0), dtype=dtype)
    assert bool(space.contains(z).all()) and bool(space.contains(space.project(z)).all())
    if kind == "sphere":  # and still tells points off the sphere by a few eps
        assert not bool(space.contains(z * 1.03).any())
        wide = space.project(z.float())  # float32 keeps its tolerance, 1e-5
        assert bool(space.contains(wide).all())
        assert not bool(space.contains(wide * (1 + 2e-5)).any())


def test_sample_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    sphere = LatentSpace("sphere", 32).sample(20000, generator=g)
    assert torch.allclose(sphere.norm(dim=-1), torch.ones(20000), atol=1e-5)
    # normalised Gaussians are uniform on the sphere: zero mean, covariance I/D
    assert sphere.mean(0).abs().max() < 0.02
    assert (sphere.var(0) * 32 - 1).abs().max() < 0.1
    cube = LatentSpace("uniform", 32).sample(20000, generator=g)
    assert cube.min() >= -1 and cube.max() <= 1
    assert (cube.var(0) - 1 / 3).abs().max() < 0.03  # variance of U[-1, 1]
    normal = LatentSpace("normal", 32).sample(20000, generator=g)
    assert normal.mean(0).abs().max() < 0.05 and (normal.std(0) - 1).abs().max() < 0.05


def test_sample_bad_arguments() -> None:
    space = LatentSpace("sphere", DIM)
    with pytest.raises(ValueError, match="non-negative"):
        space.sample(-1)
    with pytest.raises(TypeError, match="floating-point"):
        space.sample(2, dtype=torch.int64)
    with pytest.raises(ValueError, match="kind"):
        LatentSpace("cube", DIM)
    with pytest.raises(ValueError, match="dim"):
        LatentSpace("sphere", 1)


# --- projection -----------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-6, 1e6))
def test_projection_onto_manifold_is_idempotent(seed: int, scale: float) -> None:
    z = _vectors(seed, 4) * scale
    for kind in KINDS:
        space = LatentSpace(kind, DIM)
        p = space.project(z)
        assert bool(space.contains(p, atol=1e-9).all())
        assert torch.allclose(space.project(p), p, atol=1e-12)
    sphere = LatentSpace("sphere", DIM).project(z)
    assert torch.allclose(sphere, z / z.norm(dim=-1, keepdim=True))


def test_projection_specifics() -> None:
    z = torch.tensor([[2.0, -3.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]])
    assert torch.equal(
        LatentSpace("uniform", DIM).project(z)[0, :3], torch.tensor([1.0, -1.0, 0.5])
    )
    assert LatentSpace("normal", DIM).project(z) is z


def test_sphere_projection_defined_at_and_near_zero() -> None:
    space = LatentSpace("sphere", DIM)
    z = torch.zeros(3, DIM, requires_grad=True)
    p = space.project(z)
    assert torch.isfinite(p).all() and torch.allclose(p.norm(dim=-1), torch.ones(3))
    p.sum().backward()
    assert torch.isfinite(z.grad).all()
    tiny = torch.full((1, DIM), 1e-30)
    assert torch.allclose(space.project(tiny).norm(dim=-1), torch.ones(1))
    small = torch.full((1, DIM), 1e-8, dtype=torch.float64)
    assert torch.allclose(
        space.project(small), torch.full((1, DIM), DIM**-0.5, dtype=torch.float64)
    )


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (torch.zeros(2, DIM, dtype=torch.int64), TypeError, "floating-point"),
        (torch.zeros(2, DIM + 1), ValueError, rf"\(\.\.\., {DIM}\)"),
        (torch.tensor(1.0), ValueError, "shape"),
        (torch.full((2, DIM), float("nan")), ValueError, "NaN"),
        (torch.full((2, DIM), float("inf")), ValueError, "Inf"),
        ([0.0] * DIM, TypeError, "torch.Tensor"),
    ],
)
def test_bad_latents(bad: object, error: type, match: str) -> None:
    if match not in ("NaN", "Inf"):
        with pytest.raises(error, match=match):
            LatentSpace("sphere", DIM).project(bad)
    with pytest.raises(error, match=match):
        check_latent(bad, DIM)


@pytest.mark.parametrize("kind", KINDS)
def test_project_propagates_non_finite(kind: str) -> None:
    # project runs inside optimisers' forward passes: NaN/Inf come back, no exception
    z = _vectors(0, 3)
    z[1, 2] = float("nan")
    p = LatentSpace(kind, DIM).project(z)
    assert bool(torch.isnan(p[1]).any())
    assert bool(torch.isfinite(p[[0, 2]]).all())
    assert check_latent(z, DIM, finite=False) is z


# --- interpolation --------------------------------------------------------------------------


def _angles(path: torch.Tensor) -> torch.Tensor:
    """Angles between consecutive points of ``(..., steps, D)`` unit vectors."""
    a, b = path[..., :-1, :], path[..., 1:, :]
    # 2 atan2(|a - b|, |a + b|) is accurate over the whole range [0, pi].
    return 2 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(2, 40), mix=st.floats(0.0, 1.0))
def test_slerp_endpoints_unit_norm_and_constant_angular_step(
    seed: int, steps: int, mix: float
) -> None:
    space = LatentSpace("sphere", DIM)
    u, w = space.project(_vectors(seed, 2))
    # sweep the second endpoint from u itself (mix=0) to exactly antipodal (mix=1)
    v = space.project(
        torch.cos(torch.tensor(mix * math.pi, dtype=u.dtype)) * u
        + torch.sin(torch.tensor(mix * math.pi, dtype=u.dtype)) * space.project(w - (w @ u) * u)
    )
    path = space.interpolate(u, v, steps)
    assert path.shape == (steps, DIM)
    # the endpoints are exactly the projected inputs
    assert torch.equal(path[0], space.project(u)) and torch.equal(path[-1], space.project(v))
    assert torch.allclose(path.norm(dim=-1), torch.ones(steps, dtype=u.dtype), atol=1e-12)
    step = _angles(path)
    total = _angles(torch.stack([u, v]))[0]
    assert torch.allclose(step, total / (steps - 1), atol=1e-9)


def test_slerp_identical_endpoints_returns_the_point() -> None:
    space = LatentSpace("sphere", DIM)
    u = space.project(_vectors(0, 1)[0])
    path = space.interpolate(u, u.clone(), 7)
    assert torch.allclose(path, u.expand(7, DIM), atol=1e-15)


def test_slerp_antipodal_is_a_deterministic_great_half_circle() -> None:
    space = LatentSpace("sphere", DIM)
    u = space.project(_vectors(1, 1)[0])
    p1, p2 = space.interpolate(u, -u, 9), space.interpolate(u, -u, 9)
    assert torch.equal(p1, p2) and torch.isfinite(p1).all()
    assert torch.allclose(_angles(p1), torch.full((8,), math.pi / 8, dtype=u.dtype), atol=1e-12)
    assert torch.allclose(
        p1[4] @ u, torch.zeros((), dtype=u.dtype), atol=1e-12
    )  # midpoint at 90 deg
    # all points lie in one plane through the origin: rank 2
    assert torch.linalg.matrix_rank(p1).item() == 2
    # float32, nearly antipodal (the cancellation-prone case): still finite, unit norm, even steps
    u32 = u.float()
    v32 = space.project(-u32 + 1e-7 * space.project(_vectors(2, 1)[0].float()))
    p32 = space.interpolate(u32, v32, 9)
    assert torch.isfinite(p32).all()
    assert torch.allclose(p32.norm(dim=-1), torch.ones(9), atol=1e-6)
    assert torch.allclose(_angles(p32), torch.full((8,), math.pi / 8), atol=1e-5)


def test_batched_interpolation_matches_single() -> None:
    space = LatentSpace("sphere", DIM)
    z0, z1 = _vectors(2, 3), _vectors(3, 3)
    batch = space.interpolate(z0, z1, 5)
    assert batch.shape == (3, 5, DIM)
    for i in range(3):
        assert torch.allclose(batch[i], space.interpolate(z0[i], z1[i], 5))


@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_linear_interpolation(kind: str) -> None:
    space = LatentSpace(kind, DIM)
    z0, z1 = space.project(_vectors(4, 2) * 0.5), space.project(_vectors(5, 2) * 0.5)
    path = space.interpolate(z0, z1, 6)
    assert path.shape == (2, 6, DIM)
    assert torch.allclose(path[:, 0], z0) and torch.allclose(path[:, -1], z1)
    steps = (path[:, 1:] - path[:, :-1]).norm(dim=-1)
    assert torch.allclose(steps, steps[:, :1].expand_as(steps))
    assert bool(space.contains(path).all())


def test_interpolation_bad_arguments() -> None:
    space = LatentSpace("sphere", DIM)
    z = _vectors(0, 2)
    with pytest.raises(ValueError, match="steps"):
        space.interpolate(z, z, 1)
    with pytest.raises(ValueError, match="broadcast"):
        space.interpolate(z, _vectors(1, 3), 3)  # (2, D) and (3, D)


def test_interpolation_broadcasts_leading_shapes() -> None:
    """Ends of any broadcastable leading shapes, ``(..., D)``: one path per entry, as
    ``decode`` and ``invert`` take any leading shape."""
    space = LatentSpace("sphere", DIM)
    z0, z1 = _vectors(2, 6).view(2, 3, DIM), _vectors(3, 6).view(2, 3, DIM)
    paths = space.interpolate(z0, z1, 5)
    assert paths.shape == (2, 3, 5, DIM)
    assert torch.equal(
        paths.view(6, 5, DIM), space.interpolate(z0.view(6, DIM), z1.view(6, DIM), 5)
    )
    fan = space.interpolate(z0[0, 0], z1[0], 5)  # one start, three ends
    assert fan.shape == (3, 5, DIM)
    assert torch.allclose(fan[1], space.interpolate(z0[0, 0], z1[0, 1], 5))


@pytest.mark.parametrize("kind", ["sphere", "uniform", "normal"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_path_ends_exactly_at_its_projected_inputs(kind: str, dtype: torch.dtype) -> None:
    """``a + 1 * (b - a)`` is not ``b`` in floating point: a linear path's last latent was one
    rounding away from ``project(z1)``, so its last pose was not the decoded ``z1``."""
    space = LatentSpace(kind, 32)
    gen = torch.Generator().manual_seed(0)
    z0, z1 = (space.project(torch.randn(5, 32, generator=gen, dtype=dtype)) for _ in range(2))
    for steps in (2, 3, 16):
        path = space.interpolate(z0, z1, steps)
        assert path.shape == (5, steps, 32)
        assert torch.equal(path[:, 0], space.project(z0))
        assert torch.equal(path[:, -1], space.project(z1))
    # broadcasting still works: one start, several ends
    assert space.interpolate(z0[0], z1, 4).shape == (5, 4, 32)
