"""``advprior sample``: the README's main job, run on a checkpoint saved by the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advprior import PosePrior
from advprior.cli import main
from advprior.hub import PretrainedMixin


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ckpt") / "tiny-gan"
    PosePrior(latent="sphere", latent_dim=16, hidden_dim=32).save_pretrained(out)
    return out


def _expected(ckpt: Path, n: int, seed: int, body: str = "smplx") -> tuple[np.ndarray, np.ndarray]:
    prior = PosePrior.from_pretrained(ckpt)
    z = prior.sample_latent(n, generator=torch.Generator().manual_seed(seed))
    return prior.decode(z, body=body).numpy(), z.numpy()


def test_sample_writes_npz_and_summary(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "s.npz"
    assert main(["sample", "--model", str(ckpt), "-n", "5", "--seed", "3", "--out", str(out)]) == 0
    data = np.load(out)
    pose, z = _expected(ckpt, 5, 3)
    assert data["body_pose"].shape == (5, 63) and data["body_pose"].dtype == np.float32
    assert data["z"].shape == (5, 16)
    np.testing.assert_array_equal(data["body_pose"], pose)
    np.testing.assert_array_equal(data["z"], z)
    np.testing.assert_allclose(np.linalg.norm(data["z"], axis=-1), 1.0, atol=1e-6)
    assert str(data["model_type"]) == "gan" and str(data["latent"]) == "sphere"
    assert int(data["seed"]) == 3 and str(data["body"]) == "smplx"
    printed = capsys.readouterr().out
    assert "5 samples" in printed and "(5, 63)" in printed and "D=16" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npz"]  # no temp files left


def test_seed_determines_samples(ckpt: Path, tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.npz" for i in range(3)]
    for path, seed in zip(paths, (1, 1, 2), strict=True):
        assert main(["sample", "--model", str(ckpt), "-n", "4", "--seed", str(seed),
                     "--out", str(path)]) == 0  # fmt: skip
    a, b, c = (np.load(p)["body_pose"] for p in paths)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_the_file_records_the_weights_and_software_it_was_drawn_with(
    ckpt: Path, tmp_path: Path
) -> None:
    """ "The same seed gives the same file" holds for the same weights and code; the file
    named only the model (an alias, a folder that may be retrained, a Hub id without its
    ``--revision``). It records the weights file's sha256, the revision and the versions."""
    import json

    from advprior.fileio import sha256_file
    from advprior.hub import read_manifest
    from advprior.version import software_versions

    out = tmp_path / "s.npz"
    assert main(["sample", "--model", str(ckpt), "-n", "2", "--out", str(out)]) == 0
    saved = np.load(out)
    assert str(saved["weights_sha256"]) == sha256_file(ckpt / "model.safetensors")
    assert str(saved["revision"]) == ""
    assert json.loads(str(saved["software"])) == software_versions()
    assert main(["sample", "--model", "gmm", "-n", "2", "--out", str(out)]) == 0
    assert str(np.load(out)["weights_sha256"]) == read_manifest()["gmm"]["sha256"]


def test_the_file_records_the_revision_that_was_loaded(
    ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """An alias's pinned revision wins over --revision (docs/core.md), and a folder has none:
    the file recorded the --revision given, naming weights that were never loaded."""
    from advprior.hub import read_manifest

    out = tmp_path / "s.npz"
    pinned = read_manifest()["gmm"]["revision"]
    for extra in ([], ["--revision", "foo"]):
        assert main(["sample", "--model", "gmm", "-n", "1", "--out", str(out), *extra]) == 0
        assert str(np.load(out)["revision"]) == pinned
    err = capsys.readouterr().err
    assert (
        f"--revision foo not used: 'gmm' is a manifest alias pinned to revision {pinned!r}" in err
    )
    assert (
        main(["sample", "--model", str(ckpt), "-n", "1", "--out", str(out), "--revision", "foo"])
        == 0
    )
    assert str(np.load(out)["revision"]) == ""
    assert "--revision foo not used" in capsys.readouterr().err


def test_smpl_body_and_latent_only(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "smpl.npz"
    assert (
        main(["sample", "--model", str(ckpt), "-n", "2", "--body", "smpl", "--out", str(out)]) == 0
    )
    data = np.load(out)
    assert data["body_pose"].shape == (2, 69)
    np.testing.assert_array_equal(data["body_pose"], _expected(ckpt, 2, 0, "smpl")[0])
    np.testing.assert_array_equal(data["body_pose"][:, 63:], 0)
    out = tmp_path / "z.npz"
    assert (
        main(["sample", "--model", str(ckpt), "-n", "3", "--latent-only", "--out", str(out)]) == 0
    )
    data = np.load(out)
    assert "body_pose" not in data and data["z"].shape == (3, 16)


def test_model_without_latent_space(tmp_path: Path) -> None:
    class CoreTestMixture(PretrainedMixin, nn.Module):
        model_type = "core-test-mixture"

        def __init__(self, dim: int = 63) -> None:
            super().__init__()
            self.register_buffer("mean", torch.full((dim,), 0.1))

        def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
            noise = torch.randn(n, self.mean.shape[0], generator=generator)
            return self.mean + 0.01 * noise

    CoreTestMixture().save_pretrained(tmp_path / "mix")
    out = tmp_path / "m.npz"
    rc = main(["sample", "--model", str(tmp_path / "mix"), "-n", "4", "--body", "smpl",
               "--out", str(out)])  # fmt: skip
    assert rc == 0
    data = np.load(out)
    assert data["body_pose"].shape == (4, 69) and "z" not in data
    np.testing.assert_allclose(data["body_pose"][:, :63], 0.1, atol=0.05)
    assert main(["sample", "--model", str(tmp_path / "mix"), "--latent-only",
                 "--out", str(out)]) == 1  # fmt: skip


def test_unknown_model_and_bad_count(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "x.npz"
    assert main(["sample", "--model", "gan-zzz", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "gan-zzz" in err and "known" in err
    assert main(["sample", "--model", "gan-zzz", "-n", "-1", "--out", str(out)]) == 2
    assert not out.exists()


def test_png_without_matplotlib_is_a_clear_message(
    ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "matplotlib" else real(name, *a),
    )
    out, png = tmp_path / "p.npz", tmp_path / "p.png"
    rc = main(["sample", "--model", str(ckpt), "-n", "2", "--out", str(out), "--png", str(png)])
    # said before sampling: nothing written (the .npz used to be written, then the command failed)
    assert rc == 1 and not out.exists() and not png.exists()
    err = capsys.readouterr().err
    assert "pip install 'advprior[viz]'" in err and "nothing written" in err
    assert len(err.strip().splitlines()) == 1, err


def test_console_script_entry_point(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.npz"
    cmd = [sys.executable, "-m", "advprior.cli", "sample", "--model", str(ckpt), "-n", "3"]
    res = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert np.load(out)["body_pose"].shape == (3, 63)


def test_png_is_drawn(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out, png = tmp_path / "p.npz", tmp_path / "p.png"
    rc = main(["sample", "--model", str(ckpt), "-n", "3", "--out", str(out), "--png", str(png)])
    assert rc == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "drew 3 bodies" in text and "body_pose (3, 63)" in text
    assert text.count("\n") == 1  # the answer is one line, PNG included


def test_outputs_honour_the_umask(ckpt: Path, tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        out = tmp_path / "m.npz"
        assert main(["sample", "--model", str(ckpt), "-n", "1", "--out", str(out)]) == 0
        PosePrior().save_pretrained(tmp_path / "saved")
    finally:
        os.umask(old)
    for path in (out, *(tmp_path / "saved").iterdir()):
        assert path.stat().st_mode & 0o777 == 0o644, path


def test_device_option(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d.npz"
    assert (
        main(["sample", "--model", str(ckpt), "-n", "2", "--device", "cpu", "--out", str(out)]) == 0
    )
    assert np.allclose(np.load(out)["body_pose"], _expected(ckpt, 2, 0)[0])
    assert main(["sample", "--model", str(ckpt), "--device", "gpu0", "--out", str(out)]) == 2
    assert "not a torch device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["sample", "--model", str(ckpt), "--device", "cuda", "--out", str(out)]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.parametrize("output", ["axis_angle", "quat"])
def test_large_samples_are_decoded_in_chunks_with_the_same_bits(
    monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    """The hidden layers hold ~4 KB per latent, 16x the pose: ``sample(10**6)`` peaked at ~4 GB
    for 250 MB of poses. Without a gradient to record, latents are decoded ``DECODE_CHUNK`` at
    a time (a short last chunk joins the one before), bitwise as in one call; with a gradient,
    or a generator in training (dropout), in one call."""
    import advprior.baselines as baselines
    import advprior.prior as prior_module
    from advprior.baselines import VPoserVAE

    torch.manual_seed(0)
    gan = PosePrior(latent="sphere", latent_dim=16, hidden_dim=32).eval()
    vae = VPoserVAE().eval()
    for model in (gan, vae):
        for p in model.parameters():
            p.requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    z = {m: m.sample_latent(200, generator=g) for m in (gan, vae)}
    whole = {m: m.decode(z[m], output=output, body="smpl") for m in (gan, vae)}
    rows: list[int] = []
    run = prior_module.run_mlp

    def counted(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        rows.append(x.shape[0])
        return run(mlp, x)

    monkeypatch.setattr(prior_module, "run_mlp", counted)
    monkeypatch.setattr(prior_module, "DECODE_CHUNK", 64)
    assert baselines.decode_rows is prior_module.decode_rows  # the VAE decodes the same way
    for m in (gan, vae):
        rows.clear()
        out = m.decode(z[m], output=output, body="smpl")
        assert rows == [64, 64, 72]  # 200 = 64 + 64 + 64 + 8: the last 8 join the third
        assert torch.equal(out, whole[m])
    # a gradient to record: one call (the graph is kept anyway)
    rows.clear()
    zg = z[gan].clone().requires_grad_()
    assert torch.equal(gan.decode(zg, output=output, body="smpl"), whole[gan])
    assert rows == [200]
    # a generator being trained (dropout on): one call, as the batch's statistics may matter
    for p in gan.parameters():
        p.requires_grad_(True)
    rows.clear()
    with torch.no_grad():
        gan.train().decode(z[gan])
    assert rows == [200]
