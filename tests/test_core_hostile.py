"""Hostile checkpoints and arguments: configs are checked against the safetensors header before
anything is allocated; extreme but finite inputs give a clear error, never NaN; a generator that
is not a torch.Generator is a TypeError naming the argument."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advprior import PosePrior, load_pretrained
from advprior.baselines import GMMPrior, VPoserVAE
from advprior.errors import CameraWarning, CorruptCheckpointError
from advprior.fitting import PinholeCamera, fit_keypoints
from advprior.latent import LatentSpace

# Above this a real (non-meta) Linear weight is an allocation no test model needs.
_HUGE = 10**8


@pytest.fixture
def guard_allocations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail (instead of exhausting memory) if a huge Linear layer is really allocated."""
    real = nn.Linear.__init__

    def guarded(self, in_features, out_features, *args, **kwargs):
        device = kwargs.get("device") or torch.empty(0).device  # get_default_device: torch 2.3
        if in_features * out_features > _HUGE and torch.device(device).type != "meta":
            raise AssertionError(f"allocated a {in_features}x{out_features} Linear layer")
        real(self, in_features, out_features, *args, **kwargs)

    monkeypatch.setattr(nn.Linear, "__init__", guarded)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    PosePrior(latent="sphere", latent_dim=8, hidden_dim=16).save_pretrained(tmp_path / "ck")
    return tmp_path / "ck"


def _edit_config(folder: Path, **changes: object) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize("hidden", [10**9, 10**12, 2**62])
def test_absurd_size_refused_before_allocation(checkpoint, guard_allocations, hidden) -> None:
    _edit_config(checkpoint, hidden_dim=hidden)
    # refused while building on the meta device (shapes only) or when compared with the header
    with pytest.raises(CorruptCheckpointError, match=r"config\.json(: cannot build| does not ma)"):
        load_pretrained(checkpoint)


def test_non_integer_size_is_corrupt(checkpoint, guard_allocations) -> None:
    _edit_config(checkpoint, hidden_dim=1e9)  # JSON float
    with pytest.raises(CorruptCheckpointError, match="cannot build PosePrior"):
        PosePrior.from_pretrained(checkpoint)


def test_config_disagreeing_with_header_names_both_shapes(checkpoint) -> None:
    _edit_config(checkpoint, latent_dim=12)
    with pytest.raises(CorruptCheckpointError, match=r"the config implies .*12.* the weights hold"):
        load_pretrained(checkpoint)


@pytest.mark.parametrize("bad", [42, np.random.default_rng(0), "seed", torch.tensor(1)])
def test_generator_must_be_a_torch_generator(bad) -> None:
    models = [PosePrior(latent_dim=8, hidden_dim=16), VPoserVAE(latent_dim=8, hidden_dim=16),
              GMMPrior(num_components=2)]  # fmt: skip
    for model in models:
        with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
            model.sample(2, generator=bad)
    with pytest.raises(TypeError, match="generator"):
        LatentSpace("normal", 4).sample(2, generator=bad)
    with pytest.raises(TypeError, match="generator"):
        models[0].sample_latent(2, generator=bad)


@pytest.mark.parametrize("scale", [1e38, -3e38])
def test_extreme_finite_latents_decode_without_raising(scale: float) -> None:
    # decode runs inside other people's optimisers (issue 14), so it never raises for a value an
    # optimiser can produce: on the sphere (decode projects) any finite latent has a direction,
    # so it decodes to that direction's pose; a normal latent that overflows the network's first
    # layer gives non-finite poses, as any torch module would (docs/security.md)
    prior = load_pretrained("gan-s")
    vae = load_pretrained("vae")
    z = torch.full((2, 32), scale)
    unit = torch.full((2, 32), 1.0 if scale > 0 else -1.0)
    torch.testing.assert_close(prior.decode(z), prior.decode(unit))
    assert not torch.isfinite(vae.decode(z)).all()
    # moderate latents far outside the space still decode to finite poses
    assert torch.isfinite(vae.decode(torch.full((2, 32), 1e20))).all()
    assert torch.isfinite(prior.decode(torch.full((2, 32), 1e20), project=False)).all()


@pytest.mark.parametrize("scale", [1e15, 1e19, 1e30, 3e38])
def test_extreme_keypoints_raise_naming_the_bound(scale: float) -> None:
    kp = torch.rand(1, 24, 2, generator=torch.Generator().manual_seed(0)) * scale
    cam = PinholeCamera(1000.0, (500.0, 500.0))
    with pytest.raises(ValueError, match=r"keypoints must be pixel coordinates"):
        fit_keypoints(kp, None, cam, prior=None, iterations=1)


def test_largest_accepted_keypoints_fit_to_finite_numbers() -> None:
    from advprior.fitting.smplify import MAX_KEYPOINT_PX

    kp = torch.rand(1, 24, 2, generator=torch.Generator().manual_seed(0)) * MAX_KEYPOINT_PX
    # keypoints a million focal lengths apart: the fit warns of the camera, and still fits
    with pytest.warns(CameraWarning, match="a focal length in mm"):
        result = fit_keypoints(kp, None, PinholeCamera(1000.0, (500.0, 500.0)), prior=None,
                               iterations=2)  # fmt: skip
    for name in ("body_pose", "global_orient", "transl", "loss", "projected"):
        assert torch.isfinite(getattr(result, name)).all(), name
