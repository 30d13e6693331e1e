"""Prefect flows that run the DVC pipeline: one task per `dvc repro -s <stage>`, DAG read from dvc.yaml.

DVC stays the source of truth for what is stale (a fresh stage is a no-op); Prefect adds retries,
parallel branches (independent stages run at the same time), schedules and work pools. Every stage
run joins one parent MLflow run per flow run (GANCORE_PARENT_RUN_ID).

    python -m pipelines.flows run                      # the whole pipeline, once
    python -m pipelines.flows run --target evaluate@fastgan
    python -m pipelines.flows serve --cron "0 2 * * *"  # a schedule served by this process
    python -m pipelines.flows deploy --pool gpu-pool    # a deployment for `prefect worker start`
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from prefect import flow, get_run_logger, task
from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings

from gancore.tracking.mlflow_tracker import PARENT_ENV

PROJECT = Path(__file__).resolve().parents[1]
EPHEMERAL_STARTUP_SEC = 90


def stage_graph(project: str | Path, target: str | None = None) -> dict[str, list[str]]:
    """{stage: [stages it depends on]} of dvc.yaml (foreach expanded), limited to `target`'s ancestry."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        graph = repo.index.graph  # edge a -> b: stage a depends on stage b
        names = {s: s.name for s in graph.nodes}
        if target is not None:
            roots = [s for s in graph.nodes if names[s] == target]
            if not roots:
                raise ValueError(f"no stage {target!r} in {project}/dvc.yaml; have {sorted(names.values())}")
            graph = graph.subgraph({roots[0], *nx.descendants(graph, roots[0])})
        return {names[s]: sorted(names[d] for d in graph.successors(s)) for s in graph.nodes}


def _stage_env() -> dict[str, str]:
    """The venv's bin first on PATH, so `python` in a stage command is this interpreter's."""
    bin_dir = os.path.dirname(sys.executable)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1"}


@task(retries=1, retry_delay_seconds=10, task_run_name="dvc repro -s {stage}")
def repro_stage(stage: str, project: str, parent_run_id: str | None = None) -> str:
    """Run exactly one DVC stage (a no-op when DVC finds it fresh)."""
    env = _stage_env()
    if parent_run_id:
        env[PARENT_ENV] = parent_run_id
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", stage]
    done = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    get_run_logger().info("%s\n%s", done.stdout[-4000:], done.stderr[-4000:])
    if done.returncode != 0:
        raise RuntimeError(f"`dvc repro -s {stage}` exited {done.returncode}: {done.stderr[-2000:]}")
    return stage


def _parent_run(project: Path, experiment: str) -> tuple[object | None, str | None]:
    """Open the flow's parent MLflow run, or (None, None) when tracking is off."""
    if not experiment:
        return None, None
    from gancore.tracking.mlflow_tracker import MlflowTracker, default_tracking_uri

    tracker = MlflowTracker(experiment, default_tracking_uri(project))
    return tracker, tracker.start("flow", {"dvc_stage": "flow"})


@flow(name="gancore-pipeline")
def pipeline(project: str = str(PROJECT), target: str | None = None,
             mlflow_experiment: str = "gancore") -> list[str]:
    """Run the DVC pipeline (or `target` and its upstream stages); independent stages run in parallel.

    Args:
        project: the project folder (holds dvc.yaml).
        target: a stage name such as "evaluate@fastgan"; None runs every stage.
        mlflow_experiment: experiment of the parent run; "" for none.

    Returns:
        Stage names in the order they were submitted (topological).
    """
    graph = stage_graph(project, target)
    tracker, parent_id = _parent_run(Path(project), mlflow_experiment)
    futures: dict[str, object] = {}
    status = "FAILED"
    try:
        for stage in _topological(graph):
            upstream = [futures[d] for d in graph[stage]]
            futures[stage] = repro_stage.submit(stage, project, parent_id, wait_for=upstream)
        done = [f.result() for f in futures.values()]
        status = "FINISHED"
        return done
    finally:
        if tracker is not None:
            tracker.close(status)


def _topological(graph: dict[str, list[str]]) -> list[str]:
    order: list[str] = []
    while len(order) < len(graph):
        ready = sorted(s for s, deps in graph.items() if s not in order and set(deps) <= set(order))
        if not ready:
            raise ValueError(f"dvc.yaml has a cycle among {sorted(set(graph) - set(order))}")
        order += ready
    return order


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "serve", "deploy"])
    parser.add_argument("--target", default=None, help="a dvc.yaml stage; default: all")
    parser.add_argument("--cron", default=None, help="schedule for serve/deploy, e.g. '0 2 * * *'")
    parser.add_argument("--pool", default="gpu-pool", help="work pool for deploy")
    parser.add_argument("--name", default="gancore-nightly", help="deployment name")
    args = parser.parse_args(argv)
    params = {"project": str(PROJECT), "target": args.target}
    if args.command == "run":
        # A first run with a fresh PREFECT_HOME migrates its database: 20 s is too short on 2 cores.
        with temporary_settings({PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: EPHEMERAL_STARTUP_SEC}):
            print(pipeline(**params))
    elif args.command == "serve":
        pipeline.serve(name=args.name, cron=args.cron, parameters=params)
    else:
        pipeline.from_source(source=str(PROJECT), entrypoint="pipelines/flows.py:pipeline").deploy(
            name=args.name, work_pool_name=args.pool, cron=args.cron, parameters=params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
