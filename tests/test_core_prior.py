"""PosePrior (decode, sample, project, interpolate, validation) and LatentPose optimisation."""

from __future__ import annotations

import subprocess
import sys

import pytest
import roma
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import advprior
import advprior.interface
from advprior import LatentPose, LatentSpace, PosePrior
from advprior.rotations import (
    axis_angle_to_rotmat,
    quat_to_rotmat,
    rot6d_to_rotmat,
)

OUTPUT_SHAPES = {"axis_angle": (63,), "rotmat": (21, 3, 3), "rot6d": (21, 6), "quat": (21, 4)}
SMPL_SHAPES = {"axis_angle": (69,), "rotmat": (23, 3, 3), "rot6d": (23, 6), "quat": (23, 4)}


@pytest.fixture(scope="module")
def prior() -> PosePrior:
    torch.manual_seed(0)
    return PosePrior().eval()


def _z(n: int = 6, seed: int = 0, dim: int = 32) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


# --- architecture ----------------------------------------------------------------------------


def test_generator_is_the_papers_mlp() -> None:
    g = PosePrior().generator
    kinds = [type(m) for m in g]
    assert kinds == [nn.Linear, nn.LeakyReLU, nn.Dropout, nn.Linear, nn.LeakyReLU, nn.Linear]
    assert (g[0].in_features, g[0].out_features) == (32, 512)
    assert (g[3].in_features, g[3].out_features) == (512, 512)
    assert (g[5].in_features, g[5].out_features) == (512, 126)
    assert g[1].negative_slope == g[4].negative_slope == 0.2 and g[2].p == 0.1
    p = PosePrior(latent="uniform")
    assert p.latent == "uniform" and p.latent_dim == 32
    assert p.latent_space == LatentSpace("uniform", 32)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"latent": "cube"}, "latent kind"),
        ({"latent_dim": 0}, "latent dim"),
        ({"num_joints": 22}, "num_joints"),
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"dropout": 1.0}, "dropout"),
        # float() of a string raised "could not convert string to float: 'x'", naming nothing
        ({"dropout": "x"}, "dropout must be a number"),
        ({"dropout": None}, "dropout must be a number"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PosePrior(**kwargs)


# --- decode -----------------------------------------------------------------------------------


@pytest.mark.parametrize("output", list(OUTPUT_SHAPES))
@pytest.mark.parametrize("lead", [(), (5,), (2, 3), (0,)])
def test_decode_shapes(prior: PosePrior, output: str, lead: tuple) -> None:
    z = torch.randn(*lead, 32)
    assert prior.decode(z, output=output).shape == (*lead, *OUTPUT_SHAPES[output])
    assert prior.decode(z, output=output, body="smplh").shape == (*lead, *OUTPUT_SHAPES[output])
    assert prior.decode(z, output=output, body="smpl").shape == (*lead, *SMPL_SHAPES[output])
    assert prior(z).shape == (*lead, 63)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 100.0))
def test_rotations_orthonormal_and_forms_agree(seed: int, scale: float) -> None:
    prior = PosePrior().eval()
    torch.manual_seed(1)
    z = _z(4, seed) * scale
    with torch.no_grad():
        r = prior.decode(z, output="rotmat").double()
        eye = torch.eye(3, dtype=torch.float64)
        assert torch.allclose(r @ r.transpose(-1, -2), eye.expand_as(r), atol=1e-5)
        assert torch.allclose(
            torch.linalg.det(r), torch.ones(4, 21, dtype=torch.float64), atol=1e-5
        )
        aa = prior.decode(z).reshape(4, 21, 3).double()
        assert aa.norm(dim=-1).max() <= torch.pi + 1e-5
        assert torch.allclose(axis_angle_to_rotmat(aa), r, atol=1e-4)
        q = prior.decode(z, output="quat").double()
        assert torch.allclose(q.norm(dim=-1), torch.ones(4, 21, dtype=torch.float64), atol=1e-5)
        assert torch.allclose(quat_to_rotmat(q), r, atol=1e-4)
        assert torch.allclose(
            rot6d_to_rotmat(prior.decode(z, output="rot6d").double()), r, atol=1e-5
        )


def test_rotmat_is_the_gram_schmidt_of_the_generator(prior: PosePrior) -> None:
    z = _z()
    raw = prior.generator(z).reshape(6, 21, 6)
    assert torch.equal(prior.decode(z, output="rotmat", project=False), rot6d_to_rotmat(raw))
    # the same rotations as roma's single pass, to float32 rounding. Error analysis: e1 = a/|a|
    # is within a few eps in both routes. e2 = normalise(b - (e1.b) e1) cancels the part of b
    # along a: the rounding of the dot product and subtraction (~3 eps |b|) is divided by
    # |b_perp| = |b| sin(theta), theta the angle between the two 6D columns, so each route's e2
    # (and e3 = e1 x e2) is off by ~c eps / sin(theta) with c ~ 4 flops; our second projection
    # pass moves e2 by at most that much again. Hence an elementwise bound of
    # 16 eps / sin(theta) per matrix (an untrained generator emits small angles, where a fixed
    # atol=1e-6 fails on some CPUs).
    # compared with roma's Gram-Schmidt evaluated in float64, so only our route's error counts
    single = roma.special_gramschmidt(raw.double().reshape(6, 21, 3, 2))
    cols = raw.detach().double().reshape(6, 21, 3, 2)
    cos = torch.nn.functional.cosine_similarity(cols[..., 0], cols[..., 1], dim=-1)
    sin = (1 - cos**2).clamp_min(0).sqrt().clamp_min(1e-6)
    bound = 16 * torch.finfo(torch.float32).eps / sin
    diff = (rot6d_to_rotmat(raw).double() - single).detach().double().abs().amax(dim=(-1, -2))
    assert bool((diff <= bound).all()), (diff / bound).max()
    # nearly parallel 6D columns: float32 Gram-Schmidt needs the second pass to stay orthonormal
    # (an output of an untrained generator; row-major (3, 2) layout, columns at cos 0.99999)
    bad = torch.tensor([[0.5106153, 0.3207204, 1.2789385, 0.8005927, -0.4905859, -0.3083782]])

    def error(r: torch.Tensor) -> float:
        r = r.double()
        return (r @ r.transpose(-1, -2) - torch.eye(3, dtype=torch.float64)).abs().max().item()

    assert error(roma.special_gramschmidt(bad.reshape(1, 3, 2))) > 1e-5  # one pass is off here
    assert error(rot6d_to_rotmat(bad)) < 1e-6


def test_smpl_body_appends_identity_hands(prior: PosePrior) -> None:
    z = _z()
    smpl = prior.decode(z, body="smpl")
    # torch's vectorised atan2 and its scalar tail round differently, so the body joints may
    # move by an ulp when the hands lengthen the batch (angles <= pi: ulp <= 2.4e-7)
    assert torch.allclose(smpl[:, :63], prior(z), rtol=0, atol=1e-6)
    assert torch.equal(smpl[:, 63:], torch.zeros(6, 6))
    r = prior.decode(z, output="rotmat", body="smpl")
    assert torch.equal(r[:, :21], prior.decode(z, output="rotmat"))
    assert torch.equal(r[:, 21:], torch.eye(3).expand(6, 2, 3, 3))
    for output, identity in (("quat", [0.0, 0.0, 0.0, 1.0]), ("rot6d", [1.0, 0, 0, 1, 0, 0])):
        hands = prior.decode(z, output=output, body="smpl")[:, 21:]
        assert torch.equal(hands, torch.tensor(identity).expand_as(hands))


def test_a_23_joint_prior_serves_all_bodies() -> None:
    p = PosePrior(num_joints=23).eval()
    z = _z()
    full = p.decode(z, output="rotmat", body="smpl")
    assert full.shape == (6, 23, 3, 3)
    assert torch.equal(p.decode(z, output="rotmat", body="smplx"), full[:, :21])
    assert p(z).shape == (6, 63)


def test_gradients_reach_z_through_a_frozen_generator(prior: PosePrior) -> None:
    prior.requires_grad_(False)
    z = _z().requires_grad_(True)
    prior(z).square().sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert all(p.grad is None for p in prior.parameters())


def test_float64_model(prior: PosePrior) -> None:
    p = PosePrior().double().eval()
    z = _z().double()
    assert p(z).dtype == torch.float64
    assert p.sample_latent(3).dtype == torch.float64


@pytest.mark.parametrize(
    "z, error, match",
    [
        (torch.zeros(4, 31), ValueError, r"\(\.\.\., 32\)"),
        (torch.zeros(4, 32, dtype=torch.int64), TypeError, "floating-point"),
        (torch.zeros(32).numpy(), TypeError, "torch.Tensor"),
    ],
)
def test_bad_latents(prior: PosePrior, z: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        prior(z)
    with pytest.raises(error, match=match):
        prior.decode(z, output="rotmat")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("project", [True, False])
def test_non_finite_latents_propagate_without_raising(
    prior: PosePrior, bad: float, project: bool
) -> None:
    # an optimiser's line search may try such a step: it must get NaN back, not an exception
    z = _z()
    z[1, 3] = bad
    z.requires_grad_(True)
    out = prior.decode(z, project=project)
    assert not bool(torch.isfinite(out[1]).all())
    # the other rows are untouched (same batch shape, so the same kernels: bitwise)
    ref = prior.decode(_z(), project=project)
    rows = [0, 2, 3, 4, 5]
    assert torch.equal(out[rows], ref[rows])
    out[0].sum().backward()
    assert bool(torch.isfinite(z.grad[0]).all())


def test_dtype_mismatch_is_a_clear_error(prior: PosePrior) -> None:
    with pytest.raises(TypeError, match="torch.float64 but the prior's weights are torch.float32"):
        prior(_z().double())


def test_bad_output_and_body(prior: PosePrior) -> None:
    with pytest.raises(ValueError, match="output must be one of"):
        prior.decode(_z(), output="euler")
    with pytest.raises(ValueError, match="body must be one of"):
        prior.decode(_z(), body="mano")


# --- sampling, projection, interpolation ------------------------------------------------------


@pytest.mark.parametrize("latent", ["sphere", "uniform", "normal"])
def test_sample_reproducible_and_leaves_global_rng(latent: str) -> None:
    p = PosePrior(latent=latent).eval()
    state = torch.random.get_rng_state()
    a = p.sample(5, generator=torch.Generator().manual_seed(7))
    b = p.sample(5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a, b) and a.shape == (5, 63)
    z = p.sample_latent(100, generator=torch.Generator().manual_seed(7))
    assert z.shape == (100, 32) and bool(p.latent_space.contains(z).all())
    assert torch.equal(p.sample(5, generator=torch.Generator().manual_seed(7)), p(z[:5]))
    for output, shape in SMPL_SHAPES.items():
        assert p.sample(2, output=output, body="smpl").shape == (2, *shape)
    assert p.sample(0).shape == (0, 63)


def test_sphere_samples_unit_norm(prior: PosePrior) -> None:
    z = prior.sample_latent(1000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z.norm(dim=-1), torch.ones(1000), atol=1e-5)


def test_project_and_interpolate_delegate(prior: PosePrior) -> None:
    z = _z(2) * 5
    assert torch.allclose(prior.project(z).norm(dim=-1), torch.ones(2))
    path = prior.interpolate(z[0], z[1], 5)
    assert path.shape == (5, 32)
    assert torch.allclose(path.norm(dim=-1), torch.ones(5))
    assert prior.interpolate(z, z.flip(0), 4).shape == (2, 4, 32)
    assert prior(path).shape == (5, 63)


def test_invert_and_project_pose_delegate_to_inversion(
    prior: PosePrior, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_invert(model, body_pose, return_error=False, **kw):
        calls.append((model, body_pose.shape, kw))
        z = model.project(torch.ones(*body_pose.shape[:-1], model.latent_dim))
        return (z, torch.zeros(z.shape[:-1])) if return_error else z

    monkeypatch.setattr(advprior.interface, "invert", fake_invert)
    pose = torch.zeros(3, 63)
    z = prior.invert(pose, steps=5)
    assert calls[-1] == (prior, (3, 63), {"steps": 5}) and z.shape == (3, 32)
    assert torch.equal(prior.project_pose(pose, restarts=2), prior(z))
    assert calls[-1][2] == {"restarts": 2}
    assert torch.equal(prior.project_pose(pose, return_error=True), prior(z))
    assert prior.project_pose(torch.zeros(3, 69)).shape == (3, 69)
    with pytest.raises(TypeError, match="body_pose"):
        prior.project_pose([0.0] * 63)


# --- LatentPose -------------------------------------------------------------------------------


def _target(prior: PosePrior, n: int) -> torch.Tensor:
    with torch.no_grad():
        z = prior.sample_latent(n, generator=torch.Generator().manual_seed(99))
        return prior.decode(z, output="rotmat")


@pytest.mark.parametrize("latent", ["sphere", "uniform", "normal"])
@pytest.mark.parametrize("optimiser", ["adam", "lbfgs"])
def test_latent_pose_optimisation_reduces_loss_on_manifold(latent: str, optimiser: str) -> None:
    torch.manual_seed(0)
    prior = PosePrior(latent=latent, hidden_dim=64).eval().requires_grad_(False)
    target = _target(prior, 4)
    lp = LatentPose(prior, 4)

    def loss_fn() -> torch.Tensor:
        # a rotation-matrix loss: smooth, unlike axis-angle near pi
        return (lp(output="rotmat") - target).square().sum()

    start = loss_fn().item()
    if optimiser == "adam":
        opt = torch.optim.Adam(lp.parameters(), lr=0.05)
        for _ in range(100):
            opt.zero_grad()
            loss_fn().backward()
            opt.step()
    else:
        opt = torch.optim.LBFGS(lp.parameters(), max_iter=50, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        opt.step(closure)
    assert loss_fn().item() < 0.2 * start
    z = lp.latent()
    assert bool(prior.latent_space.contains(z).all())
    # the raw latent decodes bitwise to the fitted pose (decode projects by default)
    assert torch.equal(lp(), prior(lp.z))


def test_latent_pose_init_and_errors(prior: PosePrior) -> None:
    state = torch.random.get_rng_state()
    a, b = LatentPose(prior, 3), LatentPose(prior, 3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.z, b.z) and a.z.shape == (3, 32)
    assert bool(prior.latent_space.contains(a.latent()).all())
    init = _z(3)
    c = LatentPose(prior, 3, init=init)
    assert torch.equal(c.z.detach(), init) and c.z is not init
    assert torch.equal(LatentPose(prior, 3, init=init[0]).z.detach(), init[0].expand(3, 32))
    assert c().shape == (3, 63) and c(body="smpl").shape == (3, 69)
    assert c(output="rotmat").shape == (3, 21, 3, 3)
    assert LatentPose(prior, 0)().shape == (0, 63)
    with pytest.raises(ValueError, match=r"\(3, 32\)"):
        LatentPose(prior, 3, init=_z(2))
    with pytest.raises(TypeError, match="floating-point"):
        LatentPose(prior, 3, init=torch.zeros(3, 32, dtype=torch.int32))
    with pytest.raises(TypeError, match="PosePrior"):
        LatentPose(nn.Linear(2, 2), 3)
    with pytest.raises(ValueError, match="batch_size"):
        LatentPose(prior, -1)


def test_latent_pose_keeps_the_prior_in_eval_mode_when_its_owner_trains() -> None:
    torch.manual_seed(0)
    prior = PosePrior(latent="sphere").eval()
    owner = nn.ModuleDict({"pose": LatentPose(prior, 3)}).train()  # e.g. a Lightning module
    assert owner.training and owner["pose"].training and not prior.training
    # no dropout: the same z gives the same pose, the one prior.decode(z) gives
    assert torch.equal(owner["pose"](), owner["pose"]())
    assert torch.equal(owner["pose"](), prior.decode(owner["pose"].z))


def test_latent_pose_trains_only_z_when_prior_frozen(prior: PosePrior) -> None:
    prior.requires_grad_(False)
    lp = LatentPose(prior, 2)
    trainable = [p for p in lp.parameters() if p.requires_grad]
    assert len(trainable) == 1 and trainable[0] is lp.z


# --- package surface --------------------------------------------------------------------------


def test_import_is_light_and_exports() -> None:
    code = (
        "import sys, advprior; "
        "heavy = [m for m in ('matplotlib', 'sklearn', 'smplx', 'scipy') if m in sys.modules]; "
        "print(advprior.__version__, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0.2.0", "[]"]
    for name in ("PosePrior", "LatentPose", "LatentSpace", "load_pretrained", "__version__"):
        assert name in advprior.__all__ and hasattr(advprior, name)
    with pytest.raises(AttributeError, match="no attribute"):
        advprior.does_not_exist  # noqa: B018


def test_lazy_exports_resolve_to_their_modules() -> None:
    import importlib

    for name, module in (
        ("LatentHead", "advprior.head"),
        ("load_body_model", "advprior.body"),
        ("fit_keypoints", "advprior.fitting"),
    ):
        assert getattr(advprior, name) is getattr(importlib.import_module(module), name)
        assert name in dir(advprior)


# -- a LatentPose's state dict records its latent space ------------------------------------------


@pytest.mark.parametrize(("saved", "loaded"), [("uniform", "sphere"), ("normal", "uniform")])
def test_a_latent_pose_state_dict_of_another_latent_kind_is_refused(
    saved: str, loaded: str
) -> None:
    # z and the prior's weights have the same shapes on every kind: a GAN-U fit loaded silently
    # into a LatentPose on GAN-S, whose projection decoded each z to another pose (5 rad apart)
    from advprior.errors import PriorMismatchError

    torch.manual_seed(0)
    fitted = LatentPose(PosePrior(latent=saved, hidden_dim=16).eval(), 3)
    target = LatentPose(PosePrior(latent=loaded, hidden_dim=16).eval(), 3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(PriorMismatchError, match=f"latent {saved!r} dim 32, but .* {loaded!r}"):
        target.load_state_dict(fitted.state_dict())
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key]), key
    outer = torch.nn.ModuleDict({"fit": target})
    with pytest.raises(PriorMismatchError, match="at 'fit'"):
        outer.load_state_dict({f"fit.{k}": v for k, v in fitted.state_dict().items()}, False)


def test_a_latent_pose_state_dict_of_the_same_kind_round_trips(tmp_path) -> None:
    import json

    from safetensors.torch import load_file, save_file

    from advprior.errors import PriorMismatchError

    torch.manual_seed(0)
    fitted = LatentPose(PosePrior(latent="sphere", hidden_dim=16).eval(), 3)
    state = fitted.state_dict()
    assert json.loads(bytes(state["_extra_state"].tolist())) == {
        "latent": "sphere",
        "latent_dim": 32,
    }
    torch.save(state, tmp_path / "fit.pt")
    save_file(state, tmp_path / "fit.safetensors")
    for reloaded in (
        torch.load(tmp_path / "fit.pt", weights_only=True),
        load_file(tmp_path / "fit.safetensors"),
        # saved before the record existed: loads, strictly
        {k: v for k, v in state.items() if k != "_extra_state"},
    ):
        again = LatentPose(PosePrior(latent="sphere", hidden_dim=16).eval(), 3)
        result = again.load_state_dict(reloaded)
        assert not result.missing_keys and not result.unexpected_keys
        with torch.no_grad():
            assert torch.equal(again(), fitted())
    bad = {**state, "_extra_state": torch.tensor(list(b'{"latent": 1}'), dtype=torch.uint8)}
    with pytest.raises(PriorMismatchError, match="not a latent record"):
        LatentPose(PosePrior(latent="sphere", hidden_dim=16).eval(), 3).load_state_dict(bad)
