"""What every stage CLI shares: typed-error exit codes, tracker construction and run tags."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

import gancore
from gancore.config import TrackParams, flatten, to_dict
from gancore.errors import GancoreError
from gancore.tracking.base import NullTracker, Tracker
from gancore.utils.fsio import sha256_json


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> None:
    """Run a stage main(); a GancoreError prints one clear line and exits with status 2."""
    try:
        code = main(argv)
    except GancoreError as e:
        print(f"error: {e}", file=sys.stderr)
        code = 2
    sys.exit(code)


def stage_parser(description: str) -> argparse.ArgumentParser:
    """An argparse parser with the --params argument every stage takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    return parser


def git_commit(root: Path) -> str:
    """HEAD commit of the project (suffix '+dirty' when the work tree differs), or 'unknown'."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    try:
        sha = git("rev-parse", "HEAD")
        return f"{sha}+dirty" if sha and git("status", "--porcelain", "--untracked-files=no") else sha or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def make_tracker(track: TrackParams, params_path: str | Path) -> Tracker:
    """MLflow tracker on the project's store (beside params.yaml), or a null one when disabled."""
    if not track.enabled:
        return NullTracker()
    from gancore.tracking.mlflow_tracker import MlflowTracker, default_tracking_uri

    root = Path(params_path).resolve().parent
    return MlflowTracker(track.experiment, default_tracking_uri(root))


def record_stage(stage: str, params: dict[str, Any], params_path: str | Path, logged: dict[str, Any],
                 metrics: dict[str, float], artifacts: Sequence[str | Path], **tags: str) -> None:
    """One finished MLflow run for a stage without steps: params, metrics, artifacts and run tags."""
    tracker = make_tracker(params["track"], params_path)
    tracker.start(stage, run_tags(stage, params, params_path, **tags))
    tracker.log_params(flatten(logged))
    tracker.log_metrics(metrics, step=0)
    for path in artifacts:
        tracker.log_artifact(path)
    tracker.close()


def run_tags(stage: str, params: dict[str, Any], params_path: str | Path, **extra: str) -> dict[str, str]:
    """Tags of a stage run: git commit, DVC stage, params hash, versions, device."""
    root = Path(params_path).resolve().parent
    tags = {"git_commit": git_commit(root), "dvc_stage": stage,
            "params_hash": sha256_json({k: to_dict(v) for k, v in params.items()})[:16],
            "gancore_version": gancore.__version__, "torch_version": torch.__version__,
            "device": "cuda" if torch.cuda.is_available() else "cpu"}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return {**tags, **extra}
