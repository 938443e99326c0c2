"""The save/load/push mixin (:class:`PretrainedMixin`), its model card, and the
``model_type`` -> class registry that :func:`load_pretrained` loads any checkpoint with.

Layer "weights" (``docs/design.md``); :mod:`advprior.hub` re-exports every name.
"""

from __future__ import annotations

import errno
import hashlib
import importlib
import inspect
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, NoReturn, TypeVar

import numpy as np
import torch

from advprior.errors import (
    CorruptCheckpointError,
)
from advprior.fileio import _named, atomic_path, expand_home, sha256_file, write_text_atomic
from advprior.hub.checkpoint import (
    CONFIG_NAME,
    FORMAT_VERSION,
    MODEL_CARD_NAME,
    RESERVED_CONFIG_KEYS,
    WEIGHTS_NAME,
    CheckpointFiles,
    _check_sizes,
    _load_state,
    read_config,
    safetensors_bytes,
)
from advprior.hub.download import _endpoint
from advprior.hub.resolution import resolve_files
from advprior.tensors import check_device, isolated_global_rng

# Where a model_type's class lives, so load_pretrained can import it on demand.
MODEL_TYPE_MODULES = {
    "gan": "advprior.prior",
    "vae": "advprior.baselines",
    "gmm": "advprior.baselines",
}


_REGISTRY: dict[str, type] = {}


T = TypeVar("T", bound="PretrainedMixin")


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _model_card(model: PretrainedMixin, config: dict[str, Any]) -> str:
    from huggingface_hub import ModelCardData

    cls = type(model)
    card = ModelCardData(
        library_name="advprior",
        # Weights carry the licence of their training data when it was recorded (share-alike
        # data); otherwise the class default.
        license=(config.get("training") or {}).get("weights_license")
        or getattr(cls, "card_license", "mit"),
        tags=["advprior", "pose-prior", "smpl", f"model-type-{config['model_type']}"],
    )
    args = {k: v for k, v in config.items() if k not in RESERVED_CONFIG_KEYS}
    lines = [
        "---",
        card.to_yaml(),
        "---",
        "",
        f"# advprior {cls.__name__} ({config['model_type']})",
        "",
        (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        "",
        "## Usage",
        "",
        "```python",
        "from advprior import load_pretrained",
        'model = load_pretrained("<this repo id or directory>")',
        "```",
        "",
        "## Configuration",
        "",
        "| argument | value |",
        "|---|---|",
        *[f"| `{k}` | `{json.dumps(v)}` |" for k, v in sorted(args.items())],
        "",
        "## Training",
        "",
    ]
    training = config.get("training")
    if training:
        for key, value in training.items():
            if isinstance(value, dict):
                lines.append(f"- **{key}**:")
                lines += [f"  - {k}: {json.dumps(v)}" for k, v in value.items()]
            else:
                lines.append(
                    f"- **{key}**: {value if isinstance(value, str) else json.dumps(value)}"
                )
    else:
        lines.append("No training metadata was recorded with this checkpoint.")
    sha = config.get("weights_sha256")
    lines += [
        "",
        f"Checkpoint format version {FORMAT_VERSION}; weights in safetensors"
        + (f" (sha256 `{sha}`)." if sha else "."),
        "",
    ]
    return "\n".join(lines)


def _foreign_card(path: Path) -> bool:
    """Whether ``path`` is a README.md that advprior did not write (no ``library_name:
    advprior`` in its YAML header): the user's own, in a folder saved into, which
    ``save_pretrained`` keeps, as huggingface_hub's ``ModelHubMixin`` keeps any README.md."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError):
        return True  # unreadable here: not ours to replace
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return True
    header = next((lines[1:i] for i in range(1, len(lines)) if lines[i].strip() == "---"), [])
    return "library_name: advprior" not in (line.strip() for line in header)


#: Keys of ``training`` metadata that a model fine-tuned from a loaded one keeps: its training
#: data's licence (share-alike data makes derived weights share-alike) and credit.
INHERITED_TRAINING_KEYS = ("weights_license", "licence", "attribution")


def _float32_sha256(model: Any) -> str:
    """sha256 of ``model``'s weights with floating tensors in float32 (names, shapes and raw
    bytes; not a file's sha256, only compared with itself): unchanged by ``.double()`` and
    back, changed by any training step. A third of the cost of serialising them."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.float()
        digest.update(f"{key}\0{tuple(value.shape)}\0{value.dtype}\0".encode())
        digest.update(value.contiguous().view(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """A numpy scalar argument as the Python number it holds (``np.int64(8)`` -> ``8``,
    ``np.float32(0.1)`` -> its exact value): a sweep's ``np.arange`` / ``np.float32`` values
    built and trained a model whose ``save_pretrained`` then refused them as not JSON."""
    if isinstance(value, np.generic) and isinstance(value.item(), (bool, int, float)):
        return value.item()
    return value


class PretrainedMixin:
    """Save/load/push for ``nn.Module`` subclasses; each concrete class sets ``model_type``.

    The constructor arguments are recorded when an instance is created (they must be JSON
    values) and become ``config.json``. Loaded models are put in eval mode, with every parameter
    frozen (``requires_grad=False``) unless ``freeze=False`` (call ``.train()`` to fine-tune
    with dropout); a freshly constructed one is in train mode and trainable.
    """

    model_type: ClassVar[str]
    #: licence tag for the model card
    card_license: ClassVar[str] = "mit"
    _init_config: dict[str, Any]
    training_metadata: dict[str, Any] | None = None
    # (_float32_sha256 of the weights as loaded, their file's sha256, the training_metadata
    # loaded with them): from_pretrained sets it, so that the metadata of a loaded model is not
    # saved as that of weights changed since (a fine-tuning in the user's own loop)
    _loaded_training: tuple[str, str, dict[str, Any]] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "model_type" in cls.__dict__:
            _REGISTRY[cls.model_type] = cls

    def __new__(cls, *args: Any, **kwargs: Any):  # noqa: D102 - records constructor arguments
        instance = super().__new__(cls)
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind(instance, *args, **kwargs)
        except TypeError:
            bound = None  # __init__ itself will raise the informative error
        config: dict[str, Any] = {}
        if bound is not None:
            bound.apply_defaults()
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    config.update({k: _plain(v) for k, v in value.items()})
                elif kind is not inspect.Parameter.VAR_POSITIONAL:
                    config[name] = _plain(value)
        object.__setattr__(instance, "_init_config", config)
        return instance

    def __prepare_scriptable__(self) -> NoReturn:
        # torch.jit.script calls this before compiling (also for a prior held inside a user's
        # module). The API checks its inputs in Python and TorchScript cannot compile that, so
        # say what works instead of failing deep inside the compiler on ``config``.
        raise TypeError(
            f"torch.jit.script cannot compile {type(self).__name__} (its methods check their "
            "inputs in Python); trace it instead: torch.jit.trace(prior, z) with a latent z "
            "of shape (B, D), or `advprior export --model NAME --output prior.pt` for a file "
            "with its metadata; a module that holds a prior scripts once the prior in it is "
            "traced"
        )

    @property
    def config(self) -> dict[str, Any]:
        """What ``config.json`` will hold: constructor arguments, model_type, format_version,
        and ``training`` when training metadata is attached."""
        config = dict(self._init_config)
        config["model_type"] = type(self).model_type
        config["format_version"] = FORMAT_VERSION
        if self.training_metadata is not None:
            config["training"] = self._training_of_these_weights()
        return config

    def _training_of_these_weights(self) -> dict[str, Any]:
        """``training_metadata``, unless it was loaded with weights that have changed since:
        then its steps, data and validation numbers describe the model this one was
        fine-tuned from, and are kept under ``fine_tuned_from`` (with that model's weights
        sha256); the licence and attribution of the training data stay, as derived weights
        carry them."""
        metadata = self.training_metadata
        loaded = self._loaded_training
        if metadata is None or loaded is None or loaded[2] is not metadata:
            return metadata  # new, or replaced by the user: it describes these weights
        if _float32_sha256(self) == loaded[0]:
            return metadata
        kept = {k: metadata[k] for k in INHERITED_TRAINING_KEYS if k in metadata}
        return {**kept, "fine_tuned_from": {"weights_sha256": loaded[1], "training": metadata}}

    @classmethod
    def from_config(cls: type[T], config: Mapping[str, Any]) -> T:
        """A fresh, randomly initialised, trainable model of the architecture ``config``
        describes (``model.config``, or a parsed ``config.json``), e.g. to load a state dict
        saved with ``torch.save(model.state_dict())``. Keys that are not constructor arguments
        (``model_type``, ``format_version``, ``training``, ``weights_sha256``) are dropped;
        ``model_type``, when given, must be this class's (``ValueError``; use
        ``advprior.hub.model_class(config["model_type"])`` to pick the class). Unknown
        arguments are the constructor's ``TypeError``."""
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        kind = config.get("model_type", cls.model_type)
        if kind != cls.model_type:
            raise ValueError(
                f"config describes a {kind!r} model, not {cls.__name__} ({cls.model_type!r}); "
                f"build it with advprior.hub.model_class({kind!r}).from_config(config)"
            )
        return cls(**{k: v for k, v in config.items() if k not in RESERVED_CONFIG_KEYS})

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *,
        training: dict[str, Any] | None = None,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        **push_kwargs: Any,
    ) -> Path | str:
        """Write ``model.safetensors``, ``config.json`` and ``README.md`` into ``save_directory``.

        ``training`` (JSON-serialisable: e.g. ``{"data": ..., "steps": ..., "metrics": {...}}``)
        is stored under ``config["training"]`` and rendered in the model card; it replaces any
        metadata the model already carries. A leading ``~`` is the home folder, as for
        :meth:`from_pretrained`. Each file is written atomically. Returns the
        directory, or the commit URL when ``push_to_hub=True`` (``repo_id`` defaults to the
        directory name).
        """
        if training is not None:
            if not isinstance(training, dict) or not _jsonable(training):
                raise TypeError(
                    "training must be a JSON-serialisable dict (data, steps, metrics, ...)"
                )
            self.training_metadata = dict(training)
        config = self.config
        bad = [k for k, v in config.items() if not _jsonable(v)]
        if bad:
            raise TypeError(
                f"{type(self).__name__} constructor arguments {bad} are not JSON values; "
                "config.json can only record JSON-serialisable arguments"
            )
        # expanded as from_pretrained expands it, so that "~/m" names one folder for both
        directory = expand_home(save_directory)
        if directory.exists() and not directory.is_dir():
            # mkdir's bare "FileExistsError: [Errno 17] File exists" named neither the path nor
            # the problem (the folder name given is an existing file)
            err = NotADirectoryError(f"cannot save to {directory}: it is a file, not a folder")
            err.errno = errno.ENOTDIR
            raise err
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # a file above it: "cannot write ...: X is a file, not a folder"
            raise _named(err, directory) from None
        # Serialise to bytes and write them ourselves: safetensors' own file writer leaves the
        # file private (0o600) whatever the umask.
        blob = safetensors_bytes(self.state_dict())
        # recorded so that loading (and exporting) the folder refuses a changed weights file
        config["weights_sha256"] = hashlib.sha256(blob).hexdigest()
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            tmp.write_bytes(blob)
        write_text_atomic(
            directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True) + "\n"
        )
        card = directory / MODEL_CARD_NAME
        if not _foreign_card(card):
            write_text_atomic(card, _model_card(self, config))
        if push_to_hub:
            return self.push_to_hub(repo_id or directory.name, **push_kwargs)
        return directory

    @classmethod
    def from_pretrained(
        cls: type[T],
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
        token: str | bool | None = None,
        manifest: str | os.PathLike | None = None,
        device: torch.device | str | None = None,
        freeze: bool = True,
        map_location: torch.device | str | None = None,
    ) -> T:
        """Load a checkpoint of this class from a directory, manifest alias or Hub repo id.

        ``map_location`` is another name for ``device``, as huggingface_hub's
        ``PyTorchModelHubMixin.from_pretrained`` calls it (both given and different:
        ``ValueError``).

        Raises :class:`ModelNotFoundError`, :class:`ChecksumMismatchError`,
        :class:`CorruptCheckpointError` (unreadable file, tensors that do not match the config,
        bad config.json, or a checkpoint of another model type) and :class:`OfflineError`.
        """
        device = _device_or_map_location(device, map_location)
        files = resolve_files(
            name_or_path,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            force_download=force_download,
            token=token,
            manifest=manifest,
        )
        return cls._from_files(files, device=device, freeze=freeze)

    @classmethod
    def _from_files(
        cls: type[T],
        files: CheckpointFiles,
        *,
        device: torch.device | str | None = None,
        freeze: bool = True,
    ) -> T:
        if device is not None:
            # before reading anything: "cuda" on a machine without one is a ValueError saying
            # so, not torch's AssertionError about how it was compiled at the first .to()
            device = check_device(device)
        config = read_config(files.config)
        if config["model_type"] != cls.model_type:
            raise CorruptCheckpointError(
                f"{files.config} holds a {config['model_type']!r} model, not {cls.__name__} "
                f"({cls.model_type!r}); use advprior.load_pretrained to load any model type"
            )
        entry = files.entry or {}
        for key in ("model_type", "latent"):
            if entry.get(key) is not None and config.get(key, entry[key]) != entry[key]:
                raise CorruptCheckpointError(
                    f"{files.config}: {key} is {config.get(key)!r}, but the manifest entry says "
                    f"{entry[key]!r}"
                )
        params = inspect.signature(cls.__init__).parameters
        takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in config.items() if k not in RESERVED_CONFIG_KEYS}
        unknown = [k for k in kwargs if k not in params or k == "self"]
        if unknown and not takes_kwargs:
            raise CorruptCheckpointError(
                f"{files.config}: {unknown} are not arguments of {cls.__name__}"
            )
        # Sizes are checked before anything is allocated: the model is first built on the
        # meta device (shapes only) and compared with the safetensors header, so a config.json
        # asking for hidden_dim 1e9 fails here instead of exhausting memory.
        _check_sizes(cls, kwargs, files)
        try:
            # The constructor's random initialisation is overwritten by the checkpoint at once;
            # drawing it from the caller's global RNG would make their later draws depend on
            # which checkpoint they loaded (torch.manual_seed(0); load; torch.randn(...)).
            with isolated_global_rng():
                model = cls(**kwargs)
        except (TypeError, ValueError) as err:
            raise CorruptCheckpointError(
                f"{files.config}: cannot build {cls.__name__}: {err}"
            ) from err
        _load_state(model, files.weights)
        model.training_metadata = config.get("training")
        if model.training_metadata is not None:
            # the file was verified against these when recorded; else hashed once
            file_sha = (
                config.get("weights_sha256")
                or (files.entry or {}).get("sha256")
                or sha256_file(files.weights)
            )
            model._loaded_training = (_float32_sha256(model), file_sha, model.training_metadata)
        if device is not None:
            model.to(device)
        # eval mode whatever `freeze` says, as huggingface_hub's mixin and transformers load:
        # left in train mode, dropout made every decode of a freeze=False model random
        model.eval()
        if freeze:
            model.requires_grad_(False)
        return model

    def push_to_hub(
        self,
        repo_id: str,
        *,
        training: dict[str, Any] | None = None,
        commit_message: str = "Upload advprior checkpoint",
        private: bool | None = None,
        token: str | None = None,
        branch: str | None = None,
        create_pr: bool | None = None,
    ) -> str:
        """Save to a temporary directory and upload it to ``repo_id`` in one commit; returns
        the commit URL. Honours ``$HF_ENDPOINT``."""
        from huggingface_hub import HfApi

        api = HfApi(endpoint=_endpoint(), token=token)
        repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, training=training)
            info = api.upload_folder(
                repo_id=repo_id,
                repo_type="model",
                folder_path=tmp,
                commit_message=commit_message,
                revision=branch,
                create_pr=create_pr,
            )
        return str(info)


def _device_or_map_location(
    device: torch.device | str | None, map_location: torch.device | str | None
) -> torch.device | str | None:
    """``device``, or ``map_location`` (huggingface_hub's ``PyTorchModelHubMixin`` name for
    it: code written for that mixin passes it) when only that is given. Two different devices
    are a ``ValueError``: loading onto either would ignore the other silently."""
    if map_location is None:
        return device
    if device is not None:
        if check_device(device) != check_device(map_location, "map_location"):
            raise ValueError(
                f"device={device!r} and map_location={map_location!r} name different devices; "
                "map_location is another name for device: give one"
            )
    return map_location


def model_class(model_type: str) -> type:
    """The class registered for ``model_type`` (imports its module on first use)."""
    if model_type not in _REGISTRY and model_type in MODEL_TYPE_MODULES:
        try:
            importlib.import_module(MODEL_TYPE_MODULES[model_type])
        except ModuleNotFoundError as err:
            raise CorruptCheckpointError(
                f"model_type {model_type!r} needs {MODEL_TYPE_MODULES[model_type]}, "
                f"which is not available: {err}"
            ) from err
    if model_type not in _REGISTRY:
        known = sorted(set(_REGISTRY) | set(MODEL_TYPE_MODULES))
        raise CorruptCheckpointError(f"unknown model_type {model_type!r}; known: {known}")
    return _REGISTRY[model_type]


def load_pretrained(name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
    """Load any advprior checkpoint (``"gan"``, ``"vae"``, ``"gmm"``, ...) by its config's
    ``model_type``. Accepts every keyword of :meth:`PretrainedMixin.from_pretrained`."""
    load_kwargs = {k: kwargs.pop(k) for k in ("device", "freeze") if k in kwargs}
    if "map_location" in kwargs:
        load_kwargs["device"] = _device_or_map_location(
            load_kwargs.get("device"), kwargs.pop("map_location")
        )
    return load_files(resolve_files(name_or_path, **kwargs), **load_kwargs)


def load_files(
    files: CheckpointFiles, *, device: torch.device | str | None = None, freeze: bool = True
) -> Any:
    """The model of already resolved (and so sha256-verified) ``files``
    (:func:`resolve_files`), as :func:`load_pretrained` loads it: for callers that also need
    the files, e.g. to record the weights' sha256 of exactly what was loaded."""
    cls = model_class(read_config(files.config)["model_type"])
    return cls._from_files(files, device=device, freeze=freeze)


def registered_model_types() -> dict[str, type]:
    """A copy of the ``model_type -> class`` registry (classes imported so far)."""
    return dict(_REGISTRY)
