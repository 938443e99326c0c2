"""Export a prior's decoder (latent ``z`` -> body pose) to ONNX or TorchScript for deployment.

The exported graph takes ``z`` ``(B, D)`` float32 (``B`` dynamic) and returns one tensor:

- ``"axis_angle"``: ``(B, 3 J)``, rotation vectors in radians, joint after joint;
- ``"rotmat"``: ``(B, J, 3, 3)``, row-major matrices acting on column vectors;
- ``"rot6d"``: ``(B, J, 6)``, the first two columns of each matrix, row-major ``(3, 2)``;
- ``"quat"``: ``(B, J, 4)``, unit quaternions ``(x, y, z, w)`` with ``w >= 0``;

for the joints named in the metadata's ``joint_names`` (SMPL joints 1..21 for ``body="smplx"``
or ``"smplh"``, 1..23 for ``"smpl"``). With ``project=True`` the graph first projects ``z`` onto
the latent space (unit sphere for GAN-S, the cube for GAN-U), as ``PosePrior.project`` does.

The file carries its provenance: the ONNX ``metadata_props`` entry ``advprior.json`` (and one
entry per field) and the TorchScript extra file ``advprior.json`` hold the same JSON fields
(``alias``, ``weights_sha256``, ``latent``, ``latent_dim``, ``joint_names``, ``output_kind``,
``output_shape``, ``projected``, ``body``, ``advprior_version``, ...);
:func:`read_export_metadata` reads either without running the model.
ONNX export needs the ``onnx`` package (``pip install 'advprior[export]'``, which also brings
``onnxruntime`` to run the file).
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advprior._sync import GLOBAL_STATE
from advprior.fileio import (
    JSON_MAX_BYTES,
    atomic_path,
    check_zip_members,
    parse_json,
    write_atomic,
)
from advprior.hub import load_files, resolve_files, sha256_file, state_sha256
from advprior.interface import OUTPUTS, body_joints, check_output
from advprior.inversion import full_precision
from advprior.prior import decode_6d, run_mlp
from advprior.skeleton import JOINT_NAMES
from advprior.tensors import check_device
from advprior.version import __version__, onnx_export_errors, onnx_export_options

FORMATS: tuple[str, ...] = ("onnx", "torchscript")
METADATA_FILE = "advprior.json"
# The ONNX opset: 17 is read by every onnxruntime since 1.12 (1.11 stops at opset 16) and by
# onnxruntime-web.
DEFAULT_OPSET = 17
# The graph needs opset 11: below it torch cannot write index_put (GAN-S's projection writes
# e_0 with it) and fails after printing a page of graph dump on stdout, or (8) writes a Where
# that the opset lacks, a file onnxruntime refuses. Above the TorchScript-based exporter's
# maximum torch only warns.
MIN_OPSET = 11
try:
    from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as MAX_OPSET
except ImportError:  # a private module: torch 2.13's value
    MAX_OPSET = 20


class ExportedDecoder(nn.Module):
    """The traced graph: ``z`` ``(B, D)`` -> (projection) -> decoder MLP -> ``output_kind``.

    No input checks inside (a graph cannot raise readable errors); the metadata documents the
    expected input. It holds a copy of the decoder, so putting it in eval mode for tracing
    leaves ``model`` (perhaps mid-training, dropout on) as it was.
    """

    def __init__(self, model: nn.Module, output_kind: str, joints: int, project: bool) -> None:
        super().__init__()
        self.mlp = copy.deepcopy(_decoder_mlp(model))
        space = getattr(model, "latent_space", None)
        # the prior's own projection (sphere, cube; the identity for a normal latent) in the graph
        self.space = space if project and space is not None else None
        self.latent = None if self.space is None else self.space.kind
        self.output_kind = output_kind
        self.joints = joints

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.space is not None:
            z = self.space.project(z)
        return decode_6d(run_mlp(self.mlp, z), self.output_kind, self.joints)


def _decoder_mlp(model: nn.Module) -> nn.Sequential:
    for name in ("generator", "decoder"):  # PosePrior, VPoserVAE
        mlp = getattr(model, name, None)
        if isinstance(mlp, nn.Sequential):
            return mlp
    raise TypeError(
        f"cannot export a {type(model).__name__}: only models with a latent decoder "
        "(PosePrior 'gan', VPoserVAE 'vae') can be exported"
    )


def trace_device(device: object, model_device: torch.device) -> torch.device:
    """Where :func:`export_prior` traces: ``device``, or ``model_device`` (the in-memory
    model's, CPU for a name) when it is None. ``ValueError`` for a malformed or unavailable
    device and for ``meta``, which holds no values to trace with."""
    dev = model_device if device is None else check_device(device)
    if dev.type == "meta":
        what = "the model is on the meta device" if device is None else "device 'meta'"
        raise ValueError(
            f"cannot export from the meta device ({what}): tracing runs the decoder on real "
            "numbers; load the weights and pass device='cpu' or the device the file will run on"
        )
    return dev


def export_prior(
    model: str | os.PathLike | nn.Module,
    output: str | os.PathLike,
    *,
    format: str = "onnx",
    output_kind: str = "axis_angle",
    project: bool = False,
    body: str = "smplx",
    device: str | torch.device | None = None,
    opset: int = DEFAULT_OPSET,
    **load_kwargs: Any,
) -> dict[str, Any]:
    """Export the decoder of ``model`` to ``output`` (written atomically); returns the metadata.

    Args:
        model: a manifest alias (``"gan-s"``), checkpoint directory, Hub repo id, or a loaded
            ``PosePrior`` / ``VPoserVAE``.
        output: the file to write (``.onnx`` or ``.pt`` by convention).
        format: ``"onnx"`` or ``"torchscript"``.
        output_kind: ``"axis_angle"``, ``"rotmat"``, ``"rot6d"`` or ``"quat"`` (module docstring).
        project: include the latent projection (sphere / cube) in the graph.
        body: ``"smplx"``/``"smplh"`` (21 joints) or ``"smpl"`` (23, hands identity).
        device: where to trace (the files run anywhere, but TorchScript keeps the device it
            was traced on for its constants, so trace on the device you will run on). None
            (default): CPU for a name, the model's own device for an in-memory model. An
            in-memory model is never moved: a copy of its decoder is traced on ``device``.
        opset: ONNX opset version.
        load_kwargs: passed to :func:`advprior.load_pretrained` when ``model`` is a name.

    A name is resolved and loaded once, as :func:`advprior.load_pretrained` does, so its
    weights file passes the same sha256 check (:class:`~advprior.errors.ChecksumMismatchError`
    for a file that differs from the manifest's ``sha256`` or its ``config.json``'s
    ``weights_sha256``), and the metadata's ``weights_sha256`` is that of the file loaded.

    Raises ``ValueError`` for an unknown format, output kind or body, a malformed, unavailable
    or ``meta`` device, ``TypeError`` for a model without a latent decoder (the GMM),
    ``ImportError`` when ONNX is asked for without ``onnx``, and :func:`advprior.load_pretrained`'s
    errors for a name.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    check_output(output_kind)
    joints = body_joints(body)
    if format == "onnx":
        check_opset(opset)
        try:
            import onnx
        except ImportError as err:
            raise ImportError(
                "ONNX export needs the onnx package: pip install 'advprior[export]'"
            ) from err

    alias, sha256 = None, None
    if isinstance(model, (str, os.PathLike)):
        device = trace_device(device, torch.device("cpu"))
        alias = os.fspath(model)
        # one resolution: the file verified is the file loaded is the file whose sha256 is
        # recorded in the export
        files = resolve_files(model, **load_kwargs)
        model = load_files(files, device=device)
        sha256 = sha256_file(files.weights)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a name or an nn.Module, got {type(model).__name__}")
    mlp = _decoder_mlp(model)
    param = next(mlp.parameters())
    device = trace_device(device, param.device)
    wrapper = ExportedDecoder(model, output_kind, joints, project).eval().to(device)
    latent_dim = mlp[0].in_features

    meta: dict[str, Any] = {
        "format": format,
        "alias": alias,
        "model_type": getattr(model, "model_type", type(model).__name__),
        "weights_sha256": sha256 or state_sha256(model.state_dict()),
        "weights_sha256_of": "checkpoint file" if sha256 else "safetensors bytes of state_dict",
        "latent": None if model.latent_space is None else model.latent_space.kind,
        "latent_dim": latent_dim,
        "projected": bool(project and wrapper.latent in ("sphere", "uniform")),
        "body": body,
        "joint_names": list(JOINT_NAMES[1 : 1 + joints]),
        "output_kind": output_kind,
        "output_shape": _output_shape(output_kind, joints),
        "units": "radians (axis_angle); unitless otherwise",
        "conventions": "rotation matrices act on column vectors, row-major; 6D = first two "
        "columns, row-major (3, 2); quaternions (x, y, z, w), w >= 0",
        "input": {"name": "z", "shape": ["batch", latent_dim], "dtype": "float32"},
        "advprior_version": __version__,
        "torch_version": torch.__version__,
    }
    # Trace with enough rows that the many-rotation kernels are recorded: they are the faster
    # ones for batches, and the graph is the same arithmetic at any batch size.
    example = torch.randn(64, latent_dim, generator=torch.Generator().manual_seed(0))
    example = example.to(device=device, dtype=torch.float32)
    if param.dtype != torch.float32:
        raise TypeError(f"export needs float32 weights, got {param.dtype}; call model.float()")

    # full_precision: traced inside a caller's torch.autocast, the file would compute and
    # answer in bfloat16 / float16 (its casts recorded into the graph) while its metadata says
    # float32
    # (GLOBAL_STATE: the warnings filters are process-wide, see advprior._sync)
    with GLOBAL_STATE, torch.no_grad(), full_precision(), warnings.catch_warnings():
        # the tracer notes that shapes and small index tensors become constants: they are
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # torch >= 2.9 marks TorchScript and the TorchScript-based ONNX exporter deprecated; the
        # torch.export-based exporter needs onnxscript, an extra dependency (docs/deploy.md)
        warnings.simplefilter("ignore", DeprecationWarning)
        # torch's notes on opsets <= 8 (refused by check_opset; the tests lower its bound)
        warnings.filterwarnings("ignore", "Setting 'keep_initializers_as_inputs", UserWarning)
        warnings.filterwarnings("ignore", "Constant folding - unsupported opset", UserWarning)
        if format == "onnx":
            meta["opset"] = opset
            buf = io.BytesIO()
            try:
                torch.onnx.export(
                    wrapper,
                    (example,),
                    buf,
                    input_names=["z"],
                    output_names=["pose"],
                    dynamic_axes={"z": {0: "batch"}, "pose": {0: "batch"}},
                    opset_version=opset,
                    **onnx_export_options(),
                )
            except onnx_export_errors() as err:  # an op the opset lacks
                # torch 2.1 also raises its own CheckerError here: the first line of onnx's text
                reason = str(err).strip().splitlines()[0].split(". ")[0]
                raise ValueError(f"cannot export at ONNX opset {opset}: {reason}") from None
            proto = onnx.load_from_string(buf.getvalue())
            # The tracer leaves the joint dim of the reshaped outputs symbolic
            # ('Reshapepose_dim_1'): declare what the metadata says, then let onnx check it
            _declare_shape(proto.graph.input[0], meta["input"]["shape"])
            _declare_shape(proto.graph.output[0], meta["output_shape"])
            try:  # torch writes some graphs an opset cannot hold without a word
                onnx.checker.check_model(proto)
                onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
            except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
                reason = str(err).strip().splitlines()[0]
                raise ValueError(f"cannot export at ONNX opset {opset}: {reason}") from None
            proto.doc_string = f"advprior {alias or meta['model_type']} decoder: z -> {output_kind}"
            # one JSON entry for programs, and each field on its own for people and tools
            props = {METADATA_FILE: json.dumps(meta)}
            props.update((k, v if isinstance(v, str) else json.dumps(v)) for k, v in meta.items())
            for key, value in props.items():
                entry = proto.metadata_props.add()
                entry.key, entry.value = key, value
            write_atomic(output, lambda fh: fh.write(proto.SerializeToString()))
        else:
            traced = torch.jit.trace(wrapper, (example,), check_trace=False)
            # an open file, not a path: torch's C++ writer opens paths with the ANSI API on
            # Windows and fails on any non-ASCII folder (C:\Users\José\...), pytorch#75171
            with atomic_path(output) as tmp, open(tmp, "wb") as fh:
                torch.jit.save(traced, fh, _extra_files={METADATA_FILE: json.dumps(meta)})
    return meta


def check_opset(opset: Any) -> int:
    """``opset`` if the exporter can write it; ``ValueError`` naming the range otherwise."""
    in_range = isinstance(opset, int) and MIN_OPSET <= opset <= MAX_OPSET
    if isinstance(opset, bool) or not in_range:
        raise ValueError(
            f"opset must be an integer from {MIN_OPSET} (what the graph needs) to {MAX_OPSET} "
            f"(what torch.onnx's TorchScript-based exporter writes), got {opset!r}"
        )
    return opset


def _declare_shape(value: Any, dims: list[Any]) -> None:
    """Set the declared shape of an ONNX graph input/output: a str is a named (dynamic) dim."""
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for size in dims:
        dim = shape.dim.add()
        if isinstance(size, str):
            dim.dim_param = size
        else:
            dim.dim_value = size


def _output_shape(output_kind: str, joints: int) -> list[Any]:
    return {
        "axis_angle": ["batch", 3 * joints],
        "rotmat": ["batch", joints, 3, 3],
        "rot6d": ["batch", joints, 6],
        "quat": ["batch", joints, 4],
    }[output_kind]


def read_export_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of an exported file (ONNX or TorchScript), read without running it.

    Raises ``FileNotFoundError`` for a missing file and one ``ValueError`` naming the file for
    anything else wrong with it (not an export, no or malformed metadata, a zip bomb).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no exported model at {path}")
    if not path.is_file():
        raise ValueError(f"{path} is not a file (an exported ONNX or TorchScript model)")
    with open(path, "rb") as fh:
        head = fh.read(4)
    # TorchScript archives are zip files written from the start, so they begin with a local
    # file header. zipfile.is_zipfile looks for the end record instead, which the weights or
    # metadata at the end of an ONNX file can hold by chance.
    if head == b"PK\x03\x04":
        raw = _torchscript_metadata(path)
    else:
        raw = _onnx_metadata(path)
    meta = parse_json(raw, f"{path} ({METADATA_FILE})")
    if not isinstance(meta, dict):
        raise ValueError(
            f"{path}: {METADATA_FILE} must hold a JSON object, not {type(meta).__name__}"
        )
    return meta


def _torchscript_metadata(path: Path) -> bytes:
    check_zip_members(path, "TorchScript archive")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = [
                i for i in archive.infolist() if i.filename.endswith(f"/extra/{METADATA_FILE}")
            ]
            if not infos:
                raise ValueError(f"{path} is a TorchScript archive without {METADATA_FILE}")
            if infos[0].file_size > JSON_MAX_BYTES:
                raise ValueError(
                    f"{path}: {METADATA_FILE} declares {infos[0].file_size} bytes, more than "
                    f"{JSON_MAX_BYTES}: not read"
                )
            with archive.open(infos[0]) as fh:
                return fh.read(JSON_MAX_BYTES + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, RuntimeError) as err:
        raise ValueError(f"{path}: cannot read its {METADATA_FILE} ({err})") from None


def _onnx_metadata(path: Path) -> str:
    try:
        import onnx
    except ImportError as err:
        raise ImportError("reading ONNX metadata needs: pip install 'advprior[export]'") from err
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends, for any other file
        raise ValueError(
            f"{path} is neither a TorchScript archive nor an ONNX model ({type(err).__name__})"
        ) from None
    props = {entry.key: entry.value for entry in proto.metadata_props}
    if METADATA_FILE not in props:
        raise ValueError(f"{path} has no advprior metadata ({METADATA_FILE} entry)")
    return props[METADATA_FILE]


__all__ = [
    "FORMATS",
    "OUTPUTS",
    "ExportedDecoder",
    "check_opset",
    "export_prior",
    "read_export_metadata",
    "trace_device",
]
