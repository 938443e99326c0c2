"""Exception types. Each subclasses the built-in a caller would expect, so plain
``except ValueError`` / ``except FileNotFoundError`` keeps working."""

from __future__ import annotations

import importlib
from types import ModuleType


class AdvPriorError(Exception):
    """Base class of every advprior-specific error."""


class ModelNotFoundError(AdvPriorError, FileNotFoundError):
    """An alias, directory, Hub repo or file that does not exist."""


class ChecksumMismatchError(AdvPriorError, ValueError):
    """A weights file whose sha256 differs from the one pinned in the manifest."""


class CorruptCheckpointError(AdvPriorError, ValueError):
    """A checkpoint that cannot be parsed, or whose tensors do not match its config."""


class PriorMismatchError(AdvPriorError, ValueError):
    """A state dict trained for one prior loaded onto another (e.g. a ``LatentHead`` trained on
    GAN-S loaded onto a head built on GAN-U); the message names both priors."""


class OfflineError(AdvPriorError, OSError):
    """Offline mode (or no network) and the requested file is not in the cache."""


class MotionFormatError(AdvPriorError, ValueError):
    """A malformed, truncated or unsupported motion file; the message names file and line."""

    def __init__(self, message: str, path: object = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        super().__init__(where + message)
        self.path = path
        self.line = line


class KeypointLayoutError(AdvPriorError, ValueError):
    """2D keypoints whose geometry shows another layout than the ``keypoint_format`` they were
    given with (e.g. OpenPose BODY_25B keypoints passed as ``openpose25``: the two put different
    points at the same indices); the message names the likely right format, also kept in
    ``likely_format``."""

    def __init__(self, message: str, likely_format: str | None = None) -> None:
        super().__init__(message)
        self.likely_format = likely_format


class RetargetWarning(UserWarning):
    """A motion imported with an approximation worth knowing (e.g. a foot without a toe or End
    Site below its ankle); the message names the file and what was approximated."""


class AngleUnitWarning(UserWarning):
    """Axis-angle poses whose rotation vectors are too long for radians and look like degrees
    (a BVH / mocap export's unit), passed where advprior does not refuse them: the body model's
    forward, which an optimiser's line search may call with any value. Boundaries that take a
    user's poses once (file importers, ``invert``, ``project_pose``, ``score``, AMASS export)
    raise instead. The message names the argument and the fix (``np.deg2rad``)."""


class CameraWarning(UserWarning):
    """A camera that looks wrong for the keypoints fitted through it: a focal length in
    millimetres instead of pixels (the person would span more than three focal lengths).
    ``advprior fit`` refuses such a camera before fitting; ``fit_keypoints`` warns and fits."""


class AmbiguousOrientationWarning(UserWarning):
    """A ``global_orient`` that reads two ways: a ``(3, 3)`` with 3 poses is taken as 3 rotation
    vectors, but its values also make a rotation matrix (one orientation for every pose). The
    message names both readings and the unambiguous shapes to pass."""


class RevisionWarning(UserWarning):
    """A ``revision=`` that was not used: a manifest alias always loads its pinned revision
    (the sha256 it verifies belongs to that one) and a local folder has none. The message names
    the revision that was loaded instead."""


class ManifestError(CorruptCheckpointError):
    """A ``weights_manifest.json`` that is not valid JSON or breaks its schema."""


class UnsafeFileError(CorruptCheckpointError):
    """A file that asks to run code when loaded (e.g. a pickle naming ``os.system``); refused
    before anything from it runs. The message names the refused ``module.name``."""


class UsageError(AdvPriorError, ValueError):
    """A command-line argument with an invalid value (the ``advprior`` script exits 2)."""


class RunFolderError(AdvPriorError, OSError):
    """A training run folder that holds a checkpoint (and neither resume nor overwrite was
    asked for), or that another live process has locked."""


class MissingExtraError(AdvPriorError, ImportError):
    """An optional dependency (a pip extra of advprior) is not installed; the message names the
    package and the ``pip install "advprior[EXTRA]"`` that adds it."""


def require_extra(module: str, extra: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"sklearn.mixture"``) or raise :class:`MissingExtraError` saying
    that ``purpose`` needs ``package`` (default: ``module``'s top level; pass it when the module
    lives elsewhere, as ``torch.utils.tensorboard`` needs ``tensorboard``) and which extra
    installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = package or module.split(".")[0]
        raise MissingExtraError(
            f"{purpose} needs the optional package {package!r} ({err}); install it with "
            f'pip install "advprior[{extra}]"',
            name=package,
        ) from err
