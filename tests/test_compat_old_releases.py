"""What users of advprior 0.1.0 and 0.2.0 hold keeps loading, and behaves as it did.

The artefacts in tests/data/old_releases were written by the released code (commits and command
in its README.md): a dataset, a trained model folder, LatentHead and LatentPose state dicts, and
the outputs that release gave for fixed inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from advprior import LatentHead, LatentPose, PosePrior, load_pretrained
from advprior.baselines import GMMPrior
from advprior.cli import main
from advprior.data import load_dataset
from advprior.hub import read_config
from advprior.rotations import axis_angle_to_rotmat

OLD = Path(__file__).parent / "data" / "old_releases"
RELEASES = ["0.1.0", "0.2.0"]

# 0.2.0 changed the 6D-to-rotation and rotation-to-axis-angle code (closed forms), and 0.2.0's
# own code runs here on whatever CPU: the matmuls' kernels (AVX2 or AVX-512, their summation
# order) differ between machines, so even 0.2.0's decode is bit for bit only on the CPU that
# wrote the fixtures (another CI machine moved entries by 1-2 ulp). Every version's float32
# frames are within a few ulp of the exact orthonormal frame of the same network output (this
# fixture's decode here: at most 2.2e-7 from the same decode in float64), so two of them differ
# by at most ~8 ulp of entries bounded by 1.
FRAME_ATOL = 8 * torch.finfo(torch.float32).eps


def outputs(release: str) -> dict[str, np.ndarray]:
    with np.load(OLD / release / "outputs.npz") as f:
        return {k: f[k] for k in f.files}


def close_to_release(release: str, got: torch.Tensor, want: np.ndarray) -> None:
    """Rotation matrices as the release gave them, to FRAME_ATOL (see there)."""
    got_np = got.detach().numpy()
    assert got_np.shape == want.shape
    np.testing.assert_allclose(got_np, want, rtol=0, atol=FRAME_ATOL)


@pytest.fixture(scope="module", params=RELEASES)
def release(request: pytest.FixtureRequest) -> str:
    return request.param


def old_prior(release: str) -> PosePrior:
    return load_pretrained(OLD / release / "model")


def test_fixtures_come_from_their_release(release: str) -> None:
    assert str(outputs(release)["version"]) == release
    assert read_config(OLD / release / "model" / "config.json")["format_version"] == 1


def test_model_folder_decodes_as_it_did(release: str) -> None:
    prior = old_prior(release)
    out = outputs(release)
    z = torch.from_numpy(out["z"])
    # 0.1.0 decoded z as given; 0.2.0 projected first (its unit z move by an ulp)
    kwargs = {"project": False} if release == "0.1.0" else {}
    with torch.no_grad():
        close_to_release(release, prior.decode(z, output="rotmat", **kwargs), out["rotmat"])
        axis_angle = prior.decode(z, **kwargs)
    # axis-angle is ill-conditioned near pi; compare the rotations the two vectors name
    mine = axis_angle_to_rotmat(axis_angle.double().reshape(-1, 21, 3))
    theirs = axis_angle_to_rotmat(torch.from_numpy(out["axis_angle"]).double().reshape(-1, 21, 3))
    torch.testing.assert_close(mine, theirs, rtol=0, atol=FRAME_ATOL)


def test_latent_head_state_dict_loads_and_gives_the_same_poses(release: str) -> None:
    out = outputs(release)
    head = LatentHead(5, old_prior(release)).eval()
    state = torch.load(OLD / release / "latent_head.pt", weights_only=True)
    with pytest.warns(UserWarning, match="records no prior"):
        head.load_state_dict(state)
    with torch.no_grad():
        poses = head(torch.from_numpy(out["features"]), output="rotmat")
    close_to_release(release, poses, out["head"])


def test_latent_pose_state_dict_loads_and_gives_the_same_poses(release: str) -> None:
    # 0.1.0's state dict has no 'z_init' (reset() came in 0.2.0): torch's strict load raised
    # "Missing key(s) in state_dict: z_init"
    out = outputs(release)
    pose = LatentPose(old_prior(release), 3)
    start = pose.z_init.clone()
    pose.load_state_dict(torch.load(OLD / release / "latent_pose.pt", weights_only=True))
    np.testing.assert_array_equal(pose.z.detach().numpy(), out["pose_z"])
    with torch.no_grad():
        close_to_release(release, pose(output="rotmat"), out["pose"])
    pose.reset()
    if release == "0.1.0":  # nothing recorded: back to this module's own start
        torch.testing.assert_close(pose.z.detach(), start, rtol=0, atol=0)
    else:
        assert not torch.equal(pose.z.detach(), torch.from_numpy(out["pose_z"]))


def test_latent_pose_without_z_is_still_incomplete() -> None:
    # only the start may be missing; a state dict without the latent itself is no LatentPose's
    pose = LatentPose(old_prior("0.1.0"), 3)
    state = torch.load(OLD / "0.1.0" / "latent_pose.pt", weights_only=True)
    del state["z"]
    with pytest.raises(RuntimeError, match="Missing key.*'?z'?"):
        pose.load_state_dict(state)


def test_modules_pickled_whole_still_work(release: str) -> None:
    # torch.save(model) of a whole module, as research code saves a model: 0.1.0's head had no
    # `space`, its LatentPose no start nor zero-row flag, its VAE no latent space; each failed
    # at its first call (AttributeError). The pickle is a fixture written by the release.
    from advprior.baselines import VPoserVAE

    out = outputs(release)
    modules = torch.load(OLD / release / "modules.pt", weights_only=False)
    head, pose, vae = modules["head"], modules["pose"], modules["vae"]
    features = torch.from_numpy(out["features"])
    with torch.no_grad():
        close_to_release(release, head(features, output="rotmat"), out["head"])
        close_to_release(release, pose(output="rotmat"), out["pose"])
    np.testing.assert_array_equal(pose.z.detach().numpy(), out["pose_z"])
    assert set(head.state_dict()) >= {"_extra_state", "net.weight"}
    LatentPose(old_prior(release), 3).load_state_dict(pose.state_dict())  # strict
    default_start = LatentPose(old_prior(release), 3).z_init
    pose.reset()  # 0.1.0 recorded no start: the default one (seed 0), as for its state dicts
    assert torch.equal(pose.z.detach(), default_start if release == "0.1.0" else pose.z_init)
    assert not torch.equal(pose.z.detach(), torch.from_numpy(out["pose_z"]))
    # the VAE samples and decodes as a VAE of this version with its weights
    again = VPoserVAE(hidden_dim=8, latent_dim=4).eval()
    again.load_state_dict(vae.state_dict())
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(vae.decode(z), again.decode(z))
    assert vae.latent_space.kind == "normal"
    assert vae.sample(2, generator=torch.Generator().manual_seed(1)).shape == (2, 63)


def test_dataset_loads(release: str, capsys: pytest.CaptureFixture[str]) -> None:
    data = load_dataset(OLD / release / "data.npz")
    assert len(data.body_pose) == 28 and data.meta["advprior_version"] == release
    assert main(["data", "info", str(OLD / release / "data.npz")]) == 0
    assert f"built by advprior {release}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "make", [lambda: PosePrior(hidden_dim=8, latent_dim=4), lambda: GMMPrior(2)]
)
def test_saved_folders_are_refused_by_old_releases_as_newer(tmp_path: Path, make) -> None:
    """0.1.0 and 0.2.0 read format_version 1 only, else "upgrade advprior for newer
    checkpoints"; a format 1 config is handed to the constructor, so a key they do not know
    (weights_sha256) made them call a newer folder corrupt ("are not arguments of PosePrior")."""
    old_known = {"model_type", "format_version", "training"}
    model = make()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    unknown_to_old = set(config) - old_known - set(model._init_config)
    assert unknown_to_old == {"weights_sha256"}
    assert config["format_version"] != 1
    load_pretrained(tmp_path)  # and this advprior reads what it writes


def test_an_old_head_on_another_prior_says_that_its_prior_weights_replace_the_priors() -> None:
    # e.g. a head trained on 0.1.0's gan-s loaded onto today's gan-s: the prior.* tensors it
    # carries are loaded into the (possibly shared) prior; the warning said only that nothing
    # could be checked, naming the weights the prior no longer had
    out = outputs("0.1.0")
    torch.manual_seed(5)
    other = PosePrior(hidden_dim=8, latent_dim=4)
    head = LatentHead(5, other).eval()
    before = head.prior_record()["prior_sha256"]
    with pytest.warns(
        UserWarning, match=rf"replace the weights of the head's prior .*{before[:12]}"
    ):
        head.load_state_dict(torch.load(OLD / "0.1.0" / "latent_head.pt", weights_only=True))
    assert head.prior_record() == LatentHead(5, old_prior("0.1.0")).prior_record()
    with torch.no_grad():
        poses = head(torch.from_numpy(out["features"]), output="rotmat")
    close_to_release("0.1.0", poses, out["head"])
