"""OpenPose BODY_25B keypoints (``openpose25b``): the mapping onto the stand-in body, fits as good
as BODY_25's, HeadTop ignored, and BODY_25 / BODY_25B mix-ups caught without false alarms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_fit_keypoints import CAMERA, ITERS, seeded, tame
from test_fit_views import VIEWS, view

from advprior.cli import main
from advprior.errors import KeypointLayoutError
from advprior.eval.benchmark import make_views
from advprior.eval.metrics import p_mpjpe
from advprior.fitting import KEYPOINT_FORMATS, fit_keypoints, fit_sequence
from advprior.fitting.keypoints import (
    LAYOUT_RATIO,
    count_hint,
    get_format,
    layout_ratios,
    model_joint_indices,
)
from advprior.fitting.smplify import body_keypoints, prepare_keypoints
from advprior.prior import PosePrior
from advprior.rotations import quat_to_rotmat, rotmat_to_axis_angle
from advprior.skeleton import JOINT_NAMES

B25 = get_format("openpose25")
B25B = get_format("openpose25b")
RIVAL = {"openpose25": "openpose25b", "openpose25b": "openpose25"}


@pytest.fixture(scope="module")
def body():
    from advprior.body import load_body_model

    return load_body_model()


#: OpenPose's POSE_BODY_25B_BODY_PARTS (include/openpose/pose/poseParametersRender.hpp).
OPENPOSE_BODY_25B = (
    "Nose", "LEye", "REye", "LEar", "REar", "LShoulder", "RShoulder", "LElbow", "RElbow",
    "LWrist", "RWrist", "LHip", "RHip", "LKnee", "RKnee", "LAnkle", "RAnkle", "UpperNeck",
    "HeadTop", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)  # fmt: skip


def test_the_format_table() -> None:
    assert KEYPOINT_FORMATS["openpose25b"] is B25B
    assert B25B.names == OPENPOSE_BODY_25B
    # COCO-17 first, in COCO's order, mapped as coco17 maps them
    assert B25B.sources[:17] == get_format("coco17").sources
    assert B25B.sources[17] == JOINT_NAMES.index("head") == 15
    assert B25B.unobserved == (18,) and B25.unobserved == ()
    # the feet: BODY_25's six points, same names, same order
    assert B25B.names[19:] == B25.names[19:] and B25B.sources[19:] == B25.sources[19:]
    # the torso pairs are (shoulder, hip) per side
    for shoulder, hip in B25B.torso:
        assert B25B.names[shoulder][0] == B25B.names[hip][0]
    # 25 keypoints given to another format name both 25-keypoint layouts; BODY_135's count
    # says how to take its first 25
    assert "'openpose25' or 'openpose25b'" in count_hint(25, get_format("coco17"))
    assert "'openpose25b'" in count_hint(25, B25) and "'openpose25'" in count_hint(25, B25B)
    assert "keypoints[:, :25]" in count_hint(135, B25B)


@torch.no_grad()
def test_keypoints_land_on_the_right_body_parts(body) -> None:
    pose = 0.3 * torch.randn(3, 63, generator=seeded(40))
    orient = torch.tensor([[math.pi, 0.2, 0.1]]).repeat(3, 1)
    transl = torch.tensor([[0.0, 0.2, 4.0]]).repeat(3, 1)
    b, joints = body_keypoints(orient, pose, None, transl, body_model=body, keypoint_format=B25B)
    a, _ = body_keypoints(orient, pose, None, transl, body_model=body, keypoint_format=B25)
    for k, name in enumerate(B25B.names):
        if name in B25.names:  # the same point of the body as BODY_25's namesake
            assert torch.equal(b[:, k], a[:, B25.names.index(name)]), name
    assert torch.equal(b[:, 17], joints[:, 15])  # UpperNeck: SMPL's head joint
    assert bool(torch.isnan(b[:, 18]).all())  # HeadTop: no counterpart
    # model_joint_indices gives HeadTop a finite placeholder (the fit weighs it 0)
    out = body(global_orient=orient, body_pose=pose, transl=transl)
    idx = model_joint_indices(B25B, "smpl", out.model_joints.shape[1], body.extra_joint_names)
    assert torch.allclose(out.model_joints[:, idx][:, :18], b[:, :18], atol=1e-5)
    assert torch.allclose(out.model_joints[:, idx][:, 19:], b[:, 19:], atol=1e-5)
    # projected, the rest pose standing upright (image y down): UpperNeck between the
    # shoulders' line and the eyes, the feet below the knees
    rest, _ = body_keypoints(orient, torch.zeros_like(pose), None, transl, body_model=body,
                             keypoint_format=B25B)  # fmt: skip
    y = CAMERA.project(rest)[..., 1]
    assert bool((y[:, 17] < y[:, [5, 6]].min(-1).values).all())
    assert bool((y[:, 17] > y[:, [1, 2]].max(-1).values).all())
    assert bool((y[:, 19:].min(-1).values > y[:, [13, 14]].max(-1).values).all())


@torch.no_grad()
def test_upper_neck_is_smpl_head_joint_on_the_standin(body) -> None:
    # MPII's upper neck (BODY_25B's UpperNeck) is the top of the neck, under the chin. On the
    # stand-in's rest mesh the chin is the lowest point that sticks out in front of the neck
    # (z > 10 cm) between the shoulders and the eyes; SMPL's head joint (15) is within 2 cm of
    # its height, the neck joint (12) at the neck's base, 6 cm lower.
    out = body(global_orient=torch.zeros(1, 3), body_pose=torch.zeros(1, 63))
    v, j = out.vertices[0], out.joints[0]
    eyes = out.model_joints[0, 24 + body.extra_joint_names.index("leye"), 1]
    front = v[(v[:, 0].abs() < 0.05) & (v[:, 2] > 0.1) & (v[:, 1] > j[16, 1]) & (v[:, 1] < eyes)]
    chin = float(front[:, 1].min())
    assert abs(float(j[15, 1]) - chin) < 0.02
    assert float(j[12, 1]) < chin - 0.05


def _fit(kp, conf, fmt, prior, body):
    return fit_keypoints(
        kp, conf, CAMERA, body_model=body, prior=prior, keypoint_format=fmt, iterations=ITERS
    )


def test_a_body_25b_fit_recovers_the_pose_as_body_25_does(body) -> None:
    torch.manual_seed(0)
    prior = PosePrior(latent="sphere")
    prior = tame(prior, prior.generator[-1])
    with torch.no_grad():
        truth = prior(prior.sample_latent(4, generator=seeded(41)))
    views = {
        f: make_views(truth, torch.zeros(4, 3), seed=3, noise_px=2.0, drop=0.1, keypoints=f)
        for f in ("openpose25", "openpose25b")
    }
    err = {}
    for f, v in views.items():
        res = _fit(v.keypoints, v.confidence, f, prior, body)
        err[f] = float(p_mpjpe(res.joints, v.joints).mean())
        seen = (v.confidence > 0) & torch.isfinite(v.keypoints).all(-1)
        assert float((res.projected - v.keypoints).norm(dim=-1)[seen].mean()) < 5.0
    # measured: 36.8 mm (BODY_25) and 38.3 mm (BODY_25B) P-MPJPE on these frames
    assert err["openpose25b"] < 0.06 and err["openpose25"] < 0.06
    assert abs(err["openpose25b"] - err["openpose25"]) < 0.015


def test_head_top_is_accepted_and_ignored(body) -> None:
    v = make_views(0.2 * torch.randn(2, 63, generator=seeded(42)), torch.zeros(2, 3), seed=4,
                   noise_px=1.0, drop=0.0, keypoints="openpose25b")  # fmt: skip
    assert bool((v.confidence[:, 18] == 0).all())
    a_kp = v.keypoints.clone()
    a_kp[:, 18] = torch.tensor([900.0, 20.0])  # a detector's head top, anywhere
    b_kp = v.keypoints.clone()
    b_kp[:, 18] = float("nan")
    conf = torch.ones(2, 25)
    kp, c = prepare_keypoints(a_kp, conf, B25B)
    assert bool((c[:, 18] == 0).all()) and bool((c[:, :18] == 1).all())
    a = fit_keypoints(a_kp, conf, CAMERA, body_model=body, prior=None,
                      keypoint_format="openpose25b", iterations=5)  # fmt: skip
    b = fit_keypoints(b_kp, conf, CAMERA, body_model=body, prior=None,
                      keypoint_format="openpose25b", iterations=5)  # fmt: skip
    assert torch.equal(a.body_pose, b.body_pose) and torch.equal(a.loss, b.loss)
    assert bool(torch.isnan(a.projected[:, 18]).all())
    assert bool(torch.isfinite(a.projected[:, :18]).all() and torch.isfinite(a.loss).all())
    seq = fit_sequence(a_kp, conf, CAMERA, body_model=body, prior=None,
                       keypoint_format="openpose25b", iterations=2, init_iterations=2)  # fmt: skip
    assert bool(torch.isnan(seq.projected[:, 18]).all())
    assert bool(torch.isfinite(seq.projected[:, :18]).all())


@pytest.mark.parametrize(
    ("true", "given"), [("openpose25b", "openpose25"), ("openpose25", "openpose25b")]
)
def test_a_mislabelled_layout_is_named(body, true: str, given: str) -> None:
    pose = 0.2 * torch.randn(4, 63, generator=seeded(43))
    v = make_views(pose, torch.zeros(4, 3), seed=5, noise_px=3.0, drop=0.1, keypoints=true)
    with pytest.raises(KeypointLayoutError, match=f"keypoint_format='{true}'") as err:
        fit_keypoints(v.keypoints, v.confidence, CAMERA, body_model=body, prior=None,
                      keypoint_format=given, iterations=2)  # fmt: skip
    assert err.value.likely_format == true and isinstance(err.value, ValueError)
    with pytest.raises(KeypointLayoutError):  # a single frame is enough
        prepare_keypoints(v.keypoints[:1], v.confidence[:1], get_format(given))
    with pytest.raises(KeypointLayoutError, match=f"--format {true}"):
        fit_sequence(v.keypoints, v.confidence, CAMERA, body_model=body, prior=None,
                     keypoint_format=given, iterations=2, init_iterations=2)  # fmt: skip
    prepare_keypoints(v.keypoints, v.confidence, get_format(true))  # the right name passes


@pytest.mark.parametrize(
    ("true", "given"), [("openpose25b", "openpose25"), ("openpose25", "openpose25b")]
)
def test_check_layout_false_turns_the_mixup_check_off(body, true: str, given: str) -> None:
    # a genuine dataset that trips the rule (measured on synthetic keypoints only) needs a way
    # through other than a KeypointFormat of its own: check_layout=False on every entry point
    from advprior.fitting.smplify import final_objective

    pose = 0.2 * torch.randn(4, 63, generator=seeded(43))
    v = make_views(pose, torch.zeros(4, 3), seed=5, noise_px=3.0, drop=0.1, keypoints=true)
    args = (v.keypoints, v.confidence, CAMERA)
    common = dict(body_model=body, prior=None, keypoint_format=given)
    # on by default, and the refusal says how to turn it off
    with pytest.raises(KeypointLayoutError, match=r"check_layout=False .*--no-layout-check"):
        fit_keypoints(*args, **common, iterations=2)
    with pytest.raises(KeypointLayoutError):
        final_objective(*args, **common)
    with pytest.raises(KeypointLayoutError):
        fit_sequence(*args, **common, iterations=2, init_iterations=2)
    with pytest.raises(KeypointLayoutError):
        prepare_keypoints(v.keypoints, v.confidence, get_format(given))
    fit = fit_keypoints(*args, **common, iterations=2, check_layout=False)
    assert fit.info["check_layout"] is False and fit.info["keypoint_format"] == given
    fn, term, nb = final_objective(*args, **common, check_layout=False)
    assert fn(torch.zeros(4, 6 + nb + term.dim)).shape == (4,)
    seq = fit_sequence(*args, **common, iterations=2, init_iterations=2, check_layout=False)
    assert seq.info["check_layout"] is False and seq.body_pose.shape == (4, 63)
    kp, conf = prepare_keypoints(v.keypoints, v.confidence, get_format(given), check_layout=False)
    assert kp.shape == (4, 25, 2)
    right = fit_keypoints(*args, body_model=body, prior=None, keypoint_format=true, iterations=2)
    assert right.info["check_layout"] is True
    # the check only reads: genuine keypoints fit bit for bit alike without it
    same = fit_keypoints(*args, body_model=body, prior=None, keypoint_format=true, iterations=2,
                         check_layout=False)  # fmt: skip
    assert torch.equal(same.body_pose, right.body_pose) and torch.equal(same.loss, right.loss)


def test_fit_sequence_judges_the_layout_once_over_the_clip(body, monkeypatch) -> None:
    # its per-frame start runs fit_keypoints on chunks of frames: a chunk voting alone could
    # disagree with the clip's verdict, so only the clip is judged (and nothing is with False)
    import advprior.fitting.keypoints as keypoints

    calls = []
    real = keypoints.check_layout
    monkeypatch.setattr(keypoints, "check_layout", lambda *a: calls.append(a[0].shape) or real(*a))
    pose = 0.2 * torch.randn(6, 63, generator=seeded(48))
    v = make_views(pose, torch.zeros(6, 3), seed=8, noise_px=2.0, drop=0.0, keypoints="openpose25")
    args = (v.keypoints, v.confidence, CAMERA)
    common = dict(body_model=body, prior=None, keypoint_format="openpose25", iterations=2)
    seq = fit_sequence(*args, **common, init_iterations=2)
    assert calls == [(6, 25, 2)] and seq.info["check_layout"] is True
    calls.clear()
    fit_sequence(*args, **common, init_iterations=2, check_layout=False)
    fit_keypoints(*args, **common, check_layout=False)
    assert calls == []


@pytest.mark.parametrize("fmt", ["openpose25", "openpose25b"])
def test_no_false_alarm_on_noisy_partial_or_odd_views(fmt: str) -> None:
    spec = get_format(fmt)
    # the benchmark's and the examples' scenes: noise, dropped keypoints, sparse frames
    pose = 0.3 * torch.randn(64, 63, generator=seeded(44))
    for noise, drop in ((0.0, 0.0), (5.0, 0.2), (10.0, 0.5), (5.0, 0.99)):
        v = make_views(pose, torch.zeros(64, 3), seed=6, noise_px=noise, drop=drop, keypoints=fmt)
        prepare_keypoints(v.keypoints, v.confidence, spec, min_keypoints=0)
        for b in range(64):  # and every frame alone
            prepare_keypoints(v.keypoints[b : b + 1], v.confidence[b : b + 1], spec, 0)
    # test_fit_views' odd views: from above, feet first, upside down, lying across the image
    for name in VIEWS:
        kp, _ = view(name, fmt)
        prepare_keypoints(kp, None, spec)
    # any orientation, people 130-450 px tall, 5 px noise, 30% dropped: every frame below
    # the threshold (the margin docs/fitting.md gives was measured as this, on more frames)
    g = seeded(45)
    n = 400
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=-1, keepdim=True)
    orient = rotmat_to_axis_angle(quat_to_rotmat(q))
    pose = 0.3 * torch.randn(n, 63, generator=g)
    with torch.no_grad():
        _, j = body_keypoints(orient, pose)
        depth = 3.0 + 10.0 * torch.rand(n, generator=g)
        transl = torch.stack([torch.zeros(n), torch.zeros(n), depth], -1) - j[:, 0]
        pts, _ = body_keypoints(orient, pose, None, transl, keypoint_format=fmt)
    kp = CAMERA.project(pts) + 5.0 * torch.randn(n, 25, 2, generator=g)
    conf = (torch.rand(n, 25, generator=g) >= 0.3).float()
    r = layout_ratios(kp, conf, spec)
    assert float(r[torch.isfinite(r)].max()) < LAYOUT_RATIO
    wrong = layout_ratios(kp, conf, get_format(RIVAL[fmt]))
    assert float(wrong[torch.isfinite(wrong)].median()) > LAYOUT_RATIO


def _openpose_file(path, kp: np.ndarray, extra: int = 0) -> str:
    flat = np.concatenate([kp, np.ones((25, 1))], 1)
    if extra:  # BODY_135: hands and face after the first 25
        flat = np.concatenate([flat, np.ones((extra, 3))])
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": flat.reshape(-1).tolist()}]}))
    return str(path)


def test_cli_reads_body_25b_and_body_135_and_names_the_mixup(tmp_path, capsys) -> None:
    v = make_views(0.2 * torch.randn(2, 63, generator=seeded(46)), torch.zeros(2, 3), seed=7,
                   noise_px=1.0, drop=0.0, keypoints="openpose25b")  # fmt: skip
    kp = np.nan_to_num(v.keypoints.numpy().astype(np.float64))  # HeadTop: any value
    b25b = [_openpose_file(tmp_path / f"{i}_keypoints.json", kp[i]) for i in range(2)]
    b135 = [_openpose_file(tmp_path / f"{i}_135.json", kp[i], 110) for i in range(2)]
    cam = ["--camera", "1000,500,500", "--prior", "none", "--iterations", "2"]
    out = tmp_path / "fit.npz"
    # an OpenPose file is BODY_25 unless told: the fit names the right --format
    assert main(["fit", *b25b, *cam, "--out", str(out)]) == 1
    assert "--format openpose25b" in capsys.readouterr().err
    assert main(["fit", *b25b, *cam, "--format", "openpose25b", "--out", str(out)]) == 0
    data = np.load(out)
    assert json.loads(str(data["info"]))["keypoint_format"] == "openpose25b"
    assert np.isnan(data["projected"][:, 18]).all() and np.isfinite(data["projected"][:, :18]).all()
    assert "mean reprojection nan" not in capsys.readouterr().out
    # BODY_135 (405 values): its first 25 are BODY_25B's, read as such
    assert main(["fit", *b135, *cam, "--out", str(out)]) == 0
    assert json.loads(str(np.load(out)["info"]))["keypoint_format"] == "openpose25b"


def test_cli_no_layout_check_fits_a_refused_file_as_told(tmp_path, capsys) -> None:
    v = make_views(0.2 * torch.randn(2, 63, generator=seeded(46)), torch.zeros(2, 3), seed=7,
                   noise_px=1.0, drop=0.0, keypoints="openpose25b")  # fmt: skip
    kp = np.nan_to_num(v.keypoints.numpy().astype(np.float64))
    files = [_openpose_file(tmp_path / f"{i}_keypoints.json", kp[i]) for i in range(2)]
    cam = ["--camera", "1000,500,500", "--prior", "none", "--iterations", "2"]
    out = tmp_path / "fit.npz"
    assert main(["fit", *files, *cam, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "KeypointLayoutError" in err or "look like OpenPose BODY_25B" in err
    assert "--no-layout-check" in err and not out.exists()
    # the user's word: fitted as BODY_25 (the file's default), the choice recorded
    for extra in (["--no-layout-check"], ["--no-layout-check", "--sequence"]):
        assert main(["fit", *files, *cam, *extra, "--out", str(out)]) == 0
        info = json.loads(str(np.load(out)["info"]))
        assert info["check_layout"] is False and info["keypoint_format"] == "openpose25"
    assert main(["fit", *files, *cam, "--layout-check", "--out", str(out)]) == 1


@pytest.mark.parametrize("model_type", ["smplh", "smplx"])
@torch.no_grad()
def test_the_mapping_on_smplh_and_smplx_files(model_type: str, tmp_path) -> None:
    # every BODY_25B point is its BODY_25 namesake, UpperNeck the head joint (15 in each family)
    from test_body_real_layouts import _standard_file

    from advprior.body import load_body_model

    body = load_body_model(_standard_file(model_type, tmp_path)[0])
    go = torch.tensor([[math.pi, 0.1, 0.0]] * 2)
    pose = 0.2 * torch.randn(2, 63, generator=seeded(47))
    b, joints = body_keypoints(go, pose, body_model=body, keypoint_format=B25B)
    a, _ = body_keypoints(go, pose, body_model=body, keypoint_format=B25)
    for k, name in enumerate(B25B.names):
        if name in B25.names:
            assert torch.equal(b[:, k], a[:, B25.names.index(name)]), name
    assert torch.allclose(b[:, 17], body(go, pose).joints[:, 15], atol=1e-5)
    assert bool(torch.isnan(b[:, 18]).all()) and bool(torch.isfinite(b[:, :18]).all())
