"""Prefect flows that run the pipelines of dvc.yaml: one task per `dvc repro --single-item <stage>`.

DVC stays the source of truth for what is stale (a fresh stage is skipped, and the task says so);
Prefect adds parallel branches (a two-stage pipeline's sampler and decoder train at the same time),
retries for infrastructure failures only, schedules and GPU work pools. A pipeline is the ancestry
of an `evaluate@<name>` stage (pipelines/dag.py), so a new pipeline in dvc.yaml needs no code here.
Each flow run opens one parent MLflow run; every stage run nests under it and carries the Prefect
flow-run id (GANCORE_PARENT_RUN_ID, GANCORE_FLOW_RUN_ID). Command line: `gancore flow`
(pipelines/cli.py).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import allow_failure, flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner

from gancore.utils.workspace import hold
from pipelines.dag import (
    PROJECT,
    TERMINAL,
    own_stages,
    pipeline_names,
    pipelines_graph,
    stage_graph,
    stages_at_once,
    topological,
)

MAX_THREADS = 64
"""Threads of the task runner: tasks wait for their upstream inside a thread; the work is
subprocesses."""
INFRA_SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP)
"""A stage killed by one of these lost its machine or was preempted (a SIGTERMed training saved a
checkpoint and resumes): worth a retry. Exit 2 (a GancoreError: bad params, a diverged model) is
not."""
LOCK_MESSAGES = ("Unable to acquire lock", "LockError")
DVC_HINTS = (
    "To track the changes with git, run:",
    "To enable auto staging, run:",
    "git add ",
    "dvc config core.autostage true",
    "Use `dvc push` to send your updates to remote storage.",
)
"""How DVC's advice lines start (after whitespace): useful once at a terminal, noise in every task's
log of a flow (the flow's records say what changed)."""


class StageFailed(RuntimeError):
    """`dvc repro` of one stage exited non-zero; `infrastructure` says whether a retry may cure
    it."""

    def __init__(self, stage: str, returncode: int, output: str):
        super().__init__(
            f"`dvc repro --single-item {stage}` exited {returncode}:\n{output[-3000:]}"
        )
        self.stage, self.returncode, self.output = stage, returncode, output

    @property
    def infrastructure(self) -> bool:
        """Killed by a signal (DVC itself, or the stage command DVC reports), or DVC's lock was
        held."""
        if any(m in self.output for m in LOCK_MESSAGES):
            return True
        killed = {-s for s in INFRA_SIGNALS} | {128 + s for s in INFRA_SIGNALS}
        statuses = [self.returncode, *map(int, re.findall(r"exited with (-?\d+)", self.output))]
        return any(status in killed for status in statuses)


class _Stages:
    """The stage processes this flow process runs (each `dvc repro` in a process group of its own),
    so that a stopped flow stops them too, and retries nothing while it stops."""

    def __init__(self) -> None:
        self.running: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Send `signum` to every running stage's group (a training saves a checkpoint first)."""
        self.stopping.set()
        with self.lock:
            groups = [p.pid for p in self.running]
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signum)


STAGES = _Stages()


def retry_infrastructure_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry a StageFailed from a lost process or a held lock, nothing
    else, and nothing while the flow itself is being stopped."""
    error = state.result(raise_on_failure=False)
    stopping = STAGES.stopping.is_set()
    return isinstance(error, StageFailed) and error.infrastructure and not stopping


def stage_env(
    stage: str, run_env: dict[str, str], devices: dict[str, str] | None, at_once: int = 1
) -> dict[str, str]:
    """The stage's environment: the venv's bin first on PATH (a stage's `python` is this
    interpreter),
    the flow's run ids, CUDA_VISIBLE_DEVICES from the first `devices` pattern (fnmatch over stage
    names: {"train_decoder@*": "1", "*@wavelet": "0"}) that matches, the number of stages running
    `at_once` (runtime.threads auto shares the cores among them), no DVC analytics or git hints, and
    progress as plain lines (the output is a log, not a terminal)."""
    from gancore.utils.progress import PROGRESS_ENV
    from gancore.utils.threads import CONCURRENT_ENV

    bin_dir = os.path.dirname(sys.executable)
    env = {
        **os.environ,
        **run_env,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        CONCURRENT_ENV: str(at_once),
        PROGRESS_ENV: "lines",
        "PYTHONUNBUFFERED": "1",
    }
    for pattern, gpus in (devices or {}).items():
        if fnmatch.fnmatchcase(stage, pattern):
            env["CUDA_VISIBLE_DEVICES"] = str(gpus)
            break
    return env


def dvc_action(output: str) -> str:
    """What `dvc repro` did to a stage: "ran", "restored" (from the run-cache) or "skipped"
    (fresh)."""
    if "is cached - skipping run" in output:
        return "restored"
    return "ran" if "Running stage" in output else "skipped"


@task(
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=retry_infrastructure_only,
    task_run_name="dvc repro {stage}",
)
def repro_stage(stage: str, project: str, env: dict[str, str]) -> dict[str, Any]:
    """Run exactly one DVC stage (a no-op when DVC finds it fresh).

    Returns:
        {"stage", "action": ran | restored | skipped, "start_sec", "end_sec" (epoch seconds)}.

    Raises:
        StageFailed: `dvc repro` exited non-zero (retried only when `infrastructure`).
    """
    start_sec = time.time()
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", stage]
    returncode, output = stream_output(cmd, project, env, get_run_logger().info)
    end_sec = time.time()
    if returncode != 0:
        raise StageFailed(stage, returncode, output)
    return {
        "stage": stage,
        "action": dvc_action(output),
        "start_sec": start_sec,
        "end_sec": end_sec,
    }


def stream_output(
    cmd: list[str], cwd: str, env: dict[str, str], log: Callable[[str], Any]
) -> tuple[int, str]:
    """Run `cmd`, passing each line of its output (stdout and stderr) to `log` as it appears, blank
    lines and DVC's advice (DVC_HINTS) left out; a carriage return ends a line too, so a progress
    redraw is a line of its own, never a run-on. Returns (exit status, the whole output)."""
    lines = []
    with subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,  # its own group: a stopped flow stops DVC and the stage (STAGES)
    ) as proc:
        with STAGES.lock:
            STAGES.running.add(proc)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:  # text mode: "\r", "\n" and "\r\n" each end a line
                lines.append(line)
                text = line.rstrip()
                if text and not text.lstrip().startswith(DVC_HINTS):
                    log(text)
        finally:
            with STAGES.lock:
                STAGES.running.discard(proc)
    return proc.returncode, "".join(lines)


def _parent_run(
    project: Path, pipelines: list[str], flow_run_id: str, logged: dict[str, Any]
) -> Any:
    """Open the flow's parent MLflow run in the stages' experiment (params.yaml track), or None when
    the project has no params.yaml or tracking is off."""
    params_path = project / "params.yaml"
    if not params_path.is_file():
        return None
    from gancore.config import flatten
    from gancore.params import load_params
    from gancore.tracking.mlflow_tracker import MlflowTracker, default_tracking_uri

    track = load_params(params_path, ["track"])["track"]
    if not track.enabled:
        return None
    tracker = MlflowTracker(track.experiment, default_tracking_uri(project))
    tracker.start(
        f"flow@{'+'.join(pipelines)}",
        {"dvc_stage": "flow", "pipelines": ",".join(pipelines), "prefect_flow_run_id": flow_run_id},
    )
    tracker.log_params(flatten(logged))
    return tracker


def _submit_all(
    project: str,
    graph: dict[str, list[str]],
    pipelines: list[str],
    max_parallel: int,
    env: dict[str, str],
    devices: dict[str, str] | None,
) -> dict[str, Any]:
    """Submit every stage of `graph` (the pipelines' stages), shared stages once, each after its
    upstream.

    Pipeline i (in the given order) starts after pipeline i - max_parallel has ended (either way).
    """
    owned = own_stages(graph, pipelines)
    shared = [s for s in topological(graph) if not any(s in o for o in owned.values())]
    at_once = stages_at_once(graph, pipelines, max_parallel)
    futures: dict[str, Any] = {}

    def submit(stage: str, gate: list[Any]) -> None:
        upstream = [futures[d] for d in graph[stage]]
        futures[stage] = repro_stage.submit(
            stage, project, stage_env(stage, env, devices, at_once[stage]), wait_for=upstream + gate
        )

    for stage in shared:
        submit(stage, [])
    for i, name in enumerate(pipelines):
        earlier = pipelines[i - max_parallel] if i >= max_parallel else None
        gate = [allow_failure(futures[f"{TERMINAL}@{earlier}"])] if earlier else []
        for stage in [s for s in topological(graph) if s in owned[name]]:
            submit(stage, gate)
    return futures


def run_pipelines(
    project: str,
    pipelines: list[str],
    overrides: dict[str, Any] | None,
    devices: dict[str, str] | None,
    max_parallel: int,
) -> list[dict[str, Any]]:
    """The body of both flows: apply overrides, open the parent run, run the stages, close the run.

    Raises:
        ValueError: an unknown pipeline or max_parallel < 1 (before anything ran or changed).
        WorkspaceBusy: another command holds the workspace (gancore.utils.workspace; nothing
            changed).
        ConfigError: a bad override (before any stage ran; params.yaml unchanged).
        RuntimeError: naming the stages that failed or never ran.
    """
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    graph = pipelines_graph(stage_graph(project), pipelines)
    with hold(project, f"gancore flow ({', '.join(pipelines)})", exclusive=True) as lock_env:
        return _run_held(project, graph, pipelines, overrides, devices, max_parallel, lock_env)


def _run_held(
    project: str,
    graph: dict[str, list[str]],
    pipelines: list[str],
    overrides: dict[str, Any] | None,
    devices: dict[str, str] | None,
    max_parallel: int,
    lock_env: dict[str, str],
) -> list[dict[str, Any]]:
    """run_pipelines with the workspace held (`lock_env` passed to every stage)."""
    from prefect.runtime import flow_run

    from gancore.stage.runtime import FLOW_RUN_ENV, stop_on_sigterm
    from gancore.tracking.mlflow_tracker import PARENT_ENV
    from pipelines.overrides import apply_overrides

    apply_overrides(Path(project) / "params.yaml", overrides or {})
    STAGES.stopping.clear()
    # SIGTERM (a cancelled or stopped flow run) closes the parent run as KILLED, not RUNNING forever
    previous = stop_on_sigterm("flow", "rerun the flow: finished stages are skipped or restored")
    logged = {"override": overrides or {}, "devices": devices or {}, "max_parallel": max_parallel}
    tracker = _parent_run(Path(project), pipelines, str(flow_run.id), logged)
    env = {FLOW_RUN_ENV: str(flow_run.id), **lock_env}
    if tracker is not None and tracker.run_id:
        env[PARENT_ENV] = tracker.run_id
    status = "FAILED"
    try:
        futures = _submit_all(project, graph, pipelines, max_parallel, env, devices)
        for future in futures.values():
            future.wait()
        failed = sorted(s for s, f in futures.items() if not f.state.is_completed())
        if failed:
            errors = [
                f"{s}: {futures[s].state.message}" for s in failed if futures[s].state.is_failed()
            ]
            raise RuntimeError(f"stages failed or never ran: {failed}\n" + "\n".join(errors))
        status = "FINISHED"
        return [futures[s].result() for s in futures]
    except (KeyboardInterrupt, SystemExit):
        status = "KILLED"
        STAGES.stop()  # each stage stops as under `dvc repro` (a training saves a checkpoint)
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if tracker is not None:
            tracker.close(status)


@flow(
    name="gancore-pipeline",
    flow_run_name="{pipeline}",
    task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS),
)
def pipeline(
    pipeline: str,
    project: str = str(PROJECT),
    overrides: dict[str, Any] | None = None,
    devices: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run one pipeline of dvc.yaml (the ancestry of `evaluate@<pipeline>`), branches in parallel.

    Args:
        pipeline: a pipeline name, e.g. "wavelet" (see `gancore flow list`).
        project: the project folder (holds dvc.yaml and params.yaml).
        overrides: {"train.total_kimg": 2, ...}, written into params.yaml like `dvc exp run -S`
            (pipelines/overrides.py), validated before any stage runs.
        devices: {stage pattern: CUDA_VISIBLE_DEVICES}, e.g. {"train_decoder@*": "1"}.

    Returns:
        One record per stage: stage, action (ran | restored | skipped), start_sec, end_sec.
    """
    return run_pipelines(project, [pipeline], overrides, devices, max_parallel=1)


@flow(name="gancore-compare", task_runner=ThreadPoolTaskRunner(max_workers=MAX_THREADS))
def compare(
    pipelines: list[str] | None = None,
    project: str = str(PROJECT),
    max_parallel: int = 1,
    overrides: dict[str, Any] | None = None,
    devices: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Run several pipelines for comparison: shared stages (shard, ref_stats) once, then the
    pipelines, `max_parallel` of them at a time (1: one after another; each still runs its own
    branches in parallel).

    Args:
        pipelines: names in the order to run them; None: every pipeline of dvc.yaml.
        project, overrides, devices: as for `pipeline`.
        max_parallel: how many pipelines may run at the same time.
    """
    names = pipelines or pipeline_names(stage_graph(project))
    return run_pipelines(project, list(names), overrides, devices, max_parallel)
