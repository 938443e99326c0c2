"""``fit_keypoints(pose_schedule=...)``: the pose density's weight per pose stage (round 24).
Off by default (bit for bit the constant weight); the last stage's multiplier is always 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_fit_keypoints import CAMERA, make_gmm, scene, seeded

from advprior.fitting import fit_keypoints
from advprior.fitting.objective import SMPLIFY_STAGES, pose_schedule_scales
from advprior.fitting.smplify import final_objective

ITERS = 3


def test_scales_follow_the_stage_weights_and_end_at_one() -> None:
    assert pose_schedule_scales(SMPLIFY_STAGES) == [1.0] * 4
    assert pose_schedule_scales(SMPLIFY_STAGES, 0) == [1.0] * 4
    one = pose_schedule_scales(SMPLIFY_STAGES, 1.0)
    assert one == pytest.approx([404 / 4.78, 404 / 4.78, 57.4 / 4.78, 1.0])
    assert one[-1] == 1.0
    half = pose_schedule_scales(SMPLIFY_STAGES, 0.5)
    assert half == pytest.approx([x**0.5 for x in one]) and half[-1] == 1.0
    assert pose_schedule_scales(SMPLIFY_STAGES[-1:], 1.0) == [1.0]  # SPIN's last stage alone
    assert pose_schedule_scales(SMPLIFY_STAGES, [5, 5, 1, 1]) == [5.0, 5.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="last multiplier must be 1"):
        pose_schedule_scales(SMPLIFY_STAGES, [5, 5, 1, 2])
    with pytest.raises(ValueError, match="3 multipliers for 4"):
        pose_schedule_scales(SMPLIFY_STAGES, [5, 5, 1])
    with pytest.raises(ValueError, match=">= 0"):
        pose_schedule_scales(SMPLIFY_STAGES, -1.0)
    with pytest.raises(ValueError, match=">= 0"):
        pose_schedule_scales(SMPLIFY_STAGES, [float("nan"), 1, 1, 1])
    with pytest.raises(TypeError):
        pose_schedule_scales(SMPLIFY_STAGES, True)
    # numpy's scalars are numbers (np.float32 is no float: it was iterated, a TypeError)
    assert pose_schedule_scales(SMPLIFY_STAGES, np.float32(0.5)) == half
    assert pose_schedule_scales(SMPLIFY_STAGES, np.int64(1)) == one


def test_default_fit_is_bit_identical_and_a_schedule_keeps_the_final_objective(
    body, sphere_prior
) -> None:
    truth = sphere_prior.sample(3, generator=seeded(11))
    kp, conf, _ = scene(body, truth, seed=12, drop=0.2)
    gmm = make_gmm(0.3 * torch.randn(63, generator=seeded(13)))
    kw = dict(body_model=body, prior=sphere_prior, iterations=ITERS, pose_density=gmm)
    base = fit_keypoints(kp, conf, CAMERA, **kw)
    for off in (None, 0, 0.0, [1.0, 1.0, 1.0, 1.0]):
        same = fit_keypoints(kp, conf, CAMERA, pose_schedule=off, **kw)
        assert torch.equal(same.body_pose, base.body_pose)
        assert torch.equal(same.loss, base.loss)
    assert base.info["pose_schedule"] == [1.0] * 4
    annealed = fit_keypoints(kp, conf, CAMERA, pose_schedule=1.0, **kw)
    assert annealed.info["pose_schedule"][-1] == 1.0
    assert annealed.info["pose_schedule"][0] > 80
    assert not torch.equal(annealed.body_pose, base.body_pose)  # the early stages changed
    # ...but the last stage's objective, FitResult.loss, is final_objective's, as before
    fn, term, nb = final_objective(
        kp, conf, CAMERA, prior=sphere_prior, body_model=body, pose_density=gmm
    )
    x = torch.cat([annealed.global_orient, annealed.transl, annealed.betas, annealed.latent], -1)
    with torch.no_grad():
        again = fn(x)
    assert torch.allclose(again, annealed.loss, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="last multiplier"):
        fit_keypoints(kp, conf, CAMERA, pose_schedule=[2, 2, 2, 2], **kw)
