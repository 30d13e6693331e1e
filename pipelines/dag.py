"""The pipelines of dvc.yaml as stage graphs: a pipeline is an `evaluate@<name>` stage and its
ancestry.

A new pipeline in dvc.yaml (its stages ending in `evaluate@<name>`) gets a flow with no code here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
"""The gancore project (the default folder whose dvc.yaml the flows run)."""
TERMINAL = "evaluate"
"""The stage family that ends every pipeline: `evaluate@<pipeline>`."""


def stage_graph(
    project: str | Path, targets: Iterable[str] | str | None = None
) -> dict[str, list[str]]:
    """{stage: [stages it depends on]} of dvc.yaml (foreach expanded), limited to the targets'
    ancestry.

    Args:
        project: folder holding dvc.yaml.
        targets: stage names (or one name) whose upstream closure to keep; None keeps every stage.

    Raises:
        ValueError: a target is not a stage of dvc.yaml (the message lists the stages).
    """
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        graph = repo.index.graph  # edge a -> b: stage a depends on stage b
        full = {s.name: sorted(d.name for d in graph.successors(s)) for s in graph.nodes}
    return (
        full
        if targets is None
        else subgraph(full, [targets] if isinstance(targets, str) else targets)
    )


def upstream(graph: dict[str, list[str]], target: str) -> set[str]:
    """`target` and every stage it depends on, directly or not."""
    seen, todo = set(), [target]
    while todo:
        stage = todo.pop()
        if stage not in seen:
            seen.add(stage)
            todo += graph[stage]
    return seen


def subgraph(graph: dict[str, list[str]], targets: Iterable[str]) -> dict[str, list[str]]:
    """The part of `graph` the targets need; stages shared by several targets appear once."""
    keep: set[str] = set()
    for target in targets:
        if target not in graph:
            raise ValueError(f"no stage {target!r} in dvc.yaml; have {sorted(graph)}")
        keep |= upstream(graph, target)
    return {s: deps for s, deps in graph.items() if s in keep}


def pipeline_names(graph: dict[str, list[str]]) -> list[str]:
    """The pipelines of a stage graph: every `<name>` of an `evaluate@<name>` stage, sorted."""
    prefix = f"{TERMINAL}@"
    return sorted(s.removeprefix(prefix) for s in graph if s.startswith(prefix))


def pipelines_graph(graph: dict[str, list[str]], pipelines: Iterable[str]) -> dict[str, list[str]]:
    """The union of the pipelines' stage graphs.

    Raises:
        ValueError: naming an unknown pipeline and listing the known ones.
    """
    pipelines = list(pipelines)
    known = pipeline_names(graph)
    unknown = [p for p in pipelines if p not in known]
    if unknown or not pipelines:
        raise ValueError(f"unknown pipeline(s) {unknown or pipelines!r} in dvc.yaml; have {known}")
    return subgraph(graph, [f"{TERMINAL}@{p}" for p in pipelines])


def own_stages(graph: dict[str, list[str]], pipelines: list[str]) -> dict[str, set[str]]:
    """{pipeline: the stages only this pipeline needs}; stages several need (shard, ref_stats) are
    in none."""
    closures = {p: upstream(graph, f"{TERMINAL}@{p}") for p in pipelines}
    return {
        p: {s for s in stages if all(s not in c for q, c in closures.items() if q != p)}
        for p, stages in closures.items()
    }


def topological(graph: dict[str, list[str]]) -> list[str]:
    """Stage names, each after all it depends on (ties in name order)."""
    order: list[str] = []
    while len(order) < len(graph):
        ready = sorted(s for s, deps in graph.items() if s not in order and set(deps) <= set(order))
        if not ready:
            raise ValueError(f"dvc.yaml has a cycle among {sorted(set(graph) - set(order))}")
        order += ready
    return order


def depths(graph: dict[str, list[str]]) -> dict[str, int]:
    """{stage: length of its longest chain of upstream stages} (0 for a stage with none)."""
    out: dict[str, int] = {}
    for stage in topological(graph):
        out[stage] = 1 + max((out[d] for d in graph[stage]), default=-1)
    return out


def stages_at_once(
    graph: dict[str, list[str]], pipelines: list[str], max_parallel: int
) -> dict[str, int]:
    """{stage: how many stages may run beside it, itself included}: the stages at the same depth
    (shared ones, plus those of the up to `max_parallel` pipelines running together). Stages at one
    depth never wait for each other, so a flow runs them at the same time when their inputs are
    ready;
    this sizes each stage's share of the cores (runtime.threads auto)."""
    depth = depths(graph)
    owned = own_stages(graph, pipelines)
    together = min(max_parallel, len(pipelines))
    width = {}
    for d in set(depth.values()):
        shared = sum(
            1 for s, sd in depth.items() if sd == d and not any(s in o for o in owned.values())
        )
        own = max((sum(1 for s in o if depth[s] == d) for o in owned.values()), default=0)
        width[d] = max(1, shared + together * own)
    return {s: width[d] for s, d in depth.items()}
