"""The fallbacks for the oldest dependency releases pyproject.toml admits, tested here on the
current ones by taking the newer API away (monkeypatching it off), so CI covers them. README's
"Tested minimum versions" says which releases were run for real."""

from __future__ import annotations

import sys

import pytest
import torch

import advprior
from advprior import version
from advprior.tensors import cacheable, chunk_bounds


@pytest.fixture
def torch_2_1_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.compiler as torch 2.1 has it: no is_compiling, no is_exporting."""
    monkeypatch.delattr(torch.compiler, "is_compiling", raising=False)
    monkeypatch.delattr(torch.compiler, "is_exporting", raising=False)


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
    class Dynamo:
        compiling = True

        def is_compiling(self) -> bool:
            return self.compiling

    monkeypatch.setitem(sys.modules, "torch._dynamo", Dynamo())
    assert version.is_compiling() and version.is_exporting()
    assert chunk_bounds(10, 4) == [(0, 10)]
    assert not cacheable(torch.zeros(2))
    monkeypatch.delitem(sys.modules, "torch._dynamo")
    assert not version.is_compiling()


def _old_autocast_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """Autocast's state as torch < 2.4 reads it: no get_autocast_dtype, and
    is_autocast_enabled() without a device type argument (it means CUDA). torch's own
    torch.autocast needs the new API, so regions are entered before this and left after
    monkeypatch.undo()."""
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
