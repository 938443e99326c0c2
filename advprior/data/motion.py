"""In-memory motion: a source skeleton and per-frame local joint rotations (the SMPL result,
:class:`SMPLMotion`, is defined with the retargeting that makes it and re-exported here).

Every importer produces a :class:`Motion` in one normal form: the rest pose has identity joint
rotations, ``offsets`` are rest offsets from the parent joint in the source's world frame
(metres), and ``rotations`` are local rotations relative to that rest pose. End sites (bone tips
without channels) are joints too, with identity rotations, so every bone has two endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from advprior.data import rotmath
from advprior.data.retarget import SMPLMotion, check_torso, retarget, standing_rest
from advprior.fileio import decode_text, read_regular_bytes

__all__ = ["Motion", "SMPLMotion", "Skeleton", "read_motion_text"]

UTF8_BOM = b"\xef\xbb\xbf"


#: A motion file may describe at most this many times its own size in joint rotations (float64
#: 3x3 per joint and frame). Real files need a few bytes of text per channel and frame, so
#: they stay far below; joints without channels (End Sites) cost memory per frame but no bytes,
#: which lets a 100 KB file ask for gigabytes.
MAX_EXPANSION = 2000


def check_expansion(frames: int, joints: int, path: str | Path) -> None:
    """Refuse (``MotionFormatError``) a file whose ``frames x joints`` rotations would need over
    1 GiB and over :data:`MAX_EXPANSION` times the file's size, before allocating them."""
    from advprior.errors import MotionFormatError

    need = frames * joints * 9 * 8
    try:
        size = Path(path).stat().st_size
    except OSError:
        return
    if need > 2**30 and need > MAX_EXPANSION * max(size, 1):
        raise MotionFormatError(
            f"{frames} frames x {joints} joints would need {need / 2**30:.1f} GiB of rotations "
            f"from a {size / 2**10:.0f} KiB file: not read (joints without channels take memory "
            "for every frame but no bytes of the file)",
            path,
        )


def read_motion_text(path: str | Path) -> str:
    """The text of a BVH/ASF/AMC file, as Windows and macOS tools write them: UTF-8 (a leading
    byte-order mark dropped), UTF-16 with its mark (PowerShell 5) or, failing those, cp1252
    (Windows' "ANSI"), so that a non-ASCII comment or name never stops an import; line ends
    CRLF, LF or CR (mixed too), returned as ``"\\n"``; the end-of-file Ctrl-Z that DOS-era
    tools append dropped. The numbers of those formats are ASCII, so every decoding reads the
    same values. Raises ``OSError`` as ``Path.read_bytes``.

    Decoding as UTF-8 first matters beyond names: latin-1 turns the UTF-8 bytes of e.g. "Å"
    (``c3 85``) into U+0085, a line break for ``str.splitlines`` and whitespace for
    ``str.split``, which would cut a comment into a line of data.
    """
    data = read_regular_bytes(path)
    try:
        text = decode_text(data)
    except UnicodeDecodeError:  # an ANSI file; the 5 bytes cp1252 leaves undefined: U+FFFD
        text = data.decode("cp1252", errors="replace")
    text = text.rstrip("\x1a")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


@dataclass(frozen=True)
class Skeleton:
    """A joint tree.

    Attributes:
        names: ``J`` joint names as written in the file (end sites get ``<parent>_end``).
        parents: ``(J,)`` parent index, ``-1`` for the root; parents precede children.
        offsets: ``(J, 3)`` rest offset from the parent, metres, source world frame; row 0 is the
            root's rest position.
        is_end: ``(J,)`` True for end sites (no channels of their own).
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    is_end: np.ndarray

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def children(self, j: int) -> list[int]:
        return [int(c) for c in np.flatnonzero(self.parents == j)]

    def rest_positions(self) -> np.ndarray:
        """Rest joint positions ``(J, 3)``, metres, source world frame."""
        pos = np.zeros_like(self.offsets)
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] + (pos[p] if p >= 0 else 0.0)
        return pos


@dataclass
class Motion:
    """A source motion in normal form (see the module docstring).

    Attributes:
        skeleton: the source :class:`Skeleton`.
        rotations: ``(T, J, 3, 3)`` local rotations relative to the rest pose.
        root_position: ``(T, 3)`` root joint position, metres, source world frame.
        fps: frames per second.
        path: the file it came from.
        format: ``"asf/amc"``, ``"bvh"``, ``"amass"``, ``"deepmimic"``, ``"3dpw"``,
            ``"aist++"``, ``"motion-x"`` or ``"npy"``.
        local_translations: optional ``(T, J, 3)`` per-frame local offsets replacing
            ``skeleton.offsets`` (BVH joints with position channels), metres.
        is_smpl: the skeleton *is* SMPL's (AMASS, 3DPW, AIST++, npy): :meth:`to_smpl` copies
            instead of retargeting.
        meta: what the reader noted (SMPL-parameter files: ``people``, ``person``; 3DPW:
            ``sequence``, ``gender``, ``campose_invalid_frames``).
    """

    skeleton: Skeleton
    rotations: np.ndarray
    root_position: np.ndarray
    fps: float
    path: str = ""
    format: str = ""
    local_translations: np.ndarray | None = None
    is_smpl: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps

    def global_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Global rotations ``(T, J, 3, 3)`` and positions ``(T, J, 3)`` by forward kinematics."""
        sk = self.skeleton
        t, j = self.rotations.shape[:2]
        rot = np.empty((t, j, 3, 3))
        pos = np.empty((t, j, 3))
        off = self.local_translations
        for i, p in enumerate(sk.parents):
            o = off[:, i] if off is not None else sk.offsets[i]
            if p < 0:
                rot[:, i] = self.rotations[:, i]
                pos[:, i] = self.root_position
            else:
                rot[:, i] = rot[:, p] @ self.rotations[:, i]
                step = np.einsum("tab,tb->ta", rot[:, p], np.broadcast_to(o, (t, 3)))
                pos[:, i] = pos[:, p] + step
        return rot, pos

    def with_rest_from_frame(self, t: int) -> Motion:
        """The same motion with frame ``t``'s pose as its rest pose (identity rotations there).

        Global rotations are rebased, ``W'(s) = W(s) W(t)^T``: local rotations become
        ``R'_j = W_p(t) R_j W_j(t)^T`` and offsets (and per-frame local translations)
        ``o'_j = W_p(t) o_j``, so every frame's joint positions are unchanged. The rest is what
        :mod:`~advprior.data.retarget` measures poses from: rigs whose rest is no stance
        (LAFAN1's, every bone along its parent's +x) are retargeted from a standing frame.
        ``meta["rest_frame"]`` records ``t``.
        """
        if not -self.num_frames <= t < self.num_frames:
            raise IndexError(f"frame {t} of a {self.num_frames}-frame motion")
        t = t % self.num_frames
        sk = self.skeleton
        w, pos = self.global_transforms()
        w_t = w[t]
        par = sk.parents
        w_par = np.stack([w_t[p] if p >= 0 else np.eye(3) for p in par])  # (J, 3, 3)
        rot = w_par @ self.rotations @ np.swapaxes(w_t, -1, -2)
        offsets = np.array(sk.offsets, dtype=float)
        for j, p in enumerate(par):
            offsets[j] = pos[t, j] - pos[t, p] if p >= 0 else self.root_position[t]
        lt = None
        if self.local_translations is not None:
            lt = np.einsum("jab,tjb->tja", w_par, self.local_translations)
            lt[:, par < 0] = self.local_translations[:, par < 0]
        return replace(
            self,
            skeleton=replace(sk, offsets=offsets),
            rotations=rot,
            local_translations=lt,
            meta={**self.meta, "rest_frame": t},
        )

    def resample(self, fps: float) -> Motion:
        """Resample to ``fps``: slerp on rotations, linear on positions; any rate ratio.

        Output frame ``k`` is at time ``k / fps`` and the last one at or before the source's end.
        """
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if abs(fps - self.fps) < 1e-9:
            return self
        n = int(np.floor(self.duration * fps + 1e-6)) + 1
        u = np.arange(n) * (self.fps / fps)
        i0 = np.clip(np.floor(u + 1e-9).astype(int), 0, self.num_frames - 1)
        i1 = np.minimum(i0 + 1, self.num_frames - 1)
        a = np.clip(u - i0, 0.0, 1.0)
        q = rotmath.matrix_to_quat(self.rotations)
        rot = rotmath.quat_to_matrix(rotmath.quat_slerp(q[i0], q[i1], a[:, None]))

        def lerp(x: np.ndarray) -> np.ndarray:
            w = a.reshape(-1, *([1] * (x.ndim - 1)))
            return (1.0 - w) * x[i0] + w * x[i1]

        lt = None if self.local_translations is None else lerp(self.local_translations)
        return replace(
            self,
            rotations=rot,
            root_position=lerp(self.root_position),
            fps=float(fps),
            local_translations=lt,
        )

    def without_rest_frames(self, near_rest_deg: float = 15.0, jump_deg: float = 10.0) -> Motion:
        """Drop a leading reference frame and the settle-in transient after it.

        CMU BVH conversions (e.g. acLSTM's) start with a T-pose reference frame (every joint
        within ``near_rest_deg`` of the rest pose), then a few frames in which the limbs swing
        into the first captured pose far faster than any human moves. A first frame near rest
        whose largest joint change into the next frame exceeds ``jump_deg`` and three times the
        clip's median per-frame change is dropped, then following frames while their change
        still exceeds that level (at most half a second). Other clips are returned unchanged.
        """
        if self.num_frames < 3:
            return self

        def angle(r: np.ndarray) -> np.ndarray:
            cos = (np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0
            return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))

        rel = np.swapaxes(self.rotations[:-1], -1, -2) @ self.rotations[1:]
        steps = angle(rel).max(axis=1)
        level = 3.0 * float(np.median(steps))
        near_rest = angle(self.rotations[0]).max() < near_rest_deg
        if not (near_rest and steps[0] > max(jump_deg, level)):
            return self
        k = 1
        limit = min(self.num_frames - 2, max(1, int(0.5 * self.fps)))
        while k < limit and steps[k] > level:
            k += 1
        if k == 0:
            return self
        lt = None if self.local_translations is None else self.local_translations[k:]
        return replace(
            self,
            rotations=self.rotations[k:],
            root_position=self.root_position[k:],
            local_translations=lt,
        )

    def to_smpl(self, fps: float | None = 30.0, torso: str = "bones") -> SMPLMotion:
        """Retarget onto SMPL's skeleton (see :mod:`advprior.data.retarget`).

        Args:
            fps: output frame rate; ``None`` keeps the source rate.
            torso: ``"bones"`` (build v5's torso, each SMPL torso bone laid on the source's)
                or ``"rest"`` (the source's rest torso, collars and feet are SMPL's); see
                :func:`~advprior.data.retarget.retarget`.
        """
        check_torso(torso)  # before the resampling's work
        # calibrated before resampling, so that a rest taken from a frame is one of the file's
        src = standing_rest(self)
        return retarget(src if fps is None else src.resample(fps), torso=torso)
