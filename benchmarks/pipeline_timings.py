"""Wall time of each DVC stage's latest run, read back from the project's MLflow store.

    python -m benchmarks.pipeline_timings [--since 2026-11-23T18:00]

Every stage logs one MLflow run (tag `dvc_stage`): a training run's span, or for the other stages
their stage's age when they log (`stage_wall_sec`; gancore/stage/runtime.py stage_start_ms). A
resumed training continues its run, so its time spans the interruption. Prints a Markdown table
in pipeline order.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path


def stage_times(root: Path, experiment: str, since_ms: int) -> dict[str, float]:
    """{dvc_stage: seconds} of the latest finished run of each stage started after `since_ms`."""
    from mlflow.tracking import MlflowClient

    from gancore.tracking.mlflow_tracker import default_tracking_uri

    client = MlflowClient(default_tracking_uri(root))
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
        max_results=5000,
    )
    return {
        r.data.tags["dvc_stage"]: max(
            (r.info.end_time - r.info.start_time) / 1000, r.data.metrics.get("stage_wall_sec", 0.0)
        )
        for r in runs
        if "dvc_stage" in r.data.tags and r.info.start_time >= since_ms
    }


def section(results: dict) -> str:
    """docs/benchmarks.md section from benchmarks/results/pipeline_timings.json."""
    times = results["stage_sec"]
    rows = "\n".join(
        f"| `{stage}` | {int(sec // 60)} min {sec % 60:04.1f} s |" for stage, sec in times.items()
    )
    return (
        "## Default pipeline (`dvc repro`): stage wall times\n\n`python -m "
        "benchmarks.pipeline_timings "
        f"--since {results['since']}` (from the MLflow store; {results['machine']}).\n\n"
        f"| stage | wall time |\n|---|---|\n{rows}\n| **sum** | {sum(times.values()) / 60:.1f} min "
        "|\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--project", default=".")
    parser.add_argument("--experiment", default="gancore")
    parser.add_argument(
        "--since", default="1970-01-01T00:00", help="ISO time (UTC); older runs are ignored"
    )
    parser.add_argument(
        "--machine", default="the development machine, 2 CPU cores", help="where the pipeline ran"
    )
    parser.add_argument("--out", default="benchmarks/results/pipeline_timings.json")
    args = parser.parse_args()
    since = datetime.fromisoformat(args.since).replace(tzinfo=UTC)
    times = stage_times(
        Path(args.project).resolve(), args.experiment, int(since.timestamp() * 1000)
    )
    results = {"machine": args.machine, "since": args.since, "stage_sec": times}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(section(results))


if __name__ == "__main__":
    main()
