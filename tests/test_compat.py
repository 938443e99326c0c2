"""advprior.compat: VPoser v1/v2 loaders, the latent chart, the GMM export for SMPLify, and the
stand-in as an smplx model folder."""

from __future__ import annotations

import io
import math
import pickle
import warnings

import numpy as np
import pytest
import smplx
import torch

from advprior import LatentPose, PosePrior
from advprior.baselines import GMMPrior
from advprior.body import load_body_model, standin_folder
from advprior.body.standin import SMPL_NUM_VERTICES, SMPL_VERTEX_IDS
from advprior.compat import LatentChart, chart_for, load_model, load_vposer
from advprior.hub import load_pretrained

LATENT_ALIASES = ("gan-s", "gan-u", "gan-n", "vae")


@pytest.fixture(scope="module", params=LATENT_ALIASES)
def v1(request):
    return load_vposer(request.param)


def test_v1_shapes_and_settings(v1) -> None:
    vposer, ps = v1
    assert ps.latentD == vposer.latentD == 32 and ps["vposer_api"] == 1
    assert not vposer.training  # v1's loader returns its model in eval mode
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    aa = vposer.decode(z, output_type="aa")
    rot = vposer.decode(z, output_type="matrot")
    assert aa.shape == (3, 1, 21, 3) and rot.shape == (3, 1, 21, 9)
    assert vposer.decode(z).shape == (3, 1, 21, 9)  # v1's default output_type is matrot
    r = rot.reshape(3, 21, 3, 3).double()
    eye = torch.eye(3, dtype=torch.float64).expand_as(r)
    assert torch.allclose(r @ r.transpose(-1, -2), eye, atol=1e-5)
    # the SMPLify-X idiom: .view(B, -1) is a 63-d body_pose
    assert aa.view(3, -1).shape == (3, 63)
    with pytest.raises(ValueError, match="output_type"):
        vposer.decode(z, output_type="rot6d")
    with pytest.raises(ValueError, match=r"\(B, 32\)"):
        vposer.decode(torch.zeros(3, 31))
    sample = vposer.sample_poses(4, seed=1)
    assert sample.shape == (4, 1, 21, 3)
    assert torch.equal(sample, vposer.sample_poses(4, seed=1))


def test_zero_embedding_is_a_typical_pose_with_a_gradient(v1) -> None:
    vposer, _ = v1
    z = torch.zeros(2, 32, requires_grad=True)
    pose = vposer.decode(z, output_type="aa").view(2, -1)
    (pose * torch.linspace(-1, 1, 63)).sum().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 1e-3
    prior = vposer.prior
    if prior.model_type == "gan":
        # z = 0 is the typical latent: fit_keypoints' start, LatentPose(init="typical")
        typical = LatentPose(prior, 1, init="typical")().detach()
        assert torch.allclose(pose[0].detach(), typical[0], atol=1e-5)


def test_non_finite_embedding_propagates(v1) -> None:
    vposer, _ = v1
    z = torch.zeros(2, 32)
    z[1, 0] = float("nan")
    out = vposer.decode(z, output_type="aa")
    assert torch.isfinite(out[0]).all() and torch.isnan(out[1]).any()


def test_raw_embedding_decodes_the_same_after_saving(v1, tmp_path) -> None:
    vposer, _ = v1
    z = 3.0 * torch.randn(5, 32, generator=torch.Generator().manual_seed(2))  # off any manifold
    before = vposer.decode(z, output_type="aa")
    torch.save({"pose_embedding": z}, tmp_path / "fit.pt")
    again, _ = load_vposer(vposer.prior)  # a new adapter, its chart recomputed from weights
    z2 = torch.load(tmp_path / "fit.pt", weights_only=True)["pose_embedding"]
    vposer.train()  # mode changes do not change decoding
    assert torch.equal(again.decode(z2, output_type="aa"), before)
    assert torch.equal(vposer.decode(z2, output_type="aa"), before)
    vposer.eval()


def test_encode_returns_the_latent_of_the_pose(v1) -> None:
    vposer, _ = v1
    target = vposer.sample_poses(3, seed=4).reshape(3, 63)
    q = vposer.encode(target)
    assert q.mean.shape == (3, 32)
    back = vposer.decode(q.mean, output_type="aa").reshape(3, 63)
    err = (back - target).abs().mean()
    # GAN: inversion of its own samples; VAE: an autoencoder's reconstruction error
    assert err < (0.05 if vposer.prior.model_type == "gan" else 0.3)


def test_v1_dtypes_forward_signature_and_encode_gradient(v1) -> None:
    v1, _ = v1
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(0))
    aa32 = v1.decode(z, output_type="aa")
    aa64 = v1.decode(z.double(), output_type="aa")
    # a float64 pipeline keeps float64 poses, computed in the prior's float32 (the chart and
    # the axis-angle conversion in float64: float32 rounding apart, ~1e-6 rad)
    assert aa64.dtype == torch.float64 and torch.allclose(aa64, aa32.double(), atol=1e-5)
    pose = aa32.reshape(3, 63)
    assert v1.encode(pose.double()).mean.dtype == torch.float64
    # v1's forward(Pin, input_type="matrot", output_type="matrot"): v1's encoder takes
    # axis-angle whatever input_type says; rotation matrices (B x 189 numbers) are converted
    out = v1(pose)
    assert out["pose"].shape == (3, 1, 21, 9) and out["mean"].shape == (3, 32)
    assert v1(pose, "aa")["pose"].shape == (3, 1, 21, 9)  # the 2nd positional is input_type
    assert v1(pose, "aa", "aa")["pose"].shape == (3, 1, 21, 3)
    mat = v1(v1.decode(z, output_type="matrot"), output_type="aa")
    assert torch.allclose(mat["mean"], out["mean"], atol=1e-4)
    with pytest.raises(ValueError, match="input_type"):
        v1(pose, input_type="quat")
    # the GAN's encode is an optimisation: no gradient, and a warning when one was expected;
    # the VAE's encoder is differentiable
    wanted = pose.clone().requires_grad_(True)
    if v1.prior.model_type == "gan":
        with pytest.warns(UserWarning, match="no gradient to the pose"):
            assert not v1.encode(wanted).mean.requires_grad
    else:
        assert v1.encode(wanted).mean.requires_grad
    # inside inference mode (Lightning's validation) it still inverts
    with torch.inference_mode():
        inferred = v1.encode(pose).mean
    assert torch.allclose(inferred, v1.encode(pose).mean)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool])
def test_integer_or_bool_poses_are_refused_at_the_boundary(v1, dtype) -> None:
    # they were cast to float and inverted; VPoser's encoder network fails on them
    vposer, _ = v1
    vp2, _ = load_model("gan-s")
    pose = torch.zeros(2, 63, dtype=dtype)
    for call in (vposer.encode, vposer, lambda x: vposer(x, "aa", "aa"), vp2.encode, vp2):
        with pytest.raises(TypeError, match=rf"floating-point .*got {dtype}"):
            call(pose)
    with pytest.raises(TypeError, match="floating-point"):  # matrices too, whatever the size
        vposer(torch.ones(2, 21, 3, 3, dtype=dtype))
    assert vposer.encode(pose.float()).mean.shape == (2, 32)


def test_numpy_arrays_are_refused_with_the_conversion_hint(v1) -> None:
    # as every other input of advprior: "Pin ... got <class 'numpy.ndarray'>" and "z ... got
    # ndarray" did not say how to convert them
    vposer, _ = v1
    vp2, _ = load_model("gan-s")
    calls = {
        "Pin": (vposer.encode, np.zeros((2, 63), np.float32)),
        "z": (vp2.decode, np.zeros((2, 32), np.float32)),
        "pose": (vposer.aa2matrot, np.zeros((2, 1, 21, 3), np.float32)),
    }
    for name, (call, value) in calls.items():
        with pytest.raises(TypeError, match=rf"^{name} must be .*torch\.from_numpy"):
            call(value)


@pytest.mark.parametrize(
    ("shape", "per", "lead"),
    [((2, 3, 63), 63, "2, 3"), ((2, 3, 69), 69, "2, 3"), ((2, 3, 21, 3), 63, "2, 3"),
     ((2, 2, 63), 63, "2, 2"), ((1, 4, 2, 23, 3), 69, "1, 4, 2")],
)  # fmt: skip
def test_several_poses_per_row_are_a_shape_error(v1, shape, per: int, lead: str) -> None:
    # (B, 3, 63) has 189 numbers a row, VPoser's matrix count: it was refused as "not
    # rotations", which points at the values instead of the shape
    vposer, _ = v1
    pose = 0.1 * torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    msg = rf"one pose per leading row.*reshape\(-1, {per}\).*reshape\({lead}, -1\)"
    for call in (vposer.encode, vposer):
        with pytest.raises(ValueError, match=msg) as err:
            call(pose)
        assert "rotation" not in str(err.value)
    # the hint's reshapes work
    mean = vposer.encode(pose.reshape(-1, per)).mean
    assert mean.reshape(*map(int, lead.split(", ")), -1).shape[-1] == 32


def test_v2_api() -> None:
    vp, cfg = load_model(
        "gan-s", model_code=object, remove_words_in_model_weights="vp_model.", disable_grad=True
    )
    assert cfg.vposer_api == 2 and load_model("gan-s", load_only_cfg=True)["latentD"] == 32
    assert not vp.training  # v2's loader returns its model in eval mode
    # v2 code sizes its embedding from the nested config, as VPoser's own class reads it
    assert cfg.model_params.latentD == 32 and cfg.model_params.num_neurons == 512
    out = vp.decode(torch.zeros(2, 32))
    assert out["pose_body"].shape == (2, 21, 3) and out["pose_body_matrot"].shape == (2, 21, 9)
    v1, _ = load_vposer("gan-s")
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out["pose_body"], v1.decode(torch.zeros(2, 32), "aa").reshape(2, 21, 3))
    assert torch.equal(vp.decode(z)["pose_body_matrot"], v1.decode(z).reshape(2, 21, 9))
    s = vp.sample_poses(num_poses=3, seed=0)
    assert s["pose_body"].shape == (3, 21, 3)
    assert not any(p.requires_grad for p in vp.parameters())


def test_v2_fine_tuning_request_warns_that_nothing_would_train() -> None:
    # disable_grad=False is how v2 code asks for a trainable VPoser; ours stays frozen, so an
    # optimiser over its parameters would silently step nothing
    with pytest.warns(UserWarning, match="disable_grad=False"):
        vp, _ = load_model("gan-s", disable_grad=False)
    assert not any(p.requires_grad for p in vp.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model("gan-s", disable_grad=True)
        load_model("gan-s")


def test_gmm_has_no_latent() -> None:
    with pytest.raises(TypeError, match="export_smplify"):
        load_vposer("gmm")
    with pytest.raises(TypeError, match="alias"):
        load_vposer(3)


# --- the chart ------------------------------------------------------------------------------


def test_sphere_chart_is_the_direction_of_a_shifted_gaussian() -> None:
    gen = torch.Generator().manual_seed(0)
    c = torch.randn(8, generator=gen, dtype=torch.float64)
    chart = LatentChart("sphere", c, 3.0)
    c = c / c.norm()
    z = torch.randn(64, 8, generator=gen, dtype=torch.float64)
    w = chart(z)
    assert torch.allclose(w.norm(dim=-1), torch.ones(64, dtype=torch.float64), atol=1e-12)
    x = c + 3.0 * z
    assert torch.allclose(w, x / x.norm(dim=-1, keepdim=True), atol=1e-14)
    assert torch.allclose(chart(torch.zeros(1, 8, dtype=torch.float64))[0], c, atol=1e-15)
    # the free radius: z + t (c / s + z), t > -1, is the same latent
    for t in (-0.9, 0.5, 20.0):
        assert torch.allclose(chart(z + t * (c / 3.0 + z)), w, atol=1e-12)
    # the inverse is a right inverse on the sphere, also at the antipode of the centre
    u = torch.cat([w, -c[None]])
    assert torch.allclose(chart(chart.inverse(u)), u, atol=1e-12)
    # |z|^2 minimised over the free radius is sin^2(a) / s^2 (a < 90 degrees): the bounded
    # pull an |z|^2 term exerts toward the centre
    cos = w @ c
    front = cos > 0
    best = (cos[front, None] * w[front] - c) / 3.0
    assert torch.allclose(chart(best), w[front], atol=1e-12)
    assert torch.allclose(best.pow(2).sum(-1), (1 - cos[front] ** 2) / 9.0, atol=1e-12)
    rho = torch.linspace(0.05, 3.0, 60, dtype=torch.float64)
    fibre = (rho[:, None, None] * w[front] - c) / 3.0
    assert (fibre.pow(2).sum(-1) >= best.pow(2).sum(-1) - 1e-12).all()


def test_sphere_chart_of_a_normal_is_nearly_uniform() -> None:
    # z ~ N(0, I) through the shipped chart: nearly GAN-S's own uniform prior, whose cos(angle)
    # to any fixed point has mean 0 and standard deviation 1 / sqrt(D); the shift c / s moves
    # the mean toward the centre by about 1 / (s sqrt D), i.e. 1 / s standard deviations
    d = 32
    c = torch.zeros(d, dtype=torch.float64)
    c[0] = 1.0
    s = chart_for(load_pretrained("gan-s")).scale
    assert s >= 2.0  # within a standard deviation of uniform (the tangent-plane chart: s = 0.28)
    sphere = LatentChart("sphere", c, s)
    z = torch.randn(20000, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cos = sphere(z)[:, 0]
    sd = 1 / math.sqrt(d)
    # sampling error of the mean: 1 / sqrt(20000) = 0.007 sd; the 1 / s law holds to O(1 / D)
    assert abs(float(cos.mean()) / sd - 1 / s) < 0.03
    assert abs(float(cos.var()) / sd**2 - 1) < 0.1


def test_chart_jacobian_at_zero_is_finite_and_full_rank_on_the_tangent() -> None:
    c = torch.zeros(6, dtype=torch.float64)
    c[2] = 1.0
    for kind in ("sphere", "uniform"):
        chart = LatentChart(kind, c, 0.5)
        jac = torch.autograd.functional.jacobian(chart, torch.zeros(6, dtype=torch.float64))
        assert torch.isfinite(jac).all()
        rank = int(torch.linalg.matrix_rank(jac))
        assert rank == (5 if kind == "sphere" else 6)
        if kind == "sphere":  # s (I - c c^T)
            expected = 0.5 * (torch.eye(6, dtype=torch.float64) - torch.outer(c, c))
            assert torch.allclose(jac, expected, atol=1e-15)
    # the singular point z = -c / s and huge finite trial steps stay finite and on the sphere
    sphere = LatentChart("sphere", c, 0.5)
    z = torch.stack([-c / 0.5, torch.full((6,), 1e30, dtype=torch.float64)])
    w = sphere(z)
    assert torch.isfinite(w).all() and torch.allclose(w.norm(dim=-1), torch.ones(2).double())
    assert torch.equal(w[0], c)
    sphere32 = LatentChart("sphere", c.float(), 0.5)
    w32 = sphere32(torch.full((1, 6), 3e37))
    assert torch.isfinite(w32).all() and abs(float(w32.norm()) - 1) < 1e-6


def test_cube_chart_maps_normals_to_uniform() -> None:
    chart = LatentChart("uniform", torch.zeros(4), 1.0)
    z = torch.randn(20000, 4, generator=torch.Generator().manual_seed(0))
    u = chart(z)
    assert u.abs().max() < 1
    # N(0, 1) through erf(z / sqrt 2) is U[-1, 1]: variance 1/3
    assert (u.var(0) - 1 / 3).abs().max() < 0.01
    assert torch.allclose(chart.inverse(u), z, atol=1e-3)


def test_chart_centre_and_the_scale_of_the_models_own_samples() -> None:
    prior = load_pretrained("gan-s")
    chart = chart_for(prior)
    assert torch.allclose(chart.centre, prior.typical_latent(), atol=1e-6)
    samples = prior.sample_latent(2000, generator=torch.Generator().manual_seed(7)).double()
    z = chart.inverse(samples.to(torch.float32)).double()
    assert torch.allclose(chart(z.float()), samples.float(), atol=1e-5)
    per_dim = z.pow(2).sum(-1).mean() / prior.latent_dim
    # the most probable radius: |z|^2 ~ (D - 1 + 1 / s^2) / D per dimension, about 1
    assert abs(float(per_dim) - 1.0) < 0.1


def test_the_typical_pose_and_the_chart_do_not_depend_on_the_dtype() -> None:
    # seeded draws differ between float32 and float64: the start samples are drawn in float32
    f32, f64 = load_pretrained("gan-s"), load_pretrained("gan-s").double()
    assert torch.equal(f64.typical_latent(), f32.typical_latent().double())
    assert torch.equal(f64.fit_starts(4), f32.fit_starts(4).double())
    assert torch.equal(LatentPose(f64, 2).z.detach(), LatentPose(f32, 2).z.detach().double())
    z = torch.randn(5, 32, generator=torch.Generator().manual_seed(3))
    a = load_vposer(f32)[0].decode(z, output_type="aa")
    b = load_vposer(f64)[0].decode(z.double(), output_type="aa")
    # the same chart evaluated in float32 and float64: float32 rounding through the MLP (~1e-6)
    assert torch.allclose(a.double(), b, atol=1e-5)


def test_real_validation_poses_have_about_unit_variance(shared_mocap) -> None:
    from advprior.data import load_motion

    # CMU subject 01 is in the validation split (dataset v4); never the test split here
    motion = load_motion(shared_mocap / "cmu_asfamc" / "01" / "01_06.amc").to_smpl(30)
    pose = torch.as_tensor(motion.body_pose, dtype=torch.float32)[::8]
    vposer, ps = load_vposer("gan-s")
    z = vposer.encode(pose).mean
    per_dim = float(z.pow(2).sum(-1).mean() / 32)
    # measured 1.01 on 500 validation frames of all subjects; one clip varies more
    assert 0.5 < per_dim < 2.0, per_dim


# --- LatentPose -----------------------------------------------------------------------------


def test_latent_pose_typical_reset_and_zero_warning() -> None:
    prior = load_pretrained("gan-s")
    lp = LatentPose(prior, 3, init="typical")
    start = lp.z.detach().clone()
    assert torch.equal(start[0], prior.typical_latent())
    with torch.no_grad():
        lp.z.add_(0.5)
    lp.reset()
    assert torch.equal(lp.z.detach(), start)
    with torch.no_grad():
        lp.z.fill_(0)
    with pytest.warns(RuntimeWarning, match="reset"):
        lp()
    with pytest.raises(ValueError, match="typical"):
        LatentPose(prior, 1, init="medoid")


def test_fit_keypoints_starts_at_the_typical_latent() -> None:
    from advprior.fitting.priors import PriorTerm

    prior = load_pretrained("gan-s")
    z0 = PriorTerm(prior).init(2, torch.float32, torch.device("cpu"))
    assert torch.equal(z0[0], LatentPose(prior, 1, init="typical").z.detach()[0])


# --- GMM export -----------------------------------------------------------------------------


# numpy 1.x names only: numpy < 1.26 has no numpy._core (older SMPLify environments), numpy 2
# resolves the old names
_PLAIN = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


def _globals(data: bytes) -> set[tuple[str, str]]:
    """The classes a pickle needs, loading it with only plain numpy arrays allowed."""
    seen: set[tuple[str, str]] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            seen.add((module, name))
            if (module, name) not in _PLAIN:
                raise pickle.UnpicklingError(f"{module}.{name} is not a plain array class")
            return super().find_class(module, name)

    Recording(io.BytesIO(data), encoding="latin1").load()
    return seen


def smplify_float32_energy(gmm: dict, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SMPLify's max-mixture energy as its code computes it, float32 buffers; returns the
    energy ``(B,)`` and the float32 ``nll_weights``."""
    covars = gmm["covars"]
    sqrdets = np.array([np.sqrt(np.linalg.det(c)) for c in covars])
    const = (2 * np.pi) ** (69 / 2.0)
    nll_weights = torch.tensor(
        gmm["weights"] / (const * (sqrdets / sqrdets.min())), dtype=torch.float32
    )
    means = torch.tensor(gmm["means"], dtype=torch.float32)
    prec = torch.tensor(np.stack([np.linalg.inv(c) for c in covars]), dtype=torch.float32)
    diff = pose[:, None] - means
    quad = torch.einsum("bki,kij,bkj->bk", diff, prec, diff)
    return (0.5 * quad - torch.log(nll_weights)).min(dim=1).values, nll_weights


def test_gmm_export_loads_as_smplify_does(tmp_path) -> None:
    gmm = load_pretrained("gmm")
    path = tmp_path / "gmm_08.pkl"
    out = gmm.export_smplify(path)
    raw = path.read_bytes()
    assert _globals(raw) <= _PLAIN
    with open(path, "rb") as fh:
        loaded = pickle.load(fh, encoding="latin1")
    assert type(loaded) is dict and set(loaded) == {"means", "covars", "weights"}
    assert loaded["means"].shape == (8, 69) and loaded["covars"].shape == (8, 69, 69)
    assert loaded["weights"].shape == (8,) and math.isclose(loaded["weights"].sum(), 1.0)
    for key in out:
        np.testing.assert_array_equal(loaded[key], out[key])
    # the body block keeps the fitted means; hands: mean 0, independent
    np.testing.assert_allclose(loaded["means"][:, :63], gmm.means.double().numpy(), atol=1e-7)
    assert not loaded["means"][:, 63:].any() and not loaded["covars"][:, :63, 63:].any()
    # well conditioned: eigenvalues floored at 1e-4, then each component scaled by its a_k
    # (0.48 to 2.08 on the shipped GMM, docs/compat.md)
    assert (np.linalg.eigvalsh(loaded["covars"]) >= 1e-5).all()


def test_gmm_export_stays_finite_in_float32_smplify() -> None:
    gmm = load_pretrained("gmm")
    exported = gmm.export_smplify()
    pose = torch.cat(
        [gmm.sample(64, generator=torch.Generator().manual_seed(0)), torch.zeros(64, 6)], 1
    )
    pose.requires_grad_(True)
    energy, nll_w = smplify_float32_energy(exported, pose)
    # every component survives: no weight below float32's smallest normal number
    assert (nll_w >= torch.finfo(torch.float32).tiny).all()
    energy.sum().backward()
    assert torch.isfinite(energy).all() and torch.isfinite(pose.grad).all()
    # the raw 63-d mixture in the same layout loses components to float32 underflow (why the
    # export conditions it); measured: 4 of 8 weights become 0
    raw = {
        "means": exported["means"].copy(),
        "weights": exported["weights"],
        "covars": np.tile(np.eye(69) * 1e-4, (8, 1, 1)),
    }
    raw["covars"][:, :63, :63] = gmm.covariances.double().numpy()
    _, raw_w = smplify_float32_energy(raw, pose.detach())
    assert (raw_w == 0).any()


def test_gmm_export_ranks_poses_like_the_mixture() -> None:
    gmm = load_pretrained("gmm")
    exported = gmm.export_smplify()
    pose = gmm.sample(256, generator=torch.Generator().manual_seed(1))
    ours = gmm.nll(pose)
    theirs, _ = smplify_float32_energy(exported, torch.cat([pose, torch.zeros(256, 6)], 1))
    # the conditioning changes the energy (component scales a_k of 0.48 to 2.08) but keeps
    # its ordering of poses
    rank = lambda x: x.argsort().argsort().double()  # noqa: E731
    corr = torch.corrcoef(torch.stack([rank(ours), rank(theirs)]))[0, 1]
    assert corr > 0.95, float(corr)


def test_gmm_export_arguments() -> None:
    gmm = GMMPrior(num_components=2)
    with pytest.raises(ValueError, match="eig_floor"):
        gmm.export_smplify(eig_floor=0.0)
    with pytest.raises(ValueError, match="63-d"):
        GMMPrior(num_components=2, dim=10).export_smplify()
    out = gmm.export_smplify()
    assert out["covars"].shape == (2, 69, 69)


# --- the stand-in as an smplx model folder --------------------------------------------------


def test_standin_folder_loads_through_plain_smplx(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ADVPRIOR_CACHE", str(tmp_path))
    folder = standin_folder()
    assert folder.is_relative_to(tmp_path)
    for gender in ("neutral", "male", "female"):
        model = smplx.create(str(folder), model_type="smpl", gender=gender)
        assert model.v_template.shape == (SMPL_NUM_VERTICES, 3)
    out = model(return_verts=True)
    assert out.joints.shape == (1, 45, 3) and torch.isfinite(out.vertices).all()
    assert not list(folder.rglob(".*.tmp"))
    # same body as load_body_model(): skeleton and all 21 landmark joints
    ours = load_body_model()
    gen = torch.Generator().manual_seed(0)
    kw = {
        "global_orient": 0.3 * torch.randn(2, 3, generator=gen),
        "body_pose": 0.3 * torch.randn(2, 69, generator=gen),
        "betas": torch.randn(2, 10, generator=gen),
    }
    a = model(**kw).joints
    b = ours(**kw).model_joints
    assert torch.allclose(a, b, atol=1e-5)
    # landmarks at SMPL's own vertex indices
    verts = model(**kw).vertices
    assert torch.allclose(a[:, 24:], verts[:, [SMPL_VERTEX_IDS[n] for n in ours.extra_joint_names]])


def _area(v: np.ndarray, f: np.ndarray) -> float:
    e1, e2 = v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]
    return float(0.5 * np.linalg.norm(np.cross(e1, e2), axis=1).sum())


@pytest.mark.parametrize("num_vertices", [SMPL_NUM_VERTICES, 10475, 30000])
def test_standin_layout_is_one_surface_of_distinct_vertices(num_vertices: int) -> None:
    """Mesh code that merges coincident vertices or drops unreferenced ones (trimesh's default
    processing, as SMPLify-X exports its meshes) keeps every vertex of the layout, and the
    added vertices lie on the stand-in's own surface. 30000 is more than the stand-in's
    vertices plus its faces, so some faces are split twice."""
    from advprior.body.standin import build_standin, smpl_layout

    base = build_standin()
    data = smpl_layout(base, num_vertices=num_vertices, vertex_ids={"nose": 7})
    v, f = data["v_template"], data["f"].astype(np.int64)
    assert v.shape == (num_vertices, 3) and np.isin(np.arange(num_vertices), f).all()
    assert len(np.unique(v, axis=0)) == num_vertices
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    assert len(np.unique(directed, axis=0)) == len(directed)  # orientation kept
    _, count = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    assert (count == 2).all()  # still closed
    # a triangle split at its centroid covers the same surface: the area is unchanged up to
    # float64 rounding of the cross products (relative 1e-16 per face)
    area = _area(base["v_template"], base["f"].astype(np.int64))
    assert abs(_area(v, f) - area) < 1e-12 * area
    assert np.allclose(data["weights"].sum(axis=1), 1.0, atol=1e-12)
    assert data["bs_type"] == "lrotmin" and data["bs_style"] == "lbs"  # SMPL's own loader
    added = ~(v[:, None] == base["v_template"][None]).all(-1).any(-1)
    assert added.sum() == num_vertices - len(base["v_template"])
    if added.sum() <= len(base["f"]):
        # split once: an added vertex's neighbours are its triangle's three corners, and it
        # stays their centroid when the body changes shape (shape directions are linear)
        shaped = v + data["shapedirs"] @ np.linspace(-2.0, 2.0, 10)
        for n in np.flatnonzero(added)[:: max(1, int(added.sum()) // 200)]:
            ring = np.setdiff1d(f[(f == n).any(axis=1)], [n])
            assert len(ring) == 3
            assert np.allclose(shaped[n], shaped[ring].mean(axis=0), atol=1e-12)


def test_standin_folder_is_verified_and_rewritten(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("ADVPRIOR_CACHE", str(tmp_path))
    folder = standin_folder()
    path = folder / "smpl" / "SMPL_MALE.pkl"
    good = path.read_bytes()
    mtime = (folder / "smpl" / "SMPL_NEUTRAL.pkl").stat().st_mtime_ns
    assert standin_folder() == folder
    assert (folder / "smpl" / "SMPL_NEUTRAL.pkl").stat().st_mtime_ns == mtime  # not rewritten
    path.write_bytes(good[:1000])  # truncated / corrupted
    assert standin_folder() == folder and path.read_bytes() == good
    # the files hold plain arrays only
    assert _globals(good) <= _PLAIN


def test_load_body_model_as_smplx() -> None:
    model = load_body_model(as_smplx=True, batch_size=2)
    assert isinstance(model, smplx.SMPL) and model.betas.shape == (2, 10)
    model.reset_params(global_orient=torch.ones(2, 3) * 0.1)
    assert torch.allclose(model.global_orient, torch.full((2, 3), 0.1))
    assert model.faces_tensor.shape[1] == 3
    with pytest.raises(TypeError, match="as_smplx"):
        load_body_model(batch_size=2)
    # the folder is also an ordinary model folder for our own loader (smplx's default landmark
    # table applies to its 6890 vertices), and a user path goes through as_smplx too
    kw = {"global_orient": torch.full((1, 3), 0.2), "body_pose": torch.full((1, 63), 0.1)}
    ours = load_body_model()(**kw).model_joints
    folder = load_body_model(standin_folder())
    assert folder.num_vertices == SMPL_NUM_VERTICES
    assert torch.allclose(folder(**kw).model_joints, ours, atol=1e-6)
    plain = load_body_model(standin_folder(), as_smplx=True, gender="female")
    pose69 = torch.cat([kw["body_pose"], torch.zeros(1, 6)], 1)
    out = plain(global_orient=kw["global_orient"], body_pose=pose69).joints
    assert torch.allclose(out, ours, atol=1e-5)


def test_gan_prior_roundtrip_still_plain() -> None:
    # PosePrior.decode projects by default: a raw off-manifold z decodes like LatentPose's pose
    prior = PosePrior().eval()
    z = 5 * torch.randn(4, 32, generator=torch.Generator().manual_seed(0))
    lp = LatentPose(prior, 4, init=z)
    assert torch.equal(lp(), prior.decode(z))


# --- what VPoser users pass by habit ---------------------------------------------------------


class _Marker:
    """Unpickling this runs code (creates a file); a loader that opens the file would show it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_vposer_folder_or_snapshot_is_refused_clearly_and_never_unpickled(
    tmp_path, version: str
) -> None:
    """A user who swaps only the import keeps passing VPoser's experiment folder (v1: an ``.ini``
    and ``snapshots/*.pt``; v2: a ``.yaml`` and ``snapshots/*.ckpt``) or its snapshot file: the
    error says what it is and what to pass, and the pickle inside is never opened."""
    from advprior.errors import ModelNotFoundError

    expr = tmp_path / "V02_05"
    (expr / "snapshots").mkdir(parents=True)
    settings, snap = (
        ("TR00.ini", "TR00_E096.pt") if version == "v1" else ("V02_05.yaml", "e13.ckpt")
    )
    (expr / settings).write_text("latentD: 32\n")
    marker = tmp_path / "unpickled"
    (expr / "snapshots" / snap).write_bytes(pickle.dumps(_Marker(str(marker))))
    loader = load_vposer if version == "v1" else load_model
    for arg in (expr, str(expr / "snapshots" / snap)):
        with pytest.raises(ModelNotFoundError, match=r"VPoser.*alias \('gan-s', 'vae'"):
            loader(arg)
    assert not marker.exists()


def test_an_advprior_weights_file_points_to_its_folder(tmp_path) -> None:
    from advprior.errors import ModelNotFoundError

    folder = tmp_path / "ckpt"
    load_pretrained("vae").save_pretrained(folder)
    with pytest.raises(ModelNotFoundError, match=rf"pass the checkpoint directory {folder}$"):
        load_vposer(folder / "model.safetensors")


def test_loading_a_users_own_prior_leaves_it_trainable() -> None:
    mine = load_pretrained("gan-s").requires_grad_(True).train()
    vposer, _ = load_vposer(mine)
    assert mine.training and all(p.requires_grad for p in mine.parameters())
    assert not vposer.prior.training and not any(p.requires_grad for p in vposer.parameters())
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    # the copy decodes as the user's module does in eval mode
    expected = mine.eval().decode(vposer.latent(z), output="rotmat", project=False)
    assert torch.equal(vposer.decode_rotmat(z), expected)


@pytest.mark.parametrize("alias", ["gan-s", "vae"])
def test_empty_batches_pass_through_every_method(alias: str) -> None:
    vp, _ = load_model(alias)
    assert vp.encode(torch.zeros(0, 63)).mean.shape == (0, 32)
    assert vp(torch.zeros(0, 21, 3))["pose_body"].shape == (0, 21, 3)
    assert vp.decode(torch.zeros(0, 32))["pose_body_matrot"].shape == (0, 21, 9)
    with pytest.raises(ValueError, match="B x 63"):
        vp.encode(torch.zeros(2, 62))


# -- an adapter's state dict records its chart ---------------------------------------------------


def _adapter(latent: str, seed: int = 0, version: int = 2) -> torch.nn.Module:
    from advprior.compat import VPoserV1, VPoserV2

    torch.manual_seed(seed)
    prior = PosePrior(latent=latent, hidden_dim=16).eval()
    return (VPoserV2 if version == 2 else VPoserV1)(prior)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize(("saved", "loaded"), [("sphere", "uniform"), ("uniform", "normal")])
def test_an_adapter_state_dict_of_another_latent_kind_is_refused(
    saved: str, loaded: str, version: int
) -> None:
    # The chart's kind is a constructor value, not a tensor: a gan-s adapter's state dict (its
    # prior's weights and the sphere's centre, same shapes as gan-u's) loaded into a gan-u
    # adapter silently, which then decoded every z through the cube's map (5 rad apart).
    from advprior.errors import PriorMismatchError

    state = _adapter(saved, version=version).state_dict()
    assert "chart._extra_state" in state
    target = _adapter(loaded, seed=1, version=version)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(PriorMismatchError, match="they differ in: chart") as err:
        target.load_state_dict(state)
    assert repr(saved) in str(err.value) and repr(loaded) in str(err.value)
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key]), key  # the prior kept its weights
    # held by a user's module, under a prefix; and strict=False refuses too
    outer = torch.nn.ModuleDict({"vposer": target})
    with pytest.raises(PriorMismatchError, match="at 'vposer'"):
        outer.load_state_dict({f"vposer.{k}": v for k, v in state.items()}, strict=False)
    # a chart alone (built for a user's own loop) refuses another chart's record as well
    with pytest.raises(PriorMismatchError, match="they differ in: chart"):
        target.chart.load_state_dict(
            {k[len("chart.") :]: v for k, v in state.items() if k.startswith("chart.")}
        )


def test_an_adapter_state_dict_of_the_same_kind_loads_through_torch_save_and_safetensors(
    tmp_path,
) -> None:
    from safetensors.torch import load_file, save_file

    saved = _adapter("sphere")
    z = torch.randn(4, 32, generator=torch.Generator().manual_seed(0))
    want = saved.decode(z)["pose_body"]
    torch.save(saved.state_dict(), tmp_path / "vposer.pt")
    save_file(saved.state_dict(), tmp_path / "vposer.safetensors")
    for state in (
        torch.load(tmp_path / "vposer.pt", weights_only=True),
        load_file(tmp_path / "vposer.safetensors"),
    ):
        other = _adapter("sphere", seed=3)  # same kind, other weights: they are replaced
        other.load_state_dict(state)
        assert torch.equal(other.decode(z)["pose_body"], want)


def test_an_adapter_state_dict_saved_before_the_chart_record_still_loads() -> None:
    # state dicts written by earlier versions have no chart._extra_state: they load, strictly
    saved = _adapter("uniform")
    old = {k: v for k, v in saved.state_dict().items() if k != "chart._extra_state"}
    target = _adapter("uniform", seed=2)
    result = target.load_state_dict(old)
    assert not result.missing_keys and not result.unexpected_keys
    z = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(target.decode(z)["pose_body"], saved.decode(z)["pose_body"])


def test_a_malformed_chart_record_is_refused() -> None:
    import json

    from advprior.errors import PriorMismatchError

    state = _adapter("sphere").state_dict()
    good = json.loads(bytes(state["chart._extra_state"].tolist()))
    assert good == {"chart": "sphere", "dim": 32, "scale": 2.0}
    for bad in (
        torch.zeros(3),
        torch.tensor(list(b"not json"), dtype=torch.uint8),
        torch.tensor(list(json.dumps({**good, "chart": "cube"}).encode()), dtype=torch.uint8),
        torch.tensor(list(json.dumps({**good, "dim": "32"}).encode()), dtype=torch.uint8),
        torch.tensor(list((json.dumps(good) + " " * 300).encode()), dtype=torch.uint8),
    ):
        with pytest.raises(PriorMismatchError, match="not a latent chart record"):
            _adapter("sphere").load_state_dict({**state, "chart._extra_state": bad})
    # another scale (a chart built by hand) is another chart
    hand = LatentChart("sphere", torch.ones(32), 1.0)
    with pytest.raises(PriorMismatchError, match="they differ in: scale"):
        hand.load_state_dict(_adapter("sphere").chart.state_dict())


def test_an_adapter_with_a_chart_of_the_callers_own_loads_its_state_dict() -> None:
    # a chart module of one's own (LatentChart's interface, as benchmarks/vposer_learned_chart)
    # records nothing: its adapter loads its own state dicts, and a LatentChart adapter's is
    # torch's missing-key error, not an AttributeError from the record check
    from advprior.compat import VPoserV2

    class OwnChart(torch.nn.Module):
        kind, dim, scale = "sphere", 32, 2.0

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(32, 32)

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            x = self.linear(z)
            return x / x.norm(dim=-1, keepdim=True)

    prior = PosePrior(hidden_dim=16).eval()
    own = VPoserV2(prior, chart=OwnChart())
    VPoserV2(prior, chart=OwnChart()).load_state_dict(own.state_dict())
    with pytest.raises(RuntimeError, match="Missing key"):
        VPoserV2(prior, chart=OwnChart()).load_state_dict(VPoserV2(prior).state_dict())


def test_encode_inside_a_loss_closure_takes_long_rotation_vectors(v1) -> None:
    # invert refuses rotation vectors longer than 4 pi as degrees at a user's boundary, but
    # encode runs inside other people's loss closures, where a line search's trial step can make
    # one that long: the same rotation, so encode must give its latent, not raise
    vposer, _ = v1
    short = vposer.sample_poses(2, seed=5).reshape(2, 21, 3)
    long = short.clone()
    axis = short[1, 4] / short[1, 4].norm()
    long[1, 4] = short[1, 4] + 4 * math.pi * axis  # a full two turns more: the same rotation
    assert long[1, 4].norm() > 4 * math.pi
    q_long = vposer.encode(long.reshape(2, 63)).mean
    q_short = vposer.encode(short.reshape(2, 63)).mean
    assert torch.isfinite(q_long).all()
    if vposer.prior.model_type == "gan":
        # the latent of that rotation: it reconstructs the pose as well as the short vector's
        # latent does (wrapping changes the input by float32 rounding, ~1e-6 rad, which the
        # inversion's L-BFGS steps may amplify to other nearby latents, hence no equality)
        target = vposer.aa2matrot(short.reshape(2, 63)).reshape(2, 21, 9)

        def error(q: torch.Tensor) -> float:
            back = vposer.decode(q, output_type="matrot").reshape(2, 21, 9)
            return float((back - target)[1].abs().mean())

        assert error(q_long) < max(2 * error(q_short), 0.01)
