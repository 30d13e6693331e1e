"""Stage `ref_stats`: features of the real train/eval splits, cached as a DVC output keyed by
fingerprint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gancore.eval.evaluate import build_reference
from gancore.params import load_params
from gancore.stage.runtime import record_stage, run_main, stage_parser

PARAMS = ["eval.inception_weights", "track"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--shards", default="data/shards")
    parser.add_argument("--out", default="data/ref_stats")
    args = parser.parse_args(argv)
    p = load_params(args.params, PARAMS)
    meta = build_reference(args.shards, args.out, p["eval.inception_weights"])
    print(
        f"[ref_stats] {meta['n_eval']} eval + {meta['n_train']} train images; "
        f"inception: {meta['features']['inception']}"
    )
    record_stage(
        "ref_stats",
        p,
        args.params,
        {},
        {"n_eval": meta["n_eval"], "n_train": meta["n_train"]},
        [Path(args.out) / "meta.json"],
        (args.shards, "evaluation"),
        dataset_fingerprint=meta["fingerprint"]["train"],
        inception=meta["features"]["inception"][:250],
    )
    return 0


if __name__ == "__main__":
    run_main(main)
