"""Ship a trained model: copy it into ``advprior/weights/<alias>/`` and pin it in the manifest.

``python -m advprior.train.release --alias gan-s --model-dir runs/gan-s/model`` copies
``model.safetensors``, ``config.json`` and ``README.md``, computes their sha256 from the copied
files, and writes the manifest entry (``repo_id`` ``advprior/<alias>``, ``revision`` the release
tag, ``latent`` and ``model_type`` read from the config, training data and licence text).
Only a finished run is accepted: its config must carry training metadata with a step count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

from advprior.fileio import atomic_path, write_text_atomic
from advprior.hub import (
    CONFIG_NAME,
    MODEL_CARD_NAME,
    PACKAGE_DIR,
    WEIGHTS_NAME,
    _symlink_placeholder_target,
    read_config,
    sha256_file,
)
from advprior.train.provenance import (
    ATTRIBUTION,
    DATA_LICENCE,
    WEIGHTS_LICENSE,
    families,
    source_names,
)
from advprior.version import __version__

RELEASE_REVISION = f"v{__version__}"
# The top-level file in a checkout (the package's copy is a symlink to it); in an installed
# package the packaged file itself (PACKAGE_DIR.parent would be site-packages/); in a Windows
# checkout without symlinks, the file the placeholder names
MANIFEST = _symlink_placeholder_target(PACKAGE_DIR / "weights_manifest.json").resolve()


def _training_data(config: dict[str, Any]) -> str:
    data = config["training"].get("data", {})
    sources = data.get("sources")
    src = ""
    if isinstance(sources, dict):
        src = "; " + json.dumps(sources, sort_keys=True)
    mirrored = " plus their left/right mirrored copies" if data.get("mirrored") else ""
    content = data.get("content_sha256")
    content = f", content sha256 {content[:12]}..." if isinstance(content, str) else ""
    names = source_names(data)
    found = families(names)
    if names and None not in found:
        # this project's open capture, as advprior data build made it
        databases = " and ".join(
            what
            for family, what in (("cmu", "CMU (ASF/AMC, BVH, DeepMimic)"), ("hdm05", "HDM05"))
            if family in found
        )
        origin = (
            f" at 30 fps{mirrored}, split by subject, retargeted to SMPL from {databases} "
            "motion capture"
        )
    else:
        # other data (AMASS, a capture of one's own): its sources as recorded, not the above
        origin = f"{mirrored} (sources: {', '.join(names) if names else 'not recorded'})"
    return (
        f"{data.get('file', '?')} (sha256 {data.get('sha256', '?')[:12]}...{content}): "
        f"{data.get('train_frames', '?')} training frames{origin}{src}"
    )


def release(
    alias: str,
    model_dir: str | os.PathLike,
    *,
    manifest: str | os.PathLike = MANIFEST,
    repo_id: str | None = None,
    revision: str = RELEASE_REVISION,
    weights_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Bundle ``model_dir`` as ``alias`` and write its manifest entry; returns the entry.

    ``weights_dir`` (default ``advprior/weights``) receives ``<alias>/``; the entry's ``bundled``
    path is relative to the package folder, as :mod:`advprior.hub` resolves it.
    """
    if not isinstance(alias, str) or alias in ("", ".", "..") or any(c in alias for c in "/\\"):
        # it names the folder under weights/: "../x" wrote the weights beside the package's
        raise ValueError(f"alias must be a plain name such as 'gan-s', got {alias!r}")
    model_dir = Path(model_dir)
    config = read_config(model_dir / CONFIG_NAME)
    training = config.get("training") or {}
    if not isinstance(training.get("steps"), int) or training["steps"] < 1:
        raise ValueError(f"{model_dir} has no training record with steps; refusing to ship it")
    target = Path(weights_dir or PACKAGE_DIR / "weights") / alias
    target.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, CONFIG_NAME, MODEL_CARD_NAME):
        with atomic_path(target / name) as tmp:
            shutil.copyfile(model_dir / name, tmp)
    entry = {
        "repo_id": repo_id or f"advprior/{alias}",
        "revision": revision,
        "filename": WEIGHTS_NAME,
        "config_filename": CONFIG_NAME,
        "sha256": sha256_file(target / WEIGHTS_NAME),
        "config_sha256": sha256_file(target / CONFIG_NAME),
        "latent": config.get("latent", "normal" if config["model_type"] == "vae" else None),
        "model_type": config["model_type"],
        "bundled": f"weights/{alias}",
        "training_data": _training_data(config),
        "training_steps": training["steps"],
        "licence": "Code MIT. " + training.get("licence", DATA_LICENCE),
        "weights_license": training.get("weights_license", WEIGHTS_LICENSE),
        "attribution": training.get("attribution", ATTRIBUTION),
    }
    path = Path(manifest)
    data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("models", {})[alias] = entry
    data["models"] = dict(sorted(data["models"].items()))
    write_text_atomic(path.resolve(), json.dumps(data, indent=2) + "\n")
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alias", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--manifest", default=str(MANIFEST))
    parser.add_argument("--revision", default=RELEASE_REVISION)
    args = parser.parse_args(argv)
    entry = release(args.alias, args.model_dir, manifest=args.manifest, revision=args.revision)
    print(json.dumps({args.alias: entry}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
