"""Stage `train@<method>` (and `train_sampler@<pipeline>`): train a registered method on image or
code shards, export its generator.

Checkpoints live outside the DVC outputs, in <ckpt-root>/<run identity>/: rerunning an interrupted
stage resumes by itself, while a changed config trains afresh in its own folder. On code shards (a
two-stage pipeline's sampler) the method trains at the codes' side, never seeing full images.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from gancore.params import load_params
from gancore.stage.method import CURVE_KEYS, resolved_train, train
from gancore.stage.runtime import run_main, training_parser
from gancore.training import distributed
from gancore.training.runconfig import resolve_device

__all__ = ["PARAMS_ARG", "main", "params_for", "resolved_train"]

PARAMS_ARG = ("--method", "--pipeline")


def params_for(method: str, pipeline: str | None = None) -> list[str]:
    """The params.yaml keys this stage reads (and dvc.yaml declares) for `method`, as a pipeline's
    sampler (a sampler's codes are not images: it leaves snapshots at the curve's cadence, which
    the assemble stage scores through the decoder)."""
    extra = [f"twostage.{pipeline}.sampler", "eval.every_kimg"] if pipeline else list(CURVE_KEYS)
    return ["base", "train", f"method.{method}", "track", *extra]


def main(argv: Sequence[str] | None = None) -> int:
    parser = training_parser(__doc__)
    parser.add_argument("--method", required=True)
    parser.add_argument(
        "--shards", default="data/shards", help="image shards, or a pipeline's code shards"
    )
    parser.add_argument(
        "--pipeline", default=None, help="pipeline name for tags (default: the method)"
    )
    parser.add_argument("--ref", default="data/ref_stats", help="reference features of the curve")
    parser.add_argument(
        "--quality-curve", default=None, help="in-training KID-EL0 curve CSV (one-stage)"
    )
    args = parser.parse_args(argv)
    p = load_params(args.params, params_for(args.method, args.pipeline))
    t = p["train"]
    launch = t.launch
    if distributed.needs_launch(launch.nproc_per_node, launch.nnodes):
        return distributed.relaunch(
            launch.nproc_per_node,
            launch.nnodes,
            "stages.train",
            sys.argv[1:] if argv is None else argv,
        )
    with distributed.joined(resolve_device(t.plumbing.device)) as world:
        return train(args, p, world)


if __name__ == "__main__":
    run_main(main)
