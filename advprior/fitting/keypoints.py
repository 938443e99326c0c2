"""2D keypoint formats and where each keypoint sits on the body model.

A format lists its keypoints in order; each is either one of SMPL's 24 kinematic joints (posed
by forward kinematics) or one of the surface points smplx appends to a model's joints
(``BodyOutput.model_joints``): nose, eyes, ears, big/small toes and heels, picked from mesh
vertices. smplx appends them right after the kinematic joints (24 for SMPL, 52 for SMPL-H, 55 for
SMPL-X) in the order of the model's ``extra_joint_names`` (default :data:`SURFACE_POINTS`).

Mappings (keypoint -> SMPL joint or surface point):

- ``smpl24``: SMPL's 24 joints in SMPL order (:data:`advprior.skeleton.JOINT_NAMES`).
- ``openpose25`` (OpenPose BODY_25): Nose->nose, Neck->neck (12), R/LShoulder->17/16,
  R/LElbow->19/18, R/LWrist->21/20, MidHip->pelvis (0), R/LHip->2/1, R/LKnee->5/4,
  R/LAnkle->8/7, R/LEye, R/LEar, L/R BigToe, SmallToe, Heel -> surface points.
- ``coco17`` (COCO keypoints): nose, left/right eye and ear -> surface points; shoulders 16/17,
  elbows 18/19, wrists 20/21, hips 1/2, knees 4/5, ankles 7/8.
- ``openpose25b`` (OpenPose's experimental BODY_25B; also the first 25 of its BODY_135): COCO's
  17 in COCO order (as ``coco17``), then UpperNeck -> head (15), HeadTop -> none (unobserved),
  then L/R BigToe, SmallToe, Heel -> surface points (BODY_25's feet, same order). UpperNeck (the
  top of the neck, MPII's "upper neck") is SMPL's head joint, not its neck joint: on the
  stand-in's rest mesh the chin's lowest point is at y = 0.357 m, joint 15 at 0.353 m, joint 12
  at 0.288 m (the neck's base, 7 cm lower). SMPL has no joint or landmark at the top of the
  head: HeadTop is accepted and ignored (its confidence is forced to 0; ``body_keypoints`` and
  ``FitResult.projected`` give NaN there). BODY_25B has no MidHip and no Neck in BODY_25's
  sense.

A keypoint whose ``sources`` entry is ``None`` has no counterpart on the body
(:attr:`KeypointFormat.unobserved`): the fit never sees it. BODY_25 and BODY_25B put different
points at the same indices; :func:`check_layout` tells them apart from the keypoints' geometry
and raises :class:`~advprior.errors.KeypointLayoutError` for BODY_25B keypoints passed as
``openpose25`` and the reverse (see its docstring for the rule; the fitters'
``check_layout=False`` turns it off).

The detectors' hip keypoints sit lower and further out than SMPL's hip joint centres (and
OpenPose's neck is on the shoulder line, SMPL's a little higher): the usual SMPLify(-X)
compromise of mapping them to the nearest SMPL joint is kept; lower their confidence if it
matters for your data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from advprior.errors import KeypointLayoutError
from advprior.skeleton import JOINT_NAMES

#: Surface points smplx appends after a model's kinematic joints (smplx's names and order; a
#: :class:`~advprior.body.BodyModel` lists its own in ``extra_joint_names``).
SURFACE_POINTS: tuple[str, ...] = (
    "nose",
    "reye",
    "leye",
    "rear",
    "lear",
    "LBigToe",
    "LSmallToe",
    "LHeel",
    "RBigToe",
    "RSmallToe",
    "RHeel",
)

#: Kinematic joints per model type: where the surface points start in ``model_joints``.
KINEMATIC_JOINTS = {"smpl": 24, "smplh": 52, "smplx": 55}

#: The SMPL joint computed in place of a keypoint with no counterpart on the body (the head, 15):
#: any finite point serves, the fit gives it weight 0 and reports NaN for it.
PLACEHOLDER_JOINT = 15


@dataclass(frozen=True)
class KeypointFormat:
    """A keypoint layout: ``names`` in order, ``sources`` (an SMPL joint index ``int``, a
    surface-point name, or ``None`` for a keypoint with no counterpart on the body, per
    keypoint) and ``torso`` (shoulder, hip) index pairs, one per side, used for the depth
    initialisation and the first (camera) stage."""

    name: str
    names: tuple[str, ...]
    sources: tuple[int | str | None, ...]
    torso: tuple[tuple[int, int], ...]

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def unobserved(self) -> tuple[int, ...]:
        """Indices of the keypoints with no counterpart on the body (``sources`` ``None``):
        accepted, but their confidence is forced to 0 and their projection is NaN."""
        return tuple(k for k, s in enumerate(self.sources) if s is None)

    @property
    def body_sources(self) -> tuple[int | str, ...]:
        """``sources`` with :data:`PLACEHOLDER_JOINT` for the unobserved keypoints: a finite
        point to compute (never fitted: weight 0), so the fit's sums stay finite."""
        return tuple(PLACEHOLDER_JOINT if s is None else s for s in self.sources)

    @property
    def needs_surface(self) -> bool:
        """Whether some keypoint is a surface point (needs the full body model forward pass)."""
        return any(isinstance(s, str) for s in self.sources)


_J = {name: i for i, name in enumerate(JOINT_NAMES)}

SMPL24 = KeypointFormat(
    "smpl24",
    JOINT_NAMES,
    tuple(range(24)),
    ((_J["left_shoulder"], _J["left_hip"]), (_J["right_shoulder"], _J["right_hip"])),
)

OPENPOSE25 = KeypointFormat(
    "openpose25",
    (
        "Nose",
        "Neck",
        "RShoulder",
        "RElbow",
        "RWrist",
        "LShoulder",
        "LElbow",
        "LWrist",
        "MidHip",
        "RHip",
        "RKnee",
        "RAnkle",
        "LHip",
        "LKnee",
        "LAnkle",
        "REye",
        "LEye",
        "REar",
        "LEar",
        "LBigToe",
        "LSmallToe",
        "LHeel",
        "RBigToe",
        "RSmallToe",
        "RHeel",
    ),
    (
        "nose",
        _J["neck"],
        _J["right_shoulder"],
        _J["right_elbow"],
        _J["right_wrist"],
        _J["left_shoulder"],
        _J["left_elbow"],
        _J["left_wrist"],
        _J["pelvis"],
        _J["right_hip"],
        _J["right_knee"],
        _J["right_ankle"],
        _J["left_hip"],
        _J["left_knee"],
        _J["left_ankle"],
        "reye",
        "leye",
        "rear",
        "lear",
        "LBigToe",
        "LSmallToe",
        "LHeel",
        "RBigToe",
        "RSmallToe",
        "RHeel",
    ),
    ((5, 12), (2, 9)),
)

COCO17 = KeypointFormat(
    "coco17",
    (
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        "left_shoulder",
        "right_shoulder",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
        "left_hip",
        "right_hip",
        "left_knee",
        "right_knee",
        "left_ankle",
        "right_ankle",
    ),
    (
        "nose",
        "leye",
        "reye",
        "lear",
        "rear",
        _J["left_shoulder"],
        _J["right_shoulder"],
        _J["left_elbow"],
        _J["right_elbow"],
        _J["left_wrist"],
        _J["right_wrist"],
        _J["left_hip"],
        _J["right_hip"],
        _J["left_knee"],
        _J["right_knee"],
        _J["left_ankle"],
        _J["right_ankle"],
    ),
    ((5, 11), (6, 12)),
)

#: OpenPose BODY_25B (``openpose25b``): COCO-17's order, UpperNeck, HeadTop, then BODY_25's six
#: foot points (OpenPose's ``POSE_BODY_25B_BODY_PARTS``; the first 25 of BODY_135 too).
OPENPOSE25B = KeypointFormat(
    "openpose25b",
    (
        "Nose",
        "LEye",
        "REye",
        "LEar",
        "REar",
        "LShoulder",
        "RShoulder",
        "LElbow",
        "RElbow",
        "LWrist",
        "RWrist",
        "LHip",
        "RHip",
        "LKnee",
        "RKnee",
        "LAnkle",
        "RAnkle",
        "UpperNeck",
        "HeadTop",
        "LBigToe",
        "LSmallToe",
        "LHeel",
        "RBigToe",
        "RSmallToe",
        "RHeel",
    ),
    COCO17.sources + (_J["head"], None) + OPENPOSE25.sources[19:],
    ((5, 11), (6, 12)),
)

KEYPOINT_FORMATS: dict[str, KeypointFormat] = {
    f.name: f for f in (SMPL24, OPENPOSE25, COCO17, OPENPOSE25B)
}


#: Other layouts' keypoint counts -> what to do with them, for the shape error.
_COCO_FIRST = "pass keypoints[:, :17] with keypoint_format='coco17' (its first 17 are COCO's)"
_OTHER_LAYOUTS = {
    135: (
        "OpenPose's BODY_135? pass keypoints[:, :25] with keypoint_format='openpose25b' "
        "(its first 25 are BODY_25B's)"
    ),
    133: f"COCO-WholeBody's 133 keypoints? {_COCO_FIRST}",
    26: f"Halpe-26 (AlphaPose)? {_COCO_FIRST}",
    136: f"Halpe-136 (AlphaPose)? {_COCO_FIRST}",
    23: f"COCO-WholeBody's body and feet (23)? {_COCO_FIRST}",
    18: (
        "OpenPose's COCO-18 model (BODY_COCO) is not BODY_25: reorder it to coco17 with "
        "keypoints[:, [0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10]] "
        "and keypoint_format='coco17'"
    ),
}


def count_hint(count: int, fmt: KeypointFormat) -> str:
    """A hint (``""`` if none) for keypoints with ``count`` points where ``fmt`` needs another
    number: the format that has ``count`` keypoints, or how to convert a known other layout."""
    count = int(count)
    others = [
        repr(o.name)
        for o in KEYPOINT_FORMATS.values()
        if o.num_keypoints == count and o.name != fmt.name
    ]
    if others:
        return f"; {count} keypoints: keypoint_format={' or '.join(others)}?"
    if count in _OTHER_LAYOUTS and count != fmt.num_keypoints:
        return f"; {_OTHER_LAYOUTS[count]}"
    return ""


def get_format(name: str | KeypointFormat) -> KeypointFormat:
    """The :class:`KeypointFormat` called ``name`` (``ValueError`` listing the known ones)."""
    if isinstance(name, KeypointFormat):
        return name
    if name not in KEYPOINT_FORMATS:
        raise ValueError(f"unknown keypoint_format {name!r}; known: {sorted(KEYPOINT_FORMATS)}")
    return KEYPOINT_FORMATS[name]


def model_joint_indices(
    fmt: KeypointFormat,
    model_type: str,
    num_model_joints: int,
    extra_names: tuple[str, ...] = SURFACE_POINTS,
) -> list[int]:
    """Indices into ``BodyOutput.model_joints`` ``(B, J, 3)`` for each keypoint of ``fmt``, for
    a model of ``model_type`` whose vertex joints ``extra_names`` follow its skeleton.

    An unobserved keypoint (no counterpart on the body) gets :data:`PLACEHOLDER_JOINT`'s index:
    a finite point the fit gives weight 0. Raises ``ValueError`` when the body model does not
    provide the surface points ``fmt`` needs.
    """
    if model_type not in KINEMATIC_JOINTS:
        raise ValueError(
            f"unknown body model type {model_type!r}; known: {sorted(KINEMATIC_JOINTS)}"
        )
    offset = KINEMATIC_JOINTS[model_type]
    sources = fmt.body_sources
    needed = [s for s in sources if isinstance(s, str)]
    missing = [s for s in needed if s not in extra_names]
    if missing or num_model_joints < offset + len(extra_names):
        raise ValueError(
            f"keypoint_format {fmt.name!r} needs the surface points {missing or needed} that "
            f"smplx appends to the joints; this {model_type} body model does not provide them "
            "(pass vertex_ids to load_body_model for a non-standard mesh)"
        )
    return [offset + extra_names.index(s) if isinstance(s, str) else s for s in sources]


#: Per layout, pairs of keypoints that lie close together on every body in every pose (a rigid
#: few centimetres apart: nose-eye, eye-eye, eye-ear, ankle-heel), by index. BODY_25 and BODY_25B
#: hold other points at these indices, far apart on most bodies in most views.
CLOSE_PAIRS: dict[str, tuple[tuple[int, int], ...]] = {
    "openpose25": ((0, 15), (0, 16), (15, 16), (15, 17), (16, 18), (11, 24), (14, 21)),
    "openpose25b": ((0, 2), (0, 1), (1, 2), (2, 4), (1, 3), (16, 24), (15, 21)),
}
#: The formats :func:`check_layout` tells apart: each one's likely mix-up.
LAYOUT_RIVALS = {"openpose25": "openpose25b", "openpose25b": "openpose25"}
#: :func:`check_layout` raises when the median over frames of (the given layout's close-pair
#: distance / the rival's) exceeds this. Measured on the stand-in body (docs/fitting.md, "OpenPose
#: BODY_25 or BODY_25B"; 48,000 frames per layout of random poses and views, noise up to 10 px on
#: people 120-425 px tall, 0 or 30% of keypoints dropped): genuine keypoints at most 2.2 per
#: frame (median 0.2), mislabelled ones median 5.0 (BODY_25 given as BODY_25B) and 7.3.
LAYOUT_RATIO = 3.0
#: A frame votes when at least this many close pairs of each layout have both points seen.
LAYOUT_MIN_PAIRS = 3
#: Added to both distances, as a fraction of the frame's keypoint extent: keeps a small person's
#: face, where the detector's noise is as large as the face, from voting.
LAYOUT_FLOOR = 0.02


def _close_distance(kp: Tensor, seen: Tensor, pairs: tuple[tuple[int, int], ...]) -> Tensor:
    """Per frame the mean 2D distance ``(B,)`` of ``pairs`` whose two keypoints are ``seen``
    (NaN where fewer than :data:`LAYOUT_MIN_PAIRS` are)."""
    a = torch.tensor([p[0] for p in pairs], device=kp.device)
    b = torch.tensor([p[1] for p in pairs], device=kp.device)
    d = (kp[:, a] - kp[:, b]).norm(dim=-1)
    both = seen[:, a] & seen[:, b]
    count = both.sum(1)
    mean = torch.where(both, d, torch.zeros_like(d)).sum(1) / count.clamp(min=1)
    return torch.where(count >= LAYOUT_MIN_PAIRS, mean, torch.full_like(mean, float("nan")))


def layout_ratios(kp: Tensor, conf: Tensor, fmt: KeypointFormat) -> Tensor | None:
    """Per frame ``(B,)``: :data:`CLOSE_PAIRS` distance of ``fmt`` over that of its rival
    layout, from the keypoints ``kp (B, J, 2)`` with confidence ``conf (B, J)`` > 0 (NaN where a
    frame has too few pairs); ``None`` for a format without a rival. Small (~0.1) for keypoints
    in ``fmt``'s layout, large (~10) for the rival's."""
    rival = LAYOUT_RIVALS.get(fmt.name)
    if rival is None or kp.shape[1] != fmt.num_keypoints:
        return None
    kp = kp.detach()  # in its own dtype: MPS has no float64
    kp = kp if kp.is_floating_point() else kp.float()
    seen = (conf > 0) & torch.isfinite(kp).all(-1)
    kp = torch.where(seen[..., None], kp, torch.zeros_like(kp))
    own = _close_distance(kp, seen, CLOSE_PAIRS[fmt.name])
    other = _close_distance(kp, seen, CLOSE_PAIRS[rival])
    inf = torch.tensor(float("inf"), dtype=kp.dtype, device=kp.device)
    low = torch.where(seen[..., None], kp, inf).amin(1)
    high = torch.where(seen[..., None], kp, -inf).amax(1)
    floor = LAYOUT_FLOOR * (high - low).amax(-1).clamp(min=0.0)
    return (own + floor) / (other + floor)


def check_layout(kp: Tensor, conf: Tensor, fmt: KeypointFormat) -> None:
    """Raise :class:`~advprior.errors.KeypointLayoutError` when keypoints given as ``openpose25``
    are BODY_25B's (``openpose25b``), or the reverse.

    The rule: on any body, in any pose and view, a few pairs of points are always within a few
    centimetres of each other (nose and eyes, the eyes, eye and ear, ankle and heel; a
    projection only shortens them). Each layout has them at its own indices
    (:data:`CLOSE_PAIRS`); the other layout has other points there (BODY_25's 15/16 are the
    eyes, BODY_25B's the ankles; BODY_25B's 1/2 are the eyes, BODY_25's the neck and right
    shoulder), which are far apart. Per frame with at least :data:`LAYOUT_MIN_PAIRS` seen pairs
    of each layout, the mean distance of the given layout's pairs is divided by the rival's,
    both plus :data:`LAYOUT_FLOOR` times the frame's keypoint extent (:func:`layout_ratios`;
    independent of the person's size in pixels); the keypoints are refused when the median of
    that ratio over the frames exceeds :data:`LAYOUT_RATIO`. Frames without enough pairs
    abstain; with no voting frame nothing is checked.

    The fitters run it unless told not to (``check_layout=False`` of
    :func:`~advprior.fitting.fit_keypoints`, :func:`~advprior.fitting.fit_sequence` and
    ``final_objective``; ``advprior fit --no-layout-check``): the rule was measured on
    synthetic keypoints, and a genuine dataset that trips it needs a way through."""
    ratios = layout_ratios(kp, conf, fmt)
    if ratios is None:
        return
    votes = ratios[torch.isfinite(ratios)]
    if votes.numel() == 0:
        return
    ratio = float(votes.median())
    if ratio <= LAYOUT_RATIO:
        return
    rival = LAYOUT_RIVALS[fmt.name]
    model = {"openpose25": "BODY_25", "openpose25b": "BODY_25B"}
    raise KeypointLayoutError(
        f"these keypoints look like OpenPose {model[rival]} ({rival!r}), not "
        f"{model[fmt.name]} ({fmt.name!r}): the points that are always a few centimetres "
        f"apart in {model[fmt.name]}'s order (nose, eyes, ears, ankles, heels) are "
        f"{ratio:.1f}x further apart than those of {model[rival]}'s order (median over "
        f"{votes.numel()} frame(s); genuine {model[fmt.name]} keypoints stay below "
        f"{LAYOUT_RATIO:g}x). Pass keypoint_format={rival!r} (advprior fit: --format {rival}). "
        f"If you are sure they are {model[fmt.name]} keypoints, pass check_layout=False "
        "(advprior fit: --no-layout-check); see docs/fitting.md, 'OpenPose BODY_25 or BODY_25B'",
        likely_format=rival,
    )


def mask_unobserved(points: Tensor, fmt: KeypointFormat) -> Tensor:
    """``points (..., J, D)`` with NaN at ``fmt``'s unobserved keypoints (a copy if any)."""
    if not fmt.unobserved:
        return points
    points = points.clone()
    points[..., list(fmt.unobserved), :] = float("nan")
    return points
