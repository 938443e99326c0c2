"""advprior.rotations against roma in float64: 6D -> matrix / axis-angle / quaternion, and matrix
-> axis-angle / quaternion, near 0 and near pi, on both kernel paths, with finite gradients."""

from __future__ import annotations

import math

import pytest
import roma
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from advprior import rotations as rot
from advprior.prior import PosePrior
from advprior.version import cpu_float16_matmul

# Sizes that take the vector kernels (few rotations) and the component kernels (many).
SIZES = (1, rot._COMPONENT_MIN + 3)
F64 = torch.float64


def _tile(x: torch.Tensor, n: int) -> torch.Tensor:
    """``x`` ``(k, ...)`` repeated to ``n`` rows: the kernel path is picked by the row count."""
    reps = -(-n // x.shape[0])
    return x.repeat(reps, *([1] * (x.ndim - 1)))[:n]


def _same_rotation_vector(aa: torch.Tensor, rv: torch.Tensor, atol: float) -> torch.Tensor:
    """At angle pi, ``n pi`` and ``-n pi`` are the same rotation; elsewhere the vector is unique."""
    near_pi = rv.norm(dim=-1) > math.pi - 1e-6
    err = (aa - rv).norm(dim=-1)
    err = torch.where(near_pi, torch.minimum(err, (aa + rv).norm(dim=-1)), err)
    return err <= atol


sixd = st.lists(
    st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False), min_size=6, max_size=6
).filter(lambda v: sum(t * t for t in v[0::2]) > 1e-4)


@settings(max_examples=60, deadline=None)
@given(values=sixd, size=st.sampled_from(SIZES))
def test_from_6d_matches_roma_float64(values: list[float], size: int) -> None:
    x6 = torch.tensor(values, dtype=F64)
    cols = x6.reshape(3, 2)
    # skip (almost) parallel columns: Gram-Schmidt is ill-conditioned there for everyone
    assume(torch.linalg.cross(cols[:, 0], cols[:, 1], dim=0).norm() > 1e-6 * cols.norm() ** 2)
    x = _tile(x6[None], size)
    ref = roma.special_gramschmidt(x.reshape(-1, 3, 2))
    r = rot.rot6d_to_rotmat(x)
    assert torch.allclose(r, ref, atol=1e-10)
    aa = rot.rot6d_to_axis_angle(x)
    assert _same_rotation_vector(aa, roma.rotmat_to_rotvec(ref), 1e-9).all()
    assert torch.allclose(roma.rotvec_to_rotmat(aa), ref, atol=1e-10)
    q = rot.rot6d_to_quat(x)
    q_ref = roma.rotmat_to_unitquat(ref)
    assert (q[:, 3] >= 0).all()
    assert torch.minimum((q - q_ref).abs().amax(-1), (q + q_ref).abs().amax(-1)).max() < 1e-10
    assert torch.allclose(rot.rot6d_to(x, "rot6d"), rot.rotmat_to_rot6d(ref), atol=1e-10)


axes = st.lists(st.floats(-1.0, 1.0), min_size=3, max_size=3).filter(
    lambda v: sum(t * t for t in v) > 1e-2
)
angles = st.one_of(
    st.just(0.0),
    st.floats(0.0, 1e-3),
    st.floats(1e-3, math.pi - 1e-3),
    st.floats(math.pi - 1e-3, math.pi),
    st.just(math.pi),
)


@settings(max_examples=80, deadline=None)
@given(axis=axes, angle=angles, size=st.sampled_from(SIZES))
def test_matrix_logarithm_near_0_and_pi(axis: list[float], angle: float, size: int) -> None:
    n = torch.tensor(axis, dtype=F64)
    rv = _tile((n / n.norm() * angle)[None], size)
    r = roma.rotvec_to_rotmat(rv)
    aa = rot.rotmat_to_axis_angle(r)
    # float64: the angle and axis come back to a few ulps at every angle, pi included
    assert _same_rotation_vector(aa, rv, 1e-12).all()
    assert (aa.norm(dim=-1) <= math.pi + 1e-12).all()
    q = rot.rotmat_to_quat(r)
    q_ref = roma.rotvec_to_unitquat(rv)
    close = torch.minimum((q - q_ref).abs().amax(-1), (q + q_ref).abs().amax(-1))
    assert (close < 1e-12).all() and (q[:, 3] >= 0).all()
    # through 6D too
    assert _same_rotation_vector(rot.rot6d_to_axis_angle(rot.rotmat_to_rot6d(r)), rv, 1e-12).all()


@pytest.mark.parametrize("size", SIZES)
def test_float32_accuracy_is_a_few_ulps(size: int) -> None:
    g = torch.Generator().manual_seed(0)
    n = torch.nn.functional.normalize(torch.randn(size, 3, generator=g, dtype=F64), dim=-1)
    theta = torch.rand(size, 1, generator=g, dtype=F64) * math.pi
    theta[: size // 4] = math.pi - theta[: size // 4] * 1e-4  # near pi
    rv = n * theta
    r = roma.rotvec_to_rotmat(rv)
    aa = rot.rotmat_to_axis_angle(r.float()).double()
    # float32 rounding of R (~6e-8) moves the rotation by about that much: allow 16 ulps of pi
    err = roma.rotmat_geodesic_distance(roma.rotvec_to_rotmat(aa), r)
    assert err.max() < 16 * torch.finfo(torch.float32).eps * math.pi
    q = rot.rotmat_to_quat(r.float()).double()
    assert roma.rotmat_geodesic_distance(roma.unitquat_to_rotmat(q), r).max() < 1e-5


GRAD_POINTS = [
    [0.0, 0.0, 0.0],  # the identity: 0/0 in theta / sin(theta)
    [0.0, 3e-9, 0.0],
    [2e-5, 0.0, 1e-5],
    [0.3, -0.2, 0.4],
    [0.0, 0.0, math.pi / 2],
    [0.0, math.pi - 1e-3, 0.0],
    [1.0, 1.0, 1.0],  # near the switch between the two largest diagonal entries
]


@pytest.mark.parametrize("point", GRAD_POINTS)
def test_gradients_match_finite_differences(point: list[float]) -> None:
    r = roma.rotvec_to_rotmat(torch.tensor([point], dtype=F64))
    x = rot.rotmat_to_rot6d(r).clone().requires_grad_(True)
    for fn in (rot.rot6d_to_rotmat, rot.rot6d_to_axis_angle, rot.rot6d_to_quat):
        assert torch.autograd.gradcheck(fn, (x,), eps=1e-7, atol=1e-5)


@pytest.mark.parametrize("size", SIZES)
def test_gradients_finite_everywhere_including_pi(size: int) -> None:
    points = [*GRAD_POINTS, [0.0, 0.0, math.pi], [math.pi, 0.0, 0.0], [0.0, 1e-30, 0.0]]
    r = _tile(roma.rotvec_to_rotmat(torch.tensor(points, dtype=F64)), size)
    for dtype in (torch.float32, F64):
        x = rot.rotmat_to_rot6d(r).to(dtype).requires_grad_(True)
        out = rot.rot6d_to_axis_angle(x).sum() + rot.rot6d_to_quat(x).sum()
        (grad,) = torch.autograd.grad(out, x)
        assert torch.isfinite(grad).all()
        m = r.to(dtype).requires_grad_(True)
        (grad,) = torch.autograd.grad(rot.rotmat_to_axis_angle(m).sum(), m)
        assert torch.isfinite(grad).all()


def test_both_kernel_paths_agree_with_gradients() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 6, generator=g, dtype=F64)
    big = _tile(x, rot._COMPONENT_MIN + 8)
    for output in ("rotmat", "axis_angle", "quat", "rot6d"):
        xs, xb = x.clone().requires_grad_(True), big.clone().requires_grad_(True)
        ys, yb = rot.rot6d_to(xs, output), rot.rot6d_to(xb, output)
        assert torch.allclose(ys, yb[:8], atol=1e-13)
        w = torch.randn(ys.shape, generator=g, dtype=F64)
        (gs,) = torch.autograd.grad((ys * w).sum(), xs)
        wb = torch.zeros(yb.shape, dtype=F64)
        wb[:8] = w
        (gb,) = torch.autograd.grad((yb * wb).sum(), xb)
        assert torch.allclose(gs, gb[:8], atol=1e-11)


@pytest.mark.parametrize("angle", [1e-6, 0.5, 2.0, math.pi - 1e-3, math.pi - 1e-5, math.pi])
def test_geodesic_distance_accurate_with_bounded_gradients_up_to_pi(angle: float) -> None:
    g = torch.Generator().manual_seed(3)
    axes = torch.nn.functional.normalize(torch.randn(64, 3, generator=g, dtype=F64), dim=-1)
    a = roma.rotvec_to_rotmat(torch.randn(64, 3, generator=g, dtype=F64))
    b = a @ roma.rotvec_to_rotmat(axes * angle)
    # float64: a few ulps at every angle (2 asin(|b - a| / 2 sqrt 2) lost half the digits near
    # pi, its derivative 2 / cos(theta / 2) amplifying the rounding: ~6e-8 at pi - 1e-5)
    assert float((rot.geodesic_distance(a, b) - angle).abs().max()) < 1e-13
    # float32: rounding the inputs (eps ~ 6e-8 per entry) moves a well-conditioned angle by a
    # few eps; through asin it moved by ~sqrt(eps) ~ 1e-3 rad near pi
    a32 = a.float().requires_grad_(True)
    d = rot.geodesic_distance(a32, b.float())
    assert float((d.detach().double() - angle).abs().max()) < 1e-6
    # the angle is 1-Lipschitz in the rotation: a gradient entry of order 1, not the ~1e3 asin's
    # derivative gave at the half turn (nor NaN)
    (grad,) = torch.autograd.grad(d.sum(), a32)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) < 2.0


def test_geodesic_distance_shapes_and_gradcheck() -> None:
    r = roma.rotvec_to_rotmat(torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(5)))
    assert rot.geodesic_distance(r, torch.eye(3)).shape == (2, 4)  # leading shapes broadcast
    assert rot.geodesic_distance(r[:0], r[:0]).shape == (0, 4)
    mixed = rot.geodesic_distance(r, r.double().flip(0))  # promoted, as roma's r2 - r1 was
    assert mixed.dtype == F64 and mixed.shape == (2, 4)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        rot.geodesic_distance(torch.zeros(3, 4), torch.eye(3))
    x, y = r.double()[0].requires_grad_(True), r.double()[1].requires_grad_(True)
    assert torch.autograd.gradcheck(rot.geodesic_distance, (x, y))


@pytest.mark.parametrize("size", SIZES)
def test_float16_identity_and_zero_columns_are_finite(size: int) -> None:
    # float16's range rounds the kernels' guards (1e-8, 1e-24) to 0: the identity gave 0 / 0
    half = torch.float16
    eye = torch.eye(3, dtype=half).expand(size, 3, 3).clone().requires_grad_(True)
    aa = rot.rotmat_to_axis_angle(eye)
    assert aa.dtype == half and bool((aa == 0).all())
    assert bool((rot.rotmat_to_quat(eye) == torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=half)).all())
    (grad,) = torch.autograd.grad(aa.sum() + rot.rotmat_to_quat(eye).sum(), eye)
    assert torch.isfinite(grad).all()
    six = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0], dtype=half).repeat(size, 1)
    six.requires_grad_(True)
    out = rot.rot6d_to_axis_angle(six)
    assert bool((out == 0).all())
    (grad,) = torch.autograd.grad(out.sum() + rot.rot6d_to_quat(six).sum(), six)
    assert torch.isfinite(grad).all()
    # a zero 6D column gives zeros, not NaN, as in float32
    assert torch.isfinite(rot.rot6d_to_axis_angle(torch.zeros(size, 6, dtype=half))).all()
    assert float(rot.geodesic_distance(eye.detach(), eye.detach()).abs().max()) == 0.0


@pytest.mark.parametrize("size", SIZES)
def test_float16_results_are_the_exact_map_rounded_once(size: int) -> None:
    # Against the float64 map of the same (rounded) input, so only the output's rounding is
    # left: matrix entries in [-1, 1] are off by at most half an ulp at 1 (eps / 2), and a
    # rotation vector by eps / 2 per unit of its length (<= pi), which moves its rotation by
    # no more (exp is 1-Lipschitz). Computed in float16 throughout, they were off by ~5 eps.
    eps = torch.finfo(torch.float16).eps
    x = torch.randn(size, 6, generator=torch.Generator().manual_seed(7), dtype=F64).half()
    exact = rot.rot6d_to_rotmat(x.double())
    err = (rot.rot6d_to_rotmat(x).double() - exact).abs().max()
    assert float(err) <= eps / 2 + 1e-6
    aa = rot.rot6d_to_axis_angle(x).double()
    angle = rot.geodesic_distance(rot.axis_angle_to_rotmat(aa), exact)
    assert float(angle.max()) <= math.pi * eps / 2 + 1e-5
    aa = rot.rotmat_to_axis_angle(exact.half()).double()
    rounded = rot.rotmat_to_axis_angle(exact.half().double())
    assert float((aa - rounded).abs().max()) <= math.pi * eps / 2 + 1e-5


def test_float16_rotation_vectors_and_quaternions_to_matrices() -> None:
    # entries in [-1, 1] rounded once: at most eps / 2 from the float64 map of the same input.
    # In float16 throughout, theta^2 overflowed beyond 256 rad (NaN) and 1-3 rad were off by
    # 3-6 eps (theta's own rounding, eps / 2 relative, times the angle).
    eps = torch.finfo(torch.float16).eps
    g = torch.Generator().manual_seed(8)
    scale = torch.tensor([0.3, 3.0, 200.0], dtype=F64).repeat(667)[:, None]  # radians
    aa = (torch.randn(2001, 3, generator=g, dtype=F64) * scale).half().requires_grad_(True)
    out = rot.axis_angle_to_rotmat(aa)
    exact = rot.axis_angle_to_rotmat(aa.detach().double())
    assert out.dtype == torch.float16
    assert float((out.detach().double() - exact).abs().max()) <= eps / 2 + 1e-6
    (grad,) = torch.autograd.grad(out.float().sum(), aa)
    assert torch.isfinite(grad).all()
    q = torch.nn.functional.normalize(torch.randn(100, 4, generator=g, dtype=F64), dim=-1).half()
    err = (rot.quat_to_rotmat(q).double() - rot.quat_to_rotmat(q.double())).abs().max()
    assert rot.quat_to_rotmat(q).dtype == torch.float16 and float(err) <= eps / 2 + 1e-6


def test_a_float16_prior_decodes_the_smpl_hand_joints_as_rest() -> None:
    # the hand joints are identity rotations: NaN in float16 before (a batch under 1024 joints)
    if not cpu_float16_matmul():  # torch 2.1: "addmm_impl_cpu_" not implemented for 'Half'
        pytest.skip("this torch has no float16 matrix product on the CPU")
    prior = PosePrior().half().eval()
    z = prior.sample_latent(4, generator=torch.Generator().manual_seed(0))
    pose = prior.decode(z, body="smpl")
    assert pose.dtype == torch.float16 and bool((pose[:, 63:] == 0).all())
    assert torch.isfinite(pose).all()


def test_shapes_and_bad_input() -> None:
    assert rot.rot6d_to_rotmat(torch.zeros(2, 5, 6)).shape == (2, 5, 3, 3)
    assert rot.rot6d_to_axis_angle(torch.zeros(0, 6)).shape == (0, 3)
    assert rot.rotmat_to_quat(torch.eye(3)).shape == (4,)
    with pytest.raises(ValueError, match=r"\(\.\.\., 6\)"):
        rot.rot6d_to_rotmat(torch.zeros(3, 9))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        rot.rotmat_to_axis_angle(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="output"):
        rot.rot6d_to(torch.zeros(1, 6), "euler")
    # these two reshaped or indexed such inputs into a result of the wrong rotations
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        rot.rotmat_to_rot6d(torch.zeros(3, 9))  # three flattened matrices gave one (6,)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        rot.quat_to_rotmat(torch.zeros(5, 6))  # a 6D batch gave (5, 3, 3) matrices
    assert rot.rotmat_to_rot6d(torch.eye(3)).shape == (6,)
    # a zero first column gives zeros, not NaN
    assert torch.isfinite(rot.rot6d_to_axis_angle(torch.zeros(1, 6))).all()


@pytest.mark.parametrize(
    ("function", "value", "name"),
    [
        (rot.rot6d_to_rotmat, torch.tensor([[1, 0, 0, 1, 0, 0]]), "x"),
        (rot.rotmat_to_axis_angle, torch.eye(3, dtype=torch.int64), "rotmat"),
        (rot.rotmat_to_rot6d, torch.eye(3, dtype=torch.int64), "rotmat"),
        (rot.axis_angle_to_rotmat, torch.tensor([1, 0, 0]), "aa"),
        (rot.quat_to_rotmat, torch.tensor([0, 0, 0, 1]), "quat"),
    ],
)
def test_numpy_and_integer_input_are_type_errors_naming_the_argument(
    function, value: torch.Tensor, name: str
) -> None:
    """As every input of advprior: integer tensors failed inside torch's kernels ("linalg.
    vector_norm: Expected a floating point ...") or passed as integers (rotmat_to_rot6d,
    axis_angle_to_rotmat), and numpy arrays were refused as "(..., (3,)), got <class ...>"."""
    with pytest.raises(TypeError, match=rf"^{name} must be a floating-point tensor .*int64"):
        function(value)
    with pytest.raises(TypeError, match=rf"^{name} must be a torch.Tensor .*torch.from_numpy"):
        function(value.float().numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("output", ["axis_angle", "rotmat", "rot6d", "quat"])
def test_prior_decode_follows_input_dtype(dtype: torch.dtype, output: str) -> None:
    torch.manual_seed(0)
    prior = PosePrior().to(dtype).eval()
    z = prior.sample_latent(3)
    out = prior.decode(z, output=output)
    assert out.dtype == dtype and out.device == z.device
    ref = PosePrior().eval()
    ref.load_state_dict(prior.state_dict())
    ref = ref.double()
    exact = ref.decode(z.double(), output=output)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    if output == "quat":  # q and -q: decode returns w >= 0 in both dtypes
        assert (out[..., 3] >= 0).all()
    assert torch.allclose(out.double(), exact, atol=tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vae_decode_and_sampling_follow_dtype(dtype: torch.dtype) -> None:
    from advprior.baselines import VPoserVAE

    torch.manual_seed(0)
    vae = VPoserVAE().to(dtype).eval()
    z = torch.randn(4, 32, dtype=dtype)
    for output, shape in (("axis_angle", (4, 63)), ("rotmat", (4, 21, 3, 3)), ("quat", (4, 21, 4))):
        out = vae.decode(z, output=output)
        assert out.dtype == dtype and out.shape == shape
    assert vae.sample(3, generator=torch.Generator().manual_seed(0)).dtype == dtype
    prior = PosePrior().to(dtype).eval()
    assert prior.sample(2, output="quat").dtype == dtype
    assert prior.project(torch.randn(2, 32, dtype=dtype)).dtype == dtype
