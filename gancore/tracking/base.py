"""The Tracker interface every stage logs through, and the no-op tracker for `track.enabled:
false`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Tracker(Protocol):
    """What stages log: one run per stage execution (a resumed training reopens its own run)."""

    run_id: str | None

    def start(
        self,
        run_name: str,
        tags: dict[str, str],
        resume_run_id: str | None = None,
        start_ms: int | None = None,
    ) -> str | None:
        """Open a run started at `start_ms` (epoch ms, default now), or reopen `resume_run_id` and
        update its tags; return its id."""
        ...

    def log_dataset(self, name: str, digest: str, source: str, context: str) -> None:
        """Record a dataset the run reads (context "training" or "evaluation")."""
        ...

    def log_params(self, params: dict[str, Any]) -> None:
        """Log flat params once per run."""
        ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log scalars at `step` (images shown, for training curves)."""
        ...

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file or folder into the run's artifacts."""
        ...

    def set_tags(self, tags: dict[str, str]) -> None:
        """Add or update run tags."""
        ...

    def log_model(self, folder: str | Path, registered_name: str | None = None) -> str | None:
        """Log a generator folder as the run's MLflow model (registered under `registered_name` when
        given); return its `models:/` URI, or None when nothing was logged."""
        ...

    def close(self, status: str = "FINISHED") -> None:
        """End the run as FINISHED, FAILED or KILLED."""
        ...


class NullTracker:
    """Tracker that records nothing (tracking disabled)."""

    run_id: str | None = None

    def start(
        self,
        run_name: str,
        tags: dict[str, str],
        resume_run_id: str | None = None,
        start_ms: int | None = None,
    ) -> None:
        return None

    def log_dataset(self, name: str, digest: str, source: str, context: str) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_model(self, folder: str | Path, registered_name: str | None = None) -> None:
        return None

    def close(self, status: str = "FINISHED") -> None:
        pass


@dataclass
class Records:
    """What a stage's work hands the one owner of its MLflow run to log before closing it: the
    stages log nothing themselves (gancore/stage/runtime.py opens, logs and closes each run).

    Attributes:
        metrics: (step, metrics) pairs (step = images shown; 0 for a stage that trains nothing).
        artifacts: (file or folder, folder in the run's artifacts or None for the root).
        model: a generator folder to log as the run's MLflow model.
        registered_name: the model's registered name (None: logged, not registered).
    """

    metrics: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    artifacts: list[tuple[Path, str | None]] = field(default_factory=list)
    model: Path | None = None
    registered_name: str | None = None

    def add_artifacts(self, *paths: str | Path, folder: str | None = None) -> Records:
        """Append `paths` as artifacts (under `folder`); returns self."""
        self.artifacts += [(Path(p), folder) for p in paths]
        return self

    def log_to(self, tracker: Tracker) -> None:
        """Log everything recorded here to the open run of `tracker`."""
        for step, values in self.metrics:
            tracker.log_metrics(values, step=step)
        for path, folder in self.artifacts:
            tracker.log_artifact(path, folder)
        if self.model is not None:
            tracker.log_model(self.model, registered_name=self.registered_name)
