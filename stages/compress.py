"""Stage `compress@<pipeline>`: image shards -> the codec (normalisation statistics) and code shards."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from gancore.compress.codec import build_codec, save_codec
from gancore.compress.codes import fit_normalisation, write_code_shards
from gancore.config import load_params, to_dict
from gancore.runtime import record_stage, run_main, stage_parser
from gancore.utils.fsio import atomic_write_json

PARAMS_ARG = "--pipeline"


def params_for(pipeline: str) -> list[str]:
    """The params.yaml keys this stage reads for `pipeline`."""
    return ["base.resolution", f"twostage.{pipeline}.compress", "shard.max_per_shard", "track"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--shards", default="data/shards", help="image shards")
    parser.add_argument("--out", required=True, help="folder for codec/ and shards/")
    parser.add_argument("--metrics", required=True, help="summary JSON for `dvc metrics`")
    args = parser.parse_args(argv)
    p = load_params(args.params, params_for(args.pipeline))
    params, resolution = p[f"twostage.{args.pipeline}.compress"], p["base.resolution"]
    lo, hi = fit_normalisation(build_codec(params, resolution), args.shards)
    codec = build_codec(params, resolution, lo, hi)
    out = Path(args.out)
    manifest = write_code_shards(args.shards, out / "shards", codec, p["shard.max_per_shard"])
    save_codec(out / "codec", codec, extra={"source_fingerprint": manifest["source_fingerprint"]})
    metrics = {**manifest["counts"], "code_shape": list(codec.code_shape),
               "compression_ratio": (3 * resolution**2) / codec.code_shape[0] / codec.code_px**2,
               "norm_lo": lo, "norm_hi": hi}
    atomic_write_json(args.metrics, metrics)
    print(f"[compress] {manifest['counts']} {resolution}px images -> codes {codec.code_shape}, "
          f"ratio {metrics['compression_ratio']:g}:1 -> {out}")
    record_stage(f"compress@{args.pipeline}", p, args.params, {"compress": to_dict(params)},
                 {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
                 [out / "codec/codec.json", out / "shards/manifest.json"],
                 pipeline=args.pipeline, dataset_fingerprint=manifest["fingerprint"]["train"])
    return 0


if __name__ == "__main__":
    run_main(main)
