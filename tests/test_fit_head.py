"""LatentHead: features -> latent on the prior's manifold -> pose, prior frozen."""

from __future__ import annotations

import copy
import itertools
import json
import warnings

import pytest
import torch

from advprior.baselines import GMMPrior, VPoserVAE
from advprior.head import LatentHead
from advprior.prior import PosePrior
from advprior.version import cpu_float16_matmul, torch_version


@pytest.mark.parametrize("latent", ["sphere", "uniform", "normal"])
def test_latent_on_manifold_and_pose_shapes(latent: str) -> None:
    torch.manual_seed(0)
    head = LatentHead(16, PosePrior(latent=latent), hidden=32)
    feats = 3 * torch.randn(2, 5, 16)
    z = head.latent(feats).detach()
    assert z.shape == (2, 5, 32)
    if latent == "sphere":
        assert torch.allclose(z.norm(dim=-1), torch.ones(2, 5), atol=1e-5)
    if latent == "uniform":
        assert float(z.abs().max()) < 1.0
    pose = head(feats)
    assert pose.shape == (2, 5, 63)
    assert torch.allclose(pose, head.prior(z), atol=1e-6)
    assert head(feats, output="rotmat").shape == (2, 5, 21, 3, 3)


def test_only_the_head_trains_and_the_prior_stays_in_eval_mode() -> None:
    torch.manual_seed(0)
    prior = PosePrior(latent="sphere")
    before = {k: v.clone() for k, v in prior.state_dict().items()}
    head = LatentHead(8, prior).train()
    assert head.training and not head.prior.training
    assert all(not p.requires_grad for p in head.prior.parameters())
    feats = torch.randn(64, 8)
    with torch.no_grad():
        target = PosePrior(latent="sphere").eval().sample(64, generator=torch.Generator())
    opt = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = ((head(feats) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for k, v in prior.state_dict().items():
        assert torch.equal(v, before[k]), k
    # Deterministic decoding (no dropout) even in training mode.
    assert torch.equal(head(feats), head(feats))


@pytest.mark.parametrize("prior", [PosePrior(latent="sphere"), VPoserVAE()], ids=["gan", "vae"])
def test_mixed_precision_training_step(prior) -> None:
    # torch.autocast makes the head's Linear hand bfloat16 latents to the float32 prior
    torch.manual_seed(0)
    head = LatentHead(8, prior).train()
    opt = torch.optim.SGD(head.net.parameters(), lr=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pose = head(torch.randn(5, 8))
        loss = pose.float().square().mean()
    assert pose.dtype == torch.bfloat16 and pose.shape == (5, 63)
    loss.backward()
    assert head.net.weight.grad is not None and torch.isfinite(head.net.weight.grad).all()
    opt.step()
    # outside autocast a bfloat16 latent is still the one-line dtype error
    with pytest.raises(TypeError, match="dtype torch.bfloat16 but the prior's weights"):
        prior.decode(torch.randn(2, 32, dtype=torch.bfloat16))


def test_works_with_the_vae_and_rejects_a_gmm() -> None:
    head = LatentHead(4, VPoserVAE())
    assert head(torch.randn(3, 4)).shape == (3, 63)
    with pytest.raises(TypeError, match="PosePrior"):
        LatentHead(4, GMMPrior())


def test_bad_input() -> None:
    head = LatentHead(4, PosePrior())
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        head(torch.randn(3, 5))
    with pytest.raises(TypeError, match="floating"):
        head(torch.ones(3, 4, dtype=torch.long))
    # float64 features (numpy's default) into a float32 head: torch's "mat1 and mat2 must have
    # the same dtype" named neither
    with pytest.raises(TypeError, match=r"features has dtype torch.float64 .*head.to\("):
        head(torch.randn(3, 4, dtype=torch.float64))
    assert head.double()(torch.randn(3, 4, dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match="in_features"):
        LatentHead(0, PosePrior())


# -- the state dict records the prior the head was trained for ---------------------------------


def _prior(latent: str = "sphere", latent_dim: int = 32, seed: int = 0) -> PosePrior:
    torch.manual_seed(seed)
    return PosePrior(latent=latent, latent_dim=latent_dim).eval()


def _trained_head(prior: PosePrior) -> LatentHead:
    torch.manual_seed(1)
    head = LatentHead(8, prior)
    with torch.no_grad():
        head.net.weight.normal_()
    return head


def test_record_names_the_prior_and_matches_the_checkpoint_sha256(tmp_path) -> None:
    from advprior.fileio import sha256_file

    prior = _prior("uniform")
    prior.save_pretrained(tmp_path)
    record = LatentHead(8, prior).prior_record()
    halves = {k: record.pop(k) for k in ("prior_sha256_float16", "prior_sha256_bfloat16")}
    fingerprint = record.pop("prior_fingerprint")
    assert record == {
        "prior": "PosePrior",
        "latent": "uniform",
        "latent_dim": 32,
        "prior_sha256": sha256_file(tmp_path / "model.safetensors"),
    }
    # the weights as a .half() / .bfloat16() copy of the prior holds them
    for key, dtype in (("prior_sha256_float16", "half"), ("prior_sha256_bfloat16", "bfloat16")):
        rounded = getattr(LatentHead(8, _prior("uniform")), dtype)().prior_record()
        assert rounded[key] == halves[key]
        assert rounded["prior_sha256"] != record["prior_sha256"]
    record.update(halves)
    record["prior_fingerprint"] = fingerprint
    # float32 whatever the prior's dtype, so .double() keeps the identity
    assert LatentHead(8, _prior("uniform").double()).prior_record() == record


@pytest.mark.parametrize(
    ("other", "named"),
    [
        (lambda: _prior("uniform"), "latent"),
        (lambda: _prior("sphere", latent_dim=16), "latent_dim"),
        (lambda: VPoserVAE(), "prior"),
    ],
    ids=["gan-u", "dim16", "vae"],
)
def test_loading_onto_another_prior_raises_before_changing_anything(other, named) -> None:
    from advprior.errors import PriorMismatchError

    state = _trained_head(_prior("sphere")).state_dict()
    head = LatentHead(8, other())
    before = {k: v.clone() for k, v in head.state_dict().items()}
    with pytest.raises(PriorMismatchError, match=rf"they differ in: {named}\b") as err:
        head.load_state_dict(state)
    assert "'sphere' dim 32" in str(err.value)  # both priors are named
    mine = head.prior_record()
    assert f"{mine['prior']} latent {mine['latent']!r} dim {mine['latent_dim']}" in str(err.value)
    for key, value in head.state_dict().items():
        assert torch.equal(value, before[key]), key
    # inside a model, torch loads module by module: the message promises only the head
    outer = torch.nn.Sequential(torch.nn.Linear(2, 2), head)
    saved = torch.nn.Sequential(torch.nn.Linear(2, 2), _trained_head(_prior("sphere")))
    with pytest.raises(PriorMismatchError, match="Nothing was loaded into the head"):
        outer.load_state_dict(saved.state_dict())
    assert torch.equal(outer[0].weight, saved[0].weight)  # the layer before it did load
    for key, value in head.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_other_weights_are_refused_unless_the_state_dict_carries_the_prior() -> None:
    from advprior.errors import PriorMismatchError

    trained = _trained_head(_prior(seed=0))
    state = trained.state_dict()
    layer_only = {k: v for k, v in state.items() if not k.startswith("prior.")}
    other = LatentHead(8, _prior(seed=1))
    with pytest.raises(PriorMismatchError, match="they differ in: weights"):
        other.load_state_dict(layer_only, strict=False)
    # the whole state dict is self-contained: it restores the prior it was trained for
    other.load_state_dict(state)
    feats = torch.randn(3, 8)
    assert torch.equal(other(feats), trained(feats))
    # on the right prior the layer alone loads too
    same = LatentHead(8, _prior(seed=0))
    same.load_state_dict(layer_only, strict=False)
    assert torch.equal(same(feats), trained(feats))
    # prior tensors edited after saving no longer match the record
    edited = dict(state)
    edited["prior.generator.0.bias"] = edited["prior.generator.0.bias"] + 1
    with pytest.raises(PriorMismatchError, match="edited after saving"):
        LatentHead(8, _prior(seed=0)).load_state_dict(edited)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_model_cast_to_half_precision_loads_the_layer_saved_on_either_side_of_the_cast(
    dtype: torch.dtype,
) -> None:
    # The layer alone (strict=False; the prior comes from from_pretrained) saved in float32 and
    # loaded into a model already cast with .half(), or saved from a .bfloat16() model and
    # loaded in float32: the prior is the same one rounded, and was refused as "other weights"
    # ("build the head on the prior it was trained for").
    from advprior.errors import PriorMismatchError

    def layer_only(head: LatentHead) -> dict[str, torch.Tensor]:
        return {k: v for k, v in head.state_dict().items() if not k.startswith("prior.")}

    trained = _trained_head(_prior(seed=0))
    cast = LatentHead(8, _prior(seed=0)).to(dtype)
    cast.load_state_dict(layer_only(trained), strict=False)
    assert torch.equal(cast.net.weight, trained.net.weight.to(dtype))
    # and cast back to float32: the rounded weights stay
    cast.float().load_state_dict(layer_only(trained), strict=False)
    saved_cast = copy.deepcopy(trained).to(dtype)
    back = LatentHead(8, _prior(seed=0))
    back.load_state_dict(layer_only(saved_cast), strict=False)
    assert torch.equal(back.net.weight, saved_cast.net.weight.float())
    # other weights are still told apart at half precision, both ways
    with pytest.raises(PriorMismatchError, match="they differ in: weights"):
        LatentHead(8, _prior(seed=1)).to(dtype).load_state_dict(layer_only(trained), strict=False)
    with pytest.raises(PriorMismatchError, match="they differ in: weights"):
        LatentHead(8, _prior(seed=1)).load_state_dict(layer_only(saved_cast), strict=False)


def test_a_state_dict_without_the_record_still_loads_with_a_warning() -> None:
    trained = _trained_head(_prior())
    legacy = {k: v for k, v in trained.state_dict().items() if k != "_extra_state"}
    head = LatentHead(8, _prior(seed=5))
    with pytest.warns(UserWarning, match="records no prior"):
        result = head.load_state_dict(legacy)  # strict: no missing '_extra_state'
    assert not result.missing_keys and not result.unexpected_keys
    feats = torch.randn(2, 8)
    assert torch.equal(head(feats), trained(feats))


def test_a_malformed_record_is_refused() -> None:
    from advprior.errors import PriorMismatchError

    state = _trained_head(_prior()).state_dict()
    state["_extra_state"] = torch.zeros(3)
    with pytest.raises(PriorMismatchError, match="not a prior record"):
        LatentHead(8, _prior()).load_state_dict(state)
    # the right keys with values of the wrong type (a hand-edited record) were a TypeError
    # from inside load_state_dict, or compared as if valid
    good = json.loads(bytes(_trained_head(_prior()).state_dict()["_extra_state"].tolist()))
    for key, bad in (
        ("prior_sha256", 123),
        ("prior_sha256", "abc"),
        ("latent_dim", "32"),
        ("prior_sha256_float16", "abc"),
        ("prior_fingerprint", {"layout": "x", "sums": [], "samples": []}),
        ("prior_fingerprint", {**good["prior_fingerprint"], "sums": [["1.0", 2.0, 3.0]]}),
        ("prior_fingerprint", {**good["prior_fingerprint"], "sums": [[1.0, 2.0]]}),
        ("prior_fingerprint", {**good["prior_fingerprint"], "samples": [0.1] * 65}),
    ):
        blob = json.dumps({**good, key: bad}).encode()
        state["_extra_state"] = torch.tensor(list(blob), dtype=torch.uint8)
        with pytest.raises(PriorMismatchError, match="not a prior record"):
            LatentHead(8, _prior()).load_state_dict(state)
    # a record padded past the bound is not parsed (a huge tensor would be read whole)
    blob = (json.dumps(good) + " " * 20000).encode()
    state["_extra_state"] = torch.tensor(list(blob), dtype=torch.uint8)
    with pytest.raises(PriorMismatchError, match="at most 16384 bytes"):
        LatentHead(8, _prior()).load_state_dict(state)


def test_record_survives_torch_save_weights_only_and_safetensors(tmp_path) -> None:
    import io

    from safetensors.torch import load_file, save_file

    from advprior.errors import PriorMismatchError

    state = _trained_head(_prior()).state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    save_file(state, tmp_path / "head.safetensors")
    from_safetensors = load_file(tmp_path / "head.safetensors")
    for reloaded in (loaded, from_safetensors):
        LatentHead(8, _prior()).load_state_dict(reloaded)
        with pytest.raises(PriorMismatchError):
            LatentHead(8, _prior("uniform")).load_state_dict(reloaded)


@pytest.mark.skipif(
    torch_version() < (2, 2), reason="torch 2.1: torch.compile of advprior modules unsupported"
)
def test_record_through_torch_compile_and_ddp(tmp_path) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from advprior.errors import PriorMismatchError

    trained = _trained_head(_prior())
    feats = torch.randn(4, 8)
    compiled = torch.compile(LatentHead(8, _prior()), backend="eager")
    compiled._orig_mod.load_state_dict(trained.state_dict())
    assert torch.equal(compiled(feats), trained(feats))
    assert "_orig_mod._extra_state" in compiled.state_dict()
    with pytest.raises(PriorMismatchError):
        torch.compile(LatentHead(8, _prior("uniform")), backend="eager").load_state_dict(
            compiled.state_dict()
        )

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        ddp = DistributedDataParallel(LatentHead(8, _prior()))
        ddp.module.load_state_dict(trained.state_dict())
        state = ddp.state_dict()
        assert "module._extra_state" in state
        with pytest.raises(PriorMismatchError):
            DistributedDataParallel(LatentHead(8, _prior("uniform"))).load_state_dict(state)
        DistributedDataParallel(LatentHead(8, _prior())).load_state_dict(state)
    finally:
        dist.destroy_process_group()


def test_a_head_built_on_the_meta_device_saves_and_loads() -> None:
    # deferred initialisation: nothing to hash on meta, so the weights are not compared there
    trained = _trained_head(_prior())
    with torch.device("meta"):
        deferred = LatentHead(8, PosePrior())
    assert deferred.prior_record()["prior_sha256"] is None
    deferred.load_state_dict(trained.state_dict(), assign=True)
    feats = torch.randn(2, 8)
    assert torch.equal(deferred(feats), trained(feats))
    with torch.device("meta"):
        other = LatentHead(8, PosePrior(latent="uniform"))
    from advprior.errors import PriorMismatchError

    with pytest.raises(PriorMismatchError, match="they differ in: latent"):
        other.load_state_dict(trained.state_dict(), assign=True)


@pytest.mark.skipif(not cpu_float16_matmul(), reason="no float16 matmul on this CPU torch")
def test_a_float16_head_whose_output_is_zero_or_tiny_stays_finite() -> None:
    # A .half() regressor whose head's last layer starts at zero (or, under CPU autocast, any
    # float16 output): the map's 1e-8 clamp and project's 1e-12 are 0 in float16, which made
    # the latent 0/0 = NaN and the backward NaN; both now run in float32 and round.
    torch.manual_seed(0)
    head = LatentHead(8, PosePrior(latent="sphere")).eval()
    with torch.no_grad():
        head.net.weight.zero_()
        head.net.bias.zero_()
    half = copy.deepcopy(head).half()
    feats = torch.randn(4, 8)
    with pytest.warns(RuntimeWarning, match="all-zero output row"):
        pose = half(feats.half())
    assert torch.isfinite(pose).all()
    # the float32 head sends the zero latent to project's pole; float16 rounds the same pose
    # (decoder in float16: errors of a few 1e-3 rad on poses of size ~1)
    with torch.no_grad():
        assert torch.allclose(pose.float(), head(feats), atol=2e-2)
    pose.float().square().sum().backward()
    assert torch.isfinite(half.net.weight.grad).all()
    # a tiny row: the true gradient of <z, v> is (v - <z, v> z) / |x|, up to 2e4 here, which
    # float16 holds; its float16 backward overflowed where the two terms cancel (v along x)
    space = head.space
    for v in (torch.ones(32), torch.linspace(-1, 1, 32)):
        x16 = torch.full((1, 32), 1e-5, dtype=torch.float16, requires_grad=True)
        (space.map_unconstrained(x16).float() * v).sum().backward()
        x32 = x16.detach().float().requires_grad_(True)
        (space.map_unconstrained(x32) * v).sum().backward()
        assert torch.isfinite(x16.grad).all()
        # float16 rounding of a float32 gradient: relative 2^-11; absolute: float32 rounding
        # of the two cancelling terms of size 2e4 (2e4 * 6e-8 = 1.2e-3 each)
        assert torch.allclose(x16.grad.float(), x32.grad, rtol=2e-3, atol=1e-2)


def test_a_zero_initialised_layer_on_the_sphere_warns_that_it_cannot_train() -> None:
    # "start from the mean pose" regressors zero their last layer: on the sphere the zero
    # latent has no direction (project's pole, zero gradient) and the loss stayed flat silently
    feats = torch.randn(4, 8)

    def zeroed(latent: str) -> LatentHead:
        head = LatentHead(8, _prior(latent))
        torch.nn.init.zeros_(head.net.weight)
        torch.nn.init.zeros_(head.net.bias)
        return head

    head = zeroed("sphere")
    with pytest.warns(RuntimeWarning, match="all-zero output row"):
        head(feats).square().sum().backward()
    assert float(head.net.weight.grad.abs().max()) == 0.0  # why it warns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        head(feats)  # once only
        with torch.no_grad():
            zeroed("sphere")(feats)  # not training: a zero row there is only a pose
        cube = zeroed("uniform")
        cube(feats).square().sum().backward()  # z = 0 is the cube's centre: it trains
        assert float(cube.net.weight.grad.abs().max()) > 0.0
        _trained_head(_prior())(feats).square().sum().backward()
        # under vmap a value cannot steer Python: no check, no error
        torch.func.vmap(zeroed("sphere"))(feats.requires_grad_())


@pytest.mark.skipif(not cpu_float16_matmul(), reason="no float16 matmul on this CPU torch")
def test_a_float16_head_gives_smpl_hand_joints_and_identity_rotations_as_zeros() -> None:
    # body="smpl" appends the hand joints as identity rotations; in float16 their axis-angle
    # was NaN (the small-angle threshold 1e-8 rounds to 0 there, and the identity is 0 / 0)
    from advprior.rotations import rotmat_to_axis_angle

    torch.manual_seed(0)
    head = _trained_head(_prior()).half()
    with torch.no_grad():
        pose = head(torch.randn(3, 8).half(), body="smpl")
    assert pose.shape == (3, 69)
    assert torch.isfinite(pose).all()
    assert torch.equal(pose[:, 63:], torch.zeros(3, 6, dtype=torch.float16))
    eye = torch.eye(3, dtype=torch.float16).expand(2, 3, 3).clone().requires_grad_(True)
    rotvec = rotmat_to_axis_angle(eye)
    assert torch.equal(rotvec, torch.zeros(2, 3, dtype=torch.float16))
    rotvec.float().sum().backward()
    assert torch.isfinite(eye.grad).all()


# -- a prior whose weights drifted by rounding is the same prior ----------------------------------


def _ema(prior: PosePrior, steps: int, decay: float) -> PosePrior:
    """``prior`` after ``steps`` updates of an EMA copy of a model that holds it frozen, as
    timm's ModelEmaV2 blends every state-dict tensor: ``d * e + (1 - d) * m`` with ``m`` the
    unchanged weight. Each step rounds ``d * e`` and the sum, and the copy walks away by about
    an ulp per step (in a third of the weights here), up to 3 u |w| / (1 - d)."""
    ema = copy.deepcopy(prior)
    with torch.no_grad():
        for _ in range(steps):
            for e, m in zip(ema.state_dict().values(), prior.state_dict().values(), strict=True):
                e.copy_(decay * e + (1.0 - decay) * m)
    return ema


def _layer_only(head: LatentHead) -> dict[str, torch.Tensor]:
    return {k: v for k, v in head.state_dict().items() if not k.startswith("prior.")}


def test_a_head_saved_from_an_ema_copy_loads_on_its_prior() -> None:
    # A regressor trained with timm's EMA over the whole model: the EMA copy's frozen prior
    # drifted (200 steps of d = 0.9998: 107k of 344k weights moved, by up to 200 float32 ulp),
    # so its head layer, saved alone and loaded on from_pretrained's prior, was refused as
    # "another prior" (the float32 and both half-precision sha256s differ).
    from advprior.errors import PriorMismatchError

    prior = _prior(seed=0)
    drifted = _ema(prior, 200, 0.9998)
    weights = [(a, b) for a, b in zip(prior.parameters(), drifted.parameters(), strict=True)]
    assert any(not torch.equal(a, b) for a, b in weights)
    assert max(float(((b - a).abs() / a.abs()).max().detach()) for a, b in weights) < 2.0**-14
    trained = _trained_head(drifted)
    head = LatentHead(8, _prior(seed=0))
    head.load_state_dict(_layer_only(trained), strict=False)
    assert torch.equal(head.net.weight, trained.net.weight)
    # and saved from an EMA copy then cast to bfloat16 (a half-size checkpoint)
    LatentHead(8, _prior(seed=0)).load_state_dict(
        _layer_only(copy.deepcopy(trained).bfloat16()), strict=False
    )
    # other priors are still refused, drifted or not: another seed, and the same prior
    # fine-tuned a little (the warm start of advprior.train: every weight moves by ~1e-3)
    with pytest.raises(PriorMismatchError, match="they differ in: weights"):
        LatentHead(8, _ema(_prior(seed=1), 20, 0.9998)).load_state_dict(
            _layer_only(trained), strict=False
        )
    tuned = _prior(seed=0)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    with pytest.raises(PriorMismatchError, match="they differ in: weights"):
        LatentHead(8, tuned).load_state_dict(_layer_only(trained), strict=False)


@pytest.mark.parametrize(
    ("change", "same"),
    [(0.9 * 2.0**-7, True), (2.0 * 2.0**-7, False)],
    ids=["within-tolerance", "twice-the-tolerance"],
)
def test_the_drift_tolerance_is_relative_2_to_the_minus_7_per_weight(
    change: float, same: bool
) -> None:
    # every weight moved by `change` of itself, in random directions: a bfloat16 rounding
    # (2^-8) plus a float16 one plus an EMA's drift fit in 2^-7; twice that does not
    from advprior.errors import PriorMismatchError

    trained = _trained_head(_prior(seed=0))
    moved = _prior(seed=0)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in moved.parameters():
            signs = torch.randint(0, 2, p.shape, generator=gen).float() * 2 - 1
            p.mul_(1 + change * signs)
    head = LatentHead(8, moved)
    if same:
        head.load_state_dict(_layer_only(trained), strict=False)
    else:
        with pytest.raises(PriorMismatchError, match="they differ in: weights"):
            head.load_state_dict(_layer_only(trained), strict=False)


def test_one_changed_tensor_is_another_prior() -> None:
    # the samples may miss a small tensor (a bias); its sums, bounded by its own L1 norm, do not
    from advprior.errors import PriorMismatchError

    trained = _trained_head(_prior(seed=0))
    for name, edit in itertools.product(
        ("generator.0.bias", "generator.5.bias"),
        (lambda b: b.mul_(0.5), lambda b: b.add_(0.01), lambda b: b.copy_(b.flip(0))),
    ):
        edited = _prior(seed=0)
        with torch.no_grad():
            edit(edited.get_parameter(name))
        with pytest.raises(PriorMismatchError, match="they differ in: weights"):
            LatentHead(8, edited).load_state_dict(_layer_only(trained), strict=False)


def test_a_whole_state_dict_cast_to_bfloat16_loads() -> None:
    # a checkpoint halved with {k: v.bfloat16() for floating v}: its prior.* tensors are the
    # record's rounded, and were refused as "edited after saving"
    from advprior.errors import PriorMismatchError

    trained = _trained_head(_prior(seed=0))
    halved = {
        k: v.bfloat16() if v.is_floating_point() else v for k, v in trained.state_dict().items()
    }
    head = LatentHead(8, _prior(seed=4))
    head.load_state_dict(halved)
    feats = torch.randn(3, 8)
    assert torch.equal(head.net.weight, trained.net.weight.bfloat16().float())
    for a, b in zip(head.prior.parameters(), trained.prior.parameters(), strict=True):
        assert torch.equal(a, b.bfloat16().float())
    assert torch.allclose(head(feats), trained(feats), atol=0.1)  # bfloat16's 3 digits
    # a real edit is still one
    halved["prior.generator.0.bias"] = halved["prior.generator.0.bias"] + 1
    with pytest.raises(PriorMismatchError, match="edited after saving"):
        LatentHead(8, _prior(seed=0)).load_state_dict(halved)


@pytest.mark.parametrize("prior", [PosePrior, VPoserVAE], ids=["gan", "vae"])
def test_the_record_stays_well_under_its_bound(prior) -> None:
    from advprior import head as head_module

    record = LatentHead(8, prior()).prior_record()
    assert record["prior_fingerprint"] is not None
    assert len(json.dumps(record)) < head_module._MAX_RECORD_BYTES / 4


def test_a_prior_with_non_finite_weights_records_no_fingerprint() -> None:
    # nothing to compare up to rounding: the sha256s alone decide, as before
    prior = _prior(seed=0)
    with torch.no_grad():
        prior.generator[0].bias[3] = float("nan")
    trained = _trained_head(prior)
    assert trained.prior_record()["prior_fingerprint"] is None
    LatentHead(8, copy.deepcopy(prior)).load_state_dict(_layer_only(trained), strict=False)


def test_a_prior_shared_under_another_name_says_why_it_was_refused(tmp_path) -> None:
    # safetensors' save_model keeps one name of shared weights (the alphabetically first): a
    # model holding its prior in the head and in a LatentPose registered after it ("fit") has
    # the prior's weights only under fit.prior.*, which load after the head is checked. The
    # refusal says so and what to do; torch.save of the state dict keeps every name and loads.
    from safetensors.torch import load_model, save_model

    from advprior import LatentPose
    from advprior.errors import PriorMismatchError

    class Net(torch.nn.Module):
        def __init__(self, seed: int) -> None:
            super().__init__()
            self.head = LatentHead(8, _prior(seed=seed))
            self.fit = LatentPose(self.head.prior, 2)

    saved = Net(0)
    save_model(saved, str(tmp_path / "net.safetensors"))
    with pytest.raises(PriorMismatchError, match=r"under another name.*torch\.save"):
        load_model(Net(1), str(tmp_path / "net.safetensors"))
    torch.save(saved.state_dict(), tmp_path / "net.pt")
    again = Net(1)
    again.load_state_dict(torch.load(tmp_path / "net.pt", weights_only=True))
    feats = torch.randn(2, 8)
    assert torch.equal(again.head(feats), saved.head(feats))
