"""Stage `shard`: images (folder, zip or tar) -> webdataset shards at the training resolution."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gancore.data.shards import write_shards
from gancore.params import load_params
from gancore.stage.runtime import record_stage, run_main, stage_parser
from gancore.utils.metrics_file import write_metrics

PARAMS = ["base.resolution", "data", "shard", "track"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--out", default="data/shards", help="output shard folder")
    parser.add_argument("--metrics", default="metrics/shard.json", help="counts for `dvc metrics`")
    args = parser.parse_args(argv)
    p = load_params(args.params, PARAMS)
    manifest = write_shards(p["data"].source, args.out, p["base.resolution"], p["shard"])
    counts = manifest["counts"]
    fingerprint = manifest["fingerprint"]["train"]
    info = write_metrics(args.metrics, {**counts, "fingerprint_train": fingerprint})
    print(
        f"[shard] {counts['n_train']} train / {counts['n_eval']} eval images, "
        f"{counts['n_skipped']} skipped {counts['skipped_by_reason']} -> {args.out}"
    )
    record_stage(
        "shard",
        p,
        args.params,
        {},
        {k: v for k, v in counts.items() if isinstance(v, (int, float))},
        [Path(args.out) / "manifest.json", info],
        dataset_fingerprint=fingerprint,
    )
    return 0


if __name__ == "__main__":
    run_main(main)
