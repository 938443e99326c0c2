"""``FitResult.to_amass`` and ``advprior fit --amass``: AMASS's npz layout per model type, read
back without pickle; the z-up world, in which the re-posed body's joints are the fitted ones
turned (the translation accounts for SMPL's rotation about the pelvis); clips, shapes, refusals.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from advprior.body import load_body_model
from advprior.cli import main
from advprior.data.amass import WORLD_TO_Y_UP, read_amass
from advprior.data.rotmath import rotvec_to_matrix
from advprior.fitting import FitResult, PinholeCamera
from advprior.fitting.amass import CAMERA_TO_WORLD, amass_arrays

CAMERA = PinholeCamera(1000.0, (500.0, 500.0))


@pytest.fixture(scope="module")
def body64():
    return load_body_model(dtype=torch.float64)


def _fit(
    body,
    lead: tuple[int, ...] = (6,),
    *,
    seed: int = 0,
    one_shape: bool = True,
    zero_shape: bool = False,
    info: dict | None = None,
) -> FitResult:
    """A fit-like result: random poses of an upright body seen 4 m in front of the camera (the
    camera frame, y down), its joints posed by ``body``."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=body.dtype)

    go = torch.tensor([math.pi, 0.0, 0.0], dtype=body.dtype) + 0.3 * randn(*lead, 3)
    pose = 0.3 * randn(*lead, 63)
    tr = torch.tensor([0.1, 0.2, 4.0], dtype=body.dtype) + 0.1 * randn(*lead, 3)
    if zero_shape:
        betas = torch.zeros(*lead, 10, dtype=body.dtype)
    elif one_shape:
        betas = randn(*lead[:-1], 1, 10).expand(*lead, 10)
    else:
        betas = randn(*lead, 10)
    with torch.no_grad():
        joints = body(go, pose, betas, tr).joints
    clips = {"clips": lead[0], "frames_per_clip": lead[1]} if len(lead) == 2 else {"clips": 1}
    return FitResult(
        body_pose=pose,
        global_orient=go,
        transl=tr,
        betas=betas,
        latent=None,
        loss=torch.zeros(lead),
        joints=joints,
        projected=torch.zeros(*lead, 24, 2),
        iterations=torch.zeros(lead, dtype=torch.long),
        info={"fps": 30.0, **clips, **(info or {})},
    )


def _repose(body, data) -> torch.Tensor:
    """The 24 joints of ``body`` posed from an AMASS file's arrays."""
    t = lambda x: torch.as_tensor(np.asarray(x), dtype=body.dtype)  # noqa: E731
    k = min(body.num_betas, data["betas"].shape[0])
    poses = t(data["poses"])
    with torch.no_grad():
        return body(poses[:, :3], poses[:, 3:66], t(data["betas"][:k]), t(data["trans"])).joints


@pytest.mark.parametrize(
    ("model_type", "width", "betas"), [("smplh", 156, 16), ("smpl", 72, 10), ("smplx", 165, 16)]
)
def test_layout_per_model_type_reads_back_without_pickle(
    body64, tmp_path, model_type, width, betas
) -> None:
    fit = _fit(body64)
    path = fit.to_amass(tmp_path / "clip.npz", model_type=model_type, gender="Female")
    assert path == tmp_path / "clip.npz"
    split = {"root_orient", "pose_body"} | {
        "smpl": set(),
        "smplh": {"pose_hand"},
        "smplx": {"pose_hand", "pose_jaw", "pose_eye"},
    }[model_type]
    with np.load(path, allow_pickle=False) as data:
        common = {"poses", "trans", "betas", "gender", "mocap_framerate", "mocap_frame_rate"}
        assert set(data.files) == common | {"surface_model_type"} | split
        assert not any(data[k].dtype.hasobject for k in data.files)
        poses = data["poses"]
        assert poses.shape == (6, width) and poses.dtype == np.float64
        assert data["trans"].shape == (6, 3) and data["betas"].shape == (betas,)
        assert str(data["gender"]) == "female" and data["gender"].dtype.kind == "U"
        assert str(data["surface_model_type"]) == model_type
        # AMASS's SMPL-H key and its SMPL-X key: readers look for one or the other
        assert float(data["mocap_framerate"]) == float(data["mocap_frame_rate"]) == 30.0
        assert data["mocap_framerate"].shape == ()
        np.testing.assert_array_equal(poses[:, 3:66], fit.body_pose.numpy())
        np.testing.assert_array_equal(data["root_orient"], poses[:, :3])
        np.testing.assert_array_equal(data["pose_body"], poses[:, 3:66])
        assert not poses[:, 66:].any()  # hands, jaw, eyes: not estimated, zeros
        if model_type == "smplx":
            assert data["pose_jaw"].shape == (6, 3) and data["pose_eye"].shape == (6, 6)
        if model_type != "smpl":
            assert data["pose_hand"].shape == (6, 90)
        np.testing.assert_allclose(data["betas"][:10], fit.betas[0].numpy(), rtol=1e-14)
        assert not data["betas"][10:].any()  # zeros appended
    # float32 fits (what the fitters return) are written as float64 as AMASS's files are
    fit32 = _fit(load_body_model())
    with np.load(fit32.to_amass(tmp_path / "f32.npz"), allow_pickle=False) as data:
        assert data["poses"].dtype == data["trans"].dtype == data["betas"].dtype == np.float64


@pytest.mark.parametrize("up", ["z", "y"])
def test_the_reposed_body_is_the_fitted_one_turned(body64, tmp_path, up) -> None:
    """Posing the body from the file gives the fitted joints turned into the z-up (y-up) world:
    the translation moves the pelvis, about which SMPL turns the body, and not the origin."""
    fit = _fit(body64)
    q = torch.from_numpy(CAMERA_TO_WORLD[up])
    with np.load(fit.to_amass(tmp_path / "a.npz", up=up), allow_pickle=False) as data:
        joints = _repose(body64, data)
        err = float((joints - fit.joints @ q.T).norm(dim=-1).max())
        assert err < 1e-9, err  # float64: 1e-15 m measured
        # the world is upright: the head above the pelvis along +z (+y)
        axis = 2 if up == "z" else 1
        assert bool((joints[:, 15, axis] > joints[:, 0, axis] + 0.2).all())
        # what turning the translation alone gives: off by (Q - I) J0, ~0.3 m
        naive = dict(data)
        naive["trans"] = fit.transl.numpy() @ q.numpy().T
        off = float((_repose(body64, naive) - fit.joints @ q.T).norm(dim=-1).max())
        assert off > 0.1, off
    # a float32 fit, as fit_sequence returns: float32 rounding only
    body32 = load_body_model()
    fit32 = _fit(body32, seed=1)
    with np.load(fit32.to_amass(tmp_path / "b.npz", up=up), allow_pickle=False) as data:
        err = float((_repose(body32, data) - fit32.joints @ q.float().T).norm(dim=-1).max())
        assert err < 2e-5, err


def test_a_camera_rotation_turns_the_fits_world_into_the_cameras_first(body64, tmp_path) -> None:
    turned = PinholeCamera(900.0, (500.0, 500.0), rotation=[[0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    fit = _fit(body64)
    q = torch.from_numpy(CAMERA_TO_WORLD["z"] @ turned.rotation)
    for given in ({"camera_rotation": turned}, {"camera_rotation": turned.rotation}):
        with np.load(fit.to_amass(tmp_path / "a.npz", **given), allow_pickle=False) as data:
            assert float((_repose(body64, data) - fit.joints @ q.T).norm(dim=-1).max()) < 1e-9
    # advprior fit records its camera in info: that rotation is used by default
    fit.info["camera"] = turned.to_dict()
    with np.load(fit.to_amass(tmp_path / "a.npz"), allow_pickle=False) as data:
        assert float((_repose(body64, data) - fit.joints @ q.T).norm(dim=-1).max()) < 1e-9
    for bad, match in (
        (np.eye(4), r"shape \(3, 3\)"),
        (np.diag([1.0, 1.0, -1.0]), "proper rotation"),
        ("x", "camera_rotation must be"),
    ):
        with pytest.raises((ValueError, TypeError), match=match):
            fit.to_amass(tmp_path / "bad.npz", camera_rotation=bad)


def test_read_back_by_advpriors_amass_reader(tmp_path) -> None:
    """``advprior.data.amass.read_amass`` (z-up AMASS to SMPL's y-up frame) gives the fitted
    motion in a y-up world: the camera frame turned by Rx(180 deg), pelvis and rotations."""
    body = load_body_model(dtype=torch.float64)
    fit = _fit(body, zero_shape=True)  # the reader places the pelvis with the neutral rest one
    motion = read_amass(fit.to_amass(tmp_path / "a.npz"))
    assert motion.fps == 30.0 and motion.rotations.shape == (6, 24, 3, 3)
    flip = WORLD_TO_Y_UP["-y"]
    np.testing.assert_allclose(motion.root_position, fit.joints[:, 0].numpy() @ flip.T, atol=1e-6)
    np.testing.assert_allclose(
        motion.rotations[:, 0], flip @ rotvec_to_matrix(fit.global_orient.numpy()), atol=1e-9
    )
    np.testing.assert_allclose(
        motion.rotations[:, 1:22],
        rotvec_to_matrix(fit.body_pose.numpy().reshape(6, 21, 3)),
        atol=1e-12,
    )


def test_one_shape_per_clip_keeps_every_pelvis_in_place(body64, tmp_path) -> None:
    """Per-frame shapes (fit_keypoints frames): ``shape="mean"`` writes their mean and every
    frame's pelvis stays where it was fitted; ``"first"`` the first frame's shape, whose frame
    is then the fitted body exactly."""
    fit = _fit(body64, one_shape=False)
    q = torch.from_numpy(CAMERA_TO_WORLD["z"])
    target = fit.joints @ q.T
    for shape, betas in (("mean", fit.betas.mean(0)), ("first", fit.betas[0])):
        with np.load(fit.to_amass(tmp_path / "a.npz", shape=shape), allow_pickle=False) as data:
            np.testing.assert_allclose(data["betas"][:10], betas.numpy(), atol=1e-12)
            joints = _repose(body64, data)
            assert float((joints[:, 0] - target[:, 0]).norm(dim=-1).max()) < 1e-9
    assert float((joints[0] - target[0]).norm(dim=-1).max()) < 1e-9  # "first": frame 0 whole
    with pytest.raises(ValueError, match="shape must be one of"):
        fit.to_amass(tmp_path / "a.npz", shape="median")


def test_betas_are_padded_or_cut_to_num_betas(body64, tmp_path) -> None:
    fit = _fit(body64)
    assert amass_arrays(fit, num_betas=20)["betas"].shape == (20,)
    assert amass_arrays(fit, model_type="smpl")["betas"].shape == (10,)
    with pytest.warns(UserWarning, match="keeps the first 8"):
        assert amass_arrays(fit, num_betas=8)["betas"].shape == (8,)
    with pytest.warns(UserWarning, match="keeps the first 8") as caught:
        fit.to_amass(tmp_path / "a.npz", num_betas=8)
    assert caught[0].filename == __file__  # the warning points at the caller's line
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="num_betas must be a positive int"):
            amass_arrays(fit, num_betas=bad)


def test_clips_of_a_batched_sequence_fit(body64, tmp_path) -> None:
    """fit_sequence over (B, T, J, 2) keypoints gives (B, T, ...) tensors (info["clips"] = B):
    ``clip`` picks one, and is required when there are several."""
    fit = _fit(body64, (2, 5), one_shape=False)
    with pytest.raises(ValueError, match=r"holds 2 clips.*clip=0 \.\. 1"):
        fit.to_amass(tmp_path / "a.npz")
    q = torch.from_numpy(CAMERA_TO_WORLD["z"])
    for clip in (0, 1, np.int64(1)):
        path = fit.to_amass(tmp_path / "a.npz", clip=clip, shape="first")
        with np.load(path, allow_pickle=False) as data:
            assert data["poses"].shape == (5, 156)
            np.testing.assert_array_equal(data["poses"][:, 3:66], fit.body_pose[clip].numpy())
            joints = _repose(body64, data)
            err = (joints[0] - fit.joints[clip, 0] @ q.T).norm(dim=-1).max()
            assert float(err) < 1e-9
    for bad in (2, -1, 0.0, True, "0"):
        with pytest.raises(ValueError, match=r"clip must be an int in \[0, 2\)"):
            fit.to_amass(tmp_path / "a.npz", clip=bad)
    one = _fit(body64, (1, 4))  # one clip of a batched call: no choice to make
    assert amass_arrays(one)["poses"].shape == (4, 156)
    single = _fit(body64)
    assert amass_arrays(single, clip=0)["poses"].shape == (6, 156)
    with pytest.raises(ValueError, match=r"clip must be an int in \[0, 1\)"):
        amass_arrays(single, clip=1)


def test_a_real_two_clip_fit_sequence(tmp_path) -> None:
    """fit_sequence's own (B, T, ...) result and info["clips"]: the clip is required, and the
    chosen one is written."""
    from advprior.fitting import fit_sequence

    body = load_body_model()
    t = 3
    go = torch.tensor([math.pi, 0.0, 0.0]).expand(2, t, 3)
    tr = torch.tensor([[0.0, 0.0, 4.0], [0.5, 0.1, 5.0]])[:, None].expand(2, t, 3)
    with torch.no_grad():
        kp = CAMERA.project(body(go, torch.zeros(2, t, 63), transl=tr).joints)
    opts = {"prior": None, "pose_density": None, "iterations": 3, "init_iterations": 2}
    fit = fit_sequence(kp, torch.ones(2, t, 24), CAMERA, fps=50, **opts)
    assert fit.info["clips"] == 2 and fit.body_pose.shape == (2, t, 63)
    with pytest.raises(ValueError, match="holds 2 clips"):
        fit.to_amass(tmp_path / "a.npz")
    q = CAMERA_TO_WORLD["z"]
    for clip in (0, 1):
        with np.load(fit.to_amass(tmp_path / "a.npz", clip=clip), allow_pickle=False) as data:
            assert float(data["mocap_framerate"]) == 50.0 and data["poses"].shape == (t, 156)
            np.testing.assert_array_equal(data["poses"][:, 3:66], fit.body_pose[clip].numpy())
            rest = (fit.joints[clip, :, 0] - fit.transl[clip]).double().mean(0).numpy()
            pelvis = fit.joints[clip, :, 0].double().numpy() @ q.T
            np.testing.assert_allclose(data["trans"] + rest, pelvis, atol=1e-6)


def test_refusals_leave_the_old_file(body64, tmp_path) -> None:
    fit = _fit(body64)
    path = tmp_path / "a.npz"
    path.write_bytes(b"old")
    cases = [
        ({"fps": 0}, "fps must be a positive"),
        ({"fps": -30.0}, "fps must be a positive"),
        ({"fps": float("nan")}, "fps must be a positive"),
        ({"fps": "30"}, "fps must be a positive"),
        ({"fps": 60}, r"fitted at fps=30 \(info\['fps'\]\)"),
        ({"gender": "other"}, "gender must be one of"),
        ({"gender": None}, "gender must be one of"),
        ({"model_type": "smpl-x"}, "model_type must be one of"),
        ({"up": "x"}, "up must be one of"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            fit.to_amass(path, **kwargs)
    assert path.read_bytes() == b"old"
    assert amass_arrays(fit, fps=30)["mocap_framerate"] == 30.0  # the recorded rate, again
    # a fit that records no frame rate (fit_sequence without fps=, fit_keypoints): fps required
    fit.info["fps"] = None
    with pytest.raises(ValueError, match="fps is required"):
        fit.to_amass(path)
    assert float(amass_arrays(fit, fps=59.94)["mocap_frame_rate"]) == 59.94
    fit.transl[2, 1] = float("nan")
    with pytest.raises(ValueError, match="transl holds NaN"):
        fit.to_amass(path, fps=30)
    assert path.read_bytes() == b"old"


def test_fit_command_writes_an_amass_file(tmp_path, capsys) -> None:
    body = load_body_model()
    t = 4
    go = torch.tensor([math.pi, 0.0, 0.0]).expand(t, 3)
    tr = torch.stack([torch.linspace(0, 0.3, t), torch.zeros(t), torch.full((t,), 4.0)], -1)
    with torch.no_grad():
        kp = CAMERA.project(body(go, torch.zeros(t, 63), transl=tr).joints)
    src = tmp_path / "clip.json"
    src.write_text(json.dumps({"keypoints": kp.tolist(), "camera": CAMERA.to_dict()}))
    out, amass = tmp_path / "fit.npz", tmp_path / "clip_amass.npz"
    argv = ["fit", str(src), "--prior", "none", "--iterations", "2", "--out", str(out)]
    assert main([*argv, "--sequence", "--fps", "25", "--amass", str(amass)]) == 0
    text = capsys.readouterr().out
    assert text.count("\n") == 1 and f"-> {out} and {amass}" in text
    with np.load(out, allow_pickle=False) as fitted, np.load(amass, allow_pickle=False) as data:
        assert data["poses"].shape == (t, 156) and data["betas"].shape == (16,)
        assert float(data["mocap_framerate"]) == 25.0 and str(data["gender"]) == "neutral"
        np.testing.assert_allclose(data["poses"][:, 3:66], fitted["body_pose"], atol=0)
        # the pelvis, turned into the z-up world, where the fit put it (float32 rounding)
        q = CAMERA_TO_WORLD["z"]
        j0 = (fitted["joints"][:, 0] - fitted["transl"]).astype(np.float64).mean(0)
        pelvis = data["trans"] + j0
        np.testing.assert_allclose(pelvis, fitted["joints"][:, 0] @ q.T, atol=1e-5)
        # in front of the camera: along +y in the z-up world
        assert (pelvis[:, 1] > 1.0).all(), pelvis
    # with a --body-model the layout is its type and the gender its --gender
    from test_body_model import _fake_family

    from advprior.body.standin import build_standin

    models = tmp_path / "models"
    (models / "smplx").mkdir(parents=True)
    np.savez(models / "smplx" / "SMPLX_MALE.npz", **_fake_family(build_standin(), "smplx"))
    own = ["--body-model", str(models), "--model-type", "smplx", "--gender", "male"]
    assert main([*argv, *own, "--sequence", "--fps", "25", "--amass", str(amass)]) == 0
    with np.load(amass, allow_pickle=False) as data:
        assert data["poses"].shape == (t, 165) and str(data["gender"]) == "male"
        assert str(data["surface_model_type"]) == "smplx" and data["pose_eye"].shape == (t, 6)
    capsys.readouterr()
    # usage errors (exit 2, one line) before any file is read
    for extra, message in (
        (["--amass", str(amass)], "--amass writes a clip: it needs --sequence"),
        (["--sequence", "--amass", str(amass)], "--amass needs --fps"),
        (["--sequence", "--fps", "30", "--amass", str(out)], "--amass and --out name the same"),
    ):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.strip().count("\n") == 0, err


@pytest.mark.parametrize("model_type", ["smplh", "smplx"])
def test_smplx_poses_an_smplh_or_smplx_fit_from_the_file(tmp_path, model_type) -> None:
    """A reader posing the file with smplx's own SMPL-H / SMPL-X layer (every column of
    ``poses`` passed as its joint group, hands without PCA and without a mean hand) gets the
    fitted skeleton turned into the z-up world: the root and body columns, the shape and the
    translation mean what AMASS's readers take them to mean. The model is a synthetic SMPL-H /
    SMPL-X on the stand-in mesh (the licensed ones are not here)."""
    from test_body_model import _fake_family

    from advprior.body.standin import build_standin

    folder = tmp_path / "models"
    path = folder / model_type / f"{model_type.upper()}_NEUTRAL.npz"
    path.parent.mkdir(parents=True)
    standin = build_standin()
    np.savez(path, **_fake_family(standin, model_type))
    body = load_body_model(folder, model_type=model_type, dtype=torch.float64)
    fit = _fit(body)
    with np.load(fit.to_amass(tmp_path / "a.npz", model_type=model_type)) as data:
        poses, trans, betas = (torch.from_numpy(data[k]) for k in ("poses", "trans", "betas"))
    n = poses.shape[0]
    layer = load_body_model(
        folder,
        model_type=model_type,
        as_smplx=True,
        dtype=torch.float64,
        use_pca=False,
        flat_hand_mean=True,
        batch_size=n,
        vertex_ids={name: int(i) for name, i in standin["vertex_ids"].items()},
    )
    groups = {
        "smplh": {"left_hand_pose": (66, 111), "right_hand_pose": (111, 156)},
        "smplx": {
            "jaw_pose": (66, 69),
            "leye_pose": (69, 72),
            "reye_pose": (72, 75),
            "left_hand_pose": (75, 120),
            "right_hand_pose": (120, 165),
        },
    }[model_type]
    extra = {name: poses[:, a:b] for name, (a, b) in groups.items()}
    if model_type == "smplx":
        extra["expression"] = torch.zeros(n, 10, dtype=torch.float64)
    with torch.no_grad():
        out = layer(
            global_orient=poses[:, :3],
            body_pose=poses[:, 3:66],
            betas=betas[None, :10].expand(n, 10),
            transl=trans,
            **extra,
        )
    q = torch.from_numpy(CAMERA_TO_WORLD["z"])
    err = float((out.joints[:, :22] - fit.joints[:, :22] @ q.T).norm(dim=-1).max())
    assert err < 1e-7, err  # 8e-9 m measured (smplx's float64 route against advprior's)
