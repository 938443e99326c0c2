"""Discriminator, LSGAN losses, mirroring, and the VAE / GMM baselines (no training data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import roma
import torch
from conftest import FK32_ATOL

from advprior.baselines import GMMPrior, VPoserVAE
from advprior.hub import load_pretrained
from advprior.rotations import axis_angle_to_rotmat
from advprior.train.augment import LEG_JOINTS, blend_poses, mirror_body_pose, mix_legs
from advprior.train.discriminator import (
    PoseDiscriminator,
    discriminator_loss,
    generator_loss,
    lsgan_loss,
)


def _rotmats(b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return axis_angle_to_rotmat(torch.randn(b, 21, 3, generator=g) * 0.5)


# -- discriminator ---------------------------------------------------------------------------


def test_discriminator_shapes_and_parameters():
    d = PoseDiscriminator()
    joint, pose = d(_rotmats(5))
    assert joint.shape == (5, 21) and pose.shape == (5, 1)
    # shared 1x1 conv 9->32->32, one 32->1 critic per joint, MLP 21*32 -> 1024 -> 1024 -> 1
    assert d.embed[0].weight.shape == (32, 9, 1) and d.embed[2].weight.shape == (32, 32, 1)
    assert d.joint_weight.shape == (21, 32) and d.joint_bias.shape == (21,)
    assert d.pose_critic[0].weight.shape == (1024, 21 * 32)
    assert d.pose_critic[-1].weight.shape == (1, 1024)


def test_discriminator_joint_critic_sees_only_its_joint():
    d = PoseDiscriminator(hidden_dim=16)
    x = _rotmats(3)
    y = x.clone()
    y[:, 4] = _rotmats(3, seed=9)[:, 4]
    jx, px = d(x)
    jy, py = d(y)
    changed = (jx - jy).abs().amax(0) > 0
    assert changed[4] and not changed[torch.arange(21) != 4].any()
    assert not torch.allclose(px, py)


def test_discriminator_positions_are_the_posed_skeleton():
    """The optional position input is the neutral skeleton posed by the input rotations, pelvis
    at the origin: the same joints as forward_kinematics on axis-angle (float32 rounding)."""
    from advprior.body import forward_kinematics

    d = PoseDiscriminator(hidden_dim=8, positions=True)
    aa = torch.randn(4, 21, 3, generator=torch.Generator().manual_seed(2)) * 0.5
    pos = d._joint_positions(axis_angle_to_rotmat(aa))
    ref = forward_kinematics(torch.zeros(4, 3), aa.reshape(4, 63))
    torch.testing.assert_close(pos.reshape(4, 23, 3), ref[:, 1:] - ref[:, :1], atol=1e-5, rtol=0)
    assert d.pose_critic[0].weight.shape == (8, 21 * 32 + 69)
    # the positions reach the whole-pose critic (its first layer's position columns learn)
    _, pose = d(axis_angle_to_rotmat(aa))
    pose.sum().backward()
    assert d.pose_critic[0].weight.grad[:, 21 * 32 :].abs().amax() > 0
    with pytest.raises(ValueError, match="21 SMPL body joints"):
        PoseDiscriminator(num_joints=24, positions=True)


def test_packed_discriminator_scores_groups_of_consecutive_poses():
    d = PoseDiscriminator(hidden_dim=8, pack=2)
    x = _rotmats(6)
    joint, pose = d(x)
    assert joint.shape == (6, 21) and pose.shape == (3, 1)
    assert d.pose_critic[0].weight.shape == (8, 2 * 21 * 32)
    y = x.clone()
    y[3] = _rotmats(1, seed=5)[0]  # second pose of the second group
    _, pose_y = d(y)
    changed = (pose - pose_y).abs()[:, 0] > 0
    assert changed.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="multiple of pack=2"):
        d(_rotmats(5))
    with pytest.raises(ValueError, match="pack must be >= 1"):
        PoseDiscriminator(pack=0)


def test_packed_critic_sees_mode_dropping_that_one_pose_critic_cannot():
    """Two poses A and B. Real groups are independent draws (AB, BA, AA, BB); a collapsed
    generator pairs each pose with itself (AA, BB). Every single pose is A or B half the time in
    both, so a one-pose critic's least-squares loss cannot go below its chance value (each of the
    22 terms at least 1/4 + 1/4), while a packed critic learns to score mixed groups above
    same-pose groups (optimum 1 for AB, 1/3 for AA: the whole-pose term drops by 1/6)."""
    a, b = _rotmats(2, seed=11)
    real = torch.stack([a, b, b, a, a, a, b, b])  # groups AB, BA, AA, BB
    fake = torch.stack([a, a, b, b, a, a, b, b])  # groups AA, BB, AA, BB
    losses, scores = {}, {}
    for pack in (1, 2):
        torch.manual_seed(1)
        d = PoseDiscriminator(hidden_dim=32, pack=pack)
        opt = torch.optim.Adam(d.parameters(), 2e-3, betas=(0.5, 0.999))
        for _ in range(300):
            j, p = d(torch.cat([real, fake]))
            m = p.shape[0] // 2
            loss = discriminator_loss((j[:8], p[:m]), (j[8:], p[m:]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses[pack] = loss.item()
        with torch.no_grad():
            scores[pack] = d(torch.stack([a, b, a, a]))[1][:, 0].tolist()
    assert losses[1] > 11.0 - 1e-3 and losses[2] < 10.9, losses
    mixed, same = scores[2]
    assert mixed - same > 0.4, scores  # optimum 1 - 1/3
    assert abs(scores[1][0] - scores[1][1]) < 0.05, scores  # A and B alike to a one-pose critic


def test_discriminator_rejects_bad_input():
    d = PoseDiscriminator(hidden_dim=8)
    with pytest.raises(ValueError, match=r"\(B, 21, 3, 3\)"):
        d(torch.zeros(2, 21, 9))
    with pytest.raises(TypeError, match="floating"):
        d(torch.zeros(2, 21, 3, 3, dtype=torch.int64))


def test_lsgan_loss_weights_joints_21_and_pose_1():
    joint = torch.full((4, 21), 0.25)
    pose = torch.full((4, 1), -0.5)
    assert lsgan_loss((joint, pose), 1.0).item() == pytest.approx(21 * 0.75**2 + 1.5**2)
    assert lsgan_loss((joint, pose), 0.0).item() == pytest.approx(21 * 0.25**2 + 0.5**2)
    # per-sample squares, batch mean: labels off by +-1 give exactly 1 per term
    alt = torch.tensor([[0.0], [2.0]])
    assert lsgan_loss((alt.expand(2, 21), alt), 1.0).item() == pytest.approx(22.0)


def test_discriminator_and_generator_losses():
    ones = (torch.ones(3, 21), torch.ones(3, 1))
    zeros = (torch.zeros(3, 21), torch.zeros(3, 1))
    assert discriminator_loss(ones, zeros).item() == 0.0  # perfect discriminator
    assert discriminator_loss(zeros, ones).item() == pytest.approx(44.0)
    assert generator_loss(ones).item() == 0.0
    assert generator_loss(zeros).item() == pytest.approx(22.0)


def test_discriminator_learns_to_separate():
    torch.manual_seed(0)
    d = PoseDiscriminator(hidden_dim=64)
    opt = torch.optim.Adam(d.parameters(), 2e-3, betas=(0.5, 0.999))
    real = axis_angle_to_rotmat(torch.randn(64, 21, 3) * 0.1)
    fake = _rotmats(64, seed=3)
    first = None
    for _ in range(60):
        j, p = d(torch.cat([real, fake]))
        loss = discriminator_loss((j[:64], p[:64]), (j[64:], p[64:]))
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * first


# -- mirroring -------------------------------------------------------------------------------


def test_mirror_is_an_involution_and_swaps_sides():
    pose = torch.randn(7, 63)
    assert torch.allclose(mirror_body_pose(mirror_body_pose(pose)), pose)
    m = mirror_body_pose(pose).reshape(7, 21, 3)
    p = pose.reshape(7, 21, 3)
    # left_hip (joint 1, index 0) takes the right hip's rotation with y, z negated
    assert torch.allclose(m[:, 0], p[:, 1] * torch.tensor([1.0, -1.0, -1.0]))
    with pytest.raises(ValueError, match=r"\(\.\.\., 63\)"):
        mirror_body_pose(torch.zeros(2, 69))


def test_mirror_reflects_joint_positions():
    from advprior.body import forward_kinematics
    from advprior.skeleton import JOINT_NAMES

    swap = [
        JOINT_NAMES.index(n.replace("left", "#").replace("right", "left").replace("#", "right"))
        for n in JOINT_NAMES
    ]
    pose = torch.randn(16, 63, generator=torch.Generator().manual_seed(1)) * 0.4
    go = torch.zeros(16, 3)
    joints = forward_kinematics(go, pose)
    mirrored = forward_kinematics(go, mirror_body_pose(pose))
    reflected = joints[:, swap] * torch.tensor([-1.0, 1.0, 1.0])
    err = (mirrored - reflected).norm(dim=-1)
    # SMPL's neutral rest skeleton is symmetric to a few millimetres
    assert err.max() < 0.02
    assert (joints - mirrored).norm(dim=-1).max() > 0.1


def test_leg_mix_swaps_exactly_the_leg_chains_of_the_drawn_poses():
    from advprior.skeleton import JOINT_NAMES

    # the leg chains by name: hips, knees, ankles, feet (body_pose index = joint - 1)
    legs = [
        JOINT_NAMES.index(n) - 1
        for n in JOINT_NAMES
        if n.split("_")[-1] in ("hip", "knee", "ankle", "foot")
    ]
    assert sorted(legs) == list(LEG_JOINTS)
    upper = [j for j in range(21) if j not in LEG_JOINTS]
    rot = _rotmats(400, seed=3)
    out = mix_legs(rot, 0.5, torch.Generator().manual_seed(0))
    assert out.shape == rot.shape and not torch.equal(out, rot)
    assert torch.equal(out[:, upper], rot[:, upper])  # the upper body never changes
    changed = (out[:, list(LEG_JOINTS)] != rot[:, list(LEG_JOINTS)]).flatten(1).any(dim=1)
    # each changed pose's legs are, all together, one other pose's legs
    flat = rot[:, list(LEG_JOINTS)].flatten(1)
    for i in torch.nonzero(changed).flatten().tolist():
        donors = (flat == out[i, list(LEG_JOINTS)].flatten()).all(dim=1).nonzero().flatten()
        assert donors.numel() == 1 and donors.item() != i
    # about half of the poses (binomial: 200 +- 10 sd; a donor may be the pose itself)
    assert 150 < int(changed.sum()) < 230
    # reproducible from the generator; fraction 0 and 1 are the ends
    assert torch.equal(out, mix_legs(rot, 0.5, torch.Generator().manual_seed(0)))
    assert torch.equal(mix_legs(rot, 0.0), rot)
    full = mix_legs(rot, 1.0, torch.Generator().manual_seed(1))
    assert (full[:, list(LEG_JOINTS)] != rot[:, list(LEG_JOINTS)]).flatten(1).any(1).sum() > 390
    with pytest.raises(ValueError, match="fraction"):
        mix_legs(rot, 1.5)
    with pytest.raises(ValueError, match=r"\(B, 21, 3, 3\)"):
        mix_legs(rot.reshape(400, 21, 9), 0.5)


def test_blend_poses_moves_each_drawn_pose_along_the_geodesics_to_one_donor():
    rot = _rotmats(300, seed=4)
    out = blend_poses(rot, 0.5, torch.Generator().manual_seed(0))
    assert out.shape == rot.shape and out.dtype == rot.dtype
    # still rotations (float32 products of two rotations: orthonormal to ~1e-6)
    eye = torch.eye(3).expand_as(out)
    assert (out.transpose(-1, -2) @ out - eye).abs().max() < 1e-5
    assert (torch.linalg.det(out) - 1).abs().max() < 1e-5
    changed = (out != rot).flatten(1).any(dim=1)
    assert 110 < int(changed.sum()) < 190  # binomial(300, 0.5): 150 +- 8.7 sd
    # Each changed pose lies on the per-joint geodesics from itself to exactly one other pose,
    # at one common fraction t: R^T out = exp(t log(R^T D)) for every joint.
    for i in torch.nonzero(changed).flatten().tolist()[:20]:
        own = roma.rotmat_to_rotvec(rot[i].transpose(-1, -2) @ out[i])  # (21, 3)
        fits = []
        for d in range(rot.shape[0]):
            full = roma.rotmat_to_rotvec(rot[i].transpose(-1, -2) @ rot[d])
            t = (own * full).sum() / (full * full).sum().clamp(min=1e-12)
            if 0 <= t <= 1 and (own - t * full).abs().max() < 1e-4:
                fits.append(d)
        assert len(fits) == 1 and fits[0] != i
    # reproducible from the generator; fraction 0 changes nothing, 1 nearly everything
    assert torch.equal(out, blend_poses(rot, 0.5, torch.Generator().manual_seed(0)))
    assert torch.equal(blend_poses(rot, 0.0), rot)
    full = blend_poses(rot, 1.0, torch.Generator().manual_seed(1))
    assert (full != rot).flatten(1).any(1).sum() > 290
    with pytest.raises(ValueError, match="fraction"):
        blend_poses(rot, -0.1)
    with pytest.raises(ValueError, match=r"\(B, 21, 3, 3\)"):
        blend_poses(rot.reshape(300, 21, 9), 0.5)


def test_kmeans_finds_separated_clusters_and_rebalancing_evens_them():
    from advprior.train.sampler import kmeans_labels, rebalanced_rows

    g = torch.Generator().manual_seed(0)
    sizes = (400, 100, 25)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + torch.randn(n, 2, generator=g) for c, n in zip(centres, sizes, strict=True)])
    truth = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    labels = kmeans_labels(x, 3, seed=1)
    # the same partition as the truth, up to the names of the clusters
    pairs = set(zip(truth.tolist(), labels.tolist(), strict=True))
    assert len(pairs) == 3 and len({b for _, b in pairs}) == 3
    assert torch.equal(labels, kmeans_labels(x, 3, seed=1))  # deterministic for a seed
    # power 0: every row once, in order
    assert torch.equal(rebalanced_rows(truth, 0.0), torch.arange(525))
    for power in (0.5, 1.0):
        rows = rebalanced_rows(truth, power)
        assert torch.equal(rows.unique(), torch.arange(525))  # nothing dropped
        share = torch.bincount(truth[rows]).double() / rows.numel()
        expected = torch.tensor(sizes).double() ** (1 - power)
        expected /= expected.sum()
        # rounding each row's repeat count to an integer (repeats 1, 2 or 4 here) is exact
        # for these sizes: 400/100 = 4 and 400/25 = 16 are perfect squares
        torch.testing.assert_close(share, expected)
    with pytest.raises(ValueError, match="power"):
        rebalanced_rows(truth, -1.0)
    with pytest.raises(ValueError, match="clusters"):
        kmeans_labels(x[:2], 3)


# -- VPoser-style VAE ------------------------------------------------------------------------


def test_vae_architecture_and_shapes():
    vae = VPoserVAE()
    assert vae.latent_dim == 32 and vae.model_type == "vae"
    x = torch.randn(4, 63) * 0.3
    q = vae.encode(x)
    assert isinstance(q, torch.distributions.Normal)
    assert q.loc.shape == (4, 32) and bool((q.scale > 0).all())
    assert vae.decode(q.rsample()).shape == (4, 63)
    rot = vae.decode(q.mean, output="rotmat")
    assert rot.shape == (4, 21, 3, 3)
    eye = torch.eye(3).expand(4, 21, 3, 3)
    assert torch.allclose(rot.transpose(-1, -2) @ rot, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(4, 21), atol=1e-5)
    vae.eval()
    assert vae.encode(torch.randn(2, 5, 63)).loc.shape == (2, 5, 32)
    assert vae.sample(6).shape == (6, 63)
    assert vae.sample(0).shape == (0, 63)


def test_vae_sample_is_reproducible_and_leaves_global_rng():
    vae = VPoserVAE().eval()
    state = torch.get_rng_state()
    a = vae.sample(5, generator=torch.Generator().manual_seed(3))
    b = vae.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())


def test_vae_rejects_bad_input():
    vae = VPoserVAE()
    with pytest.raises(ValueError, match=r"\(\.\.\., 63\) or \(\.\.\., 69\)"):
        vae.encode(torch.zeros(3, 66))  # SMPL's 69 (hands dropped) is accepted, 66 is nothing
    with pytest.raises(TypeError, match=r"z\.to\(torch\.float32\)"):
        vae.decode(torch.zeros(3, 32, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating"):
        vae.decode(torch.zeros(3, 32, dtype=torch.int32))
    # decode runs inside optimisers' line searches: NaN propagates instead of raising
    assert torch.isnan(vae.eval().decode(torch.full((1, 32), float("nan")))).all()
    with pytest.raises(ValueError, match="NaN"):
        vae.encode(torch.full((2, 63), float("nan")))  # user data: checked
    with pytest.raises(ValueError, match="output"):
        vae.decode(torch.zeros(1, 32), output="euler")
    with pytest.raises(ValueError, match="body"):
        vae.decode(torch.zeros(1, 32), body="smal")
    # project= as PosePrior.decode takes it (a Gaussian latent's projection is the identity)
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(vae.eval().decode(z, project=False), vae.decode(z))


def test_vae_decodes_every_output_and_body_of_the_interface():
    vae = VPoserVAE().eval()
    z = torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(0))
    rot = vae.decode(z, output="rotmat")
    assert rot.shape == (2, 3, 21, 3, 3)
    assert vae.decode(z, output="quat").shape == (2, 3, 21, 4)
    assert vae.decode(z, output="rot6d").shape == (2, 3, 21, 6)
    smpl = vae.decode(z, body="smpl")
    assert smpl.shape == (2, 3, 69) and bool((smpl[..., 63:] == 0).all())
    torch.testing.assert_close(smpl[..., :63], vae.decode(z))


def test_vae_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    vae = VPoserVAE()
    vae.train()
    vae.encode(torch.randn(32, 63))  # move the BatchNorm running statistics
    vae.eval()
    vae.save_pretrained(tmp_path / "vae", training={"steps": 3})
    loaded = load_pretrained(tmp_path / "vae")
    assert isinstance(loaded, VPoserVAE) and not loaded.training
    x = torch.randn(3, 63)
    assert torch.equal(loaded.encode(x).loc, vae.encode(x).loc)
    z = torch.randn(3, 32)
    assert torch.equal(loaded.decode(z), vae.decode(z))
    assert loaded.training_metadata == {"steps": 3}
    again = VPoserVAE.from_pretrained(tmp_path / "vae")
    assert torch.equal(again.decode(z), vae.decode(z))


# -- SMPLify-style GMM -----------------------------------------------------------------------


def _fitted_gmm(dim: int = 6, k: int = 3) -> tuple[GMMPrior, object, np.ndarray]:
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.3 + 0.1 * c, (300, dim)) for c in range(k)])
    gm = GaussianMixture(k, covariance_type="full", random_state=0).fit(x)
    return GMMPrior.from_sklearn(gm), gm, x


def test_gmm_log_prob_matches_sklearn_and_nll_is_max_mixture():
    from scipy.stats import multivariate_normal

    prior, gm, x = _fitted_gmm()
    q = torch.tensor(x[::50], dtype=torch.float64)
    assert np.allclose(prior.log_prob(q).numpy(), gm.score_samples(x[::50]), atol=1e-3)
    comp = np.stack(
        [
            np.log(w) + multivariate_normal(m, c).logpdf(x[::50])
            for w, m, c in zip(gm.weights_, gm.means_, gm.covariances_, strict=True)
        ],
        axis=1,
    )
    assert np.allclose(prior.nll(q).numpy(), -comp.max(1), atol=1e-3)
    assert bool((prior.nll(q) >= -prior.log_prob(q) - 1e-6).all())  # max <= sum


def test_gmm_shapes_gradients_and_sampling():
    prior = GMMPrior()
    assert prior.num_components == 8 and prior.dim == 63
    x = torch.zeros(2, 5, 63, requires_grad=True)
    nll = prior.nll(x)
    assert nll.shape == (2, 5) and prior.log_prob(x).shape == (2, 5)
    # untrained = standard normals: nll at 0 is -log(1/8 * N(0 | 0, I))
    assert nll[0, 0].item() == pytest.approx(math.log(8) + 31.5 * math.log(2 * math.pi), rel=1e-5)
    nll.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    fitted, _, data = _fitted_gmm()
    s = fitted.sample(4000, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4000, 6)
    assert np.allclose(s.mean(0).numpy(), data.mean(0), atol=0.1)
    a = fitted.sample(3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, fitted.sample(3, generator=torch.Generator().manual_seed(5)))


def test_gmm_sample_draws_where_the_generator_is_then_moves_to_the_mixture():
    from advprior.latent import draw_device

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    seeded = torch.Generator().manual_seed(0)
    # torch's convention, as LatentSpace.sample: a CPU generator draws on the CPU whatever the
    # model's device; without one, the draw happens on the model's device
    assert draw_device(seeded, cuda) == cpu
    assert draw_device(None, cuda) == cuda
    assert draw_device(None, None) is None
    # without a generator a mixture elsewhere (meta here, a GPU in use) draws where it is:
    # the draw used to go through the CPU (so a meta mixture failed, a GPU one copied twice)
    meta = GMMPrior().to("meta")
    drawn = meta.sample(7)
    assert drawn.device.type == "meta" and drawn.shape == (7, 63)
    # a seeded CPU generator: reproducible, the global RNG untouched
    fitted, _, _ = _fitted_gmm()
    state = torch.get_rng_state()
    a = fitted.sample(4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, fitted.sample(4, generator=torch.Generator().manual_seed(1)))
    assert a.device == cpu and a.dtype == fitted.means.dtype


def test_gmm_sample_of_no_poses_is_empty_like_the_latent_priors():
    # torch.multinomial refuses n = 0 ("cannot sample n_sample <= 0 samples"), which
    # `advprior sample --model gmm -n 0` reported as an unexpected error
    fitted, _, _ = _fitted_gmm()
    for generator in (None, torch.Generator().manual_seed(0)):
        empty = fitted.sample(0, generator=generator)
        assert empty.shape == (0, 6) and empty.dtype == fitted.means.dtype
    assert GMMPrior().double().sample(0).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gmm_sample_with_a_cpu_generator_on_a_cuda_mixture():
    fitted, _, _ = _fitted_gmm()
    a = fitted.sample(5, generator=torch.Generator().manual_seed(2))
    b = fitted.to("cuda").sample(5, generator=torch.Generator().manual_seed(2))
    assert b.device.type == "cuda"
    assert torch.allclose(b.cpu(), a, atol=1e-5)


def test_gmm_rejects_bad_input():
    prior = GMMPrior()
    with pytest.raises(ValueError, match=r"\(\.\.\., 63\)"):
        prior.nll(torch.zeros(3, 60))
    with pytest.raises(TypeError, match="floating"):
        prior.nll(torch.zeros(3, 63, dtype=torch.int64))
    with pytest.raises(ValueError, match="non-negative"):
        prior.sample(-1)
    with pytest.raises(ValueError, match="full"):
        GMMPrior.from_sklearn(object())


def test_gmm_save_load_round_trip(tmp_path):
    prior, _, x = _fitted_gmm()
    prior.save_pretrained(tmp_path / "gmm")
    loaded = load_pretrained(tmp_path / "gmm")
    assert isinstance(loaded, GMMPrior)
    q = torch.tensor(x[:7], dtype=torch.float32)
    assert torch.equal(loaded.nll(q), prior.nll(q))
    assert torch.equal(loaded.covariances, prior.covariances)


# -- VAE loss helpers ------------------------------------------------------------------------


def test_vae_rotmat_kinematics_match_forward_kinematics():
    from advprior.body import forward_kinematics
    from advprior.train.vae import _joints_from_rotmat

    aa = torch.randn(20, 63, generator=torch.Generator().manual_seed(2)) * 0.8
    expected = forward_kinematics(torch.zeros(20, 3), aa)
    got = _joints_from_rotmat(axis_angle_to_rotmat(aa.reshape(20, 21, 3)))
    assert torch.allclose(got, expected, atol=FK32_ATOL, rtol=0)  # two float32 FK routes


def test_vae_geodesic_matches_roma_with_finite_gradients():
    from advprior.rotations import geodesic_distance
    from advprior.train.vae import _geodesic

    g = torch.Generator().manual_seed(4)
    r1 = axis_angle_to_rotmat(torch.randn(64, 3, generator=g))
    r2 = axis_angle_to_rotmat(torch.randn(64, 3, generator=g))
    assert torch.allclose(_geodesic(r1, r2), geodesic_distance(r1, r2), atol=1e-3)
    half_turn = axis_angle_to_rotmat(torch.tensor([[0.0, 0.0, math.pi]]))
    for a, b in ((r1[:1], r1[:1]), (torch.eye(3)[None], half_turn)):
        x = a.clone().requires_grad_()
        angle = _geodesic(x, b)
        angle.sum().backward()
        assert torch.isfinite(x.grad).all()
    assert _geodesic(torch.eye(3)[None], half_turn).item() == pytest.approx(math.pi, abs=1e-5)
