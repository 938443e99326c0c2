"""The package version, in the lowest layer so that any module can record it, and the one place
that checks dependencies' versions (fallbacks for the older releases pyproject.toml admits)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch

__version__ = "0.2.0"


def software_versions() -> dict[str, str]:
    """advprior's, torch's, numpy's and Python's versions, for a results file: a seed gives
    the same numbers only with the same code (and the same thread count and device type,
    which the callers record beside these)."""
    import platform

    import numpy as np
    import torch

    return {
        "advprior": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


# Fallbacks for the older releases pyproject.toml admits. Every check of a dependency's version
# or of an API it added later lives here; callers ask these functions, never ``hasattr`` on
# torch themselves. docs: README.md's "Tested minimum versions".


def is_compiling() -> bool:
    """``torch.compiler.is_compiling()`` (torch >= 2.3). On older torch, ``torch._utils``'
    flag, which dynamo (torch.compile, and torch.export, which traces with it there) reads as
    True; a flag in ``torch._dynamo`` would import it (about a second) or, looked up in
    ``sys.modules``, stop torch 2.1's dynamo ("Unsupported comparison PythonModuleVariable")."""
    import torch

    check = getattr(torch.compiler, "is_compiling", None)
    if check is not None:
        return bool(check())
    return bool(torch._utils.is_compiling())


def is_exporting() -> bool:
    """``torch.compiler.is_exporting()`` (added late 2024). Older torch has no such flag; torch
    2.1's ``torch.export`` traces with dynamo, which :func:`is_compiling` already reports."""
    import torch

    check = getattr(torch.compiler, "is_exporting", None)
    return bool(check()) if check is not None else is_compiling()


# torch < 2.4: autocast's state is read per device type by its own functions, and
# ``torch.is_autocast_enabled()`` takes no argument (it means CUDA).
_OLD_AUTOCAST = {
    "cpu": ("is_autocast_cpu_enabled", "get_autocast_cpu_dtype"),
    "cuda": ("is_autocast_enabled", "get_autocast_gpu_dtype"),
    "xpu": ("is_autocast_xpu_enabled", "get_autocast_xpu_dtype"),
}


def _old_autocast(device_type: str, which: int):
    """torch < 2.4's ``is_autocast_*_enabled`` (``which`` 0) or ``get_autocast_*_dtype`` (1)
    for ``device_type``, or None."""
    import torch

    names = _OLD_AUTOCAST.get(device_type)
    home = getattr(torch, "xpu", None) if device_type == "xpu" else torch
    return getattr(home, names[which], None) if names else None


def autocast_enabled(device_type: str) -> bool:
    """``torch.is_autocast_enabled(device_type)`` (torch >= 2.4); False for a device type the
    running torch's autocast does not know (torch >= 2.4 raises ``RuntimeError`` there)."""
    import torch

    if hasattr(torch, "get_autocast_dtype"):  # added with the device_type argument
        try:
            return bool(torch.is_autocast_enabled(device_type))
        except RuntimeError:  # a device type this build does not know (e.g. meta)
            return False
    check = _old_autocast(device_type, 0)
    return bool(check()) if check else False


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """``torch.get_autocast_dtype(device_type)`` (torch >= 2.4); None for a device type the
    running torch's autocast does not know."""
    import torch

    if hasattr(torch, "get_autocast_dtype"):
        try:
            return torch.get_autocast_dtype(device_type)
        except RuntimeError:
            return None
    get = _old_autocast(device_type, 1)
    return get() if get else None


def onnx_export_options() -> dict[str, bool]:
    """Keyword arguments that keep ``torch.onnx.export`` on the TorchScript-based exporter:
    ``dynamo=False`` where it takes that argument (torch >= 2.5, whose default turned to the
    torch.export-based one in 2.9), none before (torch 2.1 raises ``TypeError`` on it)."""
    import inspect

    import torch.onnx

    takes = "dynamo" in inspect.signature(torch.onnx.export).parameters
    return {"dynamo": False} if takes else {}


def onnx_export_errors() -> tuple[type[Exception], ...]:
    """What ``torch.onnx.export`` raises for an op the opset lacks: torch.onnx.errors'
    ``OnnxExporterError`` (``UnsupportedOperatorError``'s base), which torch 2.1 kept apart
    from the ``torch.onnx.OnnxExporterError`` its dynamo exporter raises."""
    import torch.onnx
    import torch.onnx.errors

    return (torch.onnx.errors.OnnxExporterError, torch.onnx.OnnxExporterError)


def torch_has_wide_unsigned() -> bool:
    """Whether torch makes tensors of numpy's uint16 / uint32 / uint64 (torch >= 2.3)."""
    import torch

    return hasattr(torch, "uint32")


def torch_readable(array: np.ndarray) -> np.ndarray:
    """``array``, or an int64 copy of it where it holds unsigned integers wider than a byte and
    the running torch has no such dtype: torch < 2.3 (no ``torch.uint32``) refuses them ("can't
    convert np.ndarray of type numpy.uint32"), and SMPL-X files store ``lmk_faces_idx`` so."""
    import numpy as np

    if array.dtype.kind == "u" and array.dtype.itemsize > 1 and not torch_has_wide_unsigned():
        return array.astype(np.int64)
    return array


def check_torch_numpy() -> None:
    """Raise an ``ImportError`` that names the fix when torch cannot exchange arrays with the
    installed numpy. torch before 2.3 is built for numpy 1.x only: with numpy 2 every
    ``torch.from_numpy`` / ``.numpy()`` raises "Numpy is not available" (pytorch#107302), deep
    inside the first load of weights or a body file. pyproject.toml cannot say "numpy<2 when
    torch<2.3", so ``advprior.tensors`` asks here once, when the torch side is first imported."""
    import numpy as np
    import torch

    try:
        torch.from_numpy(np.zeros(1))
    except RuntimeError as err:
        raise ImportError(
            f"torch {torch.__version__} cannot use numpy {np.__version__} ({err}): torch before "
            "2.3 works with numpy 1.x only; pip install 'numpy<2', or torch 2.3 or newer"
        ) from None


def torch_version() -> tuple[int, int]:
    """torch's ``(major, minor)``: for what only a release number tells (the tests' skips on
    torch 2.1, where torch.compile / torch.export of advprior's modules are not supported)."""
    import torch

    major, minor = torch.__version__.split(".")[:2]
    return int(major), int(minor)


def cpu_float16_matmul() -> bool:
    """Whether this torch multiplies float16 matrices on the CPU (torch 2.1 raises
    ``"addmm_impl_cpu_" not implemented for 'Half'``): a ``.half()`` prior runs on a GPU there."""
    import torch

    try:
        torch.ones(1, 1, dtype=torch.float16) @ torch.ones(1, 1, dtype=torch.float16)
    except RuntimeError:
        return False
    return True
