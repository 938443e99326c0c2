"""advprior inside a user's own PyTorch code: priors as submodules, queries on a prior that is
being trained, state dicts, copies and the training loops of docs/api/head.md."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advprior.baselines import GMMPrior, VPoserVAE
from advprior.inversion import frozen
from advprior.prior import LatentPose, PosePrior
from advprior.version import torch_version


def _modes(module: nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in module.named_modules()}


def test_frozen_restores_each_submodules_own_mode() -> None:
    # a user fine-tunes a VAE with its BatchNorm statistics and dropout frozen (eval mode)
    vae = VPoserVAE().train()
    for m in vae.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.Dropout)):
            m.eval()
    before = _modes(vae)
    assert not all(before.values()) and any(before.values())
    with frozen(vae):
        assert not any(_modes(vae).values())
    assert _modes(vae) == before


@pytest.mark.parametrize("query", ["fit_starts", "invert", "score", "geodesic"])
def test_queries_keep_the_modes_of_a_prior_being_trained(query: str) -> None:
    torch.manual_seed(0)
    prior = PosePrior().train()
    prior.generator[2].eval()  # dropout off while fine-tuning
    before = _modes(prior)
    pose = torch.zeros(2, 63)
    z0, z1 = prior.sample_latent(2, generator=torch.Generator().manual_seed(0))
    calls = {
        "fit_starts": lambda: prior.fit_starts(2),
        "invert": lambda: prior.invert(pose, steps=2, bank_size=8),
        "score": lambda: prior.score(pose, steps=2, bank_size=8),
        "geodesic": lambda: prior.interpolate(z0, z1, 4, geodesic=True, iterations=2),
    }
    calls[query]()
    assert _modes(prior) == before


def test_vae_invert_of_a_model_in_training_neither_mixes_the_batch_nor_moves_its_statistics() -> (
    None
):
    torch.manual_seed(0)
    vae = VPoserVAE().train()
    stats = {k: v.clone() for k, v in vae.state_dict().items() if "running" in k or "batches" in k}
    poses = 0.3 * torch.randn(5, 63)
    z = vae.invert(poses)
    # each pose's latent is its own (eval-mode BatchNorm), whatever else is in the batch; a
    # smaller batch only changes the matmuls' summation order (512 terms of size <= 1: at most
    # 512 eps apart), where train-mode BatchNorm moves the latents by O(1)
    atol = 512 * torch.finfo(torch.float32).eps
    assert torch.allclose(vae.invert(poses[:2]), z[:2], rtol=0, atol=atol)
    for key, value in stats.items():
        assert torch.equal(vae.state_dict()[key], value), key
    assert vae.training and all(_modes(vae).values())
    vae.score(poses)
    for key, value in stats.items():
        assert torch.equal(vae.state_dict()[key], value), key


def _user_model(prior: nn.Module) -> nn.Module:
    class Regressor(nn.Module):  # a user's model holding the prior as a plain submodule
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Linear(10, prior.latent_space.dim)
            self.prior = prior

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.prior.decode(self.encoder(x))

    return Regressor()


@pytest.mark.parametrize("cls", [PosePrior, VPoserVAE])
def test_a_frozen_prior_decodes_deterministically_under_the_users_train_mode(cls) -> None:
    torch.manual_seed(0)
    prior = cls().eval().requires_grad_(False)  # as from_pretrained returns it
    model = _user_model(prior).train()
    assert prior.training  # torch's own propagation; decoding must not depend on it
    x = torch.randn(64, 10)
    first = model(x)
    assert torch.equal(model(x), first)
    assert torch.equal(first, model.eval()(x))
    # gradients still reach the user's layers through the frozen decoder
    model.train()(x).square().sum().backward()
    assert model.encoder.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in prior.parameters())


@pytest.mark.parametrize("cls", [PosePrior, VPoserVAE])
def test_a_prior_being_trained_keeps_its_dropout(cls) -> None:
    torch.manual_seed(0)
    prior = cls().train()
    z = torch.randn(256, prior.latent_space.dim)
    assert not torch.equal(prior.decode(z), prior.decode(z))


def test_a_frozen_prior_in_train_mode_runs_the_hooks_of_its_layers() -> None:
    prior = PosePrior().requires_grad_(False).train()
    seen = []
    handle = prior.generator[3].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    try:
        z = torch.randn(4, 32)
        assert torch.equal(prior.decode(z), prior.decode(z))
    finally:
        handle.remove()
    assert seen == [torch.Size([4, 512])] * 2


def test_a_frozen_vae_encoder_in_train_mode_keeps_its_statistics() -> None:
    torch.manual_seed(0)
    vae = VPoserVAE().eval().requires_grad_(False)
    stats = {k: v.clone() for k, v in vae.state_dict().items() if "running" in k or "batches" in k}
    vae.train()
    poses = 0.3 * torch.randn(5, 63)
    q = vae.encode(poses)
    assert torch.equal(q.mean, vae.eval().encode(poses).mean)
    for key, value in stats.items():
        assert torch.equal(vae.state_dict()[key], value), key


@pytest.mark.skipif(
    torch_version() < (2, 2), reason="torch 2.1: torch.export of advprior modules unsupported"
)
def test_latent_pose_exports_and_vmaps() -> None:
    torch.manual_seed(0)
    pose = LatentPose(PosePrior().eval().requires_grad_(False), 3)
    # torch.export: the zero-row warning must not put a value-dependent branch in the graph
    exported = torch.export.export(pose, ())
    # while exporting, the rotation code takes its large-batch kernels (correct for every
    # batch size; eager takes the small-batch ones for 3 rows): the same float32 arithmetic
    # in another order, a few eps (1.2e-7) of angles up to pi
    torch.testing.assert_close(exported.module()(), pose(), rtol=0, atol=5e-6)
    # torch.func.vmap over several sets of latents (functional_call swaps z)
    zs = torch.randn(4, 3, 32)
    batched = torch.func.vmap(lambda z: torch.func.functional_call(pose, {"z": z}, ()))(zs)
    eager = torch.stack([pose.prior.decode(z) for z in zs])
    # the same arithmetic in another batching: matmul sums of <= 512 terms of size <= 1 each
    assert torch.allclose(batched, eager, rtol=0, atol=512 * torch.finfo(torch.float32).eps)


def test_latent_pose_still_warns_about_a_zero_row_in_eager_mode() -> None:
    pose = LatentPose(PosePrior().eval().requires_grad_(False), 2)
    with torch.no_grad():
        pose.z.zero_()
    with pytest.warns(RuntimeWarning, match="zero row"):
        pose()


def _fitted_gmm() -> GMMPrior:
    # a mixture with the spread of real pose covariances: eigenvalues from 1e-4 to 1 rad^2
    gen = torch.Generator().manual_seed(0)
    gmm = GMMPrior(num_components=3)
    for k in range(3):
        q, _ = torch.linalg.qr(torch.randn(63, 63, generator=gen, dtype=torch.float64))
        eig = torch.logspace(-4, 0, 63, dtype=torch.float64)
        gmm.covariances[k] = ((q * eig) @ q.T).float()
        gmm.means[k] = 0.1 * torch.randn(63, generator=gen)
    return gmm


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_users_half_model_keeps_the_gmm_usable(dtype: torch.dtype) -> None:
    gmm = _fitted_gmm()
    poses = gmm.sample(8, generator=torch.Generator().manual_seed(1))
    model = nn.ModuleDict({"gmm": gmm, "layer": nn.Linear(3, 3)}).to(dtype)
    assert model["layer"].weight.dtype == dtype
    assert gmm.covariances.dtype == torch.float32  # a half covariance is not positive definite
    low = poses.to(dtype)
    nll = gmm.nll(low)
    assert nll.dtype == dtype
    # scored in float32 and rounded once to ``dtype`` (half an ulp, eps / 2 relative)
    assert torch.allclose(nll.float(), gmm.nll(low.float()), rtol=torch.finfo(dtype).eps, atol=0)
    assert torch.isfinite(nll).all()
    assert gmm.sample(2).dtype == torch.float32
    # device and float64 moves still apply
    assert gmm.double().covariances.dtype == torch.float64


@pytest.fixture(scope="module")
def keypoints():
    """Two frames of the stand-in body's 24 joints seen by a camera: ``(kp, conf, camera)``."""
    from advprior.body import load_body_model
    from advprior.fitting import PinholeCamera

    camera = PinholeCamera(focal=(1000.0, 1000.0), center=(512.0, 512.0))
    pose = 0.2 * torch.randn(2, 63, generator=torch.Generator().manual_seed(0))
    transl = torch.tensor([[0.0, 0.2, 3.0]]).expand(2, 3)
    joints = load_body_model()(global_orient=torch.zeros(2, 3), body_pose=pose, transl=transl)
    return camera.project(joints.joints[:, :24]), torch.ones(2, 24), camera


@pytest.mark.parametrize("call", ["fit_keypoints", "fit_sequence", "geodesic"])
def test_optimising_calls_work_inside_inference_mode(call: str, keypoints) -> None:
    # Lightning runs validation and prediction steps under torch.inference_mode()
    from advprior.fitting import fit_keypoints, fit_sequence

    torch.manual_seed(0)
    prior = PosePrior().eval().requires_grad_(False)
    kp, conf, camera = keypoints
    z0, z1 = prior.sample_latent(2, generator=torch.Generator().manual_seed(0))
    calls = {
        "fit_keypoints": lambda: (
            fit_keypoints(kp, conf, camera, prior=prior, iterations=2, pose_density=None).body_pose
        ),
        "fit_sequence": lambda: fit_sequence(kp, conf, camera, prior=prior, iterations=2).body_pose,
        "geodesic": lambda: prior.interpolate(z0, z1, 4, geodesic=True, iterations=2),
    }
    expected = calls[call]()
    with torch.inference_mode():
        got = calls[call]()
    assert torch.equal(got, expected)


class _Pipeline(nn.Module):
    """A user's model holding every embeddable piece: a head, a free latent, VPoser's wrapper."""

    def __init__(self, prior: PosePrior) -> None:
        from advprior.compat import load_model
        from advprior.head import LatentHead

        super().__init__()
        self.backbone = nn.Linear(6, 16)
        self.head = LatentHead(16, prior)
        self.pose = LatentPose(prior, 2)
        self.vposer, _ = load_model(prior)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embedding = torch.zeros(x.shape[0], 32, dtype=x.dtype)
        return self.head(self.backbone(x)) + self.vposer.decode(embedding)["pose_body"].flatten(1)


def test_a_users_model_round_trips_its_state_dict_and_trains_only_its_own_weights() -> None:
    import io

    torch.manual_seed(0)
    prior = PosePrior().eval().requires_grad_(False)
    model = _Pipeline(prior).train()
    x = torch.randn(4, 6)
    frozen_state = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.startswith(("head.prior.", "pose.prior.", "vposer."))
    }
    # weight decay changes every parameter an optimiser holds that has a gradient: the frozen
    # decoder has none, so AdamW over all of parameters() leaves it bit for bit
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.5)
    for _ in range(20):
        opt.zero_grad()
        (model(x).square().mean() + model.pose().square().mean()).backward()
        opt.step()
    for key, value in frozen_state.items():
        assert torch.equal(model.state_dict()[key], value), key
    # weights_only loading of the state dict, strict, into a fresh model
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    again = _Pipeline(PosePrior().eval().requires_grad_(False))
    again.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    assert torch.equal(again.eval()(x), model.eval()(x))
    assert torch.equal(again.pose(), model.pose())


@pytest.mark.parametrize("call", ["invert", "score", "vae_invert", "fit_keypoints", "geodesic"])
def test_optimising_calls_ignore_the_callers_autocast(call: str, keypoints) -> None:
    # a user's mixed-precision loop (Lightning's precision="bf16-mixed") calls them under
    # autocast; decoding in bfloat16 there made every answer worse, silently
    from advprior.fitting import fit_keypoints

    torch.manual_seed(0)
    prior = PosePrior().eval().requires_grad_(False)
    vae = VPoserVAE().eval().requires_grad_(False)
    kp, conf, camera = keypoints
    poses = 0.3 * torch.randn(3, 63, generator=torch.Generator().manual_seed(1))
    z0, z1 = prior.sample_latent(2, generator=torch.Generator().manual_seed(0))
    calls = {
        "invert": lambda: prior.invert(poses, steps=3, bank_size=64),
        "score": lambda: prior.score(poses, steps=3, bank_size=64),
        "vae_invert": lambda: vae.invert(poses),
        "fit_keypoints": lambda: (
            fit_keypoints(kp, conf, camera, prior=prior, iterations=2, pose_density=None).body_pose
        ),
        "geodesic": lambda: prior.interpolate(z0, z1, 4, geodesic=True, iterations=2),
    }
    expected = calls[call]()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = calls[call]()
    assert got.dtype == expected.dtype
    assert torch.equal(got, expected)


def test_latent_pose_on_a_prior_fresh_from_training_decodes_deterministically() -> None:
    """A ``PosePrior()`` straight from a training loop is in train mode: dropout made every
    ``pose()`` another pose until the user called ``.train()`` or ``.eval()`` on the wrapper."""
    torch.manual_seed(0)
    prior = PosePrior(latent="sphere")
    assert prior.training
    pose = LatentPose(prior, 3)
    assert torch.equal(pose(), pose()) and not pose.prior.training
