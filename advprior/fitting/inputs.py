"""The checked inputs of a keypoint fit: keypoints and confidences, the pixel camera, the
pixel scale (people of any size fitted at the scale the default weights suit), the fit's
numbers (``sigma``, weights), and the device a fit runs on (:func:`place_fit`).

Shared by :func:`advprior.fitting.fit_keypoints` and :func:`advprior.fitting.fit_sequence`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from advprior.fitting import keypoints as _keypoints
from advprior.fitting.camera import PinholeCamera, positive_number, real_number
from advprior.fitting.keypoints import KeypointFormat, count_hint
from advprior.fitting.priors import resolve_prior
from advprior.interface import Prior
from advprior.tensors import float64_device


def _as_tensor(x: object, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    elif isinstance(x, (list, tuple)):
        x = torch.as_tensor(np.asarray(x, dtype=np.float64))
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    # keypoints from a network may carry autograd; the fit is not differentiable in them
    return x.detach()


#: Largest accepted keypoint coordinate (pixels). The robust reprojection loss squares
#: residuals and multiplies by sigma^2; beyond ~1e17 px float32 overflows (the fit returns NaN),
#: and no camera image is anywhere near this size, so a far smaller bound loses nothing.
MAX_KEYPOINT_PX = 1e9


#: Smallest accepted extent (pixels, the larger side of the bounding box) of a frame's visible
#: keypoints. Keypoints in normalised coordinates ([0, 1], [-1, 1]) span at most 2 units; no
#: detector finds a person 2 px tall, and a fit of one would be meaningless anyway.
MIN_KEYPOINT_SPAN_PX = 2.0


#: Smallest accepted focal length (pixels). The fit's weights (``sigma``, the stage weights,
#: the pose density's) are relative to squared pixels: in normalised units (focal ~1) the
#: prior outweighs the keypoints by ~1e5 and the fit ignores them. A 20 px wide image at a
#: 90 degree field of view still has a 10 px focal length.
MIN_FOCAL_PX = 10.0


def check_pixel_camera(camera: object) -> PinholeCamera:
    """``camera`` if it is a :class:`PinholeCamera` in pixels: ``TypeError`` for another type,
    ``ValueError`` for a focal length below :data:`MIN_FOCAL_PX` (normalised coordinates)."""
    if not isinstance(camera, PinholeCamera):
        raise TypeError(
            f"camera must be an advprior.fitting.PinholeCamera, got {type(camera).__name__}"
        )
    if min(camera.focal) < MIN_FOCAL_PX:
        raise ValueError(
            f"camera focal length {camera.focal} is below {MIN_FOCAL_PX:g}: the fit works in "
            "pixels (sigma and the prior weights are relative to squared pixels); for "
            "normalised coordinates multiply the keypoints, focal length and centre by the "
            "image size in pixels"
        )
    return camera


def prepare_keypoints(
    keypoints: object,
    confidence: object,
    fmt: KeypointFormat,
    min_keypoints: int = 2,
    *,
    check_layout: bool = True,
) -> tuple[Tensor, Tensor]:
    """Validate ``keypoints (B, J, 2)`` (or ``(B, J, 3)`` with confidence in the last column
    when ``confidence`` is None) and ``confidence (B, J)``; return float tensors.

    NaN keypoints count as missing (their confidence becomes 0); no frames (B = 0), Inf
    keypoints, coordinates beyond :data:`MAX_KEYPOINT_PX`, NaN or out-of-range confidences,
    and frames with fewer than two keypoints of positive confidence raise ``ValueError`` (the
    last check uses ``min_keypoints``; 0 skips it). Keypoints with no counterpart on the body
    (``fmt.unobserved``, BODY_25B's HeadTop) get confidence 0.
    :func:`~advprior.fitting.keypoints.check_layout` raises
    :class:`~advprior.errors.KeypointLayoutError` for BODY_25B keypoints given as
    ``openpose25`` and the reverse, unless ``check_layout`` is False.
    """
    kp = _as_tensor(keypoints, "keypoints")
    dtype = kp.dtype if kp.dtype == torch.float64 else torch.float32
    kp = kp.to(dtype)
    j = fmt.num_keypoints
    if kp.ndim != 3 or kp.shape[1] != j or kp.shape[2] not in (2, 3):
        hint = count_hint(kp.shape[1], fmt) if kp.ndim == 3 else ""
        raise ValueError(
            f"keypoints must have shape (B, {j}, 2) for keypoint_format "
            f"{fmt.name!r} (or (B, {j}, 3) with confidence), got {tuple(kp.shape)}{hint}"
        )
    if kp.shape[0] == 0:
        # an empty batch (every frame filtered out upstream) has nothing to fit; the fit
        # itself failed on it with a ZeroDivisionError
        raise ValueError(f"keypoints has no frames (shape {tuple(kp.shape)}); give B >= 1 frames")
    if confidence is None:
        if kp.shape[2] == 3:
            conf = kp[..., 2]
        else:
            conf = torch.ones(kp.shape[:2], dtype=dtype, device=kp.device)
    else:
        if kp.shape[2] == 3:
            raise ValueError(
                "keypoints has a third (confidence) column and confidence is also "
                "given; pass keypoints (B, J, 2) with confidence, or (B, J, 3) alone"
            )
        conf = _as_tensor(confidence, "confidence").to(dtype=dtype, device=kp.device)
        if conf.shape != kp.shape[:2]:
            raise ValueError(
                f"confidence must have shape {tuple(kp.shape[:2])} (B, J) to match "
                f"keypoints {tuple(kp.shape)}, got {tuple(conf.shape)}"
            )
    kp = kp[..., :2]
    # a missing keypoint (NaN coordinates) needs no confidence: a (B, J, 3) row [nan, nan, nan]
    # is missing, not a NaN confidence
    conf = torch.where(torch.isnan(kp).any(-1), torch.zeros_like(conf), conf)
    if bool(torch.isnan(conf).any()) or bool(((conf < 0) | (conf > 1)).any()):
        raise ValueError("confidence must lie in [0, 1] (no NaN)")
    if bool(torch.isinf(kp).any()):
        # at confidence 0 too (Inf times a zero weight is NaN in the fit): the message said
        # "or confidence 0" to callers whose Inf keypoints had confidence 0 already
        raise ValueError(
            "keypoints contain +-Inf; mark missing keypoints with NaN (or with confidence 0 "
            "and finite coordinates: an Inf keypoint is refused at any confidence)"
        )
    big = float(torch.nan_to_num(kp.abs(), nan=0.0).max()) if kp.numel() else 0.0
    if big > MAX_KEYPOINT_PX:
        raise ValueError(
            f"keypoints must be pixel coordinates with |x|, |y| <= {MAX_KEYPOINT_PX:.0e}, got "
            f"{big:.3g}: squared residuals that large overflow float32 and the fit turns NaN"
        )
    missing = torch.isnan(kp).any(-1)
    conf = torch.where(missing, torch.zeros_like(conf), conf)
    kp = torch.where(missing[..., None], torch.zeros_like(kp), kp)
    # BODY_25B keypoints passed as openpose25 (or the reverse) raise KeypointLayoutError; the
    # rule was measured on synthetic keypoints only, so a caller sure of its data can skip it
    if check_layout:
        _keypoints.check_layout(kp, conf, fmt)
    if fmt.unobserved:
        # keypoints with no counterpart on the body (BODY_25B's HeadTop): never fitted
        missing[:, list(fmt.unobserved)] = True
        conf = torch.where(missing, torch.zeros_like(conf), conf)
        kp = torch.where(missing[..., None], torch.zeros_like(kp), kp)
    visible = conf > 0
    seen = visible.sum(-1)
    bad = torch.nonzero(seen < min_keypoints).flatten().tolist()
    if bad:
        raise ValueError(
            f"frames [{_frame_list(bad)}] have fewer than 2 keypoints with confidence > 0 "
            "(all-zero confidence or NaN keypoints); nothing to fit there: drop them"
        )
    inf = torch.tensor(float("inf"), dtype=kp.dtype, device=kp.device)
    low = torch.where(visible[..., None], kp, inf).amin(1)
    high = torch.where(visible[..., None], kp, -inf).amax(1)
    span = (high - low).amax(-1)  # (B,), -inf without visible keypoints
    tiny = torch.nonzero((seen >= 2) & (span < MIN_KEYPOINT_SPAN_PX)).flatten().tolist()
    if tiny:
        raise ValueError(
            f"frames [{_frame_list(tiny)}]: their visible keypoints span less than "
            f"{MIN_KEYPOINT_SPAN_PX:g} px; keypoints must be pixel coordinates (normalised "
            "[0, 1] or [-1, 1] ones? multiply them by the image size; else drop the frames)"
        )
    return kp, conf


def _frame_list(frames: list[int]) -> str:
    return ", ".join(str(b) for b in frames[:10]) + (" ..." if len(frames) > 10 else "")


#: Person size (pixels: the larger side of a frame's visible keypoints' bounding box) that the
#: default weights suit: about the median of docs/fitting.md's benchmark people (303 px with
#: SMPL-24 joints, 346 px with BODY_25, whose nose and heels reach further;
#: benchmarks/fit_large_images.py, validation split).
REFERENCE_PERSON_PX = 350.0


def auto_pixel_scale(keypoints: Tensor, confidence: Tensor, per_frame: bool = False) -> Any:
    """The ``pixel_scale`` that ``pixel_scale="auto"`` picks.

    Args:
        keypoints: ``(..., J, 2)`` pixels; confidence ``(..., J)``, 0 for missing keypoints.
        per_frame: each frame's own scale instead of one for the batch (the median frame's).
            :func:`fit_keypoints` fits at the batch's scale, except a person whose own scale is
            more than twice it (a nearer person among farther ones), who is fitted at its own;
            :func:`fit_sequence` does the same per clip (a clip's scale is its median
            frame's), its frames being tied together.

    Returns:
        The power of two nearest to the person's size (the larger side of the visible
        keypoints' bounding box) over :data:`REFERENCE_PERSON_PX`, and at least 1: a float
        for the median size over frames, or with ``per_frame`` a float64 tensor of shape
        ``(...)`` (1 for a frame with fewer than two visible keypoints). Powers of two keep
        the scaling exact in floating point (so the benchmark's people, 0.87-0.99 of the
        reference, get 1, the fit of 0.2.0, bit for bit), and a fit is within noise of its
        best within a factor of 2 of the right scale (``docs/fitting.md``, "Large images").
        Never below 1: for people smaller than the benchmark's a detector's noise does not
        shrink with them, and the defaults were not measured against that.
    """
    seen = confidence > 0
    xy = keypoints.detach()
    big = torch.full_like(xy, float("inf"))
    low = torch.where(seen[..., None], xy, big).amin(-2)
    high = torch.where(seen[..., None], xy, -big).amax(-2)
    size = (high - low).amax(-1)
    valid = seen.sum(-1) >= 2
    if per_frame:
        ratio = torch.where(valid, size, 0.0).to(torch.float64) / REFERENCE_PERSON_PX
        # a ratio of 0 or NaN (one point seen twice, no keypoints) keeps the scale of 0.2.0
        ratio = torch.where(ratio > 0, ratio, 1.0)
        return torch.exp2(torch.round(torch.log2(ratio))).clamp(min=1.0)
    size = size[valid]
    if size.numel() == 0:
        return 1.0
    ratio = float(size.float().median()) / REFERENCE_PERSON_PX
    if not ratio > 0:
        return 1.0
    return float(max(1.0, 2.0 ** round(math.log2(ratio))))


def _scale_groups(
    value: object, keypoints: Tensor, confidence: Tensor, clips: int | None = None
) -> list[tuple[float, Tensor | None]]:
    """``(scale, indices)`` per distinct pixel scale of a ``(B, J, 2)`` batch: indices of
    frames, or with ``clips``, of the clips the B frames are (``clips`` x ``B / clips`` frames,
    clip after clip; a clip's own scale is its median frame's). One group with ``None``
    (everything) when all share a scale."""
    batch = _check_pixel_scale(value, keypoints, confidence)
    items = keypoints.shape[0] if clips is None else clips
    if not (isinstance(value, str) and value == "auto") or items <= 1:
        return [(batch, None)]
    # A person more than twice the batch's scale (a factor of 4 or more in size) is fitted at
    # its own: that far off, the shared scale costs 20-50 mm (docs/fitting.md, "Large images").
    # Never the other way: a body's box is at most about its height, so a box much larger than
    # the others' is a nearer person, but a much smaller one is as often a crouching, folded or
    # partly visible person of the batch's scale as a farther one.
    if clips is None:
        own = auto_pixel_scale(keypoints, confidence, per_frame=True)
    else:
        per_clip = zip(keypoints.chunk(clips), confidence.chunk(clips), strict=True)
        own = torch.tensor([auto_pixel_scale(k, c) for k, c in per_clip], dtype=torch.float64)
    scales = torch.where(own > 2.0 * batch, own, torch.full_like(own, batch))
    distinct = torch.unique(scales).tolist()
    if len(distinct) == 1:
        return [(batch, None)]
    return [(float(v), torch.nonzero(scales == v).flatten()) for v in distinct]


def _scale_info(groups: list[tuple[float, Tensor | None]], frames: int) -> Any:
    """``info["pixel_scale"]``: the scale, or with several, the list of each frame's (clip's)."""
    if len(groups) == 1:
        return groups[0][0]
    scales = [0.0] * frames
    for scale, rows in groups:
        for i in rows.tolist():
            scales[i] = scale
    return scales


def _check_pixel_scale(value: object, keypoints: Tensor, confidence: Tensor) -> float:
    if isinstance(value, str) and value == "auto":
        return auto_pixel_scale(keypoints, confidence)
    number = positive_number(value)
    if number is None:
        raise ValueError(f"pixel_scale must be a positive number or 'auto', got {value!r}")
    return number


def _check_sigma(value: object) -> float:
    number = positive_number(value)
    if number is None:
        raise ValueError(f"sigma must be a positive number of pixels, got {value!r}")
    return number


def _check_weight(value: object, name: str) -> float:
    number = real_number(value)
    if number is None or not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return number


def place_fit(
    keypoints: object, kp: Tensor, conf: Tensor, prior: object, body_model: object | None
) -> tuple[Tensor, Tensor, Prior | None, object]:
    """``(kp, conf, prior model, body model)`` of a fit, all on the device it runs on.

    That device is the prior's when the prior is passed as a module (its decoder cannot take
    latents from elsewhere), else that of ``keypoints`` (the caller's) when they are a tensor,
    else (numpy keypoints have no device) the body model's, else the CPU. The checked
    keypoints ``kp``, ``conf``, a prior given by name and the default stand-in body are put
    there: GPU keypoints with ``prior="gan-s"`` (which loads on the CPU), and numpy or CPU
    keypoints with a prior on a GPU, met on mixed devices at the first decode. On Apple's MPS,
    which has no float64, float64 keypoints (numpy's default) are fitted in float32."""
    from advprior.body import load_body_model

    model, _ = resolve_prior(prior)
    named = isinstance(prior, str)
    if model is not None and not named and isinstance(model, torch.nn.Module):
        device = model.device
    elif isinstance(keypoints, Tensor):
        device = keypoints.device
    else:
        device = getattr(body_model, "device", kp.device)
    if body_model is None:
        body_model = load_body_model(device=device)
    if named and model is not None:
        model = model.to(device)  # loaded by this call: no one else holds it
    dtype = kp.dtype if float64_device(device) == device else torch.float32
    return kp.to(device, dtype), conf.to(device, dtype), model, body_model
