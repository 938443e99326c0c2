"""fit_keypoints from a per-frame estimate (init_pose, init_global_orient, init_betas,
init_transl), as SMPLify runs from a regressor's output (SPIN, EFT)."""

from __future__ import annotations

import math

import pytest
import torch

from advprior.eval.benchmark import joint_errors_mm, make_views
from advprior.fitting import fit_keypoints
from advprior.fitting.smplify import SMPLIFY_STAGES
from advprior.hub import load_pretrained

ITERS = 8
FRAMES = 4


@pytest.fixture(scope="module")
def views():
    """Views of the bundled GAN-S's samples (poses a trained prior finds common), seen as the
    fitting benchmark sees them (5 px noise, 20% dropped, random heading and elevation)."""
    prior = load_pretrained("gan-s")
    truth = prior.sample(FRAMES, generator=torch.Generator().manual_seed(3))
    return make_views(truth, torch.zeros(FRAMES, 3), seed=5)


def _fit(views, prior, **kw):
    return fit_keypoints(
        views.keypoints, views.confidence, views.camera, prior=prior, iterations=ITERS, **kw
    )


def _p_mpjpe(result, views) -> float:
    return float(joint_errors_mm(result.joints, views.joints)["p_mpjpe"].mean())


@pytest.mark.parametrize(
    ("prior", "stages"),
    [
        ("gan-s", SMPLIFY_STAGES),
        ("gan-s", SMPLIFY_STAGES[-1:]),
        # SMPLify's first stages weigh a normal latent's |z|^2 by 404^2: they pull the VAE's
        # latent to its origin whatever the start (measured: the truth's start then fits no
        # better than the default one), so a VAE keeps its estimate only with SPIN's single
        # last stage (docs/fitting.md, "Starting from a regressor's estimate")
        ("vae", SMPLIFY_STAGES[-1:]),
        ("gmm", SMPLIFY_STAGES),
        ("none", SMPLIFY_STAGES),
    ],
)
def test_starting_at_the_truth_fits_at_least_as_well_as_the_default_start(
    views, prior, stages
) -> None:
    default = _fit(views, prior)
    init = _fit(
        views,
        prior,
        init_pose=views.body_pose,
        init_global_orient=views.global_orient,
        init_transl=views.transl,
        stages=stages,
    )
    assert default.info["init"] is None
    assert init.info["init"]["pose"] and init.info["init"]["transl"]
    assert not init.info["init"]["betas"]
    expected = "inversion" if prior in ("gan-s", "vae") else "pose"  # the latent priors
    assert init.info["init"]["pose_start"] == expected
    # the same frames: the truth's basin can only help (1 mm of slack for float rounding)
    assert _p_mpjpe(init, views) <= _p_mpjpe(default, views) + 1.0


@pytest.mark.parametrize("prior", ["gan-s", "gmm", "none"])
def test_one_start_with_an_init_starts_from_the_init(views, prior) -> None:
    # one short stage: the fit stays near where it started, so the start is visible
    kw = {"iterations": 1, "stages": [(404.0, 100.0)], "orientations": 1, "starts": 1}
    truth = views.body_pose
    default = fit_keypoints(views.keypoints, views.confidence, views.camera, prior=prior, **kw)
    init = fit_keypoints(
        views.keypoints,
        views.confidence,
        views.camera,
        prior=prior,
        init_pose=truth,
        init_global_orient=views.global_orient,
        **kw,
    )
    assert init.info["starts"] == 1
    far = float((default.body_pose - truth).abs().mean())
    near = float((init.body_pose - truth).abs().mean())
    assert near < 0.5 * far


def test_more_starts_keep_the_init_first_and_never_fit_worse(views) -> None:
    kw = {"init_pose": views.body_pose, "init_global_orient": views.global_orient}
    one = _fit(views, "gmm", starts=1, **kw)
    three = _fit(views, "gmm", starts=3, **kw)
    assert three.info["starts"] == 3
    # the init's rows are the same problems in both fits (frames and starts are independent);
    # the other starts can only lower the kept loss, up to float rounding
    # (the GMM's negative log-likelihood makes losses negative: a relative slack on |loss|)
    assert bool((three.loss <= one.loss + 1e-3 * one.loss.abs() + 1e-3).all())


def test_init_pose_layouts_and_partial_inits(views) -> None:
    from advprior.rotations import axis_angle_to_rotmat

    mats = axis_angle_to_rotmat(views.body_pose.reshape(FRAMES, 21, 3))
    smpl69 = torch.cat([views.body_pose, torch.zeros(FRAMES, 6)], 1)
    # one iteration of one stage from the estimate's orientation: the fit stays at its start
    # (the matrices' logarithm rounds otherwise than the axis-angle, which longer L-BFGS runs
    # amplify to centimetres); a misread layout would be decimetres off
    kw = {"init_global_orient": views.global_orient, "orientations": 0, "iterations": 1}
    kw["stages"] = SMPLIFY_STAGES[-1:]
    a = fit_keypoints(
        views.keypoints, views.confidence, views.camera, prior=None, init_pose=views.body_pose, **kw
    )
    for other in (mats, smpl69.numpy(), views.body_pose.reshape(FRAMES, 21, 3)):
        b = fit_keypoints(
            views.keypoints, views.confidence, views.camera, prior=None, init_pose=other, **kw
        )
        assert float((a.joints - b.joints).norm(dim=-1).max()) < 0.002
    # betas and translation alone, fewer betas than the body's: the rest start at zero
    d = _fit(views, "none", init_betas=torch.zeros(FRAMES, 4), init_transl=views.transl)
    assert d.betas.shape == (FRAMES, 10)
    assert d.info["init"] == {
        "pose": False,
        "global_orient": False,
        "betas": True,
        "transl": True,
        "pose_start": None,
    }


def test_unbatched_fit_from_an_init_matches_the_batched_fit(views) -> None:
    kw = {"init_pose": views.body_pose, "init_global_orient": views.global_orient}
    batched = _fit(views, "none", orientations=1, **kw)
    one_by_one = _fit(views, "none", orientations=1, batch=False, **kw)
    # each frame got its own row of the init (a mix-up would be metres off)
    assert float((batched.joints - one_by_one.joints).norm(dim=-1).max()) < 0.05


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"init_pose": torch.zeros(FRAMES + 1, 63)}, ValueError, "one pose per frame"),
        ({"init_pose": torch.zeros(63)}, ValueError, "one pose per frame"),
        ({"init_pose": torch.zeros(FRAMES, 72)}, ValueError, "init_pose"),
        ({"init_pose": torch.full((FRAMES, 63), math.nan)}, ValueError, "NaN"),
        ({"init_pose": torch.full((FRAMES, 63), 30.0)}, ValueError, "degrees"),
        ({"init_pose": "pose"}, TypeError, "init_pose"),
        ({"init_global_orient": torch.zeros(FRAMES, 4)}, ValueError, r"\(4, 3\)"),
        ({"init_global_orient": torch.eye(3).repeat(FRAMES, 1, 1)}, ValueError, "rotmat_to"),
        ({"init_global_orient": torch.zeros(2, 3)}, ValueError, "one row per frame"),
        ({"init_global_orient": torch.full((FRAMES, 3), 90.0)}, ValueError, "degrees"),
        ({"init_betas": torch.zeros(FRAMES, 16)}, ValueError, "16 shape coefficients"),
        ({"init_betas": torch.full((FRAMES, 10), math.inf)}, ValueError, "NaN or Inf"),
        ({"init_transl": torch.zeros(FRAMES, 2)}, ValueError, r"\(4, 3\)"),
        ({"init_transl": torch.zeros(FRAMES)}, ValueError, "one row per frame"),
        ({"orientations": 0}, ValueError, "needs init_global_orient"),
    ],
)
def test_bad_inits_are_refused_with_a_clear_error(views, kw, error, match) -> None:
    with pytest.raises(error, match=match):
        _fit(views, "none", **kw)


def test_cli_init_file(tmp_path, views, capsys) -> None:
    import json

    import numpy as np

    from advprior.cli import main

    src = tmp_path / "kp.json"
    kp = views.keypoints.numpy().copy()
    kp[views.confidence.numpy() == 0] = np.nan
    src.write_text(json.dumps({"keypoints": np.where(np.isnan(kp), None, kp).tolist()}))
    init = tmp_path / "init.npz"
    np.savez(init, body_pose=views.body_pose.numpy(), global_orient=views.global_orient.numpy())
    out = tmp_path / "fit.npz"
    base = ["fit", str(src), "--camera", "1000,500,500", "--prior", "gmm", "--iterations", "2"]
    assert main([*base, "--init", str(init), "--out", str(out)]) == 0
    info = json.loads(str(np.load(out)["info"]))
    assert info["init"]["pose"] and info["init"]["global_orient"]
    assert info["init_file"] == str(init)
    # a misspelt key is refused, not ignored
    bad = tmp_path / "bad.npz"
    np.savez(bad, body_pose=views.body_pose.numpy(), global_orientation=np.zeros((FRAMES, 3)))
    assert main([*base, "--init", str(bad), "--out", str(tmp_path / "x.npz")]) == 1
    assert "global_orientation" in capsys.readouterr().err
    short = tmp_path / "short.npz"
    np.savez(short, body_pose=views.body_pose.numpy()[:2])
    assert main([*base, "--init", str(short), "--out", str(tmp_path / "y.npz")]) == 1
    assert "init_pose" in capsys.readouterr().err


def test_a_frame_fitted_at_its_own_pixel_scale_gets_its_own_init_row(views) -> None:
    # a person 8x nearer is fitted in a group of its own (pixel_scale "auto"): its init row
    # must go with it, bit for bit the fit of that frame alone with its row and scale
    kp = views.keypoints.clone()
    kp[1] = (kp[1] - 500.0) * 8.0 + 500.0
    pose, orient = views.body_pose, views.global_orient
    kw = {"prior": "gmm", "iterations": 3, "orientations": 1}
    mixed = fit_keypoints(
        kp, views.confidence, views.camera, init_pose=pose, init_global_orient=orient, **kw
    )
    assert mixed.info["pixel_scale"] == [1.0, 8.0, 1.0, 1.0]
    near = fit_keypoints(
        kp[1:2],
        views.confidence[1:2],
        views.camera,
        init_pose=pose[1:2],
        init_global_orient=orient[1:2],
        pixel_scale=8,
        **kw,
    )
    assert torch.equal(mixed.joints[1], near.joints[0])


def test_three_frames_of_axis_angle_orientation_are_read_as_rows(views) -> None:
    """Three frames' (3, 3) axis-angle orientations have a rotation matrix's shape: they are
    rows of the three frames (before, a ValueError suggesting rotmat_to_axis_angle), while one
    (3, 3) matrix given for another number of frames is still refused with that hint."""
    kw = {"orientations": 0, "iterations": 1, "stages": SMPLIFY_STAGES[-1:]}
    kp, conf = views.keypoints[:3], views.confidence[:3]
    orient = views.global_orient[:3]
    fit = fit_keypoints(kp, conf, views.camera, prior=None, init_global_orient=orient, **kw)
    assert fit.info["init"]["global_orient"]
    # one iteration from the true orientation alone stays within a few tenths of a radian (the
    # front-back ambiguity the orientation candidates exist for would be about pi off)
    assert float((fit.global_orient - orient).norm(dim=-1).max()) < 0.5
    with pytest.raises(ValueError, match="rotmat_to_axis_angle"):
        fit_keypoints(kp[:2], conf[:2], views.camera, prior=None, init_global_orient=orient, **kw)
