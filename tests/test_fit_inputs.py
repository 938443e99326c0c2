"""fit_keypoints / advprior fit on inputs as users' own pipelines hand them over: intrinsics from
a K matrix or numpy/torch scalars, normalised coordinates, keypoints that carry autograd,
per-file cameras, other detectors' keypoint counts, results fed to smplx."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch

from advprior.body import load_body_model, standin_folder
from advprior.cli import main
from advprior.errors import CameraWarning
from advprior.fitting import PinholeCamera, fit_keypoints, fit_sequence
from advprior.fitting.smplify import body_keypoints
from advprior.rotations import axis_angle_to_rotmat, rotmat_to_axis_angle

CAMERA = PinholeCamera(focal=1000.0, center=(512.0, 512.0))


@pytest.fixture(scope="module")
def body():
    return load_body_model()


def _upright(camera: PinholeCamera, n: int) -> torch.Tensor:
    rot = torch.as_tensor(camera.rotation, dtype=torch.float32)
    flip = axis_angle_to_rotmat(torch.tensor([math.pi, 0.0, 0.0]))
    return rotmat_to_axis_angle(rot.T @ flip).expand(n, 3).clone()


def _keypoints(body, camera: PinholeCamera, n: int = 2, depth: float = 4.0, fmt="smpl24"):
    """Keypoints ``(n, J, 2)`` of small random poses, upright, ``depth`` m in front."""
    gen = torch.Generator().manual_seed(0)
    pose = 0.2 * torch.randn(n, 63, generator=gen)
    rot = torch.as_tensor(camera.rotation, dtype=torch.float32)
    transl = (torch.tensor([0.1, 0.2, depth]) @ rot).expand(n, 3)
    with torch.no_grad():
        k3, _ = body_keypoints(
            _upright(camera, n), pose, transl=transl, body_model=body, keypoint_format=fmt
        )
        return camera.project(k3)


# -- cameras ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "focal",
    [np.float32(800.0), np.int64(800), torch.tensor(800.0), np.array([800.0]), [np.float32(800)]],
    ids=["np.float32", "np.int64", "0-d tensor", "1-element array", "1-element list"],
)
def test_camera_takes_numpy_and_torch_scalars(focal) -> None:
    # K[0, 0] of a float32 K (a torch.Tensor.numpy(), a JSON read with dtype float32) used to
    # be refused as "got 1 values"
    cam = PinholeCamera(focal, (np.float32(320.0), torch.tensor(240.0)))
    assert cam.focal == (800.0, 800.0) and cam.center == (320.0, 240.0)


def test_camera_from_an_intrinsic_matrix() -> None:
    rot = axis_angle_to_rotmat(torch.tensor([0.1, -0.2, 0.05])).numpy()
    k = np.array([[1100.0, 0.0, 300.0], [0.0, 1000.0, 700.0], [0.0, 0.0, 1.0]], np.float32)
    cam = PinholeCamera.from_matrix(k, rotation=rot)
    ref = PinholeCamera((1100.0, 1000.0), (300.0, 700.0), rotation=rot)
    assert cam.focal == ref.focal and cam.center == ref.center
    pts = torch.tensor([[0.3, -0.2, 3.0], [-0.5, 0.4, 6.0]])
    # float32 matrix products: |u| ~ 1e3 px, so agreement to ~1e-4 relative
    assert torch.allclose(cam.project(pts), ref.project(pts), atol=1e-3)
    # the same through torch and the camera-file dict
    assert PinholeCamera.from_matrix(torch.as_tensor(k)).focal == ref.focal
    assert PinholeCamera.from_dict({"K": k.tolist(), "rotation": rot.tolist()}).center == (
        ref.center
    )
    skew = k.copy()
    skew[0, 1] = 5.0
    with pytest.raises(ValueError, match="skew"):
        PinholeCamera.from_matrix(skew)
    bottom = k.copy()
    bottom[2] = (0.0, 0.0, 2.0)
    with pytest.raises(ValueError, match=r"\[0, 0, 1\]"):
        PinholeCamera.from_matrix(bottom)
    with pytest.raises(ValueError, match=r"\(3, 3\)"):
        PinholeCamera.from_matrix(np.eye(4))
    # a K handed to focal= says where it belongs
    with pytest.raises(ValueError, match="from_matrix"):
        PinholeCamera(k, (300.0, 700.0))


def test_a_camera_file_with_opencvs_extrinsic_names_is_refused_not_read_half(
    tmp_path, capsys
) -> None:
    """{"K", "R", "t"} (OpenCV's names) used to be read as K alone: the rotation was dropped
    without a word and the fit ran in the camera's frame, not the world the user asked for."""
    rot = axis_angle_to_rotmat(torch.tensor([0.4, 0.0, 0.0])).numpy().tolist()
    k = [[1000.0, 0.0, 640.0], [0.0, 1000.0, 360.0], [0.0, 0.0, 1.0]]
    for extra, match in (
        ({"R": rot}, r"'R' is not read: name the world-to-camera rotation \"rotation\""),
        ({"rvec": [0.4, 0.0, 0.0]}, "cv2.Rodrigues"),
        ({"rotation": rot, "t": [0.0, 1.5, 0.0]}, r"'t' is not read: .* -R\^T t"),
        ({"rotation": rot, "translation": [0.0, 1.5, 0.0]}, "translation' is not read"),
    ):
        with pytest.raises(ValueError, match=match):
            PinholeCamera.from_dict({"K": k, **extra})
        with pytest.raises(ValueError, match=match):
            PinholeCamera.from_dict({"focal": 1000.0, "center": [640.0, 360.0], **extra})
    # the CLI says it in one line naming the file, before reading any keypoints
    path = tmp_path / "cam.json"
    path.write_text(json.dumps({"K": k, "R": rot, "t": [0.0, 1.5, 0.0]}))
    assert main(["fit", str(tmp_path / "none.json"), "--camera", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cam.json: camera: a camera's 'R' is not read" in err, err
    # the names it reads, and notes beside them, are read as before
    cam = PinholeCamera.from_dict({"K": k, "rotation": rot, "width": 1280, "height": 720})
    np.testing.assert_allclose(cam.rotation, rot, atol=1e-7)


# -- pixels, not normalised coordinates ----------------------------------------------------


def test_normalised_coordinates_are_refused(body) -> None:
    """The fit's weights (sigma, the stage weights, the pose density's) are relative to squared
    pixels; in normalised units the prior outweighs the keypoints by ~1e5 and the fit returned
    a body that ignores them (measured: 180 mm MPJPE against 25 mm for the same view in
    pixels), silently."""
    kp = _keypoints(body, CAMERA)
    normalised = PinholeCamera(1000.0 / 512.0, (0.0, 0.0))
    with pytest.raises(ValueError, match="focal length .* pixels"):
        fit_keypoints((kp - 512.0) / 512.0, None, normalised, body_model=body, prior=None)
    with pytest.raises(ValueError, match="focal length .* pixels"):
        fit_sequence((kp - 512.0) / 512.0, None, normalised, body_model=body, prior=None)
    # [0, 1] keypoints with the pixel camera: the body spans < 1 px, the depth guess hits its
    # 1000 m clamp and the result was a body 1 km away
    unit = kp / 1024.0
    unit[0] = kp[0]  # frame 0 in pixels, frame 1 not
    with pytest.raises(ValueError, match=r"frames \[1\]: .* span less than 2 px"):
        fit_keypoints(unit, None, CAMERA, body_model=body, prior=None)


def test_a_focal_length_in_millimetres_is_refused_saying_so(body, tmp_path, capsys) -> None:
    """A lens's 50 mm passed as --camera 50,... used to be fitted silently: the body came out a
    few decimetres from the camera, bent by a 150-degree perspective (on a 375 px person,
    OpenPose keypoints: 33 px reprojection against 4 px at the right focal length)."""
    kp = _keypoints(body, CAMERA, n=3)  # about 420 px tall at 1000 px focal length, 4 m away
    path = tmp_path / "kp.json"
    path.write_text(json.dumps({"keypoints": kp.tolist()}))
    base = ["fit", str(path), "--prior", "none", "--iterations", "1"]
    out = ["--out", str(tmp_path / "fit.npz")]
    for mm in ("50", "85"):
        for seq in ([], ["--sequence"]):
            assert main([*base, "--camera", f"{mm},512,512", *seq, *out]) == 1
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and "times the focal length" in err, err
            assert "a focal length in mm?" in err, err
    assert not (tmp_path / "fit.npz").exists()
    # the median frame decides: one false detection spanning the image is no camera's fault
    wide = kp.clone()
    wide[0, 0] = torch.tensor([-2500.0, -2500.0])
    path.write_text(json.dumps({"keypoints": wide.tolist()}))
    assert main([*base, "--camera", "1000,512,512", *out]) == 0
    # a person near a wide lens (1 m away, 600 px focal length: ~1000 px tall) still fits
    near = PinholeCamera(600.0, (512.0, 512.0))
    path.write_text(json.dumps({"keypoints": _keypoints(body, near, n=1, depth=1.0).tolist()}))
    assert main([*base, "--camera", "600,512,512", *out]) == 0
    # a zoom (--sequence, a camera per file) is read per frame and fits
    for i, focal in enumerate((1000.0, 100.0)):
        cam = PinholeCamera(focal, (512.0, 512.0))
        data = {"keypoints": _keypoints(body, cam, n=1).tolist(), "camera": cam.to_dict()}
        (tmp_path / f"z{i}.json").write_text(json.dumps(data))
    zoom = ["fit", str(tmp_path / "z0.json"), str(tmp_path / "z1.json"), "--sequence"]
    assert main([*zoom, "--prior", "none", "--iterations", "1", *out]) == 0


def test_fit_keypoints_warns_of_a_focal_length_in_millimetres(body) -> None:
    """From Python the same camera used to fit without a word (the CLI refuses it): a
    CameraWarning names the ratio and the conversion, pointing at the caller's line, and the fit
    still runs; the right focal length gives no warning."""
    kp = _keypoints(body, CAMERA, n=2)  # about 420 px tall at 1000 px focal length
    mm = PinholeCamera(50.0, (512.0, 512.0))
    with pytest.warns(CameraWarning, match="a focal length in mm") as caught:
        res = fit_keypoints(kp, None, mm, body_model=body, prior=None, iterations=1)
    assert caught[0].filename == __file__ and len(res) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", CameraWarning)
        fit_keypoints(kp, None, CAMERA, body_model=body, prior=None, iterations=1)


def test_a_small_far_person_in_pixels_still_fits(body) -> None:
    # 60 m away: about 28 px tall, well above the 2 px refusal
    kp = _keypoints(body, CAMERA, n=1, depth=60.0)
    assert float(kp[0, :, 1].max() - kp[0, :, 1].min()) > 20.0
    res = fit_keypoints(kp, None, CAMERA, body_model=body, prior=None, iterations=10)
    assert float((res.projected - kp).norm(dim=-1).mean()) < 1.0


# -- keypoints from a user's network --------------------------------------------------------


def test_keypoints_that_require_grad_fit_quietly(body) -> None:
    kp = _keypoints(body, CAMERA).requires_grad_(True)
    conf = torch.ones(2, 24, requires_grad=True)
    with warnings.catch_warnings():
        # "Converting a tensor with requires_grad=True to a scalar" came from the input checks
        warnings.simplefilter("error")
        res = fit_keypoints(kp, conf, CAMERA, body_model=body, prior=None, iterations=2)
    ref = fit_keypoints(kp.detach(), conf.detach(), CAMERA, body_model=body, prior=None,
                        iterations=2)  # fmt: skip
    assert torch.equal(res.body_pose, ref.body_pose) and not res.body_pose.requires_grad


@pytest.mark.parametrize(
    ("count", "fmt", "hint"),
    [(133, "coco17", r"\[:, :17\]"), (26, "coco17", r"\[:, :17\]"), (18, "openpose25", "COCO-18")],
)
def test_other_detectors_keypoint_counts_say_what_to_do(body, count, fmt, hint) -> None:
    kp = 512.0 + 100.0 * torch.randn(2, count, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=hint):
        fit_keypoints(kp, None, CAMERA, body_model=body, prior=None, keypoint_format=fmt)


# -- results with smplx ----------------------------------------------------------------------


def test_results_reproject_through_smplx(body) -> None:
    """The documented recipe: pad body_pose to SMPL's 69 numbers, and smplx's joints and
    surface points project (with the same camera) to FitResult.projected."""
    smplx = pytest.importorskip("smplx")
    rot = axis_angle_to_rotmat(torch.tensor([0.2, 0.3, -0.1])).numpy()
    cam = PinholeCamera((1000.0, 1150.0), (300.0, 700.0), rotation=rot)
    kp = _keypoints(body, cam, fmt="coco17")
    res = fit_keypoints(
        kp, None, cam, body_model=body, prior=None, keypoint_format="coco17", iterations=3
    )
    model = smplx.create(str(standin_folder()), model_type="smpl")
    n = len(res)
    with torch.no_grad():
        out = model(
            global_orient=res.global_orient,
            body_pose=torch.cat([res.body_pose, torch.zeros(n, 6)], 1),
            betas=res.betas,
            transl=res.transl,
        )
    # smplx's SMPL output: 24 joints, then nose, reye, leye, rear, lear, toes and heels
    coco = [24, 26, 25, 28, 27, 16, 17, 18, 19, 20, 21, 1, 2, 4, 5, 7, 8]
    # float32 skinning of metres-sized bodies (~1e-6 m) times f / z ~ 300 px/m: ~1e-3 px
    assert torch.allclose(cam.project(out.joints[:, coco]), res.projected, atol=1e-2)
    assert torch.allclose(out.joints[:, :24], res.joints, atol=1e-5)


# -- advprior fit -----------------------------------------------------------------------------


def test_cli_refuses_files_with_different_cameras(tmp_path, body, capsys) -> None:
    """Each file's camera used to be dropped for the first file's: the second frame was fitted
    as if seen by another camera (reprojecting fine, 2 m off in depth)."""
    other = PinholeCamera(2000.0, (960.0, 540.0))
    for name, cam in (("a.json", CAMERA), ("b.json", other)):
        data = {"keypoints": _keypoints(body, cam, n=1).tolist(), "camera": cam.to_dict()}
        (tmp_path / name).write_text(json.dumps(data))
    files = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    argv = ["fit", *files, "--prior", "none", "--iterations", "2"]
    assert main([*argv, "--out", str(tmp_path / "ab.npz")]) == 1
    err = capsys.readouterr().err
    assert "different cameras" in err and "b.json" in err, err
    # the same camera in every file, or one given on the command line, is fine
    same = json.loads((tmp_path / "a.json").read_text())
    (tmp_path / "b.json").write_text(json.dumps(same))
    assert main([*argv, "--out", str(tmp_path / "aa.npz")]) == 0


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("Infinity", "contain +-Inf"),
        ("2e9", "|x|, |y| <= 1e+09"),
        ("conf 1.5", "confidence must lie in [0, 1]"),
        ("conf -0.1", "confidence must lie in [0, 1]"),
    ],
)
def test_cli_names_the_file_whose_values_are_wrong(tmp_path, body, capsys, value, needle) -> None:
    """With several files the error says which one holds the bad value (the API's own check
    sees all frames at once and cannot)."""
    good = _keypoints(body, CAMERA, n=1)[0].tolist()
    bad = [row + [1.0] for row in good]
    if value.startswith("conf"):
        bad[3][2] = float(value.split()[1])
    else:
        bad[3][0] = float(value.replace("Infinity", "inf"))
    for name, kp in (("a.json", [row + [1.0] for row in good]), ("b.json", bad)):
        # json writes inf as Infinity, which Python's reader accepts (as detectors' files have it)
        (tmp_path / name).write_text(json.dumps({"keypoints": [kp]}))
    argv = ["fit", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--camera", "1000,512,512"]
    assert main([*argv, "--prior", "none", "--out", str(tmp_path / "f.npz")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "b.json: " in err and needle in err, err
    assert not (tmp_path / "f.npz").exists()


def test_a_keypoint_row_of_nans_is_missing_in_any_layout(body) -> None:
    """``(B, J, 3)`` with a missing keypoint written as ``[nan, nan, nan]`` (numpy's way of
    saying "not detected") fits as with confidence 0 for it, not a confidence error."""
    kp = _keypoints(body, CAMERA, n=1)
    rows = torch.cat([kp, torch.ones(1, kp.shape[1], 1)], dim=-1)
    rows[0, 5] = float("nan")
    zeroed = rows.clone()
    zeroed[0, 5] = torch.tensor([0.0, 0.0, 0.0])
    kw = {"prior": None, "iterations": 2, "starts": 1}
    a = fit_keypoints(rows, None, CAMERA, **kw)
    b = fit_keypoints(zeroed, None, CAMERA, **kw)
    assert torch.equal(a.body_pose, b.body_pose) and torch.equal(a.transl, b.transl)
    rows[0, 6, 2] = float("nan")  # a seen keypoint with NaN confidence is still an error
    with pytest.raises(ValueError, match=r"confidence must lie in \[0, 1\]"):
        fit_keypoints(rows, None, CAMERA, **kw)


@pytest.mark.parametrize("fmt", ["smpl24", "coco17"])
def test_body_keypoints_of_clips_keep_their_leading_dimensions(body, fmt) -> None:
    # fit_sequence's (B, T, ...) results: an IndexError before (the frames were read as B rows);
    # each frame is the same bits as in the flat (B * T) batch, which poses the same rows
    gen = torch.Generator().manual_seed(1)
    go = _upright(CAMERA, 6).view(2, 3, 3)
    pose = 0.2 * torch.randn(2, 3, 63, generator=gen)
    betas = torch.randn(2, 3, body.num_betas, generator=gen)
    transl = torch.randn(2, 3, 3, generator=gen)
    kw = {"body_model": body, "keypoint_format": fmt}
    points, joints = body_keypoints(go, pose, betas, transl, **kw)
    flat = body_keypoints(go.reshape(6, 3), pose.reshape(6, 63), betas.flatten(0, 1),
                          transl.reshape(6, 3), **kw)  # fmt: skip
    assert torch.equal(points, flat[0].unflatten(0, (2, 3)))
    assert torch.equal(joints, flat[1].unflatten(0, (2, 3)))
    # betas and translation default to 0 for every frame
    points, _ = body_keypoints(go, pose, **kw)
    flat = body_keypoints(go.reshape(6, 3), pose.reshape(6, 63), **kw)[0]
    assert torch.equal(points, flat.unflatten(0, (2, 3)))
