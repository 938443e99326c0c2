"""The Python snippets of README.md, docs/*.md and docs/api/*.md, run as a reader would run them.

Each page's blocks run in order in one namespace (a page is one session: README's later blocks
use the ``prior`` and ``camera`` of its earlier ones). What a snippet leaves to the reader (its
keypoints, features, a data term) is supplied by a short setup line below, never by changing the
snippet. After each statement whose line ends in a shape comment of numbers (``# (8, 63)``), the
assigned tensor must have that shape. Every Python block of the docs must be listed here, run or
skipped with its reason, so a new snippet cannot silently go untested. Needs no ``../shared``
data: the one dataset a snippet names is written from a few synthetic poses.
"""

from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PAGES += sorted((REPO / "docs" / "api").glob("*.md"))
SHAPE_COMMENT = re.compile(r"#\s*\((\d+(?:,\s*\d+)*),?\)")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository
    line: int  # 1-based line of the block's first code line
    code: str


def python_blocks(path: Path) -> list[Block]:
    """The fenced ```python blocks of a Markdown page."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if fence is None:
            i += 1
            continue
        end = i + 1
        while not re.match(r"^\s*```\s*$", lines[end]):
            end += 1
        if fence.group(2) == "python":
            code = "\n".join(line[len(fence.group(1)) :] for line in lines[i + 1 : end])
            blocks.append(Block(str(path.relative_to(REPO)), i + 2, code))
        i = end + 1
    return blocks


# Inputs the pages leave to the reader, built from the prior and the stand-in body.
HELPERS = '''
def _views(n, center=512.0, frames=None):
    """n frames (or a clip of `frames`) of 24 SMPL keypoints of prior poses, seen from 3 m."""
    from advprior import PosePrior
    from advprior.fitting import PinholeCamera
    from advprior.fitting.smplify import body_keypoints

    gan = PosePrior.from_pretrained("gan-s")
    gen = torch.Generator().manual_seed(0)
    if frames is None:
        pose = gan.sample(n, generator=gen)
    else:
        pose = gan.decode(gan.interpolate(*gan.sample_latent(2, generator=gen), frames))
    orient = torch.tensor([[torch.pi, 0.0, 0.0]]).expand(len(pose), 3)
    transl = torch.tensor([[0.0, 0.0, 3.0]]).expand(len(pose), 3)
    points, _ = body_keypoints(orient, pose, transl=transl)
    kp = PinholeCamera(1000.0, (center, center)).project(points)
    return kp, torch.ones(kp.shape[:-1])
'''


@dataclass(frozen=True)
class Run:
    setup: str = ""


@dataclass(frozen=True)
class Skip:
    reason: str


# (page, a string unique to the block) -> what to do with it.
SNIPPETS: dict[tuple[str, str], Run | Skip] = {
    ("README.md", "body_pose = prior.sample(8, generator=g)  # (8, 63)"): Run(),
    ("README.md", "fit = fit_keypoints(keypoints, confidence, camera"): Run(
        "keypoints, confidence = _views(1)"
    ),
    ("README.md", "seq = fit_sequence(keypoints_t"): Run(
        "keypoints_t, confidence_t = _views(0, frames=3)"
    ),
    ("README.md", "head = LatentHead(in_features=2048"): Run("features = torch.randn(2, 2048)"),
    ("docs/body.md", "body = load_body_model()  # the open stand-in"): Run(),
    ("docs/body.md", "ids = build_standin()"): Run(),
    ("docs/body.md", "model = smplx.create(standin_folder()"): Run(),
    ("docs/body.md", 'load_body_model("path/to/SMPL_NEUTRAL.pkl")'): Skip(
        "needs the reader's licensed SMPL files"
    ),
    ("docs/core.md", "fit = LatentPose(prior, batch_size=8)"): Run(),
    ("docs/data.md", 'motion = load_motion("cmu/02/02_01.amc")'): Run("_data_folder()"),
    ("docs/deploy.md", "meta = export_prior("): Run("_needs_onnx()"),
    ("docs/eval.md", "results = run_eval("): Skip(
        "needs the full dataset (data/mocap30.npz) and a minute per evaluation"
    ),
    ("docs/eval.md", "results = run_tasks("): Skip(
        "needs the full dataset (data/mocap30.npz) and the reader's own prior"
    ),
    ("docs/fitting.md", "res = fit_sequence(keypoints, confidence, PinholeCamera"): Run(
        "keypoints, confidence = _views(0, center=500.0, frames=3)"
    ),
    ("docs/fitting.md", "init_global_orient=pred_orient,"): Run(
        "kp, conf = _views(2, center=500.0)\n"
        "from advprior.fitting import PinholeCamera\n"
        "camera = PinholeCamera(1000.0, (500.0, 500.0))\n"
        "pred_rotmat = torch.eye(3).repeat(2, 24, 1, 1)\n"
        "pred_orient = torch.tensor([[torch.pi, 0.0, 0.0]]).repeat(2, 1)\n"
        "pred_betas, pred_transl = torch.zeros(2, 10), torch.tensor([[0.0, 0.0, 3.0]]).repeat(2, 1)"
    ),
    ("docs/fitting.md", "init_pose=video_pose,"): Run(
        "keypoints, confidence = _views(0, center=500.0, frames=3)\n"
        "from advprior.fitting import PinholeCamera, fit_sequence\n"
        "camera = PinholeCamera(1000.0, (500.0, 500.0))\n"
        "video_pose = torch.eye(3).repeat(3, 21, 1, 1)\n"
        "video_orient = torch.tensor([[torch.pi, 0.0, 0.0]]).repeat(3, 1)\n"
        "video_betas, video_transl = torch.zeros(10), torch.tensor([[0.0, 0.0, 3.0]]).repeat(3, 1)"
    ),
    ("docs/fitting.md", 'fit.to_amass("clip_poses.npz")'): Run(
        "keypoints, confidence = _views(0, center=500.0, frames=3)"
    ),
    ("docs/api/fitting.md", "result = fit_keypoints(keypoints, confidence, camera"): Run(
        "keypoints, confidence = _views(1)"
    ),
    ("docs/api/geodesic.md", "path = prior.interpolate(z0, z1, 16, geodesic=True)"): Run(
        "pose_a, pose_b = torch.zeros(2, 63), torch.full((2, 63), 0.1)"
    ),
    ("docs/api/head.md", "head = LatentHead(512"): Run(
        "backbone = torch.nn.Linear(10, 512); images = torch.randn(2, 10); model = backbone"
    ),
    ("docs/api/head.md", "head_u.load_state_dict(state)"): Run(
        "from advprior import LatentHead, PosePrior"
    ),
    ("docs/api/hub.md", "class MyPrior(PretrainedMixin, nn.Module):"): Run(),
    ("docs/api/interface.md", "class MyPrior(nn.Module, Prior):"): Run(),
    ("docs/api/inversion.md", "nearest = prior.project_pose(body_pose)"): Run(
        "body_pose = torch.zeros(3, 63)"
    ),
    ("docs/api/inversion.md", "encoder.fit()  # 1,500 steps"): Skip(
        "trains the encoder for 1,500 steps (about 35 s)"
    ),
    ("docs/api/latent_pose.md", "opt.step(closure)"): Run(
        "data_term = lambda body_pose: body_pose.square().sum()"
    ),
    ("docs/api/latent_pose.md", "from human_body_prior.models.vposer_model"): Skip(
        "VPoser's own code (human_body_prior), shown for comparison"
    ),
    ("docs/api/latent_pose.md", "pose = LatentPose(prior, B)"): Run("B = 2; other_params = []"),
    ("docs/api/pose_prior.md", "poses = prior.sample(16"): Run(),
    ("docs/api/rotations.md", "spin6d = R[..., :2].flatten(-2)"): Run(),
}


def _entry(block: Block) -> tuple[tuple[str, str], Run | Skip]:
    found = [(k, v) for k, v in SNIPPETS.items() if k[0] == block.page and k[1] in block.code]
    assert len(found) == 1, (
        f"{block.page}:{block.line}: {len(found)} entries of SNIPPETS match this Python block; "
        "add one (Run with the inputs the text leaves open, or Skip with a reason)"
    )
    return found[0]


def test_every_python_block_is_listed() -> None:
    blocks = [b for page in PAGES for b in python_blocks(page)]
    used = {_entry(b)[0] for b in blocks}
    assert used == set(SNIPPETS), f"entries matching no block: {set(SNIPPETS) - used}"


def _run_statements(block: Block, ns: dict) -> None:
    """Execute ``block`` statement by statement, checking the numeric shape comments."""
    lines = block.code.splitlines()
    tree = ast.parse(block.code)
    for stmt in tree.body:
        code = compile(
            ast.Module(body=[stmt], type_ignores=[]), f"{block.page}:{block.line}", "exec"
        )
        exec(code, ns)
        shape = SHAPE_COMMENT.search(lines[stmt.end_lineno - 1])
        if shape is None or not isinstance(stmt, ast.Assign):
            continue
        target = stmt.targets[0]
        if len(stmt.targets) == 1 and isinstance(target, ast.Name):
            expected = tuple(int(s) for s in shape.group(1).split(","))
            got = tuple(ns[target.id].shape)
            where = f"{block.page}:{block.line + stmt.end_lineno - 1}"
            assert got == expected, (
                f"{where}: {target.id} has shape {got}, the comment says {expected}"
            )


@pytest.fixture
def page_env(tmp_path, monkeypatch, write_dataset):
    """A fresh working directory and the helpers a page's setup lines may call."""
    import numpy as np

    from advprior import hub

    monkeypatch.chdir(tmp_path)

    def data_folder() -> None:
        """cmu/02/02_01.amc (a committed CMU clip under that name) and data/mocap30.npz."""
        source = REPO / "tests" / "data" / "mocap" / "cmu_asfamc" / "02"
        (tmp_path / "cmu" / "02").mkdir(parents=True)
        shutil.copy(source / "02.asf", tmp_path / "cmu" / "02" / "02.asf")
        shutil.copy(source / "02_03.amc", tmp_path / "cmu" / "02" / "02_01.amc")
        (tmp_path / "data").mkdir()
        pose = np.random.default_rng(0).normal(0.0, 0.2, (6, 63))
        write_dataset(tmp_path / "data" / "mocap30.npz", pose, np.array([0, 0, 0, 1, 2, 2]))

    def needs_onnx() -> None:
        pytest.importorskip("onnx", reason="the export extra (onnx) is not installed")

    ns = {"__name__": "__docs__", "torch": torch}
    exec(HELPERS, ns)
    ns.update(_data_folder=data_folder, _needs_onnx=needs_onnx)
    registered = dict(hub._REGISTRY)
    yield ns
    # The hub page's example class registered itself: undo that (only that, so that the model
    # types imported meanwhile stay registered).
    for model_type, cls in list(hub._REGISTRY.items()):
        if cls.__module__ == ns["__name__"]:
            if model_type in registered:
                hub._REGISTRY[model_type] = registered[model_type]
            else:
                del hub._REGISTRY[model_type]


@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: str(p.relative_to(REPO))
)
def test_page_snippets_run(page: Path, page_env: dict) -> None:
    ran = 0
    for block in python_blocks(page):
        _, action = _entry(block)
        if isinstance(action, Skip):
            continue
        ns = page_env
        if action.setup:
            exec(compile(action.setup, f"setup for {block.page}:{block.line}", "exec"), ns)
        _run_statements(block, ns)
        ran += 1
    if ran == 0:
        pytest.skip(f"every Python block of {page.name} needs what a test cannot supply")
