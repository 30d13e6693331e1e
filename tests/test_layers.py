"""The import graph of the project's code points down: no cycles, and no module imports a layer
above its own. The graph is read from the source (ast: nothing is imported or run), lazy imports
inside functions included, imports only for type checkers (`if TYPE_CHECKING:`) left out."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gancore", "stages", "pipelines", "benchmarks")

LAYERS: list[tuple[str, ...]] = [
    ("gancore", "gancore.errors", "gancore.utils", "gancore.tracking.base", "gancore.compress.dwt"),
    ("gancore.config",),
    ("gancore.nn", "gancore.losses", "gancore.transforms"),
    ("gancore.artifacts", "gancore.sampling"),
    ("gancore.data",),
    ("gancore.training",),
    ("gancore.eval",),
    ("gancore.registry", "gancore.methods"),
    ("gancore.methods.stylegan2_family",),
    (
        "gancore.methods.fastgan",
        "gancore.methods.pixelfolder",
        "gancore.methods.cips",
        "gancore.methods.inrpatch",
    ),
    ("gancore.compress",),
    ("gancore.twostage",),
    ("gancore.params",),
    ("gancore.generator",),
    ("gancore.tracking",),
    ("gancore.verdicts",),
    ("gancore.compare", "gancore.profile"),
    ("gancore.stage.runtime",),
    ("gancore.stage",),
    ("gancore.cli", "stages", "pipelines", "benchmarks"),
]
"""Module-name prefixes by layer, lowest first: a module belongs to the layer of its longest
matching prefix and may import its own layer and the ones below. The one list of the layers."""

PENDING: dict[tuple[str, str], str] = {}
"""Imports known to break the layers, each with the work that removes it; listed edges must exist
(a removed one is struck off here) and are the only exceptions."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement in `tree` may refer to (modules and module.attr)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join([*here, *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    """{module: the project modules it imports} over PACKAGES."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = {resolve(n) for n in _imported_names(tree, name, path.name == "__init__.py")}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest prefix of `module`."""
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add its package to LAYERS")
    return best


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected set of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                members.append(w)
                if w == v:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _without_pending(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {m: {t for t in targets if (m, t) not in PENDING} for m, targets in graph.items()}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_is_read_from_the_source(graph):
    """The reader sees plain, lazy, relative and from-imports (a reader seeing none would pass)."""
    assert "gancore.training.step" in graph["gancore.training.trainer"]
    assert "gancore.registry" in graph["gancore.generator"]
    assert graph["gancore.errors"] == set()
    assert len(graph) > 100


def test_no_import_cycles(graph):
    assert _cycles(_without_pending(graph)) == []


def test_no_module_imports_a_layer_above_its_own(graph):
    upward = sorted(
        f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
        for m, targets in _without_pending(graph).items()
        for t in targets
        if layer_of(t) > layer_of(m)
    )
    assert upward == []


REGISTERED_PACKAGES = ("gancore.compress.codecs", "gancore.twostage.archs")
"""Packages of registered entries (codecs, decoder architectures): one module each, none importing
another, so adding one touches only its own module."""


@pytest.mark.parametrize("package", REGISTERED_PACKAGES)
def test_no_registered_entry_imports_another(graph, package):
    members = {m for m in graph if m.startswith(f"{package}.")}
    assert members, package
    assert not sorted((m, t) for m in members for t in graph[m] if t in members or t == package)


def test_every_pending_exception_still_exists(graph):
    assert [edge for edge in PENDING if edge[1] not in graph.get(edge[0], set())] == []


def test_the_checks_catch_a_cycle_and_an_upward_import():
    """The checks on a made-up graph: a cycle and an import from nn up into training are found."""
    made_up = {"gancore.nn.a": {"gancore.training.b"}, "gancore.training.b": {"gancore.nn.a"}}
    assert _cycles(made_up) == [["gancore.nn.a", "gancore.training.b"]]
    assert layer_of("gancore.training.b") > layer_of("gancore.nn.a")
    assert layer_of("gancore.methods.fastgan.loss") > layer_of("gancore.methods.stylegan2_family")


def test_the_training_loop_reports_through_callbacks_and_never_meets_mlflow():
    """The Tracker interface sits below the training layer and the MLflow adapter above it; no
    module below the adapter imports mlflow or the adapter, and `gancore.training` imports no
    tracker at all: the Trainer reports (Trainer.report -> Callback.on_metrics) and the stage's
    runtime owns the run (gancore/stage/runtime.py run_training, ReportTo)."""
    base, adapter = layer_of("gancore.tracking.base"), layer_of("gancore.tracking")
    assert base < layer_of("gancore.training") < adapter
    offending = []
    for name, path in _modules().items():
        if not name.startswith("gancore.") or layer_of(name) >= adapter:
            continue
        imported = _imported_names(ast.parse(path.read_text()), name, path.name == "__init__.py")
        for target in sorted(imported):
            to_mlflow = target == "mlflow" or target.startswith("mlflow.")
            to_adapter = target.startswith("gancore.tracking.") and not target.startswith(
                "gancore.tracking.base"
            )
            to_tracker = name.startswith("gancore.training") and target.startswith(
                "gancore.tracking"
            )
            if to_mlflow or to_adapter or to_tracker:
                offending.append(f"{name} imports {target}")
    assert offending == []
