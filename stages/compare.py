"""Stage `compare`: the default pipelines side by side (gancore.compare) from the project's MLflow
store, written as markdown + PNG and logged as the artifacts of a `compare` run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gancore.compare import alias_reported, write_report
from gancore.params import load_params
from gancore.stage.runtime import run_main, run_tags, stage_parser, stage_start_ms
from gancore.tracking.mlflow_tracker import default_tracking_uri

PARAMS = ["track"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--out", required=True, help="report folder (report.md, rows.json, PNG plots)"
    )
    parser.add_argument(
        "--suite",
        default="benchmarks/results/suite.json",
        help="benchmark results for the memory-vs-resolution plot (skipped when absent)",
    )
    args = parser.parse_args(argv)
    p = load_params(args.params, PARAMS)
    uri = default_tracking_uri(Path(args.params).resolve().parent)
    tags = run_tags("compare", p, args.params) if p["track"].enabled else None
    report = write_report(
        uri, p["track"].experiment, args.out, args.suite, tags, log_start_ms=stage_start_ms()
    )
    print(f"[compare] {report}")
    for name, version in alias_reported(uri, args.out).items():
        print(f"[compare] models:/{name}@best -> version {version} (best kid_el0)")
    return 0


if __name__ == "__main__":
    run_main(main)
