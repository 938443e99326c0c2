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

The detectors' hip keypoints sit lower and further out than SMPL's hip joint centres (and
OpenPose's neck is on the shoulder line, SMPL's a little higher): the usual SMPLify(-X)
compromise of mapping them to the nearest SMPL joint is kept; lower their confidence if it
matters for your data.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class KeypointFormat:
    """A keypoint layout: ``names`` in order, ``sources`` (an SMPL joint index ``int`` or a
    surface-point name per keypoint) and ``torso`` (shoulder, hip) index pairs, one per side,
    used for the depth initialisation and the first (camera) stage."""

    name: str
    names: tuple[str, ...]
    sources: tuple[int | str, ...]
    torso: tuple[tuple[int, int], ...]

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

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

KEYPOINT_FORMATS: dict[str, KeypointFormat] = {f.name: f for f in (SMPL24, OPENPOSE25, COCO17)}


#: Other layouts' keypoint counts -> what to do with them, for the shape error.
_COCO_FIRST = "pass keypoints[:, :17] with keypoint_format='coco17' (its first 17 are COCO's)"
_OTHER_LAYOUTS = {
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
    for other in KEYPOINT_FORMATS.values():
        if other.num_keypoints == count and other.name != fmt.name:
            return f"; {count} keypoints: keypoint_format={other.name!r}?"
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

    Raises ``ValueError`` when the body model does not provide the surface points ``fmt`` needs.
    """
    if model_type not in KINEMATIC_JOINTS:
        raise ValueError(
            f"unknown body model type {model_type!r}; known: {sorted(KINEMATIC_JOINTS)}"
        )
    offset = KINEMATIC_JOINTS[model_type]
    needed = [s for s in fmt.sources if isinstance(s, str)]
    missing = [s for s in needed if s not in extra_names]
    if missing or num_model_joints < offset + len(extra_names):
        raise ValueError(
            f"keypoint_format {fmt.name!r} needs the surface points {missing or needed} that "
            f"smplx appends to the joints; this {model_type} body model does not provide them "
            "(pass vertex_ids to load_body_model for a non-standard mesh)"
        )
    return [offset + extra_names.index(s) if isinstance(s, str) else s for s in fmt.sources]
