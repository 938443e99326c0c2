"""fit_sequence: shapes, bad input (T=0, T=1, all frames missing, NaN), missing frames, windows,
batched clips, and that the temporal terms remove jitter; ``advprior fit --sequence``."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import numpy as np
import pytest
import torch

from advprior.body import forward_kinematics
from advprior.cli import main
from advprior.fitting import PinholeCamera, Smoothness, fit_keypoints, fit_sequence
from advprior.fitting.result import FitResult
from advprior.fitting.sequence import as_smoothness, latent_step
from advprior.hub import load_pretrained
from advprior.latent import LatentSpace

CAMERA = PinholeCamera(1000.0, (500.0, 500.0))


@pytest.fixture(scope="module")
def prior():
    return load_pretrained("gan-s").eval()


def _clip(prior, t: int, seed: int = 0, noise_px: float = 5.0):
    """A smooth clip: slerp between two prior samples, walking sideways 4 m from the camera."""
    gen = torch.Generator().manual_seed(seed)
    z = prior.sample_latent(2, generator=gen)
    pose = prior.decode(prior.latent_space.interpolate(z[0], z[1], t))
    go = torch.tensor([math.pi, 0.0, 0.0]).expand(t, 3)
    tr = torch.stack([torch.linspace(0, 0.3, t), torch.zeros(t), torch.full((t,), 4.0)], -1)
    joints = forward_kinematics(go, pose, transl=tr)
    kp = CAMERA.project(joints) + noise_px * torch.randn(t, 24, 2, generator=gen)
    return kp, torch.ones(t, 24), joints


def _accel(joints: torch.Tensor) -> float:
    rel = joints - joints[..., :1, :]
    return float((rel[2:] - 2 * rel[1:-1] + rel[:-2]).norm(dim=-1).mean())


def test_bad_input_is_refused(prior) -> None:
    kp, conf, _ = _clip(prior, 3)
    with pytest.raises(ValueError, match="no frames"):
        fit_sequence(kp[:0], conf[:0], CAMERA, prior=prior)
    with pytest.raises(ValueError, match="all frames missing"):
        fit_sequence(kp, torch.zeros_like(conf), CAMERA, prior=prior)
    with pytest.raises(ValueError, match="all frames missing"):
        fit_sequence(torch.full_like(kp, float("nan")), conf, CAMERA, prior=prior)
    with pytest.raises(ValueError, match="confidence must lie in"):
        fit_sequence(kp, torch.full_like(conf, float("nan")), CAMERA, prior=prior)
    with pytest.raises(ValueError, match=r"\(T, 24, 2\)"):
        fit_sequence(kp[0], conf[0], CAMERA, prior=prior)
    with pytest.raises(ValueError, match="confidence must have shape"):
        fit_sequence(kp, conf[:2], CAMERA, prior=prior)
    # 24 keypoints under another format's name: the keypoints are named, not the confidence
    with pytest.raises(ValueError, match=r"keypoints must have shape \(\.\.\., 17, 2\)"):
        fit_sequence(kp, conf, CAMERA, prior=prior, keypoint_format="coco17")
    with pytest.raises(ValueError, match="overlap"):
        fit_sequence(kp, conf, CAMERA, prior=prior, window=4, overlap=4)
    with pytest.raises(ValueError, match="smoothness"):
        fit_sequence(kp, conf, CAMERA, prior=prior, smoothness={"pose": 1.0})
    with pytest.raises(ValueError, match="smoothness.latent"):
        as_smoothness({"latent": -1.0})
    with pytest.raises(TypeError, match="smoothness"):
        as_smoothness("smooth")
    assert as_smoothness(2.0) == Smoothness().scaled(2.0)
    # a numpy scalar is a number too (it was a TypeError: "must be None, a number, ...")
    assert as_smoothness(np.float32(2.0)) == Smoothness().scaled(2.0)
    with pytest.raises(TypeError, match="smoothness"):
        as_smoothness(np.bool_(True))


def test_one_frame_and_a_missing_frame(prior) -> None:
    kp, conf, _ = _clip(prior, 4)
    one = fit_sequence(kp[:1], conf[:1], CAMERA, prior=prior, iterations=5, init_iterations=3)
    assert one.body_pose.shape == (1, 63) and one.joints.shape == (1, 24, 3)
    torch.testing.assert_close(one.latent.norm(dim=-1), torch.ones(1))
    kp = kp.clone()
    kp[2] = float("nan")  # a whole frame without keypoints
    res = fit_sequence(kp, conf, CAMERA, prior=prior, iterations=5, init_iterations=3)
    assert res.info["missing_frames"] == 1
    assert bool(torch.isfinite(res.joints).all()) and bool(torch.isfinite(res.body_pose).all())
    # One shape for the clip.
    assert bool((res.betas == res.betas[:1]).all())


def test_starts_go_to_the_per_frame_start(prior) -> None:
    """``starts`` is the per-frame start's: the same as passing that fit as ``init``."""
    kp, conf, _ = _clip(prior, 3)
    kw = {"iterations": 2}
    res = fit_sequence(kp, conf, CAMERA, prior=prior, init_iterations=2, starts=2, **kw)
    init = fit_keypoints(kp, conf, CAMERA, prior=prior, iterations=2, starts=2)
    same = fit_sequence(kp, conf, CAMERA, prior=prior, init=init, **kw)
    torch.testing.assert_close(res.body_pose, same.body_pose, rtol=0, atol=0)
    assert res.info["init_starts"] == 2 and same.info["init_starts"] is None
    with pytest.raises(ValueError, match="starts must be a positive int"):
        fit_sequence(kp, conf, CAMERA, prior=prior, starts=0)


def test_pixel_scale_makes_a_larger_image_fit_as_the_original(prior) -> None:
    """As for fit_keypoints: the 4x image with pixel_scale=4 is the original fit bit for bit (x4
    is exact in binary floating point), projections and loss in the large image's units."""
    kp, conf, _ = _clip(prior, 3)
    kw = {"prior": prior, "iterations": 3, "init_iterations": 2}
    ref = fit_sequence(kp, conf, CAMERA, **kw)
    fit = fit_sequence(kp * 4, conf, CAMERA.scaled(4.0), pixel_scale=4, **kw)
    torch.testing.assert_close(fit.body_pose, ref.body_pose, rtol=0, atol=0)
    torch.testing.assert_close(fit.projected, ref.projected * 4, rtol=0, atol=0)
    torch.testing.assert_close(fit.loss, ref.loss * 16, rtol=0, atol=0)
    assert fit.info["pixel_scale"] == 4.0
    with pytest.raises(ValueError, match="pixel_scale"):
        fit_sequence(kp, conf, CAMERA, pixel_scale=0.0, **kw)


def test_a_much_nearer_clip_is_fitted_at_its_own_scale(prior) -> None:
    """Two clips, the second 8x larger (a person near the camera). The call's scale (the
    median frame's) is 1 and the near clip's own is 8, more than twice it, so that clip is
    fitted at 8: bit for bit its fit alone with pixel_scale=8, and the other clip its fit alone
    at 1, in the caller's order; a given per-frame start is cut per clip. Before, both clips
    shared scale 1."""
    kw = {"prior": prior, "iterations": 3, "init_iterations": 2, "orientations": 1}
    (kp0, conf0, _), (kp1, conf1, _) = _clip(prior, 3, seed=4), _clip(prior, 3, seed=5)
    kp = torch.stack([kp0, (kp1 - 500.0) * 8.0 + 500.0])
    conf = torch.stack([conf0, conf1])
    conf[1, 1] = 0.0  # a missing frame in the near clip: init rows are 3 + 2
    mixed = fit_sequence(kp, conf, CAMERA, **kw)
    assert mixed.info["pixel_scale"] == [1.0, 8.0] and mixed.info["clips"] == 2
    assert mixed.info["missing_frames"] == 1 and mixed.body_pose.shape == (2, 3, 63)
    far = fit_sequence(kp[:1], conf[:1], CAMERA, **kw)
    near = fit_sequence(kp[1:], conf[1:], CAMERA, pixel_scale=8, **kw)
    assert far.info["pixel_scale"] == 1.0 and near.info["pixel_scale"] == 8.0
    for name in ("body_pose", "global_orient", "transl", "betas", "latent", "loss", "joints"):
        want = torch.cat([getattr(far, name), getattr(near, name)])
        assert torch.equal(getattr(mixed, name), want), name
    shared = fit_sequence(kp, conf, CAMERA, pixel_scale=1, **kw)
    assert not torch.equal(shared.body_pose[1], mixed.body_pose[1])
    # the same with a per-frame start given: its rows are cut clip by clip
    seen = (conf > 0).sum(-1) >= 2
    init = fit_keypoints(kp[seen], conf[seen], CAMERA, prior=prior, iterations=2, pixel_scale=1)
    given = fit_sequence(kp, conf, CAMERA, init=init, **kw)
    alone = fit_sequence(kp[1:], conf[1:], CAMERA, pixel_scale=8, init=_rows(init, 3, 5), **kw)
    assert torch.equal(given.body_pose[1], alone.body_pose[0])
    with pytest.raises(ValueError, match="init has 4 frames"):
        fit_sequence(kp, conf, CAMERA, init=_rows(init, 0, 4), **kw)


def _rows(fit: FitResult, start: int, stop: int) -> FitResult:
    """Frames ``start:stop`` of a per-frame fit."""
    names = [f.name for f in fields(FitResult) if f.name != "info"]
    part = {n: None if getattr(fit, n) is None else getattr(fit, n)[start:stop] for n in names}
    return FitResult(**part, info=fit.info)


def test_init_from_another_prior_is_refused(prior) -> None:
    # every shipped latent prior has 32 numbers: the fit's recorded prior tells them apart
    kp, conf, _ = _clip(prior, 2)
    init = fit_keypoints(kp, conf, CAMERA, prior=prior, iterations=2)
    with pytest.raises(ValueError, match=r"fitted with a gan prior \(latent sphere\).*vae"):
        fit_sequence(kp, conf, CAMERA, prior="vae", init=init, iterations=2)
    with pytest.raises(ValueError, match=r"latent sphere\).*gan prior \(latent uniform\)"):
        fit_sequence(kp, conf, CAMERA, prior="gan-u", init=init, iterations=2)
    same = fit_sequence(kp, conf, CAMERA, prior=prior, init=init, iterations=2)
    assert same.body_pose.shape == (2, 63)


def test_windows_batches_and_smoothness(prior) -> None:
    t = 10
    kp0, conf0, truth = _clip(prior, t, seed=1, noise_px=8.0)
    kp1, conf1, _ = _clip(prior, t, seed=2)
    kp, conf = torch.stack([kp0, kp1]), torch.stack([conf0, conf1])
    kw = {"iterations": 40, "init_iterations": 8, "window": 4, "overlap": 1}
    both = fit_sequence(kp, conf, CAMERA, prior=prior, **kw)
    assert both.body_pose.shape == (2, t, 63) and both.latent.shape == (2, t, 32)
    assert both.projected.shape == (2, t, 24, 2) and both.iterations.shape == (2, t)
    # Clips are separate problems: with another second clip in the batch, the first clip's fit
    # is the same to the last bit (each clip is its own L-BFGS row, and a batch of the same size
    # runs the same kernels). A batch of another size may round differently (BLAS blocking), and
    # 40 iterations of a non-convex fit can amplify that, so it is not compared.
    kp2, conf2, _ = _clip(prior, t, seed=3)
    other = fit_sequence(torch.stack([kp0, kp2]), torch.stack([conf0, conf2]), CAMERA,
                         prior=prior, **kw)  # fmt: skip
    assert torch.equal(other.joints[0], both.joints[0])
    assert not torch.equal(other.joints[1], both.joints[1])
    alone = fit_sequence(kp0, conf0, CAMERA, prior=prior, **kw)
    # The temporal terms remove the per-frame jitter of the noisy keypoints.
    rough = fit_sequence(kp0, conf0, CAMERA, prior=prior, smoothness=0.0, **kw)
    assert _accel(alone.joints) < 0.5 * _accel(rough.joints)


def test_latent_step_is_the_squared_geodesic_angle() -> None:
    sphere = LatentSpace("sphere", 3)
    a = torch.tensor([1.0, 0.0, 0.0])
    for angle in (0.0, 0.3, 2.0, math.pi):
        b = 2.5 * torch.tensor([math.cos(angle), math.sin(angle), 0.0])  # norm does not count
        # asin near pi/2 (antipodes) amplifies the chord's rounding: eps / sqrt(eps) ~ 3e-4.
        assert abs(float(latent_step(sphere, a, b)) - angle**2) < (1e-5 if angle < 3 else 2e-3)
    z = a.clone().requires_grad_(True)
    latent_step(sphere, z, a.clone()).backward()
    assert bool(torch.isfinite(z.grad).all())
    normal = LatentSpace("normal", 3)
    assert float(latent_step(normal, a, 2 * a)) == 1.0
    assert float(latent_step(None, a, -a)) == 4.0


def test_fit_command_on_a_sequence(prior, tmp_path) -> None:
    kp, conf, _ = _clip(prior, 3)
    frames = kp.tolist()
    frames[1] = [None] * 24
    path = tmp_path / "clip.json"
    path.write_text(
        json.dumps(
            {
                "format": "smpl24",
                "keypoints": frames,
                "camera": {"focal": [1000, 1000], "center": [500, 500]},
            }
        )
    )
    out = tmp_path / "fit.npz"
    rc = main(["fit", str(path), "--sequence", "--iterations", "3", "--out", str(out)])
    assert rc == 0
    with np.load(out, allow_pickle=False) as data:
        assert data["body_pose"].shape == (3, 63) and np.isfinite(data["joints"]).all()
    empty = tmp_path / "empty.json"
    empty.write_text(
        json.dumps(
            {
                "keypoints": [[None] * 24] * 2,
                "camera": {"focal": [1000, 1000], "center": [500, 500]},
            }
        )
    )
    # a file whose frames are all missing is a failure (exit 1), reported in one line
    assert main(["fit", str(empty), "--sequence", "--out", str(out)]) == 1


def test_a_long_clip_poses_its_body_in_chunks() -> None:
    """A body posed through its full mesh (SMPL-H and SMPL-X files) holds ~0.7 MB per frame:
    the final joints were computed in one call for the whole clip (~12 GB for 10 minutes at
    30 fps), though the docstring promises memory growing with the window. Every body call is
    now at most FINAL_CHUNK frames."""
    from advprior.body import load_body_model
    from advprior.fitting import FitResult
    from advprior.fitting.sequence import FINAL_CHUNK

    body = load_body_model()
    calls: list[int] = []

    class FullMesh:  # what a SMPL-X model looks like to the fit: no surface-point shortcut
        def __getattr__(self, name: str):
            if name == "posed_points":
                raise AttributeError(name)
            return getattr(body, name)

        def __call__(self, **kwargs):
            calls.append(len(kwargs["body_pose"]))
            return body(**kwargs)

    t = FINAL_CHUNK + 40
    kp = CAMERA.project(torch.tensor([[0.0, 0.0, 4.0]])).expand(t, 17, 2)
    kp = kp + 200 * torch.rand(t, 17, 2, generator=torch.Generator().manual_seed(0))
    init = FitResult(
        body_pose=torch.zeros(t, 63),
        global_orient=torch.tensor([math.pi, 0.0, 0.0]).expand(t, 3),
        transl=torch.tensor([0.0, 0.0, 4.0]).expand(t, 3),
        betas=torch.zeros(t, 10),
        latent=None,
        loss=torch.zeros(t),
        joints=torch.zeros(t, 24, 3),
        projected=torch.zeros(t, 17, 2),
        iterations=torch.zeros(t, dtype=torch.long),
    )
    out = fit_sequence(
        kp,
        torch.ones(t, 17),
        CAMERA,
        prior=None,
        pose_density=None,
        body_model=FullMesh(),
        keypoint_format="coco17",
        init=init,
        window=64,
        overlap=0,
        iterations=1,
    )
    assert calls[-2:] == [FINAL_CHUNK, 40] and max(calls) == FINAL_CHUNK, calls
    assert out.joints.shape == (t, 24, 3) and torch.isfinite(out.joints).all()


def test_fit_command_refuses_what_a_sequence_cannot_do(tmp_path, capsys) -> None:
    # --optimizer adam was silently replaced by L-BFGS with --sequence
    folder = tmp_path / "openpose_json"
    folder.mkdir()
    (folder / "clip_000000000000_keypoints.json").write_text(json.dumps({"people": []}))
    argv = ["fit", str(folder / "*.json"), "--sequence", "--camera", "1000,500,500"]
    assert main([*argv, "--optimizer", "adam"]) == 2
    assert "--optimizer adam is for per-frame fits" in capsys.readouterr().err
    # OpenPose's --write_json folder itself: say to pass its files (was "not a regular file")
    assert main(["fit", str(folder), "--sequence", "--camera", "1000,500,500"]) == 1
    err = capsys.readouterr().err
    assert "is a folder; pass its keypoint files" in err and "*.json" in err


def test_fps_scales_the_temporal_weights(prior, tmp_path, capsys) -> None:
    """The temporal weights are per step between frames, chosen at 30 fps: fps=F is the fit with
    the weights times (F / 30) ** FPS_EXPONENT, bit for bit (also the user's own weights), and
    fps=30 the default fit; info records the frame rate and the weights used."""
    from advprior.fitting.sequence import FPS_EXPONENT

    kp, conf, _ = _clip(prior, 4, seed=6)
    kw = {"prior": prior, "iterations": 3, "init_iterations": 2, "orientations": 1}
    plain = fit_sequence(kp, conf, CAMERA, **kw)
    assert plain.info["fps"] is None
    at30 = fit_sequence(kp, conf, CAMERA, fps=30, **kw)
    assert torch.equal(at30.body_pose, plain.body_pose) and at30.info["fps"] == 30.0
    fast = fit_sequence(kp, conf, CAMERA, fps=60, **kw)
    factor = 2.0**FPS_EXPONENT
    same = fit_sequence(kp, conf, CAMERA, smoothness=Smoothness().scaled(factor), **kw)
    assert torch.equal(fast.body_pose, same.body_pose) and torch.equal(fast.transl, same.transl)
    assert fast.info["smoothness"]["latent"] == Smoothness().latent * factor
    mine = fit_sequence(kp, conf, CAMERA, smoothness=0.5, fps=15, **kw)
    assert mine.info["smoothness"]["orient"] == Smoothness().orient * 0.5 * 0.5**FPS_EXPONENT
    for bad in (0, -30, float("nan"), float("inf"), "30"):
        with pytest.raises(ValueError, match="fps must be a positive frame rate"):
            fit_sequence(kp, conf, CAMERA, fps=bad, **kw)
    argv = ["fit", str(tmp_path / "none.json"), "--camera", "1000,500,500"]
    assert main([*argv, "--fps", "60"]) == 2
    assert "--fps is the frame rate of a --sequence" in capsys.readouterr().err
    assert main([*argv, "--sequence", "--fps", "0"]) == 2
    assert "--fps must be a finite number > 0" in capsys.readouterr().err


def _zoom_clip(t: int = 5):
    """A body 4 m away, filmed by a camera zooming in by 1.2x per frame from 800 px focal length
    (centre moving too): keypoints in each frame's own pixels, and the per-frame cameras."""
    go = torch.tensor([math.pi, 0.0, 0.0]).expand(t, 3)
    tr = torch.stack([torch.linspace(0, 0.2, t), torch.zeros(t), torch.full((t,), 4.0)], -1)
    joints = forward_kinematics(go, torch.zeros(t, 63), transl=tr)
    cams = [PinholeCamera(800.0 * 1.2**i, (500.0 + 10 * i, 500.0)) for i in range(t)]
    kp = torch.stack([cam.project(j) for cam, j in zip(cams, joints, strict=True)])
    return kp, cams, tr


def test_per_frame_cameras_of_a_zoom() -> None:
    kp, cams, tr = _zoom_clip()
    opts = {"prior": None, "pose_density": None, "iterations": 30, "init_iterations": 10}
    res = fit_sequence(kp, torch.ones(5, 24), cams, **opts)
    # the body stays at one depth (it does not walk towards the camera as the focal grows)
    depth = res.transl[:, 2]
    assert float(depth.max() - depth.min()) < 0.05, depth
    # projected is in each frame's own pixels
    err = (res.projected - kp).norm(dim=-1).median(-1).values
    assert float(err.max()) < 10.0, err
    assert res.info["per_frame_cameras"] is True
    # the one camera it had to take before cannot explain the zoomed frames (the temporal
    # terms hold the body's size and place): they fit far worse
    one = fit_sequence(kp, torch.ones(5, 24), cams[0], **opts)
    one_err = (one.projected - kp).norm(dim=-1).median(-1).values
    assert float(one_err.mean()) > 2 * float(err.mean()), (one_err, err)
    # clips share the cameras; a wrong count or another rotation is refused
    two = fit_sequence(torch.stack([kp, kp]), torch.ones(2, 5, 24), cams, **opts)
    assert two.projected.shape == (2, 5, 24, 2)
    with pytest.raises(ValueError, match="4 cameras for 5 frames"):
        fit_sequence(kp, torch.ones(5, 24), cams[:4], **opts)
    turned = PinholeCamera(900.0, (500.0, 500.0), rotation=[[0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    with pytest.raises(ValueError, match="frame 1's rotation differs"):
        fit_sequence(kp, torch.ones(5, 24), [cams[0], turned, *cams[2:]], **opts)
    with pytest.raises(TypeError, match="one per frame"):
        fit_sequence(kp, torch.ones(5, 24), "1000,500,500", **opts)


def test_fit_command_takes_each_files_camera_in_a_sequence(tmp_path, capsys) -> None:
    kp, cams, _ = _zoom_clip(3)
    files = []
    for i, cam in enumerate(cams):
        path = tmp_path / f"frame{i}.json"
        path.write_text(json.dumps({"keypoints": kp[i].tolist(), "camera": cam.to_dict()}))
        files.append(str(path))
    out = tmp_path / "fit.npz"
    argv = ["fit", *files, "--prior", "none", "--iterations", "3", "--out", str(out)]
    assert main([*argv, "--sequence"]) == 0
    with np.load(out, allow_pickle=False) as data:
        info = json.loads(str(data["info"]))
    assert [c["focal"] for c in info["frame_cameras"]] == [[800.0 * 1.2**i] * 2 for i in range(3)]
    capsys.readouterr()
    # one batch of frames still takes one camera, and the message names the sequence way
    assert main(argv) == 1
    assert "different cameras" in capsys.readouterr().err


def test_numpy_integers_are_integers(prior, tmp_path) -> None:
    # np.int64 from array arithmetic (window = np.clip(...), a count from an array) was refused
    # as "must be an int >= 2, got np.int64(3)"; it is an int, and info stays JSON (to_npz)
    kp, conf, _ = _clip(prior, 4)
    ints = {"window": np.int64(3), "overlap": np.int64(1), "iterations": np.int32(2)}
    res = fit_sequence(
        kp, conf, CAMERA, prior=None, pose_density=None, init_iterations=np.int64(2),
        starts=np.int64(1), **ints,
    )  # fmt: skip
    assert res.info["window"] == 3 and type(res.info["window"]) is int
    res.to_npz(tmp_path / "fit.npz")
    one = fit_keypoints(kp[:1], conf[:1], CAMERA, prior=None, iterations=np.int64(2))
    assert len(one) == 1
    for bad in (True, np.bool_(True), 3.0):
        with pytest.raises(ValueError, match="window must be an int"):
            fit_sequence(kp, conf, CAMERA, prior=None, window=bad)


def test_a_fit_saved_as_json_is_json(prior, tmp_path) -> None:
    # --out fit.json wrote the .npz's zip bytes under that name: json.load failed on them
    kp, conf, _ = _clip(prior, 3)
    frames = kp.tolist()
    frames[1] = [None] * 24
    src = tmp_path / "clip.json"
    src.write_text(json.dumps({"keypoints": frames, "camera": CAMERA.to_dict()}))
    argv = ["fit", str(src), "--sequence", "--prior", "none", "--iterations", "2"]
    assert main([*argv, "--out", str(tmp_path / "fit.json")]) == 0
    data = json.loads((tmp_path / "fit.json").read_text(encoding="utf-8"))
    assert main([*argv, "--out", str(tmp_path / "fit.npz")]) == 0
    with np.load(tmp_path / "fit.npz", allow_pickle=False) as npz:
        # same names and shapes; float32 values come back exactly from their JSON decimals
        assert set(data) == set(npz.files)
        for name in npz.files:
            if name != "info":
                want = npz[name]
                np.testing.assert_array_equal(np.asarray(data[name], dtype=want.dtype), want)
        assert data["info"]["missing_frames"] == 1
    # NaN is null (JSON has no NaN)
    res = fit_sequence(kp[:1], conf[:1], CAMERA, prior=None, iterations=1, init_iterations=1)
    res.loss[0] = float("nan")
    res.to_json(tmp_path / "nan.json")
    assert json.loads((tmp_path / "nan.json").read_text())["loss"] == [None]


def test_a_missing_frame_with_one_keypoint_has_no_data_term(prior) -> None:
    """A frame with one keypoint of positive confidence is a missing frame (docs/fitting.md,
    "Sequences"): no data term, so where that keypoint lies cannot change the fit. It had one:
    a lone keypoint moved by 200 px changed the clip's joints and the frame's loss."""
    kp, conf, _ = _clip(prior, 4)
    conf = conf.clone()
    conf[2] = 0.0
    conf[2, 0] = 1.0
    moved = kp.clone()
    moved[2, 0] += 200.0
    kw = {"prior": prior, "iterations": 5, "init_iterations": 3}
    a = fit_sequence(kp, conf, CAMERA, **kw)
    b = fit_sequence(moved, conf, CAMERA, **kw)
    assert a.info["missing_frames"] == 1
    for name in ("body_pose", "global_orient", "transl", "betas", "loss", "joints"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
