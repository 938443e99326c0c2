"""The protocol runner: streaming recall/precision, smoothness paths, the report."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from advprior.body import forward_kinematics
from advprior.eval import protocol, run_eval
from advprior.eval.data import load_split
from advprior.eval.metrics import recall_precision
from advprior.eval.runner import POSE_SLERP
from advprior.interface import Prior
from advprior.prior import PosePrior
from advprior.skeleton import REST_JOINTS


class _CubeBody:
    """Private stand-in body: an 8-vertex cube rigidly attached to each of the 24 joints."""

    def __init__(self) -> None:
        corners = [(x, y, z) for x in (-0.03, 0.03) for y in (-0.03, 0.03) for z in (-0.03, 0.03)]
        self.offsets = torch.tensor(corners).repeat(24, 1)
        self.owner = torch.arange(24).repeat_interleave(8)
        quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        faces = [
            (8 * j + a, 8 * j + b, 8 * j + c)
            for j in range(24)
            for a, b, c, d in quads
            for a, b, c in ((a, b, c), (a, c, d))
        ]
        self.faces = np.array(faces, dtype=np.int64)

    def rest_joints(self, betas: torch.Tensor | None) -> torch.Tensor:
        return torch.as_tensor(REST_JOINTS, dtype=torch.float32)

    def __call__(self, global_orient, body_pose, betas=None, transl=None):  # noqa: ANN001
        joints, rot = forward_kinematics(
            global_orient, body_pose, transl=transl, return_rotations=True
        )
        verts = joints[:, self.owner] + (rot[:, self.owner] @ self.offsets[:, :, None])[..., 0]
        return SimpleNamespace(vertices=verts, joints=joints)


class _TablePrior(Prior):
    """A 'prior' that replays a fixed table of poses (known recall/precision answers); it can
    only be sampled (no latent space, no energy)."""

    model_type = "table"
    fittable = False

    def __init__(self, poses: torch.Tensor) -> None:
        self.poses = poses
        self.pos = 0

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        idx = (torch.arange(n) + self.pos) % self.poses.shape[0]
        self.pos += n
        return self.poses[idx]


def _invert_standin(prior: PosePrior, pose: torch.Tensor, steps: int = 20, **_: object):
    z = prior.sample_latent(pose.shape[0], generator=torch.Generator().manual_seed(0))
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        (prior(prior.project(z)) - pose).square().sum().backward()
        opt.step()
    return prior.project(z.detach())


def _with_invert(prior: PosePrior) -> PosePrior:
    prior.invert = lambda pose, **kw: _invert_standin(prior, pose, **kw)
    return prior.eval()


def _dataset(write_dataset, path: Path, n_per_split: int = 120, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = 3 * n_per_split
    return write_dataset(
        path,
        body_pose=(rng.normal(size=(n, 63)) * 0.25).astype(np.float32),
        global_orient=(rng.normal(size=(n, 3)) * 0.1).astype(np.float32),
        split=np.repeat(np.array([0, 1, 2], np.int8), n_per_split),
        sequence=np.repeat(np.arange(n // 20), 20).astype(np.int32),
    )


@pytest.fixture(scope="module")
def body() -> _CubeBody:
    return _CubeBody()


def test_poser_centres_pelvis_and_subsamples(body: _CubeBody) -> None:
    poser = protocol.Poser(body, n_vertices=50, seed=1)
    assert poser.num_vertices == 192 and poser.vertex_ids.shape == (50,)
    pts = poser(torch.randn(5, 63) * 0.3)
    assert pts["joints"].shape == (5, 24, 3) and pts["vertices"].shape == (5, 50, 3)
    torch.testing.assert_close(pts["joints"][:, 0], torch.zeros(5, 3))
    assert poser(torch.zeros(2, 63), all_vertices=True)["vertices"].shape == (2, 192, 3)
    assert torch.equal(protocol.Poser(body, n_vertices=50, seed=1).vertex_ids, poser.vertex_ids)


def test_streaming_matches_all_at_once(body: _CubeBody) -> None:
    g = torch.Generator().manual_seed(0)
    real, table = torch.randn(30, 63, generator=g) * 0.3, torch.randn(70, 63, generator=g) * 0.3
    poser = protocol.Poser(body, n_vertices=40)
    real_pts, gen_pts = poser(real), poser(table)
    rp = protocol.sample_recall_precision(
        _TablePrior(table),
        poser,
        real_pts,
        real_pts,
        n_samples=70,
        n_precision_queries=70,
        generator=torch.Generator(),
        sample_chunk=9,
        nn_chunk=4,
    )
    for kind in protocol.KINDS:
        want = recall_precision(real_pts[kind], gen_pts[kind])
        torch.testing.assert_close(rp.recall[kind], want["recall_dists"])
        torch.testing.assert_close(rp.precision[kind], want["precision_dists"])
    assert rp.samples.shape == (70, 63)


def test_prior_that_replays_the_data_scores_zero(body: _CubeBody) -> None:
    poses = torch.randn(25, 63, generator=torch.Generator().manual_seed(1)) * 0.3
    poser = protocol.Poser(body, n_vertices=None)
    pts = poser(poses)
    rp = protocol.sample_recall_precision(
        _TablePrior(poses),
        poser,
        pts,
        pts,
        n_samples=25,
        n_precision_queries=10,
        generator=torch.Generator(),
    )
    for kind in protocol.KINDS:
        assert rp.recall[kind].abs().max() < 1e-6
        assert rp.precision[kind].abs().max() < 1e-6
    # Shifting every sample's pose changes the answer: the search is not trivially zero.
    rp2 = protocol.sample_recall_precision(
        _TablePrior(poses + 0.2),
        poser,
        pts,
        pts,
        n_samples=25,
        n_precision_queries=10,
        generator=torch.Generator(),
    )
    assert rp2.summary()["joints"]["recall_mean"] > 1.0


def test_pose_space_slerp_is_even_and_hits_endpoints() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(3, 63, generator=g) * 0.4, torch.randn(3, 63, generator=g) * 0.4
    path = protocol.pose_space_slerp(a, b, 9)
    assert path.shape == (3, 9, 63)
    torch.testing.assert_close(path[:, 0], a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(path[:, -1], b, atol=1e-5, rtol=1e-5)


def test_interpolation_paths_dispatch(body: _CubeBody) -> None:
    prior = _with_invert(PosePrior("sphere"))
    a, b = torch.zeros(2, 63), torch.full((2, 63), 0.1)
    paths, how = protocol.interpolation_paths(prior, a, b, 6)
    assert paths.shape == (2, 6, 63) and "slerp" in how
    assert protocol.interpolation_paths(_TablePrior(a), a, b, 6) is None
    ratio, deform = protocol.smoothness(protocol.Poser(body), paths)
    assert ratio.shape == (2,) and deform.shape == (2, 5)
    assert bool((ratio >= 1).all())
    torch.testing.assert_close(deform.mean(dim=1), torch.ones(2))
    geo, how = protocol.interpolation_paths(prior, a, b, 6, geodesic=5)
    assert geo.shape == (2, 6, 63) and "geodesic (5 L-BFGS iterations from the slerp" in how
    torch.testing.assert_close(geo[:, [0, -1]], paths[:, [0, -1]])  # same inverted ends


def test_load_split_errors(tmp_path: Path, write_dataset) -> None:
    with pytest.raises(FileNotFoundError):
        load_split(tmp_path / "missing.npz", "test")
    np.savez(tmp_path / "nokey.npz", split=np.zeros(3, np.int8))
    with pytest.raises(ValueError, match="body_pose"):
        load_split(tmp_path / "nokey.npz", "test")
    write_dataset(tmp_path / "train_only.npz", np.zeros((3, 63), np.float32), np.zeros(3, np.int8))
    with pytest.raises(ValueError, match="no frames"):
        load_split(tmp_path / "train_only.npz", "test")
    with pytest.raises(ValueError, match="split must be"):
        load_split(tmp_path / "train_only.npz", "holdout")
    assert len(load_split(tmp_path / "train_only.npz", "train")) == 3


def test_run_eval_quick_writes_report(
    tmp_path: Path, body: _CubeBody, write_dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _dataset(write_dataset, tmp_path / "tiny.npz")
    test_poses = load_split(data, "test").body_pose
    torch.manual_seed(0)  # the untrained generators' weights
    models = {
        "gan-s": _with_invert(PosePrior("sphere")),
        "gan-u": _with_invert(PosePrior("uniform")),
        "oracle": _TablePrior(test_poses),
    }
    out = tmp_path / "docs" / "results"
    res = run_eval(
        models,
        data,
        out=out,
        quick=True,
        body_model=body,
        fitting=False,
        n_samples=500,
        progress=False,
    )
    report = (tmp_path / "docs" / "results.md").read_text()
    saved = json.loads((out / "results.json").read_text())
    assert saved["models"].keys() == res["models"].keys() == models.keys()
    for name in ("cumulative", "pca", "deformation", "strip"):
        assert (tmp_path / "docs" / res["pictures"][name]).stat().st_size > 1000
        assert f"({res['pictures'][name]})" in report
    # The oracle replays the test split, so its recall is zero and beats the untrained GANs.
    oracle = res["models"]["oracle"]["recall_precision_mm"]
    assert oracle["joints"]["recall_mean"] == pytest.approx(0.0, abs=1e-3)
    assert res["models"]["gan-s"]["recall_precision_mm"]["joints"]["recall_mean"] > 1.0
    assert "excluded" in res["smoothness"]["oracle"]
    assert res["smoothness"][POSE_SLERP]["R_mean"] < res["smoothness"]["gan-s"]["R_mean"]
    for name in ("gan-s", "gan-u", POSE_SLERP):
        assert res["smoothness"][name]["path_ratio_median"] >= 1.0 - 1e-6
    assert "path ratio mean" in report
    for name in models:
        assert f"| {name} |" in report
    assert res["command"] in report and "seed 0" in report
    # objects cannot be named on a command line: the quoted line says so
    assert res["command"].endswith("(models given as Python objects: labels shown)")
    # a run that fails after drawing its pictures leaves the previous run's outputs as a set
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args, **kwargs):
        raise RuntimeError("stop after the pictures")

    import advprior.eval.benchmark as benchmark

    monkeypatch.setattr(benchmark, "run_fitting", fail)
    with pytest.raises(RuntimeError, match="stop after the pictures"):
        run_eval(models, data, out=out, quick=True, body_model=body, n_samples=400, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder left


def test_interpolation_pairs_of_a_split_with_one_sequence(
    tmp_path: Path, body: _CubeBody, write_dataset
) -> None:
    from advprior.eval.runner import _pairs

    # a user's own capture: the test split is one sequence, so pairs came from it and some
    # were one frame twice: R and the path ratio were 0/0 and the table's means NaN
    a, b = _pairs(torch.zeros(30, 63), torch.zeros(30), 256, torch.Generator().manual_seed(0))
    assert not (a == b).any()
    # one sequence holding 99% of the split kept a third of the pairs inside it
    seq = torch.zeros(1000, dtype=torch.long)
    seq[:10] = 1
    a, b = _pairs(torch.zeros(1000, 63), seq, 128, torch.Generator().manual_seed(0))
    assert not (seq[a] == seq[b]).any()
    rng = np.random.default_rng(3)
    data = write_dataset(
        tmp_path / "one_capture.npz",
        body_pose=(rng.normal(size=(90, 63)) * 0.25).astype(np.float32),
        global_orient=np.zeros((90, 3), np.float32),
        split=np.repeat(np.array([0, 1, 2], np.int8), 30),
        sequence=np.repeat(np.arange(3), 30).astype(np.int32),
    )
    torch.manual_seed(0)
    models = {"gan-s": _with_invert(PosePrior("sphere"))}
    kw = dict(quick=True, body_model=body, fitting=False, n_samples=200, progress=False)
    res = run_eval(models, data, out=tmp_path / "r" / "r", n_pairs=64, **kw)
    for row in res["smoothness"].values():
        assert all(np.isfinite(row[k]) for k in ("R_mean", "path_ratio_mean")), row
    report = (tmp_path / "r" / "r.md").read_text()
    assert "`test` frames (different frames of its one sequence)" in report


def test_run_eval_geodesic_rows(tmp_path: Path, body: _CubeBody, write_dataset) -> None:
    """``geodesic=N`` adds a row per latent prior between the same inverted ends; the pictures
    keep one row per model (the paper's paths)."""
    data = _dataset(write_dataset, tmp_path / "tiny.npz")
    torch.manual_seed(0)
    models = {"gan-s": _with_invert(PosePrior("sphere")), "oracle": _TablePrior(torch.zeros(2, 63))}
    kw = dict(quick=True, body_model=body, fitting=False, n_samples=200, progress=False)
    res = run_eval(models, data, out=tmp_path / "a" / "r", geodesic=30, **kw)
    smooth = res["smoothness"]
    assert list(smooth) == ["gan-s", "oracle", "gan-s, geodesic", POSE_SLERP]
    assert "geodesic (30 L-BFGS" in smooth["gan-s, geodesic"]["method"]
    # the geodesic shortens the paths (here 1.19 -> 1.05 on average)
    assert smooth["gan-s, geodesic"]["path_ratio_mean"] < smooth["gan-s"]["path_ratio_mean"]
    assert "| gan-s, geodesic |" in (tmp_path / "a" / "r.md").read_text()
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="geodesic must be"):
            run_eval(models, data, out=tmp_path / "b" / "r", geodesic=bad, **kw)


def test_vertex_budget_limits_only_the_vertex_comparison(body: _CubeBody) -> None:
    poses = torch.randn(20, 63, generator=torch.Generator().manual_seed(3)) * 0.3
    far = poses + 1.0
    poser = protocol.Poser(body, n_vertices=30)
    pts = poser(poses)
    # The first 20 samples are far from the data, the next 20 replay it exactly.
    rp = protocol.sample_recall_precision(
        _TablePrior(torch.cat([far, poses])),
        poser,
        pts,
        pts,
        n_samples=40,
        n_precision_queries=5,
        n_vertex_samples=20,
        generator=torch.Generator(),
        sample_chunk=8,
    )
    assert rp.recall["joints"].abs().max() < 1e-6
    assert rp.recall["vertices"].min() > 1e-2


def test_run_eval_bad_arguments(tmp_path: Path, body: _CubeBody, write_dataset) -> None:
    data = _dataset(write_dataset, tmp_path / "tiny.npz", n_per_split=30)
    prior = {"gan-s": PosePrior("sphere")}
    with pytest.raises(TypeError, match="list of names"):
        run_eval("gan-s", data, out=tmp_path / "r", quick=True, body_model=body)
    with pytest.raises(ValueError, match="empty"):
        run_eval({}, data, out=tmp_path / "r", quick=True, body_model=body)
    with pytest.raises(TypeError, match="sample"):
        run_eval({"x": object()}, data, out=tmp_path / "r", quick=True, body_model=body)
    with pytest.raises(ValueError, match="n_samples"):
        run_eval(prior, data, out=tmp_path / "r", quick=True, body_model=body, n_samples=-1)
    with pytest.raises(ValueError, match="steps"):
        run_eval(prior, data, out=tmp_path / "r", quick=True, body_model=body, steps=1)
    with pytest.raises(FileNotFoundError):
        run_eval(prior, tmp_path / "none.npz", out=tmp_path / "r", quick=True, body_model=body)
    assert not (tmp_path / "r.md").exists()


def test_path_ratio_counts_the_detour(body: _CubeBody) -> None:
    gen = torch.Generator().manual_seed(4)
    a, b = 0.3 * torch.randn(2, 63, generator=gen), 0.3 * torch.randn(2, 63, generator=gen)
    direct = torch.stack([a, b], 1)  # (2, 2, 63): the ends only
    torch.testing.assert_close(protocol.path_ratio(direct, body), torch.ones(2))
    there_and_back = torch.stack([a, b, a, b], 1)  # three times the direct distance
    torch.testing.assert_close(protocol.path_ratio(there_and_back, body), torch.full((2,), 3.0))
    paths, _ = protocol.interpolation_paths(None, a, b, 9)  # joint slerp: arcs, not chords
    ratio = protocol.path_ratio(paths, body)
    assert bool((ratio >= 1 - 1e-6).all()) and bool((ratio < 1.5).all())


def test_vertex_reference_is_a_random_part_of_the_reference(
    tmp_path: Path, body: _CubeBody, write_dataset
) -> None:
    """The per-vertex precision reference is a random part of the (sorted) reference frames, not
    the frames nearest the start of the file: here the train split holds 60 frames of one kind
    and then 60 of another, and the prior replays the second 60."""
    rng = np.random.default_rng(5)
    n = 360
    pose = (rng.normal(size=(n, 63)) * 0.25).astype(np.float32)
    data = write_dataset(
        tmp_path / "ordered.npz",
        body_pose=pose,
        global_orient=np.zeros((n, 3), np.float32),
        split=np.repeat(np.array([0, 1, 2], np.int8), 120),
        sequence=np.repeat(np.arange(n // 20), 20).astype(np.int32),
    )
    late = load_split(data, "train").body_pose[60:]
    res = run_eval(
        {"late": _TablePrior(late)},
        data,
        out=tmp_path / "r",
        quick=True,
        body_model=body,
        fitting=False,
        n_samples=60,
        n_queries=60,
        n_reference=120,
        n_vertex_samples=60,
        n_pairs=0,
        progress=False,
    )
    assert res["n_vertex_reference"] == 60
    got = res["models"]["late"]["recall_precision_mm"]
    assert got["joints"]["precision_mean"] == pytest.approx(0.0, abs=1e-3)
    # Precision against the first 60 frames only: none of the samples is among them.
    early = load_split(data, "train").body_pose[:60]
    poser = protocol.Poser(body, n_vertices=64, seed=0)
    first_only = recall_precision(
        poser(early)["vertices"], poser(late)["vertices"], precision_reference=None
    )["precision_mean"]
    # A random half of the 120 holds about half of the replayed frames (0 mm for those).
    assert got["vertices"]["precision_mean"] < 0.75 * 1000.0 * first_only


def test_random_part_is_spread_and_seeded() -> None:
    from advprior.eval.runner import random_part

    index = torch.arange(0, 2000, 2)  # sorted, as subsample returns them
    part = random_part(index, 100, seed=0)
    assert len(part) == 100 and len(set(part.tolist())) == 100
    assert bool(torch.isin(part, index).all())
    assert bool((part.diff() > 0).all())
    # Not the first 100: spread over the whole index (a uniform 100 of 1000 has ~50 above the
    # median; the first 100 have none).
    assert 30 <= int((part > index.median()).sum()) <= 70
    assert torch.equal(part, random_part(index, 100, seed=0))
    assert not torch.equal(part, random_part(index, 100, seed=1))
    assert torch.equal(random_part(index, 5000, seed=0), index)


def test_poser_and_slerp_inputs(body: _CubeBody) -> None:
    poser = protocol.Poser(body, n_vertices=16)
    with pytest.raises(TypeError, match="body_pose"):
        poser(np.zeros((2, 63), np.float32))
    with pytest.raises(ValueError, match="body_pose"):
        poser(torch.zeros(2, 3, 63))
    # SMPL's 69 numbers: the two hand joints slerp like the others
    g = torch.Generator().manual_seed(9)
    a, b = torch.randn(2, 69, generator=g) * 0.3, torch.randn(2, 69, generator=g) * 0.3
    path = protocol.pose_space_slerp(a, b, 5)
    assert path.shape == (2, 5, 69)
    torch.testing.assert_close(path[:, :, :63], protocol.pose_space_slerp(a[:, :63], b[:, :63], 5))


def test_path_ratio_of_degenerate_and_empty_batches() -> None:
    """Equal ends have no direct distance: NaN, not the length's float noise over the smallest
    float (8.5e30); an empty batch is empty; a path needs two poses."""
    gen = torch.Generator().manual_seed(0)
    a, b = 0.3 * torch.randn(2, 63, generator=gen)
    t = torch.linspace(0, 1, 5)[:, None]
    straight = (a + t * (b - a))[None]
    ratio = protocol.path_ratio(straight)
    assert ratio.shape == (1,) and 1.0 <= float(ratio) < 2.0
    there_and_back = torch.stack([a, b, a])[None]
    assert torch.isnan(protocol.path_ratio(there_and_back)).all()
    assert protocol.path_ratio(torch.zeros(0, 4, 63)).shape == (0,)
    with pytest.raises(ValueError, match=r"\(B, T >= 2, 63\)"):
        protocol.path_ratio(a[None, None])
