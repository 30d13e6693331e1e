"""Stage `train_inr@<k>`: stage k of patch INR-GAN training (Lee et al., arXiv 2207.01395) on the
image shards; stage k > 1 learns from stage k-1's generator folder (--teacher), frozen.

Checkpoints live in <ckpt-root>/<run identity>/ as for `train@<method>`; the identity holds the
stage number and the teacher's sha256, so a retrained previous stage never resumes a stale run.
"""

from __future__ import annotations

from collections.abc import Sequence

from gancore.params import load_params
from gancore.stage.inr import train
from gancore.stage.runtime import run_main, training_parser
from gancore.utils.args import int_in

PARAMS = [
    "base",
    "train",
    "method.inrpatch",
    "track",
    "eval.every_kimg",
    "eval.curve_n_gen",
    "eval.seed",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = training_parser(__doc__)
    parser.add_argument(
        "--stage", type=int_in(1, 16), required=True, help="1 .. method.inrpatch.n_stages"
    )
    parser.add_argument(
        "--teacher", default=None, help="previous stage's generator folder (stage > 1)"
    )
    parser.add_argument("--shards", default="data/shards")
    parser.add_argument("--ref", default="data/ref_stats", help="reference features of the curve")
    parser.add_argument(
        "--quality-curve", default=None, help="this stage's KID-EL0 curve CSV (at base.resolution)"
    )
    args = parser.parse_args(argv)
    return train(args, load_params(args.params, PARAMS))


if __name__ == "__main__":
    run_main(main)
