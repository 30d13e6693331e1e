"""MLflow tracking through MlflowClient (no global active run), tolerant of an unreachable store.

Default store: SQLite at an absolute path inside the project (a relative URI breaks under
`dvc exp run --queue` and Prefect workers, docs/stack.md); MLFLOW_TRACKING_URI overrides it.
A tracking failure never stops training: it is warned about once, and every record the store did
not take (run start, params, metrics, tags, artifacts, run end) is kept in order, in memory and in a
local JSONL file, and sent when the store answers again (tried at most every `retry_sec`, and at
close). A store that never answers leaves the file as the run's record: the next run that reaches
the store sends it (replay_orphans), or `replay_pending` does.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

from gancore.errors import GancoreError
from gancore.utils.fsio import parse_document

PARENT_ENV = "GANCORE_PARENT_RUN_ID"
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
"""The experiment tag that opens it in the MLflow UI's model-training view (not its GenAI view)."""


def default_tracking_uri(project_root: str | Path) -> str:
    """MLFLOW_TRACKING_URI if set, else sqlite:////<abs project>/mlflow.db (the workspace's, also
    from a DVC temp copy)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{_workspace(Path(project_root).resolve()) / 'mlflow.db'}"


def _workspace(root: Path) -> Path:
    """The real project of `dvc exp run --queue/--temp`, which runs in
    <project>/.dvc/tmp/exps/<id>/.

    Runs logged inside that copy would be deleted with it (docs/stack.md, pitfalls).
    """
    parts = root.parts
    for i in range(len(parts) - 2):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    return root


def artifact_root(tracking_uri: str) -> str | None:
    """For a SQLite store, the `mlartifacts/` folder beside its file (not the working directory)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return (Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


class MlflowTracker:
    """Tracker on an MLflow store that catches up after the store was locked or unreachable.

    Args: experiment: experiment name (created if absent). tracking_uri: store URI (see
    default_tracking_uri). pending_dir: folder of the JSONL file of records the store has not taken
    yet (None: memory only). retry_sec: least seconds between attempts while the store fails (close
    always tries).
    """

    def __init__(
        self,
        experiment: str,
        tracking_uri: str,
        pending_dir: str | Path | None = None,
        retry_sec: float = 60.0,
    ):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # An unreachable server must not hold training for minutes (MLflow's default is 7 retries).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self.run_id: str | None = None
        self.client: Any = None
        self.pending: list[dict[str, Any]] = []
        self.pending_dir = Path(pending_dir) if pending_dir is not None else None
        self.pending_file: Path | None = None
        self.retry_sec = retry_sec
        self._retry_at = 0.0
        self.failing = False  # True from a failure until the store took every pending record
        self._logged: dict[str, dict[str, int]] = {}  # run id -> key -> last step in the store

    # -- the queue of records ---------------------------------------------------------------------

    def _submit(self, op: dict[str, Any]) -> None:
        if op["op"] != "start":
            op["run_id"] = self.run_id  # None while the start itself is pending
        self.pending.append(op)
        if self.pending_file is not None:
            with open(self.pending_file, "a") as f:
                f.write(json.dumps(op) + "\n")
        self.flush(force=False)

    def flush(self, force: bool = True) -> bool:
        """Send the pending records in order; True when none is left."""
        if not force and self.failing and time.monotonic() < self._retry_at:
            return False
        n_sent = 0
        while self.pending:
            try:
                self._apply(self.pending[0])
            except Exception as e:  # the store is optional for training; never let it kill a run
                self._on_failure(e)
                break
            self.pending.pop(0)
            n_sent += 1
        if not self.pending and self.failing:
            self.failing = False
            warnings.warn(
                f"MLflow store {self.tracking_uri} answers again: {n_sent} records caught up",
                stacklevel=3,
            )
        if n_sent:
            self._write_pending()
        return not self.pending

    def _on_failure(self, e: Exception) -> None:
        self._retry_at = time.monotonic() + self.retry_sec
        if self.failing:
            return
        self.failing = True
        if self.pending_dir is not None and self.pending_file is None:
            self.pending_dir.mkdir(parents=True, exist_ok=True)
            self.pending_file = (
                self.pending_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.jsonl"
            )
            self._write_pending()
        kept = f"in memory and {self.pending_file}" if self.pending_file else "in memory"
        warnings.warn(
            f"MLflow store {self.tracking_uri} failed ({type(e).__name__}: {e}); training goes "
            f"on, records are kept {kept} and sent when the store answers",
            stacklevel=4,
        )

    def _write_pending(self) -> None:
        if self.pending_file is None:
            return
        if not self.pending:
            self.pending_file.unlink(missing_ok=True)
            return
        from gancore.utils.fsio import atomic_write

        lines = "".join(json.dumps(op) + "\n" for op in self.pending)
        atomic_write(self.pending_file, lambda f: f.write(lines), mode="w")

    # -- applying one record to the store ---------------------------------------------------------

    def _apply(self, op: dict[str, Any]) -> None:
        from mlflow.entities import Metric, Param, RunTag

        if self.client is None:
            from mlflow.tracking import MlflowClient

            self.client = MlflowClient(tracking_uri=self.tracking_uri)
        kind, run_id = op["op"], op.get("run_id") or self.run_id
        if kind == "start":
            self.run_id = self._open_run(
                op["run_name"], op["tags"], op["resume_run_id"], op.get("start_ms")
            )
        elif run_id is None:
            return  # only reachable when a start was never submitted
        elif kind == "params":
            items = [Param(k, v) for k, v in op["params"].items()]
            for i in range(0, len(items), 100):
                self.client.log_batch(run_id, params=items[i : i + 100])
        elif kind == "metrics":
            logged = self._logged_steps(run_id)
            batch = [
                Metric(k, v, op["time_ms"], op["step"])
                for k, v in op["metrics"].items()
                if op["step"] > logged.get(k, -1)
            ]
            if batch:
                self.client.log_batch(run_id, metrics=batch)
        elif kind == "tags":
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in op["tags"].items()])
        elif kind == "artifact":
            log = (
                self.client.log_artifacts if Path(op["path"]).is_dir() else self.client.log_artifact
            )
            log(run_id, op["path"], op["artifact_path"])
        elif kind == "dataset":
            self.client.log_inputs(run_id, datasets=[_dataset_input(**op["dataset"])])
        elif kind == "close":
            self.client.set_terminated(run_id, status=op["status"])

    def _experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            return self.client.create_experiment(
                self.experiment,
                artifact_location=artifact_root(self.tracking_uri),
                tags=EXPERIMENT_KIND,
            )
        for key, value in EXPERIMENT_KIND.items():  # an experiment made before the tag existed
            if exp.tags.get(key) != value:
                self.client.set_experiment_tag(exp.experiment_id, key, value)
        return exp.experiment_id

    def _open_run(
        self,
        run_name: str,
        tags: dict[str, str],
        resume_run_id: str | None,
        start_ms: int | None = None,
    ) -> str:
        from mlflow.entities import RunTag

        all_tags = dict(tags)
        if os.environ.get(PARENT_ENV):
            all_tags["mlflow.parentRunId"] = os.environ[PARENT_ENV]
        if resume_run_id and self._run_exists(resume_run_id):
            self.client.update_run(resume_run_id, status="RUNNING")
            # A resumed run is this execution's: its DVC experiment, flow run and commit replace the
            # old.
            self.client.log_batch(resume_run_id, tags=[RunTag(k, v) for k, v in all_tags.items()])
            self._logged_steps(resume_run_id)  # what it logged before, read before it logs again
            return resume_run_id
        run_id = self.client.create_run(
            self._experiment_id(), start_time=start_ms, run_name=run_name, tags=all_tags
        ).info.run_id
        self._logged[run_id] = {}
        return run_id

    def _logged_steps(self, run_id: str) -> dict[str, int]:
        """The last step of each metric the store held for `run_id` when this tracker first met it.

        A resumed run replays the steps after its checkpoint, and a replayed pending file may hold
        records the store took before a crash: a (key, step) at or before what the store held is
        not logged again, so a metric's history is an uninterrupted run's (a resume is
        bit-identical, so the first copy is the value the replay computes). What this tracker
        logs itself is not counted (a NaN rollback logs its new steps)."""
        if run_id not in self._logged:
            keys = self.client.get_run(run_id).data.metrics
            self._logged[run_id] = {
                k: max(m.step for m in self.client.get_metric_history(run_id, k)) for k in keys
            }
        return self._logged[run_id]

    def _run_exists(self, run_id: str) -> bool:
        try:
            return self.client.get_run(run_id).info.lifecycle_stage == "active"
        except Exception:
            return False

    # -- the Tracker interface --------------------------------------------------------------------

    def start(
        self,
        run_name: str,
        tags: dict[str, str],
        resume_run_id: str | None = None,
        start_ms: int | None = None,
    ) -> str | None:
        self._submit(
            {
                "op": "start",
                "experiment": self.experiment,
                "run_name": run_name,
                "tags": {k: str(v) for k, v in tags.items()},
                "resume_run_id": resume_run_id,
                "start_ms": start_ms,
            }
        )
        if self.pending_dir is not None and not self.failing:
            replay_orphans(self.pending_dir, self.tracking_uri)
        return self.run_id

    def log_dataset(self, name: str, digest: str, source: str, context: str) -> None:
        self._submit(
            {
                "op": "dataset",
                "dataset": {"name": name, "digest": digest, "source": source, "context": context},
            }
        )

    def log_params(self, params: dict[str, Any]) -> None:
        self._submit(
            {"op": "params", "params": {k: str(v)[:6000] for k, v in sorted(params.items())}}
        )

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._submit(
            {
                "op": "metrics",
                "metrics": {k: float(v) for k, v in metrics.items()},
                "step": int(step),
                "time_ms": int(time.time() * 1000),
            }
        )

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._submit(
            {"op": "artifact", "path": str(Path(path).resolve()), "artifact_path": artifact_path}
        )

    def set_tags(self, tags: dict[str, str]) -> None:
        self._submit({"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def log_model(self, folder: str | Path, registered_name: str | None = None) -> str | None:
        """Logged at once, not queued: a model needs the run in the store (warned about and skipped
        while the store fails; the folder stays a DVC output either way)."""
        from gancore.tracking.mlflow_model import log_generator

        if not self.flush() or self.run_id is None:
            warnings.warn(
                f"MLflow store {self.tracking_uri} failing: generator {folder} not logged as a "
                "model",
                stacklevel=2,
            )
            return None
        try:
            return log_generator(self.tracking_uri, self.run_id, folder, registered_name).model_uri
        except Exception as e:  # the store is optional for training; never let it kill a run
            if isinstance(e, GancoreError):
                raise
            warnings.warn(
                f"logging {folder} as an MLflow model failed ({type(e).__name__}: {e})",
                stacklevel=2,
            )
            return None

    def close(self, status: str = "FINISHED") -> None:
        self._submit({"op": "close", "status": status})
        if not self.flush():
            where = (
                f"; they are kept in {self.pending_file} (replay_pending sends them)"
                if self.pending_file
                else ""
            )
            warnings.warn(
                f"MLflow store {self.tracking_uri} still failing at the end of the run: "
                f"{len(self.pending)} records not sent{where}",
                stacklevel=2,
            )


def _dataset_input(name: str, digest: str, source: str, context: str) -> Any:
    """An MLflow dataset input: a local folder by `source` path, `context` training or evaluation.

    MLflow keeps 36 characters of a digest: the shard fingerprint's (sha256) first 36 hex digits.
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = Dataset(
        name=name, digest=digest[:36], source_type="local", source=json.dumps({"uri": source})
    )
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])


def replay_pending(path: str | Path, tracking_uri: str) -> bool:
    """Send the records a run kept in `path` (see MlflowTracker.pending_dir) to the store; True when
    all went (the file is then deleted)."""
    path = Path(path)
    lines = enumerate(path.read_text().splitlines(), 1)
    ops = [parse_document(line, f"{path} line {i}") for i, line in lines if line.strip()]
    experiment = next((op["experiment"] for op in ops if op["op"] == "start"), "Default")
    tracker = MlflowTracker(experiment, tracking_uri)
    tracker.pending, tracker.pending_file = ops, path
    return tracker.flush()


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def replay_orphans(pending_dir: str | Path, tracking_uri: str) -> int:
    """Send the pending files (`<time>-<pid>.jsonl`) whose process is gone: a run that ended while
    the store failed, or was killed. Each file is locked while it is sent, so two stages starting at
    once send it once; return how many files went whole (and were deleted)."""
    sent = 0
    for path in sorted(Path(pending_dir).glob("*-*.jsonl")):
        pid = path.stem.rsplit("-", 1)[-1]
        if not pid.isdigit() or int(pid) == os.getpid() or not _process_gone(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another stage is sending it
            if not path.exists():
                continue  # sent and deleted while this one waited for the lock
            try:
                whole = replay_pending(path, tracking_uri)
            except GancoreError as e:  # a damaged file: left for a person to read
                warnings.warn(f"pending MLflow records {path} not sent: {e}", stacklevel=2)
                continue
            print(
                f"[mlflow] records kept during an outage by process {pid}: "
                + ("sent" if whole else f"not all sent, the rest still in {path}"),
                flush=True,
            )
            sent += whole
    return sent
