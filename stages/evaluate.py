"""Stage `evaluate@<pipeline>`: score a generator (and its initialisation) on held-out reals; for a
two-stage generator, also its decoder alone (the held-out images' own codes decoded) and, when its
codes are low-resolution images (wavelet, pixel; not learned codes), its sampler alone at the
codes' resolution."""

from __future__ import annotations

from collections.abc import Sequence

from gancore.params import load_params
from gancore.stage.evaluate import evaluate
from gancore.stage.runtime import run_main, stage_parser

PARAMS = ["base.seed", "eval", "track"]
"""base.seed: the seed whose training runs the MLflow row sums (gancore.compare.pipeline_parts)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = stage_parser(__doc__)
    parser.add_argument(
        "--generator", required=True, help="generator folder, e.g. runs/fastgan/generator"
    )
    parser.add_argument("--shards", default="data/shards")
    parser.add_argument("--ref", default="data/ref_stats")
    parser.add_argument("--out", required=True, help="folder for sample grids")
    parser.add_argument("--metrics", required=True, help="every score (JSON; text in .info.json)")
    parser.add_argument(
        "--headline", help="the headline scores alone (JSON): the pipeline's `dvc metrics` file"
    )
    args = parser.parse_args(argv)
    return evaluate(args, load_params(args.params, PARAMS))


if __name__ == "__main__":
    run_main(main)
