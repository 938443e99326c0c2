"""Keypoint files that 2D detectors write, read as ``coco17`` keypoints for ``advprior fit``.

Two families, told apart by the JSON's structure (no option needed):

- COCO keypoint *results* (what COCO's evaluation reads, Detectron2's
  ``coco_instances_results.json``, AlphaPose's ``alphapose-results.json``): a list of
  ``{"image_id", "category_id", "keypoints": [x, y, s] * K, "score", ...}``, one entry per
  person. ``image_id`` is an integer (COCO, Detectron2) or a file name (AlphaPose).
  K = 17 (COCO), 26 (Halpe-26), 133 (COCO-WholeBody) or 136 (Halpe-136); in all four the first
  17 keypoints are COCO's body keypoints in COCO's order, and only those are read.
- COCO-format datasets (``{"images", "annotations", "categories"}``: COCO's own annotation
  files, and a user's keypoints labelled in CVAT or Label Studio and exported as COCO): the
  annotations are read as COCO keypoint results (visibility flags as scores), one frame per
  entry of ``images`` in that order; crowd regions, annotations without keypoints and people
  with no keypoint labelled are skipped, and the others keep the file's order.
- MMPose 0.x / ViTPose ``pose_results`` saved as JSON: ``{"bbox": [x1, y1, x2, y2, score],
  "keypoints": [[x, y, score], ...]}`` (top-down) or ``{"keypoints": ..., "score"}``
  (bottom-up), one image's list of them; read as MMPose 1.x instances whose scores are the
  third column (ranked by ``score``, else the box's fifth number).
- MMPose 1.x saved predictions: ``split_instances`` dicts
  ``{"keypoints": [[x, y], ...], "keypoint_scores": [...], "bbox": ..., "bbox_score": ...}``,
  either one image's list of them (the inferencer's ``pred_out_dir`` per-image file), a list of
  frames ``{"frame_id", "instances": [...]}`` (the inferencer's video file), or
  ``{"meta_info": {...}, "instance_info": ...}`` (the demo scripts' ``--save-predictions``;
  ``instance_info`` is one image's instances or a list of frames). The keypoint count tells
  the layout as above; when ``meta_info`` names the keypoints (``keypoint_name2id`` or
  ``keypoint_id2name``) COCO's 17 are found by name instead. The demos write through
  json_tricks, so ``bbox_score`` may be ``{"__ndarray__": value, ...}``: read as the value.

Frames: one per image, in the order in which each ``image_id`` first appears in the file (the
order the tool processed its input: frame order for a video; sorting instead would put
AlphaPose's ``"10.jpg"`` before ``"2.jpg"``, and COCO's integer ids are names, not times);
MMPose frames in the order listed. Images in which nobody was detected are absent from COCO
results files; in a sequence (``missing_ok``) those between two listed images become missing
frames when the image ids are frame numbers increasing in file order (integers, or names that
differ only in their number, as AlphaPose's ``"0.jpg"``, ``"1.jpg"``, ... for a video), so
that the clip keeps the video's frames. MMPose lists such frames with no instances.

Person: ``person`` is a rank, 0 being the highest score of the image (COCO ``score``; MMPose
``bbox_score``, else the mean keypoint score; entries without a score after those with one;
ties in file order), because detectors do not write people in a fixed order. With ``track``,
the person is the one a tracker gave that id (AlphaPose's ``idx`` with ``--pose_track``, a
``track_id``), the same person in every frame. A frame without that person is an error, or
with ``missing_ok`` a frame whose keypoints are all missing (NaN, confidence 0), which a
sequence fit fills in from its neighbours.

Confidence: the per-keypoint score clipped to [0, 1] (NaN -> 0). COCO visibility flags 0/1/2 thus
become 0 (not labelled: missing), 1 and 1 (labelled, occluded or not); heatmap scores in [0, 1]
(MMPose, AlphaPose, Detectron2's probabilities) are kept; scores above 1 (SimCC values of
RTMPose, logits) count as 1 and negative ones as missing. The fit weights each keypoint by its
squared confidence, so rescale a detector's scores yourself if they are far below 1.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from advprior.fitting.keypoints import COCO17

#: Keypoints per person in the layouts read, each starting with COCO's 17 body keypoints.
LAYOUTS: dict[int, str] = {
    17: "COCO",
    26: "Halpe-26",
    133: "COCO-WholeBody",
    136: "Halpe-136",
}

_EXPECTED_COUNTS = ", ".join(f"{k} ({name})" for k, name in LAYOUTS.items())


def _is_coco_dataset(data: Any) -> bool:
    """A COCO-format dataset file (``{"images", "annotations", "categories"}``), as labelling
    tools (CVAT, Label Studio) export a user's own keypoint annotations."""
    return (
        isinstance(data, dict)
        and "annotations" in data
        and "images" in data
        and "keypoints" not in data
        and "people" not in data
    )


def is_detector_file(data: Any) -> bool:
    """Whether parsed JSON ``data`` is one of this module's layouts (a list, MMPose's
    ``{"meta_info", "instance_info"}`` or a COCO dataset), not advprior's or OpenPose's
    object."""
    return (
        isinstance(data, list)
        or (isinstance(data, dict) and "instance_info" in data)
        or _is_coco_dataset(data)
    )


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _numbers(values: Any, where: str, what: str) -> np.ndarray:
    """A flat list of JSON numbers -> float64 array; anything else is one ``ValueError``."""
    if not isinstance(values, list):
        raise ValueError(f"{where}: {what!r} must be a list, got {type(values).__name__}")
    for v in values:
        if not _is_number(v):
            raise ValueError(f"{where}: {what!r} must hold numbers only, found {v!r}")
    try:
        return np.asarray(values, dtype=np.float64)
    except OverflowError:  # an integer beyond float64
        raise ValueError(f"{where}: {what!r} holds a number too large for a float") from None


def _confidence(scores: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(scores, nan=0.0), 0.0, 1.0)


def _score(entry: dict[str, Any], key: str, where: str) -> float | None:
    value = entry.get(key)
    # MMPose's demos write with json_tricks, which stores a numpy scalar (bbox_score) as
    # {"__ndarray__": value, "dtype": ..., "shape": []}
    if isinstance(value, dict) and "__ndarray__" in value:
        value = value["__ndarray__"]
    if isinstance(value, list) and len(value) == 1:  # a (1,) array written as a list
        value = value[0]
    if value is None:
        return None
    try:
        number = float(value) if _is_number(value) else math.nan
    except OverflowError:  # an integer beyond float64
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"{where}: {key!r} must be a finite number, got {value!r:.40}")
    return number


# One detection: keypoints (17, 2), confidence (17,), score for ranking (None: unscored),
# the tracker's identity of the person (None: not tracked).
Detection = tuple[np.ndarray, np.ndarray, float | None, int | None]


def track_id(value: Any) -> int | None:
    """A tracker's person id as written: an integer (AlphaPose's ``idx`` with ``--pose_track``,
    MMPose's ``track_id``, OpenPose's ``person_id`` ``[id]``), else None. AlphaPose without
    tracking writes box indices as a list of floats there, and OpenPose ``[-1]``: no identity."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _coco_detection(entry: dict[str, Any], where: str) -> Detection:
    if "keypoints" not in entry:
        raise ValueError(f"{where} has no 'keypoints' (a COCO keypoint result needs them)")
    flat = _numbers(entry["keypoints"], where, "keypoints")
    if flat.size % 3 or flat.size // 3 not in LAYOUTS:
        raise ValueError(
            f"{where}: 'keypoints' has {flat.size} values; expected [x, y, score] for "
            f"{_EXPECTED_COUNTS} keypoints"
        )
    body = flat.reshape(-1, 3)[: COCO17.num_keypoints]
    # AlphaPose's trackers write the identity as 'idx'; other trackers as 'track_id'
    track = track_id(entry.get("track_id", entry.get("idx")))
    return body[:, :2], _confidence(body[:, 2]), _score(entry, "score", where), track


def _mmpose_detection(entry: Any, where: str, index: list[int] | None) -> Detection:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} is not a JSON object (an MMPose instance)")
    points = entry.get("keypoints")
    if not isinstance(points, list) or not points:
        raise ValueError(f"{where} has no 'keypoints' list of [x, y] points")
    # MMPose 0.x (and ViTPose, built on it) return (K, 3) [x, y, score] keypoints and no
    # 'keypoint_scores'; MMPose 1.x writes the scores apart, so there [x, y, z] is a 3D point
    legacy = "keypoint_scores" not in entry and all(
        isinstance(p, list) and len(p) == 3 for p in points
    )
    width = 3 if legacy else 2
    for k, p in enumerate(points):
        if not isinstance(p, list) or len(p) != width or not all(map(_is_number, p)):
            raise ValueError(
                f"{where}: keypoint {k} must be [x, y] (two numbers), got {p!r}"
                + (" (3D predictions are not 2D keypoints)" if isinstance(p, list) else "")
            )
    if legacy:
        scores = np.asarray([p[2] for p in points], dtype=np.float64)
        points = [p[:2] for p in points]
    elif "keypoint_scores" not in entry:
        raise ValueError(f"{where} has no 'keypoint_scores' list")
    else:
        scores = _numbers(entry["keypoint_scores"], where, "keypoint_scores")
    if scores.size != len(points):
        raise ValueError(f"{where}: {len(points)} keypoints but {scores.size} keypoint_scores")
    if index is None:
        if len(points) not in LAYOUTS:
            raise ValueError(
                f"{where}: {len(points)} keypoints; expected {_EXPECTED_COUNTS} "
                "(or 'meta_info' naming them)"
            )
        index = list(range(COCO17.num_keypoints))
    elif len(points) <= max(index):
        raise ValueError(f"{where}: {len(points)} keypoints, fewer than 'meta_info' names")
    try:
        xy = np.asarray(points, dtype=np.float64)[index]
    except OverflowError:  # an integer beyond float64
        raise ValueError(f"{where}: 'keypoints' holds a number too large for a float") from None
    score = _score(entry, "bbox_score", where)
    if score is None and legacy:
        # MMPose 0.x: a bottom-up person's 'score', or a top-down box [x1, y1, x2, y2, score]
        score = _score(entry, "score", where)
        box = entry.get("bbox")
        if score is None and isinstance(box, list) and len(box) == 5:
            score = _score({"bbox": box[4]}, "bbox", where)
    if score is None:
        score = float(np.nan_to_num(scores).mean())
    return xy, _confidence(scores[index]), score, track_id(entry.get("track_id"))


def _meta_index(meta: Any, path: Path) -> list[int] | None:
    """Where COCO's 17 keypoints sit, from MMPose ``meta_info`` names (None: no names)."""
    if not isinstance(meta, dict):
        return None
    name2id = meta.get("keypoint_name2id")
    if not isinstance(name2id, dict):
        id2name = meta.get("keypoint_id2name")
        if not isinstance(id2name, dict):
            return None
        if not all(isinstance(v, str) for v in id2name.values()):
            raise ValueError(f"{path}: meta_info keypoint_id2name values must be names")
        name2id = {v: k for k, v in id2name.items()}
    try:
        name2id = {str(n): int(i) for n, i in name2id.items()}
    except (TypeError, ValueError):
        raise ValueError(f"{path}: meta_info keypoint ids must be integers") from None
    missing = [n for n in COCO17.names if n not in name2id]
    if missing:
        dataset = meta.get("dataset_name", "this layout")
        raise ValueError(
            f"{path}: meta_info names no {', '.join(missing)} ({dataset}); only layouts "
            "holding COCO's 17 body keypoints are read"
        )
    index = [name2id[n] for n in COCO17.names]
    if min(index) < 0:
        raise ValueError(f"{path}: meta_info keypoint ids must not be negative")
    return index


class Frame(NamedTuple):
    """A frame: its label for messages, its id as the file gives it (an image_id, a frame_id;
    None for a file of one image), its detections, and whether the file left it out (a numbered
    image without detections, between two with)."""

    label: str
    frame_id: Any
    detections: list[Detection]
    absent: bool = False


#: A results file's numbered images are filled in to at most this many times their count.
MAX_FILL = 10

#: An image name holding a frame number: the last run of digits before the extension
#: (AlphaPose's ``"12.jpg"``, ``"frame_000012.png"``).
_NUMBERED_NAME = re.compile(r"(.*?)(\d+)(\.[A-Za-z0-9]+)?")


def _frame_numbers(ids: list[Any]) -> tuple[list[int], Any] | None:
    """The frame numbers of image ids written in frame order, and a function naming frame
    ``n`` as they are named; None unless every id is a frame number (an integer, or names that
    differ only in their number) and they increase in file order."""
    if all(isinstance(i, int) for i in ids):
        numbers = list(ids)

        def name(n: int) -> Any:
            return n
    else:
        matches = [_NUMBERED_NAME.fullmatch(i) if isinstance(i, str) else None for i in ids]
        if not all(matches) or len({(m[1], m[3]) for m in matches}) != 1:
            return None
        prefix, suffix = matches[0][1], matches[0][3] or ""
        widths = {len(m[2]) for m in matches}
        width = widths.pop() if len(widths) == 1 else 0
        numbers = [int(m[2]) for m in matches]

        def name(n: int) -> Any:
            return f"{prefix}{n:0{width}d}{suffix}"

    if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
        return None
    return numbers, name


def _coco_frames(entries: list[Any], path: Path, fill_gaps: bool = False) -> list[Frame]:
    frames: dict[Any, list[Detection]] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is not a JSON object (a COCO keypoint result)")
        image = _image_id(entry, "image_id", where)
        # dicts keep insertion order: frames in order of each image's first appearance
        frames.setdefault(image, []).append(_coco_detection(entry, where))
    numbered = _frame_numbers(list(frames)) if fill_gaps else None
    # ids that skip far more numbers than they list are not a video's frames (COCO's image ids,
    # timestamps in ms): filling them in would make a clip of mostly missing frames
    if numbered is not None and numbered[0][-1] - numbered[0][0] + 1 > MAX_FILL * len(frames):
        numbered = None
    if numbered is not None:
        # a video's frames in which nobody was detected are absent from a results file; in a
        # clip they are frames all the same (left out, the clip would run faster from there on
        # and no longer match the video's frames)
        numbers, name = numbered
        by_number = dict(zip(numbers, frames.values(), strict=True))
        return [
            Frame(f"image {name(n)!r}", name(n), by_number.get(n, []), n not in by_number)
            for n in range(numbers[0], numbers[-1] + 1)
        ]
    return [Frame(f"image {image!r}", image, dets) for image, dets in frames.items()]


def _image_id(entry: dict[str, Any], key: str, where: str) -> int | str:
    if key not in entry:
        raise ValueError(f"{where} has no {key!r}")
    image = entry[key]
    if not isinstance(image, (int, str)) or isinstance(image, bool):
        raise ValueError(f"{where}: {key!r} must be an integer or a string, got {image!r:.40}")
    return image


def _coco_dataset_frames(data: dict[str, Any], path: Path) -> list[Frame]:
    """A COCO dataset's annotations: one frame per entry of ``images``, in that order (an
    image without annotations is a frame without people); crowd regions, annotations without
    keypoints (other labels' boxes) and people with no keypoint labelled are skipped."""
    images, annotations = data["images"], data["annotations"]
    for key, value in (("images", images), ("annotations", annotations)):
        if not isinstance(value, list):
            raise ValueError(f"{path}: {key!r} must be a list, got {type(value).__name__}")
    frames: dict[Any, list[Detection]] = {}
    for i, image in enumerate(images):
        if not isinstance(image, dict):
            raise ValueError(f"{path}: image {i} is not a JSON object")
        frames.setdefault(_image_id(image, "id", f"{path}: image {i}"), [])
    for i, entry in enumerate(annotations):
        where = f"{path}: annotation {i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is not a JSON object")
        if entry.get("iscrowd") or "keypoints" not in entry:
            continue
        image = _image_id(entry, "image_id", where)
        if image not in frames:
            raise ValueError(f"{where}: image_id {image!r} is not listed in 'images'")
        detection = _coco_detection(entry, where)
        # COCO labels many small people with no keypoint at all (num_keypoints 0): unranked,
        # the first of them would be --person 0 of its image with nothing to fit
        if (detection[1] > 0).any():
            frames[image].append(detection)
    return [Frame(f"image {image!r}", image, dets) for image, dets in frames.items()]


def _mmpose_frames(entries: list[Any], path: Path, index: list[int] | None) -> list[Frame]:
    frames = []
    for i, frame in enumerate(entries):
        if not isinstance(frame, dict) or not isinstance(frame.get("instances"), list):
            raise ValueError(
                f"{path}: frame {i} must be an object with an 'instances' list (MMPose)"
            )
        fid = frame.get("frame_id", i)
        fid = fid if _is_number(fid) else i
        label = f"frame {fid}"
        dets = [
            _mmpose_detection(inst, f"{path}: {label}, instance {j}", index)
            for j, inst in enumerate(frame["instances"])
        ]
        frames.append(Frame(label, fid, dets))
    return frames


def _frames(data: Any, path: Path, fill_gaps: bool = False) -> list[Frame]:
    if _is_coco_dataset(data):
        return _coco_dataset_frames(data, path)
    index = None
    entries = data
    if isinstance(data, dict):
        index = _meta_index(data.get("meta_info"), path)
        entries = data["instance_info"]
        if not isinstance(entries, list):
            raise ValueError(
                f"{path}: 'instance_info' must be a list, got {type(entries).__name__}"
            )
    if not entries:  # one image in which nobody was detected
        return [Frame("the image", None, [])]
    first = entries[0]
    if isinstance(first, dict) and "instances" in first:
        return _mmpose_frames(entries, path, index)
    if isinstance(first, dict) and "image_id" in first:
        return _coco_frames(entries, path, fill_gaps)
    if isinstance(first, dict) and "keypoints" in first:
        dets = [
            _mmpose_detection(inst, f"{path}: instance {j}", index)
            for j, inst in enumerate(entries)
        ]
        return [Frame("the image", None, dets)]
    raise ValueError(
        f"{path}: a list whose entry 0 is neither a COCO keypoint result ('image_id', "
        "'keypoints') nor an MMPose instance ('keypoints', 'keypoint_scores') or frame "
        "('frame_id', 'instances')"
    )


def _ranked(dets: list[Detection]) -> list[Detection]:
    """Highest score first; unscored after scored; ties in file order (a stable sort)."""
    return sorted(dets, key=lambda d: (d[2] is None, -(d[2] or 0.0)))


def read_detector_file(
    data: Any,
    path: Path,
    person: int = 0,
    *,
    missing_ok: bool = False,
    track: int | None = None,
) -> dict[str, Any]:
    """Parsed JSON ``data`` of ``path`` (see :func:`is_detector_file`) ->
    ``{"keypoints" (B, 17, 2), "confidence" (B, 17), "format": "coco17", "camera": None,
    "frame_ids", "absent", "tracks"}``, one row per image/frame: person ``person`` by rank of
    score, or with ``track`` the person the tracker gave that id (AlphaPose's ``idx``,
    ``track_id``). ``frame_ids``: each row's image_id / frame_id (None for a one-image file);
    ``absent``: the ids of rows that are frames the file left out; ``tracks``: each row's
    tracker id (None: untracked or missing).

    ``missing_ok`` (a sequence): a frame without that person is a missing frame, and the images
    a COCO results file leaves out between two of its images are missing frames too when its
    image ids are frame numbers in increasing order (an integer, or names differing only in their
    number: AlphaPose's ``"12.jpg"``). ``ValueError`` naming the file (and the entry) on a
    malformed file or, without ``missing_ok``, a frame without that person."""
    if person < 0:
        raise ValueError(f"{path}: --person must be 0 or more, got {person}")
    frames = _frames(data, path, fill_gaps=missing_ok)
    if track is not None and not any(d[3] is not None for f in frames for d in f.detections):
        # else every frame would be a missing one, and the clip "has no frame" to fit
        raise ValueError(
            f"{path}: --track {track}: this file has no tracker ids ('idx', 'track_id'); it "
            "comes from a run without tracking (AlphaPose: --pose_track); use --person"
        )
    n = COCO17.num_keypoints
    kp = np.full((len(frames), n, 2), np.nan)
    conf = np.zeros((len(frames), n))
    tracks: list[int | None] = [None] * len(frames)
    for b, frame in enumerate(frames):
        if track is not None:
            chosen = [d for d in _ranked(frame.detections) if d[3] == track][:1]
        else:
            chosen = _ranked(frame.detections)[person : person + 1]
        if not chosen:
            if missing_ok:
                continue
            if track is not None:
                ids = sorted({d[3] for d in frame.detections if d[3] is not None})
                raise ValueError(
                    f"{path}: {frame.label} has no person with track id {track} (track ids "
                    f"there: {ids or 'none'})"
                )
            raise ValueError(
                f"{path}: {frame.label} has {len(frame.detections)} people; --person {person} "
                "does not exist"
            )
        kp[b], conf[b], _, tracks[b] = chosen[0]
    return {
        "keypoints": kp,
        "confidence": conf,
        "format": COCO17.name,
        "camera": None,
        "frame_ids": [f.frame_id for f in frames],
        "absent": [f.frame_id for f in frames if f.absent],
        "tracks": tracks,
    }
