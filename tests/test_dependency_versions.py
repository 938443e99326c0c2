"""The fallbacks for the oldest dependency releases pyproject.toml admits, tested here on the
current ones by taking the newer API away (monkeypatching it off), so CI covers them. README's
"Tested minimum versions" says which releases were run for real."""

from __future__ import annotations

import inspect

import pytest
import torch

import advprior
from advprior import version
from advprior.tensors import cacheable, chunk_bounds


@pytest.fixture
def torch_2_1_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compiler as torch 2.1 has it: no is_compiling, no is_exporting; and its
    torch._utils.is_compiling, which returns False (dynamo reads it as True; newer torch
    forwards it to torch.compiler.is_compiling)."""
    monkeypatch.delattr(torch.compiler, "is_compiling", raising=False)
    monkeypatch.delattr(torch.compiler, "is_exporting", raising=False)
    monkeypatch.setattr(torch._utils, "is_compiling", lambda: False, raising=False)


def test_compiler_flags_without_torch_compiler_is_compiling(torch_2_1_compiler) -> None:
    assert not version.is_compiling() and not version.is_exporting()
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert cacheable(torch.zeros(2))


def test_decode_without_torch_compiler_is_compiling(torch_2_1_compiler) -> None:
    prior = advprior.PosePrior.from_pretrained("gan-s")
    poses = prior.sample(3, generator=torch.Generator().manual_seed(0))
    assert poses.shape == (3, 63) and torch.isfinite(poses).all()


def test_old_torch_reads_dynamos_own_flag(
    torch_2_1_compiler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch 2.1's dynamo reads torch._utils.is_compiling() as True while it traces."""
    monkeypatch.setattr(torch._utils, "is_compiling", lambda: True, raising=False)
    assert version.is_compiling() and version.is_exporting()
    assert chunk_bounds(10, 4) == [(0, 10)]
    assert not cacheable(torch.zeros(2))
    monkeypatch.setattr(torch._utils, "is_compiling", lambda: False, raising=False)
    assert not version.is_compiling()


def _old_autocast_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Autocast's state as torch < 2.4 reads it: no get_autocast_dtype, and
    is_autocast_enabled() without a device type argument (it means CUDA). torch's own
    torch.autocast needs the new API, so regions are entered before this and left after
    monkeypatch.undo(). On a torch that is that old already, nothing to take away."""
    if not hasattr(torch, "get_autocast_dtype"):
        return
    current = torch.is_autocast_enabled

    def is_autocast_enabled() -> bool:
        return current("cuda")

    monkeypatch.delattr(torch, "get_autocast_dtype")
    monkeypatch.setattr(torch, "is_autocast_enabled", is_autocast_enabled)


def test_autocast_state_on_old_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    _old_autocast_api(monkeypatch)
    assert not version.autocast_enabled("cpu") and not version.autocast_enabled("meta")
    monkeypatch.undo()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _old_autocast_api(monkeypatch)
        assert version.autocast_enabled("cpu")
        assert version.autocast_dtype("cpu") == torch.bfloat16
        assert version.autocast_dtype("meta") is None
        monkeypatch.undo()


def test_decode_inside_autocast_and_invert_on_old_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    prior = advprior.PosePrior.from_pretrained("gan-s")
    z = prior.sample_latent(2, generator=torch.Generator().manual_seed(0))
    poses = prior.decode(z)
    _old_autocast_api(monkeypatch)
    inverted = prior.invert(poses, steps=5)
    assert inverted.dtype == torch.float32 and torch.isfinite(inverted).all()
    monkeypatch.undo()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _old_autocast_api(monkeypatch)
        assert prior.decode(z.bfloat16()).dtype == torch.bfloat16
        monkeypatch.undo()


def test_onnx_export_on_torch_without_the_dynamo_argument(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch < 2.5's torch.onnx.export has no ``dynamo`` argument (TypeError if passed)."""
    pytest.importorskip("onnx", reason="onnx is not installed (advprior[export])")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    from advprior.export import export_prior

    current = torch.onnx.export
    # on a torch that is that old already, the wrapper changes nothing
    keep = {"dynamo": False} if "dynamo" in inspect.signature(current).parameters else {}

    def export(model, args, f, *, input_names, output_names, dynamic_axes, opset_version):
        return current(
            model,
            args,
            f,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset_version,
            **keep,
        )

    monkeypatch.setattr(torch.onnx, "export", export)
    assert version.onnx_export_options() == {}
    export_prior("gan-s", tmp_path / "x.onnx")
    session = ort.InferenceSession(str(tmp_path / "x.onnx"), providers=["CPUExecutionProvider"])
    z = advprior.PosePrior.from_pretrained("gan-s").sample_latent(3)
    assert session.run(None, {"z": z.numpy()})[0].shape == (3, 63)


def test_an_op_the_opset_lacks_is_one_value_error_on_torch_2_1(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch 2.1's torch.onnx.OnnxExporterError is the dynamo exporter's, not the base of the
    UnsupportedOperatorError the TorchScript-based exporter raises."""
    pytest.importorskip("onnx", reason="onnx is not installed (advprior[export])")
    import advprior.export

    class DynamoExporterError(RuntimeError):
        pass

    monkeypatch.setattr(torch.onnx, "OnnxExporterError", DynamoExporterError)
    monkeypatch.setattr(advprior.export, "MIN_OPSET", 7)
    for low in (7, 8):  # torch 2.1 raises its CheckerError for 8, a text of several lines
        with pytest.raises(ValueError, match=f"cannot export at ONNX opset {low}: ") as err:
            advprior.export.export_prior("gan-s", tmp_path / "x.onnx", opset=low)
        assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())


def test_smplx_file_with_uint32_landmarks_loads_on_torch_without_uint32(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SMPL-X files store lmk_faces_idx as uint32; torch < 2.3 has no such dtype and its
    torch.tensor (which smplx calls on that array) raises TypeError."""
    import numpy as np
    from test_body_real_layouts import _family, _smplx_npz_2019

    from advprior.body import load_body_model

    path = _smplx_npz_2019(tmp_path, _family("smplx", expr=10))
    assert np.load(path)["lmk_faces_idx"].dtype == np.uint32
    current = torch.tensor

    def tensor(data, *args, **kwargs):
        if isinstance(data, np.ndarray) and data.dtype.kind == "u" and data.dtype.itemsize > 1:
            raise TypeError(f"can't convert np.ndarray of type numpy.{data.dtype}")
        return current(data, *args, **kwargs)

    monkeypatch.setattr(torch, "tensor", tensor)
    monkeypatch.delattr(torch, "uint32", raising=False)
    body = load_body_model(path)
    assert version.torch_readable(np.zeros(2, np.uint32)).dtype == np.int64
    assert version.torch_readable(np.zeros(2, np.uint8)).dtype == np.uint8
    monkeypatch.undo()
    joints = body(torch.zeros(1, 3), torch.zeros(1, 63)).joints
    assert torch.isfinite(joints).all()


def test_torch_built_for_numpy_1_with_numpy_2_is_one_clear_import_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """torch < 2.3 with numpy 2: every from_numpy raises "Numpy is not available"."""

    def from_numpy(array):
        raise RuntimeError("Numpy is not available")

    version.check_torch_numpy()
    monkeypatch.setattr(torch, "from_numpy", from_numpy)
    with pytest.raises(ImportError, match=r"pip install 'numpy<2', or torch 2.3 or newer"):
        version.check_torch_numpy()


def test_procrustes_with_a_nan_set_on_roma_whose_registration_raises(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """roma 1.5's rigid_points_registration runs torch's SVD, which raises on NaN input."""
    import roma

    from advprior.eval.metrics import p_mpjpe

    current = roma.rigid_points_registration

    def registration(x, y, **kwargs):
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise torch.linalg.LinAlgError("linalg.svd: input contained non-finite values")
        return current(x, y, **kwargs)

    monkeypatch.setattr(roma, "rigid_points_registration", registration)
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(3, 24, 3, generator=g), torch.randn(3, 24, 3, generator=g)
    pred[1, 5, 0] = float("nan")
    target[2, 0, 1] = float("inf")
    err = p_mpjpe(pred, target)
    assert torch.isfinite(err[0]) and torch.isnan(err[1:]).all()
    monkeypatch.undo()
    assert torch.equal(p_mpjpe(pred[:1], target[:1]), err[:1])
