"""``load_motion``: pick the reader from the file's extension (and content for ``.txt``)."""

from __future__ import annotations

import warnings
from pathlib import Path

from advprior.data.motion import Motion
from advprior.errors import MotionFormatError, RetargetWarning

#: Extensions this package reads as motion (``.txt`` only when it is DeepMimic JSON).
MOTION_SUFFIXES = (".amc", ".bvh", ".npz", ".json", ".txt", ".pkl", ".npy")
#: Skeleton formats besides BVH whose ``up=`` is the world's up in the file, as BVH's is.
SKELETON_UP_SUFFIXES = (".amc", ".json", ".txt")


def load_motion(
    path: str | Path,
    *,
    skeleton: str | Path | None = None,
    fps: float | None = None,
    units: str | None = None,
    person: int | None = None,
    up: str | None = None,
) -> Motion:
    """Read one motion file into a :class:`~advprior.data.motion.Motion`.

    Args:
        path: ``.amc`` (Acclaim; the ASF is found beside it, in ``../asf/``, or given as
            ``skeleton``), ``.bvh``, AMASS ``.npz``, DeepMimic ``.txt``/``.json``, a 3DPW or
            AIST++ ``.pkl`` (read without running code: :mod:`advprior.data.smplseq`), or a
            Motion-X ``(T, 322)`` / SMPL-family pose ``.npy``.
        skeleton: the ASF for an AMC, or the DeepMimic character file.
        fps: override the file's frame rate (e.g. a wrong BVH ``Frame Time``). AMC files carry
            no rate: a ``_<fps>`` suffix on a name of 3+ parts (HDM05 ``..._001_120.amc``),
            else 120. 3DPW is read at 30, AIST++ at 60; an ``.npy`` has no rate: required.
        units: BVH length unit ("m", "cm", "mm", "inch", "asf"); detected when None.
        person: which person of a multi-person file (3DPW ``.pkl``: 0 = the first, the
            default; ``Motion.meta["people"]`` says how many there are). Files of one person
            take only 0.
        up: the world up axis of an SMPL-parameter file (``.npz``, ``.pkl``, ``.npy``):
            ``"z"`` (AMASS, the ``.npz`` default), ``"y"`` (3DPW, AIST++, Motion-X: the
            ``.pkl``/``.npy`` default) or ``"-y"`` (a camera frame, OpenCV's y down). BVH:
            ``"x"``, ``"y"``, ``"z"``, ``"-x"``, ``"-y"``, ``"-z"`` for a file whose frames
            stand along another axis than its rest skeleton
            (:func:`~advprior.data.bvh.read_bvh`); None: the rest's. ASF/AMC and DeepMimic
            take the same six axes as BVH, meaning the same (their skeleton's up otherwise).

    Raises:
        MotionFormatError: unsupported, malformed or truncated file (names file and line).
        FileNotFoundError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such motion file: {path}")
    suffix = path.suffix.lower()
    if fps is not None and not 0 < fps < float("inf"):
        raise ValueError(f"fps must be positive, got {fps}")
    if up is not None and suffix in SKELETON_UP_SUFFIXES:
        from advprior.data.bvh import UP_AXES

        if up not in UP_AXES:
            raise ValueError(f"up must be one of {', '.join(map(repr, UP_AXES))}, got {up!r}")
    if person not in (None, 0) and suffix != ".pkl":
        raise MotionFormatError(
            f"person={person!r} asked for, but a {suffix or 'such'} file holds one person", path
        )
    if suffix == ".amc":
        from advprior.data.asf_amc import find_asf, read_amc, read_asf

        asf = read_asf(skeleton if skeleton is not None else find_asf(path))
        given = fps is not None
        if fps is None:
            # HDM05 names carry the rate (``..._120.amc``); CMU captured at 120 (mostly).
            # Only names with 3+ parts: CMU's ``SS_TT`` ends in a trial number, not a rate.
            parts = path.stem.split("_")
            rate = int(parts[-1]) if len(parts) >= 3 and parts[-1].isdigit() else 0
            fps = float(rate) if 24 <= rate <= 480 else 120.0
        motion = read_amc(path, asf, fps=fps)
        step = motion.meta.get("frame_step", 1)
        if step > 1 and not given:
            # frames numbered 1, 3, 5, ...: every step-th frame of a capture at that rate
            motion.fps = fps / step
            warnings.warn(
                RetargetWarning(
                    f"{path}: frames are numbered in steps of {step} (one captured frame in "
                    f"{step} kept): read at {fps:g} / {step} = {motion.fps:g} fps (fps= sets "
                    "the file's rate)"
                ),
                stacklevel=2,
            )
        return _stood_along(motion, up)
    if suffix == ".bvh":
        from advprior.data.bvh import read_bvh

        return read_bvh(path, fps=fps, units=units, up=up)
    if suffix == ".npz":
        from advprior.data.amass import read_amass

        return read_amass(path, fps=fps, up=up)
    if suffix == ".pkl":
        from advprior.data.smplseq import read_smpl_pickle

        return read_smpl_pickle(path, fps=fps, person=person, up=up)
    if suffix == ".npy":
        from advprior.data.smplseq import read_smpl_npy

        return read_smpl_npy(path, fps=fps, up=up)
    if suffix in (".txt", ".json"):
        from advprior.data.deepmimic import is_deepmimic, read_deepmimic

        if not is_deepmimic(path):
            raise MotionFormatError('not a DeepMimic motion (no "Frames" JSON)', path, 1)
        return _stood_along(read_deepmimic(path, skeleton=skeleton, fps=fps), up)
    if suffix == ".asf":
        raise MotionFormatError("an ASF holds only a skeleton; load its AMC motion files", path)
    raise MotionFormatError(
        f"unsupported motion format {suffix or '(no extension)'!r}; supported: "
        ".amc (+.asf), .bvh, AMASS .npz, DeepMimic .txt/.json, 3DPW/AIST++ .pkl, "
        "Motion-X/SMPL .npy",
        path,
    )


def _stood_along(motion: Motion, up: str | None) -> Motion:
    """``motion`` (ASF/AMC, DeepMimic) with ``up`` as its world's up axis, as
    :func:`~advprior.data.bvh.read_bvh` takes ``up=``: retargeting stands the body along it
    (calibrating on a frame standing along it when the rest does not) instead of along the
    rest skeleton's own up. None: unchanged."""
    if up is not None:
        from advprior.data.bvh import UP_AXES

        motion.meta.update(world_up=list(UP_AXES[up]), up_given=True)
    return motion
