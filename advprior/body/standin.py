"""The open stand-in body: a skinned capsule mesh on SMPL's skeleton, in SMPL's model format.

Everything here is generated, deterministically, from the joint table in
:mod:`advprior.skeleton` and the hand-picked radii below; no licensed file was used. The body is a
set of closed tubes (torso, neck, head, arms with hands, legs, feet, thumbs, nose), each a
sequence of elliptical rings swept along a polyline of joint-anchored *stations* and closed by
half-ellipsoid caps. Frame: y up, x to the body's left, the body faces +z; metres.

Contract with SMPL's format (checked by the tests):

- every joint has one ring centred exactly on it; the ``J_regressor`` row of that joint averages
  that ring, so it reproduces :data:`~advprior.skeleton.REST_JOINTS` (to float precision) and
  follows the joints when the shape changes;
- ``shapedirs`` (V, 3, 10) move each vertex with the joints its ring is anchored to plus a
  growth of its offset from the tube axis, so every joint ring stays centred on its joint;
- ``weights`` are linear-blend-skinning weights that hand over smoothly between the two joints
  that meet at each knot; ``posedirs`` are zeros (no pose corrective shapes).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from smplx.vertex_ids import vertex_ids as _SMPLX_VERTEX_IDS

from advprior.fileio import expand_home, portable_pickle, write_atomic
from advprior.skeleton import NUM_JOINTS, PARENTS, REST_JOINTS

__all__ = [
    "STANDIN_VERSION",
    "SHAPE_NAMES",
    "build_standin",
    "smpl_layout",
    "standin_path",
    "standin_folder",
    "cache_dir",
    "SMPL_NUM_VERTICES",
    "SMPL_VERTEX_IDS",
]

#: SMPL's (and SMPL-H's) vertex count.
SMPL_NUM_VERTICES = 6890
#: The SMPL/SMPL-H mesh indices of the vertices smplx turns into extra joints (read from smplx:
#: its ``vertex_ids["smplh"]`` table, the default of ``smplx.create(..., model_type="smpl")``).
SMPL_VERTEX_IDS: dict[str, int] = {k: int(v) for k, v in _SMPLX_VERTEX_IDS["smplh"].items()}
_GENDERS = ("NEUTRAL", "MALE", "FEMALE")

#: Bumped whenever the generated geometry changes; part of the cached file's name.
STANDIN_VERSION = 1

#: What each of the 10 shape coefficients does (+1 = the stated direction).
SHAPE_NAMES: tuple[str, ...] = (
    "stature (uniform scale, about +4% per unit)",
    "weight (girth of torso and limbs)",
    "leg length",
    "arm length",
    "torso length",
    "shoulder width",
    "hip width",
    "head size",
    "belly and chest depth",
    "limb muscle against torso girth",
)

_LEFT_RIGHT = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21, 22: 23}
_MIRROR = list(range(NUM_JOINTS))
for _l, _r in _LEFT_RIGHT.items():
    _MIRROR[_l], _MIRROR[_r] = _r, _l

_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])
_Z = np.array([0.0, 0.0, 1.0])


@dataclass
class _Station:
    """A ring centre ``(1 - u) * J[a] + u * J[b] + offset`` with half-axes ``ra`` (along the
    tube's reference direction) and ``rb``. A *knot* is the ring of joint ``a``: skinning hands
    over there and the joint is regressed from it. Stations exactly on a joint are knots unless
    ``at_joint`` says otherwise; an offset knot (its offset must lie in the ring's plane) is
    regressed with weights that put the weighted centroid back on the joint."""

    a: int
    ra: float
    rb: float
    b: int | None = None
    u: float = 0.0
    offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    at_joint: bool | None = None

    @property
    def knot(self) -> bool:
        if self.at_joint is not None:
            return self.at_joint
        return (self.b is None or self.u == 0.0) and not any(self.offset)

    def coef(self) -> np.ndarray:
        c = np.zeros(NUM_JOINTS)
        c[self.a] += 1.0 - (self.u if self.b is not None else 0.0)
        if self.b is not None:
            c[self.b] += self.u
        return c

    def mirrored(self) -> _Station:
        ox, oy, oz = self.offset
        b = None if self.b is None else _MIRROR[self.b]
        return _Station(_MIRROR[self.a], self.ra, self.rb, b, self.u, (-ox, oy, oz), self.at_joint)


@dataclass
class _Tube:
    """A closed tube through ``stations``; ``owner`` skins the part before its first knot.
    ``tangent``, when given, fixes every ring's normal (else it follows the polyline)."""

    name: str
    region: str
    stations: list[_Station]
    ref: np.ndarray
    owner: int
    n: int = 16
    caps: tuple[float, float] = (0.03, 0.03)
    tangent: np.ndarray | None = None
    spacing: float = 0.022
    regress: tuple[int, ...] = ()

    def mirrored(self) -> _Tube:
        flip = np.array([-1.0, 1.0, 1.0])
        return _Tube(
            self.name.replace("left", "right"),
            self.region,
            [s.mirrored() for s in self.stations],
            self.ref * flip,
            _MIRROR[self.owner],
            self.n,
            self.caps,
            None if self.tangent is None else self.tangent * flip,
            self.spacing,
            tuple(_MIRROR[j] for j in self.regress),
        )


def _body_plan() -> list[_Tube]:
    """The tubes of the stand-in. Radii in metres, chosen to give roughly SMPL's neutral
    silhouette (1.7 m tall, 0.34 m hips, 0.42 m shoulders)."""
    S = _Station

    def torso_ring(
        a: int,
        front: float,
        back: float,
        width: float,
        b: int | None = None,
        u: float = 0.0,
        dy: float = 0.0,
        knot: bool = False,
    ) -> _Station:
        """A horizontal torso ring spanning z in [back, front] (absolute, metres)."""
        anchor = REST_JOINTS[a] if b is None else (1 - u) * REST_JOINTS[a] + u * REST_JOINTS[b]
        dz = 0.5 * (front + back) - anchor[2]
        return S(a, 0.5 * (front - back), width, b, u, (0.0, dy, dz), at_joint=knot)

    # SMPL's spine joints zigzag in depth (spine3 sits 4 cm ahead of the neck), so the torso's
    # rings are horizontal and centred on the body, not on the joints; the joint rings are
    # regressed with weights that land on the joints exactly
    torso = _Tube(
        "torso",
        "torso",
        [
            torso_ring(0, 0.082, -0.104, 0.125, dy=-0.105),
            torso_ring(0, 0.102, -0.104, 0.160, knot=True),
            torso_ring(3, 0.102, -0.090, 0.140, knot=True),
            torso_ring(6, 0.110, -0.088, 0.140, knot=True),
            torso_ring(9, 0.120, -0.088, 0.152, knot=True),
            torso_ring(9, 0.118, -0.092, 0.168, b=12, u=0.47),
            torso_ring(9, 0.070, -0.086, 0.128, b=12, u=0.82),
            torso_ring(12, 0.036, -0.066, 0.060, knot=True),
        ],
        ref=_Z,
        owner=0,
        n=24,
        caps=(0.035, 0.02),
        tangent=_Y,
        regress=(0, 3, 6, 9),
    )
    neck = _Tube(
        "neck",
        "neck",
        [S(12, 0.050, 0.055), S(12, 0.047, 0.050, b=15, u=0.5), S(15, 0.050, 0.050)],
        ref=_Z,
        owner=9,
        caps=(0.03, 0.03),
        regress=(12, 15),
    )
    head = _Tube(
        "head",
        "head",
        [S(15, 0.098, 0.080, offset=(0.0, 0.088, 0.018))],
        ref=_Z,
        owner=15,
        n=20,
        caps=(0.118, 0.118),
        tangent=_Y,
        spacing=0.02,
    )
    nose = _Tube(
        "nose",
        "head",
        [
            S(15, 0.014, 0.011, offset=(0.0, 0.082, 0.096)),
            S(15, 0.010, 0.008, offset=(0.0, 0.062, 0.124)),
        ],
        ref=_Y,
        owner=15,
        n=8,
        caps=(0.005, 0.008),
    )
    left_arm = _Tube(
        "left_arm",
        "arm",
        [
            S(13, 0.046, 0.046),
            S(16, 0.056, 0.054),
            S(16, 0.048, 0.047, b=18, u=0.45),
            S(18, 0.038, 0.040),
            S(18, 0.039, 0.041, b=20, u=0.35),
            S(20, 0.022, 0.032),
            S(20, 0.018, 0.043, b=22, u=0.6),
            S(22, 0.015, 0.044),
            S(22, 0.010, 0.038, offset=(0.085, 0.0, 0.0)),
        ],
        ref=_Y,
        owner=9,
        caps=(0.03, 0.012),
        regress=(13, 16, 18, 20, 22),
    )
    left_thumb = _Tube(
        "left_thumb",
        "hand",
        [
            S(20, 0.013, 0.014, offset=(0.025, -0.008, 0.022)),
            S(20, 0.010, 0.010, offset=(0.075, -0.012, 0.062)),
        ],
        ref=_Y,
        owner=20,
        n=10,
        caps=(0.01, 0.01),
    )
    left_leg = _Tube(
        "left_leg",
        "leg",
        [
            S(1, 0.085, 0.080),
            S(1, 0.078, 0.074, b=4, u=0.3),
            S(1, 0.060, 0.058, b=4, u=0.78),
            S(4, 0.052, 0.050),
            S(4, 0.055, 0.050, b=7, u=0.3),
            S(4, 0.040, 0.038, b=7, u=0.75),
            S(7, 0.034, 0.036),
        ],
        ref=_Z,
        owner=0,
        caps=(0.05, 0.035),
        regress=(1, 4, 7),
    )
    left_foot = _Tube(
        "left_foot",
        "foot",
        [
            S(7, 0.030, 0.033, offset=(-0.004, -0.062, -0.040)),
            S(10, 0.026, 0.046),
            S(10, 0.016, 0.040, offset=(0.004, -0.012, 0.062)),
        ],
        ref=_Y,
        owner=7,
        caps=(0.03, 0.02),
        regress=(10,),
    )
    left = [left_arm, left_thumb, left_leg, left_foot]
    return [torso, neck, head, nose, *left, *(t.mirrored() for t in left)]


@dataclass
class _Mesh:
    verts: list[np.ndarray] = field(default_factory=list)
    coef: list[np.ndarray] = field(default_factory=list)  # axis point = coef @ J + offset
    offset: list[np.ndarray] = field(default_factory=list)
    weights: list[np.ndarray] = field(default_factory=list)
    region: list[str] = field(default_factory=list)
    part: list[str] = field(default_factory=list)
    faces: list[np.ndarray] = field(default_factory=list)
    regress: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    count: int = 0


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _skin(s: float, knots: list[tuple[float, int, int, float]], owner: int) -> np.ndarray:
    """Weights at arc length ``s``: the owner of the span, blended across the nearest knot.
    ``knots`` holds ``(s_k, joint before, joint after, half-width)`` in increasing ``s_k``."""
    w = np.zeros(NUM_JOINTS)
    current = owner
    for sk, _, after, _ in knots:
        if s >= sk:
            current = after
    w[current] = 1.0
    for sk, before, after, h in knots:
        if abs(s - sk) < h and before != after:
            t = float(_smoothstep(np.array((s - sk + h) / (2 * h))))
            w[:] = 0.0
            w[before] += 1.0 - t
            w[after] += t
    return w


def _add_tube(mesh: _Mesh, tube: _Tube, joints: np.ndarray) -> None:
    st = tube.stations
    centres = np.stack([s.coef() @ joints + np.asarray(s.offset) for s in st])
    if tube.tangent is not None:
        tangents = [_unit(np.asarray(tube.tangent, dtype=float))] * len(st)
    else:
        seg = np.diff(centres, axis=0)
        seg /= np.linalg.norm(seg, axis=1, keepdims=True)
        tangents = [seg[0]] + [_unit(seg[i - 1] + seg[i]) for i in range(1, len(st) - 1)]
        tangents.append(seg[-1])

    # rings: (centre, tangent, ra, rb, coef, offset, arc length, joint regressed here or None)
    rings: list[tuple] = []
    s_acc = 0.0
    knots: list[tuple[float, int, int, float]] = []
    prev_owner = tube.owner
    station_s = [0.0]
    for i in range(1, len(st)):
        station_s.append(station_s[-1] + float(np.linalg.norm(centres[i] - centres[i - 1])))
    for i, s in enumerate(st):
        if s.knot:
            spans = [station_s[i] - station_s[i - 1]] if i > 0 else []
            if i + 1 < len(st):
                spans.append(station_s[i + 1] - station_s[i])
            h = min([0.6 * 0.5 * (s.ra + s.rb)] + [0.45 * x for x in spans])
            knots.append((station_s[i], prev_owner, s.a, h))
            prev_owner = s.a
    for i in range(len(st)):
        last = i == len(st) - 1
        steps = 1 if last else max(1, math.ceil((station_s[i + 1] - station_s[i]) / tube.spacing))
        for k in range(steps):
            w = k / steps
            j = i if k == 0 else None
            nxt = i if last else i + 1
            ra = _spline([x.ra for x in st], i, w)
            rb = _spline([x.rb for x in st], i, w)
            coef = (1 - w) * st[i].coef() + w * st[nxt].coef()
            off = _spline([np.asarray(x.offset) for x in st], i, w)
            t = _unit((1 - w) * tangents[i] + w * tangents[nxt])
            s_acc = (1 - w) * station_s[i] + w * station_s[nxt]
            joint = st[i].a if (j is not None and st[i].knot) else None
            rings.append((coef @ joints + off, t, ra, rb, coef, off, s_acc, joint))

    def cap(end: tuple, direction: float, length: float, m: int = 4) -> list[tuple]:
        centre, t, ra, rb, coef, off, s0, _ = end
        out = []
        for k in range(1, m + 1):
            phi = 0.5 * math.pi * k / m
            c = centre + direction * t * length * math.sin(phi)
            out.append(
                (
                    c,
                    t,
                    ra * math.cos(phi),
                    rb * math.cos(phi),
                    coef,
                    off,
                    s0 + direction * length * math.sin(phi),
                    None,
                )
            )
        return out

    start = cap(rings[0], -1.0, tube.caps[0])[::-1]
    end = cap(rings[-1], 1.0, tube.caps[1])
    rings = start + rings + end

    n = tube.n
    theta = 2.0 * math.pi * np.arange(n) / n
    cos, sin = np.cos(theta), np.sin(theta)
    ring_ids: list[np.ndarray] = []
    for centre, t, ra, rb, coef, off, s_arc, joint in rings:
        pole = ra < 1e-9
        u = _unit(tube.ref - (tube.ref @ t) * t)
        v = np.cross(t, u)
        pts = centre[None] if pole else centre + ra * cos[:, None] * u + rb * sin[:, None] * v
        ids = np.arange(mesh.count, mesh.count + len(pts))
        mesh.count += len(pts)
        m = len(pts)
        mesh.verts.append(pts)
        mesh.coef.append(np.broadcast_to(coef, (m, NUM_JOINTS)))
        mesh.offset.append(np.broadcast_to(off, (m, 3)))
        mesh.weights.append(np.broadcast_to(_skin(s_arc, knots, tube.owner), (m, NUM_JOINTS)))
        mesh.region += [tube.region] * m
        mesh.part += [tube.name] * m
        if joint is not None and joint in tube.regress and joint not in mesh.regress:
            mesh.regress[joint] = (ids, _ring_regressor(joints[joint] - centre, t, u, v, ra, rb, n))
        ring_ids.append(ids)

    for lo, hi in zip(ring_ids[:-1], ring_ids[1:], strict=True):
        if len(lo) == 1:
            k = np.arange(n)
            mesh.faces.append(np.stack([np.full(n, lo[0]), hi[(k + 1) % n], hi[k]], 1))
        elif len(hi) == 1:
            k = np.arange(n)
            mesh.faces.append(np.stack([lo[k], lo[(k + 1) % n], np.full(n, hi[0])], 1))
        else:
            k = np.arange(n)
            a, b, c, d = lo[k], lo[(k + 1) % n], hi[(k + 1) % n], hi[k]
            mesh.faces.append(np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]))


def _ring_regressor(
    delta: np.ndarray, t: np.ndarray, u: np.ndarray, v: np.ndarray, ra: float, rb: float, n: int
) -> np.ndarray:
    """Weights ``(n,)`` over a ring of ``n`` evenly spaced points (half-axes ``ra`` along ``u``,
    ``rb`` along ``v``) whose weighted centroid is the ring centre plus the in-plane ``delta``.
    Uses sum(cos^2) = n/2 and sum(cos) = sum(sin) = sum(cos sin) = 0 over the ring."""
    if abs(delta @ t) > 1e-9:
        raise RuntimeError("a joint ring's offset from its joint must lie in the ring's plane")
    theta = 2.0 * math.pi * np.arange(n) / n
    w = (1.0 + 2.0 * (delta @ u) / ra * np.cos(theta) + 2.0 * (delta @ v) / rb * np.sin(theta)) / n
    if w.min() <= 0:
        raise RuntimeError("a joint lies too far from the centre of its ring")
    return w


def _spline(values: list, i: int, w: float):
    """Catmull-Rom interpolation of ``values`` between items ``i`` and ``i + 1`` (ends
    clamped): radii and offsets then change slope smoothly at the stations, which keeps the
    shading free of bands."""
    if w == 0.0 or i + 1 >= len(values):
        return values[i]
    p0, p1 = values[max(i - 1, 0)], values[i]
    p2, p3 = values[i + 1], values[min(i + 2, len(values) - 1)]
    m1, m2 = 0.5 * (p2 - p0), 0.5 * (p3 - p1)
    w2, w3 = w * w, w * w * w
    return (
        (2 * w3 - 3 * w2 + 1) * p1
        + (w3 - 2 * w2 + w) * m1
        + (-2 * w3 + 3 * w2) * p2
        + (w3 - w2) * m2
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def _scaled_joints(scale: dict[int, float | np.ndarray]) -> np.ndarray:
    """Joint displacement ``(24, 3)`` when the offset of joint ``j`` from its parent grows by
    ``scale[j]`` (a factor, or per-axis factors); children follow their parents."""
    delta = np.zeros((NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        delta[j] = delta[p] + np.asarray(scale.get(j, 0.0)) * (REST_JOINTS[j] - REST_JOINTS[p])
    return delta


def _shapedirs(verts: np.ndarray, coef: np.ndarray, offset: np.ndarray, region: np.ndarray):
    """The 10 shape directions ``(V, 3, 10)``, metres per unit coefficient."""
    axis = coef @ REST_JOINTS + offset
    radial = verts - axis

    def grow(by_region: dict[str, float | tuple[float, float, float]]) -> np.ndarray:
        g = np.zeros_like(verts)
        for name, amount in by_region.items():
            g[region == name] = amount
        return g * radial

    def moved(delta_j: np.ndarray) -> np.ndarray:
        return coef @ delta_j

    lr = lambda pairs, k: {j: k for pair in pairs for j in pair}  # noqa: E731
    head = region == "head"
    dirs = [
        0.04 * (verts - REST_JOINTS[0]),
        grow({"torso": 0.12, "arm": 0.10, "leg": 0.10, "neck": 0.08, "hand": 0.03, "foot": 0.03})
        + moved(_scaled_joints(lr([(1, 2)], np.array([0.08, 0.0, 0.0])))),
        moved(_scaled_joints(lr([(4, 5), (7, 8)], 0.07))),
        moved(_scaled_joints(lr([(18, 19), (20, 21), (22, 23)], 0.07))),
        moved(_scaled_joints(lr([(3,), (6,), (9,), (12,)], 0.07))),
        moved(_scaled_joints({**lr([(13, 14)], np.array([0.25, 0.0, 0.0])), 16: 0.12, 17: 0.12}))
        + grow({"torso": (0.04, 0.0, 0.0)}),
        moved(_scaled_joints(lr([(1, 2)], np.array([0.15, 0.0, 0.0]))))
        + grow({"torso": (0.05, 0.0, 0.0), "leg": 0.03}),
        moved(_scaled_joints({15: 0.10})) + grow({"head": 0.09}) + 0.09 * offset * head[:, None],
        grow({"torso": (0.0, 0.0, 0.16)}),
        grow({"arm": 0.12, "leg": 0.10, "torso": -0.04}),
    ]
    return np.stack(dirs, axis=-1)


def _nearest(verts: np.ndarray, mask: np.ndarray, target: np.ndarray) -> int:
    ids = np.flatnonzero(mask)
    return int(ids[np.argmin(np.linalg.norm(verts[ids] - target, axis=1))])


def _vertex_ids(verts: np.ndarray, part: np.ndarray) -> dict[str, int]:
    """smplx's extra-joint selectors (nose, eyes, ears, toes, heels, fingertips) for this mesh."""
    J = REST_JOINTS
    head_c = J[15] + np.array([0.0, 0.088, 0.018])
    ids = {
        "nose": _nearest(verts, part == "nose", head_c + np.array([0.0, -0.03, 0.2])),
        "leye": _nearest(verts, part == "head", head_c + np.array([0.034, 0.012, 0.1])),
        "reye": _nearest(verts, part == "head", head_c + np.array([-0.034, 0.012, 0.1])),
        "lear": _nearest(verts, part == "head", head_c + np.array([0.1, -0.005, -0.005])),
        "rear": _nearest(verts, part == "head", head_c + np.array([-0.1, -0.005, -0.005])),
    }
    for side, sign, wrist, hand, ankle, toe in (("l", 1, 20, 22, 7, 10), ("r", -1, 21, 23, 8, 11)):
        arm, thumb = (
            part == f"{'left' if sign > 0 else 'right'}_arm",
            part == (f"{'left' if sign > 0 else 'right'}_thumb"),
        )
        tip = J[hand] + np.array([sign * 0.11, 0.0, 0.0])
        ids[f"{side}thumb"] = _nearest(verts, thumb, J[wrist] + np.array([sign * 0.2, -0.03, 0.2]))
        for name, z in (("index", 0.03), ("middle", 0.01), ("ring", -0.01), ("pinky", -0.03)):
            ids[f"{side}{name}"] = _nearest(verts, arm, tip + np.array([0.0, 0.0, z]))
        foot = part == f"{'left' if sign > 0 else 'right'}_foot"
        up = side.upper()
        front = J[toe] + np.array([0.0, -0.02, 0.1])
        ids[f"{up}BigToe"] = _nearest(verts, foot, front + np.array([-sign * 0.02, 0.0, 0.0]))
        ids[f"{up}SmallToe"] = _nearest(verts, foot, front + np.array([sign * 0.035, 0.0, -0.02]))
        ids[f"{up}Heel"] = _nearest(verts, foot, J[ankle] + np.array([0.0, -0.12, -0.1]))
    return ids


def build_standin() -> dict[str, object]:
    """Generate the stand-in body as an SMPL-format dict (the keys of SMPL's ``.pkl``).

    Returns ``v_template (V, 3)``, ``f (F, 3) uint32``, ``weights (V, 24)``,
    ``J_regressor (24, V)``, ``J (24, 3)``, ``kintree_table (2, 24)``, ``shapedirs (V, 3, 10)``,
    ``posedirs (V, 3, 207)`` (zeros), plus ``vertex_ids`` (smplx's extra-joint selectors for
    this mesh) and ``advprior_standin_version``. Float arrays are float64; deterministic.
    """
    mesh = _Mesh()
    for tube in _body_plan():
        _add_tube(mesh, tube, REST_JOINTS)
    verts = np.concatenate(mesh.verts)
    coef, offset = np.concatenate(mesh.coef), np.concatenate(mesh.offset)
    region, part = np.asarray(mesh.region), np.asarray(mesh.part)
    if sorted(mesh.regress) != list(range(NUM_JOINTS)):
        missing = sorted(set(range(NUM_JOINTS)) - set(mesh.regress))
        raise RuntimeError(f"stand-in body plan has no ring on joints {missing}")
    regressor = np.zeros((NUM_JOINTS, len(verts)))
    for j, (ids, w) in mesh.regress.items():
        regressor[j, ids] = w
    kintree = np.array([[-1, *PARENTS[1:]], list(range(NUM_JOINTS))], dtype=np.int64)
    return {
        "v_template": verts,
        "f": np.concatenate(mesh.faces).astype(np.uint32),
        "weights": np.concatenate(mesh.weights),
        "J_regressor": regressor,
        "J": regressor @ verts,
        "kintree_table": kintree,
        "shapedirs": _shapedirs(verts, coef, offset, region),
        "posedirs": np.zeros((len(verts), 3, 9 * (NUM_JOINTS - 1)), dtype=np.float32),
        "vertex_ids": _vertex_ids(verts, part),
        "advprior_standin_version": STANDIN_VERSION,
        "advprior_parts": part,
    }


def cache_dir() -> Path:
    """``$ADVPRIOR_CACHE`` or ``~/.cache/advprior``."""
    root = os.environ.get("ADVPRIOR_CACHE")
    return expand_home(root) if root else Path.home() / ".cache" / "advprior"


def standin_path(*, refresh: bool = False) -> Path:
    """Path of the stand-in's SMPL-format ``.pkl`` in the cache, generated on first use.

    The file is an ordinary SMPL model file (``smplx.create(path)`` loads it). A pickle is not
    safe to trust, so the file is checked on every call: its bytes must equal those generated
    here (compared by sha256), else it is rewritten (atomically). ``load_body_model()`` never
    reads it (it generates the body in memory). ``refresh`` is kept for compatibility; the
    check makes it unnecessary. The :data:`STANDIN_VERSION` is part of the folder name.
    """
    path = standin_file()
    blob = portable_pickle(build_standin())
    if refresh or not path.is_file() or _sha256(path) != hashlib.sha256(blob).hexdigest():
        _write_cache(path, blob)
    return path


def standin_file() -> Path:
    """Where :func:`standin_path` keeps the stand-in's SMPL-format file (nothing is written)."""
    return cache_dir() / "body" / f"standin-v{STANDIN_VERSION}" / "SMPL_NEUTRAL.pkl"


def _write_cache(path: Path, blob: bytes) -> None:
    try:
        write_atomic(path, lambda fh: fh.write(blob))
    except OSError as err:
        raise type(err)(
            err.errno,
            f"{err.strerror or err}; set ADVPRIOR_CACHE to a writable folder for the stand-in's "
            "model files",
        ) from err


def _split_faces(
    verts: np.ndarray, faces: np.ndarray, per_vertex: list[np.ndarray], count: int
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Add ``count`` vertices to a mesh, each at the centroid of one triangle, which it splits
    into three (same winding; the original face keeps its index and becomes the first of the
    three, the other two are appended).

    Each new vertex takes the mean of its triangle's rows of every array in ``per_vertex``
    (skinning weights, shape and pose directions), so it stays on the surface as the body
    moves. Faces are chosen at evenly spaced indices, not by size, so the result does not
    depend on float rounding; if ``count`` is more than the faces, it repeats on the refined
    mesh. Returns ``(verts, faces, per_vertex)``; the old vertices keep their indices.
    """
    faces = np.asarray(faces, dtype=np.int64)
    while count > 0:
        k = min(count, len(faces))
        pick = (np.arange(k) * len(faces)) // k
        tri = faces[pick]
        new = len(verts) + np.arange(k)
        verts = np.concatenate([verts, verts[tri].mean(axis=1)])
        per_vertex = [np.concatenate([a, a[tri].mean(axis=1).astype(a.dtype)]) for a in per_vertex]
        a, b, c = tri.T
        faces = faces.copy()
        faces[pick] = np.stack([a, b, new], axis=1)
        split = [np.stack([b, c, new], axis=1), np.stack([c, a, new], axis=1)]
        faces = np.concatenate([faces, *split])
        count -= k
    return verts, faces, per_vertex


def smpl_layout(
    data: dict[str, object],
    *,
    num_vertices: int = SMPL_NUM_VERTICES,
    vertex_ids: dict[str, int] | None = None,
) -> dict[str, object]:
    """The stand-in (``build_standin()`` output) with SMPL's vertex count and landmark indices:
    6890 vertices, the landmark vertex of each of smplx's extra joints at SMPL's index for it
    (:data:`SMPL_VERTEX_IDS`), so plain smplx code (default ``vertex_ids``) finds the nose, eyes,
    ears, toes, heels and fingertips on it. ``num_vertices`` and ``vertex_ids`` give another
    mesh's layout (SMPL-X's: 10475 and smplx's ``vertex_ids["smplx"]``).

    The body is the same: same surface, skinning, shape directions and joint regressor, so
    every joint and landmark lands exactly where the compact stand-in puts it. The stand-in has
    fewer vertices than SMPL; the others are added on its surface (:func:`_split_faces`: each
    at a triangle's centroid, skinned as the triangle, zero regressor weight), so every vertex
    is distinct and in a face (a mesh library that merges duplicate or drops unreferenced
    vertices on export keeps all 6890). Only the landmark indices are SMPL's: any other SMPL
    vertex index (anthropometric landmarks, marker sets, vertex-based joint regressors) points
    somewhere else on this body. Only plain numpy arrays and strings (no ``vertex_ids`` dict);
    ``bs_type`` / ``bs_style`` as SMPL's own files have them, for SMPL's original loader.
    """
    verts = np.asarray(data["v_template"])
    n_old, n_new = len(verts), num_vertices
    if n_old > n_new:
        raise RuntimeError(f"the stand-in has {n_old} vertices, more than the layout's {n_new}")
    verts, faces, (weights, shapedirs, posedirs) = _split_faces(
        verts,
        np.asarray(data["f"]),
        [np.asarray(data[k]) for k in ("weights", "shapedirs", "posedirs")],
        n_new - n_old,
    )
    order = np.full(n_new, -1, dtype=np.int64)  # slot -> vertex
    own = data["vertex_ids"]
    for name, slot in (SMPL_VERTEX_IDS if vertex_ids is None else vertex_ids).items():
        order[slot] = own[name]
    placed = set(order[order >= 0].tolist())
    # the stand-in's own vertices first, in order, then the added ones
    order[order < 0] = [v for v in range(n_new) if v not in placed]
    slot_of = np.empty(n_new, dtype=np.int64)
    slot_of[order] = np.arange(n_new)
    regressor = np.zeros((NUM_JOINTS, n_new), dtype=np.asarray(data["J_regressor"]).dtype)
    regressor[:, :n_old] = np.asarray(data["J_regressor"])
    regressor = regressor[:, order]
    return {
        "v_template": verts[order],
        "f": slot_of[faces].astype(np.uint32),
        "weights": weights[order],
        "J_regressor": regressor,
        "J": regressor @ verts[order],
        "kintree_table": np.asarray(data["kintree_table"]),
        "shapedirs": shapedirs[order],
        "posedirs": posedirs[order],
        "bs_type": "lrotmin",
        "bs_style": "lbs",
        "advprior_standin_version": np.asarray(STANDIN_VERSION, dtype=np.int64),
    }


@functools.lru_cache(maxsize=1)
def _smpl_file_bytes() -> bytes:
    """The pickle of :func:`smpl_layout` of the stand-in (deterministic; built once per process)."""
    return portable_pickle(smpl_layout(build_standin()))


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def standin_folder(*, refresh: bool = False) -> Path:
    """A model folder that ``smplx.create(folder, model_type="smpl")`` loads with no other
    argument: ``<folder>/smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl``, all three the neutral stand-in in
    SMPL's vertex layout (:func:`smpl_layout`). Pass it wherever a pipeline wants its
    ``--model_folder``.

    The files are plain pickles of numpy arrays (smplx reads SMPL only from ``.pkl``), written
    atomically into :func:`cache_dir`; every call compares each file's sha256 with that of the
    bytes generated here and rewrites any that differs (all with ``refresh``), as
    :func:`standin_path` does, and writes a ``SHA256SUMS`` for the user. Versioned
    by :data:`STANDIN_VERSION` like :func:`standin_path`.
    """
    root = cache_dir() / "body" / f"standin-v{STANDIN_VERSION}-smpl-layout"
    names = [f"smpl/SMPL_{g}.pkl" for g in _GENDERS]
    payload = _smpl_file_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    # compared with the bytes generated here, never with a checksum file from the cache
    for n in names:
        if refresh or _sha256(root / n) != digest:
            _write_cache(root / n, payload)
    sums = "".join(f"{digest}  {n}\n" for n in names).encode()
    if refresh or not (root / "SHA256SUMS").is_file() or (root / "SHA256SUMS").read_bytes() != sums:
        _write_cache(root / "SHA256SUMS", sums)
    return root
