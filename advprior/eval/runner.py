"""``run_eval``: the paper's protocol for several priors side by side, written as a report.

Writes into ``out`` (a folder): ``results.json`` and the PNGs, and ``<out>.md`` beside it
(``--out docs/results`` gives ``docs/results.md`` with pictures in ``docs/results/``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePath

import numpy as np
import torch

from advprior.eval import protocol
from advprior.eval.data import load_split, subsample
from advprior.fileio import sha256_file, write_text_atomic
from advprior.hub import RUN_MODEL_DIR, load_files, resolve_files
from advprior.interface import Prior, as_prior
from advprior.version import software_versions


@dataclass
class EvalSettings:
    """Sizes of one run. ``None`` in :func:`run_eval` picks the quick or the full value."""

    n_samples: int  # generated poses per model compared with the real queries (recall)
    n_vertex_samples: int  # of those, compared per vertex; also caps the vertex reference
    n_queries: int  # real test poses (recall) and generated poses (precision) used as queries
    n_reference: int  # real training poses that precision compares samples with
    n_vertices: int  # fixed random vertex subset for the per-vertex distance
    n_pairs: int  # held-out pairs interpolated
    steps: int  # poses per interpolation path, endpoints included
    fit_frames: int  # test frames fitted from 2D keypoints per prior
    fit_iterations: int | None  # passed to fit_keypoints; None = its default
    pca_points: int  # poses per model in the PCA plot


#: Label of the model-free reference path (real endpoints, per-joint rotation slerp).
POSE_SLERP = "joint slerp"

QUICK = EvalSettings(
    n_samples=2000,
    n_vertex_samples=1000,
    n_queries=200,
    n_reference=2000,
    n_vertices=64,
    n_pairs=4,
    steps=8,
    fit_frames=4,
    fit_iterations=20,
    pca_points=300,
)
FULL = EvalSettings(
    n_samples=1_000_000,
    n_vertex_samples=10_000,
    n_queries=2000,
    n_reference=50_000,
    n_vertices=256,
    n_pairs=128,
    steps=16,
    fit_frames=128,
    fit_iterations=None,
    pca_points=2000,
)


def model_labels(names: Sequence[str | os.PathLike]) -> list[str]:
    """One distinct row label per model name: an alias as given; a path by its last folder
    name, without the ``model`` folder ``advprior train`` exports into (``runs/g/model`` ->
    ``g``), with as many parent folders as it takes to tell paths apart. Raises ``ValueError``
    for a name given twice."""
    cores = []
    for name in names:
        parts = Path(os.fspath(name)).parts if "/" in str(name) or os.sep in str(name) else ()
        parts = parts[:-1] if len(parts) > 1 and parts[-1] == RUN_MODEL_DIR else parts
        cores.append(parts or (str(name),))
    depth = [1] * len(cores)
    while True:
        labels = ["/".join(c[-d:]) for c, d in zip(cores, depth, strict=True)]
        clash = {label for label in labels if labels.count(label) > 1}
        if not clash:
            return labels
        grown = False
        for i, label in enumerate(labels):
            if label in clash and depth[i] < len(cores[i]):
                depth[i] += 1
                grown = True
        if not grown:
            twice = next(str(n) for n, lab in zip(names, labels, strict=True) if lab in clash)
            raise ValueError(f"model {twice!r} is given twice")


def _load_named(name: str | os.PathLike, weights: dict[str, str], label: str) -> object:
    """``load_pretrained(name)``, noting the sha256 of the weights file it read in
    ``weights[label]`` (the same alias or folder may hold other weights another time)."""
    files = resolve_files(name)
    weights[label] = sha256_file(files.weights)
    return load_files(files)


def _load_models(
    models: Sequence[str] | Mapping[str, object], weights: dict[str, str] | None = None
) -> dict[str, Prior]:
    """The priors to evaluate by label; ``weights`` (when given) receives the sha256 of the
    weights file of each one loaded from a name or a path."""
    weights = {} if weights is None else weights
    if isinstance(models, Mapping):
        # a name or path among the objects is loaded as in the list form
        loaded = {
            str(label): _load_named(m, weights, str(label))
            if isinstance(m, (str, os.PathLike))
            else m
            for label, m in models.items()
        }
    else:
        if isinstance(models, str):
            raise TypeError(
                "models must be a list of names/paths or a {label: prior} mapping, "
                "not a single string"
            )
        names = list(models)
        loaded = {
            label: _load_named(name, weights, label)
            for label, name in zip(model_labels(names), names, strict=True)
        }
    if not loaded:
        raise ValueError("models is empty: give at least one prior")
    priors = {}
    for label, model in loaded.items():
        if not isinstance(model, Prior) and not callable(getattr(model, "sample", None)):
            raise TypeError(f"model {label!r} has no sample(n, *, generator=None) method")
        if isinstance(model, torch.nn.Module):
            model.eval()
        priors[label] = as_prior(model)
    return priors


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} with "
        f"{torch.get_num_threads()} thread(s), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def random_part(index: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """A uniform random ``min(k, len(index))`` of ``index (N,)`` (sorted), from its own
    generator seeded with ``seed``.

    ``subsample`` returns sorted indices and dataset frames lie in file order (sequence by
    sequence, source by source), so the *first* k of a subsample are the frames nearest the
    start of the file, not a random part of it. Its own generator leaves the draws of the run's
    shared generator (pairs, fitted frames) unchanged."""
    if k >= len(index):
        return index
    return index[subsample(len(index), k, torch.Generator().manual_seed(seed))]


def _pairs(
    data: torch.Tensor, sequence: torch.Tensor, n: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random frame pairs, from different sequences where the split has several, else
    (a split of one sequence, as a user's own capture often is) of different frames of it."""
    count = data.shape[0]
    a = torch.randint(count, (n,), generator=g)
    b = torch.randint(count, (n,), generator=g)
    if sequence.unique().numel() > 1:
        for _ in range(100):
            same = sequence[a] == sequence[b]
            if not same.any():
                break
            b[same] = torch.randint(count, (int(same.sum()),), generator=g)
        # Redrawing from every frame rarely leaves a sequence that holds most of the split
        # (99%: a third of its pairs stayed inside it); draw those among the other sequences.
        # Runs only where the loop above failed, so it changes no other split's pairs.
        for i in (sequence[a] == sequence[b]).nonzero().flatten().tolist():
            others = (sequence != sequence[a[i]]).nonzero().flatten()
            b[i] = others[torch.randint(len(others), (1,), generator=g)]
    elif count > 1:
        # a pair of one frame has no path: its R and path ratio are 0/0 (NaN), and one such
        # pair made the table's means NaN
        twice = (a == b).nonzero().flatten()
        b[twice] = (a[twice] + torch.randint(1, count, (len(twice),), generator=g)) % count
    return a, b


def run_eval(
    models: Sequence[str] | Mapping[str, object],
    data: str | Path,
    split: str = "test",
    out: str | Path = "docs/results",
    quick: bool = False,
    seed: int = 0,
    n_samples: int | None = None,
    body_model: str | Path | object | None = None,
    *,
    n_vertex_samples: int | None = None,
    n_queries: int | None = None,
    n_reference: int | None = None,
    n_vertices: int | None = None,
    n_pairs: int | None = None,
    steps: int | None = None,
    fit_frames: int | None = None,
    geodesic: int = 0,
    fitting: bool = True,
    command: str | None = None,
    progress: bool = True,
) -> dict:
    """Run the protocol for ``models`` on ``data`` and write the report.

    Args:
        models: aliases or checkpoint paths for ``advprior.hub.load_pretrained``, or a
            ``{label: prior}`` mapping of objects with ``sample(n, *, generator=None)``.
        data: dataset ``.npz`` (``advprior data build``); recall queries come from ``split``,
            precision compares samples with the training split (``split`` if it has none).
        split: "test" or "validation".
        out: output folder; the Markdown report goes to ``<out>.md``.
        quick: small sizes for CI (see :data:`QUICK`); the default sizes are :data:`FULL`.
        seed: seed of every random choice (subsets, samples, pairs, noise).
        n_samples: generated poses per model for recall (streamed; default 1,000,000).
        body_model: a path to a real SMPL/SMPL-H/SMPL-X model, a loaded ``BodyModel``, or None
            for the open stand-in body.
        n_vertex_samples: of the ``n_samples``, how many are also compared per vertex (the
            body model's skinning is far slower than forward kinematics); the per-vertex
            precision reference is capped at the same number of training poses.
        n_queries, n_reference, n_vertices, n_pairs, steps, fit_frames: override the sizes.
        geodesic: when > 0, every latent prior also gets a row for its geodesic paths
            between the same inverted ends (:func:`advprior.geodesic.geodesic_path` with this
            many L-BFGS iterations; 300 is ``Prior.interpolate``'s default), labelled
            ``"<model>, geodesic"``. 0: only the prior's own paths (the paper's protocol).
        fitting: also fit 2D keypoints with each prior (``advprior.fitting``).
        command: the command line to quote in the report.
        progress: print a line per stage to stderr.

    Returns:
        The results dictionary that is also written to ``<out>/results.json``.
    """
    base = QUICK if quick else FULL
    cfg = EvalSettings(
        **{
            **asdict(base),
            **{
                k: v
                for k, v in dict(
                    n_samples=n_samples,
                    n_vertex_samples=n_vertex_samples,
                    n_queries=n_queries,
                    n_reference=n_reference,
                    n_vertices=n_vertices,
                    n_pairs=n_pairs,
                    steps=steps,
                    fit_frames=fit_frames,
                ).items()
                if v is not None
            },
        }
    )
    for key, value in asdict(cfg).items():
        if key != "fit_iterations" and (not isinstance(value, int) or value < 0):
            raise ValueError(f"{key} must be a non-negative int, got {value!r}")
    if isinstance(geodesic, bool) or not isinstance(geodesic, int) or geodesic < 0:
        raise ValueError(f"geodesic must be a non-negative int, got {geodesic!r}")
    for key in ("n_samples", "n_queries", "n_vertices", "n_vertex_samples", "n_reference"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.steps < 2:
        raise ValueError(f"steps must be >= 2, got {cfg.steps}")
    out = Path(out)
    t_start = time.perf_counter()

    def log(msg: str) -> None:
        if progress:
            # stderr: progress, not a result (results.json and the report are); on stdout a
            # `| head` that closed it stopped the evaluation with a broken pipe
            stamp = f"[eval {time.perf_counter() - t_start:7.1f}s]"
            print(f"{stamp} {msg}", file=sys.stderr, flush=True)

    weights_sha256: dict[str, str] = {}
    priors = _load_models(models, weights_sha256)
    test = load_split(data, split)
    try:
        train = load_split(data, "train")
        reference_split = "train"
    except ValueError:
        train, reference_split = test, split
    if body_model is None or isinstance(body_model, (str, Path)):
        from advprior.body import load_body_model

        body_label = "open stand-in body" if body_model is None else f"real model {body_model}"
        body = load_body_model(body_model)
    else:
        body = body_model
        source = getattr(body, "source", None)
        if getattr(body, "is_standin", False):
            body_label = "open stand-in body"
        elif source is not None:
            body_label = f"real model {source}"
        else:
            body_label = f"given {type(body).__name__}"
    poser = protocol.Poser(body, n_vertices=cfg.n_vertices, seed=seed)
    g = torch.Generator().manual_seed(seed)
    q_idx = subsample(len(test), cfg.n_queries, g)
    r_idx = subsample(len(train), cfg.n_reference, g)
    real_queries = poser(test.body_pose[q_idx])
    reference = poser(train.body_pose[r_idx], kinds=("joints",))
    v_idx = random_part(r_idx, cfg.n_vertex_samples, seed)
    n_vref = len(v_idx)
    reference.update(poser(train.body_pose[v_idx], kinds=("vertices",)))
    log(
        f"{len(priors)} model(s); {len(q_idx)} {split} queries of {len(test)}, "
        f"{len(r_idx)} {reference_split} references of {len(train)}; body {poser.num_vertices} "
        f"vertices, {len(poser.vertex_ids)} used"
    )

    results: dict = {
        "settings": asdict(cfg),
        "seed": seed,
        "split": split,
        "reference_split": reference_split,
        "data": str(data),
        "data_sha256": sha256_file(data),
        "body": body_label,
        "num_vertices": poser.num_vertices,
        "n_test_frames": len(test),
        "n_test_sequences": int(test.sequence.unique().numel()),
        "n_reference_frames": len(train),
        "n_vertex_reference": n_vref,
        "machine": _machine(),
        # with the seed, the data's and the weights' sha256: what a rerun needs to match
        "software": software_versions(),
        "models": {},
    }
    curves_dist: dict = {}
    generated_joints: dict = {}
    for label, prior in priors.items():
        t0 = time.perf_counter()
        rp = protocol.sample_recall_precision(
            prior,
            poser,
            real_queries,
            reference,
            n_samples=cfg.n_samples,
            n_precision_queries=cfg.n_queries,
            n_vertex_samples=cfg.n_vertex_samples,
            generator=torch.Generator().manual_seed(seed),
        )
        entry = {
            "model_type": protocol.model_kind(prior),
            # None for a model given as a Python object: no file to name
            "weights_sha256": weights_sha256.get(label),
            "recall_precision_mm": rp.summary(),
            "seconds": {**rp.seconds, "total": time.perf_counter() - t0},
        }
        results["models"][label] = entry
        curves_dist[label] = {
            "recall": {k: v.numpy() * 1000 for k, v in rp.recall.items()},
            "precision": {k: v.numpy() * 1000 for k, v in rp.precision.items()},
        }
        generated_joints[label] = poser(rp.samples[: cfg.pca_points], kinds=("joints",))["joints"]
        s = entry["recall_precision_mm"]["joints"]
        log(
            f"{label}: recall {s['recall_mean']:.1f} mm, precision {s['precision_mean']:.1f} mm "
            f"(joints) in {entry['seconds']['total']:.1f}s"
        )

    out.mkdir(parents=True, exist_ok=True)
    # a new folder of its own (mkdtemp: exclusive, random name): ".staging-<pid>" was shared by
    # two hosts of one pid writing into one NFS folder, and by two threads of one process
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        from advprior.eval import plots

        pictures = {"cumulative": plots.cumulative_curves(curves_dist, stage / "cumulative.png")}
        pca_idx = random_part(torch.arange(len(q_idx)), cfg.pca_points, seed)
        real_pca = real_queries["joints"][pca_idx].reshape(-1, 72).numpy()
        pictures["pca"] = plots.pca_scatter(
            real_pca,
            {k: v.reshape(-1, 72).numpy() for k, v in generated_joints.items()},
            stage / "pca.png",
        )

        # Interpolation smoothness on held-out pairs.
        smooth: dict = {}
        if cfg.n_pairs > 0:
            a, b = _pairs(test.body_pose, test.sequence, cfg.n_pairs, g)
            pose_a, pose_b = test.body_pose[a], test.body_pose[b]
            curves: dict = {}
            strip: dict = {}
            show = np.unique(np.linspace(0, cfg.steps - 1, min(cfg.steps, 7)).round().astype(int))
            invert_kwargs = {"body_model": body, **({"steps": 10, "restarts": 1} if quick else {})}
            runs = [(label, prior, 0) for label, prior in priors.items()]
            if geodesic > 0:
                runs += [(f"{label}, geodesic", prior, geodesic) for label, prior in priors.items()]
            for label, prior, iterations in [*runs, (POSE_SLERP, None, 0)]:
                t0 = time.perf_counter()
                got = protocol.interpolation_paths(
                    prior,
                    pose_a,
                    pose_b,
                    cfg.steps,
                    invert_kwargs=invert_kwargs,
                    geodesic=iterations,
                )
                if got is None:
                    if iterations == 0:
                        what = (
                            "it can only be sampled"
                            if not prior.fittable
                            else f"a {protocol.model_kind(prior)} prior is a density on poses"
                        )
                        smooth[label] = {"excluded": f"no latent space to interpolate in ({what})"}
                        log(f"{label}: interpolation excluded (no latent space)")
                    continue
                paths, how = got
                ratio, deform = protocol.smoothness(poser, paths)
                detour = protocol.path_ratio(paths, body)
                smooth[label] = {
                    "method": how,
                    "R_mean": float(ratio.mean()),
                    "R_std": float(ratio.std()) if ratio.numel() > 1 else 0.0,
                    "R_median": float(ratio.median()),
                    "pairs": int(ratio.numel()),
                    "path_ratio_mean": float(detour.mean()),
                    "path_ratio_median": float(detour.median()),
                    "seconds": time.perf_counter() - t0,
                }
                row = smooth[label]
                log(f"{label}: R mean {row['R_mean']:.2f} ({row['seconds']:.1f}s)")
                if iterations == 0:  # the pictures show the paper's paths, one row per model
                    curves[label] = deform.numpy()
                    strip[label] = poser(paths[0, show], all_vertices=True)["vertices"].numpy()
            pictures["deformation"] = plots.deformation_curves(curves, stage / "deformation.png")
            faces = np.asarray(body.faces)
            pictures["strip"] = plots.interpolation_strip(strip, faces, stage / "interpolation.png")
        results["smoothness"] = smooth

        # Fitting from noisy 2D keypoints with the fitting module's own benchmark protocol (the one
        # docs/fitting.md uses), every prior on the same observations.
        fits: dict = {}
        if fitting and cfg.fit_frames > 0:
            from advprior.eval.benchmark import make_views, run_fitting

            f_idx = subsample(len(test), cfg.fit_frames, g)
            views = make_views(
                test.body_pose[f_idx], test.global_orient[f_idx], seed=seed, body_model=body
            )
            kwargs = {} if cfg.fit_iterations is None else {"iterations": cfg.fit_iterations}
            for label, prior in [*priors.items(), ("no prior", None)]:
                if prior is not None and not prior.fittable:
                    log(f"{label}: not fitted (it can only be sampled: no latent, no energy)")
                    continue
                score = run_fitting(views, prior, body_model=body, **kwargs)
                fits[label] = {
                    k: score[k]
                    for k in (
                        "frames",
                        "mpjpe_mm",
                        "mpjpe_median_mm",
                        "p_mpjpe_mm",
                        "p_mpjpe_median_mm",
                        "seconds_per_frame",
                    )
                }
                log(
                    f"{label}: fit P-MPJPE {score['p_mpjpe_mm']:.1f} mm, "
                    f"{score['seconds_per_frame']:.3f} s/frame"
                )
        results["fitting"] = fits
        # the pictures join results.json and the report only when the whole run succeeded,
        # so an interrupted run never leaves new pictures beside the previous run's results
        for key, path in pictures.items():
            pictures[key] = out / Path(path).name
            os.replace(path, pictures[key])
        results["pictures"] = {k: picture_link(v, out.parent) for k, v in pictures.items()}
        results["wall_seconds"] = time.perf_counter() - t_start
        named = not isinstance(models, Mapping) or all(
            isinstance(m, (str, os.PathLike)) for m in models.values()
        )
        results["command"] = command or _default_command(
            list(priors), data, split, out, quick, cfg, seed, geodesic, named
        )

        write_text_atomic(out / "results.json", json.dumps(results, indent=2) + "\n")
        from advprior.eval.report import render

        report = out.parent / f"{out.name}.md"
        write_text_atomic(report, render(results) + _other_generated_blocks(report))
        log(f"wrote {out.parent / (out.name + '.md')} in {results['wall_seconds']:.0f}s")
        return results
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def picture_link(picture: PurePath, base: PurePath) -> str:
    """The Markdown link (and results.json entry) of ``picture`` from the report's folder
    ``base``: forward slashes on every system, as Markdown renderers and other machines read
    them (``str`` of a Windows path has backslashes)."""
    return picture.relative_to(base).as_posix()


def _other_generated_blocks(report: Path) -> str:
    """The ``<!-- BEGIN GENERATED: ... -->`` blocks other commands wrote into ``report``
    (``advprior eval --tasks``, benchmarks), kept when the protocol rewrites the report."""
    from advprior.eval.benchmark import GENERATED_END

    if not report.exists():
        return ""
    blocks, current = [], None
    # whole-line markers only, as write_generated_block writes them
    for line in report.read_text(encoding="utf-8").split("\n"):
        if current is None and line.strip().startswith("<!-- BEGIN GENERATED:"):
            current = [line]
        elif current is not None:
            current.append(line)
            if line.strip() == GENERATED_END:
                blocks.append("\n".join(current))
                current = None
    return "".join(f"\n{block}\n" for block in blocks)


# The CLI flag of each size (fit_iterations and pca_points have none).
_SIZE_FLAGS = {
    "n_samples": "--samples",
    "n_vertex_samples": "--vertex-samples",
    "n_queries": "--queries",
    "n_reference": "--reference",
    "n_vertices": "--vertices",
    "n_pairs": "--pairs",
    "steps": "--steps",
    "fit_frames": "--fit-frames",
}


def _default_command(
    labels: list[str],
    data: str | Path,
    split: str,
    out: Path,
    quick: bool,
    cfg: EvalSettings,
    seed: int,
    geodesic: int,
    named: bool,
) -> str:
    """The ``advprior eval`` line that re-runs a Python call: every size that differs from its
    preset, ``--geodesic``; ``named`` False when the models were Python objects, which no
    command line can name (said in the line)."""
    base = QUICK if quick else FULL
    parts = ["advprior eval --models", *labels, "--data", str(data), "--split", split]
    parts += ["--out", str(out), "--samples", str(cfg.n_samples), "--seed", str(seed)]
    for key, flag in _SIZE_FLAGS.items():
        if key != "n_samples" and getattr(cfg, key) != getattr(base, key):
            parts += [flag, str(getattr(cfg, key))]
    if geodesic:
        parts += ["--geodesic", str(geodesic)]
    if quick:
        parts.append("--quick")
    line = " ".join(parts)
    return line if named else f"{line} (models given as Python objects: labels shown)"
