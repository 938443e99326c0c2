"""``advprior fit``: fit a body to 2D keypoints (SMPLify-style, through a pose prior).

KEYPOINTS.json, any of these layouts (several files are fitted as one batch, in order):

advprior layout (one or many frames)::

    {"format": "smpl24",                    # smpl24 | openpose25 | openpose25b | coco17
     "keypoints": [[[x, y], ...], ...],     # (B, J, 2) pixels, or (B, J, 3) with confidence;
                                            # null (or NaN) marks a missing keypoint
     "confidence": [[c, ...], ...],         # optional (B, J) in [0, 1]
     "camera": {"focal": [fx, fy], "center": [cx, cy], "rotation": [[...], [...], [...]]}}

OpenPose output (one frame per file, BODY_25; BODY_25B with --format openpose25b; BODY_135's
405 values are read as their first 25, BODY_25B's; keypoints whose geometry shows the other
layout are refused with the --format to pass, --no-layout-check skips that check)::

    {"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...]}, ...]}

Detector output, read as coco17 (the layout is told from the JSON's structure)::

    [{"image_id": 1, "keypoints": [x, y, s, ...], "score": 0.9}, ...]   # COCO keypoint results:
        # COCO eval, Detectron2, AlphaPose ("image_id": "0.jpg"); 17, 26 (Halpe), 133
        # (COCO-WholeBody) or 136 (Halpe) keypoints, the first 17 used; one frame per image
        # in order of first appearance (the order the tool wrote: frame order for a video)
    [{"keypoints": [[x, y], ...], "keypoint_scores": [...], "bbox_score": 0.9}, ...]   # MMPose
    [{"keypoints": [[x, y, s], ...], "bbox": [x1, y1, x2, y2, s]}, ...]   # MMPose 0.x, ViTPose
    [{"frame_id": 0, "instances": [...]}, ...]          # MMPose 1.x predictions of a video
    {"meta_info": {...}, "instance_info": [...]}        # MMPose demos' --save-predictions
    {"images": [...], "annotations": [...], "categories": [...]}   # a COCO-format dataset
        # (your own labels from CVAT / Label Studio): one frame per entry of "images"

In detector files --person is a rank of score (0 = the highest: COCO 'score', MMPose
'bbox_score'); --track ID is instead the person a tracker gave that id (AlphaPose's 'idx',
'track_id', OpenPose's 'person_id'); confidence is the keypoint score clipped to [0, 1] (COCO
flags 0/1/2 -> 0/1/1; scores above 1 count as 1). docs/fitting.md has the details.

With --sequence the frames of all files, in order (files named by unpadded frame numbers,
1.json ... 10.json, in number order), are one clip (a video): the advprior
layout's (B, J, 2) keypoints are then (T, J, 2) over time, one OpenPose file is one frame, and
frames with fewer than two keypoints of positive confidence are filled in from their neighbours
(advprior.fitting.fit_sequence: one shape for the clip, temporal terms on the latents,
orientation and translation), as are frames without the chosen person (OpenPose's
"people": [], an MMPose frame without instances) and the numbered images a COCO results file
leaves out (AlphaPose's "3.jpg" between "2.jpg" and "4.jpg"); FIT.npz then holds (T, ...)
arrays, and info["frames"] each row's [file, image or frame id]. --amass FILE (with --sequence
and --fps) also writes the clip as an AMASS-style .npz for AMASS viewers, motion datasets and
Blender SMPL add-ons: poses (T, 156) SMPL-H (or the --body-model's own layout: 72 SMPL, 165
SMPL-X), trans, betas (16), gender (--gender, else neutral), mocap_framerate, in AMASS's z-up
world (the camera's x right, its forward +y, its up +z); docs/fitting.md, "Export to AMASS".

The person is chosen with --person (default: the first; in detector files the best scored).
The camera comes from --camera ("fx,fy,cx,cy", "f,cx,cy" or a JSON file with
focal/center/rotation, or K/rotation) or else from the keypoints files (files carrying
different cameras are an error: fit them separately). FIT.npz holds the FitResult arrays
(body_pose (B,63), global_orient, transl, betas, latent if any, loss, joints (B,24,3),
projected, iterations) and ``info`` (JSON).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

from advprior.commands._body import add_body_model_arguments, body_model_from_args
from advprior.fileio import read_json

# A keypoint file may hold a whole sequence (frames x people x joints), far more than the
# JSON files advprior itself writes; the bound only keeps a symlink to /dev/zero from filling
# the memory.
KEYPOINT_JSON_MAX_BYTES = 2**30

OPENPOSE_BODY25_VALUES = 75
#: OpenPose's BODY_135 (x, y, c per keypoint): its first 25 keypoints are BODY_25B's.
OPENPOSE_BODY135_VALUES = 405


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fit",
        help="fit SMPL pose and shape to 2D keypoints with a pose prior",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("keypoints", nargs="+", type=Path, help="KEYPOINTS.json file(s)")
    p.add_argument(
        "--camera",
        default=None,
        help='"fx,fy,cx,cy", "f,cx,cy" or a camera JSON file (default: from the keypoints file)',
    )
    p.add_argument(
        "--prior",
        default="gan-s",
        help="gan-s, gan-u, gan-n, vae, gmm, a checkpoint directory or Hub id, or "
        "'none' (default: gan-s)",
    )
    p.add_argument(
        "--format",
        dest="keypoint_format",
        default=None,
        choices=("smpl24", "openpose25", "openpose25b", "coco17"),
        help="keypoint layout (default: the file's, else smpl24; OpenPose files: openpose25, "
        "or openpose25b for OpenPose's BODY_25B model)",
    )
    p.add_argument(
        "--layout-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refuse BODY_25B keypoints given as openpose25 and BODY_25 ones as openpose25b "
        "(on; --no-layout-check: for keypoints you know are in the --format given that are "
        "refused anyway; docs/fitting.md, 'OpenPose BODY_25 or BODY_25B')",
    )
    add_body_model_arguments(
        p, "SMPL/SMPL-H/SMPL-X model file or folder (default: the open stand-in)"
    )
    p.add_argument(
        "--pose-density",
        default="auto",
        help="energy on the fitted pose that prefers common poses: auto (the bundled GMM for "
        "gan-s, nothing for the others), none, or a pose-space prior alias/folder (default: auto)",
    )
    p.add_argument(
        "--pose-weight",
        type=float,
        default=None,
        help="weight of --pose-density (default: advprior's, 2.0)",
    )
    p.add_argument(
        "--person",
        type=int,
        default=0,
        help="which person: index in OpenPose files, rank of score (0 = highest) in COCO "
        "results and MMPose files (0)",
    )
    p.add_argument(
        "--track",
        type=int,
        default=None,
        metavar="ID",
        help="instead of --person: the person a tracker gave this id, in every frame "
        "(AlphaPose --pose_track 'idx', MMPose/COCO 'track_id', OpenPose 'person_id')",
    )
    p.add_argument("--iterations", type=int, default=30, help="iterations per stage (30)")
    p.add_argument(
        "--starts",
        type=int,
        default=1,
        help="starting poses per frame, the lowest final loss kept (1; 4-8 fit better with "
        "GAN-S/GAN-U/the VAE at 2-4x the time, docs/fitting.md)",
    )
    p.add_argument(
        "--view-starts",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also start from the torso's 2D layout: for cameras looking down steeply and "
        "people lying or upside down (on; --no-view-starts: 0.2.0's upright starts only; "
        "docs/fitting.md, 'Views and body orientations')",
    )
    p.add_argument("--optimizer", default="lbfgs", choices=("lbfgs", "adam"))
    p.add_argument("--sigma", type=float, default=100.0, help="Geman-McClure scale, px (100)")
    p.add_argument(
        "--pixel-scale",
        type=_pixel_scale,
        default="auto",
        help="your pixels per pixel of the scale the defaults suit: auto (default: 1 for "
        "people up to ~500 px tall, then 2, 4, ...) or a positive number (1: 0.2.0's fit; "
        "docs/fitting.md, 'Large images')",
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="FILE.npz",
        help="start each frame from a regressor's estimate (SPIN-style refinement): arrays "
        "body_pose (frames, 63 | 69, or per joint / matrices), optional global_orient (frames, "
        "3), betas (frames, K), transl (frames, 3), one row per fitted frame in the order the "
        "keypoint files give them; with --sequence one row per frame of the clip (the rows of "
        "FIT.npz, filled-in frames included: their rows are not used) and betas also (K,) for "
        "the clip; from body_pose the VAE and GAN-N run SMPLify's last stage alone, the other "
        "priors its four (docs/fitting.md, 'Starting from a regressor's estimate')",
    )
    p.add_argument(
        "--sequence",
        action="store_true",
        help="fit the frames as one clip with temporal smoothness (fit_sequence)",
    )
    p.add_argument(
        "--smoothness",
        type=float,
        default=1.0,
        help="--sequence: scale of the default temporal weights (1; 0 turns them off)",
    )
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help="--sequence: the video's frame rate; scales the temporal weights, which suit 30 fps "
        "(default: unscaled)",
    )
    p.add_argument(
        "--window", type=int, default=64, help="--sequence: frames optimised together (64)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("fit.npz"),
        help="output .npz (fit.npz), or .json: the same arrays as nested lists",
    )
    p.add_argument(
        "--amass",
        type=Path,
        default=None,
        metavar="FILE",
        help="--sequence with --fps: also write the clip as an AMASS-style .npz (poses, trans, "
        "betas, gender, mocap_framerate; z-up world; SMPL-H layout, or the --body-model's)",
    )
    p.set_defaults(func=run)


#: ``--init`` file keys -> :func:`advprior.fitting.fit_keypoints` (and ``fit_sequence``)
#: arguments.
INIT_KEYS = {
    "body_pose": "init_pose",
    "global_orient": "init_global_orient",
    "betas": "init_betas",
    "transl": "init_transl",
}


def read_init(path: Path) -> dict[str, Any]:
    """The ``fit_keypoints`` / ``fit_sequence`` keyword arguments of an ``--init`` ``.npz``
    (:data:`INIT_KEYS`; ``body_pose`` required). Another key is refused rather than ignored: a
    misspelt ``global_orient`` would silently start every frame from the built-in orientations."""
    import numpy as np

    from advprior.data.npz import read_npz_array
    from advprior.fileio import check_zip_members

    if not path.exists():
        raise FileNotFoundError(f"no such --init file: {path}")
    if not path.is_file():
        # a folder, or a pipe (`<(...)`) which an .npz cannot be read from (it is seeked)
        what = "a folder" if path.is_dir() else "not a regular file"
        raise ValueError(f"--init {path} is {what}, not a .npz")
    if not zipfile.is_zipfile(path):
        # np.load would read an .npy as one array and take any other bytes for a pickle ("load
        # it with allow_pickle=True"): nothing is ever unpickled here
        raise ValueError(f"--init {path}: not a .npz (not a zip archive; numpy.savez writes one)")
    check_zip_members(path, "--init file")

    def bad(message: str) -> ValueError:
        return ValueError(f"--init {path}: {message}")

    try:
        with np.load(path, allow_pickle=False) as data:
            # each member's .npy header first: an object array or a lying shape is refused
            arrays = {key: np.asarray(read_npz_array(data, key, bad)) for key in data.files}
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise bad(f"not a readable .npz ({err})") from None
    unknown = sorted(set(arrays) - set(INIT_KEYS))
    if unknown or "body_pose" not in arrays:
        raise ValueError(
            f"--init {path}: holds {sorted(arrays)}; expected body_pose and optionally "
            f"global_orient, betas, transl"
            + (f" (unknown: {unknown})" if unknown else " (body_pose missing)")
        )
    for key, value in arrays.items():
        if value.dtype.kind not in "fiu":
            raise ValueError(f"--init {path}: {key} holds {value.dtype}, not numbers")
    return {INIT_KEYS[k]: v.astype(np.float64) for k, v in arrays.items()}


def _pixel_scale(text: str) -> float | str:
    """``--pixel-scale``: ``auto`` or a number (argparse reports anything else as a usage
    error naming the option; :func:`run` checks that the number is positive)."""
    return text if text == "auto" else float(text)


def _camera_from_file(data: Any, path: Path) -> Any:
    """:meth:`PinholeCamera.from_dict` of what a file holds; a wrong type there (``"focal":
    "a"``) is a wrong value of that file, reported with its name."""
    from advprior.fitting import PinholeCamera

    try:
        return PinholeCamera.from_dict(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: camera: {err}") from None


def parse_camera(spec: str) -> Any:
    """A :class:`PinholeCamera` from ``"fx,fy,cx,cy"``, ``"f,cx,cy"`` or a JSON file path."""
    from advprior.errors import UsageError
    from advprior.fitting import PinholeCamera

    path = Path(spec)
    # exists, not is_file: `--camera <(jq ...)` is a pipe, which the reader refuses by name
    if path.suffix.lower() == ".json" or path.exists():
        if not path.exists():
            raise FileNotFoundError(f"camera file not found: {path}")
        return _camera_from_file(read_json(path, ValueError, what="camera file"), path)
    try:
        values = [float(v) for v in spec.split(",")]
    except ValueError as exc:
        raise UsageError(
            f'--camera must be "fx,fy,cx,cy", "f,cx,cy" or a JSON file, got {spec!r}'
        ) from exc
    if len(values) == 4:
        return PinholeCamera(values[:2], values[2:])
    if len(values) == 3:
        return PinholeCamera(values[0], values[1:])
    raise UsageError(f'--camera must be "fx,fy,cx,cy" or "f,cx,cy", got {len(values)} numbers')


def _is_number(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _is_point(x: Any) -> bool:
    """A keypoint as written in a file: ``null`` or ``[x, y]`` / ``[x, y, c]`` (nulls allowed)."""
    return x is None or (isinstance(x, list) and len(x) in (2, 3) and all(map(_is_number, x)))


def _keypoint_array(value: Any, path: Path) -> Any:
    """Nested lists -> float array ``(B, J, C)``: one frame ``(J, C)`` or frames ``(B, J, C)``;
    a null keypoint or coordinate becomes NaN."""
    import numpy as np

    if not isinstance(value, list) or not value:
        raise ValueError(f"{path}: keypoints must be a non-empty list")
    if all(_is_number(v) for v in value):
        raise ValueError(
            f"{path}: keypoints is a flat list of {len(value)} numbers; give nested lists "
            "(J, 2|3) or (B, J, 2|3) (a COCO/MMPose 'keypoints' [x, y, v, ...] list is "
            "(17, 3) once reshaped)"
        )
    # a frame is a list of points; anything else is a list of frames
    frames = [value] if all(_is_point(v) for v in value) else value
    for i, f in enumerate(frames):
        if not isinstance(f, list) or not all(_is_point(k) for k in f):
            raise ValueError(
                f"{path}: keypoints must be a (B, J, 2|3) array of numbers or nulls; frame {i} "
                "is not a list of [x, y] or [x, y, c] points"
            )
    width = max((len(k) for f in frames for k in f if isinstance(k, list)), default=2)
    rows = [
        [[np.nan] * width if k is None else [np.nan if c is None else c for c in k] for k in f]
        for f in frames
    ]
    try:
        return np.asarray(rows, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: keypoints must be a (B, J, 2|3) array ({exc})") from exc


def _missing_openpose_frame() -> dict[str, Any]:
    """An OpenPose frame without the person: every keypoint missing (a gap a sequence fills)."""
    import numpy as np

    return {
        "keypoints": np.full((1, 25, 2), np.nan),
        "confidence": np.zeros((1, 25)),
        "format": None,  # BODY_25 or BODY_25B: the other frames' (or --format) decide
        "camera": None,
    }


def read_keypoints(
    path: Path, person: int = 0, *, missing_ok: bool = False, track: int | None = None
) -> dict[str, Any]:
    """:func:`_read_keypoints`, with the values checked here, where the file's name is known
    (``fit_keypoints`` checks them again, but for all files at once)."""
    import numpy as np

    from advprior.fitting.smplify import MAX_KEYPOINT_PX, MIN_KEYPOINT_SPAN_PX

    try:
        out = _read_keypoints(path, person, missing_ok=missing_ok, track=track)
    except OverflowError:
        # JSON integers have no bound: one beyond float64 (or an Infinity where an integer
        # belongs) fails numpy's or int()'s conversion, wherever the layout converts it
        raise ValueError(
            f"{path}: holds a number beyond float64's range (an integer of hundreds of digits, "
            "or Infinity where an index belongs)"
        ) from None
    kp, conf = np.asarray(out["keypoints"]), np.asarray(out["confidence"])
    if np.isinf(kp).any():
        raise ValueError(f"{path}: keypoints contain +-Inf; mark missing keypoints with null")
    big = float(np.nan_to_num(np.abs(kp), nan=0.0).max()) if kp.size else 0.0
    if big > MAX_KEYPOINT_PX:
        raise ValueError(
            f"{path}: keypoints must be pixel coordinates with |x|, |y| <= "
            f"{MAX_KEYPOINT_PX:.0e}, got {big:.3g}"
        )
    seen = ~np.isnan(kp).any(-1)  # a missing keypoint's confidence is not read
    bad = conf[seen]
    if np.isnan(bad).any() or (bad < 0).any() or (bad > 1).any():
        raise ValueError(f"{path}: confidence must lie in [0, 1] (no NaN)")
    visible = seen & (conf > 0)
    # normalised coordinates (OpenPose's --keypoint_scale 3 or 4, MediaPipe's landmarks) are the
    # commonest wrong input; fit_keypoints refuses them too, but by an index into the batch
    span = (
        np.where(visible[..., None], kp, -np.inf).max(1)
        - np.where(visible[..., None], kp, np.inf).min(1)
    ).max(-1)  # -inf for a frame without visible keypoints
    tiny = np.nonzero((visible.sum(-1) >= 2) & (span < MIN_KEYPOINT_SPAN_PX))[0].tolist()
    if tiny:
        which = "" if kp.shape[0] == 1 else f" frames {tiny[:10]}{'...' if len(tiny) > 10 else ''}"
        raise ValueError(
            f"{path}:{which} the visible keypoints span less than {MIN_KEYPOINT_SPAN_PX:g} px; "
            "keypoints must be pixel coordinates (normalised [0, 1] or [-1, 1] ones? multiply "
            "them by the image size)"
        )
    if not missing_ok:
        # fit_keypoints names such frames by their index in the whole batch, which a folder of
        # one-frame files (OpenPose's) does not tell the user
        empty = np.nonzero(visible.sum(-1) < 2)[0].tolist()
        if empty:
            which = (
                ""
                if kp.shape[0] == 1
                else f" frames {empty[:10]}{'...' if len(empty) > 10 else ''}"
            )
            raise ValueError(
                f"{path}:{which} fewer than 2 keypoints with confidence > 0 (nothing detected, "
                "or a person without keypoints: --person picks another); nothing to fit: drop "
                "the file, or fit the clip with --sequence, which fills such frames in"
            )
    return out


def _read_keypoints(
    path: Path, person: int = 0, *, missing_ok: bool = False, track: int | None = None
) -> dict[str, Any]:
    """One file -> ``{"keypoints" (B,J,2), "confidence" (B,J), "format", "camera",
    "frame_ids", "absent", "tracks"}`` (numpy; format and camera may be None; the lists as
    :func:`advprior.commands._detector_files.read_detector_file` returns them, ``frame_ids``
    the row index in a file of several frames of ours). Raises ``ValueError`` naming the file
    on a bad layout. ``person``: an index in OpenPose files, a rank of score (0 = highest) in
    COCO keypoint results and MMPose predictions (:mod:`advprior.commands._detector_files`);
    ``track``: instead, the person a tracker gave that id (OpenPose's ``person_id``).
    ``missing_ok``: a frame without that person (OpenPose writes ``"people": []`` when nobody
    is detected) is a frame whose keypoints are all missing."""
    out = _read_one(path, person, missing_ok=missing_ok, track=track)
    rows = len(out["keypoints"])
    out.setdefault("frame_ids", [None] if rows == 1 else list(range(rows)))
    out.setdefault("absent", [])
    out.setdefault("tracks", [None] * rows)
    return out


def _read_one(path: Path, person: int, *, missing_ok: bool, track: int | None) -> dict[str, Any]:
    import numpy as np

    if path.is_dir():
        # OpenPose's --write_json gives a folder of one file per frame
        raise ValueError(
            f"{path} is a folder; pass its keypoint files, e.g. {path / '*.json'} (read in the "
            "order given; OpenPose's zero-padded frame numbers sort into frame order)"
        )
    try:
        data = read_json(path, ValueError, max_bytes=KEYPOINT_JSON_MAX_BYTES)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such keypoints file: {path}") from None
    except OSError as exc:  # a folder, no permission: one line naming the file
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from None
    from advprior.commands._detector_files import (
        is_detector_file,
        read_detector_file,
        track_id,
    )

    if is_detector_file(data):  # COCO keypoint results, MMPose predictions
        return read_detector_file(data, path, person, missing_ok=missing_ok, track=track)
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a JSON object with 'keypoints' or 'people', or a list of "
            "COCO keypoint results / MMPose instances"
        )
    if "people" in data:
        people = data["people"]
        if not isinstance(people, list):
            raise ValueError(f"{path}: 'people' must be a list, got {type(people).__name__}")
        if track is not None:
            # OpenPose's tracking writes the identity as person_id [id] (untracked: [-1])
            tracked = [
                i
                for i, e in enumerate(people)
                if isinstance(e, dict) and track_id(e.get("person_id")) == track
            ]
            if people and not any(
                isinstance(e, dict) and track_id(e.get("person_id")) is not None for e in people
            ):
                raise ValueError(
                    f"{path}: --track {track}: no person here has a person_id (OpenPose writes "
                    "[-1] without tracking); use --person"
                )
            if not tracked:
                if missing_ok:
                    return _missing_openpose_frame()
                raise ValueError(f"{path}: has no person with person_id {track} (--track)")
            person = tracked[0]
        if not 0 <= person < len(people):
            if missing_ok and person >= 0:
                return _missing_openpose_frame()
            raise ValueError(f"{path}: has {len(people)} people; --person {person} does not exist")
        entry = people[person]
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: person {person} is not a JSON object")
        # OpenPose's JSON version 1.0 called the array 'pose_keypoints'
        values = entry.get("pose_keypoints_2d", entry.get("pose_keypoints"))
        if not isinstance(values, list):
            raise ValueError(
                f"{path}: person {person} has no 'pose_keypoints_2d' list; only OpenPose "
                f"BODY_25 / BODY_25B ({OPENPOSE_BODY25_VALUES} values) and BODY_135 "
                f"({OPENPOSE_BODY135_VALUES}) are supported"
            )
        try:
            flat = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{path}: pose_keypoints_2d must hold numbers") from None
        if flat.size not in (OPENPOSE_BODY25_VALUES, OPENPOSE_BODY135_VALUES):
            raise ValueError(
                f"{path}: pose_keypoints_2d has {flat.size} values; only OpenPose "
                f"BODY_25 / BODY_25B ({OPENPOSE_BODY25_VALUES} values) and BODY_135 "
                f"({OPENPOSE_BODY135_VALUES}) are supported"
            )
        # BODY_135: its first 25 keypoints are BODY_25B's (then hands and face)
        body135 = flat.size == OPENPOSE_BODY135_VALUES
        arr = flat.reshape(1, -1, 3)[:, :25]
        # OpenPose writes undetected keypoints as (0, 0, 0).
        return {
            "keypoints": arr[..., :2],
            "confidence": np.clip(arr[..., 2], 0.0, 1.0),
            # 75 values: BODY_25 unless --format openpose25b (the fit tells a BODY_25B file
            # read as BODY_25 from its geometry and says so)
            "format": "openpose25b" if body135 else "openpose25",
            "camera": None,
            "tracks": [track_id(entry.get("person_id"))],
        }
    if "keypoints" not in data:
        raise ValueError(f"{path}: expected a 'keypoints' array (B, J, 2|3) or OpenPose 'people'")
    if track is not None:
        raise ValueError(
            f"{path}: --track picks a person by a tracker's id; this file holds one person's "
            "keypoints and no ids (leave --track out)"
        )
    fmt = data.get("format")
    if fmt is not None and not isinstance(fmt, str):
        raise ValueError(f"{path}: 'format' must be a keypoint format name, got {fmt!r}")
    kp = _keypoint_array(data["keypoints"], path)
    if kp.ndim != 3 or kp.shape[-1] not in (2, 3):
        raise ValueError(f"{path}: keypoints must be (B, J, 2) or (B, J, 3), got {kp.shape}")
    conf = data.get("confidence")
    if conf is not None:
        try:
            conf = np.asarray(conf, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: confidence must be a (B, J) array of numbers") from None
        if conf.size != kp.shape[0] * kp.shape[1]:
            raise ValueError(
                f"{path}: confidence must be (B, J) = {kp.shape[:2]}, got {conf.shape}"
            )
        conf = conf.reshape(kp.shape[:2])
        if kp.shape[-1] == 3:
            raise ValueError(
                f"{path}: give confidence either as a third column or as 'confidence', not both"
            )
    elif kp.shape[-1] == 3:
        conf = np.nan_to_num(kp[..., 2])
    else:
        conf = np.ones(kp.shape[:2])
    return {
        "keypoints": kp[..., :2],
        "confidence": conf,
        "format": fmt,
        "camera": data.get("camera"),
    }


#: A file name's last run of digits, and what comes before and after it.
_NUMBERED_FILE = re.compile(r"(.*?)(\d+)(\D*)")


def _in_frame_order(paths: list[Path]) -> list[Path]:
    """The files of a clip in frame-number order when their names differ only in an unpadded
    number given out of order: a shell (and a wildcard here) sorts ``10.json`` before
    ``2.json``, which put frame 10 of an MMPose per-image folder after frame 1. Names padded
    to one width (OpenPose's) sort right as text and keep their order; so does any other
    list of files."""
    matches = [_NUMBERED_FILE.fullmatch(str(p)) for p in paths]
    if len(paths) < 2 or not all(matches):
        return paths
    if len({(m[1], m[3]) for m in matches}) != 1:  # type: ignore[index]
        return paths
    numbers = [int(m[2]) for m in matches]  # type: ignore[index]
    if len(set(numbers)) != len(numbers) or numbers == sorted(numbers):
        return paths
    order = sorted(range(len(paths)), key=numbers.__getitem__)
    print(
        f"advprior fit: note: the {len(paths)} files are taken in the order of their frame "
        f"numbers ({paths[order[0]].name}, {paths[order[1]].name}, ...), not as given",
        file=sys.stderr,
    )
    return [paths[i] for i in order]


def _note_gaps_and_switches(
    paths: list[Path], frames: list[dict[str, Any]], person: int, track: int | None
) -> None:
    """Tell a sequence's user (stderr) about frames a detector file left out, which became
    missing frames, and about a ``--person`` rank that several tracker ids took in turn, or
    without ids a person who jumps further than their size between frames (two people fitted
    as one clip: ``--track`` follows one)."""
    for path, f in zip(paths, frames, strict=True):
        absent = f["absent"]
        if absent:
            ids = ", ".join(map(repr, absent[:5])) + (", ..." if len(absent) > 5 else "")
            print(
                f"advprior fit: note: {path}: {len(absent)} frame(s) without detections "
                f"({ids}) are missing frames of the clip",
                file=sys.stderr,
            )
    tracks = [t for f in frames for t in f["tracks"]]
    ids = sorted({t for t in tracks if t is not None})
    if len(ids) > 1:
        changes = sum(
            1 for a, b in zip(tracks, tracks[1:], strict=False) if None not in (a, b) and a != b
        )
        print(
            f"advprior fit: warning: --person {person} (the rank by score in each frame) is the "
            f"tracker's person {', '.join(map(str, ids))} in turn ({changes} switch(es)): the clip "
            "mixes people; pass --track ID to follow one",
            file=sys.stderr,
        )
    elif track is None:
        jumps = _jumps(frames)
        if jumps:
            labels = _row_labels(paths, frames)
            t = jumps[0]
            more = f" (and {len(jumps) - 1} more)" if len(jumps) > 1 else ""
            print(
                f"advprior fit: warning: the person moves by more than half their size from "
                f"{labels[t]} to {labels[t + 1]}{more}: another person? (--person {person} is an "
                "index in OpenPose files, a rank by score in detector files; --track ID follows "
                "a tracker's person)",
                file=sys.stderr,
            )


def _check_focal_length(kp: Any, conf: Any, cameras: list[Any]) -> None:
    """ValueError when the keypoints say the focal length is in mm
    (:func:`advprior.fitting.camera.focal_length_reason`): checked before anything is fitted;
    ``fit_keypoints`` itself only warns (a CPU fit; a GPU one is not judged)."""
    from advprior.fitting.camera import focal_length_reason

    reason = focal_length_reason(kp, conf, [min(c.focal) for c in cameras])
    if reason is not None:
        raise ValueError(reason)


def _row_labels(paths: list[Path], frames: list[dict[str, Any]]) -> list[str]:
    """Each row's file, and its image or frame id when the file holds several."""
    return [
        str(path) if fid is None else f"{path} {fid!r}"
        for path, f in zip(paths, frames, strict=True)
        for fid in f["frame_ids"]
    ]


def _empty_frames_note(
    paths: list[Path], frames: list[dict[str, Any]], person: int, track: int | None
) -> str | None:
    """A note on the rows without the person (OpenPose's ``"people": []``, an image with fewer
    people, a ``--track`` id not there), which the clip fills in, beyond the images a detector
    file left out (noted before the fit), when ``--person N`` (N > 0) or ``--track`` chose the
    person: one found in one frame out of fourteen used to give "fitted 14 frame(s)" and
    nothing else. (Without them a row with nobody, or all-null keypoints, is the detector's or
    the user's own missing frame, as before.) Printed after the fit, so that an error stays the
    one line on stderr."""
    import numpy as np

    if track is None and person == 0:
        return None
    labels = _row_labels(paths, frames)
    seen = [
        int(n)
        for f in frames
        for n in ((f["confidence"] > 0) & np.isfinite(f["keypoints"]).all(-1)).sum(-1)
    ]
    empty = [label for label, n in zip(labels, seen, strict=True) if n < 2]
    if len(empty) <= sum(len(f["absent"]) for f in frames):
        return None
    who = f"--track {track}" if track is not None else f"--person {person}"
    return (
        f"advprior fit: note: {len(empty)} of {len(labels)} frame(s) have no keypoints of {who} "
        f"({', '.join(empty[:3])}{', ...' if len(empty) > 3 else ''}): missing frames the clip "
        "filled in from its other frames"
    )


def _jumps(frames: list[dict[str, Any]]) -> list[int]:
    """Rows ``t`` after which the keypoints seen in both frames move, on average, by more than
    half the person's size (the larger side of their box): 19% of a sprinter's height per frame
    at 30 fps, while two people side by side are often less than a height apart. The person of
    a rank or index may be somebody else in the next frame."""
    import numpy as np

    kp = np.concatenate([f["keypoints"] for f in frames])
    conf = np.concatenate([f["confidence"] for f in frames])
    vis = (conf > 0) & np.isfinite(kp).all(-1)
    both = vis[1:] & vis[:-1]  # the same points in both frames: no shift from visibility
    count = both.sum(-1)
    xy0 = np.where(both[..., None], kp[:-1], 0.0)
    xy1 = np.where(both[..., None], kp[1:], 0.0)
    step = np.linalg.norm((xy1 - xy0).sum(1), axis=-1) / np.maximum(count, 1)
    size = np.zeros(len(count))
    for xy in (kp[:-1], kp[1:]):
        high = np.where(both[..., None], xy, -np.inf).max(1)
        low = np.where(both[..., None], xy, np.inf).min(1)
        size = np.maximum(size, (high - low).max(-1))
    far = (count >= 4) & (step > 0.5 * size)  # a few points say little
    return np.nonzero(far)[0].tolist()


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from advprior.commands._numbers import check_counts, check_non_negative, check_number
    from advprior.commands._wildcards import expand_wildcards
    from advprior.errors import UsageError
    from advprior.fitting import fit_keypoints

    check_counts(args, {"starts": 1, "iterations": 1, "window": 2})
    check_number(args.sigma, "--sigma", low_open=True)
    check_non_negative(args, ("pose_weight", "smoothness"))
    if args.sequence and args.optimizer != "lbfgs":
        # fit_sequence has no other optimiser: running L-BFGS anyway hid the choice
        raise UsageError(
            f"--optimizer {args.optimizer} is for per-frame fits; --sequence optimises with L-BFGS"
        )
    if args.fps is not None:
        if not args.sequence:
            raise UsageError("--fps is the frame rate of a --sequence; per-frame fits have none")
        check_number(args.fps, "--fps", low_open=True)
    if args.amass is not None:
        if not args.sequence:
            raise UsageError("--amass writes a clip: it needs --sequence (and --fps)")
        if args.fps is None:
            raise UsageError("--amass needs --fps: the frame rate the AMASS file records")
        if args.amass.resolve() == args.out.resolve():
            raise UsageError(f"--amass and --out name the same file {args.out}")
    if args.pixel_scale != "auto" and not (
        math.isfinite(args.pixel_scale) and args.pixel_scale > 0
    ):
        raise UsageError(f"--pixel-scale must be a positive number or auto, got {args.pixel_scale}")
    # usage errors before any file is read
    camera = parse_camera(args.camera) if args.camera is not None else None
    args.keypoints = expand_wildcards(args.keypoints, "keypoints file")
    if args.sequence:
        args.keypoints = _in_frame_order(args.keypoints)
    if args.track is not None and args.person != 0:
        raise UsageError("--track and --person both choose the person: give one of them")
    if args.track is not None and args.track < 0:
        raise UsageError(f"--track must be a tracker's id (0 or more), got {args.track}")
    from advprior.fileio import check_writable

    # both outputs before the fit: a --out or --amass that cannot be written failed (exit 1)
    # only after minutes of fitting, and a bad --amass after --out had been written
    for path in (args.out, args.amass):
        if path is not None:
            check_writable(path)
    frames = [
        read_keypoints(p, args.person, missing_ok=args.sequence, track=args.track)
        for p in args.keypoints
    ]
    empty_note = None
    if args.sequence:
        _note_gaps_and_switches(args.keypoints, frames, args.person, args.track)
        empty_note = _empty_frames_note(args.keypoints, frames, args.person, args.track)
    formats = {f["format"] for f in frames if f["format"] is not None}
    fmt = args.keypoint_format or (formats.pop() if len(formats) == 1 else None) or "smpl24"
    if args.keypoint_format is None and len(formats) > 1:
        raise ValueError(f"the keypoint files use different formats {sorted(formats)}")
    if camera is None:
        cams = [
            (path, _camera_from_file(f["camera"], path))
            for path, f in zip(args.keypoints, frames, strict=True)
            if f["camera"] is not None
        ]
        if not cams:
            raise ValueError(
                "no camera: pass --camera fx,fy,cx,cy (or put 'camera' in the keypoints file)"
            )
        camera = cams[0][1]
        differ = [(path, other) for path, other in cams[1:] if other.to_dict() != camera.to_dict()]
        if differ and args.sequence:
            # a clip's files with their own intrinsics (a zoom, per-frame calibration): one
            # camera per frame, a file without one taking the first file's
            own = {id(f): _camera_from_file(f["camera"], path) for path, f in
                   zip(args.keypoints, frames, strict=True) if f["camera"] is not None}  # fmt: skip
            camera = [own.get(id(f), camera) for f in frames for _ in range(len(f["keypoints"]))]
        elif differ:
            # one camera serves the whole batch: a file seen by another camera would be fitted
            # at the wrong depth and place while still reprojecting well
            path, other = differ[0]
            raise ValueError(
                f"the keypoint files carry different cameras ({cams[0][0]}: "
                f"{camera.to_dict()}, {path}: {other.to_dict()}); fit them separately, "
                "or pass --camera to use one for all (a clip's frames with their own focal "
                "length and centre: --sequence fits each with its camera)"
            )
    widths = {f["keypoints"].shape[1] for f in frames}
    if len(widths) > 1:
        raise ValueError(f"the keypoint files have different keypoint counts {sorted(widths)}")
    kp = np.concatenate([f["keypoints"] for f in frames])
    conf = np.concatenate([f["confidence"] for f in frames])
    _check_focal_length(kp, conf, camera if isinstance(camera, list) else [camera] * len(kp))
    kp = torch.as_tensor(kp, dtype=torch.float32)
    conf = torch.as_tensor(conf, dtype=torch.float32)
    body_model = body_model_from_args(args)
    prior = None if args.prior.lower() == "none" else args.prior
    density = {"pose_density": args.pose_density}
    if args.pose_weight is not None:
        density["pose_weight"] = args.pose_weight
    # what both fits take alike; each adds its own schedule below
    common = dict(
        body_model=body_model,
        prior=prior,
        keypoint_format=fmt,
        check_layout=args.layout_check,
        starts=args.starts,
        view_starts=args.view_starts,
        sigma=args.sigma,
        pixel_scale=args.pixel_scale,
        **({} if args.init is None else read_init(args.init)),
        **density,
    )
    try:
        if args.sequence:
            from advprior.fitting import fit_sequence

            result = fit_sequence(
                kp,
                conf,
                camera,
                init_iterations=args.iterations,
                smoothness=args.smoothness,
                fps=args.fps,
                window=args.window,
                overlap=min(16, args.window // 4),
                **common,
            )
        else:
            result = fit_keypoints(
                kp, conf, camera, iterations=args.iterations, optimizer=args.optimizer, **common
            )
    except ValueError as err:
        # the fit names its argument (init_transl), not the file given or the file's key
        arg = next((a for a in INIT_KEYS.values() if str(err).startswith(a)), None)
        if args.init is None or arg is None:
            raise
        key = next(k for k, a in INIT_KEYS.items() if a == arg)
        raise ValueError(f"--init {args.init}: {err} ({arg} is the file's {key})") from None
    if isinstance(camera, list):  # one per frame (--sequence)
        result.info["camera"] = camera[0].to_dict()
        result.info["frame_cameras"] = [c.to_dict() for c in camera]
    else:
        result.info["camera"] = camera.to_dict()
    result.info["inputs"] = [str(p) for p in args.keypoints]
    if args.init is not None:
        result.info["init_file"] = str(args.init)
    # which file and image each row came from: detector files leave out images without people,
    # and rows of several files are concatenated, so row t need not be the video's frame t
    result.info["frames"] = [
        [str(path), frame_id]
        for path, f in zip(args.keypoints, frames, strict=True)
        for frame_id in f["frame_ids"]
    ]
    # a .json name got the .npz's zip bytes, which no JSON reader opens
    out = (
        result.to_json(args.out) if args.out.suffix.lower() == ".json" else result.to_npz(args.out)
    )
    amass = None
    if args.amass is not None:
        model_type = "smplh" if body_model is None else body_model.model_type
        # the camera's rotation, when it had one, is read from info["camera"]
        amass = result.to_amass(
            args.amass, fps=args.fps, gender=args.gender or "neutral", model_type=model_type
        )
    # the points the fit used: missing ones (NaN or null, confidence 0) are left out
    seen = (conf > 0) & torch.isfinite(kp).all(-1) & torch.isfinite(result.projected).all(-1)
    err = (result.projected - torch.nan_to_num(kp)).norm(dim=-1)[seen].mean()
    dens = result.info["prior_kind"]["pose_density"]
    with_density = "" if dens is None else f" + {dens['kind']} pose energy (w {dens['weight']:g})"
    with_density += f", {args.starts} starts" if args.starts > 1 else ""
    from advprior.commands._answer import answer

    if empty_note is not None:
        print(empty_note, file=sys.stderr)
    answer(
        f"fitted {len(result)} frame(s), format {fmt}, prior {args.prior}{with_density}: mean "
        f"reprojection {float(err):.1f} px, mean loss {float(result.loss.mean()):.1f}, "
        f"{result.info['seconds']:.1f} s -> {out}" + (f" and {amass}" if amass else ""),
        out,
        amass,
    )
    return 0
