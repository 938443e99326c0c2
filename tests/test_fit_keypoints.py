"""fit_keypoints on the stand-in body with every kind of prior, batch independence, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from advprior.baselines import GMMPrior, VPoserVAE
from advprior.body import load_body_model
from advprior.errors import ModelNotFoundError
from advprior.eval.metrics import p_mpjpe
from advprior.fitting import KEYPOINT_FORMATS, FitResult, PinholeCamera, fit_keypoints
from advprior.fitting.keypoints import get_format, model_joint_indices
from advprior.fitting.objective import final_objective
from advprior.prior import PosePrior

CAMERA = PinholeCamera(focal=(1000.0, 1000.0), center=(500.0, 500.0))
ITERS = 15


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def scene(
    body,
    body_pose: torch.Tensor,
    seed: int = 0,
    noise: float = 2.0,
    drop: float = 0.0,
    camera: PinholeCamera = CAMERA,
):
    """Keypoints of ``body_pose`` seen upright at ~4 m with random yaw, noise in px, dropped
    joints; returns (keypoints, confidence, true joints)."""
    n = body_pose.shape[0]
    gen = seeded(seed)
    yaw = (torch.rand(n, generator=gen) - 0.5) * 2 * math.pi
    from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

    flip = axis_angle_to_rotmat(torch.tensor([math.pi, 0.0, 0.0]))
    turn = axis_angle_to_rotmat(torch.stack([torch.zeros(n), yaw, torch.zeros(n)], -1))
    cam_rot = torch.as_tensor(camera.rotation, dtype=torch.float32)
    orient = rotmat_to_axis_angle(cam_rot.T @ flip @ turn)
    transl_cam = torch.stack(
        [
            0.2 * torch.randn(n, generator=gen),
            0.2 * torch.randn(n, generator=gen),
            4.0 + 0.3 * torch.randn(n, generator=gen),
        ],
        -1,
    )
    transl = transl_cam @ cam_rot
    out = body(global_orient=orient, body_pose=body_pose, transl=transl)
    kp = camera.project(out.joints) + noise * torch.randn(n, 24, 2, generator=gen)
    conf = (torch.rand(n, 24, generator=gen) >= drop).float()
    return kp, conf, out.joints


def reprojection_px(result: FitResult, kp: torch.Tensor, conf: torch.Tensor) -> float:
    err = (result.projected - kp).norm(dim=-1)
    return float(err[conf > 0].mean())


def tame(model: torch.nn.Module, last: torch.nn.Linear) -> torch.nn.Module:
    """An untrained generator's poses are wild; centre its 6D output on the identity so its
    manifold holds moderate poses (about 0.2-0.6 rad per joint), like a trained prior's."""
    with torch.no_grad():
        last.weight.mul_(4.0)
        last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]).repeat(21))
    return model.eval()


def make_gmm(center: torch.Tensor) -> GMMPrior:
    gmm = GMMPrior(num_components=2)
    gmm.means.copy_(torch.stack([center, 0.5 * center]))
    gmm.covariances.copy_(0.05 * torch.eye(63).repeat(2, 1, 1))
    return gmm.eval()


def check_result(result: FitResult, n: int, latent_dim: int | None) -> None:
    assert result.body_pose.shape == (n, 63)
    assert result.global_orient.shape == (n, 3)
    assert result.transl.shape == (n, 3)
    assert result.betas.shape == (n, 10)
    assert result.loss.shape == (n,) and bool(torch.isfinite(result.loss).all())
    assert result.joints.shape == (n, 24, 3)
    if latent_dim is None:
        assert result.latent is None
    else:
        assert result.latent.shape == (n, latent_dim)


@pytest.mark.parametrize("latent", ["sphere", "uniform", "normal"])
def test_pose_prior_fit_recovers_a_pose_from_its_own_manifold(body, latent: str) -> None:
    torch.manual_seed(0)
    prior = PosePrior(latent=latent)
    prior = tame(prior, prior.generator[-1])
    z = prior.sample_latent(3, generator=seeded(1))
    # A normal latent is penalised by |z|^2 (as VPoser): keep the truth near the mode.
    truth = prior(0.5 * z if latent == "normal" else z)
    kp, conf, joints = scene(body, truth, seed=2, drop=0.2)
    result = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=prior, iterations=ITERS)
    check_result(result, 3, 32)
    assert reprojection_px(result, kp, conf) < 5.0
    # The pose is the prior's decoding of the returned (projected) latent.
    assert torch.allclose(result.body_pose, prior(result.latent), atol=1e-5)
    if latent == "sphere":
        assert torch.allclose(result.latent.norm(dim=-1), torch.ones(3), atol=1e-5)
    if latent == "uniform":
        assert float(result.latent.abs().max()) <= 1.0
    assert float(p_mpjpe(result.joints, joints).mean()) < 0.08


def test_vae_prior_fit(body) -> None:
    torch.manual_seed(0)
    vae = VPoserVAE()
    vae = tame(vae, vae.decoder[-1])
    truth = vae.decode(0.5 * torch.randn(2, 32, generator=seeded(3)))
    kp, conf, joints = scene(body, truth, seed=4)
    result = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=vae, iterations=ITERS)
    check_result(result, 2, 32)
    assert reprojection_px(result, kp, conf) < 5.0
    assert torch.allclose(result.body_pose, vae.decode(result.latent), atol=1e-5)
    assert float(p_mpjpe(result.joints, joints).mean()) < 0.08


def test_gmm_prior_fit(body) -> None:
    truth = 0.3 * torch.randn(2, 63, generator=seeded(5))
    gmm = make_gmm(truth[0])
    kp, conf, joints = scene(body, truth, seed=6)
    result = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=gmm, iterations=ITERS)
    check_result(result, 2, None)
    assert reprojection_px(result, kp, conf) < 6.0
    # Frame 0 sits on a mixture mean: the prior pulls the right way.
    assert float(p_mpjpe(result.joints[:1], joints[:1]).mean()) < 0.05


def test_no_prior_fits_the_keypoints(body) -> None:
    truth = 0.3 * torch.randn(2, 63, generator=seeded(7))
    kp, conf, _ = scene(body, truth, seed=8)
    result = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, iterations=ITERS)
    check_result(result, 2, None)
    assert reprojection_px(result, kp, conf) < 3.0
    named = fit_keypoints(kp, conf, CAMERA, body_model=body, prior="none", iterations=ITERS)
    assert torch.equal(named.body_pose, result.body_pose)


def test_one_frame_cannot_change_another(body) -> None:
    prior = PosePrior(latent="sphere")
    prior = tame(prior, prior.generator[-1])
    truth = prior.sample(2, generator=seeded(9))
    kp, conf, _ = scene(body, truth, seed=10, drop=0.2)
    bad_kp, bad_conf = kp.clone(), conf.clone()
    bad_kp[1] = torch.rand(24, 2, generator=seeded(11)) * 1000  # garbage detections
    bad_conf[1, :5] = 0.0
    for optimizer in ("lbfgs", "adam"):
        a = fit_keypoints(
            kp, conf, CAMERA, body_model=body, prior=prior, iterations=ITERS, optimizer=optimizer
        )
        b = fit_keypoints(
            bad_kp,
            bad_conf,
            CAMERA,
            body_model=body,
            prior=prior,
            iterations=ITERS,
            optimizer=optimizer,
        )
        for name in ("body_pose", "global_orient", "transl", "betas", "latent", "loss", "joints"):
            assert torch.equal(getattr(a, name)[0], getattr(b, name)[0]), (optimizer, name)
        assert not torch.equal(a.body_pose[1], b.body_pose[1])


def test_unbatched_fit_matches_the_batched_fit(body) -> None:
    truth = 0.2 * torch.randn(2, 63, generator=seeded(12))
    kp, conf, _ = scene(body, truth, seed=13)
    batched = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, iterations=ITERS)
    single = fit_keypoints(
        kp, conf, CAMERA, body_model=body, prior=None, iterations=ITERS, batch=False
    )
    # Batch size 1 runs other matmul kernels: rounding differences, which the optimiser may
    # amplify a little (a line search accepting one evaluation earlier), but the same fit.
    assert torch.allclose(batched.loss, single.loss, rtol=0.05)
    assert torch.allclose(batched.joints, single.joints, atol=0.05)
    assert single.info["batch"] is False and batched.info["batch"] is True


def test_pixel_scale_makes_a_larger_image_fit_as_the_original(body) -> None:
    """The weights are in squared pixels; pixel_scale divides keypoints and camera so a large
    image keeps their balance. Scaling by 4 is exact in binary floating point, so the fit of
    the 4x image with pixel_scale=4 is the original fit bit for bit, with projections and loss
    back in the large image's units (x4, x16). Without it the prior and the robust scale are
    16x weaker against the keypoints, and the fit differs."""
    prior = PosePrior.from_pretrained("gan-s")
    truth = prior.sample(2, generator=seeded(5))
    kp, conf, _ = scene(body, truth, seed=6, drop=0.2)
    big = CAMERA.scaled(4.0)
    assert big.focal == (4000.0, 4000.0) and big.center == (2000.0, 2000.0)
    ref = fit_keypoints(kp, conf, CAMERA, body_model=body, iterations=ITERS)
    fit = fit_keypoints(kp * 4, conf, big, body_model=body, iterations=ITERS, pixel_scale=4)
    assert torch.equal(fit.body_pose, ref.body_pose) and torch.equal(fit.transl, ref.transl)
    assert torch.equal(fit.projected, ref.projected * 4) and torch.equal(fit.loss, ref.loss * 16)
    assert fit.info["pixel_scale"] == 4.0 and ref.info["pixel_scale"] == 1.0
    plain = fit_keypoints(kp * 4, conf, big, body_model=body, iterations=ITERS, pixel_scale=1)
    assert not torch.equal(plain.body_pose, ref.body_pose)
    # the default, "auto", sees people ~4x the reference size and picks 4
    auto = fit_keypoints(kp * 4, conf, big, body_model=body, iterations=ITERS)
    assert auto.info["pixel_scale"] == 4.0 and torch.equal(auto.body_pose, ref.body_pose)


def test_a_much_nearer_person_is_fitted_at_its_own_scale(body) -> None:
    """One call, three people: two at the benchmark's size and one 8x larger (a person near the
    camera). The batch's scale (the median frame's) is 1; the near person's own is 8, more than
    twice it, so that frame is fitted at 8: bit for bit the fit of that frame alone with
    pixel_scale=8, while the other two are bit for bit their fit as a batch of two, in the
    caller's order. Before, all three shared scale 1. The other two are bit for bit their fit
    in the caller's batch of three at the shared scale: the near person takes no part in it."""
    prior = PosePrior.from_pretrained("gan-s")
    truth = prior.sample(3, generator=seeded(7))
    kp, conf, _ = scene(body, truth, seed=8, drop=0.2)
    kp[1] = (kp[1] - 500.0) * 8.0 + 500.0
    kw = dict(body_model=body, prior=prior, iterations=ITERS, orientations=1)
    mixed = fit_keypoints(kp, conf, CAMERA, **kw)
    assert mixed.info["pixel_scale"] == [1.0, 8.0, 1.0]
    shared = fit_keypoints(kp, conf, CAMERA, pixel_scale=1, **kw)
    near = fit_keypoints(kp[1:2], conf[1:2], CAMERA, pixel_scale=8, **kw)
    assert shared.info["pixel_scale"] == 1.0 and near.info["pixel_scale"] == 8.0
    for name in ("body_pose", "global_orient", "transl", "betas", "latent", "loss", "joints"):
        a, b = getattr(shared, name), getattr(near, name)
        assert torch.equal(getattr(mixed, name), torch.cat([a[:1], b, a[2:]])), name
    assert torch.equal(mixed.projected[1], near.projected[0])
    assert not torch.equal(shared.body_pose[1], mixed.body_pose[1])


def test_final_objective_is_evaluated_at_the_fits_pixel_scale(body) -> None:
    """final_objective is the objective of FitResult.loss: at each frame's pixel scale, in the
    caller's squared pixels. It was the objective at scale 1 whatever the image size, so on a
    4x image (auto scale 4) its prior terms were 1/16 of the fit's and its robust scale 4x too
    small. Scaling by powers of two is exact, so the 4x image's objective is 16 times the
    original's bit for bit, and a near person's frame (scale 8) is 64 times the objective of
    its keypoints and camera divided by 8 while the others keep the batch's (scale 1)."""
    prior = PosePrior.from_pretrained("gan-s")
    truth = prior.sample(3, generator=seeded(7))
    kp, conf, _ = scene(body, truth, seed=8, drop=0.2)
    kw = dict(prior=prior, body_model=body)
    fn, _, nb = final_objective(kp, conf, CAMERA, **kw)
    gen = seeded(9)
    x = torch.cat(
        [
            torch.tensor([math.pi, 0.0, 0.0]).expand(3, 3),
            torch.tensor([0.0, 0.0, 4.0]) + 0.1 * torch.randn(3, 3, generator=gen),
            0.5 * torch.randn(3, nb, generator=gen),
            prior.sample_latent(3, generator=gen),
        ],
        -1,
    )
    with torch.no_grad():
        big, _, _ = final_objective(kp * 4, conf, CAMERA.scaled(4.0), **kw)
        assert torch.equal(big(x), fn(x) * 16)
        near = kp.clone()
        near[1] = (near[1] - 500.0) * 8.0 + 500.0
        mixed, _, _ = final_objective(near, conf, CAMERA, **kw)
        shared, _, _ = final_objective(near, conf, CAMERA, pixel_scale=1, **kw)
        own, _, _ = final_objective(near / 8, conf, CAMERA.scaled(1 / 8), pixel_scale=1, **kw)
        got = mixed(x)
        assert torch.equal(got[[0, 2]], shared(x)[[0, 2]])
        assert torch.equal(got[1], own(x)[1] * 64)


def test_a_false_detection_spanning_the_image_cannot_change_the_other_fits(body) -> None:
    """docs/fitting.md, "Frames are independent": a frame's result is bitwise the same whether
    its neighbours are clean or garbage. A false detection spread over a 1600 px image has its
    own pixel scale (4, more than twice the batch's 1) and is fitted at it; the other frames
    used to be fitted as a smaller batch, each a row higher than in the clean call, which
    rounds differently and ended up to centimetres away after L-BFGS. They now keep their
    place in a batch of the caller's size: the same bits as with a clean first frame."""
    prior = PosePrior.from_pretrained("gan-s")
    truth = prior.sample(6, generator=seeded(21))
    kp, conf, _ = scene(body, truth, seed=22, drop=0.2)
    kw = dict(body_model=body, prior=prior, iterations=ITERS)
    clean = fit_keypoints(kp, conf, CAMERA, **kw)
    bad = kp.clone()
    bad[0] = torch.rand(24, 2, generator=seeded(23)) * 1600.0
    mixed = fit_keypoints(bad, conf, CAMERA, **kw)
    assert clean.info["pixel_scale"] == 1.0 and mixed.info["pixel_scale"] == [4.0] + [1.0] * 5
    for name in ("body_pose", "global_orient", "transl", "betas", "latent", "loss", "joints"):
        assert torch.equal(getattr(clean, name)[1:], getattr(mixed, name)[1:]), name
    alone = fit_keypoints(bad[:1], conf[:1], CAMERA, pixel_scale=4, **kw)
    assert torch.equal(mixed.body_pose[0], alone.body_pose[0])


def test_a_much_smaller_person_keeps_the_batch_scale(body) -> None:
    """The other way round a small box is as often a crouching or partly seen person as a far
    one, so it keeps the batch's scale: people 4x the benchmark's size with one 4x smaller
    among them are all fitted at 4, one batch."""
    kp, conf, _ = scene(body, 0.2 * torch.randn(3, 63, generator=seeded(9)), seed=10)
    big = (kp - 500.0) * 4.0 + 500.0
    big[1] = kp[1]
    kw = dict(body_model=body, prior=None, iterations=2, orientations=1, view_starts=False)
    assert fit_keypoints(big, conf, CAMERA, **kw).info["pixel_scale"] == 4.0


def test_auto_pixel_scale_is_the_nearest_power_of_two_and_at_least_one() -> None:
    """Median over frames of the larger side of the visible keypoints' box over 350 px,
    rounded to a power of two in log scale; missing keypoints and frames with fewer than two
    visible ones do not count."""
    from advprior.fitting import auto_pixel_scale

    def frames(*sizes: float) -> tuple[torch.Tensor, torch.Tensor]:
        # one keypoint at the origin and one `size` px below it (a box of size x 0), plus a
        # missing keypoint far away
        kp = torch.zeros(len(sizes), 3, 2)
        kp[:, 1, 1] = torch.tensor(sizes)
        kp[:, 2] = 1e6
        conf = torch.tensor([[1.0, 1.0, 0.0]]).repeat(len(sizes), 1)
        return kp, conf

    assert auto_pixel_scale(*frames(300.0, 346.0, 400.0)) == 1.0  # the benchmark's people
    assert auto_pixel_scale(*frames(100.0)) == 1.0  # never below 1
    assert auto_pixel_scale(*frames(490.0)) == 1.0  # 1.4x: log2 0.49 rounds to 0
    assert auto_pixel_scale(*frames(500.0)) == 2.0  # 1.43x: log2 0.51 rounds to 1
    assert auto_pixel_scale(*frames(1400.0, 1300.0, 100.0)) == 4.0  # the median frame
    kp, conf = frames(1400.0, 2800.0, 5000.0)
    conf[1:, 1] = 0.0  # two frames left with one visible keypoint: only the first counts
    assert auto_pixel_scale(kp, conf) == 4.0
    kp = torch.zeros(2, 3, 2)
    kp[:, 1, 0] = 2800.0  # a person lying across the image: the box's larger side counts
    assert auto_pixel_scale(kp, torch.ones(2, 3)) == 8.0
    assert auto_pixel_scale(kp, torch.zeros(2, 3)) == 1.0  # nothing visible
    # per frame: each frame's own, 1 where fewer than two keypoints are visible
    kp, conf = frames(300.0, 1400.0, 100.0, 2800.0)
    conf[3, 1] = 0.0
    own = auto_pixel_scale(kp, conf, per_frame=True)
    assert own.dtype == torch.float64 and own.tolist() == [1.0, 4.0, 1.0, 1.0]


def test_numpy_scalars_are_numbers(body) -> None:
    """A scale computed from float32 keypoints (``height / 350`` on a numpy array) is an
    ``np.float32``, not a ``float``: pixel_scale, sigma, the weights and ``scaled`` refused it
    as "not a positive number". The fit equals the one given Python numbers."""
    kp, conf = _ok_inputs()
    kw = dict(body_model=body, prior=None, iterations=2, orientations=1, view_starts=False)
    ref = fit_keypoints(kp, conf, CAMERA, pixel_scale=2, sigma=100.0, pose_weight=2.0, **kw)
    for num in (np.float32, np.int64):
        fit = fit_keypoints(
            kp, conf, CAMERA, pixel_scale=num(2), sigma=num(100), pose_weight=num(2), **kw
        )
        assert fit.info["pixel_scale"] == 2.0 and torch.equal(fit.body_pose, ref.body_pose)
        assert CAMERA.scaled(num(4)).focal == (4000.0, 4000.0)
    with pytest.raises(ValueError, match="pixel_scale"):
        fit_keypoints(kp, conf, CAMERA, pixel_scale=np.bool_(True), **kw)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), True, "2", "Auto"])
def test_pixel_scale_must_be_a_positive_number(body, bad) -> None:
    kp, conf = _ok_inputs()
    with pytest.raises(ValueError, match="pixel_scale"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, pixel_scale=bad)
    with pytest.raises(ValueError, match="factor"):
        CAMERA.scaled(bad)


def test_nan_keypoints_count_as_missing(body) -> None:
    truth = 0.2 * torch.randn(2, 63, generator=seeded(14))
    kp, conf, _ = scene(body, truth, seed=15)
    nan_kp = kp.clone()
    nan_kp[0, [3, 7]] = float("nan")
    zero_conf = conf.clone()
    zero_conf[0, [3, 7]] = 0.0
    a = fit_keypoints(nan_kp, conf, CAMERA, body_model=body, prior=None, iterations=5)
    b = fit_keypoints(kp, zero_conf, CAMERA, body_model=body, prior=None, iterations=5)
    assert torch.equal(a.body_pose, b.body_pose)
    assert bool(torch.isfinite(a.loss).all())


def test_known_camera_rotation(body) -> None:
    from advprior.rotations import axis_angle_to_rotmat

    rot = axis_angle_to_rotmat(torch.tensor([0.3, -0.5, 0.1])).numpy()
    camera = PinholeCamera(focal=900.0, center=(400.0, 300.0), rotation=rot)
    truth = 0.2 * torch.randn(2, 63, generator=seeded(16))
    kp, conf, joints = scene(body, truth, seed=17, camera=camera)
    result = fit_keypoints(kp, conf, camera, body_model=body, prior=None, iterations=ITERS)
    assert reprojection_px(result, kp, conf) < 3.0
    # joints are in the world frame: the camera's projection of them is the fit's projection.
    assert torch.allclose(camera.project(result.joints), result.projected, atol=1e-3)


@pytest.mark.parametrize("fmt", ["coco17", "openpose25"])
def test_detector_formats_on_the_standin(body, fmt: str) -> None:
    spec = get_format(fmt)
    truth = 0.2 * torch.randn(2, 63, generator=seeded(18))
    out = body(
        global_orient=torch.tensor([[math.pi, 0.0, 0.0]] * 2),
        body_pose=truth,
        transl=torch.tensor([[0.0, 0.2, 4.0]] * 2),
    )
    idx = model_joint_indices(spec, "smpl", out.model_joints.shape[1], body.extra_joint_names)
    kp = CAMERA.project(out.model_joints[:, idx])
    result = fit_keypoints(
        kp, None, CAMERA, body_model=body, prior=None, keypoint_format=fmt, iterations=ITERS
    )
    assert result.projected.shape == (2, spec.num_keypoints, 2)
    assert reprojection_px(result, kp, torch.ones(2, spec.num_keypoints)) < 3.0


def test_format_tables_are_consistent() -> None:
    for spec in KEYPOINT_FORMATS.values():
        assert len(spec.names) == len(spec.sources) == spec.num_keypoints
        for shoulder, hip in spec.torso:
            assert "shoulder" in spec.names[shoulder].lower() and "hip" in spec.names[hip].lower()
    with pytest.raises(ValueError, match="surface points"):
        model_joint_indices(get_format("coco17"), "smpl", 24, ())
    # SMPL-X: 55 skeleton joints, then the vertex joints, then 51 face landmarks.
    from advprior.body.model import EXTRA_JOINT_NAMES

    idx = model_joint_indices(get_format("openpose25"), "smplx", 55 + 21 + 51, EXTRA_JOINT_NAMES)
    assert idx[0] == 55 + EXTRA_JOINT_NAMES.index("nose")
    assert idx[1] == 12 and idx[8] == 0 and idx[24] == 55 + EXTRA_JOINT_NAMES.index("RHeel")


def test_fit_result_round_trip(body, tmp_path) -> None:
    truth = 0.2 * torch.randn(1, 63, generator=seeded(19))
    kp, conf, _ = scene(body, truth, seed=20)
    result = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, iterations=3)
    path = result.to_npz(tmp_path / "out" / "fit.npz")
    data = np.load(path)
    assert set(data.files) >= {
        "body_pose",
        "global_orient",
        "transl",
        "betas",
        "loss",
        "joints",
        "info",
    }
    assert "latent" not in data.files
    np.testing.assert_array_equal(data["body_pose"], result.body_pose.numpy())
    assert result.as_dict()["joints"].shape == (1, 24, 3)
    assert len(result) == 1
    assert not list(path.parent.glob("*.tmp"))


def test_a_saved_fit_records_what_besides_its_inputs_decides_it(body, tmp_path) -> None:
    """A fit is deterministic for its inputs and settings, the software and the arithmetic:
    on 2 threads instead of 1, 16 validation frames ended up to 10 cm apart (L-BFGS amplifies
    the other rounding). The saved info recorded the settings but neither the versions nor
    the thread count; ``info["environment"]`` now holds them (so does ``fit_sequence``'s)."""
    import json

    from advprior.fitting import fit_sequence
    from advprior.version import software_versions

    kp, conf, _ = scene(body, 0.2 * torch.randn(2, 63, generator=seeded(24)), seed=25)
    want = {**software_versions(), "threads": torch.get_num_threads(), "device": "cpu"}
    result = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, iterations=2)
    assert result.info["environment"] == want
    saved = np.load(result.to_npz(tmp_path / "fit.npz"))
    assert json.loads(str(saved["info"]))["environment"] == want
    clip = fit_sequence(
        kp, conf, CAMERA, body_model=body, prior=None, iterations=2, init_iterations=2
    )
    assert clip.info["environment"] == want


# -- bad input ------------------------------------------------------------------------------


def _ok_inputs():
    kp = torch.full((2, 24, 2), 500.0) + 50 * torch.randn(2, 24, 2, generator=seeded(0))
    return kp, torch.ones(2, 24)


@pytest.mark.parametrize(
    ("kp_shape", "conf_shape", "match"),
    [
        ((2, 23, 2), (2, 23), r"\(B, 24, 2\)"),
        ((2, 24), (2, 24), r"\(B, 24, 2\)"),
        ((2, 24, 2), (3, 24), r"confidence must have shape \(2, 24\)"),
    ],
)
def test_shape_mismatch(body, kp_shape, conf_shape, match) -> None:
    with pytest.raises(ValueError, match=match):
        fit_keypoints(
            torch.zeros(kp_shape), torch.ones(conf_shape), CAMERA, body_model=body, prior=None
        )


def test_all_zero_confidence_is_an_error(body) -> None:
    kp, conf = _ok_inputs()
    conf[1] = 0.0
    with pytest.raises(ValueError, match=r"frames \[1\] have fewer than 2 keypoints"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None)
    kp[0] = float("nan")
    kp[1, 1:] = float("nan")
    with pytest.raises(ValueError, match=r"frames \[0, 1\]"):
        fit_keypoints(kp, torch.ones(2, 24), CAMERA, body_model=body, prior=None)


@pytest.mark.parametrize(
    "stages",
    [
        [(float("nan"), 5.0)],
        [(4.78, float("inf"))],
        [(-4.78, 5.0)],
        [(4.78, 5.0, 1.0)],
        (4.78, 5.0),
    ],
)
def test_bad_stages_are_refused(body, stages) -> None:
    """A NaN stage weight made every frame's fit NaN without an error, a negative one was
    squared into its opposite, and a triple or a bare pair failed unpacking with no word of
    what ``stages`` takes."""
    kp, conf = _ok_inputs()
    with pytest.raises(ValueError, match=r"stages must .*\(prior weight, shape weight\)"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, stages=stages)


@pytest.mark.parametrize("orientations", [2.0, 1.0, np.float64(2.0)])
def test_orientations_must_be_a_whole_number(body, orientations) -> None:
    # 2.0 passed the check (2.0 in (0, 1, 2)) and failed deep in the fit with a TypeError
    kp, conf = _ok_inputs()
    with pytest.raises(ValueError, match="orientations must be 1 or 2"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, orientations=orientations)


@pytest.mark.parametrize("lr", [float("nan"), 0.0, -0.01, "0.02"])
def test_a_learning_rate_that_is_no_positive_number_is_refused(body, lr) -> None:
    # a NaN or negative Adam lr gave NaN poses, with no word of why
    kp, conf = _ok_inputs()
    with pytest.raises(ValueError, match="lr must be a positive number"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, optimizer="adam", lr=lr)


def test_no_frames_is_an_error(body) -> None:
    # a batch whose frames were all filtered out upstream: a ZeroDivisionError in the fit before
    for conf in (torch.zeros(0, 24), None):
        with pytest.raises(ValueError, match=r"keypoints has no frames \(shape \(0, 24, 2\)\)"):
            fit_keypoints(torch.zeros(0, 24, 2), conf, CAMERA, body_model=body, prior=None)


def test_bad_values(body) -> None:
    kp, conf = _ok_inputs()
    inf_kp = kp.clone()
    inf_kp[0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="Inf"):
        fit_keypoints(inf_kp, conf, CAMERA, body_model=body, prior=None)
    # already at confidence 0: the message told such a caller to set confidence 0
    zero = conf.clone()
    zero[0, 0] = 0.0
    with pytest.raises(ValueError, match="refused at any confidence"):
        fit_keypoints(inf_kp, zero, CAMERA, body_model=body, prior=None)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_keypoints(kp, conf * 2, CAMERA, body_model=body, prior=None)
    with pytest.raises(TypeError, match="real numbers"):
        fit_keypoints(kp > 0, conf, CAMERA, body_model=body, prior=None)
    with pytest.raises(TypeError, match="PinholeCamera"):
        fit_keypoints(kp, conf, {"focal": 1000}, body_model=body, prior=None)
    with pytest.raises(ValueError, match="keypoint_format"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, keypoint_format="mpii")
    with pytest.raises(ValueError, match="iterations"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, iterations=0)
    with pytest.raises(ValueError, match="optimizer"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, optimizer="sgd")
    with pytest.raises(TypeError, match="prior must be"):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior=torch.nn.Linear(2, 2))
    with pytest.raises(ModelNotFoundError):
        fit_keypoints(kp, conf, CAMERA, body_model=body, prior="no-such-prior")


@pytest.mark.parametrize("focal", [0.0, -100.0, (1000.0, 0.0), float("nan")])
def test_camera_rejects_bad_focal(focal) -> None:
    with pytest.raises(ValueError, match="focal"):
        PinholeCamera(focal=focal, center=(0.0, 0.0))


def test_camera_convention_and_validation() -> None:
    cam = PinholeCamera(focal=(800.0, 900.0), center=(320.0, 240.0))
    # OpenCV: a point right of and below the optical axis lands right of and below the centre.
    uv = cam.project(torch.tensor([[0.5, 0.25, 2.0]]))
    assert torch.allclose(uv, torch.tensor([[320.0 + 200.0, 240.0 + 112.5]]))
    pts = torch.tensor([[0.1, -0.3, 3.0], [-1.0, 0.5, 7.0]])
    back = cam.backproject(cam.project(pts), cam.to_camera(pts)[:, 2])
    assert torch.allclose(back, pts, atol=1e-5)
    with pytest.raises(ValueError, match="proper rotation"):
        PinholeCamera(1000.0, (0, 0), rotation=np.diag([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        PinholeCamera(1000.0, (0, 0), rotation=np.eye(2))
    with pytest.raises(ValueError, match="center"):
        PinholeCamera(1000.0, (0, 0, 0))
    assert PinholeCamera.from_dict(cam.to_dict()).focal == cam.focal


def test_numpy_float64_input_with_a_confidence_column(body) -> None:
    truth = 0.2 * torch.randn(1, 63, generator=seeded(21))
    kp, conf, _ = scene(body, truth, seed=22)
    packed = np.concatenate([kp.numpy(), conf.numpy()[..., None]], -1).astype(np.float64)
    a = fit_keypoints(packed, None, CAMERA, body_model=body, prior=None, iterations=5)
    assert a.body_pose.dtype == torch.float64 and a.body_pose.shape == (1, 63)
    b = fit_keypoints(kp.double(), conf, CAMERA, body_model=body, prior=None, iterations=5)
    assert torch.equal(a.body_pose, b.body_pose)
    with pytest.raises(ValueError, match="third"):
        fit_keypoints(packed, conf, CAMERA, body_model=body, prior=None)
