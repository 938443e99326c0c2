"""Rotations and poses in the conventions other libraries write them (SciPy, roma, PyTorch3D,
SPIN/HMR/VIBE, smplx, OpenCV): converted as docs/api/rotations.md says, or refused with a message
that names the shape received and the conversion that fixes it."""

from __future__ import annotations

import warnings

import pytest
import torch
from scipy.spatial.transform import Rotation

from advprior.rotations import quat_to_rotmat, rot6d_to_rotmat, rotmat_to_axis_angle
from advprior.skeleton import check_body_pose


def _rotations(n: int, seed: int = 0) -> Rotation:
    return Rotation.random(n, random_state=seed)


def _pose(joints: int, seed: int = 0) -> Rotation:
    """``joints`` rotations for each of 2 poses, as one SciPy Rotation of 2 * joints."""
    return _rotations(2 * joints, seed)


# shape -> (what the message must say, how the hint converts the tensor to an accepted one)
REFUSED = {
    (2, 21, 4): (r"got \(2, 21, 4\); quaternions\? .*quat_to_rotmat\(q\) reads \(x, y, z, w\)"),
    (2, 84): r"got \(2, 84\); 21 rotations of 4 numbers flattened\? .*unflatten\(-1, \(21, 4\)\)",
    (2, 24, 4): r"got \(2, 24, 4\); 24 joints: SMPL's full pose .*\[\.\.\., 1:, :\]; quaternions",
    (2, 21, 6): r"got \(2, 21, 6\); 6D rotations\? .*rot6d_to_rotmat\(x\) reads SPIN's",
    (2, 138): r"got \(2, 138\); 23 rotations of 6 numbers flattened\?",
    (2, 189): r"got \(2, 189\); 21 rotations of 9 numbers flattened\? .*unflatten\(-1, \(21, 9\)\)",
    (2, 72): r"got \(2, 72\); SMPL's full pose .*body_pose\[\.\.\., 3:\] .*global_orient=",
    (2, 52, 3): r"got \(2, 52, 3\); 52 joints: SMPL-H's full pose .*\[\.\.\., 1:22, :\]",
    (2, 55, 3): r"got \(2, 55, 3\); 55 joints: SMPL-X's full pose .*\[\.\.\., 1:22, :\]",
    (2, 22, 3, 3): r"got \(2, 22, 3, 3\); 22 joints: the global orientation .*\[\.\.\., 1:, :, :\]",
    (2, 3): r"got \(2, 3\); 3 numbers are one rotation: the global_orient\?",
    (3,): r"got \(3,\); 3 numbers are one rotation",
}


@pytest.mark.parametrize("shape", list(REFUSED), ids=str)
def test_body_pose_of_another_layout_is_refused_with_the_conversion(shape) -> None:
    # before, quaternions, 6D, flattened matrices and SMPL-H/SMPL-X full poses were refused
    # with the accepted shapes only, nothing on what was received or how to convert it
    with pytest.raises(ValueError, match=REFUSED[shape]):
        check_body_pose(torch.zeros(shape))


def test_following_the_hints_gives_the_pose() -> None:
    rot = _pose(21)
    want = torch.tensor(rot.as_rotvec()).reshape(2, 63)
    quat = torch.tensor(rot.as_quat()).reshape(2, 84)  # SciPy: (x, y, z, w)
    mats = quat_to_rotmat(quat.unflatten(-1, (21, 4)))
    assert torch.allclose(check_body_pose(mats), want, atol=1e-10)
    wxyz = quat.reshape(2, 21, 4).roll(1, -1)  # PyTorch3D's order (SciPy >= 1.14: scalar_first)
    assert torch.allclose(check_body_pose(quat_to_rotmat(wxyz.roll(-1, -1))), want, atol=1e-10)
    matrix = torch.tensor(rot.as_matrix()).reshape(2, 21, 3, 3)
    p3d6d = matrix[..., :2, :].flatten(-2)  # PyTorch3D's matrix_to_rotation_6d
    back = rot6d_to_rotmat(p3d6d.unflatten(-1, (2, 3)).mT.flatten(-2)).mT
    assert torch.allclose(check_body_pose(back), want, atol=1e-10)
    spin6d = matrix[..., :2].flatten(-2)  # SPIN/HMR/VPoser: x.view(-1, 3, 2)
    assert torch.allclose(check_body_pose(rot6d_to_rotmat(spin6d)), want, atol=1e-10)
    assert torch.allclose(check_body_pose(matrix.flatten(-3).unflatten(-1, (21, 9))), want)
    full = torch.cat([torch.zeros(2, 3, dtype=want.dtype), want, torch.zeros(2, 6)], -1)
    assert torch.equal(check_body_pose(full[..., 3:]), torch.cat([want, torch.zeros(2, 6)], -1))


# An independent reference, written from the layouts' definitions (no library's code): the
# rotation whose first two columns are the Gram-Schmidt orthonormalisation of (a1, a2). Each
# library differs only in where a1 and a2 sit in its 6 numbers and in whether the frame is
# returned as columns or rows; non-orthonormal 6D shows a wrong layout or a different
# Gram-Schmidt even where exact rotations would round-trip.
def _gram_schmidt_columns(a1: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
    b1 = a1 / a1.norm(dim=-1, keepdim=True)
    u2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = u2 / u2.norm(dim=-1, keepdim=True)
    return torch.stack((b1, b2, torch.linalg.cross(b1, b2)), dim=-1)


def _spin_layout(x: torch.Tensor) -> torch.Tensor:
    """SPIN/HMR/VIBE/VPoser: the 6 numbers are a (3, 2) matrix read row by row, whose
    columns are a1 and a2; the frame is returned as columns."""
    return _gram_schmidt_columns(x[..., 0::2], x[..., 1::2])


def _pytorch3d_layout(x: torch.Tensor) -> torch.Tensor:
    """PyTorch3D: a1 = x[:3], a2 = x[3:]; the frame is returned as rows."""
    return _gram_schmidt_columns(x[..., :3], x[..., 3:]).mT


def _zhou_layout(x: torch.Tensor) -> torch.Tensor:
    """Zhou et al. 2019's reference code: a1 = x[:3], a2 = x[3:]; the frame as columns (their
    code builds the third axis by cross products first, which is the same frame)."""
    return _gram_schmidt_columns(x[..., :3], x[..., 3:])


def test_six_d_layouts_of_other_libraries_convert_as_documented() -> None:
    # rotations.py said "the layout of Zhou et al. 2019", whose reference code and PyTorch3D use
    # other layouts: read as ours, their 6D gave another rotation without an error
    x = torch.randn(64, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(rot6d_to_rotmat(x), _spin_layout(x), atol=1e-12)
    p3d = rot6d_to_rotmat(x.unflatten(-1, (2, 3)).mT.flatten(-2)).mT
    assert torch.allclose(p3d, _pytorch3d_layout(x), atol=1e-12)
    zhou = rot6d_to_rotmat(x.unflatten(-1, (2, 3)).mT.flatten(-2))
    assert torch.allclose(zhou, _zhou_layout(x), atol=1e-12)
    # and the layouts differ: read as ours, PyTorch3D's 6D of R is another rotation
    R = torch.tensor(_rotations(64).as_matrix())
    wrong = rot6d_to_rotmat(R[..., :2, :].flatten(-2))
    assert float((wrong - R).abs().amax()) > 0.5


def test_quaternion_and_axis_angle_conventions_match_scipy() -> None:
    from advprior.rotations import axis_angle_to_rotmat, rotmat_to_quat

    rot = _rotations(64, seed=3)
    R = torch.tensor(rot.as_matrix())
    xyzw = torch.tensor(rot.as_quat())
    xyzw = torch.where(xyzw[..., 3:] < 0, -xyzw, xyzw)  # w >= 0 (SciPy >= 1.11: canonical=True)
    assert torch.allclose(rotmat_to_quat(R), xyzw)
    wxyz = xyzw.roll(1, -1)
    assert torch.allclose(quat_to_rotmat(wxyz.roll(-1, -1)), R)
    assert torch.allclose(axis_angle_to_rotmat(torch.tensor(rot.as_rotvec())), R)


@pytest.mark.parametrize("shape", [(3, 3), (1, 3, 3)])
@pytest.mark.parametrize("batch", [1, 4])
def test_one_global_orient_matrix_poses_every_body(shape, batch: int) -> None:
    # a single (3, 3) or (1, 3, 3) matrix with a batch of poses: "leading dimensions that do not
    # broadcast" (or, for (3, 3) with one pose, three bodies, its rows read as rotation vectors)
    from advprior.body import forward_kinematics, load_body_model

    R = torch.tensor(_rotations(1, seed=4).as_matrix()[0], dtype=torch.float32)
    pose = torch.tensor(_pose(21, seed=5).as_rotvec(), dtype=torch.float32).reshape(2, 63)
    pose = pose[:1].expand(batch, 63) if batch == 1 else pose.repeat(2, 1)
    each = forward_kinematics(R.expand(batch, 3, 3), pose)
    # the same bodies, up to float32 rounding (a broadcast orientation runs other kernels)
    assert torch.allclose(forward_kinematics(R.reshape(shape), pose), each, atol=1e-6)
    body = load_body_model()
    want = body(global_orient=R.expand(batch, 3, 3), body_pose=pose).joints
    got = body(global_orient=R.reshape(shape), body_pose=pose).joints
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-6)


def _three_poses() -> tuple[torch.Tensor, torch.Tensor]:
    """A rotation matrix ``(3, 3)`` and 3 body poses ``(3, 63)``."""
    R = torch.tensor(_rotations(1, seed=6).as_matrix()[0], dtype=torch.float32)
    pose = torch.tensor(_pose(21, seed=7).as_rotvec(), dtype=torch.float32).reshape(2, 63)
    return R, torch.cat([pose, pose[:1].flip(-1)])


@pytest.mark.parametrize("via", ["forward_kinematics", "BodyModel", "body_keypoints"])
def test_a_rotation_matrix_read_as_three_rotation_vectors_warns(via: str) -> None:
    # (3, 3) with 3 poses is 3 rotation vectors by shape; when its values are also a rotation
    # matrix, the caller more likely meant one orientation for all three: say so, keep the read
    from advprior.body import forward_kinematics, load_body_model
    from advprior.errors import AmbiguousOrientationWarning
    from advprior.fitting.smplify import body_keypoints

    body = load_body_model()
    run = {
        "forward_kinematics": lambda go, pose: forward_kinematics(go, pose),
        "BodyModel": lambda go, pose: body(global_orient=go, body_pose=pose).joints,
        "body_keypoints": lambda go, pose: body_keypoints(go, pose, body_model=body)[1],
    }[via]
    R, pose = _three_poses()
    with pytest.warns(AmbiguousOrientationWarning) as rec:
        got = run(R, pose)
    assert len(rec) == 1 and issubclass(rec[0].category, UserWarning)
    assert rec[0].filename == __file__  # the caller's line, not advprior's
    msg = str(rec[0].message)
    assert "read as 3 rotation vectors" in msg and "also a rotation matrix" in msg
    assert "R.reshape(1, 3, 3) or R.expand(3, 3, 3)" in msg and "(3, 1, 3)" in msg
    # read as before: 3 rotation vectors, one per pose
    assert torch.equal(got, run(R[:, None], pose))
    # the hints settle it without a warning: the matrix for every pose, or rotation vectors
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        each = run(R.expand(3, 3, 3), pose)
        assert torch.allclose(run(R.reshape(1, 3, 3), pose), each, atol=1e-6)
        assert not torch.allclose(got, each, atol=1e-3)
        run(R[:, None], pose)
    # a matrix a little off orthonormal (float32 round trips, 4-digit files) is a matrix too
    with pytest.warns(AmbiguousOrientationWarning):
        run(R + 0.02, pose)


@pytest.mark.parametrize(
    "go",
    [
        torch.tensor([[0.1, -0.2, 0.3], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]),  # ordinary rotvecs
        torch.eye(3) * 1.2,  # a scaled rotation: no rotation matrix either
        torch.diag(torch.tensor([1.0, 1.0, -1.0])),  # a reflection
        torch.zeros(3, 3),
        torch.full((3, 3), float("nan")),
    ],
)
def test_three_rotation_vectors_that_are_no_rotation_matrix_read_silently(go) -> None:
    from advprior.body import forward_kinematics

    _, pose = _three_poses()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = forward_kinematics(go, pose)
    want = forward_kinematics(go[:, None], pose)
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got.nan_to_num(), want.nan_to_num())


def test_a_clip_of_three_frames_with_a_matrix_warns_and_the_fit_never_tests(
    monkeypatch,
) -> None:
    # (B, 3, 63) clips of 3 frames: a (3, 3) or (1, 3, 3) broadcasts as rows, the same question
    import advprior.body.model as model
    from advprior.body import forward_kinematics, load_body_model
    from advprior.errors import AmbiguousOrientationWarning

    R, pose = _three_poses()
    clips = torch.stack([pose, pose.flip(0)])
    for go in (R, R.reshape(1, 3, 3)):
        with pytest.warns(AmbiguousOrientationWarning, match=r"R.expand\(2, 3, 3, 3\)"):
            forward_kinematics(go, clips)
    # the check runs on the caller's data, never inside an optimiser's objective: a fit of 3
    # frames evaluates the body with (3, 3) orientations hundreds of times
    from test_fit_keypoints import CAMERA

    from advprior.eval.benchmark import make_views
    from advprior.fitting import fit_keypoints

    body = load_body_model()
    views = {f: make_views(pose, torch.zeros(3, 3), seed=9, noise_px=1.0, keypoints=f)
             for f in ("smpl24", "coco17")}  # fmt: skip
    tested = []
    real = model._is_rotation
    monkeypatch.setattr(model, "_is_rotation", lambda m: tested.append(m.shape) or real(m))
    for fmt, v in views.items():  # forward kinematics; the mesh's surface points
        with warnings.catch_warnings():
            warnings.simplefilter("error", AmbiguousOrientationWarning)
            fit_keypoints(v.keypoints, v.confidence, CAMERA, body_model=body, prior=None,
                          keypoint_format=fmt, iterations=2)  # fmt: skip
    assert tested == []
    with pytest.warns(AmbiguousOrientationWarning):  # the patch is live: the boundary tests
        forward_kinematics(R, pose)
    assert tested == [(3, 3)]


@pytest.mark.parametrize(
    ("size", "match"),
    [(4, r"got \(2, 4\); quaternions\?"), (6, r"got \(2, 6\); 6D"), (9, r"unflatten\(-1, \(3")],
)
def test_global_orient_of_another_representation_says_how_to_convert(size, match) -> None:
    from advprior.body import forward_kinematics

    with pytest.raises(ValueError, match=r"global_orient must be axis-angle .*" + match):
        forward_kinematics(torch.zeros(2, size), torch.zeros(2, 63))


def _svd_nearest(m: torch.Tensor) -> torch.Tensor:
    u, _, vh = torch.linalg.svd(m)
    return u @ vh


def test_nearly_orthonormal_matrices_are_read_as_their_nearest_rotation() -> None:
    # a matrix off by e (a float32 round-trip, frame averaging) was read by the closed-form
    # logarithm, which moved it ~e from the rotation it stands for (0.04 rad at e = 0.08)
    from advprior.body import forward_kinematics
    from advprior.rotations import nearest_rotation

    R = torch.tensor(_pose(21, seed=6).as_matrix()).reshape(2, 21, 3, 3)
    noise = torch.randn(R.shape, dtype=R.dtype, generator=torch.Generator().manual_seed(7))
    M = R + 0.01 * noise  # max |R^T R - I| ~ 0.05, determinants 1 +- ~0.03
    want = rotmat_to_axis_angle(_svd_nearest(M)).flatten(-2)
    assert float((rotmat_to_axis_angle(M).flatten(-2) - want).abs().max()) > 1e-2  # before
    assert torch.allclose(check_body_pose(M), want, atol=1e-10)
    assert torch.allclose(nearest_rotation(M), _svd_nearest(M), atol=1e-12)
    assert torch.allclose(nearest_rotation(M.float()), _svd_nearest(M).float(), atol=1e-6)
    # rotations to rounding are kept bit for bit; gradients are finite at them
    exact = R.float().requires_grad_(True)
    assert torch.equal(check_body_pose(exact), rotmat_to_axis_angle(exact).flatten(-2))
    check_body_pose(M.clone().requires_grad_(True)).sum().backward()
    check_body_pose(exact).sum().backward()
    assert torch.isfinite(exact.grad).all()
    # and the same for a matrix global_orient
    go = M[:, 0]
    fk = forward_kinematics(go, torch.zeros(2, 63, dtype=go.dtype))
    ref = forward_kinematics(rotmat_to_axis_angle(_svd_nearest(go)), torch.zeros(2, 63).double())
    assert torch.allclose(fk, ref, atol=1e-10)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda R: R * torch.tensor([1.0, 1.0, -1.0], dtype=R.dtype), "42 are reflections"),
        (lambda R: 1.2 * R, r"42 are rotations scaled by ~1\.2"),
        (lambda R: 1.2 * R * torch.tensor([1.0, 1.0, -1.0], dtype=R.dtype), "42 are refl"),
    ],
    ids=["reflection", "scaled", "scaled-reflection"],
)
def test_matrices_no_rotation_is_near_are_refused_saying_what_they_are(make, match) -> None:
    R = torch.tensor(_pose(21, seed=8).as_matrix()).reshape(2, 21, 3, 3)
    with pytest.raises(ValueError, match=r"42 of 42 are not rotations \(" + match):
        check_body_pose(make(R))


def test_camera_rotation_off_by_rounding_is_projected_further_off_refused() -> None:
    # before: accepted as it came up to 1e-4 (every projected point scaled and sheared by its
    # error), refused beyond with "must be a proper rotation" and no numbers
    import numpy as np

    from advprior.fitting import PinholeCamera

    R = _rotations(1, seed=9).as_matrix()[0]
    for noise in (1e-7, 2e-4, 3e-3):  # float32, 4 digits in a JSON file, a coarse export
        off = R + noise * np.random.default_rng(0).standard_normal((3, 3))
        cam = PinholeCamera(1000.0, (500.0, 500.0), rotation=off)
        u, _, vt = np.linalg.svd(off)
        assert np.allclose(cam.rotation, u @ vt, atol=1e-14)
        assert np.abs(cam.rotation @ cam.rotation.T - np.eye(3)).max() < 1e-14
    exact = PinholeCamera(1000.0, (0.0, 0.0), rotation=R)
    assert np.array_equal(exact.rotation, R)  # a rotation to 1e-12 is kept as given
    assert PinholeCamera(1000.0, (0.0, 0.0), rotation=torch.tensor(R).float()).rotation.dtype == (
        np.float64
    )
    with pytest.raises(ValueError, match=r"max \|R R\^T - I\| = 0\.2.*singular values .*K @ R"):
        PinholeCamera(1000.0, (0.0, 0.0), rotation=1.1 * R)
    with pytest.raises(ValueError, match=r"det R = -1: a reflection"):
        PinholeCamera(1000.0, (0.0, 0.0), rotation=R * np.array([1.0, -1.0, 1.0]))


@pytest.mark.parametrize(
    ("shape", "match"),
    [((3,), "rvec"), ((3, 1), "rvec"), ((3, 4), r"Rt\[:, :3\]"), ((4, 4), r"T\[:3, :3\]")],
)
def test_camera_rotation_of_another_shape_says_what_to_pass(shape, match) -> None:
    from advprior.fitting import PinholeCamera

    with pytest.raises(ValueError, match=r"shape \(3, 3\), got .*" + match):
        PinholeCamera(1000.0, (0.0, 0.0), rotation=torch.zeros(shape))


def test_vposer_v1_forward_checks_matrices_and_names_other_layouts() -> None:
    # forward read any B x 189 numbers as matrices (all ones gave some pose, no error), refused
    # SMPL's 23-joint matrices, and refused (B, 72) or quaternions without saying what to pass
    from advprior.compat import VPoserV1
    from advprior.hub import load_pretrained

    v1 = VPoserV1(load_pretrained("gan-s"))
    with pytest.raises(ValueError, match=r"Pin \(2, 21, 3, 3\) is read as rotation matrices"):
        v1(torch.ones(2, 21, 3, 3))
    with pytest.raises(ValueError, match=r"got \(2, 72\); SMPL's full pose"):
        v1(torch.zeros(2, 72))
    with pytest.raises(ValueError, match=r"got \(2, 1, 21, 4\); quaternions\?"):
        v1(torch.zeros(2, 1, 21, 4))
    R = torch.tensor(_pose(23, seed=10).as_matrix(), dtype=torch.float32).reshape(2, 23, 3, 3)
    smpl = v1(R, output_type="aa")["mean"]
    assert torch.equal(smpl, v1(R[:, :21].reshape(2, 1, 21, 9), output_type="aa")["mean"])
    # float64 in, float64 out
    out = v1(R[:, :21].double().reshape(2, 1, 21, 9))
    assert out["pose"].dtype == out["mean"].dtype == torch.float64


def test_vposer_encode_takes_rotation_matrices_as_forward_does() -> None:
    # encode of (B, 21, 3, 3) was refused with "B x 63 axis-angle numbers" and a hint to
    # unflatten to (B, 21, 9), which it refused too; forward took them
    from advprior.compat import VPoserV2
    from advprior.hub import load_pretrained

    vp = VPoserV2(load_pretrained("vae"))  # the VAE: its encoder, no inversion to wait for
    R = torch.tensor(_pose(21, seed=11).as_matrix(), dtype=torch.float32).reshape(2, 21, 3, 3)
    want = vp.encode(rotmat_to_axis_angle(R).flatten(-2)).mean
    assert torch.equal(vp.encode(R).mean, want)
    assert torch.equal(vp.encode(R.flatten(-2)).mean, want)
    assert torch.equal(vp(R)["poZ_body_mean"], want)


def test_quaternions_not_quite_unit_give_rotations_as_scipy_does() -> None:
    # quat_to_rotmat of a quaternion of norm n gave a matrix scaled by n^2 (roma's
    # unitquat_to_rotmat): a float32 or 4-digit quaternion from another library was no rotation
    rot = _rotations(64, seed=12)
    scale = torch.linspace(0.9, 1.1, 64, dtype=torch.float64)[:, None]
    q = torch.tensor(rot.as_quat()) * scale
    assert torch.allclose(quat_to_rotmat(q), torch.tensor(rot.as_matrix()), atol=1e-12)
    R32 = quat_to_rotmat(q.float())
    assert float((R32.mT @ R32 - torch.eye(3)).abs().max()) < 1e-6
    assert torch.equal(quat_to_rotmat(torch.zeros(4)), torch.zeros(3, 3))  # no NaN


def test_numpy_poses_are_refused_with_the_conversion() -> None:
    # SciPy's as_rotvec and smplx's .npz arrays are numpy: refused with "got ndarray" only
    import numpy as np

    with pytest.raises(TypeError, match=r"got ndarray; convert it with torch\.from_numpy"):
        check_body_pose(np.zeros((2, 63)))


def test_camera_rotations_of_pytorch3d_and_opengl_convert_as_documented() -> None:
    import numpy as np

    from advprior.fitting import PinholeCamera

    R = _rotations(1, seed=13).as_matrix()[0]
    X = torch.tensor(_rotations(5, seed=14).as_rotvec())  # any points
    # PyTorch3D's cameras_from_opencv_projection: R_p3d = R_cv^T, its first two columns negated
    R_p3d = R.T.copy()
    R_p3d[:, :2] *= -1
    cam = PinholeCamera(1000.0, (0.0, 0.0), rotation=np.diag([-1.0, -1.0, 1.0]) @ R_p3d.T)
    assert np.allclose(cam.rotation, R, atol=1e-15)
    view = X @ torch.tensor(R_p3d)  # PyTorch3D's view frame: x left, y up, z forward
    assert torch.allclose(cam.to_camera(X), view * torch.tensor([-1.0, -1.0, 1.0]).double())
    # OpenGL: x right, y up, looking down -z
    R_gl = np.diag([1.0, -1.0, -1.0]) @ R
    gl = PinholeCamera(1000.0, (0.0, 0.0), rotation=np.diag([1.0, -1.0, -1.0]) @ R_gl)
    assert torch.allclose(gl.to_camera(X), (X @ torch.tensor(R_gl).T) * torch.tensor([1, -1, -1]))
    with pytest.raises(ValueError, match=r"got \(3, 4\); a projection matrix P = K \[R \| t\]"):
        PinholeCamera.from_matrix(np.hstack([np.eye(3), np.zeros((3, 1))]))
