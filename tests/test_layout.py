"""The package's layers: no import runs upward or in a circle (docs/design.md, "Layers").

Every module of ``advprior`` belongs to one layer of :data:`LAYERS` (lowest first). Parsed with
``ast`` (nothing is imported):

- every import (module-level, including ``if TYPE_CHECKING:`` blocks, and inside functions)
  may only reach the same or a lower layer; importing ``a.b.c`` also runs the ``__init__`` of
  ``a.b``, so that counts as a dependency too;
- imports that run form no cycle, counting those inside functions: an import inside a function
  is there for import time (a heavy library, a submodule needed on one path only), never to
  hide a circle. Imports under ``if TYPE_CHECKING:`` never run and name types only (a method
  returning the type of another module that itself takes this module's type); they obey the
  layer rule but do not count as cycles;
- imports guarded by ``try: ... except ImportError`` (optional dependencies) are exempt.

A module named in a string (the lazy ``_LAZY`` tables of ``advprior`` and ``advprior.train``,
``importlib.import_module``) is imported by name when it is used: it obeys the direction rule
too. Two modules name higher ones by design, both documented in docs/design.md: the checkpoint
registry :data:`advprior.hub.pretrained.MODEL_TYPE_MODULES` (``model_type`` -> module that
defines it; re-exported by :mod:`advprior.hub`) and :mod:`advprior._moved` (0.1.0's paths ->
the modules they moved to).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "advprior"

#: Layers, lowest first; a module belongs to the entry with the longest matching prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "core",
        (
            "advprior._moved",
            "advprior._sync",
            "advprior.errors",
            "advprior.fileio",
            "advprior.lbfgs",
            "advprior.latent",
            "advprior.rotations",
            "advprior.skeleton",
            "advprior.tensors",
            "advprior.version",
        ),
    ),
    ("body", ("advprior.body",)),
    ("data", ("advprior.data",)),
    (
        "weights",
        (
            "advprior.hub.checkpoint",
            "advprior.hub.manifest",
            "advprior.hub.download",
            "advprior.hub.resolution",
            "advprior.hub.pretrained",
            "advprior.hub",
        ),
    ),
    (
        "prior",
        (
            "advprior.interface",
            "advprior.inversion",
            "advprior.geodesic",
            "advprior.prior",
            "advprior.baselines",
        ),
    ),
    ("use", ("advprior.fitting", "advprior.head", "advprior.compat", "advprior.export")),
    ("eval", ("advprior.eval",)),
    ("train", ("advprior.train",)),
    ("cli", ("advprior.commands", "advprior.cli", "advprior.__main__", "advprior")),
]


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of ``module`` (longest matching prefix); KeyError if none."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or (prefix != PACKAGE and module.startswith(prefix + "."))
            if matches and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise KeyError(module)
    return best


def modules(root: Path, package: str) -> dict[str, Path]:
    """``{dotted name: file}`` of every module under ``root / package``."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_optional(handler_types: ast.expr | None) -> bool:
    names = []
    for node in ast.walk(handler_types) if handler_types is not None else []:
        if isinstance(node, ast.Name):
            names.append(node.id)
    return bool({"ImportError", "ModuleNotFoundError"} & set(names))


def imports(path: Path, name: str, known: set[str]) -> dict[str, set[str]]:
    """``{"module-level" | "function-local" | "type-checking": modules}``: the package modules
    that ``path`` (module ``name``) imports, including the packages whose ``__init__`` those
    imports run."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, set[str]] = {
        "module-level": set(),
        "function-local": set(),
        "type-checking": set(),
    }

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:
            parent = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parent + ([node.module] if node.module else []))
        # ``from a import b`` imports the submodule a.b when there is one, else a name of a.
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]

    def add(node: ast.Import | ast.ImportFrom, into: set[str]) -> None:
        for target in targets(node):
            if target.split(".")[0] != PACKAGE:
                continue
            if target in known and target != name:
                into.add(target)
            parts = target.split(".")
            for i in range(1, len(parts)):
                dep = ".".join(parts[:i])
                # Implicitly run parents: the importer's own ancestors are already running.
                if dep in known and not (name + ".").startswith(dep + "."):
                    into.add(dep)

    def visit(body: list[ast.stmt], level: str) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                add(stmt, found[level])
            elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(stmt.body, "function-local")
            elif isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
                visit(stmt.body, "type-checking")
                visit(stmt.orelse, level)
            elif isinstance(stmt, ast.ClassDef):
                visit(stmt.body, level)
            elif isinstance(stmt, ast.Try):
                optional = any(_is_optional(h.type) for h in stmt.handlers)
                if not optional:
                    visit(stmt.body, level)
                for block in (stmt.orelse, stmt.finalbody, *[h.body for h in stmt.handlers]):
                    visit(block, level)
            else:
                for field in ("body", "orelse", "finalbody"):
                    inner = getattr(stmt, field, None)
                    if isinstance(inner, list):
                        visit(inner, level)

    visit(tree.body, "module-level")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles of ``graph``: its strongly connected components of more than one
    module (sorted names), found with Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


#: Modules that name higher modules in strings by design (the module docstring says why).
NAMES_HIGHER_BY_DESIGN = frozenset({"advprior.hub.pretrained", "advprior._moved"})


def named_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The package modules other than ``name`` that ``path`` names in a string constant of its
    own (``"advprior.train.gan"``): imported by name when the string is used. The bare
    ``"advprior"`` is the distribution's name (versions, user agents, cache folders), not
    counted."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and node.value in known
        and node.value not in (name, PACKAGE)
    }


def violations(root: Path, package: str = PACKAGE) -> list[str]:
    """Every broken rule of the module docstring, one line each."""
    found = modules(root, package)
    known = set(found)
    problems = []
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        try:
            mine = layer_of(name)
        except KeyError:
            problems.append(f"{name}: in no layer of LAYERS (add it where it belongs)")
            continue
        found_imports = imports(path, name, known)
        graph[name] = found_imports["module-level"] | found_imports["function-local"]
        for kind, deps in found_imports.items():
            for dep in sorted(deps):
                try:
                    theirs = layer_of(dep)
                except KeyError:
                    continue  # reported as a module of its own
                if theirs > mine:
                    problems.append(
                        f"{name} ({LAYERS[mine][0]}) has a {kind} import of {dep} "
                        f"({LAYERS[theirs][0]}), a higher layer"
                    )
        if name in NAMES_HIGHER_BY_DESIGN:
            continue
        for dep in sorted(named_modules(path, name, known)):
            try:
                theirs = layer_of(dep)
            except KeyError:
                continue
            if theirs > mine:
                problems.append(
                    f"{name} ({LAYERS[mine][0]}) names {dep} ({LAYERS[theirs][0]}) in a string, "
                    "a higher layer imported by name"
                )
    for cycle in cycles(graph):
        problems.append("import cycle among " + ", ".join(cycle))
    return problems


def test_no_upward_or_circular_imports() -> None:
    problems = violations(ROOT)
    assert not problems, "\n".join(problems)


def test_every_layer_prefix_names_existing_modules() -> None:
    known = set(modules(ROOT, PACKAGE))
    for _, prefixes in LAYERS:
        for prefix in prefixes:
            assert any(m == prefix or m.startswith(prefix + ".") for m in known), prefix


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_sees_cycles_upward_and_hidden_imports(tmp_path: Path) -> None:
    # A tiny package shaped like ours, with one of each fault; the checker must name each.
    _write(
        tmp_path,
        {
            "advprior/__init__.py": "",
            "advprior/errors.py": "",
            "advprior/body/__init__.py": "from advprior.body import model\n",
            "advprior/body/model.py": "from advprior.body.kinematics import fk\n",
            "advprior/body/kinematics.py": "from advprior.body import model\n",
            "advprior/data/__init__.py": "",
            "advprior/data/motion.py": "def f():\n    from advprior.eval import runner\n",
            "advprior/data/naming.py": "from advprior.data import retarget\n",
            "advprior/data/retarget.py": "def g():\n    from advprior.data import naming\n",
            "advprior/data/quality.py": "def h():\n    from advprior import __version__\n",
            "advprior/eval/__init__.py": "",
            "advprior/eval/runner.py": "",
            "advprior/fileio.py": "from advprior.hub import x\n",
            "advprior/hub.py": (
                "try:\n    from advprior.eval import runner\nexcept ImportError:\n    pass\n"
            ),
        },
    )
    problems = violations(tmp_path)
    text = "\n".join(problems) + "\n"
    assert "cycle among advprior.body.kinematics, advprior.body.model\n" in text
    assert "cycle among advprior.data.naming, advprior.data.retarget" in text
    assert "advprior.data.quality (data) has a function-local import of advprior (cli)" in text
    assert "advprior.data.motion (data) has a function-local import of advprior.eval" in text
    assert "advprior.fileio (core) has a module-level import of advprior.hub" in text
    # The optional import in hub.py is exempt; nothing else is reported.
    assert not any(p.startswith("advprior.hub") for p in problems)
    assert len(problems) == 6, text  # the upward import also counts eval's package __init__


def test_the_checker_sees_a_higher_module_imported_by_name(tmp_path: Path) -> None:
    # A lazy table (or import_module) in a low module hides an upward import from the import
    # statements: fitting loading an eval module on first use was not reported.
    _write(
        tmp_path,
        {
            "advprior/__init__.py": '_LAZY = {"fit": "advprior.fitting"}\n',
            "advprior/fitting/__init__.py": '_LAZY = {"bench": "advprior.eval.runner"}\n',
            "advprior/eval/__init__.py": "",
            "advprior/eval/runner.py": 'NAME = "advprior.fitting"\n',
        },
    )
    assert violations(tmp_path) == [
        "advprior.fitting (use) names advprior.eval.runner (eval) in a string, a higher layer "
        "imported by name"
    ]


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("advprior.data.retarget", "data"),
        ("advprior.eval.benchmark", "eval"),
        ("advprior.lbfgs", "core"),
        ("advprior", "cli"),
    ],
)
def test_layer_lookup(module: str, layer: str) -> None:
    assert LAYERS[layer_of(module)][0] == layer


def test_moved_modules_keep_their_0_1_0_paths() -> None:
    # A fresh interpreter, so that the first import of each old path happens here.
    code = """
import importlib, warnings
pairs = [("advprior.train.data", "advprior.data"),
         ("advprior.train.data.dataset", "advprior.data.dataset"),
         ("advprior.train.data.rotmath", "advprior.data.rotmath"),
         ("advprior.fitting.benchmark", "advprior.eval.benchmark"),
         ("advprior.fitting.lbfgs", "advprior.lbfgs")]
for old, new in pairs:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", DeprecationWarning)
        importlib.import_module(old)
    said = [str(w.message) for w in seen if issubclass(w.category, DeprecationWarning)]
    assert f"{old} moved to {new} in advprior 0.2.0; the old path goes in 0.3.0" in said, said
warnings.simplefilter("ignore", DeprecationWarning)
for old, new in pairs:
    assert importlib.import_module(old) is importlib.import_module(new), old
    assert importlib.import_module(new).__spec__.name == new
from advprior.train.data import load_dataset, PoseData
from advprior.train.data.rotmath import rotvec_to_matrix
from advprior.fitting.benchmark import make_views
import advprior.data
assert load_dataset is advprior.data.load_dataset
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


#: Modules split in round 24, and the modules their names moved to: every name the parts define
#: stays importable from the old module (docs/design.md), so a caller's import keeps working.
SPLIT_MODULES = {
    "advprior/hub/__init__.py": ("checkpoint", "manifest", "download", "resolution", "pretrained"),
    "advprior/fitting/smplify.py": ("inputs", "body_points", "start", "objective"),
}


def _top_level_names(path: Path) -> set[str]:
    """Names a module defines at its top level (functions, classes, assignments)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _imported_names(path: Path) -> set[str]:
    return {
        alias.asname or alias.name
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


@pytest.mark.parametrize("old", sorted(SPLIT_MODULES))
def test_a_split_module_re_exports_every_name_its_parts_define(old: str) -> None:
    """A name added to a part after the split (did_you_mean, _device_or_map_location) was
    missing from advprior.hub, whose docstring says every one is importable from it."""
    old_path = ROOT / old
    have = _imported_names(old_path) | _top_level_names(old_path)
    for part in SPLIT_MODULES[old]:
        missing = sorted(_top_level_names(old_path.parent / f"{part}.py") - have)
        assert not missing, f"{old} does not re-export {missing} from {part}.py"
