"""An unchanged VPoser-v1-style SMPLify loop (``vposer_style_loop.py``) on advprior, with only the
``load_vposer`` import swapped: it must move the embedding, fit the keypoints, and land in the
range of ``fit_keypoints``. Two held-out (test-split) frames and few iterations, for CI; the
measurement on more frames is ``benchmarks/vposer_loop.py`` (``docs/fitting.md``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import smplx
import torch

from advprior.body import standin_folder
from advprior.compat import load_vposer  # the one changed line of a VPoser pipeline
from advprior.eval.benchmark import joint_errors_mm
from advprior.fitting import PinholeCamera, fit_keypoints

sys.path.insert(0, str(Path(__file__).parent))
from vposer_style_loop import MaxMixtureEnergy, fit_frames, make_frames, smpl_joint_mapper  # noqa: E402

FOCAL, CENTER = 1000.0, (500.0, 500.0)
LOOP = {"maxiters": 3, "inner": 10}


@pytest.fixture(scope="module")
def frames(shared_mocap):
    from advprior.data import load_motion

    # CMU subject 16 is in the test split (dataset v4): held out from training and selection
    motion = load_motion(shared_mocap / "cmu_asfamc" / "16" / "16_48.amc").to_smpl(30)
    pick = [3, 12]
    body = smplx.create(str(standin_folder()), model_type="smpl", joint_mapper=smpl_joint_mapper())
    pose = torch.as_tensor(motion.body_pose, dtype=torch.float32)[pick]
    orient = torch.as_tensor(motion.global_orient, dtype=torch.float32)[pick]
    keypoints, joints = make_frames(body, pose, orient, seed=0)
    return body, keypoints, joints


@pytest.fixture(scope="module")
def reference(frames):
    _, keypoints, joints = frames
    result = fit_keypoints(
        keypoints[..., :2],
        keypoints[..., 2],
        PinholeCamera(FOCAL, CENTER),
        prior="gan-s",
        keypoint_format="openpose25",
    )
    return joint_errors_mm(result.joints, joints)["p_mpjpe"]


def _run(frames, **kwargs):
    body, keypoints, joints = frames
    fits, _ = fit_frames(keypoints, body, FOCAL, CENTER, **kwargs, **LOOP)
    err = joint_errors_mm(torch.stack([f.joints for f in fits]), joints)["p_mpjpe"]
    return fits, err


@pytest.fixture(scope="module")
def gan_fit(frames):
    vposer, _ = load_vposer("gan-s")
    return _run(frames, vposer=vposer)


def test_gan_s_never_stalls(gan_fit) -> None:
    fits, err = gan_fit
    vposer, _ = load_vposer("gan-s")
    for fit in fits:
        assert torch.equal(fit.embedding_start, torch.zeros(1, 32))  # the loop's fill_(0)
        # the latent left the typical pose (the chart's free radius lets |z| itself stay small
        # under the |z|^2 term, so measure the angle on the sphere, not |z|)
        start, end = vposer.latent(fit.embedding_start), vposer.latent(fit.embedding_end)
        angle = torch.acos((start * end).sum().clamp(-1, 1))
        assert float(angle) > 0.2, float(angle)
        assert fit.reprojection_end < 0.5 * fit.reprojection_start
        assert fit.reprojection_end < 15.0  # 5 px keypoint noise
    assert torch.isfinite(err).all()


def test_gan_s_lands_near_fit_keypoints(gan_fit, reference) -> None:
    _, err = gan_fit
    # The goal is within 10% of fit_keypoints; it is measured on 24 test frames in
    # docs/fitting.md. On these two frames the loop measured 1.05x fit_keypoints; two frames
    # vary too much for a 10% bound, so this guards against gross regressions (the loop was
    # 4x worse when it stalled at z = 0).
    assert float(err.mean()) <= 1.5 * float(reference.mean()), (err, reference)


def test_vae_and_gmm_run_through_the_same_loop(frames, gan_fit, tmp_path) -> None:
    from advprior.hub import load_pretrained

    vae, _ = load_vposer("vae")
    fits, vae_err = _run(frames, vposer=vae)
    assert all(f.reprojection_end < 0.5 * f.reprojection_start for f in fits)
    path = tmp_path / "gmm_08.pkl"
    load_pretrained("gmm").export_smplify(path)
    energy = MaxMixtureEnergy(str(path))
    fits, gmm_err = _run(frames, pose_prior=energy, mean_pose=energy.mean_pose())
    assert torch.isfinite(gmm_err).all()
    assert all(f.reprojection_end < 0.5 * f.reprojection_start for f in fits)
    _, gan_err = gan_fit
    # every prior lands in the range of a fit (the ranking is measured on more frames in
    # docs/fitting.md, not asserted on two)
    for err in (gan_err, vae_err, gmm_err):
        assert float(err.mean()) < 120.0
