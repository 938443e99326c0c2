"""What ``pip install advprior`` gets: the sdist and the wheel built from this source tree.

The wheel must hold the whole package (every module, the bundled weights pinned by the manifest,
the manifest itself, the licence, the console script) and nothing else; the sdist must hold what
the tests read (``tests/`` with its data, ``docs/``, ``examples/``, ``benchmarks/``), so that
``pytest`` runs in an unpacked sdist, and rebuild the same wheel. The unpacked wheel alone (no
checkout on the path) loads the bundled priors offline and writes no file.

Builds with the installed setuptools (``setuptools.build_meta``, no build isolation: nothing is
downloaded) in a copy of the tree, so the checkout gets no ``build/`` or ``*.egg-info``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Never part of a release: caches, environments, build outputs and (top level) the datasets and
# training runs that .gitignore keeps out of the repository.
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".pytest_cache"}
SKIP_DIRS |= {".ruff_cache", ".hypothesis", ".mypy_cache"}
SKIP_TOP = {"data", "runs", "outputs"}
# What the tests read besides the package (the sdist must carry them).
SDIST_TREES = ("tests", "docs", "examples", "benchmarks", "scripts")
SDIST_FILES = ("README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml", "weights_manifest.json")

pytestmark = pytest.mark.slow


def _ignore(folder: str, names: list[str]) -> set[str]:
    top = Path(folder).resolve() == REPO
    return {
        n
        for n in names
        if n in SKIP_DIRS or n.endswith((".egg-info", ".pyc")) or (top and n in SKIP_TOP)
    }


def _source_files(root: Path, tree: str) -> set[str]:
    """Files under ``root/tree`` as the copy holds them (relative posix paths)."""
    return {
        p.relative_to(root).as_posix()
        for p in (root / tree).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def _build(source: Path, out: Path) -> tuple[Path, Path | None]:
    """``(wheel, sdist)`` built from ``source`` by setuptools' PEP 517 hooks (sdist: only when
    ``out`` has none yet)."""
    script = (
        "import sys, setuptools.build_meta as b\n"
        "out = sys.argv[1]\n"
        "if sys.argv[2] == '1': b.build_sdist(out)\n"
        "b.build_wheel(out)\n"
    )
    want_sdist = not list(out.glob("*.tar.gz"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-c", script, str(out), "1" if want_sdist else "0"],
        cwd=source,
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0, res.stderr[-4000:]
    wheel = next(out.glob("*.whl"))
    sdist = next(out.glob("*.tar.gz"), None)
    return wheel, sdist


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    setuptools = pytest.importorskip("setuptools")  # in the dev extra
    major = int(setuptools.__version__.split(".")[0])
    if major < 77:  # pyproject.toml's build-system.requires
        pytest.skip(f"setuptools {setuptools.__version__} < 77 cannot build this project")
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=_ignore)
    wheel, sdist = _build(src, tmp / "dist")
    assert sdist is not None
    return {"src": src, "wheel": wheel, "sdist": sdist, "tmp": tmp}


def test_wheel_holds_the_package_and_its_pinned_weights(built) -> None:
    src = built["src"]
    with zipfile.ZipFile(built["wheel"]) as whl:
        names = set(whl.namelist())
        read = whl.read
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        dist_info = info.split("/", 1)[0]
        assert {n.split("/", 1)[0] for n in names} == {"advprior", dist_info}
        assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
        modules = {p for p in _source_files(src, "advprior") if p.endswith(".py")}
        assert modules and modules <= names, sorted(modules - names)
        assert "advprior = advprior.cli:main" in read(info).decode()
        assert f"{dist_info}/licenses/LICENSE" in names
        assert read(f"{dist_info}/licenses/LICENSE") == (src / "LICENSE").read_bytes()
        # the bundled weights are CC BY-SA 3.0 (their data's licence): the metadata says so and
        # the notice with the attribution travels with the wheel
        weights_notice = f"{dist_info}/licenses/LICENSE-WEIGHTS.md"
        assert read(weights_notice) == (src / "LICENSE-WEIGHTS.md").read_bytes()
        metadata = read(f"{dist_info}/METADATA").decode()
        assert "License-Expression: MIT AND CC-BY-SA-3.0" in metadata
        # the packaged manifest is the top-level one (a symlink in the checkout, a file here)
        manifest = read("advprior/weights_manifest.json")
        assert manifest == (src / "weights_manifest.json").read_bytes()
        models = json.loads(manifest)["models"]
        bundled = {a: e for a, e in models.items() if e.get("bundled")}
        assert bundled, "the manifest bundles no model"
        for alias, entry in bundled.items():
            folder = f"advprior/{entry['bundled']}"
            weights = read(f"{folder}/{entry['filename']}")
            config = read(f"{folder}/{entry['config_filename']}")
            assert hashlib.sha256(weights).hexdigest() == entry["sha256"], alias
            assert hashlib.sha256(config).hexdigest() == entry["config_sha256"], alias
            assert f"{folder}/README.md" in names, f"{alias}: no model card"
        # every data file of the package folder ships (weights, cards, configs, the manifest)
        data = {p for p in _source_files(src, "advprior") if not p.endswith(".py")}
        assert data <= names, sorted(data - names)


def test_sdist_holds_what_the_tests_read_and_rebuilds_the_wheel(built) -> None:
    src, tmp = built["src"], built["tmp"]
    with tarfile.open(built["sdist"]) as tar:
        members = tar.getmembers()
        root = members[0].name.split("/", 1)[0]
        names = {m.name.split("/", 1)[1] for m in members if "/" in m.name}
        assert not [m.name for m in members if m.issym() or m.islnk()]
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp / "unpacked", **safe)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert not [n for n in names if n.split("/", 1)[0] in SKIP_TOP | {".venv", ".git"}]
    assert set(SDIST_FILES) <= names, sorted(set(SDIST_FILES) - names)
    for tree in ("advprior", *SDIST_TREES):
        missing = _source_files(src, tree) - names
        assert not missing, f"{tree}: {sorted(missing)[:10]}"
    # the wheel built from the unpacked sdist is the wheel built from the tree
    rebuilt, _ = _build(tmp / "unpacked" / root, tmp / "dist-from-sdist")
    with zipfile.ZipFile(built["wheel"]) as a, zipfile.ZipFile(rebuilt) as b:
        assert set(a.namelist()) == set(b.namelist())
        for name in a.namelist():
            if not name.endswith("/RECORD"):
                assert a.read(name) == b.read(name), name


def test_unpacked_wheel_loads_the_bundled_priors_offline_and_writes_nothing(built) -> None:
    tmp = built["tmp"]
    site, home, work = tmp / "site", tmp / "home", tmp / "work"
    for folder in (home, work):
        folder.mkdir()
    with zipfile.ZipFile(built["wheel"]) as whl:
        whl.extractall(site)  # a pure-Python wheel unpacked is what pip installs
    script = (
        "import sys, torch, advprior\n"
        "from advprior import PosePrior, load_pretrained\n"
        "print(advprior.__file__)\n"
        "p = PosePrior.from_pretrained('gan-s')\n"
        "print(tuple(p.sample(2, generator=torch.Generator().manual_seed(0)).shape))\n"
        "for alias in ('gan-u', 'gan-n', 'vae', 'gmm'): load_pretrained(alias)\n"
    )
    keep = ("PATH", "LANG", "LC_ALL", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env |= {"PYTHONPATH": str(site), "HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env |= {"PYTHONDONTWRITEBYTECODE": "1", "XDG_CACHE_HOME": str(home / ".cache")}
    res = subprocess.run(
        [sys.executable, "-c", script], cwd=work, capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr[-4000:]
    lines = res.stdout.splitlines()
    assert Path(lines[0]).resolve() == (site / "advprior" / "__init__.py").resolve()
    assert lines[1:] == ["(2, 63)"]
    written = [p for d in (home, work) for p in d.rglob("*")]
    assert written == [], written


# Optional extras (viz, eval, train, export) and torch's compiler stack (torch._dynamo, which
# roma imports: about a second) are imported where they are used, never by ``import advprior``.
NOT_AT_IMPORT = ("matplotlib", "onnx", "onnxruntime", "scipy", "sklearn", "tensorboard")
NOT_AT_IMPORT += ("roma", "torch._dynamo")


def test_import_advprior_loads_no_optional_or_compiler_module_and_writes_nothing(
    tmp_path: Path,
) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    script = (  # `import advprior` alone imports not even torch (the CLI answers --help at once)
        "import sys, advprior, advprior.cli\n"
        f"print(sorted(m for m in {NOT_AT_IMPORT + ('torch',)!r} if m in sys.modules))\n"
        "from advprior import PosePrior\n"
        "PosePrior.from_pretrained('gan-s').sample(2)\n"  # sampling needs none of them either
        f"print(sorted(m for m in {NOT_AT_IMPORT!r} if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env |= {"PYTHONDONTWRITEBYTECODE": "1", "XDG_CACHE_HOME": str(home / ".cache")}
    env.pop("ADVPRIOR_CACHE", None)
    res = subprocess.run(
        [sys.executable, "-c", script], cwd=work, capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr[-4000:]
    assert res.stdout.splitlines() == ["[]", "[]"], res.stdout
    written = [p for d in (home, work) for p in d.rglob("*")]
    assert written == [], written


# Lowest releases that have what advprior calls, found by running the tests against them: a
# lower floor in pyproject.toml lets pip keep an older release that fails at run time.
DEPENDENCY_FLOORS = {
    # the oldest releases run for real (README "Tested minimum versions"); fallbacks for what
    # they lack are in advprior/version.py
    "torch": (2, 1),
    "numpy": (1, 24),
    "smplx": (0, 1, 28),
    "safetensors": (0, 4),
    # roma.euler_to_rotmat (advprior.data.rotmath, every BVH and ASF/AMC import) is new in 1.5.0
    "roma": (1, 5),
    # 0.23's huggingface_hub.errors lacks the lookup errors; advprior.hub falls back to .utils
    "huggingface_hub": (0, 23),
}


def test_declared_dependency_floors_have_what_advprior_calls(built) -> None:
    import re

    with zipfile.ZipFile(built["wheel"]) as whl:
        meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in whl.read(meta).decode().splitlines()
            if line.startswith("Requires-Dist:") and "extra ==" not in line
        ]
    floors = {}
    for req in requires:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*>=\s*([0-9.]+)", req)
        assert match, f"dependency {req!r} has no plain >= floor"
        floors[match[1]] = tuple(int(p) for p in match[2].split("."))
    for name, lowest in DEPENDENCY_FLOORS.items():
        assert floors[name] >= lowest, f"{name}>={floors[name]} allows releases that fail"
