"""Import paths of 0.1.0 that moved in 0.2.0, kept working for one release.

``import advprior.train.data.dataset`` (old) gives the very module object of
``advprior.data.dataset`` (new), so classes and ``isinstance`` checks are shared, and emits a
:class:`DeprecationWarning`. The alias is an import hook rather than stub files at the old
paths, so the old folders are gone: nothing at an old path can drift from the new module, and
nothing in the package imports an old path (``tests/test_layout.py`` checks it).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

#: Old module (or package) path -> new path. A package entry covers its submodules too.
MOVED: dict[str, str] = {
    "advprior.train.data": "advprior.data",
    "advprior.fitting.benchmark": "advprior.eval.benchmark",
    "advprior.fitting.lbfgs": "advprior.lbfgs",
}

#: The release that drops the old paths.
REMOVED_IN = "0.3.0"


def new_name(fullname: str) -> str | None:
    """The 0.2.0 path of a 0.1.0 module path, or None where ``fullname`` did not move."""
    for old, new in MOVED.items():
        if fullname == old or fullname.startswith(old + "."):
            return new + fullname[len(old) :]
    return None


class _AliasLoader(importlib.abc.Loader):
    """Loads an old path as the module at its new path (the same object, imported once)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(
            f"{spec.name} moved to {self.target} in advprior 0.2.0; the old path goes in "
            f"{REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamped the alias spec on the shared module; give it its own back
        # so reloads and tools see the module's real name and file.
        module.__spec__ = self._spec


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 (stdlib protocol)
        target_name = new_name(fullname)
        if target_name is None:
            return None
        # Packages keep a search path so that their (old-path) submodules can be imported.
        target_spec = importlib.util.find_spec(target_name)
        if target_spec is None:
            return None
        return importlib.machinery.ModuleSpec(
            fullname,
            _AliasLoader(target_name),
            is_package=target_spec.submodule_search_locations is not None,
        )


def install() -> None:
    """Put the alias finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
