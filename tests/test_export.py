"""advprior.export and ``advprior export``: ONNX (run in onnxruntime) and TorchScript files match
PyTorch's decode for every output kind at batch 1 and 4096, with a dynamic batch dimension and
the provenance metadata inside the file."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from advprior.cli import main
from advprior.export import export_prior, read_export_metadata
from advprior.hub import load_pretrained, resolve_files, sha256_file
from advprior.skeleton import JOINT_NAMES

# torch >= 2.9 deprecates TorchScript; loading the files still works and is what is tested here
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

OUTPUT_KINDS = ("axis_angle", "rotmat", "rot6d", "quat")
# Two float32 implementations of the same graph (BLAS kernels, 512-term sums, atan2) differ by
# a few ulps of the ~1-magnitude 6D outputs, i.e. ~1e-6 in the pose: 1e-5 leaves 10x margin.
ATOL = 1e-5


def assert_as_accurate(out: torch.Tensor, ref: torch.Tensor, exact: torch.Tensor, what) -> None:
    """``out`` (a runtime's float32 decode) is as accurate as PyTorch's float32 ``ref``: per row,
    its distance to the float64 decode ``exact`` is at most ATOL plus twice ``ref``'s own.

    Comparing the two float32 results directly at ATOL holds for well-conditioned rows only:
    where the generator's raw 6D columns are short or nearly parallel, Gram-Schmidt amplifies
    the last-bit differences of the 512-term sums (seen: 1.3e-5 between onnxruntime 1.32 and
    PyTorch on 2 of 4,096 latents), and PyTorch's own float32 result is then just as far from
    the exact one (1.35e-5). That row's conditioning, measured as PyTorch's error, is the
    tolerance it earns."""
    if exact.shape[0] == 0:
        return
    own = (ref.double() - exact).abs().flatten(1).amax(1)
    err = (out.double() - exact).abs().flatten(1).amax(1)
    worst = int((err - 2 * own).argmax())
    assert bool((err <= ATOL + 2 * own).all()), (what, worst, float(err[worst]), float(own[worst]))


@pytest.fixture(scope="module")
def gan():
    return load_pretrained("gan-s")


@pytest.fixture(scope="module")
def gan64(gan):
    """The same weights in float64: the exact decode the float32 runtimes are measured against."""
    return copy.deepcopy(gan).double()


@pytest.fixture(scope="module")
def latents() -> dict[int, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    # 0: a video frame where nobody was detected (onnxruntime cannot infer a -1 beside it)
    return {b: torch.randn(b, 32, generator=g) for b in (0, 1, 4096)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """One file per (format, output kind), exported once for the module."""
    folder = tmp_path_factory.mktemp("export")
    cache: dict = {}

    def get(fmt: str, kind: str, **kwargs) -> Path:
        key = (fmt, kind, tuple(sorted(kwargs.items())))
        if key not in cache:
            suffix = ".onnx" if fmt == "onnx" else ".pt"
            path = folder / f"{fmt}-{kind}-{len(cache)}{suffix}"
            export_prior("gan-s", path, format=fmt, output_kind=kind, **kwargs)
            cache[key] = path
        return cache[key]

    return get


def _onnx_session(path: Path):
    ort = pytest.importorskip(
        "onnxruntime", reason="onnxruntime is not installed (advprior[export])"
    )
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_onnx_matches_pytorch(gan, gan64, latents, exported, kind: str) -> None:
    pytest.importorskip("onnx", reason="onnx is not installed (advprior[export])")
    session = _onnx_session(exported("onnx", kind))
    assert session.get_inputs()[0].name == "z"
    assert session.get_inputs()[0].shape[0] == "batch"  # dynamic batch dimension
    for batch, z in latents.items():
        (out,) = session.run(None, {"z": z.numpy()})
        ref = gan.decode(z, output=kind, project=False)
        assert out.shape == tuple(ref.shape)
        exact = gan64.decode(z.double(), output=kind, project=False)
        assert_as_accurate(torch.from_numpy(out), ref, exact, (kind, batch))


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_torchscript_matches_pytorch(gan, latents, exported, kind: str) -> None:
    module = torch.jit.load(str(exported("torchscript", kind)))
    for batch, z in latents.items():
        ref = gan.decode(z, output=kind, project=False)
        out = module(z)
        assert out.shape == ref.shape
        assert torch.allclose(out, ref, rtol=0, atol=ATOL), (kind, batch)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_projection_in_the_graph(gan, latents, exported, fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnx", reason="onnx is not installed (advprior[export])")
        session = _onnx_session(exported("onnx", "axis_angle", project=True))

        def run(z: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"z": z.numpy()})[0])
    else:
        run = torch.jit.load(str(exported("torchscript", "axis_angle", project=True)))
    z = latents[4096] * 3.0  # off the sphere: the graph must project
    zp = gan.project(z)
    ref = gan.decode(zp)
    # The runtimes round |z| differently (an ulp or two of the projected z); the decoder's own
    # response to a 2-ulp change of z bounds what that may move, on these very inputs.
    ulps = 2 * torch.finfo(torch.float32).eps
    sign = torch.randint(0, 2, zp.shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    sensitivity = (gan.decode(zp * (1 + ulps * sign)) - ref).abs().max()
    assert (run(z) - ref).abs().max() <= ATOL + sensitivity
    assert torch.allclose(run(latents[1]), gan.decode(gan.project(latents[1])), atol=ATOL)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_metadata_in_the_file(exported, fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnx", reason="onnx is not installed (advprior[export])")
    path = exported(fmt, "quat")
    meta = read_export_metadata(path)
    from advprior import __version__

    assert meta["alias"] == "gan-s"
    assert meta["weights_sha256"] == sha256_file(resolve_files("gan-s").weights)
    assert meta["latent"] == "sphere" and meta["latent_dim"] == 32
    assert meta["joint_names"] == list(JOINT_NAMES[1:22])
    assert meta["output_kind"] == "quat" and meta["output_shape"] == ["batch", 21, 4]
    assert meta["advprior_version"] == __version__
    assert meta["projected"] is False
    if fmt == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert props["alias"] == "gan-s" and json.loads(props["advprior.json"]) == meta
    else:
        with zipfile.ZipFile(path) as archive:
            assert any(n.endswith("/extra/advprior.json") for n in archive.namelist())
        extra = {"advprior.json": ""}
        torch.jit.load(str(path), _extra_files=extra)
        assert json.loads(extra["advprior.json"]) == meta


def test_vae_and_smpl_body_export(tmp_path: Path) -> None:
    vae = load_pretrained("vae")
    path = tmp_path / "vae.pt"
    meta = export_prior(vae, path, format="torchscript", output_kind="rotmat", body="smpl")
    assert meta["alias"] is None and len(meta["weights_sha256"]) == 64
    assert meta["joint_names"][-2:] == ["left_hand", "right_hand"]
    z = torch.randn(5, 32)
    out = torch.jit.load(str(path))(z)
    assert out.shape == (5, 23, 3, 3)
    assert torch.allclose(out[:, :21], vae.decode(z, output="rotmat"), atol=ATOL)
    assert torch.equal(out[:, 21:], torch.eye(3).expand(5, 2, 3, 3))


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        export_prior("gan-s", tmp_path / "x", format="tflite")
    with pytest.raises(ValueError, match="output must be one of"):
        export_prior("gan-s", tmp_path / "x", output_kind="euler")
    with pytest.raises(ValueError, match="body"):
        export_prior("gan-s", tmp_path / "x", body="mano")
    with pytest.raises(TypeError, match="latent decoder"):
        export_prior("gmm", tmp_path / "x", format="torchscript")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_cli_export(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gan.pt"
    code = main(
        ["export", "--model", "gan-s", "--format", "torchscript", "--output", str(out),
         "--output-kind", "rotmat", "--project", "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "projected in the graph" in text and "(batch, 21, 3, 3)" in text
    assert text.count("\n") == 1  # the answer is one line
    meta = read_export_metadata(out)
    assert meta["projected"] is True and meta["output_kind"] == "rotmat"
    # a model that cannot be exported is a failure (exit 1, one line), as for every command
    assert main(["export", "--model", "gmm", "--output", str(tmp_path / "g.pt")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("advprior export: error:") and "latent decoder" in err
    assert err.count("\n") == 1
    # a bad option value is a usage error (exit 2)
    assert main(["export", "--model", "gan-s", "--output", str(out), "--device", "nope"]) == 2


def test_reading_metadata_of_a_file_that_is_no_export(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    other = tmp_path / "notes.py"
    other.write_text("print('hello')\n")
    with pytest.raises(ValueError, match="neither a TorchScript archive nor an ONNX model"):
        read_export_metadata(other)


def _torchscript_like(path: Path, member: bytes | None = None, spaces: int = 0) -> Path:
    """A zip laid out like a TorchScript archive whose extra/advprior.json is ``member`` (or
    ``spaces`` bytes of blanks, which deflate ~1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr(
            "model/extra/advprior.json", member if member is not None else b" " * spaces
        )
    return path


@pytest.mark.parametrize(
    "member, match",
    [
        (b"{not json", "is not valid JSON: Expecting property name"),
        (b'{"a": "\xc3\x28"}', "is not valid JSON: 'utf-8' codec"),
        # a UTF-16 byte-order mark is read as UTF-16 (what Windows PowerShell 5 writes)
        (b"\xff\xfe\x00", "is not valid JSON: 'utf-16-le' codec"),
        (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON: nested too deeply"),
        (b"9" * 5000, "is not valid JSON: Exceeds the limit"),
        (b"[1, 2]", "must hold a JSON object, not list"),
    ],
    ids=["syntax", "not-utf8", "truncated-utf16", "deep", "int-5000-digits", "list"],
)
def test_malformed_torchscript_metadata_is_one_valueerror(tmp_path: Path, member, match) -> None:
    path = _torchscript_like(tmp_path / "m.pt", member)
    with pytest.raises(ValueError, match=match) as err:
        read_export_metadata(path)
    assert type(err.value) is ValueError and str(path) in str(err.value)


@pytest.mark.parametrize(
    "value, match",
    [("{nope", "not valid JSON"), ("[" * 100_000 + "]" * 100_000, "nested too deeply")],
    ids=["syntax", "deep"],
)
def test_malformed_onnx_metadata_is_one_valueerror(tmp_path: Path, value, match) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = "advprior.json", value
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match=match) as err:
        read_export_metadata(path)
    assert type(err.value) is ValueError and str(path) in str(err.value)


def test_missing_or_bomb_export_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import advprior.export
    import advprior.fileio

    with pytest.raises(FileNotFoundError, match="no exported model at .*absent.pt"):
        read_export_metadata(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match="is not a file"):
        read_export_metadata(tmp_path)
    # 2 MB of blanks in ~2 KB: a bomb once the threshold is scaled down (the real one is 64 MiB)
    bomb = _torchscript_like(tmp_path / "bomb.pt", spaces=2_000_000)
    monkeypatch.setattr(advprior.fileio, "ZIP_CHECK_ABOVE", 2**20)
    with pytest.raises(ValueError, match="'model/extra/advprior.json' would decompress to 2 MiB"):
        read_export_metadata(bomb)
    # below the bomb check, a member larger than a JSON file can be is not read either
    monkeypatch.setattr(advprior.fileio, "ZIP_CHECK_ABOVE", 2**30)
    monkeypatch.setattr(advprior.export, "JSON_MAX_BYTES", 10**6)
    with pytest.raises(ValueError, match="declares 2000000 bytes, more than 1000000: not read"):
        read_export_metadata(bomb)


# torch 2.1's torch.export has neither Dim nor strict=, and its dynamo cannot trace the decoder
# (inference_mode, the constant cache): torch.export / torch.compile are tested on newer torch.
needs_modern_torch_export = pytest.mark.skipif(
    not hasattr(torch.export, "Dim"), reason="this torch's torch.export lacks Dim / strict="
)


@needs_modern_torch_export
def test_torch_export_of_user_code_leaves_later_eager_calls_alone() -> None:
    # torch.export (non-strict, its default) runs our eager code on fake tensors; constants or
    # the stand-in body built during that trace must not be cached for later calls. A fresh
    # process, so the trace is the first call that builds them.
    code = """
import torch
from advprior import PosePrior
from advprior.body import forward_kinematics

torch.manual_seed(0)
prior = PosePrior(latent="sphere").eval()

class Fk(torch.nn.Module):
    def forward(self, z):
        pose = prior.decode(z)
        return forward_kinematics(torch.zeros(z.shape[0], 3), pose)

z = prior.project(torch.randn(3, 32))
exported = torch.export.export(Fk(), (z,), strict=False).module()
eager = Fk()(z)
assert type(eager) is torch.Tensor, type(eager)
assert torch.isfinite(eager).all() and eager.shape == (3, 24, 3)
assert torch.allclose(exported(z), eager, atol=1e-5)
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@needs_modern_torch_export
@pytest.mark.parametrize("strict", [False, True], ids=["non-strict", "strict"])
@pytest.mark.parametrize("output", ["axis_angle", "rotmat"])
def test_torch_export_with_a_dynamic_batch_serves_every_batch_size(
    output: str, strict: bool
) -> None:
    """The rotation code picks its kernels by batch size; with a symbolic size it must record
    one set for every size instead of guarding the graph on the size it was traced at. Strict
    export traces with dynamo, where the size reads as an int: it failed with "Not all values
    of B satisfy 21*B < 1024"."""
    from advprior import load_pretrained

    prior = load_pretrained("gan-s")

    class Decode(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.prior = prior  # a submodule: strict export cannot lift a closure's weights

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.prior.decode(z, output=output)

    gen = torch.Generator().manual_seed(0)
    z = prior.sample_latent(4, generator=gen)
    program = torch.export.export(
        Decode(), (z,), dynamic_shapes={"z": {0: torch.export.Dim("B")}}, strict=strict
    )
    for n in (1, 7, 1500):  # both sides of the eager kernels' switch at 1024
        zz = prior.sample_latent(n, generator=gen)
        # the two kernels are the same float32 arithmetic in another order: rounding only,
        # a few float32 eps (1.2e-7) of angles up to pi
        torch.testing.assert_close(
            program.module()(zz), prior.decode(zz, output=output), atol=5e-6, rtol=0
        )


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_onnx_declares_static_joint_dims(exported, kind: str) -> None:
    # Code that sizes its buffers from the file's declared shapes must see J: only the batch
    # dim is symbolic ("batch"); the tracer had left rotmat's J as 'Reshapepose_dim_1'.
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (advprior[export])")
    path = exported("onnx", kind)
    meta = read_export_metadata(path)
    model = onnx.load(str(path))

    def dims(value) -> list:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert meta["output_shape"][0] == "batch" and all(
        isinstance(d, int) for d in meta["output_shape"][1:]
    )
    assert dims(model.graph.input[0]) == ["batch", 32] == meta["input"]["shape"]
    assert dims(model.graph.output[0]) == meta["output_shape"]
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert dims(inferred.graph.output[0]) == meta["output_shape"]
    onnx.checker.check_model(model, full_check=True)
    assert _onnx_session(path).get_outputs()[0].shape == meta["output_shape"]


def test_opset_outside_the_exporter_range_is_refused(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnx", reason="onnx is not installed (advprior[export])")
    import advprior.export
    from advprior.export import MAX_OPSET, MIN_OPSET

    for bad in (MIN_OPSET - 1, MAX_OPSET + 1, True, "17"):
        with pytest.raises(ValueError, match=f"opset must be an integer from {MIN_OPSET} "):
            export_prior("gan-s", tmp_path / "x.onnx", opset=bad)
    code = main(["export", "--output", str(tmp_path / "x.onnx"), "--opset", str(MAX_OPSET + 9)])
    err_text = capsys.readouterr().err
    assert code == 2 and err_text.startswith("advprior export: error: --opset: opset must be")
    assert err_text.count("\n") == 1
    # Why the lower bound: below it torch fails (7: expand_as) or (8: Where) writes a file that
    # onnxruntime refuses to load. Both, if reached, are one ValueError and no file.
    monkeypatch.setattr(advprior.export, "MIN_OPSET", 7)
    for low in (7, 8):
        with pytest.raises(ValueError, match=f"cannot export at ONNX opset {low}: ") as err:
            export_prior("gan-s", tmp_path / "x.onnx", opset=low)
        assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())
    # the lowest accepted opset exports every projection (GAN-S's writes e_0 by index_put)
    meta = export_prior("gan-s", tmp_path / "low.onnx", opset=MIN_OPSET, project=True)
    assert meta["opset"] == MIN_OPSET
    session = _onnx_session(tmp_path / "low.onnx")
    # 0 -> e_0 and 4 e_3 -> e_3 are exact in float32: only the graph's own rounding remains
    z = torch.zeros(2, 32)
    z[1, 3] = 4.0
    ref = load_pretrained("gan-s").decode(torch.eye(32)[[0, 3]], project=False)
    out = torch.from_numpy(session.run(None, {"z": z.numpy()})[0])
    assert torch.allclose(out, ref, rtol=0, atol=ATOL)


def test_files_run_without_advprior(gan, exported, tmp_path: Path) -> None:
    """A deployment's view: a fresh process where advprior cannot be imported reads the
    metadata, the declared shapes, and runs two batch sizes in one session."""
    pytest.importorskip("onnx", reason="onnx is not installed (advprior[export])")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (advprior[export])")
    import numpy as np

    z7 = gan.sample_latent(7, generator=torch.Generator().manual_seed(3))
    np.save(tmp_path / "z.npy", z7.numpy())
    np.save(tmp_path / "ref.npy", gan.decode(z7, output="rotmat", project=False).numpy())
    code = f"""
import json, sys, warnings
sys.modules["advprior"] = None  # the package is not there on the deployment machine
import numpy as np, onnx, onnxruntime as ort, torch
z, ref = np.load("z.npy"), np.load("ref.npy")
onnx_path, ts_path = {str(exported("onnx", "rotmat"))!r}, {str(exported("torchscript", "rotmat"))!r}
props = {{p.key: p.value for p in onnx.load(onnx_path).metadata_props}}
meta = json.loads(props["advprior.json"])
assert props["output_kind"] == "rotmat" and json.loads(props["output_shape"]) == [
    "batch", 21, 3, 3], props
session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
assert session.get_modelmeta().custom_metadata_map["alias"] == "gan-s"
(inp,), (out,) = session.get_inputs(), session.get_outputs()
assert (inp.name, inp.type, inp.shape) == ("z", "tensor(float)", ["batch", 32]), inp
assert (out.name, out.type, out.shape) == ("pose", "tensor(float)", meta["output_shape"]), out
for batch in (7, 0, 3):
    pose = session.run(None, {{"z": z[:batch]}})[0]
    assert pose.shape == (batch, 21, 3, 3) and np.abs(pose - ref[:batch]).max(initial=0) <= {ATOL}
extra = {{"advprior.json": ""}}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    module = torch.jit.load(ts_path, _extra_files=extra)
assert json.loads(extra["advprior.json"])["output_shape"] == meta["output_shape"]
pose = module(torch.from_numpy(z)).numpy()
assert np.abs(pose - ref).max() <= {ATOL}
print("ok")
"""
    env = {k: v for k, v in __import__("os").environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_export_leaves_the_callers_model_in_its_mode(tmp_path: Path) -> None:
    # Exporting a checkpoint from inside a training loop: the traced copy is put in eval mode,
    # the caller's generator must keep training with its dropout (it had been left in eval).
    from advprior import PosePrior

    prior = PosePrior(latent="sphere").train()
    before = [m.training for m in prior.modules()]
    export_prior(prior, tmp_path / "mid-training.pt", format="torchscript")
    assert [m.training for m in prior.modules()] == before
    prior.eval()
    export_prior(prior, tmp_path / "eval.pt", format="torchscript")
    assert not any(m.training for m in prior.modules())
    # the file is the eval-mode decoder either way (no dropout in the graph)
    z = prior.sample_latent(4, generator=torch.Generator().manual_seed(0))
    for name in ("mid-training.pt", "eval.pt"):
        out = torch.jit.load(str(tmp_path / name))(z)
        assert torch.allclose(out, prior.decode(z, project=False), rtol=0, atol=ATOL)


def test_cli_takes_the_format_from_the_file_name(tmp_path: Path, capsys) -> None:
    """``--output decoder.pt`` without ``--format`` writes TorchScript (it wrote ONNX bytes
    under a name every PyTorch user reads as ``torch.jit.load``-able)."""
    pytest.importorskip("onnx")
    for name, fmt in (("d.pt", "torchscript"), ("d.TS", "torchscript"), ("d.onnx", "onnx")):
        assert main(["export", "--output", str(tmp_path / name)]) == 0
        assert f"[{fmt}]" in capsys.readouterr().out
        assert read_export_metadata(tmp_path / name)["format"] == fmt
    torch.jit.load(str(tmp_path / "d.pt"))  # loads as what its name says
    # an explicit --format still wins
    assert main(["export", "--format", "onnx", "--output", str(tmp_path / "x.pt")]) == 0
    assert read_export_metadata(tmp_path / "x.pt")["format"] == "onnx"


def test_onnx_file_ending_like_a_zip_is_read_as_onnx(tmp_path: Path) -> None:
    """A zip's end record (what ``zipfile.is_zipfile`` looks for) can end an ONNX file by
    chance; such a file was read as a TorchScript archive and refused."""
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "d.onnx"
    export_prior("gan-s", path, format="onnx")
    model = onnx.load(str(path))
    # metadata_props is serialised last, so the file ends with this value
    model.metadata_props.add(key="zz", value="PK\x05\x06" + "\x00" * 18)
    onnx.save(model, str(path))
    assert zipfile.is_zipfile(path)
    assert read_export_metadata(path)["format"] == "onnx"


# -- the weights file is verified as for loading; the device is honoured -------------------------


def _copy_of(alias: str, folder: Path) -> Path:
    import shutil

    files = resolve_files(alias)
    folder.mkdir()
    for f in (files.weights, files.config):
        shutil.copyfile(f, folder / f.name)
    return folder


def _flip_last_byte(path: Path) -> None:
    # the last byte belongs to the last tensor's data: a float changes by a few ulps and stays
    # finite, so only the sha256 can tell
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))


def test_export_of_a_copied_checkpoint_whose_weights_changed(tmp_path: Path, capsys) -> None:
    from advprior.errors import CorruptCheckpointError
    from advprior.hub import read_manifest

    folder = _copy_of("gan-s", tmp_path / "copy")
    meta = export_prior(folder, tmp_path / "ok.pt", format="torchscript")
    assert meta["weights_sha256"] == read_manifest()["gan-s"]["sha256"]
    # other weights under gan-s's config.json: a damaged copy or a fine-tune saved by 0.2.0
    # (which kept the config); loading and exporting both warn, naming the alias, and the
    # export records the sha256 of the file it loaded
    _flip_last_byte(folder / "model.safetensors")
    out = tmp_path / "x.pt"
    with pytest.warns(UserWarning, match="that of 'gan-s'"):
        load_pretrained(folder)
    with pytest.warns(UserWarning, match="that of 'gan-s'"):
        meta = export_prior(folder, out, format="torchscript")
    assert meta["weights_sha256"] == sha256_file(folder / "model.safetensors")
    assert meta["weights_sha256"] != read_manifest()["gan-s"]["sha256"]
    # truncated: refused when the file is parsed, nothing written, a one-line CLI error
    pytest.importorskip("onnx", reason="onnx is not installed (advprior[export])")
    out = tmp_path / "x.onnx"
    weights = folder / "model.safetensors"
    weights.write_bytes(resolve_files("gan-s").weights.read_bytes()[:1000])
    with pytest.warns(UserWarning), pytest.raises(CorruptCheckpointError):
        export_prior(folder, out)
    assert not out.exists()
    with pytest.warns(UserWarning):
        assert main(["export", "--model", str(folder), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("advprior export: error:") and err.count("\n") == 1


def test_export_checks_the_sha256_a_saved_folder_records(tmp_path: Path) -> None:
    from advprior import PosePrior
    from advprior.errors import ChecksumMismatchError

    torch.manual_seed(0)
    folder = tmp_path / "mine"
    PosePrior(latent="uniform").save_pretrained(folder)
    recorded = json.loads((folder / "config.json").read_text())["weights_sha256"]
    assert recorded == sha256_file(folder / "model.safetensors")
    assert export_prior(folder, tmp_path / "ok.pt", format="torchscript")["weights_sha256"] == (
        recorded
    )
    _flip_last_byte(folder / "model.safetensors")
    with pytest.raises(ChecksumMismatchError, match="its config.json records"):
        export_prior(folder, tmp_path / "x.pt", format="torchscript")


def test_trace_device_for_in_memory_models_and_names() -> None:
    from advprior.export import trace_device

    cuda0 = torch.device("cuda", 0)
    # None: the model's own device; anything else wins (a string or a torch.device alike)
    assert trace_device(None, cuda0) == cuda0
    assert trace_device("cpu", cuda0) == torch.device("cpu")
    assert trace_device(torch.device("cpu"), cuda0) == torch.device("cpu")
    with pytest.raises(ValueError, match="meta"):
        trace_device("meta", torch.device("cpu"))
    with pytest.raises(ValueError, match="the model is on the meta device"):
        trace_device(None, torch.device("meta"))
    with pytest.raises(ValueError, match="not a torch device"):
        trace_device("nope", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            trace_device("cuda", torch.device("cpu"))


def test_export_traces_a_copy_on_the_requested_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import advprior.export as export_module
    from advprior import PosePrior

    torch.manual_seed(0)
    prior = PosePrior(latent="sphere").eval()
    moved: list[torch.device] = []
    to = export_module.ExportedDecoder.to

    def spy(self, device, *args, **kwargs):
        moved.append(torch.device(device))
        return to(self, device, *args, **kwargs)

    monkeypatch.setattr(export_module.ExportedDecoder, "to", spy)
    plain = export_prior(prior, tmp_path / "a.pt", format="torchscript")
    typed = export_prior(prior, tmp_path / "b.pt", format="torchscript", device=torch.device("cpu"))
    named = export_prior(prior, tmp_path / "c.pt", format="torchscript", device="cpu")
    assert moved == [torch.device("cpu")] * 3
    assert plain == typed == named
    assert all(p.device.type == "cpu" for p in prior.parameters())
    # a device nothing can be traced on is refused before anything is written
    with pytest.raises(ValueError, match="meta"):
        export_prior(prior, tmp_path / "d.pt", format="torchscript", device="meta")
    with pytest.raises(ValueError, match="the model is on the meta device"):
        export_prior(prior.to("meta"), tmp_path / "e.pt", format="torchscript")
    with pytest.raises(ValueError, match="meta"):
        export_prior("gan-s", tmp_path / "f.pt", format="torchscript", device="meta")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt", "c.pt"]


def test_a_revision_that_is_not_exported_is_said(tmp_path: Path, capsys) -> None:
    """An alias exports its pinned revision whatever --revision says (docs/core.md): the
    command says so instead of dropping the option silently, as `advprior sample` does."""
    from advprior.hub import read_manifest

    out = tmp_path / "s.pt"
    pinned = read_manifest()["gan-s"]["revision"]
    assert main(["export", "--model", "gan-s", "--output", str(out), "--revision", "foo"]) == 0
    err = capsys.readouterr().err
    assert (
        f"--revision foo not used: 'gan-s' is a manifest alias pinned to revision {pinned!r}"
        in (err)
    )
    assert main(["export", "--model", "gan-s", "--output", str(out)]) == 0
    assert "not used" not in capsys.readouterr().err
