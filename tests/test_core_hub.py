"""Checkpoints and the Hub path, exercised for real against a local stand-in Hub server.

The server answers huggingface_hub's ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}``
like the Hub does (``X-Repo-Commit``, ``ETag``, ``Content-Length``, ``X-Error-Code`` on 404) and
is reached through ``HF_ENDPOINT``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import torch
from torch import nn

import advprior
import advprior.hub.manifest
import advprior.hub.resolution
from advprior import PosePrior, load_pretrained
from advprior import hub as hubmod
from advprior.errors import (
    ChecksumMismatchError,
    CorruptCheckpointError,
    ManifestError,
    ModelNotFoundError,
    OfflineError,
    RevisionWarning,
)
from advprior.hub import (
    PretrainedMixin,
    read_manifest,
    resolve,
    resolve_files,
    sha256_file,
)

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "advprior-test/tiny-s"


class FakeHub:
    """A minimal Hub: ``repos[repo_id] = {"commit", "tags", "files"}``; records every request."""

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.break_off = 0  # how many more file downloads (GET) to cut off half-way
        self.get_status: int | None = None  # answer every GET with this status instead
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest output clean
                pass

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self._answer(body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._answer(body=True)

            def _fail(self, code: int, error_code: str, commit: str | None = None) -> None:
                self.send_response(code)
                self.send_header("X-Error-Code", error_code)
                if commit:
                    self.send_header("X-Repo-Commit", commit)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                parts = unquote(self.path.split("?")[0]).lstrip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._fail(404, "RepoNotFound")
                repo = hub.repos.get(f"{parts[0]}/{parts[1]}")
                if repo is None:
                    return self._fail(404, "RepoNotFound")
                revision, filename = parts[3], "/".join(parts[4:])
                commit = repo["tags"].get(revision, revision)
                if commit != repo["commit"]:
                    return self._fail(404, "RevisionNotFound")
                data = repo["files"].get(filename)
                if data is None:
                    return self._fail(404, "EntryNotFound", commit)
                if body and hub.get_status is not None:
                    return self._fail(hub.get_status, "", commit)
                self.send_response(200)
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body and hub.break_off > 0:
                    # a connection lost mid-file: half the bytes Content-Length announced
                    hub.break_off -= 1
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                elif body:
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch):
    hub = FakeHub()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield hub
    hub.stop()


@pytest.fixture
def prior() -> PosePrior:
    torch.manual_seed(0)
    return PosePrior(latent="sphere", latent_dim=8, hidden_dim=16).eval()


@pytest.fixture
def checkpoint(tmp_path: Path, prior: PosePrior) -> Path:
    out = tmp_path / "ckpt"
    prior.save_pretrained(out, training={"data": "unit test", "steps": 0, "metrics": {"x": 1.5}})
    return out


def _without_record(ckpt: Path) -> None:
    """Drop config.json's weights_sha256, as in a folder saved by advprior 0.2.0 or another
    tool: the structural checks below are then what catches a bad weights file."""
    config = json.loads((ckpt / "config.json").read_text())
    del config["weights_sha256"]
    (ckpt / "config.json").write_text(json.dumps(config))


def _publish(hub: FakeHub, ckpt: Path, repo: str = REPO) -> None:
    hub.repos[repo] = {
        "commit": COMMIT,
        "tags": {"main": COMMIT, "v0.1": COMMIT},
        "files": {p.name: p.read_bytes() for p in ckpt.iterdir()},
    }


def _manifest(tmp_path: Path, ckpt: Path, **overrides: object) -> Path:
    entry = {
        "repo_id": REPO,
        "revision": COMMIT,
        "filename": "model.safetensors",
        "config_filename": "config.json",
        "sha256": sha256_file(ckpt / "model.safetensors"),
        "config_sha256": sha256_file(ckpt / "config.json"),
        "latent": "sphere",
        "model_type": "gan",
        "bundled": None,
        "training_data": "unit test",
        "licence": "MIT",
    }
    entry.update(overrides)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format_version": 1, "models": {"tiny-s": entry}}))
    return path


def _z(dim: int = 8) -> torch.Tensor:
    return torch.randn(5, dim, generator=torch.Generator().manual_seed(1))


# --- save / load round trips ----------------------------------------------------------------


def test_save_writes_three_files_and_full_config(checkpoint: Path) -> None:
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((checkpoint / "config.json").read_text())
    assert config == {
        "latent": "sphere",
        "latent_dim": 8,
        "num_joints": 21,
        "hidden_dim": 16,
        "dropout": 0.1,
        "model_type": "gan",
        "format_version": 2,
        "training": {"data": "unit test", "steps": 0, "metrics": {"x": 1.5}},
        "weights_sha256": sha256_file(checkpoint / "model.safetensors"),
    }
    card = (checkpoint / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: advprior" in card
    assert "unit test" in card and "`hidden_dim` | `16`" in card


def test_round_trip_identical_outputs_and_frozen(prior: PosePrior, checkpoint: Path) -> None:
    loaded = PosePrior.from_pretrained(checkpoint)
    z = _z()
    assert torch.equal(loaded(z), prior(z))
    assert not loaded.training
    assert all(not p.requires_grad for p in loaded.parameters())
    assert loaded.training_metadata["metrics"] == {"x": 1.5}
    # gradients still reach the latent through the frozen generator
    z.requires_grad_(True)
    loaded(z).square().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    # a freshly built prior is trainable
    assert all(p.requires_grad for p in PosePrior().parameters())
    # and freeze=False keeps a loaded one trainable
    assert all(
        p.requires_grad for p in PosePrior.from_pretrained(checkpoint, freeze=False).parameters()
    )


@pytest.mark.parametrize("name", ["gan-s", "vae"])
def test_freeze_false_still_loads_in_eval_mode(name: str) -> None:
    """freeze only decides requires_grad: a model loaded with freeze=False is in eval mode like
    any loaded model (huggingface_hub's convention, docs/api/hub.md); it was left in train mode,
    where dropout made two decodes of one latent differ by up to ~0.3 rad."""
    model = load_pretrained(name, freeze=False)
    assert not model.training
    assert all(p.requires_grad for p in model.parameters())
    z = model.sample_latent(16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.decode(z), model.decode(z))
    assert torch.equal(model.decode(z), load_pretrained(name).decode(z))


def test_resave_keeps_metadata_and_leaves_no_temp_files(checkpoint: Path, tmp_path: Path) -> None:
    loaded = PosePrior.from_pretrained(checkpoint)
    loaded.save_pretrained(checkpoint)  # overwrite in place
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    again = PosePrior.from_pretrained(checkpoint)
    assert again.training_metadata == loaded.training_metadata
    assert torch.equal(again(_z()), loaded(_z()))


def test_save_pretrained_into_a_folder_keeps_its_other_files_and_its_own_readme(
    tmp_path: Path, prior: PosePrior
) -> None:
    """A README.md that advprior did not write (a project folder, a git or Hub clone with its
    own card) was replaced by the generated model card; huggingface_hub's mixin keeps it too.
    advprior's own card is rewritten, so that it describes the weights saved last."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "README.md").write_text("# My project\n\nNotes I wrote.\n")
    (folder / "notes.txt").write_text("keep me")
    prior.save_pretrained(folder, training={"steps": 1})
    assert (folder / "README.md").read_text() == "# My project\n\nNotes I wrote.\n"
    assert (folder / "notes.txt").read_text() == "keep me"
    assert torch.equal(load_pretrained(folder)(_z()), prior(_z()))
    ours = tmp_path / "ours"
    prior.save_pretrained(ours, training={"steps": 1})
    prior.save_pretrained(ours, training={"steps": 2})
    card = (ours / "README.md").read_text()
    assert "**steps**: 2" in card and sha256_file(ours / "model.safetensors") in card


def test_load_pretrained_dispatches_on_model_type(checkpoint: Path, tmp_path: Path) -> None:
    class CoreTestDummy(PretrainedMixin, nn.Module):
        model_type = "core-test-dummy"

        def __init__(self, width: int = 3) -> None:
            super().__init__()
            self.register_buffer("table", torch.arange(width, dtype=torch.float32))

    assert isinstance(load_pretrained(checkpoint), PosePrior)
    dummy = CoreTestDummy(width=5)
    dummy.table.mul_(2)
    dummy.save_pretrained(tmp_path / "dummy")
    loaded = load_pretrained(tmp_path / "dummy")
    assert type(loaded) is CoreTestDummy and torch.equal(loaded.table, dummy.table)
    with pytest.raises(CorruptCheckpointError, match="core-test-dummy"):
        PosePrior.from_pretrained(tmp_path / "dummy")


def test_unjsonable_constructor_argument_is_refused(tmp_path: Path) -> None:
    class Odd(PretrainedMixin, nn.Module):
        model_type = "core-test-odd"

        def __init__(self, scale: object = None) -> None:
            super().__init__()

    with pytest.raises(TypeError, match="scale"):
        Odd(scale=object()).save_pretrained(tmp_path / "odd")
    with pytest.raises(TypeError, match="training"):
        PosePrior().save_pretrained(tmp_path / "p", training={"bad": object()})


# --- corrupt local checkpoints ---------------------------------------------------------------


def test_truncated_weights(checkpoint: Path) -> None:
    f = checkpoint / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(ChecksumMismatchError, match="config.json records"):
        PosePrior.from_pretrained(checkpoint)
    _without_record(checkpoint)
    with pytest.raises(CorruptCheckpointError, match="safetensors"):
        PosePrior.from_pretrained(checkpoint)


def test_garbage_weights(checkpoint: Path) -> None:
    (checkpoint / "model.safetensors").write_bytes(b"\x80\x04 this is not a safetensors file")
    _without_record(checkpoint)
    with pytest.raises(CorruptCheckpointError):
        PosePrior.from_pretrained(checkpoint)


def test_shapes_that_do_not_match_config(checkpoint: Path) -> None:
    config = json.loads((checkpoint / "config.json").read_text())
    config["hidden_dim"] = 32
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CorruptCheckpointError, match="shape"):
        PosePrior.from_pretrained(checkpoint)


def test_missing_tensor(checkpoint: Path, prior: PosePrior) -> None:
    from safetensors.torch import save_file

    state = {k: v for k, v in prior.state_dict().items() if not k.endswith("5.bias")}
    save_file(state, str(checkpoint / "model.safetensors"))
    _without_record(checkpoint)
    with pytest.raises(CorruptCheckpointError, match="missing tensors"):
        PosePrior.from_pretrained(checkpoint)


@pytest.mark.parametrize(
    "text, match",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"format_version": 1}', "model_type"),
        ('{"model_type": "gan", "format_version": 3}', "format_version"),
        ('{"model_type": "gan", "format_version": true}', "format_version"),
        ('{"model_type": "gan", "format_version": 1, "colour": "red"}', "colour"),
        ('{"model_type": "gan", "format_version": 1, "latent": "cube"}', "latent"),
        ('{"model_type": "nonexistent", "format_version": 1}', "unknown model_type"),
    ],
)
def test_bad_config(checkpoint: Path, text: str, match: str) -> None:
    (checkpoint / "config.json").write_text(text)
    with pytest.raises(CorruptCheckpointError, match=match):
        load_pretrained(checkpoint)


@pytest.mark.parametrize("key", ["latent_dim", "hidden_dim"])
def test_absurd_sizes_in_a_config_are_one_short_line(checkpoint: Path, key: str) -> None:
    """torch's error for a size it cannot hold carries its C++ stack; the CLI prints one line."""
    config = json.loads((checkpoint / "config.json").read_text())
    config.pop("weights_sha256", None)
    (checkpoint / "config.json").write_text(json.dumps({**config, key: 10**30}))
    with pytest.raises(CorruptCheckpointError, match="cannot build PosePrior") as err:
        load_pretrained(checkpoint)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300 + len(str(checkpoint)) + 60


@pytest.mark.parametrize(
    "raw, match",
    [
        ('{"model_type": "gan", "format_version": 1, "hidden_dim": ' + "9" * 5000 + "}", "digits"),
        ('{"training": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        (b'{"model_type": "g\xff"}', "'utf-8' codec"),
    ],
    ids=["int-5000-digits", "deep", "not-utf8"],
)
def test_config_json_problems_name_the_file(checkpoint: Path, raw: str | bytes, match: str):
    path = checkpoint / "config.json"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    with pytest.raises(CorruptCheckpointError, match=match) as err:
        load_pretrained(checkpoint)
    assert f"{path} is not valid JSON" in str(err.value)


def test_a_key_given_twice_in_a_json_file_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    """json keeps the last of two values of one key, other readers the first: a config.json
    with two weights_sha256 (or a manifest with an alias twice) could say one thing to a
    checker and another to advprior."""
    path = checkpoint / "config.json"
    text = path.read_text()
    config = json.loads(text)
    assert "weights_sha256" in config
    path.write_text(text.replace("{", '{"weights_sha256": "' + "0" * 64 + '", ', 1))
    with pytest.raises(CorruptCheckpointError, match="'weights_sha256' appears twice") as err:
        load_pretrained(checkpoint)
    assert str(path) in str(err.value)
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"format_version": 1, "models": {"x": {}, "x": {}}}')
    with pytest.raises(ManifestError, match=r"manifest\.json: the key 'x' appears twice"):
        read_manifest(manifest)


def test_unreadable_or_endless_config_names_the_file(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = checkpoint / "config.json"
    if Path("/proc/self/mem").exists():  # Linux: a "regular file" whose reads fail with EIO
        path.unlink()
        path.symlink_to("/proc/self/mem")
        with pytest.raises(OSError, match=r"cannot read .*config.json: Input/output error") as e:
            load_pretrained(checkpoint)
        assert e.value.errno == errno.EIO
    path.unlink()
    path.symlink_to("/dev/zero")  # endless: not a regular file, never read
    with pytest.raises(CorruptCheckpointError, match=r"config.json is not a regular file"):
        hubmod.read_config(path)
    path.unlink()
    path.write_text(" " * 2000 + "{}")  # a large regular file: only a bounded prefix is read
    monkeypatch.setattr(advprior.fileio, "JSON_MAX_BYTES", 1000)
    with pytest.raises(CorruptCheckpointError, match=r"config.json is larger than 1000 bytes"):
        hubmod.read_config(path)


def test_non_finite_weights_are_refused(checkpoint: Path, prior: PosePrior) -> None:
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in prior.state_dict().items()}
    state["generator.0.weight"][0, 0] = float("nan")
    save_file(state, str(checkpoint / "model.safetensors"))
    _without_record(checkpoint)
    with pytest.raises(CorruptCheckpointError, match="'generator.0.weight' holds NaN or inf"):
        load_pretrained(checkpoint)


def test_missing_local_files(checkpoint: Path, tmp_path: Path) -> None:
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="model.safetensors"):
        PosePrior.from_pretrained(checkpoint)
    with pytest.raises(ModelNotFoundError, match="is a file"):
        PosePrior.from_pretrained(checkpoint / "config.json")
    # paths that do not exist are never sent to the Hub as repo ids
    for name in ("./absent", str(tmp_path / "absent"), "a/b/c", "~/absent"):
        with pytest.raises(ModelNotFoundError, match="not a checkpoint directory"):
            PosePrior.from_pretrained(name)


def test_a_folder_named_like_an_alias_hides_it_only_when_it_is_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output folder ``gan-s/`` (``advprior sample --out gan-s/x.npz`` makes one) or a
    training run called ``gmm`` where the user works must not break the aliases, nor the
    fits whose ``pose_density="auto"`` loads the bundled GMM."""
    from advprior.baselines import GMMPrior
    from advprior.fitting.priors import resolve_pose_density

    monkeypatch.chdir(tmp_path)
    (tmp_path / "gan-s").mkdir()
    (tmp_path / "gmm" / "model").mkdir(parents=True)  # a run folder before its export
    assert resolve_files("gan-s").source == "bundled"
    assert resolve_files("gmm").source == "bundled"
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        resolve_files("./gan-s")  # written as a path: the folder is meant
    with pytest.raises(ModelNotFoundError, match="empty"):
        resolve_files("")  # not the working directory
    # a checkpoint of the alias's name is the user's own model, as on the Hub's from_pretrained
    mine = GMMPrior(num_components=2)
    mine.save_pretrained(tmp_path / "gmm")
    assert resolve_files("gmm").source == "local"
    assert load_pretrained("gmm").num_components == 2
    gan_s = load_pretrained("gan-s")
    # ... but the library's own default never reads the working directory
    auto = resolve_pose_density("auto", gan_s)
    assert auto.num_components == 8 and hubmod.resolve_alias("gmm").source == "bundled"
    with pytest.raises(ModelNotFoundError, match="not a known model alias"):
        hubmod.resolve_alias("gmm-x")


def test_a_missing_folder_given_as_a_path_is_not_loaded_as_the_alias_of_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Path names a folder (an existing one is never taken for the alias, a missing one never
    for a Hub repo): a fine-tune saved as Path("gmm") and loaded from another working
    directory silently loaded the released gmm."""
    monkeypatch.chdir(tmp_path)
    for load in (load_pretrained, resolve_files):
        with pytest.raises(ModelNotFoundError, match=r"no such folder.*pass the string 'gmm'"):
            load(Path("gmm"))
    assert resolve_files("gmm").source == "bundled"  # the string is the alias, as before
    (tmp_path / "gmm").mkdir()
    with pytest.raises(ModelNotFoundError, match="has no config.json"):
        resolve_files(Path("gmm"))


def test_a_device_this_machine_lacks_is_refused_before_loading() -> None:
    """torch says only at the first ``.to()``, with an AssertionError about how it was built."""
    if torch.cuda.is_available():
        assert next(PosePrior.from_pretrained("gan-s", device="cuda").parameters()).is_cuda
    else:
        with pytest.raises(ValueError, match="CUDA is not available"):
            PosePrior.from_pretrained("gan-s", device="cuda")
    with pytest.raises(ValueError, match="device"):
        load_pretrained("gmm", device="tpu:x")


# --- manifest ---------------------------------------------------------------------------------


def test_unknown_alias_lists_known_names(tmp_path: Path, checkpoint: Path) -> None:
    manifest = _manifest(tmp_path, checkpoint)
    with pytest.raises(ModelNotFoundError, match="tiny-s"):
        PosePrior.from_pretrained("gan-q", manifest=manifest)


@pytest.mark.parametrize("typo", ["GAN-S", "gan_s", "Gan S", "gans"])
def test_an_alias_typo_suggests_the_alias_and_loads_nothing(typo: str) -> None:
    """Only a suggestion: an alias pins one sha256, so a typo is never taken for it."""
    with pytest.raises(ModelNotFoundError, match=r"known: .*gan-s.*; did you mean 'gan-s'\?$"):
        PosePrior.from_pretrained(typo)
    with pytest.raises(ModelNotFoundError, match=r"did you mean 'gan-s'\?$"):
        hubmod.resolve_alias(typo)
    # equally close aliases are all named, not one of them guessed
    with pytest.raises(ModelNotFoundError, match=r"did you mean 'gan-n', 'gan-s' or 'gan-u'\?"):
        resolve_files("gan")
    with pytest.raises(ModelNotFoundError) as far:
        resolve_files("xyz-prior")
    assert "did you mean" not in str(far.value)


def test_map_location_is_another_name_for_device(checkpoint: Path) -> None:
    """huggingface_hub's PyTorchModelHubMixin.from_pretrained takes map_location: code written
    for it got "TypeError: unexpected keyword argument 'map_location'"."""
    loaded = PosePrior.from_pretrained(checkpoint, map_location="cpu")
    assert next(loaded.parameters()).device == torch.device("cpu")
    PosePrior.from_pretrained(checkpoint, map_location="cpu", device=torch.device("cpu"))
    assert isinstance(load_pretrained(checkpoint, map_location=torch.device("cpu")), PosePrior)
    for load in (PosePrior.from_pretrained, load_pretrained):
        with pytest.raises(ValueError, match="different devices"):
            load(checkpoint, map_location="meta", device="cpu")


def test_save_pretrained_onto_a_file_names_it(tmp_path: Path, prior: PosePrior) -> None:
    """Was mkdir's bare "FileExistsError: [Errno 17] File exists"; the file is left alone."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    with pytest.raises(NotADirectoryError, match=r"afile: it is a file, not a folder"):
        prior.save_pretrained(afile)
    with pytest.raises(NotADirectoryError, match=r"afile/sub: .*afile is a file, not a folder"):
        prior.save_pretrained(afile / "sub")
    assert afile.read_text() == "mine"


def test_manifest_from_environment(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADVPRIOR_MANIFEST", str(_manifest(tmp_path, checkpoint)))
    assert list(read_manifest()) == ["tiny-s"]


@pytest.mark.skipif(os.name == "nt", reason="'\\' separates folders there")
def test_a_windows_style_home_path_is_not_found_with_a_hint_not_a_runtime_error(
    tmp_path: Path, prior: PosePrior, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~\\runs\\x`` (PowerShell's spelling) is a ``~user`` path on POSIX, and
    Path.expanduser raised RuntimeError("Could not determine home directory") for it, which
    the CLI printed as an unexpected error to report."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    prior.save_pretrained(tmp_path / "runs" / "x")
    with pytest.raises(ModelNotFoundError, match=r"did you mean '.*runs/x'"):
        PosePrior.from_pretrained("~\\runs\\x")
    with pytest.raises(ModelNotFoundError):
        PosePrior.from_pretrained("~no-such-user-advprior/x/y")
    with pytest.raises(ModelNotFoundError, match="manifest not found"):
        read_manifest("~no-such-user-advprior/manifest.json")
    # saving keeps the name as given (no such user: a folder of that name here) and loads back
    prior.save_pretrained("~no-such-user-advprior\\out")
    assert torch.equal(PosePrior.from_pretrained("~no-such-user-advprior\\out")(_z()), prior(_z()))


def test_a_manifest_path_with_a_leading_tilde_is_in_the_home_folder(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for checkpoint folders and $ADVPRIOR_CACHE: a Dockerfile ENV, a .env file or
    os.environ leave the ``~`` to the program; it was "weights manifest not found: ~/..."."""
    monkeypatch.setenv("HOME", str(tmp_path))
    _manifest(tmp_path, checkpoint)  # tmp_path / "manifest.json"
    monkeypatch.setenv("ADVPRIOR_MANIFEST", "~/manifest.json")
    assert list(read_manifest()) == ["tiny-s"]
    monkeypatch.delenv("ADVPRIOR_MANIFEST")
    assert list(read_manifest("~/manifest.json")) == ["tiny-s"]
    model = PosePrior.from_pretrained(checkpoint, manifest="~/manifest.json")
    assert model.latent_dim == 8


@pytest.mark.parametrize(
    "broken, match",
    [
        ({"sha256": None}, "sha256"),
        ({"sha256": "abc"}, "sha256"),
        ({"repo_id": "DROP"}, "repo_id"),
        # file names must stay inside the Hub repo / the package, and be strings
        ({"filename": "../../../SECRET.json"}, "filename '../../../SECRET.json' must be a plain"),
        ({"filename": "/etc/passwd"}, "filename '/etc/passwd' must be a plain"),
        ({"filename": "sub\\..\\..\\x"}, "filename .* must be a plain relative path"),
        ({"config_filename": "../../x.json"}, "config_filename '../../x.json' must be a plain"),
        ({"config_filename": 5}, "config_filename 5 must be a string, not int"),
        ({"bundled": 5}, "bundled 5 must be a string, not int"),
        ({"bundled": ["weights/gan-s"]}, "bundled .* must be a string, not list"),
        ({"bundled": "../../../../etc"}, "bundled '../../../../etc' must be a plain"),
        ({"bundled": "/etc"}, "bundled '/etc' must be a plain"),
        ({"sha256": 12345}, "sha256"),
    ],
)
def test_invalid_manifest_entries(
    tmp_path: Path, checkpoint: Path, broken: dict, match: str
) -> None:
    path = _manifest(tmp_path, checkpoint, **broken)
    data = json.loads(path.read_text())
    entry = data["models"]["tiny-s"]
    for key, value in broken.items():
        if value == "DROP":
            del entry[key]
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=match):
        read_manifest(path)


@pytest.mark.parametrize(
    "raw, match",
    [
        ('{"models": {"x": ' + "9" * 5000 + "}}", "not valid JSON: Exceeds the limit"),
        ('{"models": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON: nested too deeply"),
        (b'{"models": {"\xff": {}}}', "not valid JSON: 'utf-8' codec"),
    ],
    ids=["int-5000-digits", "deep", "not-utf8"],
)
def test_manifest_json_problems_name_the_manifest(tmp_path: Path, raw: str | bytes, match: str):
    path = tmp_path / "manifest.json"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    with pytest.raises(ManifestError, match=match) as err:
        read_manifest(path)
    assert str(path) in str(err.value) and "set_int_max_str_digits" not in str(err.value)


def test_packaged_manifest_is_valid_and_every_bundled_entry_verifies() -> None:
    models = read_manifest()
    assert hubmod.manifest_path() == hubmod.DEFAULT_MANIFEST
    assert json.loads(hubmod.DEFAULT_MANIFEST.read_text())["format_version"] == 1
    for alias, entry in models.items():
        assert entry["licence"] and entry["training_data"], alias
        if entry.get("bundled"):
            files = resolve_files(alias)
            assert files.source == "bundled"
            model = load_pretrained(alias)
            assert model.model_type == entry["model_type"]


def test_bundled_weights_verified_without_network(
    tmp_path: Path, checkpoint: Path, prior: PosePrior, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "pkg"
    (package / "weights").mkdir(parents=True)
    bundle = package / "weights" / "tiny-s"
    bundle.mkdir()
    for name in ("model.safetensors", "config.json"):
        (bundle / name).write_bytes((checkpoint / name).read_bytes())
    # read where the bundled copy is looked up (advprior.hub.resolution), not through advprior.hub
    monkeypatch.setattr(advprior.hub.resolution, "PACKAGE_DIR", package)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: no network used
    manifest = _manifest(tmp_path, checkpoint, bundled="weights/tiny-s")
    assert (
        resolve(  # the bundled copy, not a download
            "tiny-s", manifest=manifest
        )
        == bundle
    )
    assert torch.equal(PosePrior.from_pretrained("tiny-s", manifest=manifest)(_z()), prior(_z()))
    data = bytearray((bundle / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (bundle / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        PosePrior.from_pretrained("tiny-s", manifest=manifest)


# --- the Hub path ----------------------------------------------------------------------------


def test_download_verify_then_offline_from_cache(
    fake_hub: FakeHub,
    tmp_path: Path,
    checkpoint: Path,
    prior: PosePrior,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _publish(fake_hub, checkpoint)
    manifest = _manifest(tmp_path, checkpoint, revision="v0.1")
    cache = tmp_path / "cache"
    files = resolve_files("tiny-s", manifest=manifest, cache_dir=cache)
    assert files.source == "hub" and cache in files.weights.parents
    assert ("GET", f"/{REPO}/resolve/v0.1/model.safetensors") in fake_hub.requests
    loaded = PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=cache)
    assert torch.equal(loaded(_z()), prior(_z()))
    # second load: offline, with the server gone, from the populated cache
    fake_hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = len(fake_hub.requests)
    offline = advprior.load_pretrained("tiny-s", manifest=manifest, cache_dir=cache)
    assert torch.equal(offline(_z()), prior(_z()))
    assert len(fake_hub.requests) == before


def test_pinned_commit_served_from_cache_with_local_files_only(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path
) -> None:
    _publish(fake_hub, checkpoint)
    manifest = _manifest(tmp_path, checkpoint)
    cache = tmp_path / "cache"
    PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=cache)
    n = len(fake_hub.requests)
    PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=cache, local_files_only=True)
    assert len(fake_hub.requests) == n


def test_offline_without_cache(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish(fake_hub, checkpoint)
    manifest = _manifest(tmp_path, checkpoint)
    with pytest.raises(OfflineError, match="local_files_only"):
        PosePrior.from_pretrained(
            "tiny-s", manifest=manifest, cache_dir=tmp_path / "c1", local_files_only=True
        )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="HF_HUB_OFFLINE"):
        PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=tmp_path / "c2")
    assert fake_hub.requests == []


def test_unreachable_hub_without_cache(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # huggingface_hub retries a refused connection with ~23 s of back-off sleeps; skip the waits.
    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)
    with pytest.raises(OfflineError, match="could not be reached"):
        PosePrior.from_pretrained(
            "tiny-s", manifest=_manifest(tmp_path, checkpoint), cache_dir=tmp_path / "c"
        )


def test_an_endpoint_that_is_no_hub_is_named_with_the_reason(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An HF_ENDPOINT, proxy or captive portal that answers, but not as the Hub: huggingface_hub
    says so ("missing the 'X-Repo-Commit' header ... If HF_ENDPOINT is set, check ..."), but the
    OfflineError said only "the Hub could not be reached", all the CLI prints."""

    class Portal(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        with pytest.raises(OfflineError, match="could not be reached") as info:
            load_pretrained(
                "tiny-s", manifest=_manifest(tmp_path, checkpoint), cache_dir=tmp_path / "c"
            )
    finally:
        server.shutdown()
        server.server_close()
    assert url in str(info.value) and "X-Repo-Commit" in str(info.value)


def test_tampered_download_is_refused(fake_hub: FakeHub, tmp_path: Path, checkpoint: Path) -> None:
    _publish(fake_hub, checkpoint)
    manifest = _manifest(tmp_path, checkpoint)
    files = fake_hub.repos[REPO]["files"]
    data = bytearray(files["model.safetensors"])
    data[-1] ^= 0x01  # one flipped bit in a weight: still a valid safetensors file
    files["model.safetensors"] = bytes(data)
    with pytest.raises(ChecksumMismatchError, match="refusing"):
        PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=tmp_path / "cache")


def test_tampered_config_is_refused(fake_hub: FakeHub, tmp_path: Path, checkpoint: Path) -> None:
    _publish(fake_hub, checkpoint)
    fake_hub.repos[REPO]["files"]["config.json"] += b" "
    with pytest.raises(ChecksumMismatchError):
        PosePrior.from_pretrained(
            "tiny-s", manifest=_manifest(tmp_path, checkpoint), cache_dir=tmp_path / "cache"
        )


@pytest.mark.parametrize(
    "override",
    [
        {"filename": "weights/absent.safetensors"},  # 404 EntryNotFound
        {"repo_id": "advprior-test/absent"},  # 404 RepoNotFound
        {"revision": "fedcba9876543210fedcba9876543210fedcba98"},  # 404 RevisionNotFound
    ],
)
def test_missing_on_hub(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path, override: dict
) -> None:
    _publish(fake_hub, checkpoint)
    manifest = _manifest(tmp_path, checkpoint, **override)
    with pytest.raises(ModelNotFoundError, match="does not exist on the Hub"):
        PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=tmp_path / "cache")


def test_plain_hub_repo_id(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path, prior: PosePrior
) -> None:
    _publish(fake_hub, checkpoint, repo="someone/my-prior")
    cache = tmp_path / "cache"
    loaded = load_pretrained(
        "someone/my-prior", cache_dir=cache, manifest=_manifest(tmp_path, checkpoint)
    )
    assert torch.equal(loaded(_z()), prior(_z()))
    loaded = PosePrior.from_pretrained("someone/my-prior", revision=COMMIT, cache_dir=cache)
    assert torch.equal(loaded(_z()), prior(_z()))
    with pytest.raises(ModelNotFoundError):
        PosePrior.from_pretrained("someone/absent", cache_dir=cache)


def test_a_revision_that_was_not_used_warns_and_one_that_was_does_not(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path
) -> None:
    """An alias loads its pinned revision whatever ``revision=`` says, and a folder has none:
    a caller asking for another revision got those weights without a word."""
    _publish(fake_hub, checkpoint)
    manifest = _manifest(tmp_path, checkpoint, revision="v0.1")
    cache = tmp_path / "cache"
    with pytest.warns(RevisionWarning, match="'v0.2' not used: 'tiny-s' is a manifest alias"):
        PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=cache, revision="v0.2")
    with pytest.warns(RevisionWarning, match="is a local folder"):
        load_pretrained(checkpoint, revision="v0.2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the pinned revision, none, and a Hub repo id's own
        PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=cache, revision="v0.1")
        PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=cache)
        _publish(fake_hub, checkpoint, repo="someone/my-prior")
        PosePrior.from_pretrained("someone/my-prior", revision=COMMIT, cache_dir=cache)


def _flip_last_byte(path: Path) -> None:
    # the last tensor's last byte: a few ulps of one float, still finite, still parseable
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def test_a_folder_with_changed_weights_is_refused_by_the_sha256_its_config_records(
    checkpoint: Path, prior: PosePrior
) -> None:
    _flip_last_byte(checkpoint / "model.safetensors")
    for load in (load_pretrained, PosePrior.from_pretrained, resolve):
        with pytest.raises(ChecksumMismatchError, match="its config.json records"):
            load(checkpoint)
    # a model loaded, changed and saved again records its new weights
    tuned = prior
    with torch.no_grad():
        tuned.generator[0].bias.add_(0.5)
    tuned.save_pretrained(checkpoint)
    assert torch.equal(load_pretrained(checkpoint)(_z()), tuned(_z()))


def test_a_copy_of_a_released_checkpoint_is_checked_against_the_manifest(tmp_path: Path) -> None:
    import shutil

    files = resolve_files("gan-s")
    copy = tmp_path / "gan-s-copy"
    copy.mkdir()
    for f in (files.weights, files.config):
        shutil.copyfile(f, copy / f.name)
    # released configs predate the record: the manifest's config_sha256 recognises the copy
    assert "weights_sha256" not in json.loads((copy / "config.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an intact copy loads silently
        load_pretrained(copy)
    # other weights under the released config: a damaged copy, or (below) a 0.2.0 fine-tune;
    # they cannot be told apart, so it loads with a warning naming the alias
    _flip_last_byte(copy / "model.safetensors")
    with pytest.warns(UserWarning, match="config.json is that of 'gan-s'"):
        load_pretrained(copy)
    # a broken manifest in $ADVPRIOR_MANIFEST does not stop a local folder from loading, but
    # then nothing is known about it
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    load_pretrained(copy, manifest=broken)


def test_a_fine_tune_of_a_released_prior_saved_by_0_2_0_still_loads(tmp_path: Path) -> None:
    """advprior 0.2.0's save_pretrained wrote a loaded-and-tuned gan-s with gan-s's config.json
    byte for byte and no weights_sha256; such a folder must keep loading (it was refused as a
    damaged copy of gan-s)."""
    tuned = PosePrior.from_pretrained("gan-s", freeze=False)
    with torch.no_grad():
        tuned.generator[0].bias.add_(0.5)
    folder = tuned.save_pretrained(tmp_path / "tuned")
    # as 0.2.0 wrote it: gan-s's config.json, at format 1 (today's save records the tuned
    # weights' sha256 and moves gan-s's training record under fine_tuned_from)
    (folder / "config.json").write_bytes(resolve_files("gan-s").config.read_bytes())
    assert json.loads((folder / "config.json").read_text())["format_version"] == 1
    assert sha256_file(folder / "config.json") == sha256_file(resolve_files("gan-s").config)
    with pytest.warns(UserWarning, match="fine-tune saved by advprior 0.2.0"):
        loaded = load_pretrained(folder)
    assert torch.equal(loaded(_z(32)), tuned.eval()(_z(32)))


def test_a_malformed_weights_record_is_a_corrupt_config(checkpoint: Path) -> None:
    config = json.loads((checkpoint / "config.json").read_text())
    config["weights_sha256"] = "ABC"
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CorruptCheckpointError, match="weights_sha256"):
        load_pretrained(checkpoint)


def test_a_hub_repo_is_checked_against_the_sha256_its_config_records(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path
) -> None:
    _flip_last_byte(checkpoint / "model.safetensors")
    _publish(fake_hub, checkpoint, repo="someone/changed")
    with pytest.raises(ChecksumMismatchError, match="its config.json records"):
        load_pretrained("someone/changed", cache_dir=tmp_path / "cache")


def test_push_to_hub_uploads_the_saved_folder(
    prior: PosePrior, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    seen: dict = {}

    class RecordingApi:
        def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
            seen["endpoint"] = endpoint

        def create_repo(self, repo_id: str, private: bool | None, exist_ok: bool):
            seen["created"] = (repo_id, exist_ok)
            return type("Url", (), {"repo_id": repo_id})()

        def upload_folder(self, *, repo_id: str, folder_path: str, **kwargs: object) -> str:
            folder = Path(folder_path)
            seen["files"] = sorted(p.name for p in folder.iterdir())
            seen["config"] = json.loads((folder / "config.json").read_text())
            return f"https://hub.example/{repo_id}/commit/{COMMIT}"

    monkeypatch.setattr(huggingface_hub, "HfApi", RecordingApi)
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.example")
    url = prior.push_to_hub("me/tiny", training={"steps": 7})
    assert url.endswith(COMMIT)
    assert seen["created"] == ("me/tiny", True) and seen["endpoint"] == "http://hub.example"
    assert seen["files"] == ["README.md", "config.json", "model.safetensors"]
    assert seen["config"]["training"] == {"steps": 7} and seen["config"]["latent_dim"] == 8


def test_missing_manifest(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelNotFoundError, match="manifest not found"):
        read_manifest(tmp_path / "absent.json")
    with pytest.raises(ModelNotFoundError, match="manifest not found"):
        PosePrior.from_pretrained("gan-s", manifest=tmp_path / "absent.json")
    # an install that lacks the packaged manifest still loads Hub repo ids
    # read by advprior.hub.manifest, where it is defined (advprior.hub only re-exports it)
    monkeypatch.setattr(advprior.hub.manifest, "DEFAULT_MANIFEST", tmp_path / "not-installed.json")
    monkeypatch.delenv("ADVPRIOR_MANIFEST", raising=False)
    _publish(fake_hub, checkpoint, repo="someone/my-prior")
    model = load_pretrained("someone/my-prior", cache_dir=tmp_path / "cache")
    assert isinstance(model, PosePrior)
    with pytest.raises(ModelNotFoundError, match="none yet"):
        load_pretrained("gan-s", cache_dir=tmp_path / "cache")


def test_hf_hub_offline_is_read_per_call(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """huggingface_hub freezes HF_HUB_OFFLINE at import; advprior follows the variable as it is
    at each call: 0 turns offline mode off again, 1 on, unset falls back to the import value."""
    from huggingface_hub import constants

    _publish(fake_hub, checkpoint)
    manifest = _manifest(tmp_path, checkpoint)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as if HF_HUB_OFFLINE=1 at import
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=tmp_path / "c0")
    assert fake_hub.requests and constants.HF_HUB_OFFLINE is True  # restored afterwards
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(OfflineError, match="offline mode is on"):
        PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=tmp_path / "c1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(fake_hub.requests)
    with pytest.raises(OfflineError, match="offline mode is on"):
        PosePrior.from_pretrained("tiny-s", manifest=manifest, cache_dir=tmp_path / "c2")
    assert len(fake_hub.requests) == n


def test_a_mistyped_local_folder_is_named_as_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runs/a`` is a relative path and a Hub id alike: when it is neither, the error says
    that no local folder of that name exists either (offline, so no request is made)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match=r"no local folder 'rns/a' exists either"):
        PosePrior.from_pretrained("rns/a", cache_dir=tmp_path / "c")


# --- a damaged cache -------------------------------------------------------------------------


def _damage_cached_weights(cache: Path, repo: str) -> Path:
    """Flip a byte of the cached weights' blob (the snapshot entry is a symlink to it), as a
    disk error or an edit would; returns the blob."""
    (snapshot,) = (cache / f"models--{repo.replace('/', '--')}" / "snapshots").iterdir()
    blob = (snapshot / "model.safetensors").resolve()
    _flip_last_byte(blob)
    return blob


@pytest.mark.parametrize("name", ["tiny-s", "someone/my-prior"])
def test_a_cached_file_damaged_after_download_is_downloaded_again(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path, prior: PosePrior, name: str
) -> None:
    """The CLI has no force_download, and deleting the file a refusal names (a symlink into the
    cache's blobs) did not help: a damaged cached copy used to fail every later load. Online,
    it is fetched once more and checked again."""
    _publish(fake_hub, checkpoint)
    _publish(fake_hub, checkpoint, repo="someone/my-prior")
    manifest, cache = _manifest(tmp_path, checkpoint), tmp_path / "cache"
    load_pretrained(name, manifest=manifest, cache_dir=cache)
    repo = REPO if name == "tiny-s" else name
    blob = _damage_cached_weights(cache, repo)
    gets = [r for r in fake_hub.requests if r[0] == "GET" and r[1].endswith("model.safetensors")]
    loaded = load_pretrained(name, manifest=manifest, cache_dir=cache)
    assert torch.equal(loaded(_z()), prior(_z()))
    assert blob.read_bytes() == (checkpoint / "model.safetensors").read_bytes()
    again = [r for r in fake_hub.requests if r[0] == "GET" and r[1].endswith("model.safetensors")]
    assert len(again) == len(gets) + 1


@pytest.mark.parametrize("name", ["tiny-s", "someone/my-prior"])
def test_a_damaged_cached_file_offline_is_refused_naming_the_file_to_delete(
    fake_hub: FakeHub,
    tmp_path: Path,
    checkpoint: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    _publish(fake_hub, checkpoint)
    _publish(fake_hub, checkpoint, repo="someone/my-prior")
    manifest, cache = _manifest(tmp_path, checkpoint), tmp_path / "cache"
    load_pretrained(name, manifest=manifest, cache_dir=cache)
    blob = _damage_cached_weights(cache, REPO if name == "tiny-s" else name)
    damaged = blob.read_bytes()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(fake_hub.requests)
    with pytest.raises(ChecksumMismatchError) as info:
        load_pretrained(name, manifest=manifest, cache_dir=cache)
    assert str(blob) in str(info.value) and "offline" in str(info.value)
    assert len(fake_hub.requests) == n and blob.read_bytes() == damaged


def test_force_download_while_offline_is_an_offline_error(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HF_HUB_OFFLINE=1 and force_download=True (the remedy a checksum refusal suggests) was
    huggingface_hub's ValueError about local_files_only, an argument the caller never passed."""
    _publish(fake_hub, checkpoint)
    manifest, cache = _manifest(tmp_path, checkpoint), tmp_path / "cache"
    load_pretrained("tiny-s", manifest=manifest, cache_dir=cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    n = len(fake_hub.requests)
    for name in ("tiny-s", REPO):
        with pytest.raises(OfflineError, match=r"force_download=True .*HF_HUB_OFFLINE=1"):
            load_pretrained(name, manifest=manifest, cache_dir=cache, force_download=True)
    assert len(fake_hub.requests) == n


def test_a_damaged_cached_file_with_the_hub_unreachable_names_the_file_to_delete(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online, but the new download fails: the refusal is the checksum's, not a claim that the
    file is missing from the cache."""
    import huggingface_hub.utils._http as hf_http

    _publish(fake_hub, checkpoint)
    manifest, cache = _manifest(tmp_path, checkpoint), tmp_path / "cache"
    load_pretrained("tiny-s", manifest=manifest, cache_dir=cache)
    blob = _damage_cached_weights(cache, REPO)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)
    with pytest.raises(ChecksumMismatchError, match="Hub unreachable") as info:
        load_pretrained("tiny-s", manifest=manifest, cache_dir=cache)
    assert str(blob) in str(info.value)
    assert isinstance(info.value.__cause__, OfflineError)


def test_force_download_with_the_hub_unreachable_is_an_offline_error(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It was huggingface_hub's bare ValueError("Force download failed due to the above
    error."), where the same call without force_download is an OfflineError."""
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)
    manifest = _manifest(tmp_path, checkpoint)
    for name in ("tiny-s", REPO):
        with pytest.raises(OfflineError, match="could not be reached"):
            load_pretrained(name, manifest=manifest, cache_dir=tmp_path / "c", force_download=True)


def _snapshot_file(cache: Path, repo: str, filename: str = "model.safetensors") -> Path:
    (snapshot,) = (cache / f"models--{repo.replace('/', '--')}" / "snapshots").iterdir()
    return snapshot / filename


@pytest.mark.parametrize("name", ["tiny-s", "someone/my-prior"])
@pytest.mark.parametrize("cache_kind", ["without symlinks", "copied"])
def test_a_damaged_file_in_a_cache_of_plain_files_is_downloaded_again(
    fake_hub: FakeHub,
    tmp_path: Path,
    checkpoint: Path,
    prior: PosePrior,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    cache_kind: str,
) -> None:
    """A cache whose snapshot entries are plain files, not symlinks into blobs/ (Windows
    without developer mode, a disk without symlinks, a cache copied with cp -L): huggingface_hub's
    force_download wrote a new blob but kept the damaged entry, so the damage never healed,
    force_download=True did not help, and the refusal blamed the Hub ("it was downloaded just
    now: the Hub serves other bytes")."""
    import huggingface_hub.utils._http as hf_http
    from huggingface_hub import constants

    manifest, cache = _manifest(tmp_path, checkpoint), tmp_path / "cache"
    cache_dir: str | Path = cache
    if cache_kind == "without symlinks":
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_SYMLINKS", True)
        monkeypatch.setenv("HOME", str(tmp_path))
        cache_dir = "~/cache"  # as huggingface_hub expands it
    _publish(fake_hub, checkpoint)
    _publish(fake_hub, checkpoint, repo="someone/my-prior")
    repo = REPO if name == "tiny-s" else name
    load_pretrained(name, manifest=manifest, cache_dir=cache_dir)
    entry = _snapshot_file(cache, repo)
    if cache_kind == "copied":  # as cp -rL leaves it: each snapshot entry a copy of its blob
        for f in entry.parent.iterdir():
            data = f.read_bytes()
            f.unlink()
            f.write_bytes(data)
    assert entry.is_file() and not entry.is_symlink()
    good = entry.read_bytes()
    for force_download in (False, True):
        _flip_last_byte(entry)
        loaded = load_pretrained(
            name, manifest=manifest, cache_dir=cache_dir, force_download=force_download
        )
        assert torch.equal(loaded(_z()), prior(_z()))
        assert entry.read_bytes() == good
    assert not list(cache.rglob("*.replaced"))
    # a new download that fails leaves the damaged file where it was
    _flip_last_byte(entry)
    damaged = entry.read_bytes()
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)
    with pytest.raises(ChecksumMismatchError, match=str(entry)):
        load_pretrained(name, manifest=manifest, cache_dir=cache_dir)
    assert entry.read_bytes() == damaged and not list(cache.rglob("*.replaced"))


def test_a_damaged_plain_file_another_process_moved_first_is_left_to_it(tmp_path: Path) -> None:
    """Two processes healing one damaged file of a cache without symlinks: the one that finds
    the file gone when it moves it aside downloads without moving anything (it raised
    FileNotFoundError, reported as a failed download)."""
    from advprior.hub.download import _replaceable

    gone = tmp_path / "snapshots" / "abc" / "model.safetensors"  # found, then moved by another
    gone.parent.mkdir(parents=True)
    with _replaceable(gone):
        gone.write_bytes(b"downloaded")
    assert gone.read_bytes() == b"downloaded" and sorted(gone.parent.iterdir()) == [gone]


@pytest.mark.parametrize("name", ["tiny-s", "someone/my-prior"])
def test_a_download_that_breaks_off_is_an_offline_error_and_a_retry_loads(
    fake_hub: FakeHub,
    tmp_path: Path,
    checkpoint: Path,
    prior: PosePrior,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """A connection lost mid-file, after huggingface_hub's retries: its HTTP library's own
    exception (httpx's RemoteProtocolError) reached the caller, where a Hub that cannot be
    reached is an OfflineError."""
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)
    _publish(fake_hub, checkpoint)
    _publish(fake_hub, checkpoint, repo="someone/my-prior")
    manifest, cache = _manifest(tmp_path, checkpoint), tmp_path / "cache"
    fake_hub.break_off = 1000  # every attempt
    with pytest.raises(OfflineError, match=r"failed .*broke off .*try again"):
        load_pretrained(name, manifest=manifest, cache_dir=cache)
    fake_hub.break_off = 0
    loaded = load_pretrained(name, manifest=manifest, cache_dir=cache)
    assert torch.equal(loaded(_z()), prior(_z()))
    assert not [p for p in cache.rglob("*") if p.name.endswith(".incomplete")]


def test_a_server_error_on_the_download_is_an_offline_error_a_refusal_is_not(
    fake_hub: FakeHub, tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.utils._http as hf_http

    monkeypatch.setattr(hf_http.time, "sleep", lambda seconds: None)
    _publish(fake_hub, checkpoint)
    manifest = _manifest(tmp_path, checkpoint)
    fake_hub.get_status = 503  # the metadata request answers, the file's GET does not
    with pytest.raises(OfflineError, match=r"503.*try again"):
        load_pretrained("tiny-s", manifest=manifest, cache_dir=tmp_path / "c")
    fake_hub.get_status = 403  # a refusal is not a broken connection: its own error says why
    with pytest.raises(Exception, match="403") as info:
        load_pretrained("tiny-s", manifest=manifest, cache_dir=tmp_path / "c")
    assert not isinstance(info.value, OfflineError)


def test_a_hub_repos_cached_config_that_is_no_longer_json_is_downloaded_again(
    fake_hub: FakeHub,
    tmp_path: Path,
    checkpoint: Path,
    prior: PosePrior,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An alias's config.json is pinned by the manifest (and heals as its weights do); a plain
    Hub repo's was not checked, so a damaged cached copy failed every later load with "not
    valid JSON", which only force_download=True (absent from the CLI) repaired."""
    _publish(fake_hub, checkpoint, repo="someone/my-prior")
    cache = tmp_path / "cache"
    load_pretrained("someone/my-prior", cache_dir=cache)
    blob = _snapshot_file(cache, "someone/my-prior", "config.json").resolve()
    good = blob.read_bytes()
    blob.write_bytes(good[: len(good) // 2])  # a half-written or truncated copy
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CorruptCheckpointError, match="not valid JSON") as info:
        load_pretrained("someone/my-prior", cache_dir=cache)
    assert str(blob) in str(info.value) and "offline" in str(info.value)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    loaded = load_pretrained("someone/my-prior", cache_dir=cache)
    assert torch.equal(loaded(_z()), prior(_z()))
    assert blob.read_bytes() == good
    # a repo whose own config.json is not JSON is refused after one new download, not healed
    fake_hub.repos["someone/my-prior"]["files"]["config.json"] = b"{"
    with pytest.raises(CorruptCheckpointError, match="not valid JSON"):
        load_pretrained("someone/my-prior", revision="main", cache_dir=tmp_path / "other")


def _read_only_cache(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """Downloads into ``cache`` fail as on a read-only mount (EROFS, as huggingface_hub raises
    it when creating the repo folder or the lock file; root ignores chmod, so it is injected);
    reading what is cached still works."""
    import huggingface_hub

    real = huggingface_hub.hf_hub_download

    def download(repo_id: str, filename: str, **kwargs: object) -> str:
        if not kwargs.get("local_files_only"):
            cached = huggingface_hub.try_to_load_from_cache(
                repo_id, filename, cache_dir=kwargs["cache_dir"], revision=kwargs["revision"]
            )
            if kwargs.get("force_download") or not isinstance(cached, str):
                folder = cache / f"models--{repo_id.replace('/', '--')}"
                raise OSError(errno.EROFS, "Read-only file system", str(folder))
        return real(repo_id, filename, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)


@pytest.mark.parametrize("name", ["tiny-s", "someone/my-prior"])
def test_a_read_only_cache_says_which_cache_and_what_to_do(
    fake_hub: FakeHub,
    tmp_path: Path,
    checkpoint: Path,
    prior: PosePrior,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """A cold read-only cache was huggingface_hub's bare "[Errno 30] Read-only file system:
    '.../models--x'"; a damaged file in a read-only cache was the lock file's OSError, which
    hid the damage (only a Hub that could not be reached kept the checksum refusal)."""
    _publish(fake_hub, checkpoint)
    _publish(fake_hub, checkpoint, repo="someone/my-prior")
    manifest, warm, cold = _manifest(tmp_path, checkpoint), tmp_path / "warm", tmp_path / "cold"
    load_pretrained(name, manifest=manifest, cache_dir=warm)
    _read_only_cache(monkeypatch, cold)
    unwritable = r"cannot download .* into the Hub cache .*cache_dir="
    with pytest.raises(OSError, match=unwritable) as info:
        load_pretrained(name, manifest=manifest, cache_dir=cold)
    assert info.value.errno == errno.EROFS
    _read_only_cache(monkeypatch, warm)
    loaded = load_pretrained(name, manifest=manifest, cache_dir=warm)  # a warm one loads
    assert torch.equal(loaded(_z()), prior(_z()))
    blob = _damage_cached_weights(warm, REPO if name == "tiny-s" else name)
    with pytest.raises(ChecksumMismatchError, match="downloading it again failed") as mismatch:
        load_pretrained(name, manifest=manifest, cache_dir=warm)
    assert str(blob) in str(mismatch.value)
    assert isinstance(mismatch.value.__cause__, OSError)


def test_huggingface_hub_0_23_errors_module_is_enough(
    fake_hub: FakeHub,
    tmp_path: Path,
    checkpoint: Path,
    prior: PosePrior,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyproject allows huggingface_hub>=0.23, whose ``huggingface_hub.errors`` lacks
    EntryNotFoundError and the other lookup errors: every download was an ImportError there.
    (The Hub tests above also pass with huggingface_hub 0.23.5 installed.)"""
    import sys
    import types

    import huggingface_hub.errors as current
    import huggingface_hub.file_download  # noqa: F401 - imported before the module is swapped
    import huggingface_hub.utils as hf_utils

    old = types.ModuleType("huggingface_hub.errors")
    old.__dict__.update(current.__dict__)
    for name in ("Entry", "LocalEntry", "Repository", "Revision"):
        # as in 0.23.5, which had them in huggingface_hub.utils (not lazily) and not in errors
        error = f"{name}NotFoundError"
        monkeypatch.setattr(hf_utils, error, getattr(hf_utils, error))
        old.__dict__.pop(error, None)
    monkeypatch.setitem(sys.modules, "huggingface_hub.errors", old)
    _publish(fake_hub, checkpoint)
    manifest = _manifest(tmp_path, checkpoint)
    loaded = load_pretrained("tiny-s", manifest=manifest, cache_dir=tmp_path / "cache")
    assert torch.equal(loaded(_z()), prior(_z()))
    with pytest.raises(ModelNotFoundError, match="does not exist on the Hub"):
        load_pretrained("someone/absent", cache_dir=tmp_path / "cache")


def test_numpy_scalar_arguments_are_recorded_as_json_numbers(tmp_path: Path) -> None:
    # A sweep's np.arange / np.float32 values built and trained a model whose save_pretrained
    # then refused them ("constructor arguments ['num_components'] are not JSON values")
    import numpy as np

    from advprior.baselines import GMMPrior, VPoserVAE

    for model in (
        PosePrior(dropout=np.float32(0.25), hidden_dim=8, latent_dim=4),
        VPoserVAE(hidden_dim=np.int64(8), latent_dim=4),
        GMMPrior(np.int64(2)),
    ):
        model.save_pretrained(tmp_path / model.model_type)
        config = json.loads((tmp_path / model.model_type / "config.json").read_text())
        assert all(type(v) in (int, float, str, bool, type(None), dict) for v in config.values())
        loaded = load_pretrained(tmp_path / model.model_type)
        assert loaded.config == model.config
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
    assert PosePrior(dropout=np.float32(0.25)).config["dropout"] == 0.25
    assert type(GMMPrior(np.int64(2)).config["num_components"]) is int


def test_a_model_changed_after_loading_does_not_save_the_loaded_models_training_record(
    tmp_path: Path,
) -> None:
    # from_pretrained(..., freeze=False), a fine-tuning in the user's own loop, save_pretrained:
    # the card quoted the loaded model's steps, data and validation numbers for the new
    # weights. They now sit under fine_tuned_from; the data's licence and credit stay.
    torch.manual_seed(0)
    base = PosePrior(hidden_dim=8, latent_dim=4)
    record = {
        "steps": 6000,
        "metrics_val_mm": {"recall_mean_mm": 86.5},
        "weights_license": "cc-by-sa-3.0",
        "licence": "share-alike data",
        "attribution": "credit X",
    }
    base.save_pretrained(tmp_path / "base", training=record)
    base_sha = json.loads((tmp_path / "base" / "config.json").read_text())["weights_sha256"]

    loaded = PosePrior.from_pretrained(tmp_path / "base", freeze=False)
    loaded.double().float()  # a round trip is the same weights: the record stays
    loaded.save_pretrained(tmp_path / "same")
    assert json.loads((tmp_path / "same" / "config.json").read_text())["training"] == record

    with torch.no_grad():
        loaded.generator[0].bias.add_(0.01)  # one training step
    loaded.save_pretrained(tmp_path / "tuned")
    training = json.loads((tmp_path / "tuned" / "config.json").read_text())["training"]
    assert training == {
        "weights_license": "cc-by-sa-3.0",
        "licence": "share-alike data",
        "attribution": "credit X",
        "fine_tuned_from": {"weights_sha256": base_sha, "training": record},
    }
    card = (tmp_path / "tuned" / "README.md").read_text()
    assert "license: cc-by-sa-3.0" in card and "- **steps**" not in card
    assert load_pretrained(tmp_path / "tuned").training_metadata == training
    # the caller's own record describes the new weights, passed or assigned
    loaded.save_pretrained(tmp_path / "own", training={"steps": 50})
    assert json.loads((tmp_path / "own" / "config.json").read_text())["training"] == {"steps": 50}
    again = PosePrior.from_pretrained(tmp_path / "base", freeze=False)
    with torch.no_grad():
        again.generator[0].bias.add_(0.01)
    again.training_metadata = {"steps": 7}
    assert again.config["training"] == {"steps": 7}


def test_a_torch_saved_state_dict_passed_as_a_model_says_how_it_loads(tmp_path: Path) -> None:
    # torch.save(prior.state_dict()) passed to load_pretrained was called VPoser's weights
    # (another model) with no word on how a state dict of one's own advprior model loads
    prior = PosePrior(hidden_dim=8, latent_dim=4)
    torch.save(prior.state_dict(), tmp_path / "prior.pt")
    with pytest.raises(ModelNotFoundError, match=r"from_config\(model\.config\)") as err:
        load_pretrained(tmp_path / "prior.pt")
    assert "torch.save(model.state_dict())" in str(err.value)
    # and what it says works
    again = PosePrior.from_config(prior.config)
    again.load_state_dict(torch.load(tmp_path / "prior.pt", weights_only=True))
    for key, value in prior.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
