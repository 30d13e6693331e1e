"""Stage `compress@<pipeline>`: image shards -> the codec (normalisation statistics, and weights
when it is learned) and code shards.

A trainable codec (the autoencoder) is first trained by the generic trainer on the train split,
checkpointed under --ckpt-root like any training stage (an interrupted stage resumes by itself); a
fixed codec (wavelet, pixel) has nothing to train. Then, for either: per-channel statistics of its
codes, code shards of both splits, and its held-out reconstruction quality (PSNR/SSIM of `coarse`).
"""

from __future__ import annotations

from collections.abc import Sequence

from gancore.params import load_params
from gancore.stage.codec import compress
from gancore.stage.runtime import run_main, stage_parser, train_keys

PARAMS_ARG = "--pipeline"


def params_for(pipeline: str) -> list[str]:
    """The params.yaml keys this stage reads for `pipeline` (train plumbing: for a trainable
    codec)."""
    return ["base", *train_keys(), f"twostage.{pipeline}.compress", "shard.max_per_shard", "track"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--shards", default="data/shards", help="image shards")
    parser.add_argument("--out", required=True, help="folder for codec/ and shards/")
    parser.add_argument("--metrics", required=True, help="summary JSON for `dvc metrics`")
    parser.add_argument(
        "--ckpt-root",
        default="checkpoints/compress",
        help="checkpoint root of a trainable codec (not a DVC output)",
    )
    parser.add_argument(
        "--curve", default=None, help="training curve CSV (a header alone for a fixed codec)"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    return compress(args, load_params(args.params, params_for(args.pipeline)))


if __name__ == "__main__":
    run_main(main)
