"""fit_sequence from a per-frame estimate (init_pose, init_global_orient, init_betas,
init_transl), as a video regressor's output (HMR 2.0, VIBE, WHAM) starts the clip's per-frame
fit; ``advprior fit --sequence --init FILE.npz``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from advprior.body import forward_kinematics
from advprior.cli import main
from advprior.eval.benchmark import joint_errors_mm
from advprior.fitting import PinholeCamera, fit_keypoints, fit_sequence
from advprior.hub import load_pretrained
from advprior.rotations import axis_angle_to_rotmat

CAMERA = PinholeCamera(1000.0, (500.0, 500.0))
T = 4
#: the per-frame stage's iterations, and the windows': short, so that the start shows
QUICK = {"init_iterations": 1, "iterations": 1}


@pytest.fixture(scope="module")
def clip():
    return make_clip()


def make_clip() -> dict[str, torch.Tensor]:
    """A clip of T frames of the bundled GAN-S's samples (common poses), turning slowly and
    walking sideways 4 m from the camera on the stand-in body, 3 px keypoint noise: keypoints,
    confidence and the truth (pose, orientation, translation, joints)."""
    prior = load_pretrained("gan-s")
    gen = torch.Generator().manual_seed(7)
    z = prior.sample_latent(2, generator=gen)
    pose = prior.decode(prior.latent_space.interpolate(z[0], z[1], T)).detach()
    yaw = torch.linspace(0.0, 0.3, T)
    # pi about x (a person upright in OpenCV's y-down camera), then a small turn about y
    go = torch.stack(
        [math.pi * torch.cos(yaw / 2), torch.zeros(T), math.pi * torch.sin(yaw / 2)], -1
    )
    tr = torch.stack([torch.linspace(0, 0.2, T), torch.zeros(T), torch.full((T,), 4.0)], -1)
    joints = forward_kinematics(go, pose, transl=tr)
    kp = CAMERA.project(joints) + 3.0 * torch.randn(T, 24, 2, generator=gen)
    return {"kp": kp, "conf": torch.ones(T, 24), "pose": pose, "go": go, "tr": tr, "j": joints}


def _pose_error(fit, clip) -> float:
    """Mean absolute axis-angle difference to the true pose (radians)."""
    return float((fit.body_pose - clip["pose"]).abs().mean())


def test_a_default_call_is_the_fit_of_before(clip) -> None:
    """Without init_* the per-frame stage is fit_keypoints on the frames that are not missing,
    as before: bit for bit the same as passing that fit as ``init=``."""
    kp, conf = clip["kp"].clone(), clip["conf"]
    kp[2] = float("nan")  # a missing frame
    kw = {"prior": "gmm", "iterations": 2, "orientations": 1}
    default = fit_sequence(kp, conf, CAMERA, init_iterations=2, **kw)
    seen = torch.tensor([True, True, False, True])
    per_frame = fit_keypoints(
        kp[seen], conf[seen], CAMERA, prior="gmm", iterations=2, orientations=1, pixel_scale=1
    )
    given = fit_sequence(kp, conf, CAMERA, init=per_frame, **kw)
    for name in ("body_pose", "global_orient", "transl", "betas", "joints", "loss"):
        assert torch.equal(getattr(default, name), getattr(given, name)), name
    assert default.info["init"] is None and given.info["init"] is None


def test_the_estimate_goes_row_by_row_to_the_per_frame_fit(clip) -> None:
    """Two clips, a missing frame in the second: the estimate's rows of the frames that are not
    missing, clip after clip, are the per-frame fit's start (bit for bit the same as that
    per-frame fit passed as ``init=``); the missing frame's row may be NaN."""
    kp = torch.stack([clip["kp"], clip["kp"].flip(0)])
    conf = torch.stack([clip["conf"], clip["conf"]])
    conf[1, 1] = 0.0
    pose = torch.stack([clip["pose"], clip["pose"].flip(0)])
    go = torch.stack([clip["go"], clip["go"].flip(0)])
    pose[1, 1], go[1, 1] = float("nan"), float("nan")  # no estimate where nothing was seen
    kw = {"prior": "gmm", "iterations": 2, "orientations": 1}
    est = fit_sequence(kp, conf, CAMERA, init_iterations=2, init_pose=pose,
                       init_global_orient=go, **kw)  # fmt: skip
    seen = (conf > 0).sum(-1) >= 2
    per_frame = fit_keypoints(
        kp[seen], conf[seen], CAMERA, prior="gmm", iterations=2, orientations=1,
        pixel_scale=1, init_pose=pose[seen], init_global_orient=go[seen],
    )  # fmt: skip
    given = fit_sequence(kp, conf, CAMERA, init=per_frame, **kw)
    assert torch.equal(est.body_pose, given.body_pose) and torch.equal(est.joints, given.joints)
    assert est.body_pose.shape == (2, T, 63) and bool(torch.isfinite(est.joints).all())
    assert est.info["init"] == {
        "pose": True,
        "global_orient": True,
        "betas": False,
        "transl": False,
        "pose_start": "pose",
    }


@pytest.mark.parametrize("prior", ["none", "gmm"])
def test_the_fit_starts_from_the_estimate(clip, prior) -> None:
    """One iteration per stage and window, from the estimate's orientation alone: the fit stays
    near where it started, so the true pose as the start ends far nearer the truth than the
    default start (the prior's typical pose, tenths of a radian per angle away)."""
    kw = {"prior": prior, "orientations": 1, **QUICK}
    default = fit_sequence(clip["kp"], clip["conf"], CAMERA, **kw)
    kw["orientations"] = 0
    init = fit_sequence(clip["kp"], clip["conf"], CAMERA, init_pose=clip["pose"],
                        init_global_orient=clip["go"], init_transl=clip["tr"], **kw)  # fmt: skip
    assert _pose_error(init, clip) < 0.5 * _pose_error(default, clip)


def test_starting_at_the_truth_fits_better_than_the_default_start(clip) -> None:
    """GAN-S (its start: the inversion of the estimate) with a short fit: the default start has
    to travel from the prior's central pose and cannot get there in a few iterations; the
    truth's start only has to stay. 1 mm of slack for float rounding, as fit_keypoints' test."""
    kw = {"prior": "gan-s", "init_iterations": 3, "iterations": 5, "orientations": 1}
    default = fit_sequence(clip["kp"], clip["conf"], CAMERA, **kw)
    init = fit_sequence(clip["kp"], clip["conf"], CAMERA, init_pose=clip["pose"],
                        init_global_orient=clip["go"], **kw)  # fmt: skip
    assert init.info["init"]["pose_start"] == "inversion"
    err = {
        name: float(joint_errors_mm(fit.joints, clip["j"])["p_mpjpe"].mean())
        for name, fit in (("default", default), ("init", init))
    }
    assert err["init"] <= err["default"] + 1.0, err


def test_pose_layouts_and_per_clip_betas(clip) -> None:
    kw = {"prior": "none", "init_global_orient": clip["go"], "orientations": 0, **QUICK}
    pose = clip["pose"]
    a = fit_sequence(clip["kp"], clip["conf"], CAMERA, init_pose=pose, **kw)
    mats = axis_angle_to_rotmat(pose.reshape(T, 21, 3))
    smpl69 = torch.cat([pose, torch.zeros(T, 6)], 1)
    # the matrices' logarithm rounds otherwise than the axis-angle; a misread layout would be
    # decimetres off
    for other in (mats, smpl69.numpy(), pose.reshape(T, 21, 3)):
        b = fit_sequence(clip["kp"], clip["conf"], CAMERA, init_pose=other, **kw)
        assert float((a.joints - b.joints).norm(dim=-1).max()) < 0.002
    # one shape for the clip is every frame's start: the same fit as that shape on each row
    shape = torch.linspace(-1.0, 1.0, 10)
    one = fit_sequence(clip["kp"], clip["conf"], CAMERA, init_betas=shape, **kw)
    rows = fit_sequence(clip["kp"], clip["conf"], CAMERA, init_betas=shape.expand(T, 10), **kw)
    assert torch.equal(one.joints, rows.joints) and one.info["init"]["betas"]
    # and for B clips: (B, K) is (B, T, K) with the row repeated; fewer betas than the body's
    kp2, conf2 = torch.stack([clip["kp"]] * 2), torch.stack([clip["conf"]] * 2)
    go2, four = torch.stack([clip["go"]] * 2), torch.zeros(2, 4)
    kw2 = {**kw, "init_global_orient": go2}
    per_clip = fit_sequence(kp2, conf2, CAMERA, init_betas=four, **kw2)
    per_frame = fit_sequence(kp2, conf2, CAMERA, init_betas=four[:, None].expand(2, T, 4), **kw2)
    assert torch.equal(per_clip.joints, per_frame.joints) and per_clip.betas.shape == (2, T, 10)


def test_a_much_nearer_clip_takes_its_own_rows_of_the_estimate(clip) -> None:
    """A clip fitted at its own pixel scale (8x nearer) takes its own rows of the estimate: bit
    for bit its fit alone with those rows and that scale."""
    kp = torch.stack([clip["kp"], (clip["kp"].flip(0) - 500.0) * 8.0 + 500.0])
    conf = torch.stack([clip["conf"], clip["conf"]])
    pose = torch.stack([clip["pose"], clip["pose"].flip(0)])
    kw = {"prior": "gmm", "iterations": 2, "init_iterations": 2, "orientations": 1}
    mixed = fit_sequence(kp, conf, CAMERA, init_pose=pose, init_betas=torch.zeros(2, 10), **kw)
    assert mixed.info["pixel_scale"] == [1.0, 8.0]
    near = fit_sequence(kp[1:], conf[1:], CAMERA, init_pose=pose[1:], init_betas=torch.zeros(1, 10),
                        pixel_scale=8, **kw)  # fmt: skip
    assert torch.equal(mixed.joints[1], near.joints[0])
    assert mixed.info["init"]["pose"] and mixed.info["init"]["betas"]


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"init_pose": torch.zeros(T + 1, 63)}, ValueError, r"init_pose .*T = 4.*\(5, 63\)"),
        ({"init_pose": torch.zeros(1, T, 63)}, ValueError, r"one pose per frame.*\(1, 4, 63\)"),
        ({"init_pose": torch.zeros(T, 72)}, ValueError, r"init_pose.*\(T, 63 \| 69\)"),
        ({"init_pose": torch.zeros(63)}, ValueError, "one pose per frame"),
        ({"init_pose": torch.full((T, 63), 30.0)}, ValueError, "degrees"),
        ({"init_pose": torch.full((T, 63), math.nan)}, ValueError, "NaN"),
        ({"init_pose": "pose"}, TypeError, "init_pose"),
        ({"init_global_orient": torch.zeros(T, 4)}, ValueError, r"\(T, 3\).*\(4, 4\)"),
        ({"init_global_orient": torch.eye(3).repeat(T, 1, 1)}, ValueError, "rotmat_to_axis"),
        ({"init_global_orient": torch.zeros(3)}, ValueError, "init_global_orient must have"),
        ({"init_transl": torch.zeros(T - 1, 3)}, ValueError, r"init_transl .*\(3, 3\)"),
        ({"init_betas": torch.zeros(T + 1, 10)}, ValueError, r"init_betas .*\(K,\).*\(5, 10\)"),
        ({"init_betas": torch.zeros(1, T, 10)}, ValueError, r"init_betas .*\(1, 4, 10\)"),
        ({"init_betas": torch.zeros(16)}, ValueError, "16 shape coefficients"),
        ({"orientations": 0}, ValueError, "needs init_global_orient"),
    ],
)
def test_bad_estimates_are_refused_naming_the_argument(clip, kw, error, match) -> None:
    with pytest.raises(error, match=match):
        fit_sequence(clip["kp"], clip["conf"], CAMERA, prior="none", **QUICK, **kw)


def test_batched_clips_need_the_clip_dimension(clip) -> None:
    kp2, conf2 = torch.stack([clip["kp"]] * 2), torch.stack([clip["conf"]] * 2)
    with pytest.raises(ValueError, match=r"\(B, T, 63 \| 69\).*B, T = 2, 4.*\(4, 63\)"):
        fit_sequence(kp2, conf2, CAMERA, prior="none", init_pose=clip["pose"], **QUICK)
    with pytest.raises(ValueError, match=r"init_betas must have shape \(B, K\)"):
        fit_sequence(kp2, conf2, CAMERA, prior="none", init_betas=torch.zeros(3, 10), **QUICK)


def test_a_per_frame_fit_and_an_estimate_together_are_refused(clip) -> None:
    init = fit_keypoints(clip["kp"], clip["conf"], CAMERA, prior="none", iterations=1)
    with pytest.raises(ValueError, match="init .*init_pose.*pass one or the other"):
        fit_sequence(clip["kp"], clip["conf"], CAMERA, prior="none", init=init,
                     init_pose=clip["pose"], **QUICK)  # fmt: skip


def test_fit_command_starts_a_sequence_from_an_init_file(clip, tmp_path, capsys) -> None:
    frames = clip["kp"].tolist()
    frames[1] = [None] * 24  # a missing frame: its row of the file is not used
    src = tmp_path / "clip.json"
    src.write_text(json.dumps({"keypoints": frames}))
    pose = clip["pose"].numpy().copy()
    pose[1] = np.nan
    init = tmp_path / "init.npz"
    np.savez(init, body_pose=pose, global_orient=clip["go"].numpy(), betas=np.zeros(10))
    out = tmp_path / "fit.npz"
    base = ["fit", str(src), "--sequence", "--camera", "1000,500,500", "--prior", "gmm"]
    base += ["--iterations", "2"]
    assert main([*base, "--init", str(init), "--out", str(out)]) == 0
    with np.load(out, allow_pickle=False) as data:
        assert data["body_pose"].shape == (T, 63) and np.isfinite(data["joints"]).all()
        info = json.loads(str(data["info"]))
    assert info["init"]["pose"] and info["init"]["global_orient"] and info["init"]["betas"]
    assert info["init_file"] == str(init) and info["missing_frames"] == 1
    # rows for another number of frames: one line naming the argument and both shapes
    short = tmp_path / "short.npz"
    np.savez(short, body_pose=pose[:2])
    assert main([*base, "--init", str(short), "--out", str(tmp_path / "y.npz")]) == 1
    err = capsys.readouterr().err
    assert "init_pose" in err and "(2, 63)" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.npz"
    np.savez(bad, body_pose=pose, orient=clip["go"].numpy())
    assert main([*base, "--init", str(bad), "--out", str(tmp_path / "z.npz")]) == 1
    assert "orient" in capsys.readouterr().err


def test_three_frames_of_axis_angle_orientation_are_not_read_as_a_matrix(clip) -> None:
    """A clip whose frames that are not missing are 3 hands fit_keypoints (3, 3) axis-angle
    rows, a rotation matrix's shape: they must reach the fit as three rotation vectors."""
    kw = {"prior": "none", "orientations": 0, **QUICK}
    three = fit_sequence(clip["kp"][:3], clip["conf"][:3], CAMERA,
                         init_global_orient=clip["go"][:3], **kw)  # fmt: skip
    assert three.info["init"]["global_orient"]
    # one iteration per stage from the true orientation alone keeps it within a few tenths of
    # a radian (a torso turned to the other side, the fit's ambiguity, would be about pi off)
    assert float((three.global_orient - clip["go"][:3]).norm(dim=-1).max()) < 0.5


def test_the_inversion_seconds_cover_every_chunk_and_clip_group(clip, monkeypatch) -> None:
    """info["init"]["invert_seconds"] was the first group's alone when clips were fitted at
    their own pixel scales. Each inversion is timed as exactly 1 s here: 2 groups of clips x 2
    chunks of frames are 4 inversions."""
    import types

    import advprior.fitting.sequence
    import advprior.fitting.start

    ticks = iter(range(1000))
    fake_time = types.SimpleNamespace(perf_counter=lambda: float(next(ticks)))
    monkeypatch.setattr(advprior.fitting.start, "time", fake_time)
    monkeypatch.setattr(advprior.fitting.sequence, "INIT_CHUNK", T // 2)
    kp = torch.stack([clip["kp"], (clip["kp"] - 500.0) * 8.0 + 500.0])
    conf = torch.stack([clip["conf"], clip["conf"]])
    mixed = fit_sequence(kp, conf, CAMERA, prior="gan-s", init_pose=torch.stack([clip["pose"]] * 2),
                         orientations=1, **QUICK)  # fmt: skip
    assert mixed.info["pixel_scale"] == [1.0, 8.0]
    assert mixed.info["init"]["pose_start"] == "inversion"
    assert mixed.info["init"]["invert_seconds"] == 4.0
