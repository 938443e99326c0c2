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
