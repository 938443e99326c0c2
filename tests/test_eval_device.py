"""Evaluation helpers keep to the device of their inputs.

The suite runs without a GPU, so the "other device" here is ``meta``: a real torch device with
shapes and dtypes but no data, which raises on a CPU operand exactly where CUDA would.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch.overrides import TorchFunctionMode

from advprior.eval import benchmark, protocol, tasks

META = torch.device("meta")


def test_pose_space_slerp_stays_on_the_device_of_the_poses(monkeypatch) -> None:
    config = pytest.importorskip("torch.fx.experimental._config")
    if not hasattr(config, "meta_nonzero_assume_all_nonzero"):
        pytest.skip("this torch cannot run roma's slerp (torch.nonzero) on meta tensors")
    # roma's slerp picks the short way round with a boolean mask: let meta tensors take it.
    monkeypatch.setattr(config, "meta_nonzero_assume_all_nonzero", True)
    a = torch.empty(2, 63, device=META)
    path = protocol.pose_space_slerp(a, torch.empty(2, 63, device=META), 5)
    assert path.device == META
    assert path.shape == (2, 5, 63)


class _DeviceBody:
    """A body model on ``device`` that refuses inputs from another device (as CUDA layers do)."""

    def __init__(self, device: torch.device, vertices: int = 40) -> None:
        self.device = device
        self.dtype = torch.float32
        self.vertices = vertices

    def __call__(self, global_orient: torch.Tensor, body_pose: torch.Tensor) -> SimpleNamespace:
        for name, x in (("global_orient", global_orient), ("body_pose", body_pose)):
            if x.device != self.device:
                raise RuntimeError(f"{name} on {x.device}, body model on {self.device}")
        n = body_pose.shape[0]
        return SimpleNamespace(
            vertices=torch.empty(n, self.vertices, 3, device=self.device),
            joints=torch.empty(n, 24, 3, device=self.device),
        )


def test_poser_calls_the_body_model_on_its_own_device() -> None:
    poser = protocol.Poser(_DeviceBody(META), n_vertices=8)
    assert poser.num_vertices == 40
    assert len(poser.vertex_ids) == 8


class _DataFreeScalars(TorchFunctionMode):
    """Python numbers read from meta tensors (which hold no data) come back as fixed values, so
    code that reports a float or counts rows runs through; only the devices are under test."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.is_meta:
            name = getattr(func, "__name__", "")
            if name in ("item", "__float__"):
                return 0.0 if x.is_floating_point() else 1
            if name in ("__int__", "__index__"):
                return 1
            if name == "__bool__":
                return True
        return func(*args, **(kwargs or {}))


class _IdentityProjection:
    def project_pose(self, body_pose: torch.Tensor, **options: object) -> torch.Tensor:
        return body_pose


def test_run_inversion_measures_joint_errors_on_the_device_of_the_poses() -> None:
    with _DataFreeScalars():
        out = benchmark.run_inversion(_IdentityProjection(), torch.empty(3, 63, device=META))
    assert out["poses"] == 3


def test_past_limits_writes_the_bent_joint_on_the_device_of_the_poses() -> None:
    with _DataFreeScalars():
        out = tasks.past_limits(torch.empty(3, 63, device=META), torch.Generator().manual_seed(0))
    assert out.device == META
    assert out.shape == (3, 63)


class _HostCopies(_DataFreeScalars):
    """Also lets meta tensors be copied to the CPU (as zeros), as a GPU tensor would be; a test
    of their values (a NaN check) finds nothing."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        x = args[0] if args else None
        name = getattr(func, "__name__", "")
        if isinstance(x, torch.Tensor) and x.is_meta and name == "cpu":
            return torch.zeros(x.shape, dtype=x.dtype)
        if isinstance(x, torch.Tensor) and x.is_meta and name == "__bool__":
            return False
        return super().__torch_function__(func, types, args, kwargs)


class _SumScore:
    """A prior whose score is computed where the poses are (as every prior's is)."""

    def score(self, body_pose: torch.Tensor, **options: object) -> torch.Tensor:
        return -body_pose.pow(2).sum(-1)


def test_plausibility_percentiles_of_scores_on_the_device_of_the_poses() -> None:
    # the calibration scores' quantiles were taken against CPU levels: torch refuses the
    # mix ("quantile() q tensor must be on the same device as the input tensor")
    poses = torch.empty(6, 63, device=META)
    with _HostCopies():
        out = tasks.plausibility_task(_SumScore(), poses, poses, noise=(0.1,))
    assert set(out["percentiles"]) == {"1%", "5%", "10%", "50%"}
    assert set(out["auc"]) == {"noise 0.1 rad", "past limits"}
