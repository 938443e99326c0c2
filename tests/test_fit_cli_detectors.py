"""``advprior fit`` on the files 2D detectors write: COCO keypoint results (COCO eval,
Detectron2, AlphaPose with COCO-17, Halpe-26 or COCO-WholeBody keypoints), MMPose 1.x
saved predictions, MMPose 0.x / ViTPose ``pose_results`` and COCO-format datasets, all read
as ``coco17``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from advprior.body import load_body_model
from advprior.cli import main
from advprior.commands.fit import read_keypoints
from advprior.fitting import PinholeCamera
from advprior.fitting.keypoints import COCO17, get_format, model_joint_indices

CAMERA = PinholeCamera(focal=1000.0, center=(500.0, 500.0))
NAN2 = np.full((17, 2), np.nan)


def _points(seed: int, n: int = 17) -> np.ndarray:
    """(n, 2) pixel positions exactly representable in JSON (multiples of 1/4)."""
    return np.round(4 * np.random.default_rng(seed).uniform(0, 1000, (n, 2))) / 4


def _coco_entry(image_id, xy: np.ndarray, s: np.ndarray, score: float | None = 0.9) -> dict:
    entry = {
        "image_id": image_id,
        "category_id": 1,
        "keypoints": np.concatenate([xy, s[:, None]], 1).reshape(-1).tolist(),
    }
    if score is not None:
        entry["score"] = score
    return entry


def _instance(xy: np.ndarray, s: np.ndarray, bbox_score: float | None = None) -> dict:
    # what mmpose.structures.split_instances writes (bbox is a one-element tuple there)
    inst = {"keypoints": xy.tolist(), "keypoint_scores": s.tolist(), "bbox": [[0, 0, 9, 9]]}
    if bbox_score is not None:
        inst["bbox_score"] = bbox_score
    return inst


def _write(tmp_path, name: str, content) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return path


def test_coco_results_frames_people_and_confidences(tmp_path) -> None:
    a, b, c = _points(0), _points(1), _points(2)
    flags = np.array([0, 1, 2] * 5 + [2, 0], dtype=float)  # ground-truth style visibility
    scores = np.linspace(-0.5, 1.5, 17)  # detector scores below 0 and above 1
    entries = [
        _coco_entry(7, a, scores, score=0.5),
        _coco_entry(3, c, flags, score=0.8),
        _coco_entry(7, b, flags, score=0.9),  # image 7 again, after image 3: still image 7
    ]
    path = _write(tmp_path, "coco_instances_results.json", entries)
    got = read_keypoints(path)
    assert got["format"] == "coco17" and got["camera"] is None
    # frames in order of first appearance (7, then 3), not sorted by id
    assert got["keypoints"].shape == (2, 17, 2) and got["confidence"].shape == (2, 17)
    # --person 0 in image 7 is the best scored (0.9, written last)
    np.testing.assert_array_equal(got["keypoints"], np.stack([b, c]))
    np.testing.assert_array_equal(got["confidence"][0], np.minimum(flags, 1.0))
    np.testing.assert_array_equal(got["confidence"][1], np.minimum(flags, 1.0))
    second = read_keypoints(path, person=1, missing_ok=True)
    np.testing.assert_array_equal(second["keypoints"][0], a)
    np.testing.assert_array_equal(second["confidence"][0], np.clip(scores, 0.0, 1.0))
    # image 3 has no second person: a gap in a sequence, else an error naming it
    np.testing.assert_array_equal(second["keypoints"][1], NAN2)
    np.testing.assert_array_equal(second["confidence"][1], np.zeros(17))
    with pytest.raises(ValueError, match=r"image 3 has 1 people; --person 1 does not exist"):
        read_keypoints(path, person=1)
    # unscored entries rank after scored ones, ties keep file order
    path = _write(
        tmp_path,
        "ties.json",
        [
            _coco_entry(1, a, flags, score=None),
            _coco_entry(1, b, flags, score=0.4),
            _coco_entry(1, c, flags, score=0.4),
        ],
    )
    order = [read_keypoints(path, person=p)["keypoints"][0] for p in range(3)]
    np.testing.assert_array_equal(np.stack(order), np.stack([b, c, a]))


def test_alphapose_halpe26_and_wholebody(tmp_path) -> None:
    names = ["0.jpg", "1.jpg", "2.jpg", "10.jpg"]  # AlphaPose's video frames, in frame order
    body = [_points(10 + i) for i in range(4)]
    extra = _points(99, 26)  # Halpe's head, neck, hip, feet and what follows: not read
    s = np.full(26, 0.75)
    entries = [
        _coco_entry(n, np.concatenate([xy, extra[17:]]), s, score=2.5)
        for n, xy in zip(names, body, strict=True)
    ]
    got = read_keypoints(_write(tmp_path, "alphapose-results.json", entries))
    # the order written, not the string order ("10.jpg" < "2.jpg")
    np.testing.assert_array_equal(got["keypoints"], np.stack(body))
    np.testing.assert_array_equal(got["confidence"], np.full((4, 17), 0.75))
    # COCO-WholeBody: 133 keypoints, the first 17 the body (feet, face, hands follow)
    whole = np.concatenate([body[0], _points(5, 116)])
    ws = np.concatenate([np.full(17, 0.25), np.ones(116)])
    got = read_keypoints(_write(tmp_path, "wholebody.json", [_coco_entry("a.png", whole, ws)]))
    np.testing.assert_array_equal(got["keypoints"], body[0][None])
    np.testing.assert_array_equal(got["confidence"], np.full((1, 17), 0.25))
    assert len(_coco_entry(0, whole, ws)["keypoints"]) == 399


def test_mmpose_image_and_video_predictions(tmp_path) -> None:
    a, b, c = _points(20), _points(21), _points(22)
    sa, sb = np.full(17, 0.5), np.linspace(0.0, 1.25, 17)
    # the inferencer's per-image file: a list of instances, ranked by bbox_score
    path = _write(tmp_path, "img.json", [_instance(a, sa, 0.6), _instance(b, sb, 0.95)])
    got = read_keypoints(path)
    np.testing.assert_array_equal(got["keypoints"], b[None])
    np.testing.assert_array_equal(got["confidence"], np.clip(sb, 0, 1)[None])
    np.testing.assert_array_equal(read_keypoints(path, person=1)["keypoints"], a[None])
    # without bbox_score: by the mean keypoint score (b's 0.625 > a's 0.5)
    path = _write(tmp_path, "nobox.json", [_instance(a, sa), _instance(b, sb)])
    np.testing.assert_array_equal(read_keypoints(path)["keypoints"], b[None])
    # nobody detected in the image ([]): a gap in a sequence, else an error
    empty = _write(tmp_path, "empty.json", [])
    assert np.isnan(read_keypoints(empty, missing_ok=True)["keypoints"]).all()
    with pytest.raises(ValueError, match=r"the image has 0 people; --person 0 does not"):
        read_keypoints(empty)
    # the demo's video file: meta_info names the keypoints, which may be in any order
    order = np.random.default_rng(0).permutation(26)  # a 26-keypoint layout, shuffled
    names = [*COCO17.names, *(f"extra{i}" for i in range(9))]
    meta = {
        "dataset_name": "custom",
        "keypoint_id2name": {str(int(k)): names[i] for i, k in enumerate(order)},
    }

    def shuffled(xy: np.ndarray, s: np.ndarray) -> dict:
        full_xy, full_s = np.zeros((26, 2)), np.zeros(26)
        full_xy[order[:17]], full_s[order[:17]] = xy, s
        return _instance(full_xy, full_s, 0.9)

    video = {
        "meta_info": meta,
        "instance_info": [
            {"frame_id": 1, "instances": [shuffled(a, sa)]},
            {"frame_id": 2, "instances": []},
            {"frame_id": 3, "instances": [shuffled(c, sb)]},
        ],
    }
    path = _write(tmp_path, "results_clip.json", video)
    got = read_keypoints(path, missing_ok=True)
    np.testing.assert_array_equal(got["keypoints"], np.stack([a, NAN2, c]))
    np.testing.assert_array_equal(got["confidence"], np.stack([sa, 0 * sa, np.clip(sb, 0, 1)]))
    with pytest.raises(ValueError, match=r"frame 2 has 0 people; --person 0 does not exist"):
        read_keypoints(path)
    # the inferencer's video file: a bare list of frames (17 keypoints, no names needed)
    frames = [{"frame_id": i, "instances": [_instance(xy, sa, 0.5)]} for i, xy in enumerate([a, b])]
    got = read_keypoints(_write(tmp_path, "clip.json", frames))
    np.testing.assert_array_equal(got["keypoints"], np.stack([a, b]))
    # the demos write with json_tricks: a numpy bbox_score becomes an "__ndarray__" object
    low, high = _instance(a, sa), _instance(b, sa)
    low["bbox_score"] = {"__ndarray__": 0.25, "dtype": "float32", "shape": []}
    high["bbox_score"] = {"__ndarray__": 0.75, "dtype": "float32", "shape": []}
    tricks = {"meta_info": {"sigmas": {"__ndarray__": [0.1] * 17}}, "instance_info": [low, high]}
    got = read_keypoints(_write(tmp_path, "tricks.json", tricks))
    np.testing.assert_array_equal(got["keypoints"], b[None])
    # the demo's image file: instance_info is the image's instances
    image = {"meta_info": {}, "instance_info": [_instance(c, sa, 0.3)]}
    np.testing.assert_array_equal(
        read_keypoints(_write(tmp_path, "i.json", image))["keypoints"], c[None]
    )


def test_mmpose_0x_and_vitpose_pose_results(tmp_path) -> None:
    # MMPose 0.x's inference_top_down_pose_model (and ViTPose, built on it) returns per person
    # {"bbox": [x1, y1, x2, y2, score], "keypoints": (K, 3) [x, y, score]}; the bottom-up API
    # {"keypoints": (K, 3), "score", "area"}. Dumped with .tolist(), these were refused as
    # "3D predictions".
    a, b = _points(40), _points(41)
    sa, sb = np.linspace(0.1, 0.9, 17), np.linspace(-0.2, 1.3, 17)

    def legacy(xy: np.ndarray, s: np.ndarray, **extra) -> dict:
        return {"keypoints": np.concatenate([xy, s[:, None]], 1).tolist(), **extra}

    top_down = [
        legacy(a, sa, bbox=[0.0, 0.0, 9.0, 9.0, 0.4], track_id=0),
        legacy(b, sb, bbox=[1.0, 1.0, 8.0, 8.0, 0.8], track_id=1),
    ]
    path = _write(tmp_path, "vitpose.json", top_down)
    got = read_keypoints(path)
    np.testing.assert_array_equal(got["keypoints"], b[None])  # the box's score ranks
    np.testing.assert_array_equal(got["confidence"], np.clip(sb, 0, 1)[None])
    np.testing.assert_array_equal(read_keypoints(path, person=1)["keypoints"], a[None])
    bottom_up = [legacy(b, sb, score=0.2, area=5.0), legacy(a, sa, score=0.7, area=5.0)]
    got = read_keypoints(_write(tmp_path, "bottom_up.json", bottom_up))
    np.testing.assert_array_equal(got["keypoints"], a[None])
    np.testing.assert_array_equal(got["confidence"], sa[None])
    # a box without a score: by the mean keypoint score (b's 0.55 > a's 0.5)
    plain = [legacy(a, sa, bbox=[0, 0, 9, 9]), legacy(b, sb, bbox=[0, 0, 9, 9])]
    np.testing.assert_array_equal(
        read_keypoints(_write(tmp_path, "plain.json", plain))["keypoints"], b[None]
    )


def test_coco_format_dataset_of_ones_own_annotations(tmp_path) -> None:
    # keypoints a user labelled (CVAT / Label Studio "COCO Keypoints" export, or COCO's own
    # person_keypoints_*.json): refused before as "expected a 'keypoints' array"
    a, b, c = _points(50), _points(51), _points(52)
    flags = np.array([2, 1, 0] * 5 + [2, 2], dtype=float)

    def ann(image_id: int, xy: np.ndarray, **extra) -> dict:
        entry = _coco_entry(image_id, xy, flags, score=None)
        return {"id": 0, "num_keypoints": 12, "bbox": [0, 0, 9, 9], "iscrowd": 0, **entry, **extra}

    dataset = {
        "info": {"description": "my clip"},
        "images": [{"id": i, "file_name": f"frame_{i:06d}.png"} for i in (10, 2, 33)],
        "annotations": [
            ann(33, c),
            {"id": 9, "image_id": 10, "category_id": 2, "bbox": [0, 0, 5, 5]},  # a box only
            ann(10, b, iscrowd=1),  # a crowd region
            {**ann(10, b), "keypoints": [0.0] * 51, "num_keypoints": 0},  # nothing labelled
            ann(10, a),
            ann(10, c),  # a second person: ranked after the first, as written
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.names)}],
    }
    path = _write(tmp_path, "person_keypoints_default.json", dataset)
    got = read_keypoints(path, missing_ok=True)
    # frames in the order of 'images'; image 2 has nobody labelled: a gap
    np.testing.assert_array_equal(got["keypoints"], np.stack([a, NAN2, c]))
    conf = (flags > 0).astype(float)
    np.testing.assert_array_equal(got["confidence"], np.stack([conf, 0 * conf, conf]))
    assert got["format"] == "coco17"
    np.testing.assert_array_equal(read_keypoints(path, 1, missing_ok=True)["keypoints"][0], c)
    with pytest.raises(ValueError, match=r"image 2 has 0 people; --person 0 does not exist"):
        read_keypoints(path)
    dataset["annotations"].append(ann(7, a))
    with pytest.raises(ValueError, match=r"annotation 6: image_id 7 is not listed in 'images'"):
        read_keypoints(_write(tmp_path, "stray.json", dataset))


def test_malformed_detector_files_are_one_line_errors(tmp_path, capsys) -> None:
    xy, s = _points(30), np.ones(17)
    good = _coco_entry(1, xy, s)
    inst = _instance(xy, s, 0.5)
    bad = {
        "short.json": ([{**good, "keypoints": good["keypoints"][:-1]}], "has 50 values"),
        "coco18.json": ([{**good, "keypoints": [1.0] * 54}], "has 54 values"),
        "text.json": ([{**good, "keypoints": ["1.0", *good["keypoints"][1:]]}], "numbers only"),
        "null.json": ([{**good, "keypoints": [None, *good["keypoints"][1:]]}], "numbers only"),
        "bool.json": ([{**good, "keypoints": [True, *good["keypoints"][1:]]}], "numbers only"),
        "score.json": ([{**good, "score": "high"}], "'score' must be a finite number"),
        "huge.json": ([{**good, "score": 10**400}], "'score' must be a finite number"),
        "hugekp.json": ([{**good, "keypoints": [10**400] * 51}], "too large for a float"),
        "op.json": ({"people": [{"pose_keypoints_2d": [10**400] * 75}]}, "must hold numbers"),
        "imgid.json": ([{**good, "image_id": 1.5}], "'image_id' must be an integer or a string"),
        "nokp.json": ([{"image_id": 1, "score": 0.5}], "entry 0 has no 'keypoints'"),
        "notdict.json": ([good, 3], "entry 1 is not a JSON object"),
        "other.json": ([{"bbox": [0, 0, 1, 1]}], "neither a COCO keypoint result"),
        "numbers.json": ([1.0, 2.0], "neither a COCO keypoint result"),
        "empty.json": ([], "has 0 people; --person 0 does not exist"),
        "3d.json": ([{**inst, "keypoints": [[1.0, 2.0, 3.0]] * 17}], "3D predictions"),
        "hugemm.json": ([{**inst, "keypoints": [[10**400, 1]] * 17}], "too large for a float"),
        # MMPose 0.x's [x, y, score] rows and meta_info ids were converted unguarded: an
        # unexpected OverflowError naming no file
        "hugelegacy.json": ([{"keypoints": [[1, 2, 10**400]] * 17}], "beyond float64's range"),
        "metainf.json": (
            {
                "meta_info": {"keypoint_name2id": {n: math.inf for n in COCO17.names}},
                "instance_info": [inst],
            },
            "beyond float64's range",
        ),
        "nscores.json": ([{**inst, "keypoint_scores": [1.0] * 16}], "17 keypoints but 16"),
        "count.json": ([_instance(_points(1, 18), np.ones(18))], "18 keypoints; expected 17"),
        "noscores.json": ([{"keypoints": inst["keypoints"]}], "no 'keypoint_scores' list"),
        "frames.json": ({"instance_info": [{"frame_id": 1, "instances": None}]}, "frame 0 must"),
        "info.json": ({"instance_info": {}}, "'instance_info' must be a list"),
        "meta.json": (
            {"meta_info": {"keypoint_name2id": {"head": 0}}, "instance_info": [inst]},
            "meta_info names no nose",
        ),
    }
    cam = ["--camera", "1000,500,500", "--prior", "none", "--iterations", "1"]
    for name, (content, message) in bad.items():
        path = _write(tmp_path, name, content)
        assert main(["fit", str(path), *cam, "--out", str(tmp_path / "x.npz")]) == 1
        err = capsys.readouterr().err
        assert name in err and message in err and len(err.strip().splitlines()) == 1, err
    assert main(["fit", str(tmp_path / "short.json"), *cam, "--person", "-1"]) == 1
    assert not (tmp_path / "x.npz").exists()


def _projected_coco(transl: list[list[float]]) -> np.ndarray:
    """COCO-17 keypoints of the stand-in body, posed, projected by CAMERA: (B, 17, 2)."""
    body = load_body_model()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        out = body(
            global_orient=torch.tensor([[math.pi, 0.0, 0.0]] * len(transl)),
            body_pose=0.2 * torch.randn(len(transl), 63, generator=gen),
            transl=torch.tensor(transl),
        )
        idx = model_joint_indices(
            get_format("coco17"),
            body.model_type,
            out.model_joints.shape[1],
            body.extra_joint_names,
        )
        return CAMERA.project(out.model_joints[:, idx]).numpy().astype(np.float64)


def test_fit_a_coco_results_file_end_to_end(tmp_path, capsys) -> None:
    kp = _projected_coco([[0.0, 0.2, 4.0], [0.1, 0.1, 5.0], [0.3, 0.0, 6.0]])
    ones = np.ones(17)
    decoy = kp[2] + 150.0  # a second, less confident person in the first image
    entries = [
        _coco_entry(42, decoy, 0.5 * ones, score=0.3),
        _coco_entry(42, kp[0], ones, score=0.98),
        _coco_entry(17, kp[1], ones, score=0.95),
    ]
    src = _write(tmp_path, "coco_instances_results.json", entries)
    out = tmp_path / "fit.npz"
    argv = ["fit", str(src), "--camera", "1000,500,500", "--prior", "none", "--out", str(out)]
    assert main([*argv, "--iterations", "10"]) == 0
    assert "fitted 2 frame(s), format coco17" in capsys.readouterr().out
    data = np.load(out)
    assert json.loads(str(data["info"]))["keypoint_format"] == "coco17"
    assert data["projected"].shape == (2, 17, 2)
    for key in ("body_pose", "global_orient", "transl", "betas", "loss", "projected"):
        assert np.isfinite(data[key]).all(), key
    # the best-scored person was fitted, not the decoy: the fit lands near its keypoints
    err = np.linalg.norm(data["projected"] - kp[:2], axis=-1).mean(-1)
    decoy_err = np.linalg.norm(data["projected"][0] - decoy, axis=-1).mean()
    assert (err < 20.0).all() and decoy_err > 100.0, (err, decoy_err)


def test_fit_an_mmpose_video_with_a_gap_as_a_sequence(tmp_path, capsys) -> None:
    kp = _projected_coco([[0.0, 0.2, 4.0], [0.0, 0.2, 4.0], [0.0, 0.2, 4.0]])
    scores = np.full(17, 0.9)
    frames = [
        {"frame_id": 0, "instances": [_instance(kp[0], scores, 0.9)]},
        {"frame_id": 1, "instances": []},
        {"frame_id": 2, "instances": [_instance(kp[2], scores, 0.9)]},
    ]
    src = _write(tmp_path, "clip.json", frames)
    out = tmp_path / "seq.npz"
    argv = ["fit", str(src), "--camera", "1000,500,500", "--prior", "none", "--out", str(out)]
    assert main([*argv, "--sequence", "--iterations", "2"]) == 0
    data = np.load(out)
    assert data["body_pose"].shape == (3, 63) and np.isfinite(data["body_pose"]).all()
    assert json.loads(str(data["info"]))["missing_frames"] == 1
    capsys.readouterr()
    assert main([*argv, "--iterations", "2"]) == 1  # per frame, the empty frame is an error
    assert "frame 1 has 0 people" in capsys.readouterr().err


def test_frames_a_results_file_leaves_out_are_missing_frames_of_a_clip(tmp_path) -> None:
    # AlphaPose on a video names frames "0.jpg", "1.jpg", ...; nobody detected in frames 2-3
    # means no entry for them. In a clip they are frames all the same (they were dropped: the
    # clip had 4 frames for a 6-frame video, joined across the gap, rows no longer frames).
    names = ["0.jpg", "1.jpg", "4.jpg", "5.jpg"]
    body = [_points(30 + i) for i in range(4)]
    ones = np.ones(17)
    path = _write(
        tmp_path,
        "alphapose-results.json",
        [_coco_entry(n, xy, ones, score=2.5) for n, xy in zip(names, body, strict=True)],
    )
    got = read_keypoints(path, missing_ok=True)
    assert got["frame_ids"] == ["0.jpg", "1.jpg", "2.jpg", "3.jpg", "4.jpg", "5.jpg"]
    assert got["absent"] == ["2.jpg", "3.jpg"]
    np.testing.assert_array_equal(got["keypoints"][[0, 1, 4, 5]], np.stack(body))
    assert np.isnan(got["keypoints"][2:4]).all() and (got["confidence"][2:4] == 0).all()
    # per frame (no clip) the file's images are the frames, as before
    assert read_keypoints(path)["frame_ids"] == names
    # Detectron2's integer ids, zero-padded names: the same; ids that are not frame numbers
    # in increasing order (COCO's, a shuffled file) keep the file's images
    cases = {
        (3, 5): [3, 4, 5],
        ("frame_0009.png", "frame_0011.png"): [
            "frame_0009.png",
            "frame_0010.png",
            "frame_0011.png",
        ],
        (5, 3): [5, 3],
        ("a1.jpg", "b3.jpg"): ["a1.jpg", "b3.jpg"],
        ("9.jpg", "11.png"): ["9.jpg", "11.png"],
        (139, 285, 632): [139, 285, 632],  # COCO's image ids: not frames of a video
    }
    for ids, want in cases.items():
        entries = [_coco_entry(i, body[0], ones) for i in ids]
        got = read_keypoints(_write(tmp_path, "ids.json", entries), missing_ok=True)
        assert got["frame_ids"] == want, ids


def test_fit_a_clip_with_frames_left_out_keeps_the_video_frames(tmp_path, capsys) -> None:
    kp = _projected_coco([[0.0, 0.2, 4.0]] * 4)
    ones = np.ones(17)
    entries = [_coco_entry(f"{t}.jpg", kp[i], ones) for i, t in enumerate((0, 1, 3, 4))]
    src = _write(tmp_path, "alphapose-results.json", entries)
    out = tmp_path / "seq.npz"
    argv = ["fit", str(src), "--camera", "1000,500,500", "--prior", "none", "--out", str(out)]
    assert main([*argv, "--sequence", "--iterations", "2", "--window", "4"]) == 0
    assert "1 frame(s) without detections ('2.jpg')" in capsys.readouterr().err
    data = np.load(out)
    info = json.loads(str(data["info"]))
    assert data["body_pose"].shape == (5, 63) and info["missing_frames"] == 1
    # each row names the file and image it came from
    assert info["frames"] == [[str(src), f"{t}.jpg"] for t in range(5)]


def _tracked(image_id, xy: np.ndarray, score: float, idx) -> dict:
    return {**_coco_entry(image_id, xy, np.ones(17), score=score), "idx": idx}


def test_track_follows_one_person_of_a_tracker(tmp_path, capsys) -> None:
    # AlphaPose --pose_track: two people, 'idx' their identity; the better scored one changes
    a, b = _points(40), _points(41)
    entries = []
    for t in range(3):
        entries += [
            _tracked(f"{t}.jpg", a, 0.9 if t < 2 else 0.5, 1),
            _tracked(f"{t}.jpg", b, 0.7, 2),
        ]
    path = _write(tmp_path, "alphapose-results.json", entries)
    got = read_keypoints(path, track=1)
    np.testing.assert_array_equal(got["keypoints"], np.stack([a, a, a]))
    assert got["tracks"] == [1, 1, 1]
    ranked = read_keypoints(path)
    np.testing.assert_array_equal(ranked["keypoints"], np.stack([a, a, b]))
    assert ranked["tracks"] == [1, 1, 2]
    with pytest.raises(ValueError, match=r"image '0.jpg' has no person with track id 3 .*\[1, 2\]"):
        read_keypoints(path, track=3)
    assert np.isnan(read_keypoints(path, track=3, missing_ok=True)["keypoints"]).all()
    # AlphaPose without tracking writes box indices (a list of floats): no identity
    plain = _write(tmp_path, "plain.json", [_tracked("0.jpg", a, 0.9, [0.0, 3.0])])
    assert read_keypoints(plain)["tracks"] == [None]
    # --track on such a file: say so (each frame would have been missing: "nothing to fit")
    with pytest.raises(ValueError, match="no tracker ids"):
        read_keypoints(plain, track=0, missing_ok=True)
    untracked = {"people": [{"person_id": [-1], "pose_keypoints_2d": [1.0] * 75}]}
    with pytest.raises(ValueError, match="no person here has a person_id"):
        read_keypoints(_write(tmp_path, "u_keypoints.json", untracked), track=0, missing_ok=True)
    # MMPose instances and OpenPose people carry track_id / person_id
    frames = [
        {
            "frame_id": 0,
            "instances": [
                {**_instance(a, np.ones(17), 0.9), "track_id": 4},
                {**_instance(b, np.ones(17), 0.5), "track_id": 7},
            ],
        }
    ]
    got = read_keypoints(_write(tmp_path, "mmpose.json", frames), track=7)
    np.testing.assert_array_equal(got["keypoints"][0], b)
    flat = [list(np.concatenate([_points(i, 25), np.ones((25, 1))], 1).reshape(-1)) for i in (1, 2)]
    people = {
        "people": [
            {"person_id": [5], "pose_keypoints_2d": flat[0]},
            {"person_id": [6], "pose_keypoints_2d": flat[1]},
        ]
    }
    got = read_keypoints(_write(tmp_path, "op_keypoints.json", people), track=6)
    np.testing.assert_array_equal(got["keypoints"][0], _points(2, 25))
    # a sequence fit by rank that switches people says so; --track and --person are exclusive
    cam = ["--camera", "1000,500,500", "--prior", "none", "--iterations", "1"]
    out = ["--out", str(tmp_path / "x.npz")]
    assert main(["fit", str(path), "--sequence", *cam, *out]) == 0
    assert "tracker's person 1, 2 in turn (1 switch(es))" in capsys.readouterr().err
    assert main(["fit", str(path), "--sequence", "--track", "2", *cam, *out]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["fit", str(path), "--track", "1", "--person", "1", *cam, *out]) == 2
    own = _write(tmp_path, "own.json", {"keypoints": a.tolist(), "format": "coco17"})
    assert main(["fit", str(own), "--track", "1", *cam, *out]) == 1
    assert "holds one person's keypoints and no ids" in capsys.readouterr().err


def test_a_clip_whose_person_jumps_to_another_says_so(tmp_path, capsys) -> None:
    # no tracker ids: the best scored of two people 1.2 m apart changes after frame 1
    a = _projected_coco([[0.0, 0.2, 4.0], [0.02, 0.2, 4.0], [0.04, 0.2, 4.0]])
    b = _projected_coco([[1.2, 0.2, 4.0], [1.22, 0.2, 4.0], [1.24, 0.2, 4.0]])
    ones = np.ones(17)
    entries = []
    for t in range(3):
        entries += [
            _coco_entry(f"{t}.jpg", a[t], ones, score=0.9 if t < 2 else 0.5),
            _coco_entry(f"{t}.jpg", b[t], ones, score=0.7),
        ]
    src = _write(tmp_path, "results.json", entries)
    cam = ["--camera", "1000,500,500", "--prior", "none", "--iterations", "1"]
    out = ["--out", str(tmp_path / "x.npz")]
    assert main(["fit", str(src), "--sequence", *cam, *out]) == 0
    err = capsys.readouterr().err
    assert f"from {src} '1.jpg' to {src} '2.jpg'" in err, err
    # the same person throughout: nothing to say
    one = _write(tmp_path, "one.json", [_coco_entry(f"{t}.jpg", a[t], ones) for t in range(3)])
    assert main(["fit", str(one), "--sequence", *cam, *out]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_clips_files_numbered_without_padding_keep_frame_order(tmp_path, capsys) -> None:
    # MMPose's per-image predictions of frames 1.jpg, 2.jpg, 10.jpg: a shell glob (and our
    # wildcard) gives 1.json 10.json 2.json, and the clip took frame 10 second
    kp = _projected_coco([[0.0, 0.2, 4.0], [0.01, 0.2, 4.0], [0.02, 0.2, 4.0]])
    for n, xy in zip((1, 2, 10), kp, strict=True):
        _write(tmp_path, f"{n}.json", [_instance(xy, np.ones(17), 0.9)])
    out = tmp_path / "x.npz"
    argv = ["fit", str(tmp_path / "*.json"), "--camera", "1000,500,500", "--prior", "none"]
    assert main([*argv, "--sequence", "--iterations", "1", "--out", str(out)]) == 0
    assert (
        "taken in the order of their frame numbers (1.json, 2.json, ...)" in capsys.readouterr().err
    )
    info = json.loads(str(np.load(out)["info"]))
    assert [Path(p).name for p in info["inputs"]] == ["1.json", "2.json", "10.json"]
    # per frame (no clip) the order given is kept; padded names are left as they are
    assert main([*argv, "--iterations", "1", "--out", str(out)]) == 0
    info = json.loads(str(np.load(out)["info"]))
    assert [Path(p).name for p in info["inputs"]] == ["1.json", "10.json", "2.json"]


def test_frames_without_the_person_are_counted_after_a_sequence_fit(tmp_path, capsys) -> None:
    """--person 1 of an MMPose video in which a second person shows up in one frame of four:
    the clip was fitted from that one frame and the command said "fitted 4 frame(s)" and
    nothing else. Now a note counts the rows the clip filled in (after the fit, so that an
    error stays one line)."""
    a = _projected_coco([[0.0, 0.2, 4.0], [0.02, 0.2, 4.0], [0.04, 0.2, 4.0], [0.06, 0.2, 4.0]])
    b = _projected_coco([[1.2, 0.2, 4.0]])[0]
    ones = np.ones(17)
    video = [
        {"frame_id": t, "instances": [_instance(a[t], ones, 0.9)]
         + ([_instance(b, ones, 0.5)] if t == 2 else [])}
        for t in range(4)
    ]  # fmt: skip
    src = _write(tmp_path, "video.json", video)
    cam = ["--camera", "1000,500,500", "--prior", "none", "--iterations", "1"]
    out = ["--out", str(tmp_path / "x.npz")]
    assert main(["fit", str(src), "--sequence", "--person", "1", *cam, *out]) == 0
    err = capsys.readouterr().err
    assert f"3 of 4 frame(s) have no keypoints of --person 1 ({src} 0, {src} 1, {src} 3)" in err
    # the person in every frame: nothing to say
    assert main(["fit", str(src), "--sequence", *cam, *out]) == 0
    assert "note" not in capsys.readouterr().err
