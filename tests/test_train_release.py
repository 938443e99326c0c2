"""Shipping weights: the bundling helper and the five shipped checkpoints themselves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from advprior.baselines import GMMPrior, VPoserVAE
from advprior.hub import PACKAGE_DIR, load_pretrained, read_manifest, sha256_file
from advprior.prior import PosePrior
from advprior.train.release import release

SHIPPED = {
    "gan-s": ("gan", "sphere"),
    "gan-u": ("gan", "uniform"),
    "gan-n": ("gan", "normal"),
    "vae": ("vae", "normal"),
    "gmm": ("gmm", None),
}


def _empty_manifest(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format_version": 1, "models": {}}))
    return path


def test_release_refuses_untrained_models(tmp_path):
    PosePrior().save_pretrained(tmp_path / "fresh")
    with pytest.raises(ValueError, match="refusing to ship"):
        release(
            "gan-x",
            tmp_path / "fresh",
            manifest=_empty_manifest(tmp_path),
            weights_dir=tmp_path / "weights",
        )
    assert not (tmp_path / "weights").exists()


@pytest.mark.parametrize("alias", ["../gan-x", "a/b", "a\\b", "..", ""])
def test_release_refuses_an_alias_that_is_a_path(tmp_path, alias):
    # the alias names the folder under weights/: "../gan-x" wrote beside it
    PosePrior().save_pretrained(tmp_path / "m", training={"steps": 3})
    weights = tmp_path / "pkg" / "weights"
    with pytest.raises(ValueError, match="alias must be a plain name"):
        release(alias, tmp_path / "m", manifest=_empty_manifest(tmp_path), weights_dir=weights)
    assert not (tmp_path / "pkg").exists()


def test_release_copies_files_and_pins_sha256(tmp_path):
    model = PosePrior(latent="uniform")
    training = {
        "steps": 12,
        "data": {"file": "d.npz", "sha256": "ab" * 32, "train_frames": 5},
        "weights_license": "cc-by-sa-3.0",
    }
    model.save_pretrained(tmp_path / "trained", training=training)
    manifest = _empty_manifest(tmp_path)
    entry = release(
        "gan-x", tmp_path / "trained", manifest=manifest, weights_dir=tmp_path / "weights"
    )
    bundled = tmp_path / "weights" / "gan-x"
    assert sorted(p.name for p in bundled.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert entry["sha256"] == sha256_file(bundled / "model.safetensors")
    assert entry["config_sha256"] == sha256_file(bundled / "config.json")
    assert entry["latent"] == "uniform" and entry["model_type"] == "gan"
    assert entry["revision"] == "v0.2.0" and entry["repo_id"] == "advprior/gan-x"
    assert "HDM05" in entry["licence"] and "5 training frames" in entry["training_data"]
    assert read_manifest(manifest)["gan-x"] == entry  # valid for advprior.hub
    # Share-alike training data: the card and the manifest carry the data's licence, not MIT.
    assert entry["weights_license"] == "cc-by-sa-3.0"
    assert "license: cc-by-sa-3.0" in (bundled / "README.md").read_text()


def test_release_names_other_training_data_as_recorded(tmp_path):
    # Weights trained on AMASS (or one's own capture) were described in the manifest as
    # "retargeted to SMPL from CMU (ASF/AMC, BVH, DeepMimic) and HDM05 motion capture" beside a
    # licence that says their data's terms are not known.
    def entry(sources):
        model = PosePrior()
        data = {"file": "d.npz", "sha256": "ab" * 32, "train_frames": 5, "sources": sources}
        folder = tmp_path / "-".join(sources)
        model.save_pretrained(folder, training={"steps": 3, "data": data})
        weights = tmp_path / "weights" / folder.name
        return release("gan-x", folder, manifest=_empty_manifest(tmp_path), weights_dir=weights)

    amass = entry(["CMU", "MPI_HDM05"])["training_data"]
    assert "ASF/AMC" not in amass and "retargeted" not in amass
    assert "5 training frames (sources: CMU, MPI_HDM05)" in amass
    # the open capture keeps its description, naming only the databases it holds
    assert (
        "from CMU (ASF/AMC, BVH, DeepMimic) and HDM05 motion"
        in entry(["cmu_asfamc", "hdm05_asfamc"])["training_data"]
    )
    hdm05 = entry(["hdm05_asfamc"])["training_data"]
    assert "retargeted to SMPL from HDM05 motion capture" in hdm05 and "CMU" not in hdm05


@pytest.mark.parametrize("alias", sorted(SHIPPED))
def test_shipped_weights_load_offline_and_match_manifest(alias, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry = read_manifest()[alias]
    model_type, latent = SHIPPED[alias]
    assert entry["model_type"] == model_type and entry["latent"] == latent
    folder = PACKAGE_DIR / entry["bundled"]
    assert sha256_file(folder / "model.safetensors") == entry["sha256"]
    assert sha256_file(folder / "config.json") == entry["config_sha256"]
    model = load_pretrained(alias)
    expected = {"gan": PosePrior, "vae": VPoserVAE, "gmm": GMMPrior}[model_type]
    assert isinstance(model, expected)
    assert model.training_metadata["steps"] >= 1
    assert model.training_metadata["data"]["train_frames"] > 1000
    poses = model.sample(8, generator=torch.Generator().manual_seed(0))
    assert poses.shape == (8, 63) and bool(torch.isfinite(poses).all())
    card = (folder / "README.md").read_text()
    assert "mocap.cs.cmu.edu" in card and "CC BY-SA 3.0" in card
    assert entry["weights_license"] == "cc-by-sa-3.0" and "license: cc-by-sa-3.0" in card
    if model_type == "gan":
        assert PosePrior.from_pretrained(alias).latent == latent


def test_licence_follows_the_training_sources(tmp_path):
    from advprior.train.provenance import data_terms, source_names

    shared = ["cmu_asfamc", "cmu_deepmimic_retarget_jump", "hdm05_asfamc"]
    both = data_terms(shared)
    assert both["weights_license"] == "cc-by-sa-3.0" and "HDM05" in both["licence"]
    assert "mocap.cs.cmu.edu" in both["attribution"] and "HDM05" in both["attribution"]
    cmu = data_terms(["cmu_asfamc"])
    assert cmu["weights_license"] == "mit" and "HDM05" not in cmu["licence"] + cmu["attribution"]
    hdm = data_terms(["hdm05_asfamc"])
    assert hdm["weights_license"] == "cc-by-sa-3.0" and "CMU" not in hdm["licence"]
    # AMASS's folders (and anything unknown) never borrow the open data's terms.
    for sources in (["CMU", "MPI_HDM05"], ["cmu_asfamc", "my_capture"], []):
        terms = data_terms(sources)
        assert terms["weights_license"] == "other" and terms["attribution"] == ""
        assert "does not know" in terms["licence"]
    description = {"sources": {"sources": ["hdm05_asfamc", "cmu_asfamc"], "fps": 30.0}}
    assert source_names(description) == ["cmu_asfamc", "hdm05_asfamc"]
    assert source_names({"sources": "unparsed meta"}) == [] and source_names(None) == []


# Generated docs blocks that record a validation-split choice made before a release was trained
# (re-run only to choose again), so scripts/regenerate_docs.sh leaves them alone.
_VALIDATION_CHOICES = ("benchmarks/vposer_chart_ablation.py", "benchmarks/fit_starts.py")


def _regeneration_steps() -> list[str]:
    script = (Path(__file__).parents[1] / "scripts" / "regenerate_docs.sh").read_text()
    body = script[script.index("STEPS=(") : script.index("\n)\n")]
    steps = re.findall(r'^\s+"(.+)"$', body, flags=re.M)
    return [s.replace("$PY -m advprior.cli ", "advprior ").replace("$PY ", "") for s in steps]


def test_regenerate_docs_names_every_generated_block():
    """Every "Generated by `command`" line in docs/ is a step of scripts/regenerate_docs.sh (with
    the data path as a variable), so a release cannot leave a generated table behind."""
    root = Path(__file__).parents[1]
    steps = [s.replace("$DATA", "data/mocap30_v5.npz") for s in _regeneration_steps()]
    assert len(steps) == len(set(steps)) >= 15
    found = set()
    for doc in sorted((root / "docs").glob("*.md")):
        for cmd in re.findall(r"Generated by `([^`]+)`", doc.read_text()):
            cmd = cmd.removeprefix("python ")
            if cmd == "advprior eval" or cmd.startswith(_VALIDATION_CHOICES):
                continue  # results.md's header points at its "Run" section, checked below
            found.add(cmd)
            assert cmd in steps, f"{doc.name}: {cmd!r} is not a step of regenerate_docs.sh"
    assert len(found) >= 10
    results = (root / "docs" / "results.md").read_text()
    run = re.search(r"## Run\n\n```\n(advprior eval [^\n]+)\n```", results).group(1)
    assert run in steps
    # docs/performance.md's generator, on the release dataset, with torch's default threads
    run_all = "env -u OMP_NUM_THREADS -u MKL_NUM_THREADS benchmarks/run_all.py"
    assert f"{run_all} --data data/mocap30_v5.npz" in steps


def test_regenerate_docs_lists_its_steps_without_running_them():
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    script = Path(__file__).parents[1] / "scripts" / "regenerate_docs.sh"
    out = subprocess.run(
        ["bash", str(script), "--list"], capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "PYTHON": "python"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == len(_regeneration_steps())
    assert lines[0].startswith("1: python -m advprior.cli eval ")
    for argv in (["--bogus"], ["--from"], ["--from", "x"]):
        bad = subprocess.run(["bash", str(script), *argv], capture_output=True, text=True)
        assert bad.returncode == 2 and "usage" in bad.stderr, argv
    # a range runs only its steps ("echo" stands in for python, so nothing is measured)
    n = len(lines)
    ran = subprocess.run(
        ["bash", str(script), "--from", str(n - 1), "--to", str(n - 1)],
        capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "PYTHON": "echo"},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert f"step {n - 1}/{n}: " in ran.stdout and f"step {n}/{n}" not in ran.stdout
    assert f"step {n - 2}/{n}" not in ran.stdout
