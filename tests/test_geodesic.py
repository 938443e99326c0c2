"""Geodesic interpolation (advprior.geodesic): the path energy, and paths that keep their ends,
stay on the manifold, lower the energy and shorten detours, one pair independent of another."""

from __future__ import annotations

import pytest
import torch

from advprior import load_pretrained
from advprior.body import forward_kinematics
from advprior.eval.protocol import path_ratio
from advprior.geodesic import geodesic_path, path_energy
from advprior.rotations import axis_angle_to_rotmat


@pytest.fixture(scope="module")
def gan_s():
    return load_pretrained("gan-s")


def _pairs(prior, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    z = prior.sample_latent(2 * n, generator=torch.Generator().manual_seed(seed))
    return z[:n], z[n:]


def test_path_energy_is_the_sum_of_squared_pose_distances(gan_s) -> None:
    # Recomputed another way: axis-angle decode, forward_kinematics from axis-angle, rotation
    # matrices from axis-angle. In float64 both agree to rounding (~1e-12 relative; the
    # axis-angle round trip loses ~sqrt(eps) only at angles near pi, which decoded poses avoid).
    prior = load_pretrained("gan-s").double()
    path = torch.randn(2, 4, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = path_energy(prior, path, joint_weight=7.0)
    aa = prior.decode(path.reshape(8, 32))
    rot = axis_angle_to_rotmat(aa.reshape(8, 21, 3)).reshape(2, 4, 21, 3, 3)
    pos = forward_kinematics(aa.new_zeros(8, 3), aa).reshape(2, 4, 24, 3)
    d_rot = (rot.diff(dim=1) ** 2).sum((-1, -2)).mean(-1)
    d_pos = (pos.diff(dim=1) ** 2).sum(-1).mean(-1)
    want = 3 * (d_rot + 7.0 * d_pos).sum(-1)
    assert torch.allclose(got, want, rtol=1e-9, atol=0)
    # A constant path has zero energy.
    still = path[:, :1].expand(2, 4, 32)
    assert torch.equal(path_energy(prior, still), torch.zeros(2, dtype=torch.float64))


def test_path_energy_takes_the_paths_that_interpolation_returns(gan_s) -> None:
    # one (T, D) path, as interpolate / geodesic_path give for (D,) ends, and (..., T, D)
    # batches: each entry's energy, the same numbers as the (B, T, D) call (was "not enough
    # values to unpack")
    z0, z1 = _pairs(gan_s, 6)
    paths = gan_s.interpolate(z0, z1, 5)  # (6, 5, D)
    flat = path_energy(gan_s, paths)
    one = path_energy(gan_s, gan_s.interpolate(z0[0], z1[0], 5))
    assert one.shape == () and torch.allclose(one, flat[0], rtol=1e-6, atol=0)
    grid = path_energy(gan_s, paths.reshape(2, 3, 5, -1))
    assert grid.shape == (2, 3) and torch.allclose(grid.flatten(), flat, rtol=1e-6, atol=0)
    assert path_energy(gan_s, paths[:0]).shape == (0,)
    with pytest.raises(ValueError, match=r"\(\.\.\., T, 32\)"):
        path_energy(gan_s, z0[0])
    with pytest.raises(ValueError, match=r"\(\.\.\., 32\)"):
        path_energy(gan_s, paths[..., :5])


def test_geodesic_keeps_the_ends_stays_on_the_sphere_and_lowers_the_energy(gan_s) -> None:
    z0, z1 = _pairs(gan_s, 4)
    start = gan_s.interpolate(z0, z1, 8)
    path = gan_s.interpolate(z0, z1, 8, geodesic=True, iterations=30)
    assert path.shape == (4, 8, 32) and not path.requires_grad
    assert torch.equal(path[:, 0], start[:, 0]) and torch.equal(path[:, -1], start[:, -1])
    assert torch.allclose(path.norm(dim=-1), torch.ones(4, 8), atol=1e-6)
    with torch.no_grad():
        before, after = path_energy(gan_s, start), path_energy(gan_s, path)
    # L-BFGS accepts only steps that lower the objective (energy + a gauge that is zero on the
    # sphere where it starts), so the energy cannot rise; on a folded GAN path it falls a lot.
    assert (after < 0.9 * before).all(), (before, after)


def test_geodesic_shortens_detours(gan_s) -> None:
    z0, z1 = _pairs(gan_s, 8, seed=3)
    with torch.no_grad():
        slerp = gan_s.decode(gan_s.interpolate(z0, z1, 16).reshape(-1, 32)).reshape(8, 16, 63)
    geo = gan_s.interpolate(z0, z1, 16, geodesic=True, iterations=100)
    with torch.no_grad():
        geo = gan_s.decode(geo.reshape(-1, 32)).reshape(8, 16, 63)
    # Endpoints are identical, so the direct distance is shared and only the length differs.
    assert path_ratio(geo).mean() < path_ratio(slerp).mean() - 0.1


def test_pairs_are_independent(gan_s) -> None:
    z0, z1 = _pairs(gan_s, 3)
    full = gan_s.interpolate(z0, z1, 6, geodesic=True, iterations=15)
    other0, other1 = _pairs(gan_s, 3, seed=9)
    z0[1:], z1[1:] = other0[1:], other1[1:]
    changed = gan_s.interpolate(z0, z1, 6, geodesic=True, iterations=15)
    assert torch.equal(full[0], changed[0])  # same shapes, same kernels: bitwise (lbfgs.py)


def test_many_paths_are_optimised_in_chunks_with_the_same_bits(
    gan_s, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The objective's graph holds ~20-35 KB per latent: 1,000 paths of 1,000 steps took ~20 GB
    in one optimisation. Paths go ``CHUNK_LATENTS // steps`` at a time (rounded so that every
    chunk but the last has a multiple of 64 latents): each path is its own problem and runs
    the same kernels, so the paths are bitwise those of one batch."""
    import advprior.geodesic as geodesic

    z0, z1 = _pairs(gan_s, 70, seed=5)
    whole = geodesic_path(gan_s, z0, z1, 12, iterations=3)
    rows: list[int] = []
    run = geodesic.minimize_lbfgs

    def counted(fn, x0, **kwargs):
        rows.append(x0.shape[0])
        return run(fn, x0, **kwargs)

    monkeypatch.setattr(geodesic, "minimize_lbfgs", counted)
    monkeypatch.setattr(geodesic, "CHUNK_LATENTS", 12 * 40)  # 40 paths -> 32 (32 x 12 = 6 x 64)
    chunked = geodesic_path(gan_s, z0, z1, 12, iterations=3)
    # 70 = 32 + 32 + 6: the last 6 paths (72 latents) are a chunk of their own; 5 would
    # join the one before (under 64 latents, their rotations would take other kernels)
    assert rows == [32, 32, 6]
    assert torch.equal(chunked, whole)
    rows.clear()
    geodesic_path(gan_s, z0[:69], z1[:69], 12, iterations=1)
    assert rows == [32, 37]


def test_single_pair_zero_iterations_and_two_steps(gan_s) -> None:
    z0, z1 = _pairs(gan_s, 1)
    one = gan_s.interpolate(z0[0], z1[0], 5, geodesic=True, iterations=10)
    assert one.shape == (5, 32)
    assert torch.equal(one, gan_s.interpolate(z0, z1, 5, geodesic=True, iterations=10)[0])
    assert torch.equal(geodesic_path(gan_s, z0, z1, 5, iterations=0), gan_s.interpolate(z0, z1, 5))
    assert torch.equal(geodesic_path(gan_s, z0, z1, 2), gan_s.interpolate(z0, z1, 2))


def test_ends_of_another_dtype_as_without_geodesic(gan_s) -> None:
    z0, z1 = _pairs(gan_s, 2)
    plain = gan_s.interpolate(z0.double(), z1.double(), 5)
    path = gan_s.interpolate(z0.double(), z1.double(), 5, geodesic=True, iterations=10)
    assert plain.dtype == path.dtype == torch.float64
    # optimised in the prior's float32 from a start that differs from the float32 ends' by
    # rounding (~1e-7): 10 L-BFGS iterations keep it within 1e-4 of that path
    same = gan_s.interpolate(z0, z1, 5, geodesic=True, iterations=10)
    assert torch.equal(path[:, [0, -1]], plain[:, [0, -1]])
    assert torch.allclose(path.float(), same, atol=1e-4)


@pytest.mark.parametrize("alias", ["gan-u", "vae"])
def test_cube_and_gaussian_latents(alias: str) -> None:
    prior = load_pretrained(alias)
    z0, z1 = _pairs(prior, 3)
    start = prior.interpolate(z0, z1, 6)
    path = prior.interpolate(z0, z1, 6, geodesic=True, iterations=20)
    assert torch.equal(path[:, [0, -1]], start[:, [0, -1]])
    assert torch.equal(prior.project(path), path)  # inside the cube / anywhere for the VAE
    with torch.no_grad():
        assert (path_energy(prior, path) < path_energy(prior, start)).all()


def test_bad_arguments(gan_s) -> None:
    z0, z1 = _pairs(gan_s, 2)
    with pytest.raises(TypeError, match="no latent space"):
        geodesic_path(load_pretrained("gmm"), z0, z1, 4)
    for bad in (-1, True, 2.5):
        with pytest.raises(ValueError, match="iterations"):
            geodesic_path(gan_s, z0, z1, 4, iterations=bad)
    with pytest.raises(ValueError, match="steps"):
        gan_s.interpolate(z0, z1, 1, geodesic=True)
    with pytest.raises(TypeError, match="geodesic=True"):
        gan_s.interpolate(z0, z1, 4, iterations=3)
    with pytest.raises(ValueError, match="broadcast"):
        geodesic_path(gan_s, z0, torch.cat([z1, z1[:1]]), 4)  # (2, D) and (3, D)
    # leading shapes that broadcast give one path per entry, each its own problem
    fan = geodesic_path(gan_s, z0[0], z1, 4, iterations=5)
    assert fan.shape == (2, 4, z0.shape[-1])
    torch.testing.assert_close(fan[1], geodesic_path(gan_s, z0[0], z1[1], 4, iterations=5))
