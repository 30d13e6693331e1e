"""Stage `assemble@<pipeline>`: sampler + decoder -> one generator folder that `evaluate` and
`gancore generate` load like any other."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gancore.data.shards import read_manifest
from gancore.params import load_params
from gancore.runtime import record_stage, run_main, stage_parser
from gancore.twostage.assembled import assemble

PARAMS = ["track"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--sampler", required=True, help="the sampler's generator folder")
    parser.add_argument("--decoder", required=True, help="the decoder folder")
    parser.add_argument("--codes", required=True, help="the code shards the sampler trained on")
    parser.add_argument("--out", required=True, help="the assembled generator folder")
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
    record_stage(
        f"assemble@{args.pipeline}",
        p,
        args.params,
        {"sampler": args.sampler, "decoder": args.decoder},
        {},
        [Path(out) / "config.json"],
        pipeline=args.pipeline,
    )
    return 0


if __name__ == "__main__":
    run_main(main)
