"""``GMMPrior.export_smplify``'s ``gmm_08.pkl`` read the ways public SMPLify-family code reads
SMPLify's file, each pattern written here from its description (no code of theirs):

- merged max-mixture (SMPLify-X ``smplifyx/prior.py``, SPIN / EFT / mmhuman3d
  ``MaxMixturePrior``): latin-1 pickle, ``means`` / ``covars`` / ``weights`` cast with
  ``astype`` to the run's dtype, precisions inverted from the *cast* covariances, the
  normalised weights ``w_k / ((2 pi)^(69/2) sqrt|S_k| / min_j sqrt|S_j|)`` built in float64 from
  the file's arrays and then cast; energy ``min_k 0.5 d^T P_k d - log nll_w_k``;
- its per-component path (``use_merged=False``): ``d^T P d`` unhalved plus
  ``0.5 (log(det S_k + 1e-16) + 69 log 2 pi)``, the component picked by that, then
  ``-log nll_w`` of the picked component, indexed as written for a batch of one;
- EasyMocap (``easymocap/multistage/gmm.py``): ``-log nll_w`` taken in float64, float32 buffers,
  the 69 numbers after the global orientation of a 72-d pose, a batch mean;
- SMPLify's chumpy residual and MoSh++ (``MaxMixtureComplete``): Cholesky factors of the
  precisions, residual ``sqrt(1/2) d^T L`` and ``sqrt(-log w)``, 72-d pose with ``prefix=3``;
  MoSh++ slices the first 63 numbers for SMPL-H / SMPL-X bodies and normalises with
  ``(2 pi)^(63/2)``;
- a SMPL-X fitter's loader (sign-language capture code): float64 load, first 63 numbers,
  ``1e-12`` added to the diagonal, ``slogdet``, normalisers shifted by their minimum,
  ``log(w + 1e-16)``, float32 evaluation, a batch mean.

Each is ``GMMPrior``'s own max-mixture nll plus a constant that the pattern fixes (its
normalisation); the tolerances are rounding-error bounds (``_rounding_bound``). Also here:
every reader finite with finite gradients for typical and extreme poses, in batches of one and
many; SMPL-X's 63-d ``body_pose`` padded or the file sliced; the export refusing a mixture whose
determinants the readers' float64 ``np.linalg.det`` would lose.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from advprior.baselines import GMMPrior
from advprior.hub import load_pretrained

U32 = 2.0**-24  # float32 unit roundoff
U64 = 2.0**-53
LOG_2PI = math.log(2 * math.pi)


def _read(path: Path) -> dict:
    with open(path, "rb") as fh:
        gmm = pickle.load(fh, encoding="latin1")
    assert type(gmm) is dict
    return gmm


def _nll_weights(covars: np.ndarray, weights: np.ndarray, const_dim: int = 69) -> np.ndarray:
    """SMPLify's normalised weights, in float64 from the file's arrays (``np.linalg.det``)."""
    sqrdets = np.array([np.sqrt(np.linalg.det(c)) for c in covars])
    return weights / ((2 * np.pi) ** (const_dim / 2.0) * (sqrdets / sqrdets.min()))


def merged_energy(gmm: dict, pose: torch.Tensor, dim: int = 69) -> torch.Tensor:
    """SMPLify-X / SPIN merged energy ``(B,)`` of ``pose (B, dim)`` in ``pose.dtype``; ``dim=63``
    is a SMPL-X user's slice of the file (SMPLify-X's constant ``(2 pi)^(69/2)`` kept)."""
    np_dtype = np.float32 if pose.dtype == torch.float32 else np.float64
    means = gmm["means"][:, :dim].astype(np_dtype)
    covs = gmm["covars"][:, :dim, :dim].astype(np_dtype)
    prec = np.stack([np.linalg.inv(c) for c in covs]).astype(np_dtype)
    nll_w = torch.tensor(
        _nll_weights(gmm["covars"][:, :dim, :dim], gmm["weights"]), dtype=pose.dtype
    )
    diff = pose[:, None] - torch.tensor(means)
    quad = (torch.einsum("mij,bmj->bmi", torch.tensor(prec), diff) * diff).sum(-1)
    return (0.5 * quad - torch.log(nll_w)[None]).min(dim=1).values


def easymocap_energy(gmm: dict, poses72: torch.Tensor) -> torch.Tensor:
    """EasyMocap's energy: float32 buffers, ``-log nll_w`` in float64 first, poses ``[3:72]``,
    returns the batch mean (a scalar)."""
    means = torch.tensor(gmm["means"].astype(np.float32))
    covs = gmm["covars"].astype(np.float32)
    prec = torch.tensor(np.stack([np.linalg.inv(c) for c in covs]).astype(np.float32))
    neg_log_w = torch.tensor(
        -np.log(_nll_weights(gmm["covars"], gmm["weights"])[None]), dtype=torch.float32
    )
    x = poses72[..., 3:72]
    diff = x[:, None] - means[None, :, :69]
    quad = (torch.einsum("mij,bmj->bmi", prec, diff) * diff).sum(-1)
    return (0.5 * quad + neg_log_w).min(dim=1).values.mean()


def chumpy_energy(gmm: dict, pose: np.ndarray, npose: int = 69, prefix: int = 3) -> np.ndarray:
    """SMPLify's / MoSh++'s residual vector per pose, float64: the squared norm of ``sqrt(1/2)
    d^T L`` of the best component and ``sqrt(-log w)`` of it; returns the squared norms."""
    covars = gmm["covars"][:, :npose, :npose]
    means = gmm["means"][:, :npose]
    chols = [np.linalg.cholesky(np.linalg.inv(c)) for c in covars]
    w = _nll_weights(covars, gmm["weights"], const_dim=npose)
    out = []
    for x in pose[:, prefix : prefix + npose]:
        res = [math.sqrt(0.5) * (x - m) @ c for m, c in zip(means, chols, strict=True)]
        k = int(np.argmin([(r**2).sum() - math.log(wk) for r, wk in zip(res, w, strict=True)]))
        full = np.concatenate([res[k], [math.sqrt(-math.log(w[k]))]])
        out.append((full**2).sum())
    return np.array(out)


def shifted_loader_energy(gmm: dict, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The SMPL-X fitter's loader: ``(per-pose energy (B,), its energy at the rest pose)``."""
    means = np.asarray(gmm["means"], dtype=np.float64)[:, :63]
    covars = np.asarray(gmm["covars"], dtype=np.float64)[:, :63, :63]
    precs, norms = [], []
    for c in covars:
        c = c + np.eye(63) * 1e-12
        precs.append(np.linalg.inv(c))
        norms.append(0.5 * (63 * LOG_2PI + np.linalg.slogdet(c)[1]))
    norms = np.array(norms)
    norms = torch.tensor(norms - norms.min(), dtype=torch.float32)
    log_w = torch.log(torch.tensor(gmm["weights"], dtype=torch.float32) + 1e-16)
    m, p = (
        torch.tensor(means, dtype=torch.float32),
        torch.tensor(np.stack(precs), dtype=torch.float32),
    )

    def energy(x: torch.Tensor) -> torch.Tensor:
        d = x[:, None] - m
        return (0.5 * torch.einsum("bkd,kde,bke->bk", d, p, d) + norms - log_w).min(dim=1).values

    return energy(pose), energy(torch.zeros(1, 63))


def _rounding_bound(f: dict, pose: np.ndarray, u: float, dim: int = 69) -> np.ndarray:
    """A first-order bound ``(B,)`` on how far the merged energy of ``pose (B, dim)`` computed
    with unit roundoff ``u`` (float32 or float64 arrays, as the readers cast them) can be from
    its exact value. Per component ``k``, with ``d = x - mu_k``, ``P = S^-1`` and
    ``g = sum_i |P d|_i sqrt(S_ii)``:

    - the covariance cast (``|E_ij| <= u |S_ij|``) and its LU inversion (a backward error
      ``|F| <= n u |L||U|``, and ``|L||U|_ij <= sqrt(S_ii S_jj)`` for a positive definite
      matrix): ``d^T P (E + F) P d`` moves ``0.5 q`` by at most ``0.5 (n + 1) u g^2``;
    - the means rounded and ``x - mu`` rounded: ``u sum_i |P d|_i (|x_i| + |mu_i|)`` (the
      gradient of ``0.5 q`` times the change of ``d``);
    - the quadratic form summed: ``0.5 (n + 2) u sum_ij |d_i| |P_ij| |d_j|``;
    - ``log nll_w`` cast and the subtraction: ``2 u (|log nll_w| + |e_k|)``.

    The min over components then moves by at most the bound of the exact winner upwards, and
    downwards by ``min_k e_k - min_k (e_k - t_k)``.
    """
    covars = f["covars"][:, :dim, :dim]
    means = f["means"][:, :dim]
    prec = np.linalg.inv(covars)
    log_w = np.log(_nll_weights(covars, f["weights"]))
    x = pose[:, None, :dim]
    d = x - means  # (B, K, D)
    pd = np.abs(np.einsum("kij,bkj->bki", prec, d))
    e = 0.5 * np.einsum("bki,bki->bk", np.einsum("kij,bkj->bki", prec, d), d) - log_w
    n = dim
    root = np.sqrt(np.diagonal(covars, axis1=1, axis2=2))  # (K, D)
    t = u * (
        0.5 * (n + 1) * (pd * root).sum(-1) ** 2
        + (pd * (np.abs(x) + np.abs(means))).sum(-1)
        + 0.5 * (n + 2) * np.einsum("bki,kij,bkj->bk", np.abs(d), np.abs(prec), np.abs(d))
        + 2 * (np.abs(log_w) + np.abs(e))
    )
    up = np.take_along_axis(t, e.argmin(1)[:, None], 1)[:, 0]
    down = e.min(1) - (e - t).min(1)
    return np.maximum(up, down)


def _tolerance(
    gmm: GMMPrior | None, f: dict, pose: np.ndarray, u: float, dim: int = 69
) -> np.ndarray:
    """How far a reader's energy ``(B,)`` (unit roundoff ``u``) may be from ``GMMPrior.nll``
    plus the pattern's constant: the reader's rounding bound, the float64 one for
    ``GMMPrior``'s own evaluation, and the weights' renormalisation (the file's weights sum to
    1 in float64; a float32-stored ``GMMPrior``'s to within float32 rounding)."""
    bound = _rounding_bound(f, pose, u, dim=dim)
    if u != U64:
        bound = bound + _rounding_bound(f, pose, U64, dim=dim)
    renorm = 0.0 if gmm is None else abs(math.log(float(gmm.weights.double().sum())))
    return 2 * bound + renorm if u == U64 else bound + renorm


def _conditioned_gmm(seed: int = 0) -> GMMPrior:
    """A 63-d mixture that ``export_smplify`` has no reason to change: every eigenvalue above
    the floor and every component with the same spectrum (equal determinants: SMPLify's float32
    weights all far above underflow), so the file holds exactly this mixture."""
    rng = np.random.default_rng(seed)
    k, d = 8, 63
    spectrum = np.exp(rng.uniform(math.log(1e-2), math.log(0.3), d))
    gmm = GMMPrior(num_components=k, dim=d)
    for i in range(k):
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        gmm.covariances[i] = torch.from_numpy((q * spectrum) @ q.T)
    gmm.means.copy_(torch.from_numpy(rng.normal(0.0, 0.3, (k, d))))
    w = rng.uniform(0.5, 2.0, k)
    gmm.weights.copy_(torch.from_numpy(w / w.sum()))
    gmm.covariances.copy_(0.5 * (gmm.covariances + gmm.covariances.transpose(1, 2)))
    return gmm


def _poses(gmm: GMMPrior, n: int, seed: int = 0) -> torch.Tensor:
    return gmm.sample(n, generator=torch.Generator().manual_seed(seed)).float()


def _logdets(cov: torch.Tensor) -> np.ndarray:
    return torch.linalg.slogdet(cov.double())[1].numpy()


# --- every pattern is GMMPrior's nll plus its own constant ------------------------------------


def test_export_is_the_mixture_when_no_conditioning_is_needed(tmp_path: Path) -> None:
    gmm = _conditioned_gmm()
    gmm.export_smplify(tmp_path / "gmm_08.pkl")
    f = _read(tmp_path / "gmm_08.pkl")
    # the premise: the file holds the mixture, up to the eigendecomposition round trip
    # (backward stable: an error of a few n u ||S|| per entry)
    cov = gmm.covariances.double().numpy()
    atol = 4 * 69 * U64 * np.abs(cov).max()
    assert np.allclose(f["covars"][:, :63, :63], cov, rtol=0, atol=atol)
    assert np.allclose(f["covars"][:, 63:, 63:], 1e-4 * np.eye(6), rtol=0, atol=atol)
    assert not f["covars"][:, :63, 63:].any() and not f["means"][:, 63:].any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_merged_energy_is_gmm_nll_plus_its_constant(tmp_path: Path, dtype: torch.dtype) -> None:
    """SMPLify-X / SPIN (69-d, hands at rest) and a SMPL-X user's 63-d slice of the file, in a
    float32 and a float64 run, against ``GMMPrior.nll``: SMPLify's energy is
    ``-max_k log(w_k N(x | mu_k, S_k)) - 0.5 min_j log|S_j|``; with hands at rest (variance
    ``f = 1e-4``) the 69-d file adds ``3 log(2 pi f)``; the 63-d slice keeps SMPLify-X's
    ``(2 pi)^(69/2)``, i.e. ``3 log(2 pi)`` more than its own dimension needs."""
    gmm = _conditioned_gmm()
    gmm.export_smplify(tmp_path / "gmm_08.pkl")
    f = _read(tmp_path / "gmm_08.pkl")
    x = _poses(gmm, 64)
    ours = gmm.nll(x.double()).numpy()
    logdet63 = _logdets(gmm.covariances)
    u = U32 if dtype == torch.float32 else U64
    x69 = torch.cat([x, torch.zeros(64, 6)], 1)
    for dim, pose, const in (
        (69, x69, 3 * math.log(2 * math.pi * 1e-4) - 0.5 * (logdet63 + 6 * math.log(1e-4)).min()),
        (63, x, 3 * LOG_2PI - 0.5 * logdet63.min()),
    ):
        theirs = merged_energy(f, pose.to(dtype), dim=dim).double().numpy()
        tol = _tolerance(gmm, f, pose.double().numpy(), u, dim=dim)
        err = np.abs(theirs - (ours + const))
        assert (err <= tol).all(), (dim, err.max(), tol.min())


def test_other_readers_are_gmm_nll_plus_their_constant(tmp_path: Path) -> None:
    """EasyMocap (float32, 72-d poses, batch mean), SMPLify's chumpy residual (float64, prefix
    3), MoSh++'s 63-d slice (``(2 pi)^(63/2)``) and the shifted SMPL-X loader (float32)."""
    gmm = _conditioned_gmm()
    gmm.export_smplify(tmp_path / "gmm_08.pkl")
    f = _read(tmp_path / "gmm_08.pkl")
    x = _poses(gmm, 32)
    ours = gmm.nll(x.double()).numpy()
    logdet63 = _logdets(gmm.covariances)
    const69 = 3 * math.log(2 * math.pi * 1e-4) - 0.5 * (logdet63 + 6 * math.log(1e-4)).min()
    x72 = torch.cat([torch.zeros(32, 3), x, torch.zeros(32, 6)], 1)
    x72_np = x72.double().numpy()

    # EasyMocap: one number, the mean; its bound is the mean of the per-pose bounds
    em = float(easymocap_energy(f, x72))
    want = float((ours + const69).mean())
    tol = _tolerance(gmm, f, x72_np[:, 3:], U32).mean() + 32 * U32 * abs(want)
    assert abs(em - want) <= tol, (em, want, tol)

    # chumpy residuals in float64 (its Cholesky factors of the precisions: the same bound)
    ch69 = chumpy_energy(f, x72_np, npose=69)
    tol = _tolerance(gmm, f, x72_np[:, 3:], U64)
    assert (np.abs(ch69 - (ours + const69)) <= tol).all()
    ch63 = chumpy_energy(f, x72_np, npose=63)
    tol = _tolerance(gmm, f, x72_np[:, 3:66], U64, dim=63)
    assert (np.abs(ch63 - (ours - 0.5 * logdet63.min())) <= tol).all()

    # the shifted loader: its normaliser drops (2 pi)^(63/2); the 1e-12 diagonal moves each
    # quadratic form by <= 1e-12 |P d|^2 and each log-determinant by 1e-12 tr(P)
    shifted, _ = shifted_loader_energy(f, x)
    shifted = shifted.double().numpy()
    want = ours - 0.5 * 63 * LOG_2PI - 0.5 * logdet63.min()
    prec = np.linalg.inv(f["covars"][:, :63, :63])
    eps_move = 1e-12 * (
        np.trace(prec, axis1=1, axis2=2).max()
        + 0.5
        * (np.einsum("kij,bkj->bki", prec, x.double().numpy()[:, None] - f["means"][:, :63]) ** 2)
        .sum(-1)
        .max(1)
    )
    tol = _tolerance(gmm, f, x.double().numpy(), U32, dim=63) + eps_move
    assert (np.abs(shifted - want) <= tol).all()


def test_shipped_export_is_the_exported_mixture_in_every_reader(tmp_path: Path) -> None:
    """On the shipped GMM the file is a conditioned mixture (eigenvalues floored, each
    component scaled by ``a_k``: docs/compat.md), so agreement is with ``GMMPrior`` holding the
    file's 69-d arrays; float32 readers within their rounding bound."""
    load_pretrained("gmm").export_smplify(tmp_path / "gmm_08.pkl")
    f = _read(tmp_path / "gmm_08.pkl")
    mixture = GMMPrior(num_components=8, dim=69).double()
    mixture.means.copy_(torch.from_numpy(f["means"]))
    mixture.covariances.copy_(torch.from_numpy(f["covars"]))
    mixture.weights.copy_(torch.from_numpy(f["weights"]))
    x = torch.cat([_poses(load_pretrained("gmm"), 64), torch.zeros(64, 6)], 1)
    ours = mixture.nll(x.double()).numpy() - 0.5 * _logdets(mixture.covariances).min()
    for dtype in (torch.float32, torch.float64):
        theirs = merged_energy(f, x.to(dtype)).double().numpy()
        u = U32 if dtype == torch.float32 else U64
        tol = _tolerance(None, f, x.double().numpy(), u)
        assert (np.abs(theirs - ours) <= tol).all()
    ch = chumpy_energy(f, torch.cat([torch.zeros(64, 3), x], 1).double().numpy())
    assert (np.abs(ch - ours) <= _tolerance(None, f, x.double().numpy(), U64)).all()


# --- determinants SMPLify's readers can take ---------------------------------------------------


def test_export_refuses_determinants_that_underflow_in_the_readers(tmp_path: Path) -> None:
    """Every reader takes ``sqrt(np.linalg.det(S_k))`` in float64 and divides by the smallest: a
    mixture whose 69 eigenvalues are all 1e-5 (log-determinant -794, below float64's smallest
    normal number e^-708) gave determinants 0 and every SMPLify weight NaN, written silently."""
    gmm = GMMPrior(num_components=2)
    gmm.covariances.mul_(1e-5)
    with pytest.raises(ValueError, match="eig_floor"):
        gmm.export_smplify(tmp_path / "gmm_08.pkl", eig_floor=1e-5)
    assert not (tmp_path / "gmm_08.pkl").exists()
    # the default floor lifts the same mixture into range: finite weights in every reader
    gmm.export_smplify(tmp_path / "gmm_08.pkl")
    f = _read(tmp_path / "gmm_08.pkl")
    assert np.isfinite(_nll_weights(f["covars"], f["weights"])).all()
    assert torch.isfinite(merged_energy(f, torch.zeros(2, 69))).all()


# --- typical and extreme poses, batches of one and many, gradients ----------------------------


def unmerged_energy_batch_of_one(gmm: dict, pose: torch.Tensor) -> torch.Tensor:
    """SMPLify-X's ``use_merged=False`` path as written, for its batch of one: per component
    ``d^T P d`` (unhalved) plus ``0.5 (log(det S + 1e-16) + 69 log 2 pi)`` with torch's
    determinant of the cast covariance; the argmin indexes ``nll_weights`` and the
    per-component values, giving a ``(1, 1)`` result (a larger batch broadcasts to ``(B, B)``
    in that code, whatever file it reads)."""
    dtype = pose.dtype
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    covs = torch.tensor(gmm["covars"].astype(np_dtype))
    prec = torch.tensor(np.stack([np.linalg.inv(c) for c in gmm["covars"].astype(np_dtype)]))
    means = torch.tensor(gmm["means"].astype(np_dtype))
    nll_w = torch.tensor(_nll_weights(gmm["covars"], gmm["weights"]), dtype=dtype)[None]
    per = []
    for k in range(len(means)):
        d = pose - means[k]
        q = torch.einsum("bi,bi->b", torch.einsum("bj,ji->bi", d, prec[k]), d)
        cov_term = torch.log(torch.det(covs[k]) + 1e-16)
        per.append(q + 0.5 * (cov_term + 69 * torch.log(torch.tensor(2 * np.pi, dtype=dtype))))
    per = torch.stack(per, dim=1)
    idx = torch.argmin(per, dim=1)
    return -torch.log(nll_w[:, idx]) + per[:, idx]


def _extreme_poses(n: int) -> torch.Tensor:
    """``(n, 69)``: rest, every joint (hands too) at 3.1 rad about random axes, uniform in
    ``[-pi, pi]`` per number, and a full turn (2 pi) at one joint."""
    g = torch.Generator().manual_seed(3)
    axes = torch.randn(n, 23, 3, generator=g)
    near_pi = (3.1 * axes / axes.norm(dim=-1, keepdim=True)).reshape(n, 69)
    uniform = (torch.rand(n, 69, generator=g) * 2 - 1) * math.pi
    turn = torch.zeros(n, 69)
    turn[:, 51] = 2 * math.pi  # left elbow
    return torch.cat([torch.zeros(1, 69), near_pi, uniform, turn])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_reader_finite_with_finite_gradients(tmp_path: Path, dtype: torch.dtype) -> None:
    gmm = load_pretrained("gmm")
    gmm.export_smplify(tmp_path / "gmm_08.pkl")
    f = _read(tmp_path / "gmm_08.pkl")
    typical = torch.cat([_poses(gmm, 8), torch.zeros(8, 6)], 1)
    poses = torch.cat([typical, _extreme_poses(8)]).to(dtype)
    for batch in (poses[:1], poses[8:9], poses):  # SMPLify-X fits one person: batch of one
        x = batch.clone().requires_grad_(True)
        energies = [merged_energy(f, x)]
        if dtype == torch.float32:
            x72 = torch.cat([torch.zeros(len(x), 3, dtype=dtype), x], 1)
            energies.append(easymocap_energy(f, x72)[None])
            energies.append(shifted_loader_energy(f, x[:, :63])[0])
        for e in energies:
            assert torch.isfinite(e).all()
            (grad,) = torch.autograd.grad(e.sum(), x)
            assert torch.isfinite(grad).all()
    for row in poses:
        x = row[None].clone().requires_grad_(True)
        e = unmerged_energy_batch_of_one(f, x)
        assert e.shape == (1, 1) and torch.isfinite(e).all()
        (grad,) = torch.autograd.grad(e.sum(), x)
        assert torch.isfinite(grad).all()
    pose72 = torch.cat([torch.zeros(len(poses), 3), poses.double()], 1).numpy()
    assert np.isfinite(chumpy_energy(f, pose72)).all()


# --- SMPL-X's 63-d body_pose and the 69-d file --------------------------------------------------


@pytest.mark.parametrize("shipped", [True, False])
def test_smplx_body_pose_padded_or_file_sliced(tmp_path: Path, shipped: bool) -> None:
    """SMPLify-X's ``MaxMixturePrior`` subtracts the 69-d means from SMPL-X's ``(B, 63)``
    ``body_pose``: a shape error, with SMPLify's file as with ours. The two ways out: pad the
    pose with SMPL's two hand joints at rest (6 zeros), or slice the file's arrays to 63
    numbers. Per component the two energies differ by
    ``delta_k = 0.5 (log|S_k^69| - log|S_k^63|) - 0.5 min_j log|S_j^69| + 0.5 min_j log|S_j^63|``
    (the hand block's normaliser), so the padded energy minus the sliced one lies in
    ``[min delta, max delta]``: a constant when every component's hand block is the same (no
    conditioning), a spread of ``3 (max log a_k - min log a_k)`` on the shipped export."""
    gmm = load_pretrained("gmm") if shipped else _conditioned_gmm()
    gmm.export_smplify(tmp_path / "gmm_08.pkl")
    f = _read(tmp_path / "gmm_08.pkl")
    body_pose = _poses(gmm, 64)
    with pytest.raises(RuntimeError):
        merged_energy(f, body_pose, dim=69)
    padded = merged_energy(f, torch.cat([body_pose, torch.zeros(64, 6)], 1)).double().numpy()
    sliced = merged_energy(f, body_pose, dim=63).double().numpy()
    ld69 = np.linalg.slogdet(f["covars"])[1]
    ld63 = np.linalg.slogdet(f["covars"][:, :63, :63])[1]
    delta = 0.5 * (ld69 - ld63) - 0.5 * ld69.min() + 0.5 * ld63.min()
    x69 = torch.cat([body_pose, torch.zeros(64, 6)], 1).double().numpy()
    tol = _rounding_bound(f, x69, U32) + _rounding_bound(f, x69[:, :63], U32, dim=63)
    gap = padded - sliced
    assert (gap >= delta.min() - tol).all() and (gap <= delta.max() + tol).all()
    if not shipped:
        assert np.ptp(delta) < 1e-9
