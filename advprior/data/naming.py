"""Map a source skeleton's joints onto SMPL's 24 joints, by name *and* hierarchy.

Only knees, elbows and the head are found by name (case-insensitive, any ``prefix:`` such as
``mixamorig:`` dropped, a rig prefix such as SMPL's ``m_avg_`` and a word that only says "joint"
such as Maya's ``_JNT`` dropped, side given as ``Left``/``Right``/``l``/``r``/``_L``/``_R``, a
centre marker such as Advanced Skeleton's ``Head_M`` dropped; Blender Rigify's head and neck by
their number on its spine, ``spine.006`` and ``spine.004``). Everything else follows
from the tree, which is what resolves names that mean different bones in different conventions
(``LeftShoulder`` is the collar in the MotionBuilder-friendly CMU BVH and the upper arm in the
3dsMax-friendly one):

- thigh = parent of the knee; ankle = the knee's child; toe = the ankle's child;
- upper arm = parent of the elbow; collar = parent of the upper arm unless that joint is on the
  spine; wrist = the elbow's child; hand = the wrist's child most in line with the forearm;
- twist bones (names containing ``twist``: Daz Genesis ``lThighTwist`` between ``lThighBend`` and
  ``lShin``, Unreal's ``upperarm_twist_01_l``; or the word ``Roll``: HumanIK's ``LeftArmRoll``)
  are helpers, not joints, and so is a limb bone's numbered second segment (MakeHuman's
  ``lowerleg01.L > lowerleg02.L``, Rigify's ``DEF-shin.L > DEF-shin.L.001``): the walks above
  step over them, and a ``Bend`` suffix (Genesis' ``lForearmBend``) or a segment number
  (``lowerleg01``) is dropped from the name that is matched;
- Blender Rigify: ``DEF-`` (deform) and ``ORG-`` (original, unsplit) bones map alike, the
  ``DEF-`` one where a file holds both; ``MCH-`` (mechanism) bones are never a joint and the
  walks step over them, as over twist helpers;
- pelvis = lowest common ancestor of both thighs and the head; neck = the last joint named
  ``*neck*`` between pelvis and head that is not a twist helper (if all are, the first of them;
  with none, the head's parent); SMPL's spine1-3 are points on the
  source's pelvis-to-neck chain at SMPL's rest arc-length fractions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from advprior.skeleton import JOINT_NAMES, REST_JOINTS

if TYPE_CHECKING:
    from advprior.data.motion import Skeleton

KNEE_NAMES = ("leg", "knee", "shin", "tibia", "lowerleg", "calf", "crus")
# "farm": OptiTrack Motive's LFArm / RFArm (its upper arm is LUArm, found as the parent)
ELBOW_NAMES = ("forearm", "elbow", "lowerarm", "radius", "ulna", "farm")
_CORES = set(KNEE_NAMES + ELBOW_NAMES)
# rig prefixes glued to the name once punctuation is gone, with the copy number some tools add
# (Mixamo "mixamorig1:", "mixamorig2_" for a second character in a scene; Biped "Bip001";
# Reallusion Character Creator / iClone "CC_Base_L_Calf"; VRoid / VRM "J_Bip_L_LowerLeg";
# Blender Rigify's deform "DEF-shin.L" and original "ORG-shin.L" bones; SMPL's own FBX rigs,
# and the BVHs converted from them, "m_avg_L_Knee" / "f_avg_L_Knee" for the male / female model)
_PREFIX = re.compile(r"^(?:mixamorig\d*|bip\d+|character\d*|def|org|ccbase|jbip|[mfn]avg)(?=[a-z])")
# a word saying "this is a joint", not which one (Maya rigs' "L_Knee_JNT", "knee_L_jnt",
# "Bind_L_Knee"; "LeftLegJnt"): dropped as a word of its own or a capitalised suffix
_JOINT_WORD = re.compile(r"(?:^|(?<=[_.\-\s]))(?:jnt|joint|bnd|bind)(?=$|[_.\-\s])", re.IGNORECASE)
_JOINT_SUFFIX = re.compile(r"(?<=[a-z0-9])(?:Jnt|JNT|Joint|JOINT|Bnd|Bind)$")
# Rigify's generated rigs: DEF- (deform), ORG- (the metarig's original bones, the same limbs
# unsplit) and MCH- (mechanism: IK/FK switches, parents, tweaks) bones in one armature
_RIGIFY_ORG = re.compile(r"^ORG[-_.]", re.IGNORECASE)
_RIGIFY_MCH = re.compile(r"^MCH[-_.]", re.IGNORECASE)
_SPINE = (0, 3, 6, 9, 12)
# Daz Genesis splits a limb joint into "<core>Bend" (the joint) and "<core>Twist" (a helper).
_BEND = "bend"


def normalize(name: str) -> str:
    """Lower-case alphanumerics of ``name`` without namespace, rig prefixes or a word that only
    says it is a joint (``jnt``, ``joint``, ``bnd``, ``bind``)."""
    n = re.split(r"[:|]", name)[-1]
    n = _JOINT_SUFFIX.sub("", _JOINT_WORD.sub("", n)).lower()
    n = re.sub(r"[^a-z0-9]", "", n)
    return _PREFIX.sub("", n, count=1)


def _unbent(core: str) -> str:
    """``core`` without a Genesis ``Bend`` suffix when what is left is a known joint core."""
    if core.endswith(_BEND) and core[: -len(_BEND)] in _CORES:
        return core[: -len(_BEND)]
    return core


def _known(core: str) -> str:
    """``core`` unbent (:func:`_unbent`), and without a segment number when what is left is a
    known joint core (MakeHuman's ``lowerleg01``, ``lowerarm02``); else ``core`` unchanged."""
    unbent = _unbent(core)
    if unbent in _CORES:
        return unbent
    bare = _unbent(re.sub(r"\d+$", "", core))
    return bare if bare in _CORES else unbent


def side_and_core(name: str) -> tuple[str | None, str]:
    """``("L"|"R"|None, core)`` of a joint name, e.g. ``lShin -> ("L", "shin")``,
    ``lForearmBend -> ("L", "forearm")``, ``lowerleg01.L -> ("L", "lowerleg")``,
    ``DEF-shin.L.001 -> ("L", "shin")``."""
    n = normalize(name)
    bare = re.sub(r"\d+$", "", n)
    if bare != n and side_and_core(bare)[1] in _CORES:
        # Blender's numbered copies ("DEF-shin.L.001", Rigify's second segment of a limb bone)
        return side_and_core(bare)
    for word, side in (("left", "L"), ("right", "R")):
        if n.startswith(word):
            return side, _known(n[len(word) :])
        if n.endswith(word):
            return side, _known(n[: -len(word)])
    for letter, side in (("l", "L"), ("r", "R")):
        if n.startswith(letter) and _known(n[1:]) in _CORES:
            return side, _known(n[1:])
        if n.endswith(letter) and _known(n[:-1]) in _CORES:
            return side, _known(n[:-1])
    return None, n


@dataclass(frozen=True)
class SMPLMapping:
    """Where each SMPL joint sits on the source skeleton.

    SMPL joint ``j`` is at ``(1 - alpha[j]) * pos[a[j]] + alpha[j] * pos[b[j]]`` (``a[j] = -1``:
    no counterpart) and takes its twist from the rotation of source joint ``driver[j]``.
    """

    a: np.ndarray
    b: np.ndarray
    alpha: np.ndarray
    driver: np.ndarray
    roles: dict[str, str]


def _own_name(name: str) -> str:
    """The joint's own name, without a namespace or a DAG path's ancestors."""
    return re.split(r"[:|]", name)[-1]


def _is_mechanism(sk: Skeleton, j: int) -> bool:
    """A Rigify mechanism bone (``MCH-``): it holds a rig's intermediate rotations (IK chains,
    parent switches, tweaks), never a limb's; it is not a joint, and the walks step over it."""
    return _RIGIFY_MCH.match(_own_name(sk.names[j])) is not None


def _rig_rank(sk: Skeleton, j: int) -> int:
    """0 for a deform (``DEF-``) or plain bone, 1 for a Rigify original (``ORG-``): where both
    are in one file, the deform bones (what the mesh follows) are the joints."""
    return int(_RIGIFY_ORG.match(_own_name(sk.names[j])) is not None)


def _by_core(sk: Skeleton, cores: tuple[str, ...], side: str) -> int | None:
    hits = []
    for j, name in enumerate(sk.names):
        if sk.is_end[j] or _is_mechanism(sk, j):
            continue
        s, core = side_and_core(name)
        if s == side and core in cores:
            hits.append(j)
    if not hits:
        return None
    # a joint with a joint below it before a leaf helper of the same name (Character Creator's
    # KneeShareBone-style helpers beside the limb), a deform bone before an original, then the
    # shallowest
    return min(
        hits,
        key=lambda j: (
            not any(not sk.is_end[c] for c in sk.children(j)),
            _rig_rank(sk, j),
            _depth(sk, j),
        ),
    )


def _is_twist(sk: Skeleton, j: int) -> bool:
    """A twist helper: ``twist`` anywhere in the name (Daz ``lThighTwist``, Unreal
    ``upperarm_twist_01_l``), or ``Roll`` as a word of it (MotionBuilder/HumanIK ``LeftArmRoll``,
    ``LeftUpLegRoll``; a word, so that e.g. ``Controller`` is not one)."""
    name = sk.names[j]
    # the joint's own name, as normalize() takes it: not a namespace or a DAG path's ancestors
    words = re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])", re.split(r"[:|]", name)[-1])
    return "twist" in normalize(name) or "roll" in (w.lower() for w in words) or _is_segment(sk, j)


#: Words of limb bones, for :func:`_is_segment` (not the spine's or neck's: cgspeed's Neck >
#: Neck1 and Mixamo's Spine > Spine1 are joints of their own).
_LIMB_WORDS = ("leg", "thigh", "shin", "calf", "knee", "arm", "elbow", "tibia", "femur")
_LIMB_WORDS += ("humerus", "radius", "ulna", "crus")


def _is_segment(sk: Skeleton, j: int) -> bool:
    """A limb bone's second segment: the name of its parent but for a number (MakeHuman's
    ``upperleg01.L > upperleg02.L > lowerleg01.L``, Rigify's ``DEF-shin.L > DEF-shin.L.001 >
    DEF-foot.L``). It carries the bone's twist, as a twist helper does; taking it for the next
    joint would put SMPL's ankle (or wrist) mid-shin."""
    p = int(sk.parents[j])
    if p < 0:
        return False
    me, parent = normalize(sk.names[j]), normalize(sk.names[p])
    bare = re.sub(r"\d+", "", me)
    return (
        me != parent and bare == re.sub(r"\d+", "", parent) and any(w in bare for w in _LIMB_WORDS)
    )


def _is_helper(sk: Skeleton, j: int) -> bool:
    """A bone the walks step over: a twist helper or a mechanism bone."""
    return _is_twist(sk, j) or _is_mechanism(sk, j)


def _joint_parent(sk: Skeleton, j: int) -> int:
    """The parent of ``j``, stepping over twist and mechanism bones (-1 at the root)."""
    p = int(sk.parents[j])
    while p >= 0 and _is_helper(sk, p) and sk.parents[p] >= 0:
        p = int(sk.parents[p])
    return p


def _joint_child(sk: Skeleton, j: int) -> int | None:
    """:func:`_main_child` of ``j``, stepping down over twist and mechanism bones."""
    c = _main_child(sk, j)
    while c is not None and _is_helper(sk, c) and not sk.is_end[c]:
        below = _main_child(sk, c)
        if below is None:
            break
        c = below
    return c


def _depth(sk: Skeleton, j: int) -> int:
    d = 0
    while sk.parents[j] >= 0:
        j = int(sk.parents[j])
        d += 1
    return d


def _ancestors(sk: Skeleton, j: int) -> list[int]:
    """``j`` and its ancestors, root last."""
    out = [j]
    while sk.parents[out[-1]] >= 0:
        out.append(int(sk.parents[out[-1]]))
    return out


def _main_child(sk: Skeleton, j: int) -> int | None:
    """The child carrying the largest subtree (ties: the longest offset); mechanism bones only
    when there is no other child (an IK chain may carry a larger subtree than the limb)."""
    kids = _not_mechanism(sk, sk.children(j))
    if not kids:
        return None

    def size(c: int) -> int:
        return sum(1 for k in range(sk.num_joints) if c in _ancestors(sk, k))

    return max(kids, key=lambda c: (size(c), float(np.linalg.norm(sk.offsets[c]))))


def _not_mechanism(sk: Skeleton, joints: list[int]) -> list[int]:
    """``joints`` without mechanism bones, unless that leaves none."""
    kept = [j for j in joints if not _is_mechanism(sk, j)]
    return kept or list(joints)


def _aligned_child(sk: Skeleton, j: int, direction: np.ndarray) -> int | None:
    """The child whose rest offset points most along ``direction`` (not a mechanism bone)."""
    kids = [c for c in sk.children(j) if np.linalg.norm(sk.offsets[c]) > 1e-9]
    kids = [c for c in kids if not _is_mechanism(sk, c)]
    if not kids:
        return None
    d = direction / max(np.linalg.norm(direction), 1e-12)
    return max(kids, key=lambda c: float(sk.offsets[c] @ d / np.linalg.norm(sk.offsets[c])))


# a centre-line marker as its own word: Maya Advanced Skeleton's "Head_M", VRM's "J_Bip_C_Head"
_MIDDLE = re.compile(r"^(?:m|c|mid|middle|center|centre)$", re.IGNORECASE)


def _is_head(name: str) -> bool:
    if normalize(name) == "head":
        return True
    words = [w for w in re.split(r"[^A-Za-z0-9]+", re.split(r"[:|]", name)[-1]) if w]
    rest = [w for w in words if w.lower() != "head"]
    # "head" as a word, the others a centre marker or a rig prefix ("J", "Bip"), never a side
    return len(rest) < len(words) and all(
        _MIDDLE.match(w) or normalize(w) == "" or w.lower() in ("j", "bip") for w in rest
    )


#: Blender Rigify's human metarig numbers its spine: spine (hips) > spine.001-.003 (torso) >
#: spine.004 (neck) > spine.005 (upper neck) > spine.006 (head), with ``DEF-`` on the deform
#: bones that exports hold. Neither the head nor the neck has a name that says so.
_RIGIFY_HEAD, _RIGIFY_NECK = "spine006", "spine004"


def _named(sk: Skeleton) -> dict[str, int]:
    """Normalized name -> joint (no End Sites, no mechanism bones); of a ``DEF-`` and an
    ``ORG-`` bone of the same name, the ``DEF-`` one."""
    found: dict[str, int] = {}
    for j in sorted(range(sk.num_joints), key=lambda j: _rig_rank(sk, j)):
        if not sk.is_end[j] and not _is_mechanism(sk, j):
            found.setdefault(normalize(sk.names[j]), j)
    return found


def _rigify(sk: Skeleton) -> int | None:
    """Rigify's numbered spine: the head ``spine.006`` when ``spine``, ``spine.004`` and
    ``spine.006`` are each below the last, else None."""
    found = _named(sk)
    if not {"spine", _RIGIFY_NECK, _RIGIFY_HEAD} <= set(found):
        return None
    head_path = _ancestors(sk, found[_RIGIFY_HEAD])
    if found[_RIGIFY_NECK] in head_path and found["spine"] in head_path:
        return found[_RIGIFY_HEAD]
    return None


def _head(sk: Skeleton) -> int | None:
    heads = [j for j, name in enumerate(sk.names) if _is_head(name) and not _is_mechanism(sk, j)]
    if heads:  # the first in the file, a deform bone before an original one
        return min(heads, key=lambda j: _rig_rank(sk, j))
    return _rigify(sk)


def _neck_point(rest: np.ndarray, chain: list[int], necks: list[int]) -> int:
    """Of several neck joints on the chain pelvis..head (``chain``; ``rest`` ``(J, 3)``), the
    one at SMPL's neck: nearest SMPL's fraction of the pelvis-to-head length along the spine
    (0.86: SMPL's neck is 8 cm below its head joint), the upper of two equally near.

    Names cannot say where a second neck joint is: CMU's ``lowerneck`` starts at the thorax's
    top, with the clavicles (0.61-0.73 of the way), its ``upperneck`` where SMPL's neck is
    (0.81-0.87); other rigs put their first neck joint there and a second mid-neck. Taking
    the upper one on those put SMPL's neck mid-neck and bent spine1..3 and the collars at
    rest by up to 22 degrees."""
    seg = np.linalg.norm(np.diff(rest[chain], axis=0), axis=1)
    total = max(float(seg.sum()), 1e-12)
    along = {j: float(seg[: chain.index(j)].sum()) / total for j in necks}
    smpl = np.linalg.norm(np.diff(REST_JOINTS[[*_SPINE, 15]], axis=0), axis=1)
    goal = float(smpl[:-1].sum() / smpl.sum())
    # reversed: of equally near joints the upper (the rule before there was a choice) wins
    return min(reversed(necks), key=lambda j: abs(along[j] - goal))


def map_to_smpl(sk: Skeleton, path: object = None) -> SMPLMapping:
    """Find SMPL's joints on ``sk``; raise :class:`MotionFormatError` listing what is missing."""
    from advprior.errors import MotionFormatError

    n = 24
    point = np.full(n, -1)
    rest = sk.rest_positions()
    roles: dict[str, int] = {}
    missing = []
    head = _head(sk)
    if head is None:
        missing.append("head (a joint named Head)")
    for side, hip, knee, ankle, shoulder, elbow, wrist, hand in (
        ("L", 1, 4, 7, 16, 18, 20, 22),
        ("R", 2, 5, 8, 17, 19, 21, 23),
    ):
        word = "left" if side == "L" else "right"
        k = _by_core(sk, KNEE_NAMES, side)
        if k is None or _joint_parent(sk, k) < 0:
            missing.append(
                f"{word} knee (e.g. {word.title()}Leg, {word.title()}Knee, "
                f"{side.lower()}Shin, {side.lower()}tibia)"
            )
        else:
            point[knee], point[hip] = k, _joint_parent(sk, k)
            a = _joint_child(sk, k)
            if a is None or sk.is_end[a]:
                missing.append(f"{word} ankle (a joint below the {word} knee)")
            else:
                point[ankle] = a
        e = _by_core(sk, ELBOW_NAMES, side)
        if e is None or _joint_parent(sk, e) < 0:
            missing.append(
                f"{word} elbow (e.g. {word.title()}ForeArm, {word.title()}Elbow, "
                f"{side.lower()}ForeArm, {side.lower()}radius)"
            )
        else:
            point[elbow], point[shoulder] = e, _joint_parent(sk, e)
            w = _joint_child(sk, e)
            if w is not None:
                point[wrist] = w
                h = _aligned_child(sk, w, rest[w] - rest[e])
                if h is not None:
                    point[hand] = h
            roles[f"{side}_collar_candidate"] = _joint_parent(sk, int(point[shoulder]))
    if missing:
        raise MotionFormatError(
            "cannot map the skeleton onto SMPL; unmapped required joints: "
            + "; ".join(missing)
            + ". Joint names in the file: "
            + ", ".join(n for n, e in zip(sk.names, sk.is_end, strict=True) if not e),
            path,
        )

    # Toes: prefer a real joint below the ankle, else the ankle's end site.
    for ankle, foot in ((7, 10), (8, 11)):
        kids = _not_mechanism(sk, sk.children(int(point[ankle])))
        joints = [c for c in kids if not sk.is_end[c]]
        pick = joints or kids
        if pick:
            point[foot] = max(pick, key=lambda c: float(np.linalg.norm(sk.offsets[c])))

    anc = [set(_ancestors(sk, int(point[1]))), set(_ancestors(sk, int(point[2])))]
    head_path = _ancestors(sk, head)
    pelvis = next((j for j in head_path if j in anc[0] and j in anc[1]), None)
    if pelvis is None:
        raise MotionFormatError("cannot find the pelvis (common ancestor of legs and head)", path)
    point[0] = pelvis
    chain = head_path[: head_path.index(pelvis) + 1][::-1]  # pelvis ... head
    rigify_neck = _RIGIFY_NECK if normalize(sk.names[head]) == _RIGIFY_HEAD else "neck"
    necks = [
        j for j in chain[1:-1] if rigify_neck in normalize(sk.names[j]) and not _is_mechanism(sk, j)
    ]
    # twist helpers are not the neck unless all are (Character Creator's NeckTwist01 >
    # NeckTwist02 > Head: the first starts at the neck's base)
    joints = [j for j in necks if not _is_twist(sk, j)]
    neck_driver = joints[-1] if joints else necks[0] if necks else chain[-2]
    neck = _neck_point(rest, chain, joints) if len(joints) > 1 else neck_driver
    point[12], point[15] = neck, head
    spine = set(chain)
    for side, collar in (("L", 13), ("R", 14)):
        c = roles.pop(f"{side}_collar_candidate")
        if c not in spine and c >= 0:
            point[collar] = c

    a, b = point.copy(), point.copy()
    alpha = np.zeros(n)
    driver = np.where(point >= 0, point, -1)
    # the top neck joint carries the whole neck chain's rotation (every neck joint's composed);
    # the head turns relative to it
    driver[12] = neck_driver
    # A limb bone split by twist helpers twists in its last helper: that one's global rotation
    # holds the joint's rotation and the bone's twist, so it drives the SMPL joint.
    for j, c in ((1, 4), (2, 5), (4, 7), (5, 8), (16, 18), (17, 19), (18, 20), (19, 21)):
        if point[j] >= 0 and point[c] >= 0:
            helper = int(sk.parents[point[c]])
            if helper != point[j] and _is_twist(sk, helper):
                driver[j] = helper
    # Spine1-3 on the source chain pelvis..neck at SMPL's rest arc-length fractions.
    # mechanism bones on the chain (a generated rig's spine switches) are neither points nor
    # drivers: their rotations are a rig's intermediates
    spine_chain = chain[: chain.index(neck) + 1]
    spine_chain = [j for j in spine_chain if j in (pelvis, neck) or not _is_mechanism(sk, j)]
    seg = np.linalg.norm(np.diff(rest[spine_chain], axis=0), axis=1)
    if len(seg) == 0 or seg.sum() < 1e-9:
        raise MotionFormatError("the neck coincides with the pelvis; no spine to map", path)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    smpl_seg = np.linalg.norm(np.diff(REST_JOINTS[list(_SPINE)], axis=0), axis=1)
    smpl_cum = np.cumsum(smpl_seg) / smpl_seg.sum()
    for j, f in zip(_SPINE[1:4], smpl_cum[:3], strict=True):
        s = f * cum[-1]
        k = int(np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1))
        # Skip zero-length segments (an ASF root and lowerback share a point).
        while seg[k] < 1e-9 and k + 1 < len(seg):
            k += 1
        frac = float(np.clip((s - cum[k]) / max(seg[k], 1e-12), 0.0, 1.0))
        if frac > 1.0 - 1e-6 and k + 1 < len(seg):
            # On a joint: that joint, not the segment below it, drives the twist.
            k, frac = k + 1, 0.0
        a[j], b[j] = spine_chain[k], spine_chain[k + 1]
        alpha[j] = frac
        driver[j] = spine_chain[k]
    named = {JOINT_NAMES[j]: sk.names[int(point[j])] for j in range(n) if point[j] >= 0}
    return SMPLMapping(a=a, b=b, alpha=alpha, driver=driver, roles=named)
