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


# --- round 9: what a user evaluating their own priors hit (no evaluation run needed) ----------


def test_rows_of_trained_runs_get_distinct_labels() -> None:
    """``advprior train`` exports every run into ``OUT/model``: labelled by the folder's name,
    all but the last run silently vanished from the report."""
    from advprior.eval.runner import model_labels

    names = ["runs/g/model", "runs/v/model/", "./runs/b/model", "gan-s", "a/x/model", "b/x/model"]
    assert model_labels(names) == ["g", "v", "b", "gan-s", "a/x", "b/x"]
    assert model_labels(["advprior/gan-s", "gan-s"]) == ["advprior/gan-s", "gan-s"]
    with pytest.raises(ValueError, match="'gan-s' is given twice"):
        model_labels(["gan-s", "gan-s"])


def test_a_run_folder_or_its_checkpoint_points_to_the_model(tmp_path: Path) -> None:
    from advprior.errors import ModelNotFoundError
    from advprior.hub import load_pretrained

    run = tmp_path / "run"
    PosePrior("sphere").save_pretrained(run / "model")
    (run / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(ModelNotFoundError, match=r"training run folder; its model is .*model$"):
        load_pretrained(run)
    with pytest.raises(ModelNotFoundError, match=r"training checkpoint .*; its model is"):
        load_pretrained(run / "checkpoint.pt")


def test_eval_usage_errors_come_before_any_work(tmp_path: Path, capsys) -> None:
    base = ["eval", "--models", "gan-s", "--data", str(tmp_path / "none.npz")]
    for flag, value in (("--samples", "0"), ("--vertices", "0"), ("--threads", "0")):
        assert main([*base, "--out", str(tmp_path / "r"), flag, value]) == 2
        err = capsys.readouterr().err
        assert f"{flag} must be at least" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "file").write_text("x")
    assert main([*base, "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main([*base, "--out", "."]) == 2
    assert "must name a folder" in capsys.readouterr().err
    # flags of the main protocol are refused with --tasks instead of being ignored
    out = ["--out", str(tmp_path / "r")]
    assert main([*base, *out, "--tasks", "--samples", "100", "--split", "validation"]) == 2
    assert "--samples, --split do(es) not apply to --tasks" in capsys.readouterr().err
    assert main([*base, *out, "--tasks", "--model-type", "smplx"]) == 2
    assert "--model-type do(es) not apply to --tasks" in capsys.readouterr().err
    # --model-type / --gender choose the file in a --body-model folder, so they need one
    assert main([*base, *out, "--gender", "female"]) == 2
    assert "choose the file in a --body-model folder" in capsys.readouterr().err


def test_eval_body_model_folder_of_another_model_type(tmp_path: Path, monkeypatch) -> None:
    import advprior.eval
    from advprior.body import BodyModel, load_body_model

    seen = {}
    monkeypatch.setattr(advprior.eval, "run_eval", lambda *a, **kw: seen.update(kw))
    folder = tmp_path / "models" / "smpl"
    folder.mkdir(parents=True)
    src = load_body_model().source  # the stand-in's SMPL-format file
    (folder / "SMPL_FEMALE.pkl").write_bytes(Path(src).read_bytes())
    argv = ["eval", "--models", "gan-s", "--data", "d.npz", "--out", str(tmp_path / "r")]
    assert main([*argv, "--body-model", str(tmp_path), "--gender", "female"]) == 0
    body = seen["body_model"]
    assert isinstance(body, BodyModel) and Path(body.source).name == "SMPL_FEMALE.pkl"


def test_an_object_with_a_plain_sample_n_is_evaluated_reproducibly() -> None:
    """0.1.0's protocol is ``sample(n, *, generator=None)``; ``sample(n)`` alone (a user's own
    model) is drawn from torch's global RNG, seeded from the generator inside a fork."""
    from advprior.eval.runner import _load_models

    class Mine:
        def sample(self, n):
            return 0.1 * torch.randn(n, 63)

    priors = _load_models({"mine": Mine(), "gan-s": "gan-s"})  # a name among objects loads
    assert set(priors) == {"mine", "gan-s"}
    state = torch.get_rng_state()
    a = priors["mine"].sample(4, generator=torch.Generator().manual_seed(3))
    b = priors["mine"].sample(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(state, torch.get_rng_state())


def test_results_record_the_software_and_the_weights_beside_the_seed(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """results.json recorded the seed, the data's sha256 and torch's version, but neither
    advprior's version nor which weights were evaluated (an alias or a run folder names other
    weights in another release or after retraining): a rerun could not tell whether it should
    match. It now records both; a model given as an object has no file (None)."""
    from advprior import __version__
    from advprior.eval import run_eval
    from advprior.fileio import sha256_file
    from advprior.hub import read_manifest

    class Mine:
        def sample(self, n, *, generator=None):
            return 0.1 * torch.randn(n, 63, generator=generator)

    folder = tmp_path / "mine-vae"
    torch.manual_seed(0)
    VPoserVAE().save_pretrained(folder)
    sizes = dict(n_samples=50, n_vertex_samples=20, n_queries=20, n_reference=50, n_vertices=32)
    results = run_eval(
        {"gan-s": "gan-s", "folder": str(folder), "object": Mine()},
        tiny_dataset,
        out=tmp_path / "results",
        quick=True,
        n_pairs=0,
        fitting=False,
        progress=False,
        **sizes,
    )
    assert results["seed"] == 0
    assert results["software"]["advprior"] == __version__
    assert results["software"]["torch"] == torch.__version__
    weights = {k: v["weights_sha256"] for k, v in results["models"].items()}
    assert weights == {
        "gan-s": read_manifest()["gan-s"]["sha256"],
        "folder": sha256_file(folder / "model.safetensors"),
        "object": None,
    }
    saved = json.loads((tmp_path / "results" / "results.json").read_text())
    assert saved["software"] == results["software"]
    assert saved["models"]["folder"]["weights_sha256"] == weights["folder"]


def test_an_empty_split_names_the_files_splits(tmp_path: Path, write_dataset) -> None:
    import numpy as np

    from advprior.eval.data import load_split

    path = write_dataset(
        tmp_path / "d.npz",
        np.zeros((4, 63)),
        np.zeros(4),
        meta=np.array(json.dumps({"frames_per_split": {"train": 4, "val": 0, "test": 0}})),
    )
    with pytest.raises(ValueError, match=r"'test' has no frames \(the file has train 4, val 0"):
        load_split(path, "test")
    # the counts are the file's own, not its meta's: a dataset filtered after its build keeps
    # the build's frames_per_split (the message said "test 10536" of a file without test frames)
    stale = json.dumps({"frames_per_split": {"train": 76622, "val": 11288, "test": 10536}})
    path = write_dataset(
        tmp_path / "mine.npz", np.zeros((5, 63)), np.array([0, 0, 0, 1, 1]), meta=np.array(stale)
    )
    with pytest.raises(
        ValueError, match=r"'test' has no frames \(the file has train 3, val 2, test 0\)"
    ):
        load_split(path, "test")


def test_the_quoted_command_rerun_keeps_every_changed_size() -> None:
    from dataclasses import replace

    from advprior.eval.runner import QUICK, _default_command

    cfg = replace(QUICK, n_pairs=3, fit_frames=2)
    line = _default_command(["gan-s"], "d.npz", "test", Path("r"), True, cfg, 0, 50, True)
    assert "--pairs 3 --fit-frames 2 --geodesic 50 --quick" in line
    assert "--queries" not in line  # at its preset: not repeated
