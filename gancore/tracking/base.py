"""The Tracker interface every stage logs through, and the no-op tracker for `track.enabled:
false`."""

from __future__ import annotations

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
