"""``advprior fit`` on JSON keypoint files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from advprior.body import load_body_model
from advprior.cli import main
from advprior.fitting import PinholeCamera
from advprior.prior import PosePrior

CAMERA = PinholeCamera(focal=1000.0, center=(500.0, 500.0))


@pytest.fixture(scope="module")
def keypoints() -> np.ndarray:
    body = load_body_model()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        out = body(
            global_orient=torch.tensor([[math.pi, 0.0, 0.0]] * 2),
            body_pose=0.2 * torch.randn(2, 63, generator=gen),
            transl=torch.tensor([[0.0, 0.2, 4.0], [0.1, 0.1, 5.0]]),
        )
        return CAMERA.project(out.joints).numpy()


def test_fit_advprior_layout_with_a_checkpoint(tmp_path, keypoints, capsys) -> None:
    ckpt = tmp_path / "prior"
    torch.manual_seed(0)
    PosePrior(latent="sphere").save_pretrained(ckpt)
    kp = keypoints.tolist()
    kp[0][3] = None  # a missing keypoint
    src = tmp_path / "kp.json"
    src.write_text(json.dumps({"format": "smpl24", "keypoints": kp, "camera": CAMERA.to_dict()}))
    out = tmp_path / "fit.npz"
    assert (
        main(["fit", str(src), "--prior", str(ckpt), "--iterations", "3", "--out", str(out)]) == 0
    )
    data = np.load(out)
    assert data["body_pose"].shape == (2, 63)
    assert data["latent"].shape == (2, 32)
    assert data["joints"].shape == (2, 24, 3)
    info = json.loads(str(data["info"]))
    assert info["keypoint_format"] == "smpl24" and info["camera"]["focal"] == [1000.0, 1000.0]
    assert info["starts"] == 1 and info["view_starts"] is True  # on by default since round 16
    assert "fitted 2 frame(s)" in capsys.readouterr().out
    # turning the torso-plane starts off reaches the fit (recorded in its info), per frame and
    # in --sequence
    view = ["fit", str(src), "--prior", str(ckpt), "--iterations", "2", "--no-view-starts"]
    assert main([*view, "--out", str(out)]) == 0
    assert json.loads(str(np.load(out)["info"]))["view_starts"] is False
    assert main([*view, "--sequence", "--out", str(out)]) == 0
    capsys.readouterr()
    # several starts per frame: recorded, named in the one-line answer; 0 is a usage error
    args = ["fit", str(src), "--prior", str(ckpt), "--iterations", "2", "--out", str(out)]
    assert main([*args, "--starts", "3"]) == 0
    assert json.loads(str(np.load(out)["info"]))["starts"] == 3
    text = capsys.readouterr().out
    assert "3 starts" in text and text.count("\n") == 1
    assert main([*args, "--starts", "0", "--sequence"]) == 2
    assert "--starts must be at least 1" in capsys.readouterr().err
    # large images: the fit runs at the defaults' scale, recorded; 0 is a usage error
    assert main([*args, "--pixel-scale", "2"]) == 0
    assert json.loads(str(np.load(out)["info"]))["pixel_scale"] == 2.0
    assert main([*args, "--pixel-scale", "2", "--sequence"]) == 0
    assert json.loads(str(np.load(out)["info"]))["pixel_scale"] == 2.0
    capsys.readouterr()
    assert main([*args, "--pixel-scale", "0"]) == 2
    assert "--pixel-scale must be a positive number or auto" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: not a number
        main([*args, "--pixel-scale", "big"])
    assert exit_info.value.code == 2 and "--pixel-scale" in capsys.readouterr().err
    assert main(args) == 0  # auto by default: these people are ~500 px tall at most
    assert json.loads(str(np.load(out)["info"]))["pixel_scale"] == 1.0


def test_fit_openpose_files_without_a_prior(tmp_path) -> None:
    files = []
    for i in range(2):
        flat = np.concatenate(
            [
                np.full((25, 2), 400.0 + 10 * i)
                + 40 * np.random.default_rng(i).standard_normal((25, 2)),
                np.ones((25, 1)),
            ],
            1,
        ).reshape(-1)
        path = tmp_path / f"frame{i}_keypoints.json"
        path.write_text(json.dumps({"people": [{"pose_keypoints_2d": flat.tolist()}]}))
        files.append(str(path))
    out = tmp_path / "op.npz"
    code = main(
        [
            "fit",
            *files,
            "--camera",
            "1000,500,500",
            "--prior",
            "none",
            "--iterations",
            "2",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    data = np.load(out)
    assert data["projected"].shape == (2, 25, 2)
    assert json.loads(str(data["info"]))["keypoint_format"] == "openpose25"


def test_cli_errors_are_reported(tmp_path, keypoints, capsys) -> None:
    src = tmp_path / "kp.json"
    src.write_text(json.dumps({"keypoints": keypoints.tolist()}))
    # failures exit 1, a malformed option value 2 (a usage error), each with one stderr line
    assert main(["fit", str(src), "--prior", "none", "--out", str(tmp_path / "x.npz")]) == 1
    assert "no camera" in capsys.readouterr().err
    assert main(["fit", str(src), "--camera", "1000,0,500,500", "--prior", "none"]) == 1
    assert "focal" in capsys.readouterr().err
    assert main(["fit", str(src), "--camera", "1,2", "--prior", "none"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"people": [{"pose_keypoints_2d": [0.0] * 54}]}))
    assert main(["fit", str(bad), "--camera", "1000,500,500", "--prior", "none"]) == 1
    assert "BODY_25" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_keypoint_files_as_detectors_and_tools_write_them(tmp_path, keypoints, capsys) -> None:
    from advprior.commands.fit import read_keypoints

    cam = ["--camera", "1000,500,500", "--prior", "none", "--iterations", "2"]
    # spread out: keypoints all on one pixel are refused (normalised coordinates, or no person)
    xy = 450.0 + np.arange(25.0)[:, None] * np.array([2.0, 12.0])
    op = np.concatenate([xy, np.ones((25, 1))], 1).reshape(-1)
    frames = []
    for i, people in enumerate([[op], [], [op]]):  # OpenPose writes "people": [] for nobody
        path = tmp_path / f"clip_{i:012d}_keypoints.json"
        path.write_text(
            json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": list(p)} for p in people]})
        )
        frames.append(str(path))
    # a clip: the empty frame is a gap the sequence fills; per frame it is an error
    out = tmp_path / "seq.npz"
    assert main(["fit", *frames, *cam, "--sequence", "--out", str(out)]) == 0
    assert json.loads(str(np.load(out)["info"]))["missing_frames"] == 1
    capsys.readouterr()
    assert main(["fit", *frames, *cam, "--out", str(tmp_path / "x.npz")]) == 1
    assert "has 0 people; --person 0 does not exist" in capsys.readouterr().err
    # OpenPose 1.0's 'pose_keypoints', a byte-order mark, a first keypoint [null, null]
    old = tmp_path / "v10.json"
    old.write_bytes(
        b"\xef\xbb\xbf" + json.dumps({"people": [{"pose_keypoints": list(op)}]}).encode()
    )
    assert read_keypoints(old)["keypoints"].shape == (1, 25, 2)
    kp = keypoints[:1].tolist()
    kp[0][0] = [None, None]
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"keypoints": kp[0]}))  # one frame (J, 2)
    got = read_keypoints(one)["keypoints"]
    assert got.shape == (1, 24, 2) and np.isnan(got[0, 0]).all()
    np.testing.assert_array_equal(got[0, 1:], keypoints[0, 1:])
    # missing points are not counted in the printed reprojection error (they were, at (0, 0))
    assert main(["fit", str(one), *cam, "--out", str(tmp_path / "o.npz")]) == 0
    res = np.load(tmp_path / "o.npz")
    want = np.linalg.norm(res["projected"][0, 1:] - keypoints[0, 1:], axis=-1).mean()
    assert f"mean reprojection {want:.1f} px" in capsys.readouterr().out
    # malformed layouts are one-line errors naming the file
    bad = {
        "flat.json": ({"keypoints": [1.0] * 51}, "flat list of 51 numbers"),
        "fmt.json": ({"format": ["coco17"], "keypoints": kp}, "'format' must be"),
        "null.json": ({"people": [None]}, "person 0 is not a JSON object"),
        "nokp.json": ({"people": [{"pose_keypoints_2d": None}]}, "no 'pose_keypoints_2d' list"),
    }
    for name, (content, message) in bad.items():
        (tmp_path / name).write_text(json.dumps(content))
        assert main(["fit", str(tmp_path / name), *cam]) == 1
        err = capsys.readouterr().err
        assert name in err and message in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "latin1.json").write_bytes(b'{"keypoints": "\xf3"}')
    assert main(["fit", str(tmp_path / "latin1.json"), *cam]) == 1
    assert "latin1.json is not valid JSON: 'utf-8' codec" in capsys.readouterr().err


def test_a_file_with_nothing_to_fit_is_named(tmp_path, keypoints, capsys) -> None:
    # a folder of OpenPose files, one of which holds a person OpenPose found no keypoints of
    # (all (0, 0, 0)): the error said "frames [1]", an index into the batch, not the file
    cam = ["--camera", "1000,500,500", "--prior", "none", "--iterations", "2"]
    xy = 450.0 + np.arange(25.0)[:, None] * np.array([2.0, 12.0])
    op = np.concatenate([xy, np.ones((25, 1))], 1).reshape(-1)
    ghost = [0.0] * 75
    files = []
    for i, people in enumerate([[op], [ghost, op], [op]]):
        path = tmp_path / f"clip_{i:012d}_keypoints.json"
        path.write_text(json.dumps({"people": [{"pose_keypoints_2d": list(p)} for p in people]}))
        files.append(str(path))
    assert main(["fit", *files, *cam, "--out", str(tmp_path / "x.npz")]) == 1
    err = capsys.readouterr().err
    assert "clip_000000000001_keypoints.json: fewer than 2 keypoints" in err, err
    assert "--person picks another" in err and len(err.strip().splitlines()) == 1
    # a file of several frames names them too; a clip fills such frames in
    kp = keypoints.tolist()
    kp[1] = [None] * 24
    many = tmp_path / "many.json"
    many.write_text(json.dumps({"keypoints": kp}))
    assert main(["fit", str(many), *cam, "--out", str(tmp_path / "x.npz")]) == 1
    assert "many.json: frames [1] fewer than 2 keypoints" in capsys.readouterr().err
    assert main(["fit", str(many), *cam, "--sequence", "--out", str(tmp_path / "s.npz")]) == 0
    capsys.readouterr()
    # one file of the folder in normalised coordinates (OpenPose's --keypoint_scale 3)
    scaled = np.concatenate([xy / 1000.0, np.ones((25, 1))], 1).reshape(-1)
    Path(files[1]).write_text(json.dumps({"people": [{"pose_keypoints_2d": list(scaled)}]}))
    for extra in ([], ["--sequence"]):
        assert main(["fit", *files, *cam, *extra, "--out", str(tmp_path / "x.npz")]) == 1
        err = capsys.readouterr().err
        assert "clip_000000000001_keypoints.json: the visible keypoints span less than 2 px" in err


def test_camera_and_keypoint_files_share_one_json_reader(tmp_path, keypoints, capsys) -> None:
    """A camera file written by a .NET / PowerShell tool (UTF-8 with a byte-order mark) is read
    as the keypoint files next to it are (it was refused as 'not a readable camera JSON file')."""
    bom = b"\xef\xbb\xbf"
    src = tmp_path / "kp.json"
    src.write_bytes(bom + json.dumps({"keypoints": keypoints.tolist()}).encode())
    cam = tmp_path / "camera.json"
    cam.write_bytes(bom + json.dumps(CAMERA.to_dict()).encode())
    out = tmp_path / "fit.npz"
    argv = ["fit", str(src), "--camera", str(cam), "--prior", "none", "--iterations", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    info = json.loads(str(np.load(out)["info"]))
    assert info["camera"]["focal"] == list(CAMERA.to_dict()["focal"])
    capsys.readouterr()
    cam.write_bytes(b"{" * 100_000)  # hostile nesting: one line, not a traceback
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "camera file" in err and "not valid JSON" in err


def test_integers_beyond_float64_in_keypoint_and_camera_files_name_the_file(
    tmp_path, keypoints, capsys
) -> None:
    """JSON integers have no bound: 10**400 as a keypoint, a confidence or a camera's focal
    length was an unexpected OverflowError ('report it'), naming no file."""
    kp = keypoints[0].tolist()
    cam = tmp_path / "camera.json"
    cam.write_text(json.dumps(CAMERA.to_dict()))
    files = {
        "kp.json": {"keypoints": [[10**400, 1], *kp[1:]]},
        "conf.json": {"keypoints": kp, "confidence": [10**400] + [1] * (len(kp) - 1)},
        "incam.json": {"keypoints": kp, "camera": {"focal": [10**400, 1], "center": [1, 1]}},
    }
    for name, content in files.items():
        path = tmp_path / name
        path.write_text(json.dumps(content))
        camera = [] if name == "incam.json" else ["--camera", str(cam)]
        assert main(["fit", str(path), *camera, "--prior", "none"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and name in err and "float64" in err, err
        assert "unexpected" not in err, err
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({"keypoints": kp}))
    cam.write_text(json.dumps({"focal": [10**400, 1], "center": [1, 1]}))
    assert main(["fit", str(path), "--camera", str(cam), "--prior", "none"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "camera.json" in err and "float64" in err, err
    huge = [[10**400, 0, 0], [0, 1, 0], [0, 0, 1]]  # the API says the same
    with pytest.raises(ValueError, match="beyond float64's range"):
        PinholeCamera(1000.0, (500.0, 500.0), rotation=huge)
    with pytest.raises(ValueError, match="beyond float64's range"):
        PinholeCamera.from_matrix(huge)


def test_a_key_given_twice_in_a_keypoint_or_camera_file_is_refused(
    tmp_path, keypoints, capsys
) -> None:
    """Two "keypoints" (or two "focal") in one object: the last was fitted, silently."""
    kp = json.dumps(keypoints[0].tolist())
    src = tmp_path / "kp.json"
    src.write_text('{"keypoints": ' + kp + ', "keypoints": [[1, 2]]}')
    assert main(["fit", str(src), "--camera", "1000,500,500", "--prior", "none"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "kp.json: the key 'keypoints' appears twice" in err
    src.write_text('{"keypoints": ' + kp + "}")
    cam = tmp_path / "camera.json"
    cam.write_text('{"focal": [1000, 1000], "center": [500, 500], "focal": [10, 10]}')
    assert main(["fit", str(src), "--camera", str(cam), "--prior", "none"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "camera.json: the key 'focal' appears twice" in err


def test_fit_with_a_body_model_file_and_coco_keypoints(tmp_path) -> None:
    """A model given by path goes through the user-file loader (the stand-in's SMPL-format
    file stands in for a licensed SMPL file); COCO keypoints use its surface points."""
    standin = load_body_model()
    model = load_body_model(standin.source)
    assert not model.is_standin
    from advprior.fitting.keypoints import get_format, model_joint_indices

    spec = get_format("coco17")
    with torch.no_grad():
        out = model(
            global_orient=torch.tensor([[math.pi, 0.0, 0.0]]),
            body_pose=torch.zeros(1, 63),
            transl=torch.tensor([[0.0, 0.2, 4.0]]),
        )
    idx = model_joint_indices(
        spec, model.model_type, out.model_joints.shape[1], model.extra_joint_names
    )
    kp = CAMERA.project(out.model_joints[:, idx])
    src = tmp_path / "coco.json"
    src.write_text(json.dumps({"format": "coco17", "keypoints": kp.tolist()}))
    out_path = tmp_path / "coco.npz"
    assert (
        main(
            [
                "fit",
                str(src),
                "--camera",
                "1000,500,500",
                "--prior",
                "none",
                "--body-model",
                str(standin.source),
                "--iterations",
                "10",
                "--out",
                str(out_path),
            ]
        )
        == 0
    )
    data = np.load(out_path)
    assert data["projected"].shape == (1, 17, 2)
    assert float(np.abs(data["projected"] - kp.numpy()).mean()) < 5.0
