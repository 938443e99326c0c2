"""``advprior eval --quick`` end to end: real mocap files -> tiny dataset -> report.

The dataset is built in the test from eight small shared DeepMimic clips (eight CMU subjects,
so every split has a subject); CI has no prebuilt dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from advprior.baselines import GMMPrior, VPoserVAE
from advprior.cli import main
from advprior.prior import PosePrior

SHIPPED = ("gan-s", "gan-u", "gan-n", "vae", "gmm")
CLIPS = (
    "02/02_01",
    "06/06_09",
    "07/07_03",
    "08/08_07",
    "09/09_02",
    "10/10_05",
    "11/11_01",
    "127/127_03",
)


@pytest.fixture(scope="module")
def tiny_dataset(shared_mocap: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "tiny.npz"
    folder = shared_mocap / "cmu_deepmimic_retarget_jump"
    assert (
        main(["data", "build", *(str(folder / f"{c}.txt") for c in CLIPS), "--out", str(out)]) == 0
    )
    return out


@pytest.mark.slow
def test_eval_quick_cli_shipped_priors(tiny_dataset: Path, tmp_path: Path) -> None:
    """The documented command with ``--quick``, on the five shipped priors."""
    out = tmp_path / "docs" / "results"
    assert (
        main(
            [
                "eval",
                "--models",
                *SHIPPED,
                "--data",
                str(tiny_dataset),
                "--out",
                str(out),
                "--quick",
                "--samples",
                "1500",
                "--pairs",
                "3",
                "--fit-frames",
                "3",
            ]
        )
        == 0
    )
    report = (tmp_path / "docs" / "results.md").read_text()
    results = json.loads((out / "results.json").read_text())
    assert list(results["models"]) == list(SHIPPED)
    assert set(results["fitting"]) == {*SHIPPED, "no prior"}
    assert "excluded" in results["smoothness"]["gmm"]
    for name in SHIPPED:
        assert f"| {name} |" in report
        rp = results["models"][name]["recall_precision_mm"]["joints"]
        # Trained priors sit far closer to real poses than the ~1 m of a random rotation set.
        assert 0 < rp["recall_mean"] < 300 and 0 < rp["precision_mean"] < 300
    for pic in results["pictures"].values():
        assert (tmp_path / "docs" / pic).stat().st_size > 1000


@pytest.mark.slow
def test_eval_quick_cli_checkpoint_folders(tiny_dataset: Path, tmp_path: Path) -> None:
    """Checkpoint folders (here untrained models) work as ``--models`` too."""
    torch.manual_seed(0)
    gmm = GMMPrior()
    gmm.covariances.mul_(0.05)
    dirs = []
    for name, model in (("gan-s", PosePrior("sphere")), ("vae", VPoserVAE()), ("gmm", gmm)):
        model.save_pretrained(tmp_path / "ckpt" / name)
        dirs.append(str(tmp_path / "ckpt" / name))
    out = tmp_path / "docs" / "results"
    assert (
        main(
            [
                "eval",
                "--models",
                *dirs,
                "--data",
                str(tiny_dataset),
                "--out",
                str(out),
                "--quick",
                "--samples",
                "1500",
                "--pairs",
                "3",
                "--fit-frames",
                "3",
            ]
        )
        == 0
    )
    report = (tmp_path / "docs" / "results.md").read_text()
    results = json.loads((out / "results.json").read_text())
    assert list(results["models"]) == ["gan-s", "vae", "gmm"]
    assert results["settings"]["n_samples"] == 1500
    assert results["settings"]["n_pairs"] == 3
    assert "--samples 1500" in results["command"] and "--quick" in results["command"]
    assert set(results["fitting"]) == {"gan-s", "vae", "gmm", "no prior"}
    assert "excluded" in results["smoothness"]["gmm"]
    for name in ("gan-s", "vae", "gmm", "no prior"):
        assert f"| {name} |" in report
    for kind in ("joints", "vertices"):
        for model in results["models"].values():
            rp = model["recall_precision_mm"][kind]
            assert 0 < rp["recall_mean"] < 2000 and 0 < rp["precision_mean"] < 2000
    for pic in results["pictures"].values():
        assert (tmp_path / "docs" / pic).stat().st_size > 1000
