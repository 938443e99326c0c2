"""Build and load the pose dataset file (format: ``docs/design.md``, "Dataset file").

Subjects are global across sources: ``SS_TT.*`` files (CMU trial naming; CMU ASF/AMC and the
DeepMimic retargets of CMU trials) are subject ``cmu:SS``; ``HDM_<actor>_*`` files are
``hdm05:<actor>``; AIST++ names (``gBR_sBM_cAll_d04_mBR0_ch01``) are ``aist:d04``, the
dancer; anything else is ``<source>:<folder>`` (e.g. ``cmu_bvh_daz_aclstm:salsa``,
AMASS ``CMU:01``), where the source is the first folder below the path given to the build.

The split is by subject, never by frame, and stratified by subject group (the part of the
subject id before ``:``: ``cmu``, ``hdm05``, one per other source), so that every group with
enough subjects reaches the validation and test splits, not only the groups of many small
subjects. Within a group, subjects are visited in the order of ``sha256(seed:subject)`` and each
goes to the split furthest below its target share of the group's frames; ties go to the split
furthest below its target over all groups. Passing the previous file as ``split_from`` keeps
every known subject in its old split, and a subject it does not name (a key that changed) the split
of its sequences there, found by name.
"""

from __future__ import annotations

import csv
import errno
import fnmatch
import functools
import hashlib
import json
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import numpy as np

from advprior._sync import GLOBAL_STATE
from advprior.data.loader import load_motion
from advprior.data.motion import read_motion_text
from advprior.data.npz import read_npz_array
from advprior.data.retarget import check_torso
from advprior.errors import MotionFormatError, RetargetWarning
from advprior.fileio import check_writable, check_zip_members, parse_json, save_npz_atomic
from advprior.version import __version__

if TYPE_CHECKING:
    import torch

    from advprior.data.retarget import SMPLMotion

SPLIT_NAMES = ("train", "val", "test")
#: The layout of a dataset file (:data:`KEYS`, their shapes and meanings), recorded in its
#: ``meta["dataset_format"]``; a file without it is format 1 (every file before it was
#: recorded). A reader refuses a newer format instead of training on arrays it misreads.
DATASET_FORMAT = 1
KEYS = (
    "body_pose",
    "global_orient",
    "transl",
    "sequence",
    "subject",
    "split",
    "sequence_names",
    "subject_names",
    "split_names",
    "fps",
    "meta",
)
_README_RATE = re.compile(r"^\s*(\S+)\s+frame\s*rate\s*[:=]?\s*([0-9.]+)\s*$", re.I)
#: Files whose ``<folder> framerate <fps>`` lines set the rates of the motion files below them.
# Compared case-insensitively: "ReadMe.txt" or "README.TXT" written on Windows or macOS (whose
# file systems ignore case) must be found on Linux too.
_README_NAMES = ("readme.txt", "readme.md")


def _is_readme(name: str) -> bool:
    return name.lower() in _README_NAMES


def _nfc(name: str) -> str:
    """``name`` in Unicode normal form C. macOS (HFS+, and files copied from it) stores
    accented names decomposed (NFD), Linux and Windows keep what was typed (NFC): a folder
    "José" would otherwise be another subject, sorted elsewhere, on another system."""
    return unicodedata.normalize("NFC", name)


@dataclass
class PoseData:
    """A loaded dataset: tensors named like the npz keys.

    Attributes:
        body_pose: ``(N, 63)`` float32 axis-angle, SMPL joints 1..21, radians.
        global_orient: ``(N, 3)`` float32 pelvis axis-angle in SMPL's frame.
        transl: ``(N, 3)`` float32, metres.
        sequence, subject: ``(N,)`` int32 indices into ``sequence_names`` / ``subject_names``.
        split: ``(N,)`` int8, 0 train, 1 validation, 2 test.
    """

    body_pose: torch.Tensor
    global_orient: torch.Tensor
    transl: torch.Tensor
    sequence: torch.Tensor
    subject: torch.Tensor
    split: torch.Tensor
    sequence_names: list[str]
    subject_names: list[str]
    split_names: list[str]
    fps: float
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.body_pose.shape[0])

    def select(self, split: str | int) -> PoseData:
        """The frames of one split: ``"train"``, ``"val"`` (or ``"validation"``), ``"test"``,
        or a split code; the names and ``meta`` are kept."""
        if isinstance(split, str):
            alias = {"validation": "val", "valid": "val"}.get(split, split)
            if alias not in self.split_names:
                raise ValueError(f"split must be None or one of {self.split_names}, got {split!r}")
            code = self.split_names.index(alias)
        else:
            code = int(split)
        keep = self.split == code
        return replace(
            self,
            **{
                k: getattr(self, k)[keep]
                for k in ("body_pose", "global_orient", "transl", "sequence", "subject", "split")
            },
        )

    def content_sha256(self) -> str:
        """Hex sha256 of the dataset's content: every frame's poses, translation, sequence,
        subject and split, the name lists and the frame rate, not ``meta`` (which records the
        advprior version and the paths it was built from). Two builds of the same poses agree
        on it across advprior versions, whatever their files' own sha256; it is what
        ``advprior data build`` and ``advprior data info`` print, and what docs/data.md gives
        for each published build. It is bit-exact: on a CPU whose float64 kernels round
        differently, a rebuild of the same files can differ in components that are zero in
        exact arithmetic (noise below 1e-16) and so in this digest (docs/data.md, "Content
        digests across machines")."""
        import numpy as np

        digest = hashlib.sha256(b"advprior-dataset-content-v1")
        for name, dtype in (
            ("body_pose", np.float32),
            ("global_orient", np.float32),
            ("transl", np.float32),
            ("sequence", np.int32),
            ("subject", np.int32),
            ("split", np.int8),
        ):
            arr = np.ascontiguousarray(getattr(self, name).cpu().numpy(), dtype=dtype)
            digest.update(f"{name}:{arr.dtype.str}:{arr.shape}".encode())
            digest.update(arr.tobytes())
        for name in ("sequence_names", "subject_names", "split_names"):
            # names are hashed as a JSON list of text, not as numpy's fixed-width unicode
            # (whose width is that of the longest name, a storage detail); JSON keeps the
            # boundaries, so ["a\nb"] and ["a", "b"] (or [] and [""]) differ
            names = json.dumps(list(getattr(self, name)), ensure_ascii=False)
            digest.update(f"{name}:{names}".encode())
        digest.update(f"fps:{float(np.float32(self.fps))!r}".encode())
        return digest.hexdigest()


@dataclass
class BuildReport:
    """What :func:`build_dataset` did."""

    out: Path
    frames: int
    sequences: int
    per_source: dict[str, int]
    per_split: dict[str, int]
    subjects: dict[str, str]
    skipped: list[tuple[str, str]]
    #: (file, message) for files imported with an approximation (:class:`RetargetWarning`)
    notes: list[tuple[str, str]] = field(default_factory=list)


def subject_of(rel: Path, source: str) -> str:
    """Global subject id of a motion file at ``rel`` (relative to the build root)."""
    stem = rel.stem
    # CMU trial names in every format: AMC/BVH/DeepMimic "SS_TT", AMASS SMPL-H "SS_TT_poses",
    # AMASS SMPL-X "SS_TT_stageii" (one person must be one subject whichever file holds them)
    m = re.fullmatch(r"(\d+)_(\d+)(_poses|_stageii)?", stem)
    if m and _cmu_layout(rel, source, int(m.group(1))):
        return f"cmu:{int(m.group(1)):02d}"
    m = re.match(r"HDM_([A-Za-z]+)_", rel.name)
    if m:
        return f"hdm05:{m.group(1).lower()}"
    # AIST++ names its dancer (``gBR_sBM_cAll_d04_mBR0_ch01``: dancer 04) in every file of
    # that dancer, in its own pickles and in datasets that keep its names
    m = re.fullmatch(r"g[A-Z]{2}_s[A-Z]{2}_c[A-Za-z0-9]+_d(\d+)_m[A-Z]{2}\d+_ch\d+", stem)
    if m:
        return f"aist:d{int(m.group(1)):02d}"
    # LAFAN1 (Ubisoft La Forge) keeps all five actors' takes in one folder and names the actor
    # in each file (``aiming1_subject1.bvh``): keyed by folder, LAFAN1 would be one subject,
    # never held out, and every actor on one side
    m = re.fullmatch(r"[A-Za-z]+\d*_subject(\d+)", stem)
    if m:
        return f"lafan1:subject{int(m.group(1))}"
    folder = rel.parent.name or source
    return f"{source}:{folder}"


def _cmu_layout(rel: Path, source: str, number: int) -> bool:
    """Whether a trial-like name ``SS_TT`` at ``rel`` is CMU's: in a folder named by the subject
    number (CMU's own layout, its BVH conversions, AMASS's ``CMU/SS/``) or under a path that
    names CMU. Other labs number their takes so too (``alice/01_01.bvh``): keyed to ``cmu:01``,
    such a person would be split from their other files and merged with other people."""
    folder = rel.parent.name
    if folder.isdigit() and int(folder) == number:
        return True
    return any("cmu" in part.casefold() for part in (source, *rel.parent.parts))


def files_in_order(root: PurePath, files: Iterable[PurePath]) -> list[PurePath]:
    """``files`` under ``root`` in one order on every system: by their path components below
    ``root``, case-sensitively. Sorting the paths themselves would not do: Windows paths
    compare case-insensitively, so a build there would order ``B.bvh`` and ``a.bvh`` the other
    way round, and the same folder would give another file (other sequence numbers, another
    content sha256) than on Linux or macOS. Components compare in Unicode normal form C, for
    the same reason (:func:`_nfc`)."""
    return sorted(files, key=lambda f: tuple(map(_nfc, f.relative_to(root).parts)))


def _candidates(paths: Iterable[str | Path]) -> list[tuple[Path, Path, str]]:
    """``(file, path relative to its root, source)`` for every file under ``paths``."""
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in files_in_order(p, (x for x in p.rglob("*") if x.is_file())):
                # names (subjects, sequences, sources) in one normal form on every system; the
                # file itself is read under its own name
                rel = Path(_nfc(str(f.relative_to(p))))
                source = rel.parts[0] if len(rel.parts) > 1 else _nfc(p.name)
                out.append((f, rel, source))
        elif p.is_file():
            parent = _nfc(p.parent.name)
            out.append((p, Path(parent) / _nfc(p.name), parent or "files"))
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    return out


def classify(path: Path) -> str | None:
    """``None`` when ``path`` is a motion file this package reads, else why it is not."""
    suffix = path.suffix.lower()
    if suffix in (".amc", ".bvh"):
        return None
    if suffix == ".npz":
        from advprior.data.amass import is_amass

        # an npz that is not a readable zip (a truncated download) is a damaged motion file,
        # for the reader to report as an error, not a shape file to skip quietly
        if is_amass(path) or not zipfile.is_zipfile(path):
            return None
        return "npz without a 'poses' or 'pose_body' array (not a motion)"
    if suffix in (".txt", ".json"):
        from advprior.data.deepmimic import is_deepmimic

        if is_deepmimic(path):
            return None
        if _is_readme(path.name) and _declares_rates(path):
            return "frame-rate readme (its rates are read for the motion files below it)"
        return "not a DeepMimic motion JSON"
    if suffix == ".pkl":
        from advprior.data.smplseq import is_motion_pickle

        # walked opcode by opcode, nothing unpickled; a damaged pickle is the reader's to report
        if is_motion_pickle(path) is False:
            return (
                "pickle without 3DPW 'poses'/'trans' or AIST++ 'smpl_poses'/'smpl_trans' (not "
                "a motion, e.g. a body model file)"
            )
        return None
    if suffix == ".npy":
        from advprior.data.smplseq import npy_pose_shape

        return npy_pose_shape(path)
    if suffix == ".asf":
        return "ASF skeleton (read with its AMC files)"
    return f"not a motion file ({suffix or 'no extension'})"


def _declares_rates(readme: Path) -> bool:
    """Whether a readme holds a ``<folder> framerate <fps>`` line (:func:`readme_rates`)."""
    lines = read_motion_text(readme).splitlines()
    return any(_README_RATE.match(line) for line in lines)


@functools.lru_cache(maxsize=64)
def _readmes_in(folder: Path, mtime_ns: int) -> tuple[Path, ...]:
    """The readme files of ``folder``, whatever their case, in name order. Listed once per
    folder (``readme_rates`` asks for every motion file, and AMASS-style folders hold
    thousands); ``mtime_ns`` in the key lists it again once its entries change."""
    return tuple(sorted(f for f in folder.iterdir() if _is_readme(f.name) and f.is_file()))


def readme_rates(file: Path, stop: Path | None = None) -> dict[str, float]:
    """Folder frame rates declared in a ``readme.txt`` above ``file`` (lines ``salsa framerate
    60``, the acLSTM convention), nearest readme first."""
    rates: dict[str, float] = {}
    folder = file.parent
    for _ in range(3):
        try:
            readmes = _readmes_in(folder, folder.stat().st_mtime_ns)
        except OSError:  # an unreadable folder above the data declares nothing
            readmes = ()
        for r in readmes:
            for line in read_motion_text(r).splitlines():
                m = _README_RATE.match(line)
                if m:
                    rates.setdefault(m.group(1), float(m.group(2)))
        if stop is not None and folder == stop:
            break
        folder = folder.parent
    return rates


def cmu_index_rates(files: Iterable[Path]) -> dict[tuple[int, int], float]:
    """``(subject, trial) -> fps`` from CMU index tables among ``files`` (csv files with the
    columns ``Subject``, ``Trial #`` and ``framerate``; CMU captured some subjects at 60 fps)."""
    rates: dict[tuple[int, int], float] = {}
    for f in files:
        if f.suffix.lower() != ".csv":
            continue
        try:
            # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which would
            # otherwise rename the first column and lose every rate
            with open(f, newline="", encoding="utf-8-sig", errors="replace") as fh:
                for row in csv.DictReader(fh):
                    try:
                        key = (int(row["Subject"]), int(row["Trial #"]))
                        rates[key] = float(row["framerate"])
                    except (KeyError, TypeError, ValueError):
                        break
        except OSError:
            continue
    return rates


def source_rate(
    file: Path,
    rel: Path,
    source_fps: Mapping[str, float] | None,
    cmu_rates: Mapping[tuple[int, int], float] | None = None,
) -> float | None:
    """Frame-rate override for ``file``: a ``source_fps`` glob on its relative path, else a
    readme declaration for its folder, else (AMC or BVH named ``SS_TT``) the CMU index rate,
    else None (the file's own rate). The CMU BVH conversions say 120 fps in every header, also
    for the trials CMU captured at 60; AMASS and DeepMimic files carry their own true rates."""
    for pattern, rate in (source_fps or {}).items():
        if _matches(file, rel, pattern):
            return float(rate)
    rates = readme_rates(file)
    if file.parent.name in rates:
        return rates[file.parent.name]
    m = re.fullmatch(r"(\d+)_(\d+)", file.stem)
    if m and file.suffix.lower() in (".amc", ".bvh") and cmu_rates:
        return cmu_rates.get((int(m.group(1)), int(m.group(2))))
    return None


def _matches(file: Path, rel: Path, pattern: str) -> bool:
    """``pattern`` (a glob) matches the file's path relative to its root, or its whole path."""
    return fnmatch.fnmatch(rel.as_posix(), pattern) or fnmatch.fnmatch(file.as_posix(), pattern)


def source_up(file: Path, rel: Path, up: Mapping[str, str] | None) -> tuple[str, str] | None:
    """``(pattern, axis)`` of the first ``up`` glob that matches ``file`` (as for
    ``source_fps``), else None: the file's own up axis (its rest skeleton's, a format's)."""
    for pattern, axis in (up or {}).items():
        if _matches(file, rel, pattern):
            return pattern, axis
    return None


def check_up(up: Mapping[str, str] | None) -> dict[str, str]:
    """``up`` (glob -> axis) checked: every axis one that some format takes (BVH: ``x``, ``y``,
    ``z``, ``-x``, ``-y``, ``-z``; SMPL-parameter files: ``z``, ``y``, ``-y``)."""
    from advprior.data.bvh import UP_AXES

    out = dict(up or {})
    for pattern, axis in out.items():
        if axis not in UP_AXES:
            raise ValueError(
                f"up axis for {pattern!r} must be one of {', '.join(UP_AXES)}, got {axis!r}"
            )
    return out


def subject_group(subject: str) -> str:
    """The stratum of a subject id: the part before ``:`` (``"cmu:02"`` -> ``"cmu"``); ids
    without one share the group ``""``."""
    return subject.split(":", 1)[0] if ":" in subject else ""


def _check_fractions(fractions: tuple[float, ...]) -> None:
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )


def assign_splits(
    frames: Mapping[str, int],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    *,
    seed: str = "advprior",
    fixed: Mapping[str, int] | None = None,
    stratify: bool = True,
) -> dict[str, int]:
    """Subject -> split index (0 train, 1 val, 2 test), deterministic, by frame counts.

    Args:
        frames: subject id -> number of frames.
        fractions: target train/val/test fractions of frames.
        seed: seed of the subject order (``sha256(seed:subject)``).
        fixed: subjects whose split is already decided (kept as they are).
        stratify: split every subject group (:func:`subject_group`) to the fractions on its
            own; ``False`` treats all subjects as one group.
    """
    _check_fractions(fractions)
    fixed = dict(fixed or {})
    target = np.asarray(fractions, dtype=np.float64)
    out = {s: fixed[s] for s in frames if s in fixed}
    group_of = subject_group if stratify else (lambda s: "")
    groups: dict[str, list[str]] = {}
    for s in sorted(frames):
        groups.setdefault(group_of(s), []).append(s)
    done_all = np.zeros(3)
    done_group = {g: np.zeros(3) for g in groups}
    for s, k in out.items():
        done_all[k] += frames[s]
        done_group[group_of(s)][k] += frames[s]
    total_all = float(sum(frames.values()))
    for g in sorted(groups):
        total = float(sum(frames[s] for s in groups[g]))
        done = done_group[g]
        order = sorted(
            (s for s in groups[g] if s not in out),
            key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest(),
        )
        for s in order:
            # Largest deficit of the group first; equal deficits (an untouched group) are
            # broken by the deficit over all groups, so that small groups take turns.
            deficit = target * total - done
            overall = target * total_all - done_all
            k = max(range(3), key=lambda i: (round(float(deficit[i]), 6), float(overall[i])))
            out[s] = k
            done[k] += frames[s]
            done_all[k] += frames[s]
        _hold_one_out(groups[g], out, frames, target, done_all, fixed)
    return out


def _hold_one_out(
    subjects: list[str],
    out: dict[str, int],
    frames: Mapping[str, int],
    target: np.ndarray,
    done_all: np.ndarray,
    fixed: Mapping[str, int],
) -> None:
    """Give a group of two or more subjects that the greedy put all in train one held-out
    subject: the greedy keeps train's deficit the largest until a big subject comes last in the
    hash order, and then takes it too (ten CMU subjects, one of them half the frames)."""
    free = [s for s in subjects if s not in fixed]
    if len(subjects) < 2 or len(free) < 1 or any(out[s] != 0 for s in subjects):
        return
    if target[1:].sum() <= 0:
        return
    total = float(sum(frames[s] for s in subjects))
    # the held-out split with the larger target; on a tie the one with fewer frames so far
    k = max((1, 2), key=lambda i: (target[i], -done_all[i]))
    # the subject whose frames come closest to that split's share of the group
    pick = min(free, key=lambda s: (abs(frames[s] - target[k] * total), s))
    out[pick] = k
    done_all[0] -= frames[pick]
    done_all[k] += frames[pick]


def _check_replaceable(out: Path) -> None:
    """Refuse to replace an existing file that is not an ``.npz`` (a zip archive): rebuilding
    into last week's dataset is the normal workflow, but ``--out notes.txt`` (a typo, a
    shell completion) would silently replace the user's own file with a dataset."""
    if out.is_file() and out.stat().st_size > 0 and not zipfile.is_zipfile(out):
        raise FileExistsError(
            f"refusing to replace {out}: it exists and is not an .npz (a dataset is a zip "
            "archive); remove it or choose another output"
        )


def build_dataset(
    paths: Iterable[str | Path] | str | Path,
    out: str | Path,
    *,
    fps: float = 30.0,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    on_error: str = "skip",
    split_seed: str = "advprior",
    split_from: str | Path | None = None,
    stratify: bool = True,
    source_fps: Mapping[str, float] | None = None,
    up: Mapping[str, str] | None = None,
    min_seconds: float = 0.25,
    log: Callable[[str], None] | None = None,
    torso: str = "bones",
) -> BuildReport:
    """Import, retarget to SMPL at ``fps`` and write the dataset ``out`` (atomically).

    Args:
        paths: files or folders (searched recursively; non-motion files are skipped and
            reported, e.g. ASF skeletons, csv/md, txt that is not DeepMimic JSON).
        out: the ``.npz`` to write.
        fps: output frame rate.
        split: train/validation/test target fractions of frames.
        on_error: ``"skip"`` (report the file and go on) or ``"abort"`` (raise).
        split_seed: seed of the subject order.
        split_from: a previous dataset file whose subjects keep their split.
        stratify: split each subject group (``cmu``, ``hdm05``, ...) to the fractions on its
            own (see the module docstring); ``False``: one pool of subjects.
        source_fps: glob on the relative path -> frame rate, overriding file headers; folders
            named in a ``readme.txt`` line ``<folder> framerate <fps>`` are overridden too, and
            CMU-named AMC files (``SS_TT.amc``) take their rate from a CMU index csv found among
            ``paths`` (columns ``Subject``, ``Trial #``, ``framerate``).
        up: glob on the relative path -> the world up axis of the files it matches, passed to
            :func:`~advprior.data.load_motion` as ``up=`` (a BVH whose frames stand along
            another axis than its rest skeleton; an ``.npz``/``.pkl``/``.npy`` in another world
            than its format's default); the first matching glob wins. Recorded with the build's
            arguments in ``meta["build"]["up"]``; a glob that matches no file is noted. ASF/AMC
            and DeepMimic files take ``up=`` as BVH does (the world's up in the file).
        min_seconds: shorter sequences are skipped (e.g. the 3-frame acLSTM ``standard.bvh``).
        log: called with one line per skipped file, and per file imported with an
            approximation (a :class:`~advprior.errors.RetargetWarning`, kept as a note in the
            report and the file's metadata).
        torso: how SMPL's spine and neck (and collars and ankles) meet the source's
            (:meth:`Motion.to_smpl`): ``"bones"`` (the default, build v5: the data of the
            0.2.0 weights) lays each SMPL torso bone on the source's and so straightens SMPL's
            rest spine; ``"rest"`` takes the source's rest torso, collars and feet as SMPL's
            (docs/data.md). Recorded in
            ``meta["build"]["torso"]`` when not the default.

    Leading frames that are exactly the rest pose are dropped (CMU BVH conversions start with a
    T-pose frame).
    """
    if on_error not in ("skip", "abort"):
        raise ValueError(f"on_error must be 'skip' or 'abort', got {on_error!r}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out = check_writable(out)  # before hours of importing, not after
    _check_replaceable(out)
    up = check_up(up)  # likewise a mistyped axis
    check_torso(torso)
    up_used: set[str] = set()
    _check_fractions(tuple(split))  # likewise the split and the file it is taken from
    fixed: dict[str, int] | None = None
    old_sequences: dict[str, int] = {}
    if split_from is not None:
        prev = load_dataset(split_from)  # checked like any dataset file (zip bombs included)
        fixed = {}
        for k, name in enumerate(prev.subject_names):
            rows = np.flatnonzero(prev.subject.numpy() == k)
            if len(rows):
                fixed[name] = int(prev.split[rows[0]])
        # a subject keyed otherwise since (AIST++ files by dancer, once by folder) is found
        # again by its sequences' names
        for k, name in enumerate(prev.sequence_names):
            rows = np.flatnonzero(prev.sequence.numpy() == k)
            if len(rows):
                old_sequences[name] = int(prev.split[rows[0]])
    skipped: list[tuple[str, str]] = []
    seqs = []

    notes: list[tuple[str, str]] = []

    def note(path: Path, message: str) -> None:
        notes.append((str(path), message))
        if log is not None:
            log(f"note: {message}")

    def skip(path: Path, reason: str) -> None:
        skipped.append((str(path), reason))
        if log is not None:
            log(f"skipped {path}: {reason}")

    def failed(file: Path, person: int | None, people: int, reason: str) -> int:
        """Skip ``person`` of ``file`` (by its ``#k`` name in a file of several people); returns
        the number of people, so that the file's other people are still read."""
        if person is None and people == 1:  # failed before the file said how many there are
            from advprior.data.smplseq import people_in

            people = people_in(file)
        several = person is not None or people > 1
        skip(Path(f"{file}#{person or 0}") if several else file, reason)
        return people

    def import_one(file: Path, rel: Path, source: str, person: int | None) -> int:
        """Import ``person`` of ``file`` into ``seqs``; returns how many people it holds."""
        label, people = file, 1
        try:
            # retargeting approximations become notes of the build (in its log and metadata),
            # not one Python warning per file on the user's terminal
            # (GLOBAL_STATE: the warnings filters are process-wide, see advprior._sync)
            with GLOBAL_STATE, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", RetargetWarning)
                rate = source_rate(file, rel, source_fps, cmu_rates)
                turned = source_up(file, rel, up)
                if turned is not None:
                    up_used.add(turned[0])
                axis = turned[1] if turned is not None else None
                motion = load_motion(file, fps=rate, person=person, up=axis)
                people = int(motion.meta.get("people", 1))
                if people > 1:
                    label = Path(f"{file}#{person or 0}")
                motion = motion.without_rest_frames()
                long_enough = motion.duration >= min_seconds
                smpl = motion.to_smpl(fps, torso=torso) if long_enough else None
            for w in caught:
                if issubclass(w.category, RetargetWarning):
                    note(label, str(w.message))
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if smpl is None:
                skip(
                    label,
                    f"too short ({motion.num_frames} frames, {motion.duration:.2f} s "
                    f"< {min_seconds} s)",
                )
                return people
            arrays = (smpl.body_pose, smpl.global_orient, smpl.transl)
            if not all(np.all(np.isfinite(a)) for a in arrays):
                raise MotionFormatError("retargeting produced NaN/inf poses", label)
        except (MotionFormatError, ValueError, OSError) as err:
            if on_error == "abort":
                raise
            return failed(file, person, people, f"{type(err).__name__}: {err}")
        except Exception as err:
            # a file no reader check anticipated (a TypeError from an odd array, an
            # AttributeError from a JSON dict where a list belongs): in "skip" mode one odd
            # file must not cost the whole build (it is reported with the error's type)
            if on_error == "abort":
                raise
            return failed(
                file, person, people, f"unexpected {type(err).__name__} while reading: {err}"
            )
        name = rel.as_posix() if source in rel.parts[:1] else f"{source}/{rel.as_posix()}"
        if people > 1:
            name += f"#{person or 0}"
        # only what the file written keeps, as it keeps it: the retargeted motion also holds
        # its source's joint positions, and in float64 it held 4x these arrays, for every file
        # until the end of a build (~5 GB more for all of AMASS)
        seqs.append((name, subject_of(rel, source), source, _Frames.of(smpl)))
        return people

    candidates = _candidates(paths)
    cmu_rates = cmu_index_rates(f for f, _, _ in candidates)
    for file, rel, source in candidates:
        if file.resolve() == out.resolve():
            continue
        reason = classify(file)
        if reason is not None:
            skip(file, reason)
            continue
        # a file of several people (3DPW) gives one sequence per person, all of the file's
        # subject: nothing in such files says which actor is which
        people = import_one(file, rel, source, None)
        for k in range(1, people):
            import_one(file, rel, source, k)
    if not seqs:
        raise ValueError("no motion could be imported from " + ", ".join(map(str, paths)))
    for pattern in up:
        if pattern not in up_used:  # a typo would otherwise leave the turned files turned
            note(Path(pattern), f"up pattern {pattern!r} matched no motion file")

    subject_names = sorted({s for _, s, _, _ in seqs})
    frames = {s: 0 for s in subject_names}
    for _, s, _, m in seqs:
        frames[s] += m.num_frames
    if fixed is not None:
        _fix_by_sequence(
            seqs, fixed, old_sequences, lambda m: note(Path(split_from), f"{split_from}: {m}")
        )
    assignment = assign_splits(frames, split, seed=split_seed, fixed=fixed, stratify=stratify)
    # The same capture filed twice under two names (a renamed copy, another folder) is two
    # subjects, which the split may put on both sides: exact copies of the poses are noted.
    first: dict[bytes, tuple[str, str]] = {}
    for name, s, _, m in seqs:
        key = hashlib.sha256(np.ascontiguousarray(m.body_pose, np.float32).tobytes()).digest()
        seen = first.setdefault(key, (name, s))
        if seen[1] != s:
            note(
                Path(name),
                f"{name}: the same poses as {seen[0]}, but subject {s} "
                f"({SPLIT_NAMES[assignment[s]]}) and {seen[1]} "
                f"({SPLIT_NAMES[assignment[seen[1]]]}): one person under two names? Remove the "
                "copy or file both under one subject",
            )

    sub_index = {s: i for i, s in enumerate(subject_names)}
    cat = {k: [] for k in ("body_pose", "global_orient", "transl", "sequence", "subject", "split")}
    per_source: dict[str, int] = {}
    for i, (_, s, source, m) in enumerate(seqs):
        n = m.num_frames
        cat["body_pose"].append(m.body_pose)
        cat["global_orient"].append(m.global_orient)
        cat["transl"].append(m.transl)
        cat["sequence"].append(np.full(n, i, dtype=np.int32))
        cat["subject"].append(np.full(n, sub_index[s], dtype=np.int32))
        cat["split"].append(np.full(n, assignment[s], dtype=np.int8))
        per_source[source] = per_source.get(source, 0) + n
    arrays = {k: np.concatenate(v) for k, v in cat.items()}
    per_split = {name: int((arrays["split"] == k).sum()) for k, name in enumerate(SPLIT_NAMES)}
    meta = {
        "sources": sorted(per_source),
        "frames_per_source": per_source,
        "frames_per_split": per_split,
        "subject_split": {s: SPLIT_NAMES[assignment[s]] for s in subject_names},
        "skipped": skipped,
        "notes": notes,
        "build": {
            "fps": fps,
            "split": list(split),
            "split_seed": split_seed,
            "stratify": stratify,
            "on_error": on_error,
            "min_seconds": min_seconds,
            "paths": [str(p) for p in paths],
            # only when given, so that a default build's metadata stays as it was
            **({"source_fps": dict(source_fps)} if source_fps else {}),
            **({"up": up} if up else {}),
            **({"torso": torso} if torso != "bones" else {}),
        },
        "advprior_version": __version__,
        "dataset_format": DATASET_FORMAT,
    }
    arrays.update(
        sequence_names=np.array([name for name, *_ in seqs]),
        subject_names=np.array(subject_names),
        split_names=np.array(SPLIT_NAMES),
        fps=np.float32(fps),
        meta=np.array(json.dumps(meta)),
    )
    save_npz_atomic(out, arrays)
    return BuildReport(
        out=out,
        frames=int(arrays["split"].shape[0]),
        sequences=len(seqs),
        per_source=per_source,
        per_split=per_split,
        subjects={s: SPLIT_NAMES[assignment[s]] for s in subject_names},
        skipped=skipped,
        notes=notes,
    )


@dataclass(frozen=True)
class _Frames:
    """The arrays a build keeps of one imported motion: float32, as the dataset stores them."""

    body_pose: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray

    @classmethod
    def of(cls, smpl: SMPLMotion) -> _Frames:
        return cls(
            smpl.body_pose.astype(np.float32),
            smpl.global_orient.astype(np.float32),
            smpl.transl.astype(np.float32),
        )

    @property
    def num_frames(self) -> int:
        return int(self.body_pose.shape[0])


def _fix_by_sequence(
    seqs: list, fixed: dict[str, int], old_sequences: Mapping[str, int], note: Callable
) -> None:
    """Give each subject unknown to the previous file the split its sequences had there (by
    name), so that a subject whose key changed keeps its side; where its sequences were on
    several sides, the side of most of its frames, with a note."""
    held: dict[str, np.ndarray] = {}
    for name, subject, _, m in seqs:
        if subject not in fixed and name in old_sequences:
            held.setdefault(subject, np.zeros(3, dtype=np.int64))[old_sequences[name]] += (
                m.num_frames
            )
    for subject, frames in sorted(held.items()):
        fixed[subject] = 2 - int(np.argmax(frames[::-1]))  # a tie: the held-out side
        if np.count_nonzero(frames) > 1:
            sides = ", ".join(f"{SPLIT_NAMES[k]} {int(n)}" for k, n in enumerate(frames) if n)
            note(
                f"subject {subject}: its sequences were on several sides of the previous "
                f"split (frames: {sides}); all of it goes to {SPLIT_NAMES[fixed[subject]]}"
            )


def _is_real(arr: np.ndarray) -> bool:
    """Integer or floating point (not bool, complex, strings or bytes)."""
    return arr.dtype.kind in "iuf"


def _rows(body_pose: np.ndarray, bad: Callable[[str], ValueError]) -> int:
    if body_pose.ndim != 2:
        raise bad(f"body_pose must have shape (N, 63), got {body_pose.shape}")
    return int(body_pose.shape[0])


def _check_shape(
    key: str, arr: np.ndarray, shape: tuple[int, ...], bad: Callable[[str], ValueError]
) -> None:
    if arr.shape != shape:
        raise bad(f"{key} must have shape {shape}, got {arr.shape}")


def _names(key: str, arr: np.ndarray, bad: Callable[[str], ValueError]) -> list[str]:
    if arr.ndim != 1 or arr.dtype.kind not in "US":
        raise bad(f"{key} must be a list of strings (1-d), got shape {arr.shape} of {arr.dtype}")
    return [str(s) for s in arr]


def _codes(
    key: str, arr: np.ndarray, n: int, count: int, bad: Callable[[str], ValueError]
) -> np.ndarray:
    """``(n,)`` integer indices in ``0..count-1``, checked before any narrowing cast."""
    _check_shape(key, arr, (n,), bad)
    if arr.dtype.kind not in "iu":
        raise bad(f"{key} must hold integers, got {arr.dtype}")
    if n and (int(arr.min()) < 0 or int(arr.max()) >= count):
        raise bad(f"{key} values must be in 0..{count - 1}, got {int(arr.min())}..{int(arr.max())}")
    return arr


def require_dataset_file(path: str | Path) -> Path:
    """``path`` if it is a file, else ``FileNotFoundError`` saying how to build a dataset there
    (scripts call this before loading a prior or fitting, so that a wrong path fails first)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        # a folder, `/dev/stdin`, `<(...)`: "no such dataset file" sent users looking for it
        what = "a folder" if path.is_dir() else "a pipe or device (an .npz is read by seeking)"
        err = (IsADirectoryError if path.is_dir() else OSError)(
            f"{path} is {what}, not a dataset file"
        )
        err.errno = errno.EISDIR if path.is_dir() else errno.EINVAL
        raise err
    if not path.is_file():
        raise FileNotFoundError(
            f"no such dataset file: {path}; build it with: advprior data build MOCAP_FOLDER "
            f"--out {path} (this repository's data: ../shared/data/mocap)"
        )
    return path


def load_dataset(path: str | Path, split: str | int | None = None) -> PoseData:
    """Load a dataset file; ``split`` = ``None`` (all), ``"train"``, ``"val"`` or ``"test"``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file (and the key): not an npz, a zip bomb, a member that is
            not a plain ``.npy`` array or declares more data than it holds, missing keys,
            wrong shapes or dtypes, NaN/inf poses (also after the cast to float32), indices
            outside their name lists or ``0..2`` (split), a bad ``fps`` or ``meta``, a newer
            :data:`DATASET_FORMAT` than this advprior reads, or an unknown ``split``.
    """
    import torch

    path = require_dataset_file(path)
    if not zipfile.is_zipfile(path):
        # np.load would read a .npy as one array, and call any other file a pickle ("load it
        # with allow_pickle=True"): neither is a dataset, and no pickle is ever loaded here
        raise ValueError(
            f"{path}: not a dataset .npz (not a zip archive; `advprior data build` writes one)"
        )
    check_zip_members(path, "dataset")  # a zip bomb: ValueError naming the file and member
    try:
        f = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        # BadZipFile: a truncated download or copy (it is neither an OSError nor a ValueError)
        raise ValueError(f"{path}: not a dataset .npz ({err})") from None

    def bad(message: str) -> ValueError:
        return ValueError(f"{path}: {message}")

    with f:
        missing = [k for k in KEYS if k not in f.files]
        if missing:
            raise ValueError(f"{path}: missing keys {missing} (not an advprior dataset file?)")
        data = {k: read_npz_array(f, k, bad) for k in KEYS}
    n = _rows(data["body_pose"], bad)
    float_shapes = {"body_pose": (n, 63), "global_orient": (n, 3), "transl": (n, 3)}
    floats = {}
    for k, shape in float_shapes.items():
        _check_shape(k, data[k], shape, bad)
        if not _is_real(data[k]):
            raise bad(f"{k} must hold real numbers, got {data[k].dtype}")
        # after the cast: a float64 1e300 is finite but becomes inf in float32
        with np.errstate(over="ignore", invalid="ignore"):
            floats[k] = data[k].astype(np.float32)
        if not np.all(np.isfinite(floats[k])):
            raise bad(f"{k} contains NaN or inf (or values beyond float32's range)")
    names = {k: _names(k, data[k], bad) for k in ("sequence_names", "subject_names", "split_names")}
    # integer codes are range-checked before any cast: 256 must not wrap to int8's 0, 2**32
    # not to int32's (sequence and subject need not index their name lists: files made by
    # hand often carry one name)
    codes = {
        "sequence": _codes("sequence", data["sequence"], n, 2**31, bad),
        "subject": _codes("subject", data["subject"], n, 2**31, bad),
        "split": _codes("split", data["split"], n, len(SPLIT_NAMES), bad),
    }
    fps = data["fps"]
    if fps.size != 1 or not _is_real(fps):
        raise bad(f"fps must be one number, got shape {fps.shape} of {fps.dtype}")
    fps = float(fps.reshape(-1)[0])
    if not np.isfinite(fps) or fps <= 0:
        raise bad(f"fps must be a positive number, got {fps}")
    if data["meta"].ndim != 0 or data["meta"].dtype.kind not in "US":
        raise bad(f"meta must be one JSON string, got shape {data['meta'].shape}")
    # parse_json: a key given twice (two dataset_format values) is refused, not the last kept
    meta = parse_json(str(data["meta"]), f"{path}: meta", ValueError)
    fmt = meta.get("dataset_format", 1) if isinstance(meta, dict) else 1
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        raise bad(f"meta's dataset_format must be a whole number >= 1, got {fmt!r:.40}")
    if fmt > DATASET_FORMAT:
        written = meta.get("advprior_version")
        # quoted from the file: a version, or else not worth a message of megabytes
        if not (isinstance(written, str) and len(written) <= 40):
            written = "a newer version"
        raise bad(
            f"dataset format {fmt} (written by advprior {written}); this advprior "
            f"({__version__}) reads format {DATASET_FORMAT}: upgrade advprior, or rebuild the "
            "file with `advprior data build`"
        )
    poses = PoseData(
        body_pose=torch.from_numpy(floats["body_pose"]),
        global_orient=torch.from_numpy(floats["global_orient"]),
        transl=torch.from_numpy(floats["transl"]),
        sequence=torch.from_numpy(codes["sequence"].astype(np.int32)),
        subject=torch.from_numpy(codes["subject"].astype(np.int32)),
        split=torch.from_numpy(codes["split"].astype(np.int8)),
        sequence_names=names["sequence_names"],
        subject_names=names["subject_names"],
        split_names=names["split_names"],
        fps=fps,
        meta=meta,
    )
    return poses if split is None else poses.select(split)
