"""MLflow tracking through MlflowClient (no global active run), tolerant of an unreachable store.

Default store: SQLite at an absolute path inside the project (a relative URI breaks under
`dvc exp run --queue` and Prefect workers, stack.md §7); MLFLOW_TRACKING_URI overrides it.
A tracking failure never stops training: it is warned about once and logging goes on locally
(the stage's own JSON/CSV outputs are the record DVC reads).
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

PARENT_ENV = "GANCORE_PARENT_RUN_ID"


def default_tracking_uri(project_root: str | Path) -> str:
    """MLFLOW_TRACKING_URI if set, else sqlite:////<abs project>/mlflow.db (the workspace's, also from a DVC temp copy)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{_workspace(Path(project_root).resolve()) / 'mlflow.db'}"


def _workspace(root: Path) -> Path:
    """The real project of `dvc exp run --queue/--temp`, which runs in <project>/.dvc/tmp/exps/<id>/.

    Runs logged inside that copy would be deleted with it (stack.md §7).
    """
    parts = root.parts
    for i in range(len(parts) - 2):
        if parts[i:i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root


def artifact_root(tracking_uri: str) -> str | None:
    """For a SQLite store, the `mlartifacts/` folder beside its file (not the working directory)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


class MlflowTracker:
    """Tracker on an MLflow store.

    Args:
        experiment: experiment name (created if absent).
        tracking_uri: store URI (see default_tracking_uri).
    """

    def __init__(self, experiment: str, tracking_uri: str):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.tracking import MlflowClient

        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.run_id: str | None = None
        self._failed = False
        self.client = self._safe("connect", lambda: MlflowClient(tracking_uri=tracking_uri))

    def _safe(self, what: str, fn: Callable[[], Any]) -> Any:
        if self._failed:
            return None
        try:
            return fn()
        except Exception as e:  # the store is optional for training; never let it kill a run
            self._failed = True
            warnings.warn(f"MLflow {what} failed ({type(e).__name__}: {e}); "
                          f"tracking disabled for the rest of this run", stacklevel=3)
            return None

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp:
            return exp.experiment_id
        return self.client.create_experiment(self.experiment, artifact_location=artifact_root(self.tracking_uri))

    def start(self, run_name: str, tags: dict[str, str], resume_run_id: str | None = None) -> str | None:
        def open_run() -> str:
            if resume_run_id and self._run_exists(resume_run_id):
                self.client.update_run(resume_run_id, status="RUNNING")
                return resume_run_id
            all_tags = dict(tags)
            if os.environ.get(PARENT_ENV):
                all_tags["mlflow.parentRunId"] = os.environ[PARENT_ENV]
            run = self.client.create_run(self._experiment_id(), run_name=run_name, tags=all_tags)
            return run.info.run_id

        self.run_id = self._safe("start", open_run)
        return self.run_id

    def _run_exists(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except Exception:
            return False

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        if self.run_id:
            items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
            for i in range(0, len(items), 100):
                self._safe("log_params", lambda b=items[i:i + 100]: self.client.log_batch(self.run_id, params=b))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        if self.run_id:
            now_ms = int(time.time() * 1000)
            batch = [Metric(k, float(v), now_ms, int(step)) for k, v in metrics.items()]
            self._safe("log_metrics", lambda: self.client.log_batch(self.run_id, metrics=batch))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if not self.run_id:
            return
        path = Path(path)
        if path.is_dir():
            self._safe("log_artifacts", lambda: self.client.log_artifacts(self.run_id, str(path), artifact_path))
        else:
            self._safe("log_artifact", lambda: self.client.log_artifact(self.run_id, str(path), artifact_path))

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.run_id:
            for k, v in tags.items():
                self._safe("set_tag", lambda k=k, v=v: self.client.set_tag(self.run_id, k, str(v)))

    def close(self, status: str = "FINISHED") -> None:
        if self.run_id:
            self._safe("close", lambda: self.client.set_terminated(self.run_id, status=status))
