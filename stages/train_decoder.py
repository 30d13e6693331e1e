"""Stage `train_decoder@<pipeline>`: train the decoder on real images and their codes only (a
sibling of the sampler, not a descendant), export it and score its held-out reconstructions (PSNR,
SSIM).

With `decoder.arch: codec` and `decoder.total_kimg: 0` nothing trains: the codec's own decoder (the
autoencoder's, trained by the compress stage) is exported as it is; its G_init, as every decoder's,
sits on the codec at initialisation, so an assembled G_init is an untrained pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence

from gancore.params import load_params
from gancore.stage.decoder import train
from gancore.stage.runtime import run_main, train_keys, training_parser

PARAMS_ARG = "--pipeline"
__all__ = ["main", "params_for"]


def params_for(pipeline: str) -> list[str]:
    """The params.yaml keys this stage reads for `pipeline`."""
    return ["base", *train_keys(), f"twostage.{pipeline}.decoder", "track"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = training_parser(__doc__)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--shards", default="data/shards", help="image shards (the targets)")
    parser.add_argument("--codec", required=True, help="codec folder written by the compress stage")
    args = parser.parse_args(argv)
    return train(args, load_params(args.params, params_for(args.pipeline)))


if __name__ == "__main__":
    run_main(main)
