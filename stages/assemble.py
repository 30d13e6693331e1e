"""Stage `assemble@<pipeline>`: sampler + decoder -> one generator folder that `evaluate` and
`gancore generate` load like any other; with --quality-curve, the pipeline's KID-EL0 curve against
counted FLOPs: the sampler's snapshots through the trained decoder (the parts' FLOPs added)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gancore.data.shards import read_manifest
from gancore.eval.curve import FLOPS_METRIC, METRIC, SNAPSHOTS_FILE, read_curve, write_curve_csv
from gancore.eval.evaluate import load_reference
from gancore.params import load_params
from gancore.stage.runtime import record_stage, run_main, stage_parser
from gancore.twostage.assembled import assemble, assembled_curve, parts_flops
from gancore.utils.metrics_file import read_metrics

PARAMS = ["track", "eval.curve_n_gen", "eval.seed"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--sampler", required=True, help="the sampler's generator folder")
    parser.add_argument("--decoder", required=True, help="the decoder folder")
    parser.add_argument("--codes", required=True, help="the code shards the sampler trained on")
    parser.add_argument("--out", required=True, help="the assembled generator folder")
    parser.add_argument("--quality-curve", default=None, help="the pipeline's KID-EL0 curve CSV")
    parser.add_argument("--ref", default="data/ref_stats", help="reference features of the curve")
    parser.add_argument("--shards", default="data/shards", help="the image shards of --ref")
    parser.add_argument(
        "--compress-metrics", default=None, help="the compress stage's metrics (its FLOPs)"
    )
    args = parser.parse_args(argv)
    p = load_params(args.params, PARAMS)
    out = assemble(
        args.sampler,
        args.decoder,
        read_manifest(args.codes),
        args.out,
        extra={"pipeline": args.pipeline},
    )
    print(f"[assemble] {args.sampler} + {args.decoder} -> {out}")
    curve = write_curve(args, p) if args.quality_curve else []
    record_stage(
        f"assemble@{args.pipeline}",
        p,
        args.params,
        {"sampler": args.sampler, "decoder": args.decoder},
        {},
        [Path(out) / "config.json"],
        steps=[
            (round(r["kimg"] * 1000), {METRIC: r["kid_el0"], FLOPS_METRIC: r["flops"]})
            for r in curve
        ],
        pipeline=args.pipeline,
    )
    return 0


def write_curve(args, p: dict) -> list[dict[str, float]]:
    """Score the sampler's snapshots through the decoder into --quality-curve; return its rows
    (none, and a CSV of the header alone, when the sampler left none: eval.every_kimg 0)."""
    if not read_curve(Path(args.sampler).parent / SNAPSHOTS_FILE):
        write_curve_csv([], args.quality_curve)
        print("[assemble] the sampler left no snapshots (eval.every_kimg 0): no curve")
        return []
    ref, _ = load_reference(args.ref, args.shards)
    compress = read_metrics(args.compress_metrics) if args.compress_metrics else {}
    rows = assembled_curve(
        Path(args.sampler).parent,
        args.decoder,
        ref["el0_eval"],
        p["eval.curve_n_gen"],
        p["eval.seed"],
        parts_flops(args.decoder, compress),
    )
    write_curve_csv(rows, args.quality_curve)
    print(f"[assemble] curve: {len(rows)} points -> {args.quality_curve}")
    return rows


if __name__ == "__main__":
    run_main(main)
