"""The prior's pieces used as torch code inside a researcher's own model: second derivatives at
the zero pose, torch.func transforms, and building a fresh prior from a loaded one's config."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from advprior import rotations as rot
from advprior.hub import load_pretrained
from advprior.latent import check_latent
from advprior.prior import PosePrior

F64 = torch.float64


def _rodrigues_reference(v: torch.Tensor) -> torch.Tensor:
    """``exp(skew(v))`` by the matrix exponential's own series (no closed form): scaled to a
    norm below 1/2, 30 Taylor terms, squared back, in numpy's long double, so the reference
    does not depend on torch (torch 2.1's float64 matrix_exp is up to 8e-14 off)."""
    k = torch.zeros(*v.shape[:-1], 3, 3, dtype=F64)
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k = (k - k.transpose(-1, -2)).numpy().astype(np.longdouble)
    squarings = max(0, math.ceil(math.log2(max(float(np.abs(k).max()) * 3, 1e-300))) + 1)
    k = k / np.longdouble(2) ** squarings
    term = out = np.broadcast_to(np.eye(3, dtype=np.longdouble), k.shape).copy()
    for n in range(1, 31):
        term = term @ k / n
        out = out + term
    for _ in range(squarings):
        out = out @ out
    return torch.from_numpy(out.astype(np.float64))


def test_axis_angle_to_rotmat_has_exact_second_derivatives_at_zero() -> None:
    # R(v) = I + K + (v v^T - |v|^2 I) / 2 + O(|v|^3), so d2 R_kl / dv_i dv_j at 0 is
    # (d_ik d_jl + d_il d_jk) / 2 - d_kl d_ij; a first-order small-angle branch has none
    # (its double backward even gives NaN), which breaks Newton steps and Laplace fits of a
    # body at the zero pose, the default start.
    eye = torch.eye(3, dtype=F64)
    want = (
        0.5 * (eye[:, None, :, None] * eye[None, :, None, :])
        + 0.5 * (eye[:, None, None, :] * eye[None, :, :, None])
        - eye[:, :, None, None] * eye[None, None, :, :]
    )  # [k, l, i, j]
    got = torch.autograd.functional.hessian(
        lambda v: (rot.axis_angle_to_rotmat(v) * torch.arange(9.0, dtype=F64).view(3, 3)).sum(),
        torch.zeros(3, dtype=F64),
    )
    assert torch.allclose(got, (want * torch.arange(9.0, dtype=F64).view(3, 3, 1, 1)).sum((0, 1)))
    for scale in (0.0, 1e-9, 1e-4, 0.3, 2.0):
        v = (scale * torch.tensor([[0.6, -0.8, 0.3]], dtype=F64)).requires_grad_(True)
        assert torch.autograd.gradgradcheck(rot.axis_angle_to_rotmat, (v,))


def test_axis_angle_to_rotmat_is_accurate_across_angles() -> None:
    g = torch.Generator().manual_seed(0)
    axis = torch.nn.functional.normalize(torch.randn(64, 3, generator=g, dtype=F64), dim=-1)
    # around the series/closed-form switch, tiny angles, and up to and beyond pi
    angles = torch.tensor([0.0, 1e-12, 1e-6, 0.01, 0.3, 0.31, 0.32, 1.0, 3.0, math.pi, 5.0])
    v = (axis[:, None] * angles[:, None].to(F64)).reshape(-1, 3)
    ref = _rodrigues_reference(v)
    # a first-order small-angle branch is theta^2 / 2 = 5e-13 off at 1e-6
    assert (rot.axis_angle_to_rotmat(v) - ref).abs().max() < 16 * torch.finfo(F64).eps
    r32 = rot.axis_angle_to_rotmat(v.float()).double()
    assert (r32 - ref).abs().max() < 8 * torch.finfo(torch.float32).eps
    assert rot.axis_angle_to_rotmat(torch.zeros(2, 0, 3)).shape == (2, 0, 3, 3)
    assert rot.axis_angle_to_rotmat(torch.zeros(3)).shape == (3, 3)


@pytest.mark.parametrize(("dtype", "angle"), [(torch.float16, 30.0), (torch.float32, 1e5)])
def test_axis_angle_to_rotmat_gradients_finite_at_large_angles(
    dtype: torch.dtype, angle: float
) -> None:
    # The small-angle series must not be evaluated at a large theta^2 either: its degree-6
    # polynomial overflows there (half: (30^2)^5 / 4e7 > 65504; float32: (1e10)^5 / 4e7 >
    # 3.4e38), and torch.where's zero gradient for the unselected branch times inf is NaN. roma's
    # rotvec_to_rotmat, which this replaced, had finite gradients at any finite angle.
    axis = torch.nn.functional.normalize(torch.tensor([[0.6, -0.8, 0.3], [0.0, 0.0, 1.0]]), dim=-1)
    v = (angle * axis).to(dtype).requires_grad_(True)
    (grad,) = torch.autograd.grad(rot.axis_angle_to_rotmat(v).float().sum(), v)
    assert torch.isfinite(grad).all()
    # |d R / d v| <= |d R / d theta| + |d R / d axis| / theta <= 2 + 2 per entry, summed over 9
    assert grad.abs().max() <= 36.0


def test_body_model_hessian_at_the_zero_pose_is_finite() -> None:
    from advprior.body import load_body_model

    body = load_body_model().double()
    orient = torch.zeros(1, 3, dtype=F64)

    def energy(pose: torch.Tensor) -> torch.Tensor:
        return body(global_orient=orient, body_pose=pose[None]).joints.pow(2).sum()

    hess = torch.autograd.functional.hessian(energy, torch.zeros(63, dtype=F64))
    assert torch.isfinite(hess).all()
    assert torch.allclose(hess, hess.T, atol=1e-12)


@pytest.fixture(scope="module")
def prior() -> PosePrior:
    return PosePrior.from_pretrained("gan-s")


@pytest.mark.filterwarnings("error::UserWarning")  # vmap fallbacks warn
def test_interpolate_and_contains_run_under_vmap_and_on_meta(prior: PosePrior) -> None:
    # the endpoints' NaN/Inf check read values, which vmap refuses as "data-dependent control
    # flow": the whole transform failed on it
    z = prior.sample_latent(6, generator=torch.Generator().manual_seed(0))
    path = torch.func.vmap(lambda a, b: prior.interpolate(a, b, 5))(z[:3], z[3:])
    # the same elementwise arithmetic batched two ways: equal up to float32 rounding
    assert torch.allclose(path, prior.interpolate(z[:3], z[3:], 5), rtol=0, atol=1e-6)
    assert torch.equal(torch.func.vmap(prior.latent_space.contains)(z), torch.ones(6, dtype=bool))
    jac = torch.func.jacrev(lambda a: prior.interpolate(a, z[1], 5))(z[0])
    assert jac.shape == (5, 32, 32) and torch.isfinite(jac).all()
    meta = z.to("meta")
    assert prior.interpolate(meta[0], meta[1:], 4).shape == (5, 4, 32)
    # outside the transforms the check still raises
    with pytest.raises(ValueError, match="NaN or Inf"):
        prior.interpolate(z[0], torch.full((32,), float("nan")), 3)
    # only the transform's refusal skips the check: a sparse endpoint, whose isfinite torch
    # lacks, is torch's NotImplementedError as before, not a NaN let through
    with pytest.raises(NotImplementedError):
        check_latent(torch.full((32,), float("nan")).to_sparse(), 32)


@pytest.mark.parametrize("alias", ["gan-u", "vae", "gmm"])
def test_a_fresh_model_built_from_config_loads_a_saved_state_dict(alias: str) -> None:
    from advprior.hub import load_pretrained, model_class

    loaded = load_pretrained(alias)
    buf = io.BytesIO()
    torch.save(loaded.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    # config holds model_type and format_version beside the constructor arguments, so the
    # obvious ``type(loaded)(**loaded.config)`` is a TypeError
    fresh = model_class(loaded.config["model_type"]).from_config(loaded.config)
    assert type(fresh) is type(loaded)
    assert fresh.config == {k: v for k, v in loaded.config.items() if k != "training"}
    assert any(p.requires_grad for p in fresh.parameters()) or not list(fresh.parameters())
    fresh.load_state_dict(state)
    fresh.eval()
    poses = loaded.sample(3, generator=torch.Generator().manual_seed(0))
    again = fresh.sample(3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(poses, again)


def test_from_config_refuses_another_model_type() -> None:
    from advprior.baselines import VPoserVAE

    with pytest.raises(ValueError, match="'vae'.*PosePrior"):
        PosePrior.from_config(VPoserVAE().config)
    with pytest.raises(TypeError, match="hidden"):
        PosePrior.from_config({"hidden": 3})
    with pytest.raises(TypeError, match="dict"):
        PosePrior.from_config([("latent", "sphere")])


def test_a_prior_on_the_meta_device_gives_meta_starts(prior: PosePrior) -> None:
    # deferred initialisation: a user's model built on the meta device (then to_empty and
    # load_state_dict) holds LatentPose(init="typical") or a compat chart, which asked the
    # prior for its typical latent and failed copying values out of a meta tensor
    import copy

    from advprior import LatentPose
    from advprior.compat.chart import chart_for

    meta = copy.deepcopy(prior).to("meta")
    start = meta.typical_latent()
    assert start.device.type == "meta" and start.shape == (32,)
    assert meta.fit_starts(3).shape == (3, 32) and meta.fit_starts(3).device.type == "meta"
    pose = LatentPose(meta, 2, init="typical")
    assert pose().shape == (2, 63) and pose.z.device.type == "meta"
    assert chart_for(meta).centre.device.type == "meta"
    # the values come back with the state dict after to_empty
    real = LatentPose(prior, 2, init="typical")
    pose.to_empty(device="cpu").load_state_dict(real.state_dict())
    assert torch.equal(pose(), real())


@pytest.mark.parametrize("alias", ["gan-s", "vae", "gmm"])
def test_jit_script_says_to_trace_and_a_traced_prior_scripts_inside_a_module(alias: str) -> None:
    # torch.jit.script(prior) used to fail inside TorchScript's compiler on `config` (a dict
    # property it tried to compile), an error that named neither the cause nor what works.
    model = load_pretrained(alias)
    with pytest.raises(TypeError, match=r"torch\.jit\.script cannot compile .*torch\.jit\.trace"):
        torch.jit.script(model)

    class Holder(torch.nn.Module):  # a user's module with the prior inside
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    with pytest.raises(TypeError, match="torch.jit.script cannot compile"):
        torch.jit.script(Holder(model))
    if alias == "gmm":  # no decoder to trace
        return
    z = model.sample_latent(4, generator=torch.Generator().manual_seed(0))
    scripted = torch.jit.script(Holder(torch.jit.trace(model, z)))
    torch.testing.assert_close(scripted(z), model(z), rtol=0, atol=0)
