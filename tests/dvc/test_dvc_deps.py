"""Every stage's deps cover every project module its command imports (issue 17: a changed default in
gancore/config.py must rerun train@fastgan), computed from the real import graph: every import
statement of every module (function-level ones too), plus the method packages the registry
discovers at run time. A dep directory covers its files.
"""

from __future__ import annotations

import ast
import functools
import shlex
import sys
from pathlib import Path

import pytest

from gancore.registry import list_methods
from tests.dvcproject import LAUNCHER, ROOT, full_project

_, FULL = full_project()


def _module_file(name: str) -> Path | None:
    """The project file of module `name` (relative to ROOT), None outside the project."""
    for path in (Path(*name.split(".")).with_suffix(".py"), Path(*name.split("."), "__init__.py")):
        if (ROOT / path).is_file():
            return path
    return None


@functools.cache
def _imports(path: Path, module: str) -> frozenset[str]:
    """Modules named by the import statements of `path` (relative ones resolved), and the parents
    and `from X import name` submodule candidates of each."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            names |= {base, *(f"{base}.{a.name}" for a in node.names)}
    return frozenset(names)


@functools.cache
def _dynamic_imports() -> dict[str, set[str]]:
    """Imports no statement names: the registry imports every method package it discovers."""
    list_methods()
    methods = {m for m in sys.modules if m.startswith("gancore.methods.") and m.count(".") == 2}
    return {"gancore.registry": methods}


def import_closure(module: str) -> set[Path]:
    """Project files `python -m <module>` can import, transitively."""
    dynamic = _dynamic_imports()
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parents run first
        todo += [*_imports(path, name), *dynamic.get(name, ())]
    return {_module_file(name) for name in seen}


def _covered(path: Path, deps: set[str]) -> bool:
    return any(path == Path(d) or Path(d) in path.parents for d in deps)


def test_closure_sees_config_and_function_level_imports():
    """The walk itself: train imports the config schema and its loader, and the loader's
    function-level import of the registry brings every method package in (discovered, not named in
    any statement)."""
    closure = import_closure("stages.train")
    assert {Path("gancore/config.py"), Path("gancore/params.py")} <= closure
    assert Path("gancore/registry.py") in closure
    assert {Path("gancore/methods", m, "__init__.py") for m in list_methods()} <= closure
    assert Path("gancore/cli.py") not in closure


@pytest.mark.parametrize("name", sorted(FULL))
def test_deps_cover_every_imported_module(name):
    stage = FULL[name]
    argv = shlex.split(stage.cmd)
    assert argv[:2] == [LAUNCHER, "-m"]
    deps = {d.def_path for d in stage.deps}
    missing = sorted(str(p) for p in import_closure(argv[2]) if not _covered(p, deps))
    assert not missing, f"{name} imports modules its deps miss: {missing}"
