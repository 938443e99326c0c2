"""fit_keypoints' start for views a level, upright benchmark lacks: a camera looking down
steeply, a person lying feet first, upside down or sideways in the image
(``benchmarks/fit_views.py`` measures the fits; these check the start they rest on)."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from advprior.fitting import PinholeCamera, fit_keypoints
from advprior.fitting.keypoints import get_format
from advprior.fitting.smplify import (
    _initial_translation,
    _plane_orients,
    _torso_affine,
    _torso_plane_depth,
    body_keypoints,
)
from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

CAMERA = PinholeCamera(focal=1000.0, center=(500.0, 500.0))
UPRIGHT = axis_angle_to_rotmat(torch.tensor([math.pi, 0.0, 0.0]))  # body y up -> image up


@functools.cache
def standin():
    from advprior.body import load_body_model

    return load_body_model()


def rot(axis: int, degrees: float) -> torch.Tensor:
    aa = torch.zeros(3)
    aa[axis] = math.radians(degrees)
    return axis_angle_to_rotmat(aa)


#: Camera-from-body rotations: a camera looking down 60 and 75 degrees on an upright person
#: (its up axis tilted towards the camera), a person lying feet first seen from 30 degrees
#: above, upside down, lying across the image, and the level upright control.
VIEWS = {
    "down60": UPRIGHT @ rot(0, -60.0) @ rot(1, 30.0),
    "down75": UPRIGHT @ rot(0, -75.0) @ rot(1, -20.0),
    "feet_first": UPRIGHT @ rot(0, 30.0 - 90.0) @ rot(1, 180.0),
    "handstand": UPRIGHT @ rot(2, 180.0) @ rot(1, 40.0),
    "lying_across": UPRIGHT @ rot(2, 90.0) @ rot(1, -100.0),
    "level": UPRIGHT @ rot(1, 25.0),
}


@torch.no_grad()
def view(name: str, fmt: str = "smpl24", depth: float = 4.0):
    """Noise-free keypoints ``(1, K, 2)`` of the rest-pose stand-in whose pelvis is ``depth`` m
    in front of :data:`CAMERA`, oriented as :data:`VIEWS` says; and the orientation."""
    orient = rotmat_to_axis_angle(VIEWS[name])[None]
    pose = torch.zeros(1, 63)
    _, joints = body_keypoints(orient, pose, keypoint_format="smpl24", body_model=standin())
    transl = torch.tensor([[0.0, 0.0, depth]]) - joints[:, 0]
    points, _ = body_keypoints(
        orient, pose, None, transl, keypoint_format=fmt, body_model=standin()
    )
    return CAMERA.project(points), orient


@pytest.mark.parametrize("name", list(VIEWS))
@pytest.mark.parametrize("fmt", ["smpl24", "openpose25", "coco17"])
def test_torso_plane_depth_is_not_fooled_by_a_foreshortened_torso(name: str, fmt: str) -> None:
    # SMPLify's f * L3 / L2 divides by the shoulder-hip lengths seen in the image, which a
    # torso leaning 60 degrees towards the camera halves (75 degrees: 3.9x too far). The
    # torso plane's scale ignores the lean. Remaining error: the rest torso is not quite
    # planar (shoulders ~4 cm in front of the hips) and perspective across its 0.5 m at 4 m,
    # a few per cent; 12% separates that from a 1/cos(lean) error at any lean above 27 deg.
    kp, _ = view(name, fmt)
    f = get_format(fmt)
    rest, _ = body_keypoints(
        torch.zeros(1, 3), torch.zeros(1, 63), keypoint_format=f, body_model=standin()
    )
    seen = torch.ones(kp.shape[:2], dtype=torch.bool)
    depth, ok = _torso_plane_depth(*_torso_affine(kp, seen, CAMERA, f, rest[0]))
    assert bool(ok.all())
    assert abs(float(depth[0]) / 4.0 - 1.0) < 0.12, depth
    smplify = _initial_translation(kp, seen.float(), CAMERA, f, rest[0], rest)[0, 2]
    if name in ("down60", "down75", "feet_first"):  # the cause of the old code's failures
        assert float(smplify) > 1.5 * 4.0, smplify


def test_torso_plane_gives_the_true_orientation_among_its_two() -> None:
    # Any orientation, seen from far away (weak perspective): one of the two candidates is
    # the truth up to the torso's non-planarity (measured ~4-5 degrees), the other is its
    # mirror through the image plane (the lean the image cannot tell).
    gen = torch.Generator().manual_seed(3)
    orient = torch.randn(32, 3, generator=gen)
    fmt = get_format("smpl24")
    rest, _ = body_keypoints(torch.zeros(1, 3), torch.zeros(1, 63), body_model=standin())
    points, _ = body_keypoints(
        orient, torch.zeros(32, 63), None, torch.tensor([[0, 0, 40.0]]), body_model=standin()
    )
    kp = CAMERA.project(points)
    affine, ok = _torso_affine(kp, torch.ones(32, 24, dtype=torch.bool), CAMERA, fmt, rest[0])
    assert bool(ok.all())
    cand = axis_angle_to_rotmat(_plane_orients(affine, ok, CAMERA).reshape(-1, 3)).view(32, 2, 3, 3)
    truth = axis_angle_to_rotmat(orient)[:, None]
    cos = ((cand.transpose(-1, -2) @ truth).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    angle = torch.rad2deg(torch.acos(cos.clamp(-1, 1))).amin(1)
    assert float(angle.max()) < 10.0, angle


def test_torso_plane_needs_three_points_off_a_line() -> None:
    kp, _ = view("level")
    fmt = get_format("smpl24")
    rest, _ = body_keypoints(torch.zeros(1, 3), torch.zeros(1, 63), body_model=standin())
    seen = torch.zeros(1, 24, dtype=torch.bool)
    seen[0, [16, 1]] = True  # one shoulder and one hip: a line, no plane
    _, ok = _torso_affine(kp, seen, CAMERA, fmt, rest[0])
    assert not bool(ok.any())
    seen[0, 17] = True
    _, ok = _torso_affine(kp, seen, CAMERA, fmt, rest[0])
    assert bool(ok.all())


def test_steep_views_fit_at_their_depth_and_lean() -> None:
    # End to end, both frames in one batch: the old start put these people 2-4x too far away
    # and upright, where a smaller body explains the short torso, and the fit stayed near
    # there (old code: depth 5.2 and 5.0 m, torso axis 148 and 120 degrees off). Noise-free
    # keypoints of the rest pose and no prior, so the truth is an exact optimum: the new
    # start reaches it within 1% and 5 degrees; the bounds are 10% and 20 degrees.
    kps, orients = zip(*(view(name) for name in ("down75", "feet_first")), strict=True)
    kp, orient = torch.cat(kps), torch.cat(orients)
    # the default fit (view_starts on since round 16)
    res = fit_keypoints(kp, None, CAMERA, prior=None, iterations=15, body_model=standin())
    assert res.info["view_starts"] is True
    depth = res.joints[:, 0, 2]
    assert bool(((depth / 4.0 - 1.0).abs() < 0.1).all()), depth
    axis = res.joints[:, 12] - res.joints[:, 0]
    cos = (axis / axis.norm(dim=-1, keepdim=True) * axis_angle_to_rotmat(orient)[:, :, 1]).sum(-1)
    assert bool((cos > math.cos(math.radians(20.0))).all()), cos
